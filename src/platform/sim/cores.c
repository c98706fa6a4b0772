/* The sim platform's cores: one thread per simulated AIC or AIV core, running
 * the chip engine's per-core loop (chip/lane.c), and kernel launch, which on a
 * simulated core is a call in place whose return is its completion.
 *
 * A real accelerator backend would start its cores' agents here and launch a
 * kernel by sending it to the core and waiting for the completion the device
 * reports; the chip engine sees only this interface (platform/platform.h). */
#include "platform/sim/sim.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/sys.h"

struct strata__cores {
    uint32_t   n;
    pthread_t *threads;
};

int strata__sim_cores_start(strata__device *dev, uint32_t ncores, void *(*core_main)(void *), void *const *args,
                            strata__cores **out, uint32_t *nstarted)
{
    *nstarted = 0;
    strata__cores *c = strata__calloc(1, sizeof *c);
    pthread_t *t = strata__calloc(ncores ? ncores : 1, sizeof *t);
    if (!c || !t) {
        free(c);
        free(t);
        return strata__fail(STRATA_ENOMEM, "out of host memory for %u core threads of %s", ncores,
                            strata__sim_name(dev));
    }
    c->threads = t;
    *out = c;
    for (uint32_t i = 0; i < ncores; i++) {
        int err = strata__sys_pthread_create(&t[i], NULL, core_main, args[i]);
        if (err)
            return strata__fail_sys(err, "pthread_create for core %u of %s", i, strata__sim_name(dev));
        c->n = *nstarted = i + 1;
    }
    return STRATA_OK;
}

void strata__sim_core_join(strata__cores *cores, uint32_t i)
{
    pthread_join(cores->threads[i], NULL);
}

void strata__sim_core_abandon(strata__cores *cores, uint32_t i)
{
    pthread_detach(cores->threads[i]);
}

void strata__sim_cores_free(strata__cores *cores)
{
    if (cores) {
        free(cores->threads);
        free(cores);
    }
}

int strata__sim_launch(strata__device *dev, strata_kernel_fn fn, const strata_task_args *args)
{
    (void)dev;
    return fn(args);
}
