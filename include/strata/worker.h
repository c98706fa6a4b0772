/* Strata: workers. A worker is one node of the machine hierarchy with the same life
 * at every level: create, init, any number of runs, close, destroy.
 *
 *   NEW --init--> INITIALIZING --> READY <--run--> RUNNING
 *   any --close--> CLOSED;  a hung task (L2) --> FAILED --close--> CLOSED
 *
 * Level 2 is one simulated chip in the calling process; level 3 is a node whose
 * chips and SUB workers are child processes; levels 4 to 6 have the same engine,
 * whose children are workers one level down, each in a child process of its
 * own, and SUB workers (docs/lifecycle.md). One thread
 * drives a worker at a time; different workers may be driven from different
 * threads. */
#ifndef STRATA_WORKER_H
#define STRATA_WORKER_H

#include <stdint.h>
#include <sys/types.h>

#include "strata/chip.h"
#include "strata/export.h"
#include "strata/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strata_worker strata_worker;
typedef uint32_t strata_handle;              /* a registered callable */
#define STRATA_HANDLE_INVALID 0u             /* never returned by a register call */

typedef enum strata_death_policy { STRATA_ON_DEATH_RESTART, STRATA_ON_DEATH_FAIL } strata_death_policy;

typedef enum strata_state {
    STRATA_STATE_NEW, STRATA_STATE_INITIALIZING, STRATA_STATE_READY,
    STRATA_STATE_RUNNING, STRATA_STATE_FAILED, STRATA_STATE_CLOSED
} strata_state;

typedef struct strata_worker_config {
    int                 level;               /* 2 (chip), 3 (node), 4..6 (workers of workers) */
    const char         *platform;            /* "sim"; copied at create */
    const char         *runtime;             /* "tensormap_and_ringbuffer"; copied */
    int                 device_id;           /* L2: the chip's device id, >= 0 */
    const int          *device_ids;          /* L3 only: one chip child per id; copied */
    uint32_t            ndevices;
    uint32_t            num_sub_workers;     /* L3+: SUB child processes */
    strata_death_policy on_child_death;      /* L3+; default RESTART */
    uint32_t            task_timeout_ms;     /* default 0 = none */
    uint32_t            init_timeout_ms;     /* default 10000 */
    uint32_t            close_grace_ms;      /* default 1000 */
    uint64_t            shared_heap_bytes;   /* L3+; default 256 MiB */
    uint64_t            device_memory_bytes; /* sim chip memory per chip; default 1 GiB */
    uint32_t            aic_cores;           /* L2 sim: AIC core threads; default 1, 1..64 */
    uint32_t            aiv_cores;           /* L2 sim: AIV core threads; default 1, 1..64 */
    uint32_t            node_task_window;    /* L3+: tasks of one run in flight at once (submitted and not
                                                retired); a submit waits while it is full. Power of two,
                                                16..1048576; 0 or default: 4096 */
} strata_worker_config;

/* Fill *cfg with the defaults of `level`. Any thread. */
STRATA_API void strata_worker_config_init(strata_worker_config *cfg, int level);

/* Make a worker in state NEW. cfg: copied (strings and device_ids too). Reads
   PTO2_RING_TASK_WINDOW, PTO2_RING_HEAP and PTO2_RING_DEP_POOL now; a bad value
   is STRATA_EINVAL naming the variable and what is allowed. *out: returned,
   release with strata_worker_destroy. Any thread. */
STRATA_API int strata_worker_create(const strata_worker_config *cfg, strata_worker **out);

/* Start the worker: chip memory, rings and core threads. Transactional: on failure
   nothing is left behind and the worker stays NEW. NEW only. */
STRATA_API int strata_worker_init(strata_worker *w);

/* Stop every thread and release every mapping. Bounded, idempotent, allowed after
   any failure; returns STRATA_OK. A core thread still stuck in a timed-out kernel
   is abandoned, not joined, and the chip's memory stays mapped for it
   (docs/lifecycle.md).
   Not from inside a kernel or orchestration function of this worker. */
STRATA_API int strata_worker_close(strata_worker *w);

/* Close if needed, then free the worker. NULL is fine. */
STRATA_API void strata_worker_destroy(strata_worker *w);

/* The worker's state; w: borrowed. */
STRATA_API strata_state strata_worker_state(const strata_worker *w);

/* Register a chip callable. c: copied (name and kernel table too). *out: a
   handle for strata_worker_run_chip (L2) or strata_submit_next_level (L3),
   never STRATA_HANDLE_INVALID. A kernel table with a negative or repeated
   func_id, or a NULL function, is STRATA_EINVAL. Before or after init; at L3
   after init every live child takes it before this returns, and a function
   that lies in an object loaded after the children started is refused with
   STRATA_EINVAL (use strata_worker_register_chip_symbol for those). */
STRATA_API int strata_worker_register_chip(strata_worker *w, const strata_chip_callable *c,
                                           strata_handle *out);

/* ---- the node level (L3): children, SUB functions, orchestration ---- */

