/* Workers: the state machine and the public entry points.
 *
 * Level 2 drives one chip engine in this process (chip/engine.h); level 3 drives
 * the node engine, whose chips and SUB workers are child processes
 * (node/node.h). The state machine is the same for both:
 *
 *   NEW -init-> INITIALIZING -> READY <-run-> RUNNING;  READY, RUNNING -> FAILED;
 *   every state but RUNNING -close-> CLOSED.
 *
 * RUNNING becomes FAILED when a task passes its timeout at L2 (a kernel cannot
 * be stopped) or a child dies under STRATA_ON_DEATH_FAIL at L3.
 *
 * Which call each state admits is one table, `admission` below, that every
 * public entry point consults through admit() before it touches anything, as
 * s6-supervise does with its state x event table: so "in FAILED every call but
 * close and destroy returns STRATA_EFAILED" holds by construction. Before the
 * table, admit() checks the process: a worker belongs to the process that
 * created it. In a fork of the application, or in one of the worker's own
 * children (a SUB function or exit handler holding the parent's pointer), every
 * call returns STRATA_ESTATE and touches nothing shared; close and destroy
 * there release only that process's own copies (node/lifecycle.c). */
#include "strata/strata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chip/engine.h"
#include "core/alloc.h"
#include "core/array.h"
#include "core/env.h"
#include "core/log.h"
#include "core/trace.h"
#include "node/record.h"
#include "core/status.h"
#include "core/sys.h"
#include "node/transport.h"

const char *strata_version_string(void)
{
    return "0.1.0";
}

struct strata_worker {
    strata_worker_config cfg;          /* copied; strings below owned */
    char                *platform_name;
    char                *runtime_name;
    int                 *device_ids;
    const strata__platform *platform;
    strata__ring_config  rings;        /* from the environment at create, or defaults */
    strata_state         state;
    strata__callable   **callables;    /* handle h is callables[h - 1]; each owned */
    uint32_t             ncallables, callables_cap;
    strata__chip        *chip;         /* L2: READY, RUNNING, FAILED */
    strata__node        *node;         /* L3: from create to destroy */
    strata__chip_record *chip_rec;     /* L2: the chip's events (node/record.h) */
    strata_run_stats     last_stats;   /* kept across close */
    uint64_t             last_wall_ns; /* the last run's wall time (strata_worker_run_info) */
    pid_t                owner_pid;    /* the process that created it */
    strata_worker       *added_to;     /* the worker above that owns it (strata_worker_add_worker), or NULL */
    bool                 destroy_pending; /* destroy was called inside a run: done when the run returns */
};

static const char *state_name(strata_state s)
{
    switch (s) {
    case STRATA_STATE_NEW: return "NEW";
    case STRATA_STATE_INITIALIZING: return "INITIALIZING";
    case STRATA_STATE_READY: return "READY";
    case STRATA_STATE_RUNNING: return "RUNNING";
    case STRATA_STATE_FAILED: return "FAILED";
    case STRATA_STATE_CLOSED: return "CLOSED";
    }
    return "invalid";
}

/* " (chip 3)" for a chip worker, "" for a node worker. */
static const char *where(const strata_worker *w)
{
    static _Thread_local char buf[32];
    if (w->node)
        return "";
    snprintf(buf, sizeof buf, " (chip %d)", w->cfg.device_id);
    return buf;
}

/* The public calls, grouped by what they need from the state. */
typedef enum call_kind {
    CALL_INIT,         /* strata_worker_init */
    CALL_REGISTER,     /* strata_worker_register_* */
    CALL_RUN,          /* strata_worker_run, strata_worker_run_chip */
    CALL_CHIP_MEMORY,  /* strata_worker_malloc, _free, _copy_to, _copy_from */
    CALL_HOST_MEMORY,  /* strata_worker_host_alloc, _host_free */
    CALL_CHILDREN,     /* strata_worker_child_pid: reads, needs children */
    CALL_STATS,        /* strata_worker_stats: reads */
    CALL_CLOSE,        /* strata_worker_close, strata_worker_destroy */
    NCALL_KINDS
} call_kind;

typedef enum verdict { ADMIT, REFUSE_STATE, REFUSE_FAILED } verdict;

/* state x call: what the call does in that state. */
static const unsigned char admission[STRATA_STATE_CLOSED + 1][NCALL_KINDS] = {
    /*                           init           register       run            chip memory    host memory    children       stats  close */
    [STRATA_STATE_NEW]          = {ADMIT,        ADMIT,         REFUSE_STATE,  REFUSE_STATE,  ADMIT,         REFUSE_STATE,  ADMIT, ADMIT},
    [STRATA_STATE_INITIALIZING] = {REFUSE_STATE, REFUSE_STATE,  REFUSE_STATE,  REFUSE_STATE,  ADMIT,         REFUSE_STATE,  ADMIT, REFUSE_STATE},
    [STRATA_STATE_READY]        = {REFUSE_STATE, ADMIT,         ADMIT,         ADMIT,         ADMIT,         ADMIT,         ADMIT, ADMIT},
    [STRATA_STATE_RUNNING]      = {REFUSE_STATE, REFUSE_STATE,  REFUSE_STATE,  REFUSE_STATE,  ADMIT,         ADMIT,         ADMIT, REFUSE_STATE},
    [STRATA_STATE_FAILED]       = {REFUSE_FAILED, REFUSE_FAILED, REFUSE_FAILED, REFUSE_FAILED, REFUSE_FAILED, ADMIT,        ADMIT, ADMIT},
    [STRATA_STATE_CLOSED]       = {REFUSE_STATE, REFUSE_STATE,  REFUSE_STATE,  REFUSE_STATE,  REFUSE_STATE,  REFUSE_STATE,  ADMIT, ADMIT},
};

/* Whether this process is the one that created w, or the worker child that
   runs it for the worker above (node/worker_child.c). */
static bool owned_here(const strata_worker *w)
{
    return w->owner_pid == strata__self_pid() || (w->node && strata__node_taken_over_here(w->node));
}

/* The worker above that owns w, or NULL: none at the top, and none in the
   worker child that runs w (node/worker_child.c), where w is that process's. */
