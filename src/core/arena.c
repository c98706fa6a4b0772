/* First-fit range allocator: see core/arena.h. */
#include "core/arena.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/status.h"

int strata__arena_init(strata__arena *a, uint64_t lo, uint64_t hi, uint64_t align, const char *what)
{
    a->lo = lo;
    a->hi = hi;
    a->align = align;
    a->free_list = strata__malloc(sizeof *a->free_list);
    if (!a->free_list)
        return strata__fail(STRATA_ENOMEM, "out of host memory for the allocator of %s", what);
    a->free_list->addr = lo;
    a->free_list->nbytes = hi - lo;
    a->free_list->next = NULL;
    return STRATA_OK;
}

void strata__arena_destroy(strata__arena *a)
{
    while (a->free_list) {
        strata__free_block *b = a->free_list;
        a->free_list = b->next;
        free(b);
    }
}

static uint64_t round_up(const strata__arena *a, uint64_t n)
{
    uint64_t r = (n + a->align - 1) & ~(a->align - 1);
    return r < n ? UINT64_MAX : r;
}

void strata__arena_usage(const strata__arena *a, uint64_t *free_bytes, uint64_t *largest)
{
    *free_bytes = *largest = 0;
    for (const strata__free_block *b = a->free_list; b; b = b->next) {
        *free_bytes += b->nbytes;
        *largest = b->nbytes > *largest ? b->nbytes : *largest;
    }
}

int strata__arena_alloc(strata__arena *a, uint64_t nbytes, uint64_t *addr, const char *what, const char *raise)
{
    uint64_t n = round_up(a, nbytes);
    for (strata__free_block **link = &a->free_list; *link; link = &(*link)->next) {
        strata__free_block *b = *link;
        if (b->nbytes < n)
            continue;
        *addr = b->addr;
        b->addr += n;
        b->nbytes -= n;
        if (b->nbytes == 0) {
            *link = b->next;
            free(b);
        }
        return STRATA_OK;
    }
    uint64_t free_bytes, largest;
    strata__arena_usage(a, &free_bytes, &largest);
    return strata__fail(STRATA_ENOMEM,
                        "%s: no block of %llu bytes left in its %llu bytes (%llu bytes free, largest free block "
                        "%llu); free buffers or raise %s", what, (unsigned long long)n,
                        (unsigned long long)(a->hi - a->lo), (unsigned long long)free_bytes,
                        (unsigned long long)largest, raise);
}

void strata__arena_free(strata__arena *a, uint64_t addr, uint64_t nbytes)
{
    uint64_t n = round_up(a, nbytes);
    strata__free_block *prev = NULL, *next = a->free_list;
    while (next && next->addr < addr) {
        prev = next;
        next = next->next;
    }
    bool join_prev = prev && prev->addr + prev->nbytes == addr;
    bool join_next = next && addr + n == next->addr;
    if (join_prev && join_next) {
        prev->nbytes += n + next->nbytes;
        prev->next = next->next;
        free(next);
    } else if (join_prev) {
        prev->nbytes += n;
    } else if (join_next) {
        next->addr = addr;
        next->nbytes += n;
    } else {
        strata__free_block *b = strata__malloc(sizeof *b);
        if (!b) {
            /* Deliberate leak of the range, not of host memory: without a node
               the block cannot be listed. Only under host memory exhaustion. */
            return;
        }
        b->addr = addr;
        b->nbytes = n;
        b->next = next;
        if (prev)
            prev->next = b;
        else
            a->free_list = b;
    }
}
