/* The heap ring: a byte ring from which intermediate buffers are carved in order
 * and returned in the same order.
 *
 * Allocation takes the next `n` bytes after the head, wrapping to offset 0 when
 * the tail end is too short (the skipped end is charged to that allocation).
 * Release always frees the oldest allocation. `used` tells a full ring from an
 * empty one. Single-threaded: owned by the orchestrator. */
#ifndef STRATA_CORE_RING_H
#define STRATA_CORE_RING_H

#include <stdbool.h>
#include <stdint.h>

typedef struct strata__heap_ring {
    uint64_t size;        /* bytes */
    uint64_t head, tail;  /* next free byte; start of the oldest allocation */
    uint64_t used;        /* bytes held, skipped ends included */
    uint64_t high_water;  /* most bytes held at once since the last reset */
} strata__heap_ring;

void strata__heap_ring_reset(strata__heap_ring *r, uint64_t size);
/* Carve n bytes (n <= size). Returns false when they do not fit now. On success
   *offset is where they start and *charged what release must give back. */
bool strata__heap_ring_alloc(strata__heap_ring *r, uint64_t n, uint64_t *offset, uint64_t *charged);
/* Give back the oldest allocation, which started at `offset` and was charged
   `charged` bytes. */
void strata__heap_ring_release(strata__heap_ring *r, uint64_t offset, uint64_t n, uint64_t charged);

#endif
