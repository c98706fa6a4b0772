/* The heap ring: see core/ring.h. */
#include "core/ring.h"

void strata__heap_ring_reset(strata__heap_ring *r, uint64_t size)
{
    r->size = size;
    r->head = r->tail = r->used = r->high_water = 0;
}

bool strata__heap_ring_alloc(strata__heap_ring *r, uint64_t n, uint64_t *offset, uint64_t *charged)
{
    if (n > r->size)
        return false;
    if (r->used == 0)
        r->head = r->tail = 0;   /* empty: start over at the bottom, no skipped end */
    uint64_t at, skip = 0;
    if (r->used == 0 || r->head > r->tail) {
        /* free space is [head, size) and [0, tail) */
        if (r->size - r->head >= n) {
            at = r->head;
        } else if (r->tail >= n) {
            skip = r->size - r->head;
            at = 0;
        } else {
            return false;
        }
    } else {
        /* wrapped (head < tail) or full (head == tail, used > 0): free is [head, tail) */
        if (r->tail - r->head < n)
            return false;
        at = r->head;
    }
    r->head = at + n;
    if (r->head == r->size)
        r->head = 0;
    r->used += n + skip;
    if (r->used > r->high_water)
        r->high_water = r->used;
    *offset = at;
    *charged = n + skip;
    return true;
}

void strata__heap_ring_release(strata__heap_ring *r, uint64_t offset, uint64_t n, uint64_t charged)
{
    r->tail = offset + n;
    if (r->tail == r->size)
        r->tail = 0;
    r->used -= charged;
}
