/* Spin, then sleep: the one waiting primitive of the engine (an event count).
 *
 *   word      writer            reader            ordering   meaning
 *   seq       notifiers         waiters (futex)   seq_cst    bumped when something changed
 *   nwaiters  waiters           notifiers         seq_cst    threads inside the sleep path
 *
 * A waiter: nwaiters++ ; key = seq ; re-check its condition ; futex_wait(seq, key) ;
 * nwaiters--. A notifier: publish the change ; full fence ; if nwaiters: seq++ and
 * futex_wake. No wakeup is lost: the waiter's increment and the notifier's fence
 * are both seq_cst, so either the notifier sees nwaiters > 0 (and bumps seq, which
 * fails or ends the futex_wait), or the waiter's re-check sees the change. A
 * notifier with no sleeper costs one fence and one load, no system call.
 *
 * Spinning happens only here, and is bounded (STRATA__SPIN_ROUNDS), so a spinning
 * thread never starves the thread it waits for on an oversubscribed machine. */
#ifndef STRATA_CORE_WAIT_H
#define STRATA_CORE_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/atomic.h"

typedef struct strata__event {
    _Atomic uint32_t seq;
    _Atomic uint32_t nwaiters;
} strata__event;

/* How long a thread polls before it sleeps: rounds of cpu_relax, then yields. */
#define STRATA__SPIN_ROUNDS 256
#define STRATA__YIELD_ROUNDS 4

/* Tell sleepers on `e` that something changed. The change must be published (any
   store) before this call. Any thread. */
void strata__event_notify(strata__event *e);

/* Wait until ready(arg) is true, spinning briefly then sleeping on `e`. A
   deadline_ns of 0 means none; returns false when the deadline passed first. */
bool strata__event_wait(strata__event *e, bool (*ready)(void *), void *arg, uint64_t deadline_ns);

#endif
