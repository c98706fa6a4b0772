/* Workers: the state machine and the public entry points.
 *
 * This version builds level 2: the worker drives one chip engine in this process
 * (chip/engine.h). The node engine (L3+) will sit behind the same entry points.
 *
 *   state         create  init          run_chip         close   destroy
 *   NEW           -       INITIALIZING  ESTATE           CLOSED  free
 *   INITIALIZING  -       ESTATE        ESTATE           -       -
 *   READY         -       ESTATE        RUNNING->READY   CLOSED  close, free
 *   RUNNING       -       ESTATE        ESTATE           ESTATE  -
 *   FAILED        -       EFAILED       EFAILED          CLOSED  close, free
 *   CLOSED        -       ESTATE        ESTATE           OK      free
 * RUNNING becomes FAILED when a task passes its timeout (a kernel cannot be
 * stopped). Calls that only read (state, stats) answer in every state. */
#include "strata/strata.h"

#include <stdlib.h>
#include <string.h>

#include "chip/engine.h"
#include "core/env.h"
#include "core/log.h"
#include "core/status.h"

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
    strata__ring_sizes   rings;        /* from the environment at create, or defaults */
    strata_state         state;
    strata__callable   **callables;    /* handle h is callables[h - 1]; each owned */
    uint32_t             ncallables, callables_cap;
    strata__chip        *chip;         /* READY, RUNNING, FAILED */
    strata_run_stats     last_stats;   /* kept across close */
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

/* The error for a call that needs READY (or `also`) in state w->state. */
static int state_error(const strata_worker *w, const char *call)
{
    if (w->state == STRATA_STATE_FAILED)
        return strata__fail(STRATA_EFAILED, "%s: level-%d worker (chip %d) is FAILED after an earlier failure; "
                            "close and destroy it, then create a new one", call, w->cfg.level, w->cfg.device_id);
    const char *hint = w->state == STRATA_STATE_NEW      ? "call strata_worker_init first"
                       : w->state == STRATA_STATE_CLOSED  ? "the worker is closed; create a new one"
                       : w->state == STRATA_STATE_RUNNING ? "a run is in progress on this worker; call it after "
                                                             "strata_worker_run_chip returns"
                                                           : "wait for init to finish";
    return strata__fail(STRATA_ESTATE, "%s: level-%d worker (chip %d) is %s; %s", call, w->cfg.level,
                        w->cfg.device_id, state_name(w->state), hint);
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
}

static int check_config(const strata_worker_config *cfg)
{
    if (cfg->level < 2 || cfg->level > 6)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: level is %d; it must be 2 (chip) to 6", cfg->level);
    if (cfg->level != 2)
        return strata__fail(STRATA_EINVAL, "strata_worker_create: level %d workers are not available in this "
                            "version of Strata; level 2 (one chip in this process) is", cfg->level);
    if (cfg->platform == NULL || strata__platform_find(cfg->platform) == NULL)
        return strata__fail(STRATA_ENOENT, "strata_worker_create: platform '%s' is not built in; available: sim",
                            cfg->platform ? cfg->platform : "(null)");
    if (cfg->runtime == NULL || strcmp(cfg->runtime, "tensormap_and_ringbuffer") != 0)
        return strata__fail(STRATA_ENOENT, "strata_worker_create: runtime '%s' is not built in; available: "
                            "tensormap_and_ringbuffer", cfg->runtime ? cfg->runtime : "(null)");
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
    return STRATA_OK;
}

