/* chip.stress: random DAGs checked against a sequential reference (being written). */
#include "harness.h"

TEST_CASE(placeholder_builds)
{
    CHECK(strata_dtype_size(STRATA_F32) == 4);
}

TEST_MAIN(CASE(placeholder_builds))
