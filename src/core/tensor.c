/* Tensor views: validation, extents, exact overlap of strided views. */
#include "core/tensor.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

static const uint8_t dtype_sizes[] = {
    [STRATA_U8] = 1, [STRATA_I8] = 1, [STRATA_U16] = 2, [STRATA_I16] = 2,
    [STRATA_U32] = 4, [STRATA_I32] = 4, [STRATA_U64] = 8, [STRATA_I64] = 8,
    [STRATA_F16] = 2, [STRATA_BF16] = 2, [STRATA_F32] = 4, [STRATA_F64] = 8,
};
static const char *const dtype_names[] = {
    [STRATA_U8] = "U8", [STRATA_I8] = "I8", [STRATA_U16] = "U16", [STRATA_I16] = "I16",
    [STRATA_U32] = "U32", [STRATA_I32] = "I32", [STRATA_U64] = "U64", [STRATA_I64] = "I64",
    [STRATA_F16] = "F16", [STRATA_BF16] = "BF16", [STRATA_F32] = "F32", [STRATA_F64] = "F64",
};
#define NDTYPES (sizeof dtype_sizes / sizeof dtype_sizes[0])

static inline size_t dtype_size(strata_dtype dtype)
{
    return (unsigned)dtype < NDTYPES ? dtype_sizes[dtype] : 0;
}

size_t strata_dtype_size(strata_dtype dtype)
{
    return dtype_size(dtype);
}

const char *strata__dtype_name(strata_dtype dtype)
{
    return (unsigned)dtype < NDTYPES ? dtype_names[dtype] : "invalid dtype";
}

const char *strata__tag_name(strata_tag tag)
{
    switch (tag) {
    case STRATA_INPUT: return "INPUT";
    case STRATA_OUTPUT: return "OUTPUT";
    case STRATA_INOUT: return "INOUT";
    case STRATA_OUTPUT_EXISTING: return "OUTPUT_EXISTING";
    case STRATA_NO_DEP: return "NO_DEP";
    }
    return "invalid tag";
}

strata_tensor strata_tensor_make(const void *addr, strata_dtype dtype, uint32_t ndims,
                                 const uint64_t *shape)
{
    strata_tensor t;
    memset(&t, 0, sizeof t);
    if (ndims == 0 || ndims > STRATA_MAX_DIMS || shape == NULL || dtype_size(dtype) == 0) {
        t.dtype = (strata_dtype)NDTYPES; /* out of range: every submit rejects it */
        return t;
    }
    t.addr = (uint64_t)(uintptr_t)addr;
    t.dtype = dtype;
    t.ndims = ndims;
    uint64_t n = dtype_size(dtype);
    for (uint32_t i = 0; i < ndims; i++) {
        t.shape[i] = shape[i];
        if (__builtin_mul_overflow(n, shape[i], &n))
            n = UINT64_MAX;
    }
    t.nbytes = n;
    return t;
}

/* Strides in elements, with "all zero" expanded to row-major contiguous. */
static void effective_strides(const strata_tensor *t, uint64_t *st)
{
    bool all_zero = true;
    for (uint32_t i = 0; i < t->ndims; i++)
        all_zero &= t->strides[i] == 0;
    if (!all_zero) {
        for (uint32_t i = 0; i < t->ndims; i++)
            st[i] = (uint64_t)t->strides[i];
        return;
    }
    uint64_t s = 1;
    for (uint32_t i = t->ndims; i-- > 0;) {
        st[i] = s;
        s *= t->shape[i];
    }
}

/* The common views without the general loops: a valid 1-D contiguous view,
   and a valid 2-D row-major view with a row stride (a tile of a matrix).
   True, with *ext filled when ext is not NULL, for such a view; false for
   anything else, including every invalid view, which check_general() then
   decides and explains. Inlined where tensors are checked one after another. */
