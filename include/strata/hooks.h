/* Strata: hooks for runtimes that embed Strata (an interpreter, a framework).
 *
 * An interpreter that drives workers needs three things from the library:
 *   - its own bookkeeping around every fork Strata makes (an interpreter lock to
 *     take before the fork and to reinitialise in the child, buffered output to
 *     flush, the application's at-fork handlers to run);
 *   - to give up its lock while the driving thread sleeps in a run, and to take
 *     it back before Strata calls into it again (an orchestration function);
 *   - to stop a run when its user asks (Ctrl-C): an interrupt check polled
 *     while a run waits.
 * The hooks are process-wide; set them once, before the first worker is
 * initialised (docs/python.md shows the Python package's). */
#ifndef STRATA_HOOKS_H
#define STRATA_HOOKS_H

#include "strata/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strata_hooks {
    /* Around every fork Strata makes: the spawner process a level-3 worker
       forks at init (on the thread calling init), and each child process the
       spawner forks (at init and for every restart, in the spawner). prepare
       runs in the forking process just before fork(); parent there just after;
       child first thing in the new process. Any may be NULL. */
    void (*fork_prepare)(void *ctx);
    void (*fork_parent)(void *ctx);
    void (*fork_child)(void *ctx);
    /* Around each sleep of the thread driving a level-3 run (the run waiting
       for its tasks, a submit waiting for room in the task window): wait_begin
       before the thread sleeps, wait_end when it wakes, before Strata returns
       to the caller or calls its orchestration function. Both or neither. */
    void (*wait_begin)(void *ctx);
    void (*wait_end)(void *ctx);
    /* Polled on the driving thread while a level-3 run waits (each time it
       would sleep, and at least every 20 ms while it keeps busy). Nonzero
       stops the run: later submits return STRATA_ECANCELED, unstarted tasks
       are cancelled, tasks already running are given close_grace_ms to finish
       (then their children are killed and replaced), and the run returns
       STRATA_EINTR. Called between wait_end and the next wait_begin. */
    int (*interrupted)(void *ctx);
    void *ctx;                                 /* passed to each hook */
} strata_hooks;

/* Install the process's hooks (copied), replacing any before; NULL removes
   them. A worker takes them when its init starts (fork hooks) and when each run
   starts (wait and interrupt hooks). Any thread; not from inside a hook. */
STRATA_API int strata_set_hooks(const strata_hooks *hooks);

/* From a SUB function or a kernel that fails: record a message for the task's
   failure (printf-style) and return STRATA_ETASK, for the function to return.
   The message reaches the run's error ("SUB function ... returned -6 ...: <it>"). */
STRATA_API int strata_task_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
