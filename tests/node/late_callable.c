/* A chip callable in a shared object that a test loads only after its node
   worker's children have started: tests/node/test_register.c. */
#include <stdint.h>

#include <strata/strata.h>

static int late_kernel(const strata_task_args *a)
{
    uint64_t *p = (uint64_t *)(uintptr_t)(a->tensors[0].addr + a->tensors[0].offset * 8);
    p[0] += 1000;
    return 0;
}

static int late_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, NULL, 0});
}

static const strata_kernel_entry late_kernels[] = {{0, STRATA_AIV, late_kernel}};

extern const strata_chip_callable strata_test_late_callable;
const strata_chip_callable strata_test_late_callable = {"late", late_orch, late_kernels, 1};
