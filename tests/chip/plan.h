/* Test support for chip tests: a "plan" of tasks that a generic orchestration
 * function submits in order, and a probe kernel that records when each task
 * started and ended on one logical clock.
 *
 * The probe kernel takes scalars: [0] label (index into the records), [1]
 * microseconds to sleep while running, [2] label+1 of a task that must have
 * *started* before this one may finish (a rendezvous; 0 = none). A rendezvous that
 * does not happen within 10 s marks the record timed_out: that is how a test
 * proves two tasks were allowed to run at the same time. */
#ifndef STRATA_TEST_CHIP_PLAN_H
#define STRATA_TEST_CHIP_PLAN_H

#include <stdatomic.h>
#include <time.h>

#include "harness.h"

enum { PLAN_MAX_TASKS = 4096, PLAN_MAX_TENSORS = 8 };
enum { PROBE_AIV = 1, PROBE_AIC = 2, FAILING = 3 };

typedef struct plan_task {
    int           func_id;
    uint32_t      ntensors;
    strata_tensor tensors[PLAN_MAX_TENSORS];
    strata_tag    tags[PLAN_MAX_TENSORS];
    uint64_t      scalars[3];
} plan_task;

typedef struct probe_record {
    _Atomic uint64_t start, end;   /* logical clock ticks; 0 = never ran */
    _Atomic int      timed_out;
} probe_record;

static plan_task     plan[PLAN_MAX_TASKS];
static uint32_t      plan_n;
static probe_record  records[PLAN_MAX_TASKS];
static _Atomic uint64_t probe_clock;
static int           plan_submit_status[PLAN_MAX_TASKS];

static inline void plan_reset(void)
{
    plan_n = 0;
    for (uint32_t i = 0; i < PLAN_MAX_TASKS; i++) {
        atomic_store(&records[i].start, 0);
        atomic_store(&records[i].end, 0);
        atomic_store(&records[i].timed_out, 0);
    }
}

/* Append a task; returns its label. */
static inline uint32_t plan_add(int func_id, uint32_t n, const strata_tensor *t, const strata_tag *tags,
                         uint64_t sleep_us, uint32_t rendezvous_with)
{
    CHECK(plan_n < PLAN_MAX_TASKS && n <= PLAN_MAX_TENSORS);
    plan_task *p = &plan[plan_n];
    p->func_id = func_id;
    p->ntensors = n;
    for (uint32_t i = 0; i < n; i++) {
        p->tensors[i] = t[i];
        p->tags[i] = tags[i];
    }
    p->scalars[0] = plan_n;
    p->scalars[1] = sleep_us;
    p->scalars[2] = rendezvous_with;
    return plan_n++;
}

static inline void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int probe_kernel(const strata_task_args *a)
{
    probe_record *r = &records[a->scalars[0]];
    atomic_store(&r->start, atomic_fetch_add(&probe_clock, 1) + 1);
    if (a->scalars[2]) {
        probe_record *other = &records[a->scalars[2] - 1];
        uint64_t deadline = test_now_ns() + 10000000000ull;
        while (atomic_load(&other->start) == 0) {
            if (test_now_ns() > deadline) {
                atomic_store(&r->timed_out, 1);
                break;
            }
            sleep_us(100);
        }
    }
    if (a->scalars[1])
        sleep_us(a->scalars[1]);
    atomic_store(&r->end, atomic_fetch_add(&probe_clock, 1) + 1);
    return 0;
}

static int failing_kernel(const strata_task_args *a)
{
    probe_record *r = &records[a->scalars[0]];
    atomic_store(&r->start, atomic_fetch_add(&probe_clock, 1) + 1);
    atomic_store(&r->end, atomic_fetch_add(&probe_clock, 1) + 1);
    return 7;
}

static int plan_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    int first = 0;
    for (uint32_t i = 0; i < plan_n; i++) {
        plan_task *p = &plan[i];
        strata_task_args ta = {p->tensors, p->tags, p->ntensors, p->scalars, 3};
        plan_submit_status[i] = strata_chip_submit(o, p->func_id, &ta);
        if (plan_submit_status[i] && !first)
            first = plan_submit_status[i];
    }
    return 0;   /* the run reports submit failures by itself */
}

static const strata_kernel_entry plan_kernels[] = {
    {PROBE_AIV, STRATA_AIV, probe_kernel},
    {PROBE_AIC, STRATA_AIC, probe_kernel},
    {FAILING, STRATA_AIV, failing_kernel},
};

static inline strata_handle plan_register(strata_worker *w)
{
    strata_chip_callable c = {"plan", plan_orch, plan_kernels, 3};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    return h;
}

/* Task b started after task a ended. */
#define CHECK_AFTER(b, a)                                                                        \
    do {                                                                                         \
        uint64_t sb_ = atomic_load(&records[b].start), ea_ = atomic_load(&records[a].end);      \
        if (!(sb_ != 0 && ea_ != 0 && sb_ > ea_))                                               \
            test_fail(__FILE__, __LINE__, "task %u (start %llu) should have started after task %u " \
                      "ended (end %llu)", (unsigned)(b), (unsigned long long)sb_, (unsigned)(a),   \
                      (unsigned long long)ea_);                                                 \
    } while (0)

/* Task a waited for task b to start and it did: they ran at the same time. */
#define CHECK_CONCURRENT(a)                                                                      \
    do {                                                                                         \
        if (atomic_load(&records[a].timed_out))                                                  \
            test_fail(__FILE__, __LINE__, "task %u waited 10 s for its partner to start: the "     \
                      "engine ordered two tasks that should be independent", (unsigned)(a));    \
    } while (0)

/* A 1-D view of n elements of buffer b starting at element `first`. */
static inline strata_tensor view1d(strata_buffer b, strata_dtype dt, uint64_t first, uint64_t n)
{
    strata_tensor t = test_tensor(b, dt);
    t.offset = first;
    t.shape[0] = n;
    return t;
}

/* A worker with the plan callable registered and two 4 KiB buffers. */
typedef struct fixture {
    strata_worker *w;
    strata_handle  h;
    strata_buffer  x, y;
} fixture;

static inline fixture plan_setup(uint32_t aic, uint32_t aiv, uint32_t task_timeout_ms)
{
    fixture f;
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.aic_cores = aic;
    cfg.aiv_cores = aiv;
    cfg.device_memory_bytes = 64 << 20;
    cfg.task_timeout_ms = task_timeout_ms;
    CHECK_OK(strata_worker_create(&cfg, &f.w));
    CHECK_OK(strata_worker_init(f.w));
    f.h = plan_register(f.w);
    f.x = test_malloc(f.w, 4096);
    f.y = test_malloc(f.w, 4096);
    plan_reset();
    return f;
}

static inline void plan_teardown(fixture *f)
{
    CHECK_OK(strata_worker_free(f->w, f->x));
    CHECK_OK(strata_worker_free(f->w, f->y));
    CHECK_OK(strata_worker_close(f->w));
    strata_worker_destroy(f->w);
}

#endif
