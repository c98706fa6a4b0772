/* Event rings (core/recorder.h). */
#include "core/recorder.h"

#include <string.h>

#include "core/env.h"

size_t strata__rec_ring_bytes(uint32_t capacity)
{
    return sizeof(strata__rec_ring) + (size_t)capacity * sizeof(strata__rec_event);
}

void strata__rec_ring_reset(strata__rec_ring *r, uint32_t capacity)
{
    memset(r, 0, sizeof *r);
    r->capacity = capacity;
    /* release: readers that see head 0 see the capacity too */
    strata__store_release(&r->head, 0);
}

uint64_t strata__rec_oldest(const strata__rec_ring *r, uint32_t capacity)
{
    uint64_t head = strata__load_acquire(&r->head);
    return head > capacity ? head - capacity : 0;
}

uint32_t strata__rec_read(const strata__rec_ring *r, uint32_t capacity, uint64_t *cursor, strata__rec_copy *out,
                          uint32_t max, uint64_t *lost)
{
    uint32_t cap = capacity;
    if (!r || cap == 0 || (cap & (cap - 1)) != 0)
        return 0;
    /* acquire: pairs with the writer's release of head; the events below it are complete */
    uint64_t head = strata__load_acquire(&r->head);
    uint64_t from = *cursor;
    if (from > head)
        from = head;   /* the ring was reset under the reader */
    if (head - from > cap) {
        *lost += head - from - cap;
        from = head - cap;
    }
    uint32_t n = 0;
    for (; from < head && n < max; from++) {
        const strata__rec_event *e = &r->events[from & (cap - 1)];
        /* acquire (each): a field of the writer's next lap brings the head
           that allowed it, so the check below sees the lap */
        strata__rec_copy c = {.pos = from, .ts_ns = strata__load_acquire(&e->ts_ns)};
        uint64_t what = strata__load_acquire(&e->what);
        c.id = strata__load_acquire(&e->id);
        c.arg = strata__load_acquire(&e->arg);
        c.kind = (uint32_t)(what & 0xff);
        c.aux = (uint32_t)(what >> 8);
        /* the writer writes slot `from` again once head reaches from + cap */
        if (strata__load_relaxed(&r->head) - from >= cap) {
            (*lost)++;
            continue;
        }
        out[n++] = c;
    }
    *cursor = from;
    return n;
}

const char *strata__rec_kind_name(uint32_t kind)
{
    static const char *const names[STRATA__REC_KINDS] = {
        [STRATA__REC_NONE] = "none",
        [STRATA__REC_RUN_BEGIN] = "run_begin",       [STRATA__REC_RUN_END] = "run_end",
        [STRATA__REC_TASK_BEGIN] = "task_begin",     [STRATA__REC_TASK_END] = "task_end",
        [STRATA__REC_KERNEL_BEGIN] = "kernel_begin", [STRATA__REC_KERNEL_END] = "kernel_end",
        [STRATA__REC_SUBMIT] = "submit",             [STRATA__REC_POST] = "post",
        [STRATA__REC_ANSWER] = "answer",             [STRATA__REC_RELEASE] = "release",
        [STRATA__REC_WAIT_BEGIN] = "wait_begin",     [STRATA__REC_WAIT_END] = "wait_end",
        [STRATA__REC_COUNTER] = "counter",          [STRATA__REC_EDGE] = "edge",
    };
    return kind < STRATA__REC_KINDS && names[kind] ? names[kind] : "unknown";
}

size_t strata__rec_area_bytes(uint32_t nrings, uint32_t capacity)
{
    return STRATA__CACHE_LINE + (size_t)nrings * strata__rec_ring_bytes(capacity);
}

void strata__rec_area_reset(strata__rec_area *a, uint32_t nrings, uint32_t capacity)
{
    a->nrings = nrings;
    a->capacity = capacity;
    a->ring_bytes = strata__rec_ring_bytes(capacity);
    strata__store_relaxed(&a->pid, 0);
    strata__store_relaxed(&a->traced, 0);
    for (uint32_t i = 0; i < nrings; i++)
        strata__rec_ring_reset(strata__rec_area_ring(a, i), capacity);
}

strata__rec_ring *strata__rec_area_ring(const strata__rec_area *a, uint32_t i)
{
    if (!a || i >= a->nrings)
        return NULL;
    return (strata__rec_ring *)(void *)((uint8_t *)a + STRATA__CACHE_LINE + (size_t)i * a->ring_bytes);
}

strata__rec_ring *strata__rec_ring_at(const strata__rec_area *a, uint32_t nrings, uint32_t capacity, uint32_t i)
{
    if (!a || i >= nrings)
        return NULL;
    return (strata__rec_ring *)(void *)((uint8_t *)a + STRATA__CACHE_LINE + (size_t)i * strata__rec_ring_bytes(capacity));
}

int strata__rec_capacity_from_env(uint32_t *out)
{
    uint64_t v = STRATA__REC_DEFAULT_EVENTS;
    int rc = strata__env_u64("STRATA_TRACE_EVENTS", 256, 1u << 20, true, true, &v);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

_Static_assert(sizeof(strata__rec_area) <= STRATA__CACHE_LINE, "an area's header fits the line before its rings");