static const strata_worker *owner_above(const strata_worker *w)
{
    return w->added_to && !strata__node_taken_over_here(w->node) ? w->added_to : NULL;
}

/* Whether `call` may run on w now: STRATA_OK, or the status and message that
   refuse it. */
static int admit(const strata_worker *w, call_kind call, const char *name)
{
    if (!owned_here(w))
        return strata__fail(STRATA_ESTATE, "%s: this level-%d worker%s belongs to process %d, and this is process %d "
                            "(a fork of that process, or one of the worker's own children); a worker can be used "
                            "only by the process that created it: create a new one here", name, w->cfg.level,
                            where(w), (int)w->owner_pid, (int)getpid());
    if (owner_above(w)) {
        const strata_worker *up = w->added_to, *top = up;
        while (top->added_to)
            top = top->added_to;
        if (call == CALL_STATS)
            return STRATA_OK;
        /* until the top of its tree starts, the configuration goes on */
        if ((call == CALL_REGISTER || call == CALL_HOST_MEMORY) && top->state == STRATA_STATE_NEW)
            return STRATA_OK;
        return strata__fail(STRATA_ESTATE, "%s: this level-%d worker was added to a level-%d worker, which owns it: "
                            "%s", name, w->cfg.level, up->cfg.level,
                            call == CALL_INIT    ? "that worker's init starts it, in a child process of its own"
                            : call == CALL_CLOSE ? "it closes with that worker"
                            : call == CALL_REGISTER || call == CALL_HOST_MEMORY
                                ? "that worker is initialised, so its child process has started from the worker "
                                  "as it was; do this before that worker's init"
                                : "it runs in a child process of that worker; submit to it from that worker's "
                                  "orchestration functions");
    }
    verdict v = (verdict)admission[w->state][call];
    if (v == ADMIT)
        return STRATA_OK;
    if (v == REFUSE_FAILED)
        return strata__fail(STRATA_EFAILED, "%s: level-%d worker%s is FAILED after an earlier failure (%s); close "
                            "and destroy it, then create a new one", name, w->cfg.level, where(w),
                            w->node ? "a child died under policy STRATA_ON_DEATH_FAIL" : "a task passed its timeout");
    const char *hint = w->state == STRATA_STATE_NEW      ? "call strata_worker_init first"
                       : w->state == STRATA_STATE_CLOSED  ? "the worker is closed; create a new one"
                       : w->state == STRATA_STATE_RUNNING ? "a run is in progress on this worker; call it after "
                                                             "the run returns"
                       : w->state == STRATA_STATE_READY   ? "it is initialised already"
                                                           : "wait for init to finish";
    return strata__fail(STRATA_ESTATE, "%s: level-%d worker%s is %s; %s", name, w->cfg.level, where(w),
                        state_name(w->state), hint);
}

void strata_worker_config_init(strata_worker_config *cfg, int level)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->level = level;
    cfg->platform = "sim";
    cfg->runtime = "tensormap_and_ringbuffer";
    cfg->on_child_death = STRATA_ON_DEATH_RESTART;
    cfg->init_timeout_ms = 10000;
    cfg->close_grace_ms = 1000;
    cfg->shared_heap_bytes = 256ull << 20;
    cfg->device_memory_bytes = 1ull << 30;
    cfg->aic_cores = 1;
    cfg->aiv_cores = 1;
    cfg->node_task_window = 4096;
}

static int check_config(const strata_worker_config *cfg)
{
    if (cfg->level < 2 || cfg->level > 6)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: level is %d; it must be 2 (chip) to 6", cfg->level);
    if (cfg->level > 3 && cfg->ndevices)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: ndevices is %u; a level-%d worker's children are "
                            "level-%d workers (strata_worker_add_worker) and SUB workers, and chips belong to level 3",
                            cfg->ndevices, cfg->level, cfg->level - 1);
    if (cfg->platform == NULL || strata__platform_find(cfg->platform) == NULL)
        return strata__fail(STRATA_ENOENT, "strata_worker_create: platform '%s' is not built in; available: sim",
                            cfg->platform ? cfg->platform : "(null)");
    if (cfg->runtime == NULL ||
        (strcmp(cfg->runtime, "tensormap_and_ringbuffer") != 0 && strcmp(cfg->runtime, "host_build_graph") != 0))
        return strata__fail(STRATA_ENOENT, "strata_worker_create: runtime '%s' is not built in; available: "
                            "tensormap_and_ringbuffer, host_build_graph", cfg->runtime ? cfg->runtime : "(null)");
    if (cfg->device_id < 0)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: device_id is %d; it must be >= 0", cfg->device_id);
    if (cfg->aic_cores < 1 || cfg->aic_cores > STRATA__MAX_CORES || cfg->aiv_cores < 1 ||
        cfg->aiv_cores > STRATA__MAX_CORES)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: aic_cores is %u and aiv_cores is %u; each must "
                            "be 1..%u (strata_worker_config_init sets 1 and 1)", cfg->aic_cores, cfg->aiv_cores,
                            STRATA__MAX_CORES);
    if (cfg->device_memory_bytes < 4096)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: device_memory_bytes is %llu; it must be at least "
                            "4096", (unsigned long long)cfg->device_memory_bytes);
    if (cfg->ndevices && cfg->device_ids == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: ndevices is %u but device_ids is NULL",
                            cfg->ndevices);
    if (cfg->level >= 3) {
        if (cfg->ndevices + (uint64_t)cfg->num_sub_workers > 255)
            return strata__fail(STRATA_EINVAL, "strata_worker_create: %u chips and %u SUB workers; a level-%d worker "
                                "has at most 255 children", cfg->ndevices, cfg->num_sub_workers, cfg->level);
        for (uint32_t i = 0; i < cfg->ndevices; i++)
            if (cfg->device_ids[i] < 0)
                return strata__fail(STRATA_EINVAL, "strata_worker_create: device_ids[%u] is %d; it must be >= 0", i,
                                    cfg->device_ids[i]);
        if (cfg->shared_heap_bytes < 4096)
            return strata__fail(STRATA_EINVAL, "strata_worker_create: shared_heap_bytes is %llu; it must be at least "
                                "4096", (unsigned long long)cfg->shared_heap_bytes);
        if (cfg->init_timeout_ms == 0)
            return strata__fail(STRATA_EINVAL, "strata_worker_create: init_timeout_ms is 0; it must be at least 1");
        uint32_t win = cfg->node_task_window;
        if (win != 0 && (win < 16 || win > (1u << 20) || (win & (win - 1)) != 0))
            return strata__fail(STRATA_EINVAL, "strata_worker_create: node_task_window is %u; it must be a power of two "
                                "from 16 to 1048576 (strata_worker_config_init sets 4096)", win);
    }
    return STRATA_OK;
}

