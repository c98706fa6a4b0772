/* Status codes and messages inside the library.
 *
 * The code that detects a failure writes the message and returns the status in
 * one statement: `return strata__fail(STRATA_ERING, "heap ring is ...", ...);`.
 * Messages are kept per thread in a buffer that grows as needed: never truncated.
 * Outer layers may add context in front (strata__error_prefix) but never replace a
 * message. errno is left as it was found.
 *
 * Failures on other threads (core threads, the orchestrator) go into a
 * strata__failure record, set once by the first failure of a run, and are copied
 * into the caller's thread-local message when the run returns. */
#ifndef STRATA_CORE_STATUS_H
#define STRATA_CORE_STATUS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "strata/status.h"

#define STRATA__PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Whether status is one of the codes of the status list (core/status_list.h). */
bool strata__is_status(int status);

/* Set this thread's message and return `status`. */
int strata__fail(int status, const char *fmt, ...) STRATA__PRINTF(2, 3);
int strata__failv(int status, const char *fmt, va_list ap);
/* STRATA_ESYS with "<what> failed: <strerror(err)>" appended. */
int strata__fail_sys(int err, const char *fmt, ...) STRATA__PRINTF(2, 3);
/* Put "<context>: " in front of this thread's message; returns status. */
int strata__error_prefix(int status, const char *fmt, ...) STRATA__PRINTF(2, 3);
/* Empty this thread's message (every public entry point does this first). */
void strata__clear_error(void);

/* A malloc'd copy of a printf-style message; NULL when out of memory. */
char *strata__format(const char *fmt, ...) STRATA__PRINTF(1, 2);
char *strata__vformat(const char *fmt, va_list ap);

/* First failure of a run. `status` is 0 until a failure wins the compare-and-swap;
   the winner then writes `message` and sets `published` with release. Readers call
   strata__failure_raise only after every thread that may fail has finished (the
   run's end), or poll strata__failure_status to learn that the run failed. */
typedef struct strata__failure {
    _Atomic int  status;
    _Atomic int  published;
    char        *message;    /* owned; malloc'd by the winner */
} strata__failure;

void strata__failure_reset(strata__failure *f);
/* Record a failure; only the first call of a run wins. Returns `status`. Any thread. */
int  strata__failure_set(strata__failure *f, int status, const char *fmt, ...) STRATA__PRINTF(3, 4);
/* Record the calling thread's current message under `status`. */
int  strata__failure_set_from_error(strata__failure *f, int status);
/* The run's first failure so far, 0 if none (relaxed: a status, read on hot
   paths; the message is published separately, see strata__failure_raise). */
static inline int strata__failure_status(strata__failure *f)
{
    return atomic_load_explicit(&f->status, memory_order_relaxed);
}
/* Copy the record into this thread's message and return its status (0 if none). */
int  strata__failure_raise(strata__failure *f);

/* Add one task's outcome to the counter it belongs to: completed (STRATA_OK),
   canceled (STRATA_ECANCELED) or failed (anything else). */
static inline void strata__count_outcome(int status, uint64_t *completed, uint64_t *canceled, uint64_t *failed)
{
    if (status == STRATA_OK)
        ++*completed;
    else if (status == STRATA_ECANCELED)
        ++*canceled;
    else
        ++*failed;
}

#endif
