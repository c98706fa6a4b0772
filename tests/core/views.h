/* Views for the tests of core/tensor and core/tensormap: making them, random
 * ones (strided, broadcast, boxes of a lattice) and the bytes each touches,
 * by enumeration, as the reference the exact overlap code is checked against. */
#ifndef STRATA_TEST_VIEWS_H
#define STRATA_TEST_VIEWS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/tensor.h"

static inline strata_tensor view(uint64_t base, uint64_t nbytes, strata_dtype dt, uint64_t offset, uint32_t ndims,
                          const uint64_t *shape, const int64_t *strides)
{
    strata_tensor t;
    memset(&t, 0, sizeof t);
    t.addr = base;
    t.nbytes = nbytes;
    t.dtype = dt;
    t.offset = offset;
    t.ndims = ndims;
    for (uint32_t i = 0; i < ndims; i++) {
        t.shape[i] = shape[i];
        t.strides[i] = strides ? strides[i] : 0;
    }
    return t;
}

/* Every byte a view touches, by enumeration, as a bitmap over [base, base+n). */
static inline void touch_bytes(const strata_tensor *t, uint8_t *bits, uint64_t base)
{
    uint64_t st[STRATA_MAX_DIMS];
    bool all_zero = true;
    for (uint32_t i = 0; i < t->ndims; i++)
        all_zero &= t->strides[i] == 0;
    uint64_t s = 1;
    for (uint32_t i = t->ndims; i-- > 0;) {
        st[i] = all_zero ? s : (uint64_t)t->strides[i];
        s *= t->shape[i];
    }
    uint64_t idx[STRATA_MAX_DIMS] = {0};
    size_t es = strata_dtype_size(t->dtype);
    for (;;) {
        uint64_t e = t->offset;
        for (uint32_t i = 0; i < t->ndims; i++)
            e += idx[i] * st[i];
        for (size_t b = 0; b < es; b++)
            bits[t->addr - base + e * es + b] = 1;
        uint32_t d = t->ndims;
        while (d-- > 0) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
        if (d == UINT32_MAX)
            break;
    }
}

static uint64_t rng = 88172645463325252ull;
static inline uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static inline strata_tensor random_view(uint64_t base, uint64_t nbytes)
{
    static const strata_dtype dts[] = {STRATA_U8, STRATA_U16, STRATA_F32, STRATA_F64};
    for (;;) {
        strata_tensor t;
        memset(&t, 0, sizeof t);
        t.addr = base;
        t.nbytes = nbytes;
        t.dtype = dts[next_rand() % 4];
        t.ndims = 1 + (uint32_t)(next_rand() % 3);
        bool contiguous = next_rand() % 3 == 0;
        for (uint32_t i = 0; i < t.ndims; i++) {
            t.shape[i] = 1 + next_rand() % 5;
            if (!contiguous)
                t.strides[i] = (int64_t)(next_rand() % 9);
        }
        t.offset = next_rand() % 16;
        if (strata__tensor_check(&t, 0, NULL) == STRATA_OK)
            return t;
    }
}

/* A random box of a row-major lattice of nd dims (spans span[1..]), element
   size of dtype dt: the tiles of one matrix. Sometimes the box runs past its
   span (a wrapping view: not a box of the lattice, which overlap must still
   get right). */
static inline strata_tensor random_box(uint64_t base, uint64_t nbytes, strata_dtype dt, uint32_t nd, const uint64_t *span)
{
    for (;;) {
        int64_t strides[STRATA_MAX_DIMS];
        uint64_t shape[STRATA_MAX_DIMS], offset = 0, stride = 1;
        for (uint32_t k = nd; k-- > 0;) {
            strides[k] = (int64_t)stride;
            if (k > 0)
                stride *= span[k];
        }
        for (uint32_t k = 0; k < nd; k++) {
            uint64_t limit = k == 0 ? 4 : span[k];
            uint64_t c = next_rand() % limit;
            shape[k] = 1 + next_rand() % (next_rand() % 8 == 0 ? limit : (limit - c));
            offset += c * (uint64_t)strides[k];
        }
        strata_tensor t = view(base, nbytes, dt, offset, nd, shape, strides);
        if (strata__tensor_check(&t, 0, NULL) == STRATA_OK)
            return t;
    }
}

#endif
