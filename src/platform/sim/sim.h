/* The sim platform's parts, shared between its files: memory (sim.c) and
 * cores (cores.c). Private to src/platform/sim/. */
#ifndef STRATA_PLATFORM_SIM_SIM_H
#define STRATA_PLATFORM_SIM_SIM_H

#include "platform/platform.h"

/* "sim chip 3", for messages. */
const char *strata__sim_name(const strata__device *dev);

int  strata__sim_cores_start(strata__device *dev, uint32_t ncores, void *(*core_main)(void *), void *const *args,
                             strata__cores **out, uint32_t *nstarted);
void strata__sim_core_join(strata__cores *cores, uint32_t i);
void strata__sim_core_abandon(strata__cores *cores, uint32_t i);
void strata__sim_cores_free(strata__cores *cores);
int  strata__sim_launch(strata__device *dev, strata_kernel_fn fn, const strata_task_args *args);

#endif
