/* The embedding hooks of strata/hooks.h, inside the library.
 *
 * The process's hooks live in one record behind a mutex. Users of the hooks
 * never call through that record: they take a copy (strata__hooks_get) at a
 * moment no hook can run, init for the fork hooks and each run for the wait
 * and interrupt hooks, and call through the copy. So a process forked while
 * another thread held the mutex (the spawner) never needs it: it uses the
 * copy its parent made before forking. */
#ifndef STRATA_CORE_HOOKS_H
#define STRATA_CORE_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include "strata/hooks.h"

/* A copy of the process's hooks (all NULL when none are set). Any thread. */
strata_hooks strata__hooks_get(void);

static inline void strata__hooks_fork_prepare(const strata_hooks *h)
{
    if (h->fork_prepare)
        h->fork_prepare(h->ctx);
}

static inline void strata__hooks_fork_parent(const strata_hooks *h)
{
    if (h->fork_parent)
        h->fork_parent(h->ctx);
}

static inline void strata__hooks_fork_child(const strata_hooks *h)
{
    if (h->fork_child)
        h->fork_child(h->ctx);
}

static inline void strata__hooks_wait_begin(const strata_hooks *h)
{
    if (h->wait_begin)
        h->wait_begin(h->ctx);
}

static inline void strata__hooks_wait_end(const strata_hooks *h)
{
    if (h->wait_end)
        h->wait_end(h->ctx);
}

/* How often a busy run polls the interrupt check at least. */
#define STRATA__INTERRUPT_POLL_NS 20000000ull

#endif
