/* Ready queues: bounded multi-consumer queues of task slots, after Vyukov's
 * array queue but with no "free" handshake. Each core type has two: one the
 * lanes push the successors they make ready into (many producers: a claim is
 * one fetch-add), and one only the orchestrator pushes into
 * (strata__ready_push_single: plain stores, so a submit never waits for a
 * line a lane holds).
 *
 *   word        writer              reader             ordering   meaning
 *   cell.seq    the pusher           poppers            release /  pos + 1 (low 32 bits): slot
 *                                                       acquire    holds the task pushed at pos
 *   enqueue     pushers (fetch-add,  pushers            acq_rel /  next position to fill
 *               or the one pusher)                      relaxed    (multi-producer / single)
 *   dequeue     poppers (CAS)        poppers, peek      relaxed    next position to take
 *
 * Why a popper never frees its cell, and a pusher never waits for one: a task
 * is pushed at most once and, until a popper claims it, it has not run, so it
 * holds its slot of the task windows. Entries not yet claimed are therefore
 * at most the task slots of every scope depth together (at most
 * STRATA__WINDOW_TOTAL_MAX), and the capacity is at least that: a push
 * refills a cell only once its previous entry was claimed. A popper reads the
 * slot before its claim (a CAS that succeeds only while the entry is still
 * unclaimed, so the slot it read is that entry's) and never touches the cell
 * after it. What keeps a refill from overtaking that read is the count above
 * (the refill of a cell needs its entry claimed, and the task run and retired
 * or more than the slots unclaimed), with the claims chained acq_rel so that
 * the read comes before everything that follows them. (Rings retire
 * independently, so the tasks pushed after a claimed entry are not bounded by
 * one window: a popper that read after its claim could find the cell
 * refilled.) seq values of the previous lap differ from pos + 1 by the
 * capacity, so they read as "not yet pushed". */
#ifndef STRATA_CHIP_SCHED_H
#define STRATA_CHIP_SCHED_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/atomic.h"

/* slot is atomic (relaxed) only so that no tool has to follow the lap argument
   above: it costs a plain load or store. */
typedef struct strata__ready_cell {
    _Atomic uint32_t seq;
    _Atomic uint32_t slot;
} strata__ready_cell;

typedef struct strata__ready_queue {
    strata__ready_cell *cells;
    uint64_t            mask;
    alignas(STRATA__CACHE_LINE) _Atomic uint64_t enqueue;
    alignas(STRATA__CACHE_LINE) _Atomic uint64_t dequeue;
} strata__ready_queue;

/* capacity: a power of two, at least the task slots of every depth together */
int  strata__ready_queue_init(strata__ready_queue *q, uint64_t capacity);
void strata__ready_queue_destroy(strata__ready_queue *q);
void strata__ready_push(strata__ready_queue *q, uint32_t slot);
/* Push for a queue that only the calling thread ever pushes into. */
void strata__ready_push_single(strata__ready_queue *q, uint32_t slot);
bool strata__ready_pop(strata__ready_queue *q, uint32_t *slot);
/* Whether a pop would find something now (a hint for waiting threads). */
bool strata__ready_nonempty(strata__ready_queue *q);
/* How many tasks wait in q now (a hint: a traced run's counter). */
static inline uint64_t strata__ready_depth(strata__ready_queue *q)
{
    /* relaxed (both): a figure for a trace, read while others push and pop */
    uint64_t d = strata__load_relaxed(&q->dequeue), e = strata__load_relaxed(&q->enqueue);
    return e > d ? e - d : 0;
}

#endif
