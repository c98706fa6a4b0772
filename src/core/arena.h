/* A first-fit allocator over one address range [lo, hi) that it does not touch:
 * the bookkeeping lives in host memory, so the range may be chip memory, a shared
 * mapping, or memory of another process.
 *
 * Invariant: the free list is sorted by address and no two free blocks touch
 * (they merge on free). Sizes are rounded up to `align`. Not thread-safe. */
#ifndef STRATA_CORE_ARENA_H
#define STRATA_CORE_ARENA_H

#include <stdint.h>

typedef struct strata__free_block {
    uint64_t addr, nbytes;
    struct strata__free_block *next;
} strata__free_block;

typedef struct strata__arena {
    uint64_t            lo, hi, align;
    strata__free_block *free_list;
} strata__arena;

/* `what` names the memory in messages ("sim chip 0", "the shared host heap"). */
int  strata__arena_init(strata__arena *a, uint64_t lo, uint64_t hi, uint64_t align, const char *what);
void strata__arena_destroy(strata__arena *a);
/* A block of at least nbytes (> 0); STRATA_ENOMEM with sizes when none fits.
   `what` and `raise` name the memory and the setting to raise in the message. */
int  strata__arena_alloc(strata__arena *a, uint64_t nbytes, uint64_t *addr, const char *what, const char *raise);
/* Give back a block from strata__arena_alloc of nbytes (as asked). */
void strata__arena_free(strata__arena *a, uint64_t addr, uint64_t nbytes);
void strata__arena_usage(const strata__arena *a, uint64_t *free_bytes, uint64_t *largest);

#endif
