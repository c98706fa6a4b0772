/* A chip callable for the Python quick start (README.md, quickstart.py):
 * c = a + b over float32 vectors, one AIV task per tile of 1024 elements.
 * ChipCallable.compile builds it; its orchestration function and kernel run in
 * the chip child, as in C. */
#include <strata/strata.h>

enum { TILE = 1024 };

static float *at(const strata_tensor *t)
{
    return (float *)(uintptr_t)(t->addr + t->offset * sizeof(float));
}

static int add_tile(const strata_task_args *a)
{
    const float *x = at(&a->tensors[0]), *y = at(&a->tensors[1]);
    float *z = at(&a->tensors[2]);
    for (uint64_t i = 0; i < a->tensors[2].shape[0]; i++)
        z[i] = x[i] + y[i];
    return 0;
}

/* args: a, b (INPUT), c (OUTPUT), all of one length */
static int orchestrate(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    uint64_t n = args->tensors[0].shape[0];
    for (uint64_t first = 0; first < n; first += TILE) {
        strata_tensor t[3];
        for (int i = 0; i < 3; i++) {
            t[i] = args->tensors[i];
            t[i].offset += first;
            t[i].shape[0] = n - first < TILE ? n - first : TILE;
        }
        strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
        int rc = strata_chip_submit(o, 0, &(strata_task_args){t, tags, 3, NULL, 0});
        if (rc)
            return rc;
    }
    return 0;
}

static const strata_kernel_entry kernels[] = {{0, STRATA_AIV, add_tile}};
const strata_chip_callable vector_add = {"vector_add", orchestrate, kernels, 1};