/* Ring sizes: built-in defaults, then PTO2_RING_* from the environment. */
static int read_ring_env(const strata_worker_config *cfg, strata__ring_sizes *r)
{
    r->task_window = STRATA__DEFAULT_WINDOW;
    r->dep_pool = STRATA__DEFAULT_DEP_POOL;
    r->heap = STRATA__DEFAULT_HEAP < cfg->device_memory_bytes / 2 ? STRATA__DEFAULT_HEAP
                                                                   : cfg->device_memory_bytes / 2;
    r->heap &= ~(uint64_t)(STRATA__DEVICE_ALIGN - 1);
    int rc = strata__env_u64("PTO2_RING_TASK_WINDOW", STRATA__WINDOW_MIN, STRATA__WINDOW_MAX, true, false,
                             &r->task_window);
    if (rc == STRATA_OK)
        rc = strata__env_u64("PTO2_RING_HEAP", STRATA__HEAP_MIN, cfg->device_memory_bytes / 2, false, true, &r->heap);
    if (rc == STRATA_OK)
        rc = strata__env_u64("PTO2_RING_DEP_POOL", STRATA__DEP_POOL_MIN, STRATA__DEP_POOL_MAX, false, true,
                             &r->dep_pool);
    if (rc)
        return strata__error_prefix(rc, "strata_worker_create");
    r->heap = (r->heap + STRATA__DEVICE_ALIGN - 1) & ~(uint64_t)(STRATA__DEVICE_ALIGN - 1);
    return STRATA_OK;
}

