/* The trace file of this process (include/strata/trace.h): one per process,
 * shared by every worker, written only by the process that opened it.
 *
 * Writers are the threads that drive workers: each drains its worker's event
 * rings (core/recorder.h) into the file at the end of every run and whenever
 * the run waits (core/trace_drain.h), holding the trace's lock while it writes.
 * The writer functions below format one trace event each into a buffer that
 * goes to the file at unlock: Chrome's trace-event JSON, array form.
 *
 * Tracks: process ids are real pids; a thread track is `track` of process pid,
 * written as tid pid * 100000 + track (tracks below 100000), so two
 * processes' tracks never share an id.
 *
 * Forks: a process forked from one with a trace open has none (its copy of
 * the file is closed in the child, its lock made fresh), and STRATA_TRACE is
 * not read again there; an exec'd program that inherits STRATA_TRACE opens
 * it anew, so give such a family "%p" in the path (the pid). */
#ifndef STRATA_CORE_TRACE_H
#define STRATA_CORE_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/atomic.h"

#define STRATA__TRACE_TRACKS 100000u   /* tracks per process */

/* Whether a trace is open (relaxed: a hint; the lock decides). */
extern _Atomic uint32_t strata__trace_open_word;
static inline bool strata__trace_active(void)
{
    return strata__load_relaxed(&strata__trace_open_word) != 0;
}
/* Which file is open: changes with every strata_trace_begin, so a source names
   its tracks once per file. */
uint64_t strata__trace_epoch(void);
/* STRATA_TRACE: open it the first time a worker is created in a process
   (later calls do nothing). A path that cannot be written is STRATA_ESYS
   naming the variable. */
int strata__trace_from_env(void);
/* This process writes no trace of its own from STRATA_TRACE (a serving MPI
   rank: rank 0 writes the job's). Before its first worker is created. */
void strata__trace_env_off(void);
/* n consecutive tracks of this process for one source (a worker's
   orchestrator and its children's dispatch tracks): the first one's number. */
uint32_t strata__trace_new_tracks(uint32_t n);
/* A number unique in this process, naming one source in flow ids. */
uint32_t strata__trace_new_source(void);

/* Take the trace's lock: false (and no lock held) when no trace is open, or
   the file is another process's (this is a child forked after it opened). */
bool strata__trace_lock(void);
void strata__trace_unlock(void);
/* Write what is buffered to the file now (under the lock): at a run's end,
   so the file holds every finished run. */
void strata__trace_flush(void);

/* Writers (under the lock). Names are escaped; `args` is the inside of a JSON
   object ("\"task\":3,\"run\":1") or NULL. Times are CLOCK_MONOTONIC ns. */
void strata__trace_process_name(int pid, const char *name, int sort_index);
void strata__trace_thread_name(int pid, uint32_t track, const char *name, int sort_index);
/* A slice that began and ended. */
void strata__trace_slice(int pid, uint32_t track, uint64_t begin_ns, uint64_t end_ns, const char *name,
                         const char *args);
/* A slice that began and never ended (its process died in it). */
void strata__trace_unended(int pid, uint32_t track, uint64_t begin_ns, const char *name, const char *args);
void strata__trace_instant(int pid, uint32_t track, uint64_t ts_ns, const char *name, const char *args);
void strata__trace_counter(int pid, uint64_t ts_ns, const char *name, uint64_t value);
/* One end of flow arrow `id` ("submit", "dependency"): its start inside the
   slice open on (pid, track) at ts_ns, or its end at the slice open there at
   ts_ns. */
void strata__trace_flow(int pid, uint32_t track, uint64_t ts_ns, const char *name, uint64_t id, bool start);

#endif
