/* The chip engine: rings, runs, completion and retirement. See chip/engine.h. */
#include "chip/engine.h"

#include "core/recorder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/array.h"
#include "core/env.h"
#include "core/sys.h"

/* ---- rings ---- */

static void unplace_heap(strata__chip *chip, strata__depth_ring *r)
{
    if (r->heap_addr)
        chip->platform->mem_free(chip->dev, r->heap_addr, r->heap_placed);
    r->heap_addr = 0;
    r->heap_placed = 0;
}

static void free_rings(strata__chip *chip)
{
    free(chip->tasks);
    free(chip->bodies);
    free(chip->parts);
    free(chip->edges);
    chip->tasks = NULL;
    chip->bodies = NULL;
    chip->parts = NULL;
    chip->edges = NULL;
    chip->parts_slots = 0;
    chip->nslots = 0;
    chip->nedges = 0;
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++)
        unplace_heap(chip, &chip->ring[d]);
    memset(chip->sizes, 0, sizeof chip->sizes);
}

const char *strata__ring_name(const strata__chip *chip, uint32_t d, char *buf, size_t size)
{
    if (chip->host_graph)
        snprintf(buf, size, "scope depth 0 (runtime host_build_graph keeps every depth there)");
    else if (d + 1 == strata__rings_in_use(chip) && d + 1 < STRATA__DEPTHS)
        snprintf(buf, size, "scope depth %u and deeper (STRATA_SCOPE_RINGS is %u)", d, d + 1);
    else if (d + 1 == STRATA__DEPTHS)
        snprintf(buf, size, "scope depth %u and deeper", d);
    else
        snprintf(buf, size, "scope depth %u", d);
    return buf;
}

int strata__chip_place_heap(strata__chip *chip, strata__depth_ring *r)
{
    uint64_t size = chip->sizes[r->depth].heap;
    if (r->heap_addr && r->heap_placed == size)
        return STRATA_OK;
    unplace_heap(chip, r);
    int rc = chip->platform->mem_alloc(chip->dev, size, &r->heap_addr);
    /* another depth's heap that holds nothing (placed by an earlier run with
       other sizes) makes room: it is placed again when used */
    if (rc && strata__chip_give_back_idle_heaps(chip, 0, r)) {
        strata__clear_error();
        rc = chip->platform->mem_alloc(chip->dev, size, &r->heap_addr);
    }
    if (rc) {
        r->heap_addr = 0;
        char name[96];
        return strata__error_prefix(rc, "placing the %llu-byte heap ring of %s (%s) in chip memory, %s; lower that "
                                    "size, or free chip memory", (unsigned long long)size,
                                    strata__ring_name(chip, r->depth, name, sizeof name),
                                    strata__ring_source(chip, r->depth, STRATA__RING_HEAP),
                                    r->depth == 0 ? "for the run" : "at its first intermediate buffer");
    }
    r->heap_placed = size;
    strata__heap_ring_reset(&r->heap, size);
    return STRATA_OK;
}

bool strata__chip_give_back_idle_heaps(strata__chip *chip, uint32_t from, const strata__depth_ring *except)
{
    bool any = false;
    for (uint32_t d = from; d < STRATA__DEPTHS; d++) {
        strata__depth_ring *o = &chip->ring[d];
        if (o != except && o->heap_addr && o->hrec_head == o->hrec_next) {
            unplace_heap(chip, o);
            any = true;
        }
    }
    return any;
}

/* Make the rings `want` big (one entry per depth). Between runs only: no lane
   touches tasks, bodies or edges then (the queues are empty and sized for the
   largest windows). */