/* Runs in a SUB child process. args: borrowed for the call; tensors point into
   the shared host heap. ctx: the pointer given at register, as the child saw it
   when it started. Return 0, or nonzero to fail the task. */
typedef int (*strata_sub_fn)(const strata_task_args *args, void *ctx);

/* Given to an orchestration function (L3); valid only during that call. */
typedef struct strata_orch strata_orch;

/* Runs on the thread that called strata_worker_run. args, cfg: borrowed for the
   call. Returns 0 or a negative strata_status; other nonzero values become
   STRATA_ETASK. */
typedef int (*strata_orch_fn)(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg,
                              void *ctx);

/* Register a host function run by SUB children (L3), before or after init (as
   for chip callables). fn: kept; ctx: passed as is; a child sees the memory it
   points to as it was when the child started. */
STRATA_API int strata_worker_register_sub(strata_worker *w, strata_sub_fn fn, void *ctx, strata_handle *out);
/* The same, under a name (see strata_worker_register_orch_named). */
STRATA_API int strata_worker_register_sub_named(strata_worker *w, const char *name, strata_sub_fn fn, void *ctx,
                                                strata_handle *out);

/* Register an orchestration function that the workers one level down run (L4+):
   strata_submit_next_level(o, handle, args, cfg, worker) in an orchestration
   function of this worker makes added worker `worker` run fn(ctx) with those
   args on its own engine, in its own process; the task completes when that run
   returns, with its status and message. Before or after init, as for SUB
   functions; fn and ctx must mean the same in the children (code and data
   mapped before init). */
STRATA_API int strata_worker_register_orch(strata_worker *w, strata_orch_fn fn, void *ctx, strata_handle *out);

/* The same, under a name (1..200 printable characters, no spaces, unique on the
   worker; copied): the name is how a remote worker (an MPI rank, which has the
   same program but not the same addresses) finds its own copy of the function.
   Every rank registers the same names; init fails naming a rank that lacks one. */
STRATA_API int strata_worker_register_orch_named(strata_worker *w, const char *name, strata_orch_fn fn, void *ctx,
                                                 strata_handle *out);

/* Add `child`, a configured worker of level w's level - 1 in state NEW, to w
   (L4+, before init). *worker_id: its id, 0, 1, ... in the order added; SUB
   workers follow the added workers. w owns child from now on: w's init starts
   a process that initialises it (its own children below that process) before
   w is ready, and w's destroy destroys it (strata_worker_destroy of the child
   then does nothing). Until the top of the tree is initialised, the child
   still takes registrations and strata_worker_host_alloc (its children inherit
   them); every other call on it is STRATA_ESTATE. The child's shared heap is
   mapped in this process: strata_worker_malloc(w, worker_id, ...) allocates
   there and strata_worker_copy_to/_from reach it directly. */
STRATA_API int strata_worker_add_worker(strata_worker *w, strata_worker *child, int *worker_id);

/* Register the chip callable exported by shared object so_path as a
   `const strata_chip_callable` named `symbol` (L3): the parent and every child
   load the object themselves, so it works after init and across restarts.
   so_path, symbol: copied. */
STRATA_API int strata_worker_register_chip_symbol(strata_worker *w, const char *so_path, const char *symbol,
                                                  strata_handle *out);

/* Run orch once on this thread (L3): it submits tasks to the children, and the
   call returns when every task is finished, with the first failure. A child that
   died since the last run makes this run return STRATA_ECHILD at once, naming
   it; under STRATA_ON_DEATH_RESTART it is replaced and the next run works.
   args: borrowed for the call; cfg: may be NULL, copied; its timeout_ms is the
   default of every task. READY only; the thread driving the worker. */
STRATA_API int strata_worker_run(strata_worker *w, strata_orch_fn orch, void *ctx, const strata_task_args *args,
                                 const strata_call_config *cfg);

/* Inside an orchestration function (L3): run chip callable h on chip worker
   `worker` (0..ndevices-1). args: copied before return; every tensor must lie in
   the shared host heap (strata_worker_host_alloc) or in that chip's memory
   (strata_worker_malloc). cfg: may be NULL (the run's); copied. Dependencies on
   earlier tasks of the run follow from the tags.
   At L4+: h is an orchestration function (strata_worker_register_orch) and
   `worker` an added worker; the tensors lie in this worker's shared heap (or
   memory it adopted or, in a worker child, inherited from the levels above) or
   in that worker's memory (strata_worker_malloc). */
STRATA_API int strata_submit_next_level(strata_orch *o, strata_handle h, const strata_task_args *args,
                                        const strata_call_config *cfg, int worker);
/* A group: n members of chip callable h, member m with args[m] on chip worker
   workers[m] (distinct). The group is one node of the dependency graph: it reads
   and writes the union of its members' tensors, its members start together once
   every target chip is idle, and it completes when all have (failing with the
   first member's failure). args, workers: n entries, copied. */
STRATA_API int strata_submit_next_level_group(strata_orch *o, strata_handle h, const strata_task_args *args,
                                              uint32_t n, const strata_call_config *cfg, const int *workers);
