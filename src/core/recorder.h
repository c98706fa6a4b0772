/* Event rings: what a Strata thread did lately, in memory another process can
 * read (the flight recorder, and the source of every trace).
 *
 * A ring has exactly one writer (a lane of a chip, a chip's orchestrator, the
 * thread that drives a worker, a SUB child's main thread) and any number of
 * readers, in this process or another one that maps the same memory: the
 * parent reads a child's rings while it runs (a trace) and after it died (the
 * flight recorder: the ring outlives the process, node/record.c).
 *
 *   word     writer   reader   ordering
 *   head     writer   readers  release / acquire: the events below head are complete
 *   events   writer   readers  release / acquire per field: a reader copies an event,
 *                              then reads head again and drops the copy if the writer
 *                              may have lapped it meanwhile (a seqlock whose sequence is
 *                              the ring's position: a field of the next lap is stored
 *                              after the head that let the writer reach it)
 *   current  writer   readers  relaxed: what the writer is in right now (a kernel),
 *                              kept even when no event is written (tracing off)
 *
 * Events are fixed-size (32 bytes) and carry numbers only: names are resolved
 * by whoever reads them (the parent knows every callable by its handle). A
 * writer never waits: when readers lag the ring wraps and they count what they
 * lost. */
#ifndef STRATA_CORE_RECORDER_H
#define STRATA_CORE_RECORDER_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/atomic.h"

typedef enum strata__rec_kind {
    STRATA__REC_NONE = 0,
    /* a run of a worker (id: run); arg: its level */
    STRATA__REC_RUN_BEGIN, STRATA__REC_RUN_END,
    /* a task a child was given (id: run << 32 | task; arg: handle, then status at the end) */
    STRATA__REC_TASK_BEGIN, STRATA__REC_TASK_END,
    /* a kernel on a core (id: the chip's task id; arg: func_id, then status) */
    STRATA__REC_KERNEL_BEGIN, STRATA__REC_KERNEL_END,
    /* the engine: a task submitted (id: run << 32 | task; aux: target worker + 1, 0 = any
       SUB worker; arg: handle) */
    STRATA__REC_SUBMIT,
    /* the engine: a task posted to / answered by the child of lane `aux` (id: run << 32 | task;
       arg: handle, then status) */
    STRATA__REC_POST, STRATA__REC_ANSWER,
    /* the engine: producer id released consumer arg (both run << 32 | task) */
    STRATA__REC_RELEASE,
    /* a wait for room in a ring (aux: strata__rec_ring_id); arg: what it waits for */
    STRATA__REC_WAIT_BEGIN, STRATA__REC_WAIT_END,
    /* a counter (aux: strata__rec_counter; arg: its value) */
    STRATA__REC_COUNTER,
    /* a chip's orchestrator made task arg wait for task id (an edge of the
       chip's graph, written when it is linked) */
    STRATA__REC_EDGE,
    STRATA__REC_KINDS
} strata__rec_kind;

typedef enum strata__rec_counter {
    STRATA__COUNTER_TASK_WINDOW,  /* tasks in the window (submitted, not retired) */
    STRATA__COUNTER_READY,        /* tasks ready and not started */
    STRATA__COUNTER_HEAP,         /* bytes of the heap ring in use */
    STRATA__COUNTER_DEP_POOL,     /* edge records in use */
    STRATA__COUNTERS
} strata__rec_counter;

/* One event. Every field is an atomic (release stores, acquire loads: plain
   moves on x86): a reader may copy an event while the writer laps it, and the
   copy is then dropped, never trusted (see the table above). */
typedef struct strata__rec_event {
    _Atomic uint64_t ts_ns;   /* CLOCK_MONOTONIC: one clock for every process of a host */
    _Atomic uint64_t what;    /* kind | aux << 8 */
    _Atomic uint64_t id;
    _Atomic uint64_t arg;
} strata__rec_event;

/* A plain copy of an event, as a reader holds it. */
typedef struct strata__rec_copy {
    uint64_t pos;             /* its position in the ring (a reader's cursor to it) */
    uint64_t ts_ns;
    uint32_t kind, aux;
    uint64_t id, arg;
} strata__rec_copy;

typedef struct strata__rec_ring {
    alignas(STRATA__CACHE_LINE) _Atomic uint64_t head;   /* events written since the ring was reset */
    _Atomic uint64_t current;      /* the kernel a core is in (strata__rec_current), 0 = none */
    uint32_t         capacity;     /* events, a power of two */
    uint32_t         pad_;
    alignas(STRATA__CACHE_LINE) strata__rec_event events[];
} strata__rec_ring;