static int size_rings(strata__chip *chip, const strata__ring_sizes *want_all)
{
    /* only the rings in use get slots, edges and (at their first use) heap */
    strata__ring_sizes want[STRATA__DEPTHS];
    uint64_t slots = 0, edges = 0;
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
        want[d] = d < strata__rings_in_use(chip) ? want_all[d] : (strata__ring_sizes){0, 0, 0};
        slots += want[d].task_window;   /* at most STRATA__WINDOW_TOTAL_MAX */
        edges += want[d].dep_pool;
    }
    if (chip->nslots != slots) {
        free(chip->tasks);
        free(chip->bodies);
        free(chip->parts);   /* remade for these slots by the next mixed submit */
        chip->parts = NULL;
        chip->parts_slots = 0;
        chip->nslots = 0;
        chip->tasks = aligned_alloc(STRATA__CACHE_LINE, slots * sizeof chip->tasks[0]);
        chip->bodies = aligned_alloc(STRATA__CACHE_LINE, slots * sizeof chip->bodies[0]);
        if (!chip->tasks || !chip->bodies) {
            free_rings(chip);
            return strata__fail(STRATA_ENOMEM, "out of host memory for task windows of %llu slots in all "
                                "(%zu bytes each); lower the task_window sizes (PTO2_RING_TASK_WINDOW, "
                                "call_config.ring_task_window or its _by_depth entries) or use fewer rings "
                                "(STRATA_SCOPE_RINGS)", (unsigned long long)slots,
                                sizeof chip->tasks[0] + sizeof chip->bodies[0]);
        }
        memset(chip->tasks, 0, slots * sizeof chip->tasks[0]);
        chip->nslots = (uint32_t)slots;
    }
    if (chip->nedges != edges) {
        free(chip->edges);
        chip->nedges = 0;
        chip->edges = strata__malloc(edges * sizeof chip->edges[0]);
        if (!chip->edges) {
            free_rings(chip);
            return strata__fail(STRATA_ENOMEM, "out of host memory for dep_pool rings of %llu edges in all; "
                                "lower the dep_pool sizes (PTO2_RING_DEP_POOL, call_config.ring_dep_pool or its "
                                "_by_depth entries) or use fewer rings (STRATA_SCOPE_RINGS)",
                                (unsigned long long)edges);
        }
        chip->nedges = edges;
    }
    uint64_t base = 0, dep_base = 0;
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
        strata__depth_ring *r = &chip->ring[d];
        r->base = (uint32_t)base;
        r->window = want[d].task_window;
        r->mask = want[d].task_window ? want[d].task_window - 1 : 0;
        r->dep_base = dep_base;
        r->dep_size = want[d].dep_pool;
        base += want[d].task_window;
        dep_base += want[d].dep_pool;
        if (chip->sizes[d].heap != want[d].heap)
            unplace_heap(chip, r);   /* placed again at its first use (depth 0: below) */
        chip->sizes[d] = want[d];
    }
    int rc = strata__chip_place_heap(chip, &chip->ring[0]);
    if (rc)
        return rc;
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++)
        if (chip->ring[d].heap_addr)
            strata__heap_ring_reset(&chip->ring[d].heap, chip->sizes[d].heap);
    return STRATA_OK;
}

/* Each ring's variable and call_config field, by STRATA__RING_*. */
static const char *const ring_var[3] = {"PTO2_RING_TASK_WINDOW", "PTO2_RING_HEAP", "PTO2_RING_DEP_POOL"};
static const char *const ring_field[3] = {"ring_task_window", "ring_heap", "ring_dep_pool"};

/* Where a ring's size came from, in words (strata__ring_sources), made only
   when a message needs it: runs record a kind per ring (source_kind). */
const char *strata__ring_source(strata__chip *chip, uint32_t d, int which)
{
    static const char *const depth_name[STRATA__DEPTHS] = {"0", "1", "2", "3 and deeper"};
    strata__ring_sources *src = &chip->sources[d];
    char *out = which == STRATA__RING_WINDOW ? src->task_window : which == STRATA__RING_HEAP ? src->heap
                                                                                              : src->dep_pool;
    size_t size = sizeof src->heap;
    switch (chip->source_kind[d][which]) {
    case STRATA__SOURCE_CONFIG_DEPTH:
        snprintf(out, size, "call_config.%s_by_depth[%u]", ring_field[which], d);
        break;
    case STRATA__SOURCE_CONFIG:
        snprintf(out, size, "call_config.%s", ring_field[which]);
        break;
    case STRATA__SOURCE_ENV_LIST:
        snprintf(out, size, "%s's value for scope depth %s", ring_var[which], depth_name[d]);
        break;
    default:
        snprintf(out, size, "%s", ring_var[which]);
        break;
    }
    return out;
}

/* One call_config value for a ring (a scalar, depth -1, or a depth's entry):
   checked (0 passes: it keeps what comes next). */
static int config_value(int which, int32_t depth, uint64_t v, uint64_t min, uint64_t max)
{
    bool pow2 = which == STRATA__RING_WINDOW;
    if (v == 0 || (v >= min && v <= max && (!pow2 || (v & (v - 1)) == 0)))
        return STRATA_OK;
    char name[64], range[96], zero[64];
    if (depth < 0)
        snprintf(name, sizeof name, "call_config.%s", ring_field[which]);
    else
        snprintf(name, sizeof name, "call_config.%s_by_depth[%d]", ring_field[which], depth);
    if (which == STRATA__RING_WINDOW)
        snprintf(range, sizeof range, "a power of two between %llu and %llu", (unsigned long long)min,
                 (unsigned long long)max);
    else if (which == STRATA__RING_DEP)
        snprintf(range, sizeof range, "between %llu and %llu edges", (unsigned long long)min, (unsigned long long)max);
    else
        snprintf(range, sizeof range, "between %llu bytes and half the chip memory, %llu bytes",
                 (unsigned long long)min, (unsigned long long)max);
    if (depth < 0)
        snprintf(zero, sizeof zero, "%s or the default", ring_var[which]);
    else
        snprintf(zero, sizeof zero, "the scalar field, else the environment");
    return strata__fail(STRATA_EINVAL, "%s is %llu; it must be %s (0 keeps %s)", name, (unsigned long long)v, range,
                        zero);
}

