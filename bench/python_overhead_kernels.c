/* The chip callable of bench/python_overhead.py: an orchestration function that
 * submits nothing and a table of one empty kernel, so that a chip task costs
 * only what the node level and the chip child do for any task. The Python side
 * (ChipCallable.from_symbol) and the C side (python_overhead_c, through
 * strata_worker_register_chip_symbol) load this same object.
 *
 * It does not link libstrata: it calls nothing of Strata's, and any strata_*
 * reference would resolve to the Strata already loaded in the process that opens
 * it (the library, or the Python extension), as examples/serving's kernels do. */
#include <strata/strata.h>

#include "common.h"   /* bench_chip_orch_empty, bench_kernel_empty */

static const strata_kernel_entry kernels[] = {{0, STRATA_AIV, bench_kernel_empty}};

extern const strata_chip_callable bench_empty_chip;
const strata_chip_callable bench_empty_chip = {"bench_empty_chip", bench_chip_orch_empty, kernels, 1};
