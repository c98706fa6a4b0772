/* A kernel shipped as a shared object: y[i] += a * x[i] over F32 views, with a
   taken from scalars[0] as an integer. Loaded by tests/chip/test_kernel.c. */
#include <stdint.h>

#include <strata/strata.h>

int strata_test_axpy(const strata_task_args *args);

int strata_test_axpy(const strata_task_args *args)
{
    const strata_tensor *x = &args->tensors[0], *y = &args->tensors[1];
    const float *xs = (const float *)(uintptr_t)(x->addr + x->offset * 4);
    float *ys = (float *)(uintptr_t)(y->addr + y->offset * 4);
    float a = (float)args->scalars[0];
    for (uint64_t i = 0; i < y->shape[0]; i++)
        ys[i] += a * xs[i];
    return 0;
}
