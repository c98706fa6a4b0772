/* Ready queues: see chip/sched.h for the protocol. */
#include "chip/sched.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/status.h"

int strata__ready_queue_init(strata__ready_queue *q, uint64_t capacity)
{
    /* seq 0 is "not yet pushed" for every cell of the first lap (pos + 1 >= 1) */
    q->cells = strata__calloc(capacity, sizeof q->cells[0]);
    if (!q->cells)
        return strata__fail(STRATA_ENOMEM, "out of host memory for a ready queue of %llu entries",
                            (unsigned long long)capacity);
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

static void publish(strata__ready_queue *q, uint64_t pos, uint32_t slot)
{
    strata__ready_cell *c = &q->cells[pos & q->mask];
    strata__store_relaxed(&c->slot, slot);   /* ordered by the release below */
    /* release: publishes slot and the task's arguments; pairs with the acquire
       in strata__ready_pop() */
    strata__store_release(&c->seq, (uint32_t)(pos + 1));
}

void strata__ready_push(strata__ready_queue *q, uint32_t slot)
{
    /* acq_rel: the claim orders this push after every earlier claim, which
       chains each cell's refill after the retirement of the task its previous
       occupant was (see sched.h); on x86 it is the same instruction */
    publish(q, atomic_fetch_add_explicit(&q->enqueue, 1, memory_order_acq_rel), slot);
}

void strata__ready_push_single(strata__ready_queue *q, uint32_t slot)
{
    /* relaxed: only this thread writes or reads enqueue */
    uint64_t pos = strata__load_relaxed(&q->enqueue);
    publish(q, pos, slot);
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
        if (diff < 0)
            return false;   /* not pushed yet: empty, or its pusher is still writing */
        if (diff == 0) {
            /* The slot is read before the claim, never after (see sched.h),
               ordered after the acquire of seq. acq_rel: the claims form one
               chain, so a popper's read comes before every later claim, and
               through them before the runs and retirements that let a
               pusher refill the cell (free on x86: the same instruction). */
            uint32_t s = strata__load_relaxed(&c->slot);
            if (atomic_compare_exchange_weak_explicit(&q->dequeue, &pos, pos + 1, memory_order_acq_rel,
                                                      memory_order_relaxed)) {
                *slot = s;
                return true;
            }
        } else {
            pos = strata__load_relaxed(&q->dequeue);   /* another popper took it */
        }
    }
}

bool strata__ready_nonempty(strata__ready_queue *q)
{
    uint64_t pos = strata__load_relaxed(&q->dequeue);
    return strata__load_acquire(&q->cells[pos & q->mask].seq) == (uint32_t)(pos + 1);
}
