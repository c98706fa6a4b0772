/* Spin, then sleep: the one waiting primitive of the engine (an event count).
 *
 *   word      writer            reader            ordering   meaning
 *   seq       notifiers         waiters (futex)   seq_cst    bumped when something changed
 *   nwaiters  waiters           notifiers         seq_cst    threads inside the sleep path
 *
 * A waiter: nwaiters++ ; then, until its condition holds: key = seq ; re-check ;
 * futex_wait(seq, key) ; and at last nwaiters--. A notifier: publish the change ;
 * full fence ; if nwaiters: seq++ and futex_wake. No wakeup is lost: the waiter's increment and the notifier's fence
 * are both seq_cst, so either the notifier sees nwaiters > 0 (and bumps seq, which
 * fails or ends the futex_wait), or the waiter's re-check sees the change. A
 * notifier with no sleeper costs one fence and one load, no system call.
 *
 * The hot paths (a task pushed, a task completed: once per task) use
 * strata__event_notify_lazy instead, which skips the fence. The fence drains the
 * store buffer, and on a machine where a cache line takes ~150 ns to cross cores
 * that wait was a third of the cost of a task. Without it a notifier may read
 * nwaiters before a concurrent waiter's increment lands while the waiter's
 * re-check misses the change still in the notifier's store buffer. So every
 * sleep of a wait is bounded until STRATA__FIRST_SLEEP_NS after the waiter's
 * increment (however many sleeps that takes: one can end early): by then such a
 * change is long visible, and the re-check after the bounded sleep finds it.
 * Later sleeps are unbounded, which is safe because a notifier that publishes
 * after the increment has been visible that long reads nwaiters > 0 (nwaiters
 * stays raised across the waiter's sleeps). This assumes a store becomes visible
 * within a millisecond, which every processor does by far. A missed lazy wakeup
 * thus costs at most that bound, and only in the instant a thread goes to sleep
 * while work arrives; an idle thread costs one extra wakeup per idle period.
 *
 * Before it sleeps a waiter polls, for as long as recent waits on the event
 * lasted (strata__spin_learn, below: 4 us after idleness, up to 200 us while
 * threads take turns quickly), yielding between polls after the first microsecond so
 * that it never starves the thread it waits for on an oversubscribed machine.
 * Spinning happens only in strata__spin_poll (which the node engine's waits use
 * too) and in a lane's bounded hold-off (chip/lane.c). */
#ifndef STRATA_CORE_WAIT_H
#define STRATA_CORE_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/atomic.h"

typedef struct strata__event {
    _Atomic uint32_t seq;
    _Atomic uint32_t nwaiters;
    _Atomic uint64_t spin_ns;    /* how long the next wait polls (strata__spin_learn); 0 = the minimum */
} strata__event;

/* The bound on a waiter's first sleep (see above). */
#define STRATA__FIRST_SLEEP_NS 1000000ull

/* Tell sleepers on `e` that something changed. The change must be published (any
   store) before this call. Any thread. */
void strata__event_notify(strata__event *e);
/* The same without the fence, for paths taken once per task: a wakeup that races
   with a waiter going to sleep is delayed by at most STRATA__FIRST_SLEEP_NS. */
static inline void strata__event_notify_lazy(strata__event *e)
{
    /* Keep the compiler from hoisting the load above the caller's publishing
       store (C11 allows a relaxed load to move above a release store); costs
       no instruction. */
    atomic_signal_fence(memory_order_seq_cst);
    /* relaxed: a hint; see the top of this file for why a stale 0 is harmless */
    if (atomic_load_explicit(&e->nwaiters, memory_order_relaxed) != 0)
        strata__event_notify(e);
}

/* Wait until ready(arg) is true, spinning briefly then sleeping on `e`. A
   deadline_ns of 0 means none; returns false when the deadline passed first. */
bool strata__event_wait(strata__event *e, bool (*ready)(void *), void *arg, uint64_t deadline_ns);

/* Adaptive polling, for waits that cross processes (node/dispatch.c and the
 * child's mailbox), where a sleep and its wake-up cost 20-80 us on a virtual
 * machine. A wait that ended soon after it began means work is flowing: the
 * next one polls about twice as long as that one took, up to
 * STRATA__SPIN_MAX_NS. A longer wait means the other side is idle: the next
 * polls only STRATA__SPIN_MIN_NS, so an idle worker costs what it did. */
#define STRATA__SPIN_MIN_NS 4000ull
#define STRATA__SPIN_MAX_NS 200000ull
/* Polls past this yield the CPU in between: the thread polled for may share
   this CPU (2 CPUs, more processes), and a yield that finds nobody else to run
   costs a fraction of a microsecond. */
#define STRATA__SPIN_ALONE_NS 1000ull

/* The polling budget of the next wait, given how long the last one took. */
static inline uint64_t strata__spin_learn(uint64_t waited_ns)
{
    if (waited_ns > STRATA__SPIN_MAX_NS)
        return STRATA__SPIN_MIN_NS;
    uint64_t next = 2 * waited_ns;
    return next < STRATA__SPIN_MIN_NS ? STRATA__SPIN_MIN_NS : next > STRATA__SPIN_MAX_NS ? STRATA__SPIN_MAX_NS : next;
}

/* Poll ready(arg) for about spin_ns; true as soon as it holds. Past the first
   STRATA__SPIN_ALONE_NS it yields between polls, so a thread this one waits
   for still gets a CPU that is oversubscribed. */
bool strata__spin_poll(bool (*ready)(void *), void *arg, uint64_t spin_ns);

/* For waits nothing can wake (a remote answer over MPI): sleep *nap_ns, then
   double it, up to max_ns, so that a short wait costs little and a long one
   little CPU. */
void strata__nap(uint64_t *nap_ns, uint64_t max_ns);

#endif
