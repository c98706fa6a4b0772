/* The chip engine: rings, runs, completion and retirement. See chip/engine.h. */
#include "chip/engine.h"

#include "core/recorder.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/array.h"
#include "core/env.h"
#include "core/sys.h"

/* ---- rings ---- */

static void free_rings(strata__chip *chip)
{
    free(chip->tasks);
    free(chip->bodies);
    free(chip->parts);
    chip->parts = NULL;
    chip->parts_window = 0;
    free(chip->edges);
    chip->tasks = NULL;
    chip->bodies = NULL;
    chip->edges = NULL;
    if (chip->heap_addr)
        chip->platform->mem_free(chip->dev, chip->heap_addr, chip->sizes.heap);
    chip->heap_addr = 0;
    memset(&chip->sizes, 0, sizeof chip->sizes);
}

/* Make the rings `want` big. Between runs only: no lane touches tasks, bodies or
   edges then (the queues are empty and sized for the largest window). */
static int size_rings(strata__chip *chip, const strata__ring_sizes *want)
{
    if (chip->sizes.task_window != want->task_window) {
        free(chip->tasks);
        free(chip->bodies);
        chip->tasks = aligned_alloc(STRATA__CACHE_LINE, want->task_window * sizeof chip->tasks[0]);
        chip->bodies = aligned_alloc(STRATA__CACHE_LINE, want->task_window * sizeof chip->bodies[0]);
        if (!chip->tasks || !chip->bodies) {
            free_rings(chip);
            return strata__fail(STRATA_ENOMEM, "out of host memory for a task window of %llu slots "
                                "(%zu bytes each); lower %s", (unsigned long long)want->task_window,
                                sizeof chip->tasks[0] + sizeof chip->bodies[0], chip->sources.task_window);
        }
        memset(chip->tasks, 0, want->task_window * sizeof chip->tasks[0]);
        chip->sizes.task_window = want->task_window;
        chip->mask = want->task_window - 1;
        free(chip->parts);   /* remade for this window by the next mixed submit */
        chip->parts = NULL;
        chip->parts_window = 0;
    }
    if (chip->sizes.dep_pool != want->dep_pool) {
        free(chip->edges);
        chip->edges = strata__malloc(want->dep_pool * sizeof chip->edges[0]);
        if (!chip->edges) {
            free_rings(chip);
            return strata__fail(STRATA_ENOMEM, "out of host memory for a dep_pool ring of %llu edges; "
                                "lower %s", (unsigned long long)want->dep_pool, chip->sources.dep_pool);
        }
        chip->sizes.dep_pool = want->dep_pool;
    }
    if (chip->sizes.heap != want->heap) {
        if (chip->heap_addr)
            chip->platform->mem_free(chip->dev, chip->heap_addr, chip->sizes.heap);
        chip->heap_addr = 0;
        chip->sizes.heap = 0;
        int rc = chip->platform->mem_alloc(chip->dev, want->heap, &chip->heap_addr);
        if (rc) {
            chip->heap_addr = 0;
            return strata__error_prefix(rc, "placing the %llu-byte heap ring (%s) in chip memory",
                                        (unsigned long long)want->heap, chip->sources.heap);
        }
        chip->sizes.heap = want->heap;
    }
    strata__heap_ring_reset(&chip->heap, chip->sizes.heap);
    return STRATA_OK;
}

/* Ring sizes of one run: call_config, else the chip's defaults. */
static int run_sizes(strata__chip *chip, const strata_call_config *cfg, strata__ring_sizes *out)
{
    *out = chip->defaults;
    chip->sources = (strata__ring_sources){"PTO2_RING_TASK_WINDOW", "PTO2_RING_HEAP", "PTO2_RING_DEP_POOL"};
    if (cfg->ring_task_window) {
        uint64_t v = cfg->ring_task_window;
        if (v < STRATA__WINDOW_MIN || v > STRATA__WINDOW_MAX || (v & (v - 1)))
            return strata__fail(STRATA_EINVAL, "call_config.ring_task_window is %llu; it must be a power of two "
                                "between %u and %u (0 keeps PTO2_RING_TASK_WINDOW or the default)",
                                (unsigned long long)v, STRATA__WINDOW_MIN, STRATA__WINDOW_MAX);
        out->task_window = v;
        chip->sources.task_window = "call_config.ring_task_window";
    }
    if (cfg->ring_dep_pool) {
        uint64_t v = cfg->ring_dep_pool;
        if (v < STRATA__DEP_POOL_MIN || v > STRATA__DEP_POOL_MAX)
            return strata__fail(STRATA_EINVAL, "call_config.ring_dep_pool is %llu; it must be between %u and %u "
                                "edges (0 keeps PTO2_RING_DEP_POOL or the default)",
                                (unsigned long long)v, STRATA__DEP_POOL_MIN, STRATA__DEP_POOL_MAX);
        out->dep_pool = v;
        chip->sources.dep_pool = "call_config.ring_dep_pool";
    }
    if (cfg->ring_heap) {
        uint64_t v = cfg->ring_heap;
        uint64_t lo, hi;
        chip->platform->mem_range(chip->dev, &lo, &hi);
        if (v < STRATA__HEAP_MIN || v > (hi - lo) / 2)
            return strata__fail(STRATA_EINVAL, "call_config.ring_heap is %llu; it must be between %u bytes and half "
                                "the chip memory, %llu bytes (0 keeps PTO2_RING_HEAP or the default)",
                                (unsigned long long)v, STRATA__HEAP_MIN, (unsigned long long)((hi - lo) / 2));
        out->heap = (v + STRATA__DEVICE_ALIGN - 1) & ~(uint64_t)(STRATA__DEVICE_ALIGN - 1);
        chip->sources.heap = "call_config.ring_heap";
    }
    return STRATA_OK;
}

