/* Growable arrays: the one place that doubles a capacity. */
#ifndef STRATA_CORE_ARRAY_H
#define STRATA_CORE_ARRAY_H

#include <stddef.h>
#include <stdint.h>

/* Make room for one more element in the array at *slot (a T * variable; count
   used of *cap, each `size` bytes): double the capacity (from `first` when
   empty). On failure the array is kept and the message names `what` and the
   capacity asked for. The pointer is stored with memcpy, so T * is never
   accessed through a void ** (no aliasing question). */
int strata__array_reserve(void *slot, uint32_t count, uint32_t *cap, size_t size, uint32_t first,
                          const char *what);

/* STRATA__RESERVE(n->edges, n->nedges, n->edges_cap, 256, "the dependency edges") */
#define STRATA__RESERVE(items, count, cap, first, what) \
    strata__array_reserve(&(items), (count), &(cap), sizeof *(items), (first), (what))

#endif
