/* The node's events (core/recorder.h): every child's area of rings in one
 * shared mapping made with the mailboxes, the engine's own area, the drain of
 * all of them into the trace, and the flight recorder read at a child's death.
 *
 *   area                     writer                          lives in
 *   the engine's own         the driving thread              private memory at the top; the area
 *                                                            its parent gave a worker child
 *   a chip child's           its orchestrator (ring 0) and   the children's mapping (shared,
 *                            its cores (rings 1..)           made before the spawner is forked)
 *   a SUB child's            its main thread                 the same
 *   a worker child's         its engine                      the same
 *
 * The parent resets a child's area before each fork of it, so an area holds
 * one process's life, and reads it while that process runs (the trace) and
 * after it died (the death message's summary, the postmortem file). */
#ifndef STRATA_NODE_RECORD_H
#define STRATA_NODE_RECORD_H

#include "core/recorder.h"
#include "core/sys.h"

#include <sys/mman.h>
#include <unistd.h>
#include "core/trace_drain.h"
#include "node/node.h"

/* The engine's own area (at create): private memory of one ring. */
int  strata__record_create(strata__node *n);
void strata__record_destroy(strata__node *n);
/* The child's side (inline: the child's loops call nothing of the parent's
   side). A worker child (L4+): its engine writes into `area`, the one the
   level above made for this process, instead of its own (dropped). */
static inline void strata__record_adopt(strata__node *n, strata__rec_area *area)
{
    if (!area)
        return;
    if (n->rec_owned)
        munmap(n->rec, strata__rec_area_bytes(1, n->rec_capacity));
    n->rec = area;
    n->rec_owned = false;
}
/* The children's areas, one mapping (the process transport's open and close,
   under the live lock). */
int  strata__record_map_children(strata__node *n);
void strata__record_unmap_children(strata__node *n);
/* Before each fork of child c: an empty area (and its trace reader restarted). */
void strata__record_child_reset(strata__node *n, strata__child *c);
/* In child c at its start: the area is this process's. */
static inline void strata__record_child_started(strata__child *c)
{
    if (c->rec)
        strata__store_relaxed(&c->rec->pid, (int32_t)getpid());   /* relaxed: before its first event */
}

/* A run begins: whether it is traced (a trace is open and cfg does not skip
   it), told to every child's writers; the run's begin in the engine's area. */
void strata__record_run_begin(strata__node *n, const strata_call_config *cfg);
/* The run ended: its end recorded, every area drained, the children told. */
void strata__record_run_end(strata__node *n);
/* Write what every area holds into the trace: while a traced run waits
   (final false: what is old enough, core/trace_drain.h), or once its tasks
   are done (final). */
void strata__record_drain(strata__node *n, bool final);

/* Child c's death is about to be reported: its last events summed up at the
   end of its death message, the whole area written to a postmortem file named
   there, and (tracing) the death an instant of the trace. Once per death. */
void strata__record_death(strata__node *n, strata__child *c);
/* An instant on child c's dispatch track ("restarted"), when tracing. */
void strata__record_instant(strata__node *n, const strata__child *c, const char *what, const char *detail);

/* A traced run drains the rings at least this often while it waits. */
#define STRATA__TRACE_DRAIN_MS 1u

/* A level-2 worker's events: a chip in this process, its area private (ring
   0 its orchestrator, the thread that runs it; rings 1.. its cores). */
typedef struct strata__chip_record strata__chip_record;
/* name(ctx, handle): the chip callable's name. */
int  strata__chip_record_open(strata__chip *chip, int device_id, uint32_t aic, uint32_t aiv,
                              const char *(*name)(void *ctx, uint32_t handle), void *ctx, strata__chip_record **out);
/* abandoned: the chip's cores may still write (a hung kernel): the area stays. */
void strata__chip_record_close(strata__chip_record *r, bool abandoned);
void strata__chip_record_run_begin(strata__chip_record *r, uint32_t handle, const strata_call_config *cfg);
void strata__chip_record_run_end(strata__chip_record *r, int status);

/* ---- events across processes of different hosts (remote workers, MPI) ----

   A rank serving a worker exports, with the answer to each traced task, the
   events its areas gained since the last export, as blocks; rank 0 imports
   them into areas of its own that mirror the rank's (it writes them, as their
   one writer, with the rank's clock moved onto its own), which the trace then
   reads like any other. A block of ring events: */
typedef struct strata__record_block {
    uint32_t area;       /* 0: the served worker's own; 1 + i: its child i; STRATA__RECORD_NAMES: names */
    uint32_t ring;
    int32_t  pid;        /* the process writing the area */
    uint32_t count;      /* events (strata__record_event) or bytes of names that follow */
    uint32_t nrings;     /* the area's rings */
    uint32_t kind;       /* strata__child_kind of the area's process (area 0: STRATA__CHILD_REMOTE) */
    int32_t  device_id;  /* a chip's */
    uint32_t aic;        /* AIC cores of its chips (the cores' names) */
    uint32_t children;   /* area 0: the served worker's children (its dispatch tracks) */
    uint32_t level;      /* area 0: the served worker's level */
} strata__record_block;
typedef struct strata__record_event {
    uint64_t ts_ns, what, id, arg;   /* as in a ring (core/recorder.h) */
} strata__record_event;
/* A names block: entries of {uint32 handle, uint32 length, then the name}. */
#define STRATA__RECORD_NAMES UINT32_MAX

/* The served side: while `forced`, n's runs are traced for the level that
   asked (it has no trace of its own open). */
void strata__record_force(strata__node *n, bool forced);
/* The served side: what n's areas gained since the last export (and, the
   first time and after new registrations, its callables' names), appended to
   *buf (grown; *len its bytes). STRATA_ENOMEM. */
int  strata__record_export(strata__node *n, uint8_t **buf, size_t *cap, size_t *len);
/* Rank 0: import blocks from remote child c, whose clock reads offset_ns more
   than this host's. A damaged block ends the import (a rank's bytes are not
   trusted). */
void strata__record_import(strata__node *n, strata__child *c, const uint8_t *buf, size_t len, int64_t offset_ns);

/* An event of the engine's own (traced runs only). */
static inline void strata__record(strata__node *n, uint32_t kind, uint32_t aux, uint64_t id, uint64_t arg)
{
    if (n->traced)
        strata__rec_write(strata__rec_area_ring(n->rec, 0), strata__now_ns(), kind, aux, id, arg);
}
/* A task's id in events: the run's number above the task's (index + 1). */
static inline uint64_t strata__record_id(const strata__node *n, uint32_t t)
{
    return (uint64_t)n->run_id << 32 | ((uint64_t)t + 1);
}

#endif
