/* Strata: status codes and the per-thread error message.
 *
 * Every call that can fail returns int: STRATA_OK (0) or a negative strata_status.
 * After a failure, strata_last_error() on the same thread says what went wrong in
 * words a person can act on. Codes are append-only: none is ever renumbered. */
#ifndef STRATA_STATUS_H
#define STRATA_STATUS_H

#include "strata/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum strata_status {
    STRATA_OK        =   0,
    STRATA_EINVAL    =  -1,  /* bad argument: null, out of range, too many tensors */
    STRATA_ESTATE    =  -2,  /* not allowed in the worker's state (run before init, after close) */
    STRATA_ENOENT    =  -3,  /* unknown handle, func_id, worker id, symbol, file */
    STRATA_ENOMEM    =  -4,  /* host or device memory exhausted */
    STRATA_ERING     =  -5,  /* a request can never fit its ring, or the run cannot progress */
    STRATA_ETASK     =  -6,  /* a kernel, SUB function or orchestration function failed */
    STRATA_ECANCELED =  -7,  /* not run because something it depended on failed */
    STRATA_ECHILD    =  -8,  /* a child process exited or was killed */
    STRATA_ETIMEDOUT =  -9,  /* a task, init or close passed its deadline */
    STRATA_EFAILED   = -10,  /* the worker is FAILED; close it */
    STRATA_ESYS      = -11,  /* a system call failed; the message carries strerror(errno) */
    STRATA_EINTR     = -12   /* the run was stopped by the application's interrupt check (strata/hooks.h) */
} strata_status;

/* "STRATA_ECHILD" for STRATA_ECHILD; "STRATA_UNKNOWN" for a value that is no status.
   Static string, never NULL. Any thread. */
STRATA_API const char *strata_status_name(int status);

/* The message of the last failed Strata call on this thread; "" when the last call
   succeeded. Owned by Strata, valid until the next Strata call on this thread, never
   NULL. Any thread (each has its own message). */
STRATA_API const char *strata_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