/* ---- open / close ---- */

/* Global state: chips abandoned by close because a kernel hung (see below). */
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static strata__chip *abandoned;

int strata__chip_open(const strata__platform *platform, int device_id, uint64_t memory_bytes, void *memory,
                      uint32_t aic_cores, uint32_t aiv_cores, const strata__ring_sizes *defaults,
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
    chip->next_id = chip->retire_next = 1;   /* ids start at 1: 0 means "none" */
    chip->sources = (strata__ring_sources){"PTO2_RING_TASK_WINDOW", "PTO2_RING_HEAP", "PTO2_RING_DEP_POOL"};

    int rc = strata__tmap_init(&chip->tmap);
    if (rc) {
        free(chip);
        return rc;
    }
    rc = platform->open(device_id, memory_bytes, memory, &chip->dev);
    if (rc == STRATA_OK)
        rc = size_rings(chip, defaults);
    chip->clusters = aiv_cores == 2 * aic_cores;
    for (int t = 0; rc == STRATA_OK && t < 3; t++) {
        rc = strata__ready_queue_init(&chip->orch_queues[t], 2ull * STRATA__WINDOW_MAX);
        if (rc == STRATA_OK)
            rc = strata__ready_queue_init(&chip->lane_queues[t], 2ull * STRATA__WINDOW_MAX);
    }
    if (rc == STRATA_OK) {
        chip->hrec_cap = 64;
        chip->hrec = strata__malloc(chip->hrec_cap * sizeof chip->hrec[0]);
        chip->scopes_cap = 16;
        chip->scopes = strata__malloc(chip->scopes_cap * sizeof chip->scopes[0]);
        if (!chip->hrec || !chip->scopes)
            rc = strata__fail(STRATA_ENOMEM, "out of host memory for the heap records and scope stack of chip %d "
                              "(%zu bytes)", device_id,
                              chip->hrec_cap * sizeof chip->hrec[0] + chip->scopes_cap * sizeof chip->scopes[0]);
    }
    if (rc == STRATA_OK)
        rc = strata__lanes_start(chip);
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
    free(chip->hrec);
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

static void recycle_heap(strata__chip *chip)
{
    while (chip->hrec_head < chip->hrec_next) {
        strata__heap_record *r = &chip->hrec[chip->hrec_head & (chip->hrec_cap - 1)];
        if (!r->closed)
            break;
        strata__buffer *b = strata__tmap_buffer(&chip->tmap, r->buffer);
        if (b->last_user >= chip->retire_next)
            break;
        strata__heap_ring_release(&chip->heap, r->offset, r->nbytes, r->charged);
        strata__tmap_buffer_remove(&chip->tmap, r->buffer);
        chip->hrec_head++;
    }
}

void strata__chip_retire(strata__chip *chip)
{
    while (chip->retire_next < chip->next_id) {
        strata__task *t = &chip->tasks[chip->retire_next & chip->mask];
        /* acquire: pairs with the release of `done` in strata__chip_complete() */
        if (!strata__load_acquire(&t->done))
            break;
        chip->dep_tail = t->dep_end;
        chip->retire_next++;
    }
    recycle_heap(chip);
}

static bool oldest_done(void *arg)
{
    strata__chip *chip = arg;
    if (chip->retire_next >= chip->next_id)
        return true;
    return strata__load_acquire(&chip->tasks[chip->retire_next & chip->mask].done) != 0;
}

static int wait_progress(strata__chip *chip);

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
                                   "task %llu (func_id %d%s) has run on %s core %u of chip %d for more than its "
                                   "timeout of %llu ms; a kernel cannot be stopped at L2, so the worker is now "
                                   "FAILED and close() abandons that core thread; raise call_config.timeout_ms "
                                   "or task_timeout_ms if the kernel is just slow, or run untrusted kernels at L3",
                                   (unsigned long long)id, (int)(uint32_t)kernel, part[(kernel >> 32) & 3],
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
    strata__chip_note(chip, STRATA__REC_COUNTER, STRATA__COUNTER_TASK_WINDOW, 0, chip->next_id - chip->retire_next);
    strata__chip_note(chip, STRATA__REC_COUNTER, STRATA__COUNTER_DEP_POOL, 0, chip->dep_head - chip->dep_tail);
    strata__chip_note(chip, STRATA__REC_COUNTER, STRATA__COUNTER_HEAP, 0, chip->heap.used);
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
    strata__ring_sizes want;
    int rc = run_sizes(chip, cfg, &want);
    if (rc == STRATA_OK)
        rc = size_rings(chip, &want);
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
    chip->high_window = chip->high_dep = 0;
    chip->dep_head = chip->dep_tail = 0;
    chip->nscopes = 0;
    for (uint32_t i = 0; i < chip->nlanes; i++) {
        strata__lane *l = &chip->lanes[i];
        l->completed = l->failed = l->canceled = 0;
    }

    strata_chip_orch orch = {.chip = chip};
    chip->run_first_id = chip->next_id;
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
    /* The implicit outermost scope ends with the orchestration function. */
    for (uint64_t s = chip->hrec_head; s < chip->hrec_next; s++)
        chip->hrec[s & (chip->hrec_cap - 1)].closed = true;
    chip->nscopes = 0;

    while (chip->retire_next < chip->next_id) {
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
    out->task_window.size = chip->sizes.task_window;
    out->task_window.high_water = chip->high_window;
    out->heap.size = chip->sizes.heap;
    out->heap.high_water = chip->heap.high_water;
    out->dep_pool.size = chip->sizes.dep_pool;
    out->dep_pool.high_water = chip->high_dep;
}
