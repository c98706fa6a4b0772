/* Strata: a hierarchical task runtime for accelerator stacks.
 *
 * The one header users include. Each header below stands alone and compiles from
 * C and C++. */
#ifndef STRATA_H
#define STRATA_H

#include "strata/version.h"
#include "strata/status.h"
#include "strata/tensor.h"
#include "strata/chip.h"
#include "strata/worker.h"
#include "strata/memory.h"
#include "strata/hooks.h"
#include "strata/trace.h"

#endif
