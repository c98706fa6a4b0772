/* The one list of status codes: it generates strata_status_name() and the checks
 * against the public enum, and tests/core/test_status.c compares it with the table
 * in docs/errors.md. Append only. X(name, value, meaning). */
#ifndef STRATA_CORE_STATUS_LIST_H
#define STRATA_CORE_STATUS_LIST_H

#define STRATA_STATUS_MAP(X)                                                              \
    X(STRATA_OK, 0, "success")                                                            \
    X(STRATA_EINVAL, -1, "bad argument: null, out of range, too many tensors")           \
    X(STRATA_ESTATE, -2, "not allowed in the worker's state (run before init, after close)") \
    X(STRATA_ENOENT, -3, "unknown handle, func_id, worker id, symbol, file")             \
    X(STRATA_ENOMEM, -4, "host or device memory exhausted")                               \
    X(STRATA_ERING, -5, "a request can never fit its ring, or the run cannot progress")  \
    X(STRATA_ETASK, -6, "a kernel, SUB function or orchestration function failed")       \
    X(STRATA_ECANCELED, -7, "not run because something it depended on failed")           \
    X(STRATA_ECHILD, -8, "a child process exited or was killed")                          \
    X(STRATA_ETIMEDOUT, -9, "a task, init or close passed its deadline")                  \
    X(STRATA_EFAILED, -10, "the worker is FAILED; close it")                              \
    X(STRATA_ESYS, -11, "a system call failed; the message carries strerror(errno)")    \
    X(STRATA_EINTR, -12, "the run was stopped by the application's interrupt check")

#endif
