/* Ready queues: bounded multi-consumer queues of task slots (Vyukov's array
 * queue). Each core type has two: one the lanes push the successors they make
 * ready into (many producers, CAS on enqueue), and one only the orchestrator
 * pushes into (strata__ready_push_single: no read-modify-write, so a submit
 * does not wait for its stores to drain).
 *
 *   word        writer              reader             ordering   meaning
 *   cell.seq    pusher, then popper  popper, pusher    acq/rel    whose turn the cell is
 *   enqueue     pushers (CAS)        pushers            relaxed    next cell to fill
 *   dequeue     poppers (CAS)        poppers, peek      relaxed    next cell to take
 *
 * A pusher fills cell.slot, then stores seq = pos + 1 (release); a popper that
 * loads that seq (acquire) sees the slot and everything the pusher wrote before
 * (the task's arguments). Capacity is twice the largest task window, and a task
 * is pushed once while it sits in the window, so a push never finds the queue
 * full except for the instant a popper takes between claiming a cell and
 * freeing it; the pusher then spins on that cell, which only that popper holds. */
#ifndef STRATA_CHIP_SCHED_H
#define STRATA_CHIP_SCHED_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/atomic.h"

/* seq holds the low 32 bits of a position; differences are taken as int32_t,
   exact while the capacity is far below 2^31. */
typedef struct strata__ready_cell {
    _Atomic uint32_t seq;
    uint32_t         slot;
} strata__ready_cell;

typedef struct strata__ready_queue {
    strata__ready_cell *cells;
    uint64_t            mask;
    alignas(STRATA__CACHE_LINE) _Atomic uint64_t enqueue;
    alignas(STRATA__CACHE_LINE) _Atomic uint64_t dequeue;
} strata__ready_queue;

int  strata__ready_queue_init(strata__ready_queue *q, uint64_t capacity);  /* power of two */
void strata__ready_queue_destroy(strata__ready_queue *q);
void strata__ready_push(strata__ready_queue *q, uint32_t slot);
/* Push for a queue that only the calling thread ever pushes into. */
void strata__ready_push_single(strata__ready_queue *q, uint32_t slot);
bool strata__ready_pop(strata__ready_queue *q, uint32_t *slot);
/* Whether a pop would find something now (a hint for waiting threads). */
bool strata__ready_nonempty(strata__ready_queue *q);

#endif