/* Ring sizes of one run, per depth: call_config's entry for the depth, else
   its scalar, else the chip's defaults (environment, built in). */
static int run_sizes(strata__chip *chip, const strata_call_config *cfg, strata__ring_sizes *out)
{
    uint64_t lo, hi;
    chip->platform->mem_range(chip->dev, &lo, &hi);
    const uint64_t heap_max = (hi - lo) / 2;
    const uint64_t scalar[3] = {cfg->ring_task_window, cfg->ring_heap, cfg->ring_dep_pool};
    const uint64_t *by_depth[3] = {cfg->ring_task_window_by_depth, cfg->ring_heap_by_depth,
                                   cfg->ring_dep_pool_by_depth};
    const uint64_t min[3] = {STRATA__WINDOW_MIN, STRATA__HEAP_MIN, STRATA__DEP_POOL_MIN};
    const uint64_t max[3] = {STRATA__WINDOW_MAX, heap_max, STRATA__DEP_POOL_MAX};
    for (int k = 0; k < 3; k++) {
        int rc = config_value(k, -1, scalar[k], min[k], max[k]);
        for (uint32_t d = 0; rc == STRATA_OK && d < STRATA__DEPTHS; d++)
            rc = config_value(k, (int32_t)d, by_depth[k][d], min[k], max[k]);
        if (rc)
            return rc;
    }
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
        const strata__ring_sizes *def = &chip->defaults.depth[d];
        const uint64_t fallback[3] = {def->task_window, def->heap, def->dep_pool};
        uint64_t v[3];
        for (int k = 0; k < 3; k++) {
            v[k] = by_depth[k][d] ? by_depth[k][d] : scalar[k] ? scalar[k] : fallback[k];
            chip->source_kind[d][k] = by_depth[k][d] ? STRATA__SOURCE_CONFIG_DEPTH
                                      : scalar[k]    ? STRATA__SOURCE_CONFIG
                                      : chip->defaults.env_listed[k] ? STRATA__SOURCE_ENV_LIST
                                                                     : STRATA__SOURCE_ENV;
        }
        out[d] = (strata__ring_sizes){v[0], (v[1] + STRATA__DEVICE_ALIGN - 1) & ~(uint64_t)(STRATA__DEVICE_ALIGN - 1),
                                      v[2]};
    }
    return STRATA_OK;
}

/* ---- open / close ---- */

static void keep_depth_stats(strata__chip *chip);

/* Global state: chips abandoned by close because a kernel hung (see below). */
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static strata__chip *abandoned;

int strata__chip_open(const strata__platform *platform, int device_id, uint64_t memory_bytes, void *memory,
                      uint32_t aic_cores, uint32_t aiv_cores, const strata__ring_config *defaults,
                      uint32_t task_timeout_ms, strata__chip **out)
{
    strata__chip *chip = aligned_alloc(STRATA__CACHE_LINE,
                                       (sizeof *chip + STRATA__CACHE_LINE - 1) & ~(size_t)(STRATA__CACHE_LINE - 1));
    if (!chip)
        return strata__fail(STRATA_ENOMEM, "out of host memory for chip %d", device_id);
    memset(chip, 0, sizeof *chip);
    chip->platform = platform;
    chip->device_id = device_id;
    chip->ncores[STRATA_AIC] = aic_cores;
    chip->ncores[STRATA_AIV] = aiv_cores;
    chip->defaults = *defaults;
    chip->task_timeout_ms = task_timeout_ms;
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
        strata__depth_ring *r = &chip->ring[d];
        r->depth = d;
        r->next = r->retire_next = 1;   /* local ids start at 1: id 0 means "none" */
        chip->live_from[d] = STRATA__TASK_ID(d, 1);
    }
    chip->cur = &chip->ring[0];
    chip->rings_used = 1;

    int rc = strata__tmap_init(&chip->tmap);
    if (rc) {
        free(chip);
        return rc;
    }
    rc = platform->open(device_id, memory_bytes, memory, &chip->dev);
    if (rc == STRATA_OK)
        rc = size_rings(chip, defaults->depth);
    chip->clusters = aiv_cores == 2 * aic_cores;
    for (int t = 0; rc == STRATA_OK && t < 3; t++) {
        rc = strata__ready_queue_init(&chip->orch_queues[t], STRATA__WINDOW_TOTAL_MAX);   /* sched.h */
        if (rc == STRATA_OK)
            rc = strata__ready_queue_init(&chip->lane_queues[t], STRATA__WINDOW_TOTAL_MAX);
    }
    if (rc == STRATA_OK) {
        bool ok = true;
        for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
            chip->ring[d].hrec_cap = 64;
            chip->ring[d].hrec = strata__malloc(chip->ring[d].hrec_cap * sizeof chip->ring[d].hrec[0]);
            ok = ok && chip->ring[d].hrec;
        }
        chip->scopes_cap = 16;
        chip->scopes = strata__malloc(chip->scopes_cap * sizeof chip->scopes[0]);
        if (!ok || !chip->scopes)
            rc = strata__fail(STRATA_ENOMEM, "out of host memory for the heap records and scope stack of chip %d",
                              device_id);
    }
    if (rc == STRATA_OK)
        rc = strata__lanes_start(chip);
    if (rc == STRATA_OK)
        keep_depth_stats(chip);   /* the sizes, before any run */
    if (rc) {
        strata__chip_close(chip);
        return rc;
    }
    *out = chip;
    return STRATA_OK;
}

