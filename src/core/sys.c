/* System call doors: futex and the monotonic clock. */
#define _GNU_SOURCE
#include "core/sys.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t strata__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int futex_wait_op(_Atomic uint32_t *word, int op, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long)(timeout_ns % 1000000000u);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, (uint32_t *)word, op, expected, tsp, NULL, 0);
    if (r == 0)
        return 0;
    if (errno == EAGAIN)
        return 0;
    return errno;
}

/* Process-private words (FUTEX_PRIVATE_FLAG) live in one process; shared ones
   in a MAP_SHARED mapping that several processes see. */
int strata__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    return futex_wait_op(word, FUTEX_WAIT_PRIVATE, expected, timeout_ns);
}

int strata__futex_wait_shared(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    return futex_wait_op(word, FUTEX_WAIT, expected, timeout_ns);
}

void strata__futex_wake(_Atomic uint32_t *word, int nwaiters)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, nwaiters, NULL, NULL, 0);
}

void strata__futex_wake_shared(_Atomic uint32_t *word, int nwaiters)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, nwaiters, NULL, NULL, 0);
}