/* Ring sizes of every scope depth: built-in defaults, then PTO2_RING_* from
   the environment (one value for every depth, or four). */
static int read_ring_env(uint64_t memory_bytes, strata__ring_config *r)
{
    uint64_t window[STRATA__DEPTHS], heap[STRATA__DEPTHS], dep[STRATA__DEPTHS];
    /* Heaps by default: depth 0's at most half the chip memory, each deeper
       one's at most an eighth, so that all four leave room for the program's
       own buffers (a deeper heap is placed only when its depth first
       allocates). */
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
        uint64_t cap = d == 0 ? memory_bytes / 2 : memory_bytes / 8;
        window[d] = STRATA__DEFAULT_WINDOW;
        dep[d] = STRATA__DEFAULT_DEP_POOL;
        heap[d] = (STRATA__DEFAULT_HEAP < cap ? STRATA__DEFAULT_HEAP : cap) & ~(uint64_t)(STRATA__DEVICE_ALIGN - 1);
        if (heap[d] < STRATA__HEAP_MIN)
            heap[d] = STRATA__HEAP_MIN;
    }
    static const char *const depth[STRATA__DEPTHS] = {"scope depth 0", "scope depth 1", "scope depth 2",
                                                      "scope depth 3 and deeper"};
    int rc = strata__env_u64_list("PTO2_RING_TASK_WINDOW", STRATA__WINDOW_MIN, STRATA__WINDOW_MAX, true, false,
                                  window, STRATA__DEPTHS, depth, &r->env_listed[0]);
    if (rc == STRATA_OK)
        rc = strata__env_u64_list("PTO2_RING_HEAP", STRATA__HEAP_MIN, memory_bytes / 2, false, true, heap,
                                  STRATA__DEPTHS, depth, &r->env_listed[1]);
    if (rc == STRATA_OK)
        rc = strata__env_u64_list("PTO2_RING_DEP_POOL", STRATA__DEP_POOL_MIN, STRATA__DEP_POOL_MAX, false, true,
                                  dep, STRATA__DEPTHS, depth, &r->env_listed[2]);
    uint64_t scope_rings = STRATA__DEPTHS;
    if (rc == STRATA_OK)
        rc = strata__env_u64("STRATA_SCOPE_RINGS", 1, STRATA__DEPTHS, false, false, &scope_rings);
    r->scope_rings = (uint32_t)scope_rings;
    if (rc)
        return strata__error_prefix(rc, "strata_worker_create");
    for (uint32_t d = 0; d < STRATA__DEPTHS; d++)
        r->depth[d] = (strata__ring_sizes){window[d], (heap[d] + STRATA__DEVICE_ALIGN - 1) &
                                                      ~(uint64_t)(STRATA__DEVICE_ALIGN - 1), dep[d]};
    return STRATA_OK;
}

static void free_worker(strata_worker *w)
{
    /* The workers added below it, once its children (which ran them) are gone:
       here they were never initialised, and only their heaps are released. */
    if (w->node) {
        strata__node_close(w->node);
        for (uint32_t i = 0; i < w->node->nadded; i++)
            if (w->node->added[i].worker)   /* NULL: a remote worker, its rank's own */
                free_worker(w->node->added[i].worker);
    }
    strata__node_destroy(w->node);
    for (uint32_t i = 0; i < w->ncallables; i++) {
        strata__callable_free(w->callables[i]);
        free(w->callables[i]);
    }
    free(w->callables);
    free(w->platform_name);
    free(w->runtime_name);
    free(w->device_ids);
    free(w);
}

