/* Traces: what ran where and when, across every level, in one file that
 * Perfetto (ui.perfetto.dev) and chrome://tracing open as it is.
 *
 * A trace is open from strata_trace_begin until strata_trace_end, or for the
 * whole life of a process started with STRATA_TRACE=path.json (opened when the
 * process creates its first worker, closed at exit; "%p" in the path becomes
 * the pid, for programs that start others with the same environment). In an
 * MPI job (strata/mpi.h) rank 0 writes the job's one trace: the serving ranks
 * ignore STRATA_TRACE and send their events to rank 0. While it is open, every
 * run of every worker of the process is recorded (a run whose call config sets
 * `trace` to STRATA_TRACE_SKIP is left out): one process track per Strata
 * process (the application, each chip child, each SUB child), one thread track
 * per core, orchestrator and child, a slice per task and kernel, arrows from a
 * submit to its start and from a producer to the consumers it released, ring
 * occupancy counters, and instants for deaths, restarts and timeouts.
 * docs/observability.md shows how to read one.
 *
 * The file is Chrome's trace-event JSON (the array form, which viewers read
 * even when a killed process left it without its closing bracket). Children
 * hand their events to the process that writes the file through shared memory;
 * a child killed mid-run loses at most what it had not yet published. */
#ifndef STRATA_TRACE_H
#define STRATA_TRACE_H

#include "strata/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* strata_call_config.trace: 0 (the default) and STRATA_TRACE_RUN record the
   run whenever a trace is open; STRATA_TRACE_SKIP leaves it out (a warm-up run,
   a health check). */
#define STRATA_TRACE_RUN  1u
#define STRATA_TRACE_SKIP 2u

/* Open a trace into `path` (created or truncated; "%p": the pid) for every
   worker of this process. STRATA_ESTATE when a trace is open already
   (STRATA_TRACE's included); STRATA_ESYS naming the path when it cannot be
   written. A run is traced or not from its start: begin a trace between
   runs (a run in progress is not in it). A forked child of this process has
   no trace open. */
STRATA_API int strata_trace_begin(const char *path);
/* Write what the workers of this process recorded up to their last finished
   run, and close the file. STRATA_OK when no trace is open. Call it between
   runs: events of a run still in progress on another thread are dropped. */
STRATA_API int strata_trace_end(void);

#ifdef __cplusplus
}
#endif

#endif
