/* core.tensor: tensor views: validation with messages, extents, and the exact
 * overlap test checked against brute-force byte sets. */
#include "harness.h"

#include "core/tensor.h"
#include "views.h"

TEST_CASE(make_and_sizes)
{
    CHECK_EQ_U64(strata_dtype_size(STRATA_U8), 1);
    CHECK_EQ_U64(strata_dtype_size(STRATA_BF16), 2);
    CHECK_EQ_U64(strata_dtype_size(STRATA_F32), 4);
    CHECK_EQ_U64(strata_dtype_size(STRATA_F64), 8);
    CHECK_EQ_U64(strata_dtype_size((strata_dtype)99), 0);
    uint64_t shape[3] = {2, 3, 4};
    strata_tensor t = strata_tensor_make((void *)0x1000, STRATA_F32, 3, shape);
    CHECK_EQ_U64(t.addr, 0x1000);
    CHECK_EQ_U64(t.nbytes, 96);
    CHECK_EQ_U64(t.ndims, 3);
    CHECK_EQ_U64(t.offset, 0);
    strata__extent e;
    CHECK_OK(strata__tensor_check(&t, 0, &e));
    CHECK_EQ_U64(e.lo, 0x1000);
    CHECK_EQ_U64(e.hi, 0x1000 + 96);
    CHECK(e.dense);
    strata_tensor bad = strata_tensor_make((void *)0x1000, STRATA_F32, 6, shape);
    CHECK_EQ_U64(bad.ndims, 0);
    CHECK_STATUS(strata__tensor_check(&bad, 3, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("tensor 3: dtype");
    bad = strata_tensor_make((void *)0x1000, (strata_dtype)42, 1, shape);
    CHECK_STATUS(strata__tensor_check(&bad, 0, NULL), STRATA_EINVAL);
    bad = strata_tensor_make((void *)0x1000, STRATA_F32, 1, NULL);
    CHECK_STATUS(strata__tensor_check(&bad, 0, NULL), STRATA_EINVAL);
}

TEST_CASE(check_messages)
{
    uint64_t shape[2] = {4, 4};
    int64_t strides[2] = {8, 1};
    strata_tensor t = view(0x1000, 256, STRATA_F32, 0, 2, shape, strides);
    strata__extent e;
    CHECK_OK(strata__tensor_check(&t, 0, &e));
    CHECK_EQ_U64(e.hi - e.lo, (3 * 8 + 3 + 1) * 4);
    CHECK(!e.dense);
    t.offset = 40;   /* last element 40 + 27 = 67 > 63 */
    CHECK_STATUS(strata__tensor_check(&t, 2, &e), STRATA_EINVAL);
    CHECK_ERROR_HAS("tensor 2: the view (offset 40, 2 dims, F32) touches bytes up to 272");
    CHECK_ERROR_HAS("beyond its nbytes 256");
    t.offset = 0;
    t.shape[1] = UINT64_MAX / 2;
    CHECK_STATUS(strata__tensor_check(&t, 0, &e), STRATA_EINVAL);
    CHECK_ERROR_HAS("more than");
    t = view(0x1000, 256, STRATA_F32, 0, 2, shape, strides);
    t.ndims = 0;
    CHECK_STATUS(strata__tensor_check(&t, 0, &e), STRATA_EINVAL);
    CHECK_ERROR_HAS("ndims is 0; it must be 1..5");
    t.ndims = 2;
    t.addr = UINT64_MAX - 16;
    t.nbytes = 256;
    CHECK_STATUS(strata__tensor_check(&t, 0, &e), STRATA_EINVAL);
    CHECK_ERROR_HAS("wraps the address space");
}

TEST_CASE(args_check)
{
    uint64_t shape[1] = {4};
    strata_tensor t = view(0x1000, 16, STRATA_F32, 0, 1, shape, NULL);
    strata_tag tag = (strata_tag)9;
    strata_task_args a = {&t, &tag, 1, NULL, 0};
    CHECK_STATUS(strata__task_args_check(&a, 32, 16, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("tensor 0: tag 9 is not a strata_tag");
    a = (strata_task_args){NULL, NULL, 2, NULL, 0};
    CHECK_STATUS(strata__task_args_check(&a, 32, 16, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("ntensors is 2 but the tensors array is NULL");
    a = (strata_task_args){NULL, NULL, 0, NULL, 3};
    CHECK_STATUS(strata__task_args_check(&a, 32, 16, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("nscalars is 3 but the scalars array is NULL");
    CHECK_OK(strata__task_args_check(NULL, 32, 16, NULL));
    a = (strata_task_args){NULL, NULL, 0, NULL, 0};
    CHECK_OK(strata__task_args_check(&a, 32, 16, NULL));
}

/* Whether views a and b (of nb bytes from base) share a byte: ba and bb
   (zeroed, nb each) get the bytes each touches. */
static bool bytes_meet(const strata_tensor *a, const strata_tensor *b, uint64_t base, uint8_t *ba, uint8_t *bb,
                       size_t nb)
{
    touch_bytes(a, ba, base);
    touch_bytes(b, bb, base);
    bool meet = false;
    for (size_t i = 0; i < nb; i++)
        meet |= ba[i] && bb[i];
    return meet;
}

/* The overlap answer equals the brute-force byte-set intersection on 20,000
   random pairs of views (strided, broadcast, mixed dtypes). */
TEST_CASE(overlap_matches_brute_force)
{
    enum { NB = 512 };
    const uint64_t base = 0x10000;
    static strata__overlap_scratch scratch;
    uint64_t overlapping = 0, covered_parts = 0;
    for (int trial = 0; trial < 20000; trial++) {
        strata_tensor a = random_view(base, NB), b = random_view(base, NB);
        strata__extent ea, eb;
        CHECK_OK(strata__tensor_check(&a, 0, &ea));
        CHECK_OK(strata__tensor_check(&b, 0, &eb));
        uint8_t ba[NB] = {0}, bb[NB] = {0};
        bool truth = bytes_meet(&a, &b, base, ba, bb, NB);
        bool got = strata__views_overlap(&a, &ea, &b, &eb, &scratch);
        if (got != truth) {
            for (int k = 0; k < 2; k++) {
                const strata_tensor *v = k ? &b : &a;
                fprintf(stderr, "%c: dtype %d off %llu ndims %u shape", 'a' + k, (int)v->dtype,
                        (unsigned long long)v->offset, v->ndims);
                for (uint32_t i = 0; i < v->ndims; i++)
                    fprintf(stderr, " %llu/%lld", (unsigned long long)v->shape[i], (long long)v->strides[i]);
                fprintf(stderr, " dense %d [%llu,%llu)\n", k ? eb.dense : ea.dense,
                        (unsigned long long)((k ? eb.lo : ea.lo) - base), (unsigned long long)((k ? eb.hi : ea.hi) - base));
            }
        }
        if (got != truth)
            test_fail(__FILE__, __LINE__, "trial %d: overlap says %d, the bytes say %d", trial, got, truth);
        overlapping += truth;
        /* covers: when it says yes, every byte of b is in a */
        if (strata__view_covers(&ea, &eb))
            for (int i = 0; i < NB; i++)
                CHECK(!bb[i] || ba[i]);
        /* covered blocks: every byte of a block a says it covers is in a */
        uint64_t bits = strata__view_covered_blocks(&ea, &eb), all = strata__extent_all_blocks(&eb);
        uint64_t len = eb.hi - eb.lo, bs = (len + 63) / 64 ? (len + 63) / 64 : 1;
        CHECK((bits & ~all) == 0);
        for (uint64_t k = 0; k < 64; k++)
            if (bits >> k & 1)
                for (uint64_t i = eb.lo + k * bs; i < eb.lo + (k + 1) * bs && i < eb.hi; i++)
                    CHECK(ba[i - base]);
        if (strata__view_covers(&ea, &eb))
            CHECK_EQ_U64(bits, all);   /* the whole-view answer agrees */
        covered_parts += bits && bits != all;
        /* dense: it fills its interval */
        if (ea.dense)
            for (uint64_t i = ea.lo; i < ea.hi; i++)
                CHECK(ba[i - base]);
    }
    CHECK(overlapping > 1000 && overlapping < 19000);   /* both answers were exercised */
    CHECK(covered_parts > 100);                          /* partial coverage was exercised */
}

/* Boxes of one lattice (the tiles of a matrix, 2-D and 3-D), which overlap
   decides from their coordinates, match the byte sets on 20,000 pairs; so do
   pairs where one box wraps past its span (the general path). */
TEST_CASE(lattice_boxes_match_brute_force)
{
    enum { NB = 4096 };
    const uint64_t base = 0x10000;
    static strata__overlap_scratch scratch;
    static const strata_dtype dts[] = {STRATA_U8, STRATA_U16, STRATA_F32, STRATA_F64};
    uint64_t overlapping = 0;
    for (int trial = 0; trial < 20000; trial++) {
        strata_dtype dt = dts[next_rand() % 4];
        uint32_t nd = 2 + (uint32_t)(next_rand() % 2);
        uint64_t span[3] = {0, 2 + next_rand() % 7, 2 + next_rand() % 7};
        uint64_t es = strata_dtype_size(dt), elems = 4 * span[1] * (nd == 3 ? span[2] : 1);
        if (elems * es > NB)
            continue;
        strata_tensor a = random_box(base, NB, dt, nd, span), b = random_box(base, NB, dt, nd, span);
        strata__extent ea, eb;
        CHECK_OK(strata__tensor_check(&a, 0, &ea));
        CHECK_OK(strata__tensor_check(&b, 0, &eb));
        static uint8_t ba[NB], bb[NB];
        memset(ba, 0, sizeof ba);
        memset(bb, 0, sizeof bb);
        bool truth = bytes_meet(&a, &b, base, ba, bb, NB);
        bool got = strata__views_overlap(&a, &ea, &b, &eb, &scratch);
        if (got != truth)
            test_fail(__FILE__, __LINE__, "trial %d: boxes of dims %u: overlap says %d, the bytes say %d", trial, nd,
                      got, truth);
        overlapping += truth;
    }
    CHECK(overlapping > 1000 && overlapping < 19000);
}

TEST_CASE(tag_meanings)
{
    CHECK(strata__tag_reads(STRATA_INPUT) && !strata__tag_writes(STRATA_INPUT));
    CHECK(!strata__tag_reads(STRATA_OUTPUT) && strata__tag_writes(STRATA_OUTPUT));
    CHECK(strata__tag_reads(STRATA_INOUT) && strata__tag_writes(STRATA_INOUT));
    CHECK(!strata__tag_reads(STRATA_OUTPUT_EXISTING) && strata__tag_writes(STRATA_OUTPUT_EXISTING));
    CHECK(!strata__tag_reads(STRATA_NO_DEP) && !strata__tag_writes(STRATA_NO_DEP));
}

TEST_MAIN(CASE(lattice_boxes_match_brute_force), CASE(make_and_sizes), CASE(check_messages), CASE(args_check), CASE(overlap_matches_brute_force),
          CASE(tag_meanings))