bool strata__chip_close(strata__chip *chip)
{
    if (!chip)
        return true;
    strata__lanes_stop(chip);
    if (chip->ndetached) {
        /* Deliberate leak: a lane is still inside a kernel that passed its timeout
           and may touch the rings or chip memory at any time; freeing them would
           turn a hang into memory corruption. The lane thread is detached, and the
           chip stays on a list so it is still reachable (and leak checkers agree). */
        pthread_mutex_lock(&abandoned_lock);
        chip->next_abandoned = abandoned;
        abandoned = chip;
        pthread_mutex_unlock(&abandoned_lock);
        return false;
    }
    for (int t = 0; t < 3; t++) {
        strata__ready_queue_destroy(&chip->orch_queues[t]);
        strata__ready_queue_destroy(&chip->lane_queues[t]);
    }
    if (chip->cores)
        chip->platform->cores_free(chip->cores);   /* every core joined */
    if (chip->dev) {
        free_rings(chip);
        chip->platform->close(chip->dev);
    }
    strata__tmap_destroy(&chip->tmap);
    strata__failure_reset(&chip->failure);
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++)
        free(chip->ring[d].hrec);
    free(chip->scopes);
    free(chip->lanes);
    free(chip->attached);
    free(chip->hedges);
    free(chip);
    return true;
}

/* ---- completion (lanes) ---- */

void strata__chip_make_ready(strata__chip *chip, uint32_t slot)
{
    strata_core_type core = chip->bodies[slot].core;
    strata__ready_push_single(&chip->orch_queues[core], slot);
    strata__event_notify_lazy(&chip->ready_event[core & 1]);   /* mixed (2): the AIC lanes take them */
}

uint32_t strata__chip_complete(strata__chip *chip, strata__lane *lane, uint32_t slot, int32_t status)
{
    strata__task *t = &chip->tasks[slot];
    uint32_t next = STRATA__NONE;
    t->status = status;
    /* acq_rel: release publishes status to an orchestrator that later finds
       CLOSED; acquire makes the edges pushed so far visible. */
    uint32_t e = strata__exchange_acq_rel(&t->fanout, STRATA__EDGE_CLOSED);
    while (e != STRATA__EDGE_EMPTY) {
        /* Read the edge before the decrement: once the successor can run, it may
           retire and its edges be reused. */
        uint32_t after = chip->edges[e].next, succ = chip->edges[e].succ_slot;
        strata__task *s = &chip->tasks[succ];
        if (status != STRATA_OK)
            strata__store_relaxed(&s->poisoned, 1);  /* ordered by the acq_rel below */
        if (strata__fetch_sub_acq_rel(&s->pending, 1) == 1) {
            /* acquire above: the successor's body is visible to this lane */
            strata_core_type core = chip->bodies[succ].core;
            if (next == STRATA__NONE && core == lane->core) {
                next = succ;                         /* run it next, no queue */
            } else {
                strata__ready_push(&chip->lane_queues[core], succ);
                strata__event_notify_lazy(&chip->ready_event[core & 1]);   /* mixed (2): AIC lanes */
            }
        }
        e = after;
    }
    strata__count_outcome(status, &lane->completed, &lane->canceled, &lane->failed);
    /* release: the task's completion (and the lane's counters); pairs with the
       acquire in strata__chip_retire() */
    strata__store_release(&t->done, 1);
    strata__event_notify_lazy(&chip->orch_event);
    return next;
}

