/* From event rings to the trace: a reader of one process's area of rings
 * (core/recorder.h) that turns what it finds into slices, flows, counters
 * and instants in the trace file (core/trace.h).
 *
 * Each reader belongs to the thread that drives the worker whose area it reads
 * (the worker's own, or one child's): it keeps its cursors and the slices its
 * tracks have open (a begin read, its end not yet), so a slice is written once,
 * whole, when its end comes; a slice whose process died in it is written as
 * one that never ended.
 *
 * Tracks of the process: 0 the main thread, 1..nrings-1 the cores, then (a
 * worker's own area) one dispatch track per child, where the engine's posts
 * and answers show what each child held. Flows: a submit's arrow ends at the
 * start of the task in the child (the reader of a child's area knows the
 * engine that submitted, `flow_source`); a dependency's arrow goes from the
 * producer's dispatch slice to its consumer's. */
#ifndef STRATA_CORE_TRACE_DRAIN_H
#define STRATA_CORE_TRACE_DRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/recorder.h"

/* How a reader names what the events number. */
typedef struct strata__trace_names {
    void *ctx;
    /* the process (its track group) */
    void (*process)(void *ctx, char *buf, size_t cap);
    /* track t: 0 main, 1..nrings-1 cores, nrings + c the dispatch track of child c */
    void (*track)(void *ctx, uint32_t track, char *buf, size_t cap);
    /* a registered callable (dispatched: a handle of the area's own engine, in
       a post or answer; else of the level that gave the area's process its
       task); NULL: "handle N" */
    const char *(*callable)(void *ctx, bool dispatched, uint32_t handle);
} strata__trace_names;

#define STRATA__DRAIN_DEPTH   4u     /* slices open at once on one track */
#define STRATA__DRAIN_PENDING 4096u  /* dependency arrows whose consumer has not started */
#define STRATA__DRAIN_KERNELS 4096u  /* recent kernels, for the arrows between them */
#define STRATA__DRAIN_BATCH   256u   /* events read from one ring at a time */
/* A drain while the writers run takes events at least this old only: each ring
   is in time order, and the events of all rings are merged in time order, so
   what an event follows from (a producer's end, the edge to it) is read
   before it unless its writer stalled this long between clock and publish
   (then an arrow may be missing; never a slice). */
#define STRATA__DRAIN_LAG_NS  200000u

typedef struct strata__drain_open {
    uint64_t ts_ns, id, arg;
    uint32_t kind;
} strata__drain_open;

typedef struct strata__rec_reader {
    const strata__rec_area *area;
    strata__trace_names names;
    char       label[48];            /* in counter names: "task window (<label>)" */
    char       counter_names[STRATA__COUNTERS][72];
    uint32_t   track_base;           /* the area's first track in its process */
    uint32_t   nrings, ntracks;      /* ntracks = nrings + dispatch tracks */
    uint32_t   capacity;             /* events per ring, as the reader knows them (not the area's word) */
    uint32_t   source;               /* this area's engine, in flow ids (its own submits) */
    uint32_t   flow_source;          /* the engine that submitted this area's tasks; 0: none */
    uint64_t   epoch;                /* the trace file its names went to */
    int32_t    named_pid;
    uint64_t  *cursors;              /* per ring */
    strata__drain_open (*open)[STRATA__DRAIN_DEPTH];   /* per track */
    uint8_t   *depth;                /* per track */
    uint32_t   chip_handle;          /* the callable the cores' kernels belong to (ring 0's task) */
    char       chip_callable[96];    /* its name, escaped for JSON (kept while the handle stays) */
    uint32_t   chip_callable_of;     /* the handle chip_callable names + 1; 0: none yet */
    char     (*core_names)[32];      /* the cores' track names (ring 1.. ), escaped */
    uint64_t   chip_task;
    uint64_t   lost, lost_told;      /* events overwritten before they were read */
    /* the last answer read: where a dependency's arrow starts */
    uint64_t   answer_id, answer_begin, answer_end;
    uint32_t   answer_track;
    uint64_t   next_flow;
    struct { uint64_t consumer, flow; } *pending;   /* STRATA__DRAIN_PENDING, consumer 0 = free */
    /* the merge of the rings in time order: a batch per ring */
    strata__rec_copy *batch;         /* nrings * STRATA__DRAIN_BATCH */
    uint32_t  *batch_at, *batch_len;
    /* between kernels of a chip: the edges its orchestrator linked, waiting
       for their consumer to start (by consumer), and recent kernels' ends */
    struct { uint64_t producer, consumer; } *edges;       /* STRATA__DRAIN_PENDING */
    struct { uint64_t id, end_ns; uint32_t track; } *ended;  /* STRATA__DRAIN_KERNELS, by id */
    /* submits not started yet: a submit's arrow is drawn when its task starts
       (posted at level 3+, begun on a core), never for one that did not */
    struct { uint64_t id, ts_ns; } *submitted;              /* STRATA__DRAIN_KERNELS, by id */
    bool ring_ids;   /* a chip's area: task ids are local id * 4 + scope depth (chip/engine.h) */
} strata__rec_reader;

/* Set r up to read area (whose memory outlives r), of nrings rings of
   capacity events as its owner made it; dispatch: tracks past the rings (a
   worker's children). STRATA_ENOMEM. */
int  strata__rec_reader_init(strata__rec_reader *r, const strata__rec_area *area, uint32_t nrings, uint32_t capacity,
                             uint32_t dispatch, const strata__trace_names *names, const char *label,
                             uint32_t flow_source);
void strata__rec_reader_free(strata__rec_reader *r);
/* The area was reset for a new process (a restarted child): read it from
   its start, with nothing open. */
void strata__rec_reader_restart(strata__rec_reader *r);
/* Forget what the area holds now (a run that begins traced after untraced
   ones: their events are not the trace's). */
void strata__rec_reader_skip(strata__rec_reader *r);
/* Write what the area holds past r's cursors (the trace's lock held). final:
   the writers are quiet (the run ended, the process died): everything;
   otherwise what is STRATA__DRAIN_LAG_NS old. */
void strata__rec_drain(strata__rec_reader *r, bool final);
/* The area's process died: its open slices are written as never ended (after
   a last drain). */
void strata__rec_drain_died(strata__rec_reader *r);

#endif