/* A core's current kernel in one word, func_id + 1 (func_ids are >= 0): one
   store each way per kernel, tracing or not, all the flight recorder costs a
   kernel (a traced run's events carry the task ids). */
static inline uint64_t strata__rec_current(int func_id)
{
    return (uint64_t)func_id + 1;
}
static inline uint64_t strata__rec_current_func(uint64_t word)
{
    return word - 1;
}

/* Bytes of a ring of `capacity` events (a power of two). */
size_t strata__rec_ring_bytes(uint32_t capacity);
/* Make the memory at r (strata__rec_ring_bytes(capacity), zeroed or not) an
   empty ring. Only while no one writes it. */
void strata__rec_ring_reset(strata__rec_ring *r, uint32_t capacity);

/* Write one event (the ring's writer only): five stores, no wait. */
static inline void strata__rec_write(strata__rec_ring *r, uint64_t ts_ns, uint32_t kind, uint32_t aux,
                                     uint64_t id, uint64_t arg)
{
    uint64_t h = strata__load_relaxed(&r->head);   /* only this thread stores it */
    strata__rec_event *e = &r->events[h & (r->capacity - 1)];
    /* release (each): the head that let the writer reach this slot again is
       visible to a reader that sees any of these, which then drops its copy */
    strata__store_release(&e->ts_ns, ts_ns);
    strata__store_release(&e->what, (uint64_t)kind | (uint64_t)aux << 8);
    strata__store_release(&e->id, id);
    strata__store_release(&e->arg, arg);
    /* release: the event's fields are visible before the head that covers it */
    strata__store_release(&r->head, h + 1);
}

/* Read the events from *cursor up to the ring's head, at most `max`, into out:
   returns how many; *cursor moves past them, and *lost grows by the events the
   writer overwrote before they could be read. Any thread or process.
   `capacity` is the reader's own knowledge of the ring's size: another
   process's memory (a child that crashed scribbling) is never trusted for
   where to read. */
uint32_t strata__rec_read(const strata__rec_ring *r, uint32_t capacity, uint64_t *cursor, strata__rec_copy *out,
                          uint32_t max, uint64_t *lost);

/* The position of the oldest event the ring still holds: the cursor a reader
   of "the last events" starts from. */
uint64_t strata__rec_oldest(const strata__rec_ring *r, uint32_t capacity);

/* A process's rings: ring 0 is its main thread's (a chip's orchestrator, a SUB
   function's thread, a worker's engine), rings 1.. its cores'. A child's area
   lies in memory its parent mapped shared before the child started, so the
   parent reads it while the child runs and after it died.

   What is written: always, ring 0's runs and tasks and each core's `current`
   kernel (the flight recorder: a few stores per task); while `traced` is set
   (a traced run), every event of the kinds above. */
typedef struct strata__rec_area {
    alignas(STRATA__CACHE_LINE) _Atomic uint32_t traced;  /* set by the parent for a traced run */
    _Atomic int32_t  pid;          /* the process writing it, set at its start */
    uint32_t         nrings;       /* 1 + cores */
    uint32_t         capacity;     /* events per ring */
    uint64_t         ring_bytes;   /* the stride between rings */
} strata__rec_area;

/* Bytes of an area of nrings rings of capacity events (a power of two). */
size_t strata__rec_area_bytes(uint32_t nrings, uint32_t capacity);
/* Make the memory at a an empty area (the rings' headers written; their
   events untouched, so untraced memory stays unallocated). */
void strata__rec_area_reset(strata__rec_area *a, uint32_t nrings, uint32_t capacity);
/* Ring i of a, for its writers (they made the area or were given it); NULL
   when i is out of range. */
strata__rec_ring *strata__rec_area_ring(const strata__rec_area *a, uint32_t i);
/* The same for a reader in another process, from what it knows of the area
   (never from the area's own words): NULL when i >= nrings. */
strata__rec_ring *strata__rec_ring_at(const strata__rec_area *a, uint32_t nrings, uint32_t capacity, uint32_t i);
/* Whether the writers of a record everything (relaxed: a hint read once per task). */
static inline bool strata__rec_traced(const strata__rec_area *a)
{
    return a && strata__load_relaxed(&a->traced) != 0;
}
/* STRATA_TRACE_EVENTS: events per ring (a power of two, 256 to 1M; default
   STRATA__REC_DEFAULT_EVENTS), read at a worker's create; STRATA_EINVAL
   naming the variable when it is bad. */
#define STRATA__REC_DEFAULT_EVENTS 16384u
int strata__rec_capacity_from_env(uint32_t *out);

/* The kind's name, for traces and postmortems ("task_begin"). */
const char *strata__rec_kind_name(uint32_t kind);

#endif
