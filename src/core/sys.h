/* The doors to the system calls the engine needs on its hot and waiting paths. */
#ifndef STRATA_CORE_SYS_H
#define STRATA_CORE_SYS_H

#include <stdatomic.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t strata__now_ns(void);

/* Sleep while *word == expected, at most timeout_ns (0 = no limit). Returns 0 when
   woken or the word differed, ETIMEDOUT after the limit, EINTR on a signal. */
int  strata__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns);
void strata__futex_wake(_Atomic uint32_t *word, int nwaiters);
/* The same on a word in memory shared between processes. */
int  strata__futex_wait_shared(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns);
void strata__futex_wake_shared(_Atomic uint32_t *word, int nwaiters);

#endif