static inline __attribute__((always_inline)) bool common_view(const strata_tensor *t, strata__extent *ext)
{
    size_t es = dtype_size(t->dtype);
    if (t->ndims == 1 && (uint64_t)t->strides[0] <= 1 && es && t->addr && t->shape[0]) {
        uint64_t end, end_bytes;   /* elements, bytes; a multiply, not a divide */
        if (!__builtin_add_overflow(t->offset, t->shape[0], &end) &&
            !__builtin_mul_overflow(end, (uint64_t)es, &end_bytes) && end_bytes <= t->nbytes &&
            t->addr + end_bytes >= t->addr) {
            if (ext)
                *ext = (strata__extent){t->addr + t->offset * es, t->addr + end_bytes, true};
            return true;
        }
        return false;
    }
    if (t->ndims == 2 && t->strides[1] == 1 && t->strides[0] > 0 && es && t->addr && t->shape[0] &&
        t->shape[1]) {
        uint64_t st0 = (uint64_t)t->strides[0], rows, last, end_bytes;
        if (!__builtin_mul_overflow(t->shape[0] - 1, st0, &rows) &&
            !__builtin_add_overflow(t->offset, rows + t->shape[1], &last) && rows + t->shape[1] > rows &&
            !__builtin_mul_overflow(last, (uint64_t)es, &end_bytes) && end_bytes <= t->nbytes &&
            t->addr + end_bytes >= t->addr) {
            if (ext)   /* dense: its rows follow each other */
                *ext = (strata__extent){t->addr + t->offset * es, t->addr + end_bytes,
                                        t->shape[0] == 1 || st0 == t->shape[1]};
            return true;
        }
    }
    return false;
}

/* Any view: common_view()'s answer, or the general loops and every error. */
static __attribute__((noinline)) int check_general(const strata_tensor *t, uint32_t index, strata__extent *ext)
{
    size_t es = dtype_size(t->dtype);
    if (es == 0)
        return strata__fail(STRATA_EINVAL,
                            "tensor %u: dtype %d is not a strata_dtype (was it made by "
                            "strata_tensor_make from bad input?)", index, (int)t->dtype);
    if (t->ndims == 0 || t->ndims > STRATA_MAX_DIMS)
        return strata__fail(STRATA_EINVAL, "tensor %u: ndims is %u; it must be 1..%d", index,
                            t->ndims, STRATA_MAX_DIMS);
    if (t->addr == 0)
        return strata__fail(STRATA_EINVAL,
                            "tensor %u: addr is 0; pass a buffer's base address "
                            "(intermediates come from strata_chip_alloc)", index);
    for (uint32_t i = 0; i < t->ndims; i++) {
        if (t->shape[i] == 0)
            return strata__fail(STRATA_EINVAL, "tensor %u: shape[%u] is 0; every dimension must be at least 1",
                                index, i);
        if (t->strides[i] < 0)
            return strata__fail(STRATA_EINVAL, "tensor %u: strides[%u] is %lld; strides must be >= 0 (elements)",
                                index, i, (long long)t->strides[i]);
    }
    uint64_t st[STRATA_MAX_DIMS];
    effective_strides(t, st);
    /* last element index = offset + sum (shape - 1) * stride, all in elements */
    uint64_t last = t->offset;
    bool overflow = false;
    for (uint32_t i = 0; i < t->ndims; i++) {
        uint64_t span;
        overflow |= __builtin_mul_overflow(t->shape[i] - 1, st[i], &span);
        overflow |= __builtin_add_overflow(last, span, &last);
    }
    uint64_t lo_bytes, hi_bytes;
    overflow |= __builtin_mul_overflow(t->offset, (uint64_t)es, &lo_bytes);
    overflow |= __builtin_add_overflow(last, 1, &hi_bytes);
    overflow |= __builtin_mul_overflow(hi_bytes, (uint64_t)es, &hi_bytes);
    if (overflow || hi_bytes > t->nbytes)
        return strata__fail(STRATA_EINVAL,
                            "tensor %u: the view (offset %llu, %u dims, %s) touches bytes up to %s%llu "
                            "of its buffer, beyond its nbytes %llu; fix offset, shape or strides",
                            index, (unsigned long long)t->offset, t->ndims, strata__dtype_name(t->dtype),
                            overflow ? "more than " : "", (unsigned long long)(overflow ? UINT64_MAX : hi_bytes),
                            (unsigned long long)t->nbytes);
    if (t->addr + hi_bytes < t->addr)
        return strata__fail(STRATA_EINVAL, "tensor %u: addr 0x%llx + %llu bytes wraps the address space",
                            index, (unsigned long long)t->addr, (unsigned long long)hi_bytes);
    if (ext) {
        ext->lo = t->addr + lo_bytes;
        ext->hi = t->addr + hi_bytes;
        /* dense: a row-major contiguous view, so it fills [lo, hi) exactly */
        uint64_t expect = 1;
        bool dense = true;
        for (uint32_t i = t->ndims; i-- > 0;) {
            if (t->shape[i] == 1)
                continue;
            dense &= st[i] == expect;
            expect *= t->shape[i];
        }
        ext->dense = dense;
    }
    return STRATA_OK;
}

