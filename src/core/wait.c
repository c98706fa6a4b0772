/* Spin, then sleep on a futex: see core/wait.h for the protocol. */
#define _GNU_SOURCE
#include "core/wait.h"

#include <sched.h>
#include <time.h>

#include "core/sys.h"

void strata__event_notify(strata__event *e)
{
    /* seq_cst fence: orders the caller's publishing store before the load of
       nwaiters; pairs with the seq_cst increment of nwaiters in the waiter. */
    strata__full_fence();
    if (atomic_load_explicit(&e->nwaiters, memory_order_seq_cst) == 0)
        return;
    atomic_fetch_add_explicit(&e->seq, 1, memory_order_seq_cst);
    strata__futex_wake(&e->seq, 0x7fffffff);
}

static bool sleep_until(strata__event *e, bool (*ready)(void *), void *arg, uint64_t deadline_ns);

bool strata__event_wait(strata__event *e, bool (*ready)(void *), void *arg, uint64_t deadline_ns)
{
    if (ready(arg))
        return true;
    /* Poll for as long as the waits on this event have recently lasted (see
       strata__spin_learn): threads that take turns quickly never sleep, and an
       event idle for long polls only briefly. relaxed: the budget is a hint
       shared by the event's waiters. */
    uint64_t from = strata__now_ns();
    uint64_t budget = atomic_load_explicit(&e->spin_ns, memory_order_relaxed);
    if (strata__spin_poll(ready, arg, budget ? budget : STRATA__SPIN_MIN_NS)) {
        atomic_store_explicit(&e->spin_ns, strata__spin_learn(strata__now_ns() - from), memory_order_relaxed);
        return true;
    }
    bool ok = sleep_until(e, ready, arg, deadline_ns);
    atomic_store_explicit(&e->spin_ns, strata__spin_learn(strata__now_ns() - from), memory_order_relaxed);
    return ok;
}

/* The sleep of strata__event_wait (the protocol at the top of core/wait.h). */
static bool sleep_until(strata__event *e, bool (*ready)(void *), void *arg, uint64_t deadline_ns)
{
    /* nwaiters stays raised across sleeps, and every sleep is bounded until the
       increment is STRATA__FIRST_SLEEP_NS old (a sleep can end early: a
       wake-up meant for another waiter, EINTR, seq moving before futex_wait):
       by then any lazy notifier reads nwaiters > 0 (core/wait.h). */
    atomic_fetch_add_explicit(&e->nwaiters, 1, memory_order_seq_cst);
    uint64_t bounded_until = strata__now_ns() + STRATA__FIRST_SLEEP_NS;
    bool ok;
    for (;;) {
        /* seq_cst fence: the increment above is ordered before ready()'s loads;
           pairs with the fence in strata__event_notify(). */
        strata__full_fence();
        uint32_t key = atomic_load_explicit(&e->seq, memory_order_seq_cst);
        if (ready(arg)) {
            ok = true;
            break;
        }
        uint64_t now = strata__now_ns(), timeout = 0;
        if (deadline_ns) {
            if (now >= deadline_ns) {
                ok = false;
                break;
            }
            timeout = deadline_ns - now;
        }
        if (now < bounded_until && (timeout == 0 || timeout > bounded_until - now))
            timeout = bounded_until - now;
        strata__futex_wait(&e->seq, key, timeout);
    }
    /* relaxed: leaving only makes a notifier's futex_wake possibly unnecessary,
       never missing; the count publishes nothing. */
    atomic_fetch_sub_explicit(&e->nwaiters, 1, memory_order_relaxed);
    return ok;
}

bool strata__spin_poll(bool (*ready)(void *), void *arg, uint64_t spin_ns)
{
    uint64_t start = strata__now_ns();
    for (unsigned i = 1;; i++) {
        if (ready(arg))
            return true;
        if (i % 32 == 0) {
            uint64_t spent = strata__now_ns() - start;
            if (spent >= spin_ns)
                return false;
            if (spent >= STRATA__SPIN_ALONE_NS)
                sched_yield();
        }
        strata__cpu_relax();
    }
}

void strata__nap(uint64_t *nap_ns, uint64_t max_ns)
{
    nanosleep(&(struct timespec){(time_t)(*nap_ns / 1000000000u), (long)(*nap_ns % 1000000000u)}, NULL);
    *nap_ns = *nap_ns * 2 > max_ns ? max_ns : *nap_ns * 2;
}
