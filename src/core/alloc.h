/* The library's one door to the heap: every allocation of Strata passes here,
 * so that a test build can fail any of them (core/fault.h, point "alloc").
 * Memory is released with free(). The thread-local message buffer and the
 * messages it holds (core/status.c) are not fault points: an error about an
 * error would lose the first. */
#ifndef STRATA_CORE_ALLOC_H
#define STRATA_CORE_ALLOC_H

#include <stddef.h>

void *strata__malloc(size_t n);
void *strata__calloc(size_t count, size_t size);
void *strata__realloc(void *p, size_t n);
/* n bytes at a multiple of align (a power of two, at least sizeof(void *)). */
void *strata__aligned_alloc(size_t align, size_t n);
char *strata__strdup(const char *s);
char *strata__strndup(const char *s, size_t n);

#endif
