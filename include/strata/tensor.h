/* Strata: tensors, task arguments and call configuration (every level).
 *
 * A strata_tensor describes a view into a buffer: the buffer's base and size, and
 * the view's first element, shape and strides. Tags on the tensors of a task tell
 * Strata how the task uses them; dependencies between tasks follow from the tags by
 * overlap of the bytes the views touch (docs/design.md, "Tags and ordering"). */
#ifndef STRATA_TENSOR_H
#define STRATA_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "strata/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_MAX_DIMS 5

typedef enum strata_tag {
    STRATA_INPUT,            /* read: runs after earlier writers of overlapping bytes */
    STRATA_OUTPUT,           /* written: runs after earlier readers and writers */
    STRATA_INOUT,            /* read and written */
    STRATA_OUTPUT_EXISTING,  /* ordered like OUTPUT; kept for source compatibility */
    STRATA_NO_DEP            /* takes part in no ordering: the caller guarantees safety */
} strata_tag;

typedef enum strata_dtype {
    STRATA_U8, STRATA_I8, STRATA_U16, STRATA_I16, STRATA_U32, STRATA_I32,
    STRATA_U64, STRATA_I64, STRATA_F16, STRATA_BF16, STRATA_F32, STRATA_F64
} strata_dtype;

typedef struct strata_tensor {
    uint64_t     addr;      /* base of the buffer (chip buffer or shared host buffer); not 0 */
    uint64_t     nbytes;    /* size of that buffer, bytes */
    uint64_t     offset;    /* elements from addr to the view's first element */
    strata_dtype dtype;
    uint32_t     ndims;     /* 1..STRATA_MAX_DIMS */
    uint64_t     shape[STRATA_MAX_DIMS];    /* elements per dimension, each >= 1 */
    int64_t      strides[STRATA_MAX_DIMS];  /* elements, >= 0; all zero means contiguous */
} strata_tensor;

/* A contiguous view of ndims dimensions starting at addr. shape: borrowed.
   Bad input (ndims 0 or > 5, unknown dtype, NULL shape) yields a tensor with
   ndims = 0 and dtype out of range, which every submit rejects with a message.
   Any thread. */
STRATA_API strata_tensor strata_tensor_make(const void *addr, strata_dtype dtype,
                                            uint32_t ndims, const uint64_t *shape);

/* Bytes per element of dtype; 0 for a value that is no dtype. Any thread. */
STRATA_API size_t strata_dtype_size(strata_dtype dtype);

/* The arguments of one task: a view, the caller owns the arrays. Zero tensors or
   scalars may come with NULL arrays. A submit copies what it needs before it
   returns, so the caller may reuse the arrays at once. */
typedef struct strata_task_args {
    const strata_tensor *tensors;   /* ntensors entries, borrowed */
    const strata_tag    *tags;      /* one per tensor, borrowed */
    uint32_t             ntensors;
    const uint64_t      *scalars;   /* nscalars entries, borrowed */
    uint32_t             nscalars;
} strata_task_args;

/* Limits on one task's arguments, checked at submit (STRATA_EINVAL). */
#define STRATA_MAX_CORE_TENSORS 32   /* an in-core (L2) task */
#define STRATA_MAX_CORE_SCALARS 16
#define STRATA_MAX_TASK_TENSORS 256  /* a chip, SUB or higher-level task */
#define STRATA_MAX_TASK_SCALARS 128

/* A small POD passed by value to the target of a run or a task. Zero everywhere
   means "the defaults". */
typedef struct strata_call_config {
    uint32_t block_dim;         /* reserved for SPMD launches; 0 or 1 */
    uint32_t timeout_ms;        /* per task; 0 = the worker's default (task_timeout_ms) */
    uint64_t ring_task_window;  /* per-run ring sizes of every scope depth; 0 = environment or default */
    uint64_t ring_heap;         /* bytes */
    uint64_t ring_dep_pool;     /* edge records */
    uint32_t trace;             /* 0: recorded while a trace is open; STRATA_TRACE_SKIP: never (strata/trace.h) */
    uint64_t user[4];           /* free for the orchestration function */
    /* L2: each scope depth's rings (0: the run's own scope, 1, 2, and 3 for 3
       and deeper), where nonzero, before the scalars above. */
    uint64_t ring_task_window_by_depth[4];
    uint64_t ring_heap_by_depth[4];
    uint64_t ring_dep_pool_by_depth[4];
} strata_call_config;

#ifdef __cplusplus
}
#endif

#endif
