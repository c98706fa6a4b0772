/* Chip callables for the Python tests, built by ChipCallable.compile.
 *
 * test_add: tensors[0] (int64, INOUT) += scalars[0], one in-core task per call.
 * test_sleepy: like test_add, but the kernel first sleeps scalars[1] ms (a task
 *   to kill mid-flight). */
#define _POSIX_C_SOURCE 200809L
#include <strata/strata.h>
#include <time.h>

static int add_kernel(const strata_task_args *a)
{
    int64_t *p = (int64_t *)(uintptr_t)(a->tensors[0].addr + a->tensors[0].offset * 8);
    uint64_t n = 1;
    for (uint32_t d = 0; d < a->tensors[0].ndims; d++)
        n *= a->tensors[0].shape[d];
    if (a->nscalars > 1 && a->scalars[1]) {
        struct timespec ts = {(time_t)(a->scalars[1] / 1000), (long)(a->scalars[1] % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (uint64_t i = 0; i < n; i++)
        p[i] += (int64_t)a->scalars[0];
    return 0;
}

static int add_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    uint64_t s[2] = {args->nscalars ? args->scalars[0] : 1, args->nscalars > 1 ? args->scalars[1] : 0};
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, s, 2});
}

static const strata_kernel_entry add_kernels[] = {{0, STRATA_AIV, add_kernel}};
const strata_chip_callable test_add = {"test_add", add_orch, add_kernels, 1};
