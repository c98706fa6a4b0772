/* Ready queues: one bounded multi-producer multi-consumer queue of task slots per
 * core type (Vyukov's array queue).
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

typedef struct strata__ready_cell {
    _Atomic uint64_t seq;
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
bool strata__ready_pop(strata__ready_queue *q, uint32_t *slot);
/* Whether a pop would find something now (a hint for waiting threads). */
bool strata__ready_nonempty(strata__ready_queue *q);

#endif