/* ---- retirement (orchestrator) ---- */

/* Recycle r's oldest buffers whose scope ended and whose users all retired
   (in allocation order: the ring frees in order). */
static inline __attribute__((always_inline)) void recycle_heap(strata__chip *chip, strata__depth_ring *r)
{
    while (r->hrec_head < r->hrec_next) {
        strata__heap_record *h = &r->hrec[r->hrec_head & (r->hrec_cap - 1)];
        if (!h->closed)
            break;
        /* Its users retire in their rings' orders, not in one: the newest of
           each ring must have retired. */
        const strata__buffer *b = strata__tmap_buffer(&chip->tmap, h->buffer);
        if (!strata__retired(chip, b->last_user[0]) || !strata__retired(chip, b->last_user[1]) ||
            !strata__retired(chip, b->last_user[2]) || !strata__retired(chip, b->last_user[3]))
            break;
        strata__heap_ring_release(&r->heap, h->offset, h->nbytes, h->charged);
        strata__tmap_buffer_remove(&chip->tmap, h->buffer);
        r->hrec_head++;
    }
}

/* Retire r's finished tasks, in its own order. */
static inline __attribute__((always_inline)) void retire_ring(strata__chip *chip, strata__depth_ring *r)
{
    /* locals: the stores below would otherwise make the compiler reload them */
    uint64_t next = r->retire_next, end = r->next, dep_tail = r->dep_tail;
    const strata__task *slots = chip->tasks + r->base;
    while (next < end) {
        const strata__task *t = &slots[next & r->mask];
        /* acquire: pairs with the release of `done` in strata__chip_complete() */
        if (!strata__load_acquire(&t->done))
            break;
        dep_tail = t->dep_end;
        next++;
    }
    if (next != r->retire_next) {
        r->retire_next = next;
        r->dep_tail = dep_tail;
        chip->live_from[r->depth] = STRATA__TASK_ID(r->depth, next);
    }
}

/* The rings of depth 1 and deeper, then every ring's heap (strata__chip_retire). */
static __attribute__((noinline)) void retire_deeper(strata__chip *chip)
{
    for (uint32_t d = 1; d < chip->rings_used; d++)
        retire_ring(chip, &chip->ring[d]);
    for (uint32_t d = 0; d < chip->rings_used; d++)
        recycle_heap(chip, &chip->ring[d]);
}

void strata__chip_retire(strata__chip *chip)
{
    /* depth 0 inline and on its own: a run without scopes has only it */
    retire_ring(chip, &chip->ring[0]);
    if (__builtin_expect(chip->rings_used > 1, 0)) {
        retire_deeper(chip);
        return;
    }
    recycle_heap(chip, &chip->ring[0]);
}

/* Some ring's oldest task has finished (or none is left). */
static bool oldest_done(void *arg)
{
    strata__chip *chip = arg;
    if (chip->await_word && strata__load_acquire(chip->await_word) == chip->await_value)
        return true;
    bool any = false;
    for (uint32_t d = 0; d < chip->rings_used; d++) {
        const strata__depth_ring *r = &chip->ring[d];
        if (r->retire_next >= r->next)
            continue;
        any = true;
        if (strata__load_acquire(&chip->tasks[r->base + (r->retire_next & r->mask)].done))
            return true;
    }
    return !any;
}

static int wait_progress(strata__chip *chip);

int strata__chip_wait_for(strata__chip *chip, _Atomic uint32_t *word, uint32_t value)
{
    chip->await_word = word;
    chip->await_value = value;
    int rc = strata__chip_wait_progress(chip);
    chip->await_word = NULL;
    return rc;
}

/* A task running longer than the run's timeout makes the chip hung. */
static int check_timeouts(strata__chip *chip)
{
    uint64_t now = strata__now_ns(), limit = chip->run_timeout_ms * 1000000ull;
    for (uint32_t i = 0; i < chip->nlanes; i++) {
        strata__lane *l = &chip->lanes[i];
        uint64_t id = strata__load_acquire(&l->running_id);
        uint64_t since = strata__load_relaxed(&l->started_ns);
        if (id == 0 || since == 0 || now < since || now - since <= limit)
            continue;
        uint64_t kernel = strata__load_relaxed(&l->running_kernel);
        if (strata__load_relaxed(&l->running_id) != id)
            continue;   /* it finished meanwhile */
        chip->hung = true;
        static const char *const part[4] = {"", ", the AIC part of a mixed task", ", the AIV0 part of a mixed task",
                                            ", the AIV1 part of a mixed task"};
        return strata__failure_set(&chip->failure, STRATA_ETIMEDOUT,
                                   "task %u (func_id %d%s) has run on %s core %u of chip %d for more than its "
                                   "timeout of %llu ms; a kernel cannot be stopped at L2, so the worker is now "
                                   "FAILED and close() abandons that core thread; raise call_config.timeout_ms "
                                   "or task_timeout_ms if the kernel is just slow, or run untrusted kernels at L3",
                                   chip->tasks[strata__slot_of(chip, id)].number, (int)(uint32_t)kernel,
                                   part[(kernel >> 32) & 3],
                                   strata__core_name(l->core), l->index, chip->device_id,
                                   (unsigned long long)chip->run_timeout_ms);
    }
    return STRATA_OK;
}

