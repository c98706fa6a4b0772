/* Ready queues: see chip/sched.h for the protocol. */
#include "chip/sched.h"

#include <sched.h>
#include <stdlib.h>

#include "core/status.h"

int strata__ready_queue_init(strata__ready_queue *q, uint64_t capacity)
{
    q->cells = malloc(capacity * sizeof q->cells[0]);
    if (!q->cells)
        return strata__fail(STRATA_ENOMEM, "out of host memory for a ready queue of %llu entries",
                            (unsigned long long)capacity);
    for (uint64_t i = 0; i < capacity; i++)
        atomic_init(&q->cells[i].seq, (uint32_t)i);
    q->mask = capacity - 1;
    atomic_init(&q->enqueue, 0);
    atomic_init(&q->dequeue, 0);
    return STRATA_OK;
}

void strata__ready_queue_destroy(strata__ready_queue *q)
{
    free(q->cells);
    q->cells = NULL;
}

void strata__ready_push(strata__ready_queue *q, uint32_t slot)
{
    /* relaxed: the position is only a ticket; the cell's seq carries the ordering. */
    uint64_t pos = strata__load_relaxed(&q->enqueue);
    for (unsigned spins = 0;; spins++) {
        strata__ready_cell *c = &q->cells[pos & q->mask];
        /* acquire: pairs with the popper's release of this cell (it is free again) */
        uint32_t seq = strata__load_acquire(&c->seq);
        int32_t diff = (int32_t)(seq - (uint32_t)pos);
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->enqueue, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->slot = slot;
                /* release: publishes slot and the task's arguments; pairs with the
                   acquire in strata__ready_pop() */
                strata__store_release(&c->seq, (uint32_t)(pos + 1));
                return;
            }
        } else if (diff < 0) {
            /* A popper has claimed this cell and not yet freed it (see header).
               One of the two spins outside core/wait.c (the other is in
               strata__ready_push_single, for the same reason): it cannot be bounded (the push
               must land), it needs a popper stalled for a whole lap of 2 x the
               largest window, and it yields after 64 rounds so that popper runs. */
            if (spins > 64)
                sched_yield();
            else
                strata__cpu_relax();
            pos = strata__load_relaxed(&q->enqueue);
        } else {
            pos = strata__load_relaxed(&q->enqueue);
        }
    }
}

void strata__ready_push_single(strata__ready_queue *q, uint32_t slot)
{
    /* relaxed: only this thread writes enqueue */
    uint64_t pos = strata__load_relaxed(&q->enqueue);
    strata__ready_cell *c = &q->cells[pos & q->mask];
    /* acquire: pairs with the popper's release of this cell; it is not free only
       in the instant described in sched.h */
    for (unsigned spins = 0; strata__load_acquire(&c->seq) != (uint32_t)pos; spins++) {
        if (spins > 64)
            sched_yield();
        else
            strata__cpu_relax();
    }
    c->slot = slot;
    /* release: publishes slot and the task's arguments; pairs with the acquire
       in strata__ready_pop() */
    strata__store_release(&c->seq, (uint32_t)(pos + 1));
    /* relaxed: enqueue is only this thread's cursor; poppers follow cell.seq */
    strata__store_relaxed(&q->enqueue, pos + 1);
}

bool strata__ready_pop(strata__ready_queue *q, uint32_t *slot)
{
    uint64_t pos = strata__load_relaxed(&q->dequeue);
    for (;;) {
        strata__ready_cell *c = &q->cells[pos & q->mask];
        /* acquire: pairs with the pusher's release; makes slot visible */
        uint32_t seq = strata__load_acquire(&c->seq);
        int32_t diff = (int32_t)(seq - (uint32_t)(pos + 1));
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->dequeue, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *slot = c->slot;
                /* release: the cell is free for the pusher one lap later */
                strata__store_release(&c->seq, (uint32_t)(pos + q->mask + 1));
                return true;
            }
        } else if (diff < 0) {
            return false;
        } else {
            pos = strata__load_relaxed(&q->dequeue);
        }
    }
}

bool strata__ready_nonempty(strata__ready_queue *q)
{
    uint64_t pos = strata__load_relaxed(&q->dequeue);
    return strata__load_acquire(&q->cells[pos & q->mask].seq) == (uint32_t)(pos + 1);
}