static void free_worker(strata_worker *w)
{
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
    if (rc)
        return rc;
    strata_worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return strata__fail(STRATA_ENOMEM, "strata_worker_create: out of host memory");
    w->cfg = *cfg;
    w->platform_name = strdup(cfg->platform);
    w->runtime_name = strdup(cfg->runtime);
    if (cfg->ndevices) {
        w->device_ids = malloc(cfg->ndevices * sizeof w->device_ids[0]);
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
    w->platform = strata__platform_find(w->platform_name);
    rc = read_ring_env(&w->cfg, &w->rings);
    if (rc) {
        free_worker(w);
        return rc;
    }
    w->state = STRATA_STATE_NEW;
    *out = w;
    return STRATA_OK;
}

int strata_worker_init(strata_worker *w)
{
    strata__clear_error();
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_init: w is NULL");
    if (w->state != STRATA_STATE_NEW)
        return state_error(w, "strata_worker_init");
    w->state = STRATA_STATE_INITIALIZING;
    int rc = strata__chip_open(w->platform, w->cfg.device_id, w->cfg.device_memory_bytes, NULL, w->cfg.aic_cores,
                               w->cfg.aiv_cores, &w->rings, w->cfg.task_timeout_ms, &w->chip);
    if (rc) {
        w->state = STRATA_STATE_NEW;
        w->chip = NULL;
        return strata__error_prefix(rc, "strata_worker_init of chip %d", w->cfg.device_id);
    }
    strata__chip_stats(w->chip, &w->last_stats);
    w->state = STRATA_STATE_READY;
    strata__log(STRATA__LOG_INFO, "chip %d ready: %u AIC + %u AIV cores, %llu bytes of chip memory, rings "
                "task_window %llu, heap %llu, dep_pool %llu", w->cfg.device_id, w->cfg.aic_cores, w->cfg.aiv_cores,
                (unsigned long long)w->cfg.device_memory_bytes, (unsigned long long)w->rings.task_window,
                (unsigned long long)w->rings.heap, (unsigned long long)w->rings.dep_pool);
    return STRATA_OK;
}

int strata_worker_close(strata_worker *w)
{
    strata__clear_error();
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_close: w is NULL");
    if (w->chip && strata__on_lane_of(w->chip))
        return strata__fail(STRATA_ESTATE, "strata_worker_close: called from a core thread of chip %d (inside a "
                            "kernel); a thread cannot join itself: call it from the thread that drives the worker",
                            w->cfg.device_id);
    if (w->state == STRATA_STATE_RUNNING)
        return strata__fail(STRATA_ESTATE, "strata_worker_close: called from inside a run of chip %d; call it "
                            "after strata_worker_run_chip returns", w->cfg.device_id);
    if (w->chip) {
        strata__chip_stats(w->chip, &w->last_stats);
        const strata__callable *in_use = w->chip->callable;
        if (!strata__chip_close(w->chip)) {
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
        strata__log(STRATA__LOG_INFO, "chip %d closed", w->cfg.device_id);
    w->state = STRATA_STATE_CLOSED;
    return STRATA_OK;
}

void strata_worker_destroy(strata_worker *w)
{
    if (w == NULL)
        return;
    if (w->state != STRATA_STATE_CLOSED)
        strata_worker_close(w);
    if (w->state != STRATA_STATE_CLOSED)
        return;   /* called from inside its own run or kernel: leave it (close said why) */
    free_worker(w);
}

strata_state strata_worker_state(const strata_worker *w)
{
    return w ? w->state : STRATA_STATE_CLOSED;
}

int strata_worker_register_chip(strata_worker *w, const strata_chip_callable *c, strata_handle *out)
{
    strata__clear_error();
    if (w == NULL || c == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_register_chip: %s is NULL",
                            w == NULL ? "w" : c == NULL ? "c" : "out");
    if (w->state != STRATA_STATE_NEW && w->state != STRATA_STATE_READY)
        return state_error(w, "strata_worker_register_chip");
    if (w->ncallables == w->callables_cap) {
        uint32_t cap = w->callables_cap ? 2 * w->callables_cap : 8;
        strata__callable **p = realloc(w->callables, cap * sizeof p[0]);
        if (!p)
            return strata__fail(STRATA_ENOMEM, "strata_worker_register_chip: out of host memory");
        w->callables = p;
        w->callables_cap = cap;
    }
    strata__callable *copy = malloc(sizeof *copy);
    if (!copy)
        return strata__fail(STRATA_ENOMEM, "strata_worker_register_chip: out of host memory");
    int rc = strata__callable_copy(c, copy);
    if (rc) {
        free(copy);
        return strata__error_prefix(rc, "strata_worker_register_chip");
    }
    w->callables[w->ncallables++] = copy;
    *out = w->ncallables;
    return STRATA_OK;
}

int strata_worker_run_chip(strata_worker *w, strata_handle chip, const strata_task_args *args,
                           const strata_call_config *cfg)
{
    strata__clear_error();
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_run_chip: w is NULL");
    if (w->state != STRATA_STATE_READY)
        return state_error(w, "strata_worker_run_chip");
    if (chip == STRATA_HANDLE_INVALID || chip > w->ncallables)
        return strata__fail(STRATA_ENOENT, "strata_worker_run_chip: handle %u is not a chip callable registered "
                            "on this worker (%u registered)", chip, w->ncallables);
    int rc = strata__task_args_check(args, STRATA_MAX_TASK_TENSORS, STRATA_MAX_TASK_SCALARS, NULL);
    if (rc)
        return strata__error_prefix(rc, "strata_worker_run_chip: args");
    w->state = STRATA_STATE_RUNNING;
    rc = strata__chip_run(w->chip, w->callables[chip - 1], args, cfg);
    w->state = w->chip->hung ? STRATA_STATE_FAILED : STRATA_STATE_READY;
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

int strata_worker_stats(const strata_worker *w, strata_run_stats *out)
{
    strata__clear_error();
    if (w == NULL || out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_stats: %s is NULL", w == NULL ? "w" : "out");
    *out = w->last_stats;
    return STRATA_OK;
}

/* ---- chip memory ---- */

static int memory_call(strata_worker *w, const char *call)
{
    if (w == NULL)
        return strata__fail(STRATA_EINVAL, "%s: w is NULL", call);
    if (w->state != STRATA_STATE_READY)
        return state_error(w, call);
    return STRATA_OK;
}

int strata_worker_malloc(strata_worker *w, int worker, uint64_t nbytes, strata_buffer *out)
{
    strata__clear_error();
    int rc = memory_call(w, "strata_worker_malloc");
    if (rc)
        return rc;
    if (out == NULL)
        return strata__fail(STRATA_EINVAL, "strata_worker_malloc: out is NULL");
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
    return rc ? rc : strata__chip_free(w->chip, buf.addr);
}

int strata_worker_copy_to(strata_worker *w, strata_buffer dst, uint64_t offset, const void *src, uint64_t nbytes)
{
    strata__clear_error();
    int rc = memory_call(w, "strata_worker_copy_to");
    return rc ? rc : strata__chip_copy(w->chip, dst.addr, offset, (void *)src, nbytes, true);
}

int strata_worker_copy_from(strata_worker *w, void *dst, strata_buffer src, uint64_t offset, uint64_t nbytes)
{
    strata__clear_error();
    int rc = memory_call(w, "strata_worker_copy_from");
    return rc ? rc : strata__chip_copy(w->chip, src.addr, offset, dst, nbytes, false);
}