void strata__chip_note(strata__chip *chip, uint32_t kind, uint32_t aux, uint64_t id, uint64_t arg)
{
    strata__rec_ring *ring = strata__rec_area_ring(chip->rec, 0);
    if (ring)
        strata__rec_write(ring, strata__now_ns(), kind, aux, id, arg);
}

void strata__chip_drain_hook(strata__chip *chip)
{
    if (chip->on_wait && (chip->run_watch & STRATA__WATCH_TRACED)) {
        uint64_t now = strata__now_ns();
        if (now - chip->waited_ns >= 250000u) {   /* at most every 0.25 ms */
            chip->waited_ns = now;
            chip->on_wait(chip->on_wait_ctx);
        }
    }
}

void strata__chip_note_counters(strata__chip *chip)
{
    uint64_t window = 0, dep = 0, heap = 0;   /* every depth's rings together */
    for (uint32_t d = 0; d < chip->rings_used; d++) {
        const strata__depth_ring *r = &chip->ring[d];
        window += r->next - r->retire_next;
        dep += r->dep_head - r->dep_tail;
        heap += r->heap.used;
    }
    strata__chip_note(chip, STRATA__REC_COUNTER, STRATA__COUNTER_TASK_WINDOW, 0, window);
    strata__chip_note(chip, STRATA__REC_COUNTER, STRATA__COUNTER_DEP_POOL, 0, dep);
    strata__chip_note(chip, STRATA__REC_COUNTER, STRATA__COUNTER_HEAP, 0, heap);
    uint64_t ready = 0;
    for (int t = 0; t < 3; t++)
        ready += strata__ready_depth(&chip->orch_queues[t]) + strata__ready_depth(&chip->lane_queues[t]);
    strata__chip_note(chip, STRATA__REC_COUNTER, STRATA__COUNTER_READY, 0, ready);
}

int strata__chip_wait_progress(strata__chip *chip)
{
    if (chip->hung)
        return STRATA_ETIMEDOUT;
    /* relaxed (both): a hint to lanes holding off (lane.c); the orchestrator
       stops submitting while it waits */
    uint32_t streaming = strata__load_relaxed(&chip->streaming);
    strata__store_relaxed(&chip->streaming, 0);
    strata__chip_drain_hook(chip);
    int rc = wait_progress(chip);
    strata__store_relaxed(&chip->streaming, streaming);
    return rc;
}

static int wait_progress(strata__chip *chip)
{
    for (;;) {
        uint64_t deadline = 0;
        if (chip->run_timeout_ms) {
            uint64_t step_ms = chip->run_timeout_ms < 50 ? chip->run_timeout_ms : 50;
            deadline = strata__now_ns() + step_ms * 1000000ull;
        }
        bool progressed = strata__event_wait(&chip->orch_event, oldest_done, chip, deadline);
        strata__chip_retire(chip);
        if (chip->run_timeout_ms && check_timeouts(chip))
            return STRATA_ETIMEDOUT;
        if (progressed)
            return STRATA_OK;
    }
}

/* ---- runs ---- */