/* Inside an orchestration function (L3): run SUB function h on any idle SUB
   worker. args: copied; tensors in the shared host heap. */
STRATA_API int strata_submit_sub(strata_orch *o, strata_handle h, const strata_task_args *args);
/* A group of n SUB tasks that start together on n idle SUB workers (n at most
   num_sub_workers); one node of the dependency graph, as above. */
STRATA_API int strata_submit_sub_group(strata_orch *o, strata_handle h, const strata_task_args *args, uint32_t n);
/* A copy task (L3+): after every earlier writer of src's bytes and every earlier
   reader and writer of dst's (the tags INPUT src, OUTPUT dst), move src's bytes
   to dst. dst and src are contiguous views of the same byte size, each in this
   worker's memory (its heap, memory it adopted or inherited), in a worker
   child's (local, L4+), or in a remote worker's (MPI): data between remote
   workers moves rank to rank, never through this process. Both ends in this
   process: the engine copies when the task is ready. dst, src: copied. */
STRATA_API int strata_submit_copy(strata_orch *o, const strata_tensor *dst, const strata_tensor *src);
/* Scopes of an orchestration function (L3): nest like chip scopes; an unmatched
   end is STRATA_EINVAL. */
STRATA_API int strata_orch_scope_begin(strata_orch *o);
STRATA_API int strata_orch_scope_end(strata_orch *o);

/* The pid of child `worker` (chips 0..ndevices-1 at L3, added workers at L4+,
   then SUB workers). A child
   that died and was not replaced yet answers STRATA_ECHILD. */
STRATA_API int strata_worker_child_pid(const strata_worker *w, int worker, pid_t *out);

/* Run a registered chip callable once (L2): its orchestration function runs on
   this thread, and the call returns when every task it submitted is finished.
   args: borrowed for the call (passed to the orchestration function); cfg: may
   be NULL (defaults), copied. Returns the first failure of the run; the worker
   stays READY (a timed-out task leaves it FAILED). READY only. */
STRATA_API int strata_worker_run_chip(strata_worker *w, strata_handle chip,
                                      const strata_task_args *args,
                                      const strata_call_config *cfg);

typedef struct strata_ring_stats { uint64_t size, high_water; } strata_ring_stats;

typedef struct strata_run_stats {
    uint64_t          tasks_completed, tasks_failed, tasks_canceled; /* since create */
    strata_ring_stats task_window;   /* slots, of the last run (L3+: node_task_window) */
    strata_ring_stats heap;          /* bytes, of the last run */
    strata_ring_stats dep_pool;      /* edge records, of the last run */
    uint64_t          child_restarts; /* L3+: children replaced so far */
} strata_run_stats;

/* Counters and the ring high-water marks of the last run. Any state but RUNNING
   (and from the driving thread only). */
STRATA_API int strata_worker_stats(const strata_worker *w, strata_run_stats *out);

/* The last run that finished, in time (L2 and up). `size`: the caller's
   sizeof(strata_run_info), set before the call: a multiple of 8, at least 8;
   fields past it are not written, and on return it says how many bytes this
   library filled, so programs and libraries of different versions agree. */
typedef struct strata_run_info {
    uint32_t size;
    uint32_t tasks;              /* tasks the run submitted (L3+; L2: 0) */
    uint64_t wall_ns;            /* from entering strata_worker_run(_chip) to its return */
    uint64_t orch_ns;            /* inside the orchestration function (L3+; L2: 0) */
    uint64_t longest_task_ns;    /* the longest task, from posted to answered (L3+) */
    uint64_t longest_task;       /* its task id (1, 2, ... in submit order), 0 when none */
    /* L2: the last run's rings of each scope depth (0: the run's own scope, 1,
       2, and 3 for 3 and deeper): size and high-water mark (L3+: zeros) */
    strata_ring_stats task_window_by_depth[4];
    strata_ring_stats heap_by_depth[4];
    strata_ring_stats dep_pool_by_depth[4];
} strata_run_info;
STRATA_API int strata_worker_run_info(const strata_worker *w, strata_run_info *out);

/* What each child (L3+) did since the worker was created. */
typedef struct strata_child_stats {
    int      worker;             /* its id */
    pid_t    pid;                /* its process now; 0 while dead, or remote */
    uint64_t tasks;              /* tasks it answered */
    uint64_t busy_ns;            /* time from posting a task to it until its answer */
    uint64_t restarts;           /* times it was replaced */
} strata_child_stats;
/* Up to cap children's figures into out[], in worker id order; *count: how
   many children there are (call with cap 0 to size out). out_size: the
   caller's sizeof(strata_child_stats), the array's stride; each element gets
   no more than that, so a later library that adds fields keeps old programs
   working. L3+, from init to close. */
STRATA_API int strata_worker_child_stats(const strata_worker *w, strata_child_stats *out, uint32_t out_size,
                                         uint32_t cap, uint32_t *count);

#ifdef __cplusplus
}
#endif

#endif
