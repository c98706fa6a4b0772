/* Chip callables as the engine keeps them, and kernels shipped as code.
 *
 * A registered callable is a private copy: its name and kernel table are copied,
 * the table sorted by func_id, so a lookup is a binary search and the caller's
 * arrays may go away. */
#ifndef STRATA_CHIP_KERNEL_H
#define STRATA_CHIP_KERNEL_H

#include "strata/chip.h"

typedef struct strata__callable {
    char                *name;      /* owned */
    strata_chip_orch_fn  orch;
    strata_kernel_entry *kernels;   /* owned, sorted by func_id */
    uint32_t             nkernels;
} strata__callable;

/* Copy and check c into *out: non-NULL orch, every fn non-NULL, func_ids >= 0
   and unique, core types valid. */
int  strata__callable_copy(const strata_chip_callable *c, strata__callable *out);
void strata__callable_free(strata__callable *c);
/* The entry for func_id, or NULL. */
const strata_kernel_entry *strata__callable_kernel(const strata__callable *c, int func_id);

const char *strata__core_name(strata_core_type core);

#endif