int strata__chip_run(strata__chip *chip, const strata__callable *c, const strata_task_args *args,
                     const strata_call_config *cfg)
{
    static const strata_call_config zero_cfg;
    if (cfg == NULL)
        cfg = &zero_cfg;
    strata__ring_sizes want[STRATA__DEPTHS];
    int rc = run_sizes(chip, cfg, want);
    if (rc == STRATA_OK)
        rc = size_rings(chip, want);
    if (rc)
        return rc;

    strata__failure_reset(&chip->failure);
    chip->callable = c;
    chip->run_timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : chip->task_timeout_ms;
    chip->run_watch = (chip->run_timeout_ms ? STRATA__WATCH_TIMED : 0) |
                      (strata__rec_traced(chip->rec) ? STRATA__WATCH_TRACED : 0);
    chip->launch = chip->run_watch ? strata__lane_watched_launch : chip->platform->launch;
    chip->orch_special = (chip->run_watch & STRATA__WATCH_TRACED ? STRATA__SPECIAL_TRACED : 0) |
                         (chip->host_graph ? STRATA__SPECIAL_HOST_GRAPH : 0);
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
        strata__depth_ring *r = &chip->ring[d];
        r->high_window = r->high_dep = 0;
        r->dep_head = r->dep_tail = 0;
    }
    chip->cur = &chip->ring[0];
    chip->rings_used = 1;
    chip->nscopes = 0;
    for (uint32_t i = 0; i < chip->nlanes; i++) {
        strata__lane *l = &chip->lanes[i];
        l->completed = l->failed = l->canceled = 0;
    }

    strata_chip_orch orch = {.chip = chip};
    chip->run_first_seq = chip->seq;
    chip->run_first_local = chip->ring[0].next;
    chip->nhedges = 0;
    strata__store_relaxed(&chip->streaming, 1);
    int orc = c->orch(&orch, args, cfg);
    strata__store_relaxed(&chip->streaming, 0);
    if (chip->host_graph)
        strata__chip_host_graph_start(chip, orc);
    if (orc != 0) {
        if (orc < 0 && strata__is_status(orc))
            strata__failure_set(&chip->failure, orc, "the orchestration function of chip callable '%s' "
                                "returned %d (%s)", c->name, orc, strata_status_name(orc));
        else
            strata__failure_set(&chip->failure, STRATA_ETASK, "the orchestration function of chip callable "
                                "'%s' returned %d; it must return 0 or a negative strata_status", c->name, orc);
    }
    /* The implicit outermost scope ends with the orchestration function, and
       with it every scope left open. */
    for (uint32_t d = 0; d < chip->rings_used; d++) {
        strata__depth_ring *r = &chip->ring[d];
        for (uint64_t s = r->hrec_head; s < r->hrec_next; s++)
            r->hrec[s & (r->hrec_cap - 1)].closed = true;
    }
    chip->nscopes = 0;
    chip->cur = &chip->ring[0];

    while (!strata__chip_all_retired(chip)) {
        if (strata__chip_wait_progress(chip))
            break;   /* hung: the failure record says which task */
    }
    if (!chip->hung) {
        strata__chip_retire(chip);
        for (uint32_t i = 0; i < chip->nlanes; i++) {
            strata__lane *l = &chip->lanes[i];
            chip->stat_completed += l->completed;
            chip->stat_failed += l->failed;
            chip->stat_canceled += l->canceled;
        }
    }
    if (!chip->hung)
        chip->callable = NULL;   /* a hung lane may still name it in a message */
    keep_depth_stats(chip);
    rc = strata__failure_raise(&chip->failure);
    if (rc == STRATA_OK)
        strata__clear_error();   /* a call the orchestration function recovered from */
    return rc;
}

/* ---- buffers of a node task ---- */

int strata__chip_attach_args(strata__chip *chip, const strata_task_args *args)
{
    for (uint32_t i = 0; args && i < args->ntensors; i++) {
        const strata_tensor *t = &args->tensors[i];
        uint32_t index = strata__tmap_buffer_find(&chip->tmap, t->addr);
        if (index != STRATA__NONE) {
            strata__buffer *b = strata__tmap_buffer(&chip->tmap, index);
            if (b->kind == STRATA__BUFFER_EXTERNAL && t->nbytes > b->nbytes)
                b->nbytes = t->nbytes;
            continue;
        }
        int rc = STRATA__RESERVE(chip->attached, chip->nattached, chip->attached_cap, 16, "a chip's attached buffers");
        if (rc)
            return rc;
        rc = strata__tmap_buffer_add(&chip->tmap, t->addr, t->nbytes, STRATA__BUFFER_EXTERNAL, &index);
        if (rc)
            return rc;
        chip->attached[chip->nattached++] = index;
    }
    return STRATA_OK;
}

void strata__chip_detach_all(strata__chip *chip)
{
    for (uint32_t i = 0; i < chip->nattached; i++)
        strata__tmap_buffer_remove(&chip->tmap, chip->attached[i]);
    chip->nattached = 0;
}

/* ---- chip memory ---- */

