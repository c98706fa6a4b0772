/* Strata: the chip level (L2): kernels, chip callables and the calls a chip
 * orchestration function makes.
 *
 * A chip callable pairs an orchestration function, run on the chip's orchestrator
 * thread, with a table func_id -> (core type, kernel). The orchestration function
 * submits in-core tasks with tagged tensors; Strata infers their dependencies and
 * runs each kernel on an idle core of its type. */
#ifndef STRATA_CHIP_H
#define STRATA_CHIP_H

#include <stdint.h>

#include "strata/export.h"
#include "strata/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum strata_core_type { STRATA_AIC, STRATA_AIV } strata_core_type;

/* A kernel runs on one simulated core. It receives the task's args as submitted
   (tags included); each tensor's first element is at addr + offset *
   strata_dtype_size(dtype), memory the kernel may touch. args: borrowed for the
   call. Return 0 on success; nonzero fails the task, cancels its dependents and
   fails the run with STRATA_ETASK. Runs on a core thread. */
typedef int (*strata_kernel_fn)(const strata_task_args *args);

typedef struct strata_kernel_entry {
    int              func_id;   /* >= 0, unique within one callable */
    strata_core_type core;      /* the core type that runs it */
    strata_kernel_fn fn;
} strata_kernel_entry;

/* Given to a chip orchestration function; valid only during that call. */
typedef struct strata_chip_orch strata_chip_orch;

/* Runs on the chip's orchestrator thread (at L2, the thread that called
   strata_worker_run_chip). args, cfg: borrowed for the call. Returns 0 or a
   negative strata_status; any other nonzero value becomes STRATA_ETASK. */
typedef int (*strata_chip_orch_fn)(strata_chip_orch *o, const strata_task_args *args,
                                   const strata_call_config *cfg);

typedef struct strata_chip_callable {
    const char                *name;      /* shows in errors; copied at register */
    strata_chip_orch_fn        orch;
    const strata_kernel_entry *kernels;   /* nkernels entries; copied at register */
    uint32_t                   nkernels;
} strata_chip_callable;

/* Submit one in-core task running kernel func_id of the running callable. args:
   copied before return (at most STRATA_MAX_CORE_TENSORS tensors and
   STRATA_MAX_CORE_SCALARS scalars); every tensor must lie in a chip buffer and
   name that buffer's base as addr (an intermediate only while its scope is
   open). Blocks while the task window or the dep_pool ring is full. After the
   run has failed, returns STRATA_ECANCELED at once. A failed submit fails the
   run. Orchestration function only. */
STRATA_API int strata_chip_submit(strata_chip_orch *o, int func_id, const strata_task_args *args);

/* A mixed task (a chip of clusters: aiv_cores = 2 * aic_cores, cluster i being
   AIC core i with AIV cores 2i and 2i + 1): up to three kernels, an AIC one and
   two AIV ones, started together on the three cores of one cluster, one node
   of the graph (one producer of the union of their tensors, at most
   STRATA_MAX_CORE_TENSORS in all), complete when all have (failed when one
   has). A func_id of -1: no such part; args of a part may be NULL. */
typedef struct strata_mixed_task {
    int                     aic_func_id, aiv0_func_id, aiv1_func_id;
    const strata_task_args *aic_args, *aiv0_args, *aiv1_args;
} strata_mixed_task;

/* Submit a mixed task; its number in the run (as strata_chip_submit_task
   says it) in *task (may be NULL). STRATA_EINVAL for a chip without clusters,
   a task of no part, a part whose kernel is of the other core type, or more
   tensors in all than a task takes; otherwise as strata_chip_submit.
   Orchestration function only. */
STRATA_API int strata_chip_submit_mixed(strata_chip_orch *o, const strata_mixed_task *t, uint32_t *task);

/* The same, saying the task's number in the run (0, 1, ... in submit order)
   in *task (may be NULL), for strata_chip_add_dep. */
STRATA_API int strata_chip_submit_task(strata_chip_orch *o, int func_id, const strata_task_args *args,
                                       uint32_t *task);

/* Runtime "host_build_graph" (the worker config's runtime): task `consumer`
   runs after task `producer` (numbers from strata_chip_submit_task). There a
   run's graph is built whole before any task runs, ordered by these edges
   only (tags still say which buffers a task touches), at most the task
   window's tasks and the dep_pool's edges; it is checked when the
   orchestration function returns: a cycle fails the run with STRATA_EINVAL
   naming a task on it, and nothing runs. STRATA_EINVAL for a task not yet
   submitted, a task on itself, or the tensormap_and_ringbuffer runtime (its
   order comes from the tags). Orchestration function only. */
STRATA_API int strata_chip_add_dep(strata_chip_orch *o, uint32_t producer, uint32_t consumer);

/* Scopes bound the lifetime of buffers from strata_chip_alloc. Every run has an
   implicit outermost scope. scope_end without a matching scope_begin is
   STRATA_EINVAL; scope_end never blocks. Orchestration function only. */
STRATA_API int strata_chip_scope_begin(strata_chip_orch *o);
STRATA_API int strata_chip_scope_end(strata_chip_orch *o);

/* An intermediate buffer of the given shape from the heap ring: *out is a
   contiguous tensor over it (offset 0). The buffer is recycled once its scope has
   ended and every task that used it has completed. shape: borrowed. Blocks while
   the heap is full and tasks are in flight; fails with STRATA_ERING when the
   request can never fit or nothing in flight can free space. Orchestration
   function only. */
STRATA_API int strata_chip_alloc(strata_chip_orch *o, strata_dtype dtype, uint32_t ndims,
                                 const uint64_t *shape, strata_tensor *out);

/* Load `symbol` from the shared object so_path as a kernel. The object stays
   loaded for the life of the process (a process-wide cache: loading the same path
   twice opens it once). so_path, symbol: borrowed. Any thread. */
STRATA_API int strata_kernel_load(const char *so_path, const char *symbol, strata_kernel_fn *out);

/* Compile the C source c_path into the shared object so_path with the system
   compiler ($CC, else cc) and -shared -fPIC -O2. extra_cflags (may be NULL) is
   split on whitespace and passed without a shell. On failure the message holds
   the compiler's output. All arguments borrowed. Any thread. */
STRATA_API int strata_kernel_compile(const char *c_path, const char *so_path,
                                     const char *extra_cflags);

#ifdef __cplusplus
}
#endif

#endif
