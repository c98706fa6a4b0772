/* core.wait: the engine's waiting primitive (core/wait.h): how long a wait
 * polls, waking a sleeper with either notify, deadlines, and the bounded first
 * sleep that covers a lazy notify racing with a waiter going to sleep. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "harness.h"

#include "core/sys.h"
#include "core/wait.h"

TEST_CASE(spin_budget_learns)
{
    /* flowing work: about twice the last wait, within [min, max] */
    CHECK_EQ_U64(strata__spin_learn(0), STRATA__SPIN_MIN_NS);
    CHECK_EQ_U64(strata__spin_learn(STRATA__SPIN_MIN_NS / 4), STRATA__SPIN_MIN_NS);
    CHECK_EQ_U64(strata__spin_learn(10000), 20000);
    CHECK_EQ_U64(strata__spin_learn(STRATA__SPIN_MAX_NS - 1), STRATA__SPIN_MAX_NS);
    CHECK_EQ_U64(strata__spin_learn(STRATA__SPIN_MAX_NS), STRATA__SPIN_MAX_NS);
    /* a wait longer than the cap means idleness: back to the minimum */
    CHECK_EQ_U64(strata__spin_learn(STRATA__SPIN_MAX_NS + 1), STRATA__SPIN_MIN_NS);
    CHECK_EQ_U64(strata__spin_learn(5000000000ull), STRATA__SPIN_MIN_NS);
}

static bool flag_set(void *arg)
{
    return atomic_load_explicit((_Atomic int *)arg, memory_order_acquire) != 0;
}

typedef struct setter {
    strata__event *e;
    _Atomic int   *flag;
    unsigned       after_ms;
    int            how;   /* 0: notify, 1: notify_lazy */
} setter;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void *set_later(void *arg)
{
    setter *s = arg;
    sleep_ms(s->after_ms);
    atomic_store_explicit(s->flag, 1, memory_order_release);
    if (s->how == 0)
        strata__event_notify(s->e);
    else
        strata__event_notify_lazy(s->e);
    return NULL;
}

/* A waiter that went to sleep long before (its first, bounded sleep is over)
   is woken by a notify of either kind, well before its deadline. */
static void woken_by(int how)
{
    strata__event e = {0};
    _Atomic int flag = 0;
    setter s = {&e, &flag, 50, how};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, set_later, &s) == 0);
    uint64_t start = strata__now_ns();
    bool ok = strata__event_wait(&e, flag_set, &flag, start + 20ull * 1000000000ull);
    uint64_t waited = strata__now_ns() - start;
    pthread_join(t, NULL);
    CHECK(ok);
    CHECK(waited >= 45ull * 1000000ull);        /* it did wait for the setter */
    CHECK(waited < 10ull * 1000000000ull);      /* and was woken, not timed out */
    CHECK_EQ_U64(atomic_load(&e.nwaiters), 0);  /* left the sleep path cleanly */
}

TEST_CASE(notify_wakes_sleeper)
{
    woken_by(0);
}

TEST_CASE(lazy_notify_wakes_sleeper)
{
    woken_by(1);
}

/* The first sleep of a wait is bounded: a change published with no wake-up at
   all (what a lazy notify amounts to when it races with the waiter going to
   sleep) is seen at the end of that first sleep (1 ms). The setter publishes
   ~0.2 ms after the waiter starts, inside its first sleep, and only 2 s later
   notifies for real. Without the bound every waiter would sleep those 2 s; a
   setter scheduled late can make one round look like that, so the case needs
   only one round out of 20 to see the change early. */
typedef struct late_setter {
    strata__event *e;
    _Atomic int   *flag;
    _Atomic int    done;
} late_setter;

static void *set_silently(void *arg)
{
    late_setter *s = arg;
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
    atomic_store_explicit(s->flag, 1, memory_order_release);   /* no notify */
    for (int i = 0; i < 200 && !atomic_load(&s->done); i++)
        sleep_ms(10);
    strata__event_notify(s->e);   /* the safety net */
    return NULL;
}

TEST_CASE(first_sleep_is_bounded)
{
    int early = 0;
    for (int round = 0; round < 20 && early == 0; round++) {
        strata__event e = {0};
        _Atomic int flag = 0;
        late_setter s = {&e, &flag, 0};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, set_silently, &s) == 0);
        uint64_t start = strata__now_ns();
        bool ok = strata__event_wait(&e, flag_set, &flag, start + 20ull * 1000000000ull);
        uint64_t waited = strata__now_ns() - start;
        atomic_store(&s.done, 1);
        pthread_join(t, NULL);
        CHECK(ok);
        early += waited < 500ull * 1000000ull;
    }
    CHECK(early > 0);
}

TEST_CASE(deadline_passes)
{
    strata__event e = {0};
    _Atomic int flag = 0;
    uint64_t start = strata__now_ns();
    CHECK(!strata__event_wait(&e, flag_set, &flag, start + 30ull * 1000000ull));
    uint64_t waited = strata__now_ns() - start;
    CHECK(waited >= 30ull * 1000000ull);
    CHECK(waited < 10ull * 1000000000ull);
    CHECK_EQ_U64(atomic_load(&e.nwaiters), 0);
    /* ready at once: no wait, no sleep */
    atomic_store(&flag, 1);
    CHECK(strata__event_wait(&e, flag_set, &flag, 0));
}

TEST_MAIN(CASE(spin_budget_learns), CASE(notify_wakes_sleeper), CASE(lazy_notify_wakes_sleeper),
          CASE(first_sleep_is_bounded), CASE(deadline_passes))