int strata__chip_malloc(strata__chip *chip, uint64_t nbytes, uint64_t *addr)
{
    if (nbytes == 0)
        return strata__fail(STRATA_EINVAL, "strata_worker_malloc: nbytes is 0; ask for at least 1 byte");
    int rc = chip->platform->mem_alloc(chip->dev, nbytes, addr);
    if (rc && strata__chip_give_back_idle_heaps(chip, 1, NULL)) {
        /* the heaps of deeper scopes stay placed between runs, holding
           nothing: the program's own buffers come first */
        strata__clear_error();
        rc = chip->platform->mem_alloc(chip->dev, nbytes, addr);
    }
    if (rc)
        return rc;
    uint32_t index;
    rc = strata__tmap_buffer_add(&chip->tmap, *addr, nbytes, STRATA__BUFFER_USER, &index);
    if (rc) {
        chip->platform->mem_free(chip->dev, *addr, nbytes);
        return rc;
    }
    return STRATA_OK;
}

static int find_user_buffer(strata__chip *chip, uint64_t addr, const char *call, strata__buffer **out)
{
    uint32_t index = strata__tmap_buffer_find(&chip->tmap, addr);
    if (index == STRATA__NONE || strata__tmap_buffer(&chip->tmap, index)->kind != STRATA__BUFFER_USER)
        return strata__fail(STRATA_ENOENT, "%s: no live buffer from strata_worker_malloc starts at 0x%llx on chip %d "
                            "(already freed, or not the base address?)", call, (unsigned long long)addr,
                            chip->device_id);
    *out = strata__tmap_buffer(&chip->tmap, index);
    return STRATA_OK;
}

int strata__chip_free(strata__chip *chip, uint64_t addr)
{
    strata__buffer *b = NULL;
    int rc = find_user_buffer(chip, addr, "strata_worker_free", &b);
    if (rc)
        return rc;
    chip->platform->mem_free(chip->dev, b->addr, b->nbytes);
    strata__tmap_buffer_remove(&chip->tmap, strata__tmap_buffer_find(&chip->tmap, addr));
    return STRATA_OK;
}

int strata__chip_copy(strata__chip *chip, uint64_t addr, uint64_t offset, void *host, uint64_t nbytes,
                      bool to_device)
{
    const char *call = to_device ? "strata_worker_copy_to" : "strata_worker_copy_from";
    strata__buffer *b = NULL;
    int rc = find_user_buffer(chip, addr, call, &b);
    if (rc)
        return rc;
    if (nbytes && host == NULL)
        return strata__fail(STRATA_EINVAL, "%s: the host pointer is NULL", call);
    if (offset > b->nbytes || nbytes > b->nbytes - offset)
        return strata__fail(STRATA_EINVAL, "%s: bytes [%llu, %llu) lie outside the %llu-byte buffer at 0x%llx",
                            call, (unsigned long long)offset, (unsigned long long)(offset + nbytes),
                            (unsigned long long)b->nbytes, (unsigned long long)addr);
    rc = to_device ? chip->platform->copy_to(chip->dev, addr + offset, host, nbytes)
                   : chip->platform->copy_from(chip->dev, host, addr + offset, nbytes);
    return rc ? strata__error_prefix(rc, "%s", call) : STRATA_OK;
}

void strata__chip_stats(const strata__chip *chip, strata_run_stats *out)
{
    memset(out, 0, sizeof *out);
    out->tasks_completed = chip->stat_completed;
    out->tasks_failed = chip->stat_failed;
    out->tasks_canceled = chip->stat_canceled;
    /* Each ring's figures: the depth nearest full (the largest share of its
       size held at once), so a single figure still says what to raise. */
    for (uint32_t d = 0; d < strata__rings_in_use(chip); d++) {
        strata_ring_stats by[3];
        strata__chip_depth_stats(chip, d, by);
        strata_ring_stats *o[3] = {&out->task_window, &out->heap, &out->dep_pool};
        for (int k = 0; k < 3; k++)
            if (d == 0 || (by[k].size && o[k]->size &&
                           (double)by[k].high_water / (double)by[k].size >
                               (double)o[k]->high_water / (double)o[k]->size))
                *o[k] = by[k];
    }
}

/* The run's rings, kept when it ends: a later strata_worker_malloc may give
   a deeper heap back, and its figures with it. */
static void keep_depth_stats(strata__chip *chip)
{
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
        const strata__depth_ring *r = &chip->ring[d];
        chip->last_rings[d][0] = (strata_ring_stats){chip->sizes[d].task_window, r->high_window};
        chip->last_rings[d][1] = (strata_ring_stats){chip->sizes[d].heap, r->heap_addr ? r->heap.high_water : 0};
        chip->last_rings[d][2] = (strata_ring_stats){chip->sizes[d].dep_pool, r->high_dep};
    }
}

void strata__chip_depth_stats(const strata__chip *chip, uint32_t depth, strata_ring_stats out[3])
{
    for (int k = 0; k < 3; k++)
        out[k] = chip->last_rings[depth][k];
}
