/* Tensor views inside the library: validation, the bytes a view touches, and the
 * exact overlap test the TensorMap uses. */
#ifndef STRATA_CORE_TENSOR_H
#define STRATA_CORE_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "strata/tensor.h"

/* The byte interval a valid view touches, [lo, hi) in absolute addresses, and
   whether every byte in it is touched (a dense view). */
typedef struct strata__extent {
    uint64_t lo, hi;
    bool     dense;
} strata__extent;

/* Check one tensor: dtype, ndims 1..5, every dimension >= 1, strides >= 0, addr
   not 0, and the view inside [addr, addr + nbytes). On success fills *ext. On
   failure the message starts with "tensor <index>: " and says what to change. */
int strata__tensor_check(const strata_tensor *t, uint32_t index, strata__extent *ext);

/* Check a whole strata_task_args: counts within the limits, non-NULL arrays for
   nonzero counts, valid tags, then strata__tensor_check on each tensor. `exts`
   (ntensors entries) may be NULL when only validity matters. */
int strata__task_args_check(const strata_task_args *args, uint32_t max_tensors,
                            uint32_t max_scalars, strata__extent *exts);

/* Whether tag reads / writes its tensor. */
static inline bool strata__tag_reads(strata_tag tag)
{
    return tag == STRATA_INPUT || tag == STRATA_INOUT;
}
static inline bool strata__tag_writes(strata_tag tag)
{
    return tag == STRATA_OUTPUT || tag == STRATA_INOUT || tag == STRATA_OUTPUT_EXISTING;
}

/* Scratch space for strata__views_overlap: the contiguous runs of two views. */
#define STRATA__OVERLAP_MAX_RUNS 4096
typedef struct strata__overlap_scratch {
    uint64_t a[STRATA__OVERLAP_MAX_RUNS];
    uint64_t b[STRATA__OVERLAP_MAX_RUNS];
} strata__overlap_scratch;

/* Whether two valid views touch a common byte. Exact when each view has at most
   STRATA__OVERLAP_MAX_RUNS contiguous runs; beyond that it answers by byte
   interval, which can add an ordering but never drop one. */
bool strata__views_overlap(const strata_tensor *a, const strata__extent *ea,
                           const strata_tensor *b, const strata__extent *eb,
                           strata__overlap_scratch *scratch);

/* A view as a box of a row-major lattice: innermost stride 1, each stride a
   multiple of the next, every coordinate of the box inside its dimension's
   span st[k-1] / st[k]. The tiles of one matrix are such boxes, and two boxes
   of one lattice (same element size and strides) share an element exactly when
   their coordinate intervals meet in every dimension. */
typedef struct strata__box {
    uint32_t ndims, es;                   /* dimensions, element size */
    uint64_t st[STRATA_MAX_DIMS];         /* strides, elements */
    uint64_t c[STRATA_MAX_DIMS];          /* the box's first coordinates */
    uint64_t shape[STRATA_MAX_DIMS];
} strata__box;
/* Fill *out when t (at least 2 dimensions) is such a box; false otherwise. */
bool strata__view_box(const strata_tensor *t, strata__box *out);

/* Whether view a touches every byte that view b touches (used to drop TensorMap
   entries a new writer makes redundant). Conservative: false when unsure. */
bool strata__view_covers(const strata__extent *ea, const strata__extent *eb);

/* Coverage in parts: b's byte interval split into at most 64 equal blocks (the
   last may be shorter); bit k of the result is set when view a touches every
   byte of block k. Conservative like strata__view_covers: only a dense a sets
   bits. strata__extent_all_blocks(eb) is the mask of all of b's blocks. So
   several writers that each cover a part of an earlier access can, together,
   make it redundant (the TensorMap ORs their bits). */
uint64_t strata__view_covered_blocks(const strata__extent *ea, const strata__extent *eb);
uint64_t strata__extent_all_blocks(const strata__extent *eb);

const char *strata__tag_name(strata_tag tag);
const char *strata__dtype_name(strata_dtype dtype);

#endif