/* strata__tensor_check, inlined into the loop over a task's tensors. */
static inline __attribute__((always_inline)) int check(const strata_tensor *t, uint32_t index, strata__extent *ext)
{
    return common_view(t, ext) ? STRATA_OK : check_general(t, index, ext);
}

int strata__tensor_check(const strata_tensor *t, uint32_t index, strata__extent *ext)
{
    return check(t, index, ext);
}

int strata__task_args_check(const strata_task_args *args, uint32_t max_tensors,
                            uint32_t max_scalars, strata__extent *exts)
{
    if (args == NULL)
        return STRATA_OK;
    if (args->ntensors > max_tensors)
        return strata__fail(STRATA_EINVAL, "%u tensors given; a task takes at most %u",
                            args->ntensors, max_tensors);
    if (args->nscalars > max_scalars)
        return strata__fail(STRATA_EINVAL, "%u scalars given; a task takes at most %u",
                            args->nscalars, max_scalars);
    if (args->ntensors && (args->tensors == NULL || args->tags == NULL))
        return strata__fail(STRATA_EINVAL, "ntensors is %u but the %s array is NULL",
                            args->ntensors, args->tensors == NULL ? "tensors" : "tags");
    if (args->nscalars && args->scalars == NULL)
        return strata__fail(STRATA_EINVAL, "nscalars is %u but the scalars array is NULL",
                            args->nscalars);
    for (uint32_t i = 0; i < args->ntensors; i++) {
        if ((unsigned)args->tags[i] > STRATA_NO_DEP)
            return strata__fail(STRATA_EINVAL, "tensor %u: tag %d is not a strata_tag", i,
                                (int)args->tags[i]);
        int rc = check(&args->tensors[i], i, exts ? &exts[i] : NULL);
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

bool strata__view_covers(const strata__extent *ea, const strata__extent *eb)
{
    return ea->dense && ea->lo <= eb->lo && eb->hi <= ea->hi;
}

/* Block size and count of eb's interval split into at most 64 blocks. */
static uint64_t block_bytes(const strata__extent *eb, uint64_t *nblocks)
{
    uint64_t len = eb->hi - eb->lo, bs = (len + 63) / 64;
    if (bs == 0)
        bs = 1;
    *nblocks = (len + bs - 1) / bs;
    return bs;
}

static uint64_t low_bits(uint64_t n)
{
    return n >= 64 ? ~0ull : (1ull << n) - 1;
}

uint64_t strata__extent_all_blocks(const strata__extent *eb)
{
    uint64_t n;
    block_bytes(eb, &n);
    return low_bits(n);
}

uint64_t strata__view_covered_blocks(const strata__extent *ea, const strata__extent *eb)
{
    if (!ea->dense || ea->hi <= eb->lo || eb->hi <= ea->lo)
        return 0;
    uint64_t n, bs = block_bytes(eb, &n);
    /* first block that starts at or after ea->lo; blocks before the one that
       ends after ea->hi (the last block ends at eb->hi) */
    uint64_t first = ea->lo <= eb->lo ? 0 : (ea->lo - eb->lo + bs - 1) / bs;
    uint64_t end = ea->hi >= eb->hi ? n : (ea->hi - eb->lo) / bs;
    return end > first ? low_bits(end) & ~low_bits(first) : 0;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* Write the start of every contiguous run of a view into runs[], sorted. Returns
   the run count and the run length in bytes, or 0 when there are more than
   STRATA__OVERLAP_MAX_RUNS runs. */
static uint64_t view_runs(const strata_tensor *t, uint64_t *runs, uint64_t *run_bytes)
{
    uint64_t st[STRATA_MAX_DIMS];
    effective_strides(t, st);
    size_t es = dtype_size(t->dtype);
    /* Fold trailing dimensions that are contiguous with each other into one run. */
    int inner = (int)t->ndims - 1;
    uint64_t run_elems = 1;
    if (st[inner] == 1) {
        run_elems = t->shape[inner];
        while (inner > 0 && st[inner - 1] == run_elems) {
            inner--;
            run_elems *= t->shape[inner];
        }
        inner--; /* dims [0, inner] enumerate runs */
    }
    uint64_t nruns = 1;
    for (int i = 0; i <= inner; i++) {
        if (__builtin_mul_overflow(nruns, t->shape[i], &nruns) || nruns > STRATA__OVERLAP_MAX_RUNS)
            return 0;
    }
    uint64_t idx[STRATA_MAX_DIMS] = {0};
    bool sorted = true;
    for (uint64_t r = 0; r < nruns; r++) {
        uint64_t e = t->offset;
        for (int i = 0; i <= inner; i++)
            e += idx[i] * st[i];
        runs[r] = t->addr + e * es;
        sorted = sorted && (r == 0 || runs[r] >= runs[r - 1]);
        for (int i = inner; i >= 0; i--) {
            if (++idx[i] < t->shape[i])
                break;
            idx[i] = 0;
        }
    }
    if (!sorted)   /* row-major views (strides not increasing) come out sorted already */
        qsort(runs, nruns, sizeof runs[0], cmp_u64);
    *run_bytes = run_elems * es;
    return nruns;
}

bool strata__view_box(const strata_tensor *t, strata__box *out)
{
    uint32_t n = t->ndims;
    if (n < 2 || n > STRATA_MAX_DIMS)
        return false;
    effective_strides(t, out->st);
    if (out->st[n - 1] != 1 || out->st[0] == 0)
        return false;
    for (uint32_t k = 1; k < n; k++)
        if (out->st[k] == 0 || out->st[k - 1] % out->st[k] != 0)
            return false;
    uint64_t r = t->offset;
    for (uint32_t k = 0; k < n; k++) {
        out->c[k] = r / out->st[k];
        r %= out->st[k];
        out->shape[k] = t->shape[k];
        if (k > 0 && out->c[k] + t->shape[k] > out->st[k - 1] / out->st[k])
            return false;   /* runs past its dimension's span: not a box */
    }
    out->ndims = n;
    out->es = (uint32_t)dtype_size(t->dtype);
    return true;
}

/* Two views of one base that are boxes of one lattice (strata__view_box, same
   element size and strides): an element's coordinates are then its address's
   digits in that mixed radix, so the boxes share an element exactly when
   their coordinate intervals meet in every dimension. Returns 0 or 1, or -1
   when the views are not of this kind. */
static int lattice_overlap(const strata_tensor *a, const strata_tensor *b)
{
    strata__box x, y;
    if (a->ndims != b->ndims || a->addr != b->addr || !strata__view_box(a, &x) || !strata__view_box(b, &y) ||
        x.es != y.es)
        return -1;
    for (uint32_t k = 0; k < x.ndims; k++)
        if (x.st[k] != y.st[k])
            return -1;
    for (uint32_t k = 0; k < x.ndims; k++)
        if (x.c[k] + x.shape[k] <= y.c[k] || y.c[k] + y.shape[k] <= x.c[k])
            return 0;
    return 1;
}

bool strata__views_overlap(const strata_tensor *a, const strata__extent *ea,
                           const strata_tensor *b, const strata__extent *eb,
                           strata__overlap_scratch *scratch)
{
    if (ea->hi <= eb->lo || eb->hi <= ea->lo)
        return false;
    if (ea->dense && eb->dense)
        return true;   /* both fill their intervals, and the intervals meet */
    int boxes = lattice_overlap(a, b);
    if (boxes >= 0)
        return boxes;
    /* A dense view is one run: its whole interval. */
    uint64_t la = ea->hi - ea->lo, lb = eb->hi - eb->lo, na = 1, nb = 1;
    scratch->a[0] = ea->lo;
    scratch->b[0] = eb->lo;
    if (!ea->dense)
        na = view_runs(a, scratch->a, &la);
    if (na && !eb->dense)
        nb = view_runs(b, scratch->b, &lb);
    if (na == 0 || nb == 0)
        return true;   /* too many runs to enumerate: order by interval */
    /* Sweep the two lists, sorted by start. All runs of one view have the same
       length, so they are sorted by end too: a run that ends first cannot meet any
       later run of the other list, even where runs of one view overlap (stride 0). */
    uint64_t i = 0, j = 0;
    while (i < na && j < nb) {
        uint64_t a0 = scratch->a[i], a1 = a0 + la, b0 = scratch->b[j], b1 = b0 + lb;
        if (a0 < b1 && b0 < a1)
            return true;
        if (a1 <= b1)
            i++;
        else
            j++;
    }
    return false;
}