int strata_worker_create(const strata_worker_config *cfg, strata_worker **out)
{
    strata__clear_error();
    if (cfg == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: %s is NULL", cfg == NULL ? "cfg" : "out");
    *out = NULL;
    int rc = check_config(cfg);
    if (rc == STRATA_OK)
        rc = strata__log_configure();
    if (rc == STRATA_OK)
        rc = strata__trace_from_env();   /* STRATA_TRACE: once per process */
    if (rc)
        return strata__error_prefix(rc, "strata_worker_create");
    strata_worker *w = strata__calloc(1, sizeof *w);
    if (w == NULL)
        return strata__fail(STRATA_ENOMEM, "strata_worker_create: out of host memory");
    w->cfg = *cfg;
    w->platform_name = strata__strdup(cfg->platform);
    w->runtime_name = strata__strdup(cfg->runtime);
    if (cfg->ndevices) {
        w->device_ids = strata__malloc(cfg->ndevices * sizeof w->device_ids[0]);
        if (w->device_ids)
            memcpy(w->device_ids, cfg->device_ids, cfg->ndevices * sizeof w->device_ids[0]);
    }
    if (!w->platform_name || !w->runtime_name || (cfg->ndevices && !w->device_ids)) {
        free_worker(w);
        return strata__fail(STRATA_ENOMEM, "strata_worker_create: out of host memory");
    }
    w->cfg.platform = w->platform_name;
    w->cfg.runtime = w->runtime_name;
    w->cfg.device_ids = w->device_ids;
    if (w->cfg.node_task_window == 0)
        w->cfg.node_task_window = 4096;   /* 0 means the default, as for the other sizes */
    w->platform = strata__platform_find(w->platform_name);
    /* A chip child's L2 chip has the lower half of its chip memory (node/node.h). */
    rc = read_ring_env(w->cfg.level == 2 ? w->cfg.device_memory_bytes : w->cfg.device_memory_bytes / 2, &w->rings);
    if (rc == STRATA_OK && w->cfg.level >= 3) {
        rc = strata__node_create(&w->cfg, &w->node);
        if (rc == STRATA_OK)
            w->node->chip_rings = w->rings;
    }
    if (rc) {
        free_worker(w);
        return rc;
    }
    w->state = STRATA_STATE_NEW;
    w->owner_pid = getpid();
    *out = w;
    return STRATA_OK;
}

/* A chip callable's name by its handle (the L2 trace's names). */
static const char *chip_name(void *ctx, uint32_t handle)
{
    const strata_worker *w = ctx;
    return handle >= 1 && handle <= w->ncallables ? w->callables[handle - 1]->name : NULL;
}

int strata_worker_init(strata_worker *w)
{
    strata__clear_error();
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_init: w is NULL");
    int arc = admit(w, CALL_INIT, "strata_worker_init");
    if (arc)
        return arc;
    w->state = STRATA_STATE_INITIALIZING;
    if (w->node) {
        int rc = strata__node_init(w->node);
        w->state = rc ? STRATA_STATE_NEW : STRATA_STATE_READY;
        return rc ? strata__error_prefix(rc, "strata_worker_init of a level-%d worker", w->cfg.level) : STRATA_OK;
    }
    int rc = strata__chip_open(w->platform, w->cfg.device_id, w->cfg.device_memory_bytes, NULL, w->cfg.aic_cores,
                               w->cfg.aiv_cores, &w->rings, w->cfg.task_timeout_ms, &w->chip);
    if (rc) {
        w->state = STRATA_STATE_NEW;
        w->chip = NULL;
        return strata__error_prefix(rc, "strata_worker_init of chip %d", w->cfg.device_id);
    }
    strata__chip_set_host_graph(w->chip, strcmp(w->cfg.runtime, "host_build_graph") == 0);
    rc = strata__chip_record_open(w->chip, w->cfg.device_id, w->cfg.aic_cores, w->cfg.aiv_cores, chip_name, w,
                                  &w->chip_rec);
    if (rc) {
        strata__chip_close(w->chip);
        w->chip = NULL;
        w->state = STRATA_STATE_NEW;
        return strata__error_prefix(rc, "strata_worker_init of chip %d", w->cfg.device_id);
    }
    strata__chip_stats(w->chip, &w->last_stats);
    w->state = STRATA_STATE_READY;
    const strata__ring_sizes *r0 = &w->rings.depth[0];
    strata__log(STRATA__LOG_INFO, "chip %d ready: %u AIC + %u AIV cores, %llu bytes of chip memory, rings of "
                "scope depth 0 task_window %llu, heap %llu, dep_pool %llu%s", w->cfg.device_id, w->cfg.aic_cores,
                w->cfg.aiv_cores, (unsigned long long)w->cfg.device_memory_bytes, (unsigned long long)r0->task_window,
                (unsigned long long)r0->heap, (unsigned long long)r0->dep_pool,
                w->rings.env_listed[0] || w->rings.env_listed[1] || w->rings.env_listed[2]
                    ? " (deeper depths: PTO2_RING_* lists)" : " (every depth alike)");
    return STRATA_OK;
}

/* close or destroy in a process that does not own w: release only what is this
   process's own. In one of the worker's own children or its spawner, that is
   nothing (the process lives on those mappings); in a fork of the application,
   the copies of the mappings and descriptors (never a child, never a message
   to the spawner). A level-2 worker's core threads do not exist here: its copy
   is left alone, reclaimed when this process ends. */
static int close_elsewhere(strata_worker *w, const char *call)
{
    int rc = admit(w, CALL_CLOSE, call);   /* the message; STRATA_ESTATE */
    if (w->node && w->state != STRATA_STATE_CLOSED && !strata__node_serves_here(w->node)) {
        strata__node_close(w->node);
        w->state = STRATA_STATE_CLOSED;
    }
    return rc;
}

int strata_worker_close(strata_worker *w)
{
    strata__clear_error();
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_close: w is NULL");
    if (!owned_here(w))
        return close_elsewhere(w, "strata_worker_close");
    if (owner_above(w))
        return admit(w, CALL_CLOSE, "strata_worker_close");
    if (w->chip && strata__on_lane_of(w->chip))
        return strata__fail(STRATA_ESTATE, "strata_worker_close: called from a core thread of chip %d (inside a "
                            "kernel); a thread cannot join itself: call it from the thread that drives the worker",
                            w->cfg.device_id);
    if (w->state == STRATA_STATE_RUNNING)
        return strata__fail(STRATA_ESTATE, "strata_worker_close: called from inside a run of this level-%d "
                            "worker; call it after the run returns", w->cfg.level);
    if (w->node) {
        if (w->state != STRATA_STATE_CLOSED)
            strata__node_close(w->node);
        w->last_stats.child_restarts = w->node->restarts;
    }
    if (w->chip) {
        strata__chip_stats(w->chip, &w->last_stats);
        const strata__callable *in_use = w->chip->callable;
        bool released = strata__chip_close(w->chip);
        strata__chip_record_close(w->chip_rec, !released);   /* an abandoned chip's cores may still write */
        w->chip_rec = NULL;
        if (!released) {
            /* Abandoned (hung kernel): the callable of the hung run stays
               allocated, reachable from the abandoned chip, since the stuck core
               thread may still name it in a message. */
            for (uint32_t i = 0; i < w->ncallables; i++) {
                if (w->callables[i] == in_use)
                    w->callables[i] = w->callables[--w->ncallables];
            }
        }
        w->chip = NULL;
    }
    if (w->state != STRATA_STATE_CLOSED)
        strata__log(STRATA__LOG_INFO, "level-%d worker%s closed", w->cfg.level, where(w));
    w->state = STRATA_STATE_CLOSED;
    return STRATA_OK;
}

void strata_worker_destroy(strata_worker *w)
{
    if (w == NULL || owner_above(w))
        return;   /* an added worker is destroyed with the worker it was added to */
    if (!owned_here(w)) {
        close_elsewhere(w, "strata_worker_destroy");
        /* Freed only where the process does not live on it; in the worker's
           own child or spawner the copy is this process's memory until it
           exits (deliberately kept: freeing it would free the node state the
           child's main loop runs on). */
        if (w->state == STRATA_STATE_CLOSED && !(w->node && strata__node_serves_here(w->node)))
            free_worker(w);
        return;
    }
    if (w->state == STRATA_STATE_RUNNING) {
        /* inside its own run (the orchestration function, or a kernel): done
           when the run returns */
        w->destroy_pending = true;
        return;
    }
    if (w->state != STRATA_STATE_CLOSED)
        strata_worker_close(w);
    if (w->state != STRATA_STATE_CLOSED)
        return;   /* close refused (from a core thread): it said why */
    free_worker(w);
}

int strata_worker_add_worker(strata_worker *w, strata_worker *child, int *worker_id)
{
    strata__clear_error();
    if (w == NULL || child == NULL || worker_id == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_add_worker: %s is NULL",
                            w == NULL ? "w" : child == NULL ? "child" : "worker_id");
    int rc = admit(w, CALL_REGISTER, "strata_worker_add_worker");   /* this process's own; configurable */
    if (rc)
        return rc;
    if (w->state != STRATA_STATE_NEW)
        return strata__fail(STRATA_ESTATE, "strata_worker_add_worker: the worker is %s; workers are added before "
                            "init, which starts a child process for each", state_name(w->state));
    if (w->cfg.level < 4)
        return strata__fail(STRATA_EINVAL, "strata_worker_add_worker: this worker is level %d; workers are added to "
                            "level 4 and up (a level-3 worker's children are its chips and SUB workers)",
                            w->cfg.level);
    if (child->cfg.level != w->cfg.level - 1)
        return strata__fail(STRATA_EINVAL, "strata_worker_add_worker: the child is a level-%d worker; a level-%d "
                            "worker's children are level %d", child->cfg.level, w->cfg.level, w->cfg.level - 1);
    if (child->added_to)
        return strata__fail(STRATA_EINVAL, "strata_worker_add_worker: the child was added to a level-%d worker "
                            "already; a worker has one parent", child->added_to->cfg.level);
    rc = admit(child, CALL_INIT, "strata_worker_add_worker: the child");   /* NEW, owned here */
    if (rc)
        return rc;
    for (uint32_t i = 0; i < child->node->nadded; i++)
        if (child->node->added[i].tp)
            return strata__fail(STRATA_EINVAL, "strata_worker_add_worker: the level-%d child has remote workers "
                                "(rank %d); it would run in a child process, which must not call MPI: remote workers "
                                "belong to the top worker only", child->cfg.level, child->node->added[i].rank);
    rc = strata__node_add_worker(w->node, child, child->node, worker_id);
    if (rc)
        return rc;
    child->added_to = w;
    return STRATA_OK;
}

static int register_fn(strata_worker *w, strata__registration *r, const char *name, const char *call,
                       strata_handle *out);

static int register_orch(strata_worker *w, const char *name, strata_orch_fn fn, void *ctx, strata_handle *out,
                         const char *call)
{
    strata__clear_error();
    if (w == NULL || fn == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "%s: %s is NULL", call, w == NULL ? "w" : fn == NULL ? "fn" : "out");
    if (w->cfg.level < 4)
        return strata__fail(STRATA_EINVAL, "%s: this worker is level %d; orchestration functions are registered on "
                            "level 4 and up, whose children are workers that run them (at level %d, pass one to "
                            "strata_worker_run)", call, w->cfg.level, w->cfg.level);
    strata__registration r = {.kind = STRATA__REG_ORCH, .orch = fn, .ctx = ctx};
    return register_fn(w, &r, name, call, out);
}

strata__node *strata__worker_node(strata_worker *w)
{
    return w->node;
}

int strata__worker_add_remote(strata_worker *w, const strata__transport *tp, int rank, int *id, const char *call)
{
    int rc = admit(w, CALL_REGISTER, call);   /* this process's own; configurable */
    if (rc)
        return rc;
    if (w->state != STRATA_STATE_NEW)
        return strata__fail(STRATA_ESTATE, "%s: the worker is %s; workers are added before init", call,
                            state_name(w->state));
    if (w->cfg.level < 4)
        return strata__fail(STRATA_EINVAL, "%s: this worker is level %d; remote workers are added to level 4 and "
                            "up", call, w->cfg.level);
    if (w->added_to)
        return strata__fail(STRATA_EINVAL, "%s: this level-%d worker was added to a level-%d worker, so it runs in a "
                            "child process, which must not call MPI; add remote workers to the top worker only",
                            call, w->cfg.level, w->added_to->cfg.level);
    rc = strata__node_add_remote(w->node, tp, rank, id);
    return rc ? strata__error_prefix(rc, "%s", call) : STRATA_OK;
}

int strata_worker_register_orch(strata_worker *w, strata_orch_fn fn, void *ctx, strata_handle *out)
{
    return register_orch(w, NULL, fn, ctx, out, "strata_worker_register_orch");
}

int strata_worker_register_orch_named(strata_worker *w, const char *name, strata_orch_fn fn, void *ctx,
                                      strata_handle *out)
{
    if (name == NULL) {
        strata__clear_error();
        return strata__fail(STRATA_EINVAL, "strata_worker_register_orch_named: name is NULL");
    }
    return register_orch(w, name, fn, ctx, out, "strata_worker_register_orch_named");
}

strata_state strata_worker_state(const strata_worker *w)
{
    return w ? w->state : STRATA_STATE_CLOSED;
}

/* L3 registrations: before init (children inherit them at fork) or when READY
   (every live child takes it before the call returns). */
static int check_node_register(strata_worker *w, const char *call)
{
    return admit(w, CALL_REGISTER, call);
}

/* A name for a registration: 1..200 printable bytes, unique on the worker. */
static int check_name(const strata_worker *w, const char *name, const char *call)
{
    size_t len = strlen(name);
    bool printable = len > 0 && len <= 200;
    for (size_t i = 0; printable && i < len; i++)
        printable = name[i] > ' ' && name[i] < 127;
    if (!printable)
        return strata__fail(STRATA_EINVAL, "%s: the name '%.200s' is not 1..200 printable characters without spaces",
                            call, name);
    for (uint32_t i = 0; i < w->node->nregs; i++)
        if (w->node->regs[i].name && strcmp(w->node->regs[i].name, name) == 0)
            return strata__fail(STRATA_EINVAL, "%s: the name '%s' is registered already (handle %u); a name names "
                                "one callable", call, name, i + 1);
    return STRATA_OK;
}

/* Register an orchestration function or SUB function r, named (name may be
   NULL: unnamed). */
static int register_fn(strata_worker *w, strata__registration *r, const char *name, const char *call,
                       strata_handle *out)
{
    int rc = admit(w, CALL_REGISTER, call);
    if (rc == STRATA_OK && name)
        rc = check_name(w, name, call);
    if (rc)
        return rc;
    if (name && !(r->name = strata__strdup(name)))
        return strata__fail(STRATA_ENOMEM, "%s: out of host memory", call);
    rc = strata__node_register(w->node, w->state == STRATA_STATE_READY, r, NULL, NULL, out);
    return rc ? strata__error_prefix(rc, "%s", call) : STRATA_OK;
}

static int register_sub(strata_worker *w, const char *name, strata_sub_fn fn, void *ctx, strata_handle *out,
                        const char *call)
{
    strata__clear_error();
    if (w == NULL || fn == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "%s: %s is NULL", call, w == NULL ? "w" : fn == NULL ? "fn" : "out");
    if (!w->node)
        return strata__fail(STRATA_EINVAL, "%s: a level-%d worker has no SUB workers; SUB functions run at level 3 "
                            "and up", call, w->cfg.level);
    strata__registration r = {.kind = STRATA__REG_SUB, .fn = fn, .ctx = ctx};
    return register_fn(w, &r, name, call, out);
}

int strata_worker_register_sub(strata_worker *w, strata_sub_fn fn, void *ctx, strata_handle *out)
{
    return register_sub(w, NULL, fn, ctx, out, "strata_worker_register_sub");
}

int strata_worker_register_sub_named(strata_worker *w, const char *name, strata_sub_fn fn, void *ctx,
                                     strata_handle *out)
{
    if (name == NULL) {
        strata__clear_error();
        return strata__fail(STRATA_EINVAL, "strata_worker_register_sub_named: name is NULL");
    }
    return register_sub(w, name, fn, ctx, out, "strata_worker_register_sub_named");
}

int strata_worker_register_chip_symbol(strata_worker *w, const char *so_path, const char *symbol,
                                       strata_handle *out)
{
    strata__clear_error();
    if (w == NULL || so_path == NULL || symbol == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_register_chip_symbol: %s is NULL",
                            w == NULL ? "w" : so_path == NULL ? "so_path" : symbol == NULL ? "symbol" : "out");
    if (!w->node)
        return strata__fail(STRATA_EINVAL, "strata_worker_register_chip_symbol is for level 3 and up; at level 2 "
                            "load kernels with strata_kernel_load and register with strata_worker_register_chip");
    int rc = check_node_register(w, "strata_worker_register_chip_symbol");
    if (rc)
        return rc;
    strata__registration r = {.kind = STRATA__REG_CHIP};
    rc = strata__node_register(w->node, w->state == STRATA_STATE_READY, &r, so_path, symbol, out);
    return rc ? strata__error_prefix(rc, "strata_worker_register_chip_symbol") : STRATA_OK;
}

int strata_worker_register_chip(strata_worker *w, const strata_chip_callable *c, strata_handle *out)
{
    strata__clear_error();
    if (w == NULL || c == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_register_chip: %s is NULL",
                            w == NULL ? "w" : c == NULL ? "c" : "out");
    int arc = admit(w, CALL_REGISTER, "strata_worker_register_chip");
    if (arc)
        return arc;
    if (w->node) {
        strata__registration r = {.kind = STRATA__REG_CHIP};
        int rc = strata__callable_copy(c, &r.chip);
        if (rc == STRATA_OK)
            rc = strata__node_register(w->node, w->state == STRATA_STATE_READY, &r, NULL, NULL, out);
        return rc ? strata__error_prefix(rc, "strata_worker_register_chip") : STRATA_OK;
    }
    int rc = STRATA__RESERVE(w->callables, w->ncallables, w->callables_cap, 8, "the chip callables");
    if (rc)
        return strata__error_prefix(rc, "strata_worker_register_chip");
    strata__callable *copy = strata__malloc(sizeof *copy);
    if (!copy)
        return strata__fail(STRATA_ENOMEM, "strata_worker_register_chip: out of host memory");
    rc = strata__callable_copy(c, copy);
    if (rc) {
        free(copy);
        return strata__error_prefix(rc, "strata_worker_register_chip");
    }
    w->callables[w->ncallables++] = copy;
    *out = w->ncallables;
    return STRATA_OK;
}

/* strata_worker_destroy was called inside the run that just ended: carry it
   out now, keeping the run's status and message. */
static int destroy_after_run(strata_worker *w, int rc)
{
    char *saved = rc ? strata__format("%s", strata_last_error()) : NULL;
    strata_worker_close(w);
    free_worker(w);
    if (rc)
        strata__fail(rc, "%s", saved ? saved : strata_status_name(rc));
    else
        strata__clear_error();
    free(saved);
    return rc;
}

int strata_worker_run_chip(strata_worker *w, strata_handle chip, const strata_task_args *args,
                           const strata_call_config *cfg)
{
    strata__clear_error();
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_run_chip: w is NULL");
    if (w->node)
        return strata__fail(STRATA_EINVAL, "strata_worker_run_chip runs a chip callable on a level-2 worker; this "
                            "one is level %d: use strata_worker_run with an orchestration function that calls "
                            "strata_submit_next_level", w->cfg.level);
    int arc = admit(w, CALL_RUN, "strata_worker_run_chip");
    if (arc)
        return arc;
    if (chip == STRATA_HANDLE_INVALID || chip > w->ncallables)
        return strata__fail(STRATA_ENOENT, "strata_worker_run_chip: handle %u is not a chip callable registered "
                            "on this worker (%u registered)", chip, w->ncallables);
    int rc = strata__task_args_check(args, STRATA_MAX_TASK_TENSORS, STRATA_MAX_TASK_SCALARS, NULL);
    if (rc)
        return strata__error_prefix(rc, "strata_worker_run_chip: args");
    w->state = STRATA_STATE_RUNNING;
    uint64_t from = strata__now_ns();
    strata__chip_record_run_begin(w->chip_rec, chip, cfg);
    rc = strata__chip_run(w->chip, w->callables[chip - 1], args, cfg);
    strata__chip_record_run_end(w->chip_rec, rc);
    w->last_wall_ns = strata__now_ns() - from;
    w->state = w->chip->hung ? STRATA_STATE_FAILED : STRATA_STATE_READY;
    if (w->destroy_pending)
        return destroy_after_run(w, rc);
    strata__chip_stats(w->chip, &w->last_stats);
    if (rc)
        strata__log(STRATA__LOG_ERROR, "run of chip callable '%s' on chip %d failed (%s): %s",
                    w->callables[chip - 1]->name, w->cfg.device_id, strata_status_name(rc), strata_last_error());
    else if (strata__log_enabled(STRATA__LOG_DEBUG))
        strata__log(STRATA__LOG_DEBUG, "run of '%s' on chip %d: high water task_window %llu/%llu, heap %llu/%llu, "
                    "dep_pool %llu/%llu", w->callables[chip - 1]->name, w->cfg.device_id,
                    (unsigned long long)w->last_stats.task_window.high_water,
                    (unsigned long long)w->last_stats.task_window.size,
                    (unsigned long long)w->last_stats.heap.high_water, (unsigned long long)w->last_stats.heap.size,
                    (unsigned long long)w->last_stats.dep_pool.high_water,
                    (unsigned long long)w->last_stats.dep_pool.size);
    return rc;
}

int strata_worker_run(strata_worker *w, strata_orch_fn orch, void *ctx, const strata_task_args *args,
                      const strata_call_config *cfg)
{
    strata__clear_error();
    if (w == NULL || orch == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_run: %s is NULL", w == NULL ? "w" : "orch");
    if (!w->node)
        return strata__fail(STRATA_EINVAL, "strata_worker_run drives a level-3 (or higher) worker; this one is level "
                            "2: use strata_worker_run_chip");
    int arc = admit(w, CALL_RUN, "strata_worker_run");
    if (arc)
        return arc;
    int rc = strata__task_args_check(args, STRATA_MAX_TASK_TENSORS, STRATA_MAX_TASK_SCALARS, NULL);
    if (rc)
        return strata__error_prefix(rc, "strata_worker_run: args");
    w->state = STRATA_STATE_RUNNING;
    rc = strata__node_run(w->node, w, orch, ctx, args, cfg);   /* its figures: the node's, when it ran */
    w->state = w->node->failed ? STRATA_STATE_FAILED : STRATA_STATE_READY;
    if (w->destroy_pending)
        return destroy_after_run(w, rc);
    if (rc)
        strata__log(STRATA__LOG_ERROR, "run of level-%d worker failed (%s): %s", w->cfg.level,
                    strata_status_name(rc), strata_last_error());
    return rc;
}

int strata_worker_stats(const strata_worker *w, strata_run_stats *out)
{
    strata__clear_error();
    if (w == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_stats: %s is NULL", w == NULL ? "w" : "out");
    int arc = admit(w, CALL_STATS, "strata_worker_stats");
    if (arc)
        return arc;
    *out = w->last_stats;
    if (w->node) {
        out->tasks_completed = w->node->stat_completed;
        out->tasks_failed = w->node->stat_failed;
        out->tasks_canceled = w->node->stat_canceled;
        out->child_restarts = w->node->restarts;
        out->task_window = (strata_ring_stats){w->node->window ? w->node->window : w->cfg.node_task_window,
                                               w->node->window_high_water};
    }
    return STRATA_OK;
}

int strata_worker_run_info(const strata_worker *w, strata_run_info *out)
{
    strata__clear_error();
    if (w == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_run_info: %s is NULL", w == NULL ? "w" : "out");
    if (out->size < 8 || out->size % 8 != 0)
        return strata__fail(STRATA_EINVAL, "strata_worker_run_info: out->size is %u; set it to "
                            "sizeof(strata_run_info) before the call", out->size);
    int arc = admit(w, CALL_STATS, "strata_worker_run_info");
    if (arc)
        return arc;
    uint32_t filled = out->size < sizeof(strata_run_info) ? out->size : (uint32_t)sizeof(strata_run_info);
    strata_run_info info = {.size = filled, .wall_ns = w->last_wall_ns};
    if (w->node) {
        info.wall_ns = w->node->run_wall_ns;
        info.tasks = w->node->run_tasks;
        info.orch_ns = w->node->run_orch_ns;
        info.longest_task_ns = w->node->run_longest_ns;
        info.longest_task = w->node->run_longest_task;
    } else if (w->chip) {
        for (uint32_t d = 0; d < STRATA__DEPTHS; d++) {
            strata_ring_stats by[3];
            strata__chip_depth_stats(w->chip, d, by);
            info.task_window_by_depth[d] = by[0];
            info.heap_by_depth[d] = by[1];
            info.dep_pool_by_depth[d] = by[2];
        }
    }
    /* as much as the caller's struct holds: a program built against an older
       header gets the fields it knows */
    memcpy(out, &info, filled);
    return STRATA_OK;
}

int strata_worker_child_stats(const strata_worker *w, strata_child_stats *out, uint32_t out_size, uint32_t cap,
                              uint32_t *count)
{
    strata__clear_error();
    if (w == NULL || count == NULL || (cap && out == NULL))
        return strata__fail(STRATA_EINVAL, "strata_worker_child_stats: %s is NULL",
                            w == NULL ? "w" : count == NULL ? "count" : "out");
    if (cap && (out_size < 8 || out_size % 8 != 0))
        return strata__fail(STRATA_EINVAL, "strata_worker_child_stats: out_size is %u; pass "
                            "sizeof(strata_child_stats)", out_size);
    if (!w->node)
        return strata__fail(STRATA_EINVAL, "strata_worker_child_stats: a level-2 worker has no child processes");
    int arc = admit(w, CALL_CHILDREN, "strata_worker_child_stats");
    if (arc)
        return arc;
    const strata__node *n = w->node;
    *count = n->nchildren;
    size_t each = out_size < sizeof(strata_child_stats) ? out_size : sizeof(strata_child_stats);
    for (uint32_t i = 0; i < n->nchildren && i < cap; i++) {
        const strata__child *c = &n->children[i];
        strata_child_stats one = {.worker = c->worker,
                                  .pid = c->dead || c->kind == STRATA__CHILD_REMOTE ? 0 : c->pid,
                                  .tasks = c->stat_tasks,
                                  .busy_ns = c->stat_busy_ns,
                                  .restarts = c->stat_restarts};
        memcpy((unsigned char *)out + (size_t)i * out_size, &one, each);
    }
    return STRATA_OK;
}

int strata_worker_child_pid(const strata_worker *w, int worker, pid_t *out)
{
    strata__clear_error();
    if (w == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_child_pid: %s is NULL", w == NULL ? "w" : "out");
    if (!w->node)
        return strata__fail(STRATA_EINVAL, "strata_worker_child_pid: a level-2 worker has no child processes");
    int arc = admit(w, CALL_CHILDREN, "strata_worker_child_pid");
    if (arc)
        return arc;
    if (worker < 0 || (uint32_t)worker >= w->node->nchildren)
        return strata__fail(STRATA_ENOENT, "strata_worker_child_pid: worker %d does not exist (this worker has %u "
                            "children: %ss 0..%d, then SUB workers)", worker, w->node->nchildren,
                            w->cfg.level == 3 ? "chip" : "worker", (int)w->node->nnext - 1);
    /* Take the deaths the spawner has published, so a pid is never answered
       for a child known to be gone (the answer is a read of the worker's
       state; the engine's own copy of it is brought up to date). */
    if (w->state == STRATA_STATE_READY) {
        w->node->check_spawner = true;   /* a spawner's death takes every child */
        strata__reap(w->node);
    }
    const strata__child *c = &w->node->children[worker];
    if (c->dead || c->pid <= 0)
        return strata__fail(STRATA_ECHILD, "strata_worker_child_pid: %s", c->death_message ? c->death_message
                                                                                            : "the child is dead");
    *out = c->pid;
    return STRATA_OK;
}

int strata_worker_host_alloc(strata_worker *w, uint64_t nbytes, void **out)
{
    strata__clear_error();
    if (w == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_alloc: %s is NULL", w == NULL ? "w" : "out");
    if (!w->node)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_alloc: a level-2 worker has no shared host heap; "
                            "use strata_worker_malloc for chip memory");
    int arc = admit(w, CALL_HOST_MEMORY, "strata_worker_host_alloc");
    if (arc)
        return arc;
    return strata__node_host_alloc(w->node, nbytes, out);
}

int strata_worker_host_free(strata_worker *w, void *p)
{
    strata__clear_error();
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_free: w is NULL");
    if (!w->node)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_free: a level-2 worker has no shared host heap");
    int arc = admit(w, CALL_HOST_MEMORY, "strata_worker_host_free");
    if (arc)
        return arc;
    return strata__node_host_free(w->node, p);
}

int strata_worker_host_adopt(strata_worker *w, void *p, uint64_t nbytes)
{
    strata__clear_error();
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_adopt: w is NULL");
    if (!w->node)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_adopt: a level-2 worker has no children to share "
                            "memory with");
    int arc = admit(w, CALL_HOST_MEMORY, "strata_worker_host_adopt");
    if (arc)
        return arc;
    if (w->state != STRATA_STATE_NEW)
        return strata__fail(STRATA_ESTATE, "strata_worker_host_adopt: the worker is %s; memory is adopted before "
                            "init, since the children are forked at init and see only what was mapped then",
                            state_name(w->state));
    return strata__node_host_adopt(w->node, p, nbytes);
}

/* ---- chip memory ---- */

static int memory_call(strata_worker *w, const char *call)
{
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "%s: w is NULL", call);
    return admit(w, CALL_CHIP_MEMORY, call);
}

int strata_worker_malloc(strata_worker *w, int worker, uint64_t nbytes, strata_buffer *out)
{
    strata__clear_error();
    int rc = memory_call(w, "strata_worker_malloc");
    if (rc)
        return rc;
    if (out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_malloc: out is NULL");
    if (w->node)
        return strata__node_malloc(w->node, worker, nbytes, out);
    (void)worker;   /* L2: the worker's own chip */
    uint64_t addr;
    rc = strata__chip_malloc(w->chip, nbytes, &addr);
    if (rc)
        return rc;
    *out = (strata_buffer){.addr = addr, .nbytes = nbytes, .worker = 0};
    return STRATA_OK;
}

int strata_worker_free(strata_worker *w, strata_buffer buf)
{
    strata__clear_error();
    int rc = memory_call(w, "strata_worker_free");
    if (rc == STRATA_OK && w->node)
        return strata__node_free(w->node, buf);
    return rc ? rc : strata__chip_free(w->chip, buf.addr);
}

int strata_worker_copy_to(strata_worker *w, strata_buffer dst, uint64_t offset, const void *src, uint64_t nbytes)
{
    strata__clear_error();
    int rc = memory_call(w, "strata_worker_copy_to");
    if (rc == STRATA_OK && w->node)
        return strata__node_copy(w->node, dst, offset, (void *)src, nbytes, true);
    return rc ? rc : strata__chip_copy(w->chip, dst.addr, offset, (void *)src, nbytes, true);
}

int strata_worker_copy_from(strata_worker *w, void *dst, strata_buffer src, uint64_t offset, uint64_t nbytes)
{
    strata__clear_error();
    int rc = memory_call(w, "strata_worker_copy_from");
    if (rc == STRATA_OK && w->node)
        return strata__node_copy(w->node, src, offset, dst, nbytes, false);
    return rc ? rc : strata__chip_copy(w->chip, src.addr, offset, dst, nbytes, false);
}
