/* core.env: sizes from environment variables. */
#include "harness.h"

#include "core/env.h"

TEST_CASE(parse)
{
    uint64_t v = 7;
    CHECK_OK(strata__parse_u64("X", "4096", 1, 1 << 20, false, false, &v));
    CHECK_EQ_U64(v, 4096);
    CHECK_OK(strata__parse_u64("X", " 64 ", 1, 1 << 20, true, false, &v));
    CHECK_EQ_U64(v, 64);
    CHECK_OK(strata__parse_u64("X", "2K", 1, 1ull << 40, false, true, &v));
    CHECK_EQ_U64(v, 2048);
    CHECK_OK(strata__parse_u64("X", "3MiB", 1, 1ull << 40, false, true, &v));
    CHECK_EQ_U64(v, 3ull << 20);
    CHECK_OK(strata__parse_u64("X", "1g", 1, 1ull << 40, false, true, &v));
    CHECK_EQ_U64(v, 1ull << 30);
    v = 7;
    CHECK_STATUS(strata__parse_u64("X", "2K", 1, 1 << 20, false, false, &v), STRATA_EINVAL);
    CHECK_ERROR_HAS("X is \"2K\"; it must be an integer between 1 and 1048576");
    CHECK_EQ_U64(v, 7);   /* untouched on error */
    CHECK_STATUS(strata__parse_u64("X", "", 1, 10, false, false, &v), STRATA_EINVAL);
    CHECK_STATUS(strata__parse_u64("X", "12", 1, 10, false, false, &v), STRATA_EINVAL);
    CHECK_STATUS(strata__parse_u64("X", "0", 1, 10, false, false, &v), STRATA_EINVAL);
    CHECK_STATUS(strata__parse_u64("X", "6", 1, 10, true, false, &v), STRATA_EINVAL);
    CHECK_ERROR_HAS("a power of two");
    CHECK_STATUS(strata__parse_u64("X", "16777216T", 1, UINT64_MAX, false, true, &v), STRATA_EINVAL);
    CHECK_STATUS(strata__parse_u64("X", "17179869184G", 1, UINT64_MAX, false, true, &v), STRATA_EINVAL);
}

TEST_CASE(unset_keeps_default)
{
    test_setenv("STRATA_TEST_SIZE", NULL);
    uint64_t v = 99;
    CHECK_OK(strata__env_u64("STRATA_TEST_SIZE", 1, 10, false, false, &v));
    CHECK_EQ_U64(v, 99);
    test_setenv("STRATA_TEST_SIZE", "");
    CHECK_OK(strata__env_u64("STRATA_TEST_SIZE", 1, 10, false, false, &v));
    CHECK_EQ_U64(v, 99);
    test_setenv("STRATA_TEST_SIZE", "5");
    CHECK_OK(strata__env_u64("STRATA_TEST_SIZE", 1, 10, false, false, &v));
    CHECK_EQ_U64(v, 5);
    test_setenv("STRATA_TEST_SIZE", NULL);
}

TEST_MAIN(CASE(parse), CASE(unset_keeps_default))
