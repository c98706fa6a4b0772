/* The chip engine (L2, runtime tensormap_and_ringbuffer): one simulated chip.
 *
 * Threads: the orchestrator (the thread that calls strata__chip_run, running the
 * callable's orchestration function) and one lane per simulated core. There is no
 * scheduler thread: the orchestrator pushes tasks that are ready at submit (into
 * its own queue per core type), and a lane that completes a task runs one
 * successor it made ready next and pushes the others (into the lanes' queue).
 *
 * A task lives in one slot of the task window of its scope depth's ring
 * (strata__depth_ring: each depth retires in its own order) from submit to
 * retirement; lanes and ready queues name it by its slot alone. Its life, and
 * who moves it:
 *   submit (orchestrator): fill args, pending = GUARD, link an edge into every
 *     producer's fanout list (a completing producer takes 1 from pending), then
 *     take GUARD - edges: one read-modify-write per task, not one per edge.
 *     GUARD is larger than any number of edges, so pending cannot reach zero
 *     before that last step.
 *   ready (whoever brings pending to 0): push the slot on its core type's queue,
 *     or, for a lane, keep it as the next task it runs. A task that got no edge
 *     at submit is ready without any read-modify-write of pending.
 *   run (a lane): call the kernel, or skip it when poisoned or the run failed.
 *   complete (that lane): status, close fanout (exchange to CLOSED), decrement
 *     every successor, set done (release).
 *   retire (orchestrator, in id order within each ring): free the slot and
 *     the edges the task owned; heap buffers whose scope ended and whose users
 *     (in every ring) retired recycle.
 *
 *   word          writer                        reader              ordering
 *   pending       orchestrator (plain store of   same                acq_rel: the last decrement sees all;
 *                 GUARD at submit, of 0 with no                      the plain stores come before the
 *                 edge; RMW), lanes (RMW)                            task is known to any other thread
 *   fanout        orchestrator (CAS push),       both                release push / acq_rel close /
 *                 completing lane (exchange)                         acquire load before trusting status
 *   status        completing lane (or the        orchestrator, after plain, published by the fanout
 *                 orchestrator for a task it     seeing CLOSED       exchange (or by done)
 *                 abandons at submit)
 *   poisoned      lanes and orchestrator,        the lane that runs  relaxed, ordered by pending's
 *                 before their pending RMW       the task            RMW chain and the queue push
 *   done          completing lane / abandoning   orchestrator        release / acquire
 *                 orchestrator
 *   stop          close                          lanes               release / acquire, then notify
 *   running_id,   the lane (with a timeout)      orchestrator's      release / acquire; a stale pair
 *   started_ns                                   timeout check       is re-checked, never trusted
 *   failure       first failing thread (CAS)     everyone (status);  relaxed status; message published
 *                                                the run's end       by `published` (core/status.h)
 *   assigned      a cluster's AIC lane (a part   the AIV lane        release / acquire (the part's body
 *   (AIV lane)    handed over); the AIV lane     (and its AIC lane   and parts_left); the clear is
 *                 (cleared as it takes it)       testing the         relaxed, then a full notify of
 *                                                cluster)            the AIC event (lane.c)
 *   parts_left    the AIC lane (plain store      the parts' lanes    acq_rel countdown: the last part
 *                 before handing over), each                         sees every part's status
 *                 part's lane (RMW)
 *   parts_status  a failing part (CAS)           the last part       relaxed, ordered by parts_left
 *   fanout, in    the orchestrator (relaxed,     lanes               published by the acq_rel guard
 *   host_build_   before any task of the run                         drop and the ready push that
 *   graph         can run)                                           follow (orch.c)
 * An edge belongs to its successor and lives until the successor retires, so a
 * completer reads an edge's `next` before the decrement that may let the
 * successor finish. */
#ifndef STRATA_CHIP_ENGINE_H
#define STRATA_CHIP_ENGINE_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "chip/kernel.h"
#include "chip/sched.h"
#include "core/atomic.h"
#include "core/ring.h"
#include "core/status.h"
#include "core/tensormap.h"
#include "core/wait.h"
#include "platform/platform.h"
#include "strata/worker.h"

/* The ready queues of mixed tasks, beside STRATA_AIC and STRATA_AIV; their
   wake-up is the AIC lanes' event (ready_event[core & 1]). */
#define STRATA__CORE_MIXED 2

/* Rings per scope depth (docs/design.md, "Rings per scope depth"): depth 0
   (the run's own scope), 1, 2, and 3 or deeper share the last. */
#define STRATA__DEPTHS 4u

/* Ring limits (docs/design.md, "Rings"). */
#define STRATA__WINDOW_MIN      1u
#define STRATA__WINDOW_MAX      65536u
#define STRATA__WINDOW_TOTAL_MAX (STRATA__DEPTHS * STRATA__WINDOW_MAX)   /* every depth's slots together */
#define STRATA__DEP_POOL_MIN    1u
#define STRATA__DEP_POOL_MAX    (1u << 30)
#define STRATA__HEAP_MIN        64u
#define STRATA__DEFAULT_WINDOW   1024u
#define STRATA__DEFAULT_HEAP     (64ull << 20)
#define STRATA__DEFAULT_DEP_POOL 16384u
#define STRATA__MAX_CORES        64u

#define STRATA__PENDING_GUARD (1u << 30)       /* > any edge count (edges <= window) */
#define STRATA__EDGE_EMPTY  UINT32_MAX          /* fanout list: no successor yet */
#define STRATA__EDGE_CLOSED (UINT32_MAX - 1)    /* fanout list: producer completed */

/* chip->run_watch: one word the lanes test per kernel for both. */
enum { STRATA__WATCH_TIMED = 1, STRATA__WATCH_TRACED = 2 };
/* chip->orch_special: one word a submit tests for the rare kinds. */
enum { STRATA__SPECIAL_TRACED = 1, STRATA__SPECIAL_HOST_GRAPH = 2, STRATA__SPECIAL_MIXED = 4 };

/* The three rings of one scope depth. */
typedef struct strata__ring_sizes {
    uint64_t task_window, heap, dep_pool;
} strata__ring_sizes;

/* A chip's ring defaults (built in, or PTO2_RING_* at create): each depth's
   sizes, and whether each variable gave four values (for messages). */
typedef struct strata__ring_config {
    strata__ring_sizes depth[STRATA__DEPTHS];
    bool               env_listed[3];   /* task_window, heap, dep_pool */
    uint32_t           scope_rings;     /* rings in use, 1..STRATA__DEPTHS (STRATA_SCOPE_RINGS); depths
                                           past the last share it (1: one ring for every depth) */
} strata__ring_config;

/* Where a ring's size of the current run came from, for messages: "PTO2_RING_HEAP"
   (the variable or, unset, its default), "PTO2_RING_HEAP's value for scope depth
   2", "call_config.ring_heap" or "call_config.ring_heap_by_depth[2]". Made by
   strata__ring_source() when a message needs it; a run records only a kind. */
typedef struct strata__ring_sources {
    char task_window[48], heap[48], dep_pool[48];
} strata__ring_sources;
enum { STRATA__RING_WINDOW, STRATA__RING_HEAP, STRATA__RING_DEP };
enum { STRATA__SOURCE_ENV, STRATA__SOURCE_ENV_LIST, STRATA__SOURCE_CONFIG, STRATA__SOURCE_CONFIG_DEPTH };

/* Task ids carry their ring: local id (from 1 in each ring, growing along its
   ring only) times 4, plus the depth. Id 0 is "none". */
#define STRATA__TASK_ID(depth, local) ((local) << 2 | (uint64_t)(depth))
#define STRATA__ID_DEPTH(id)          ((uint32_t)((id) & 3u))
#define STRATA__ID_LOCAL(id)          ((id) >> 2)

/* Hot per-task state, one cache line per slot so lanes do not false-share. */
typedef struct strata__task {
    alignas(STRATA__CACHE_LINE) _Atomic uint32_t pending;
    _Atomic uint32_t fanout;     /* head edge index, EMPTY or CLOSED */
    _Atomic uint32_t done;
    _Atomic uint32_t poisoned;
    _Atomic uint32_t parts_left; /* a mixed task: parts not finished (the last one completes it) */
    _Atomic int32_t  parts_status; /* a mixed task: its first failing part's status */
    int32_t          status;     /* see the table above */
    uint64_t         id;         /* STRATA__TASK_ID */
    uint32_t         number;     /* in its run, 0, 1, ... in submit order (messages, task numbers) */
    uint64_t         last_succ;  /* orchestrator only: dedupes edges to one successor */
    uint64_t         dep_end;    /* orchestrator only: dep_pool head after its edges */
} strata__task;

/* The task's arguments as the kernel sees them; written by the orchestrator at
   submit, read by the lane after the ready queue's acquire. The arrays are
   packed into `data` with the task's own counts (tensors, scalars, then tags),
   so a one-tensor task's body is three cache lines, not five scattered ones:
   each line crosses cores twice per task (the lane reads it, the next
   submit into the slot takes it back). */
#define STRATA__BODY_DATA (STRATA_MAX_CORE_TENSORS * sizeof(strata_tensor) + \
                           STRATA_MAX_CORE_SCALARS * sizeof(uint64_t) + STRATA_MAX_CORE_TENSORS * sizeof(strata_tag))
typedef struct strata__task_body {
    alignas(STRATA__CACHE_LINE) strata_task_args view;   /* points into data */
    strata_kernel_fn fn;
    int              func_id;
    strata_core_type core;
    alignas(8) unsigned char data[STRATA__BODY_DATA];
} strata__task_body;

typedef struct strata__edge {
    uint32_t succ_slot;
    uint32_t next;
} strata__edge;

/* A heap ring allocation, in allocation order. */
typedef struct strata__heap_record {
    uint32_t buffer;     /* TensorMap buffer index */
    bool     closed;     /* its scope has ended */
    uint64_t offset, nbytes, charged;
} strata__heap_record;

/* The rings of one scope depth, orchestrator only. Its task window is slots
   [base, base + window) of chip->tasks and chip->bodies, its dep pool edges
   [dep_base, dep_base + dep_pool) of chip->edges; its heap ring is placed in
   chip memory at its first use (depth 0: every run). Each retires in its own
   order, so an inner scope's tasks free their slots, edges and buffers while
   an older task of an outer scope still runs. */
typedef struct strata__depth_ring {
    alignas(STRATA__CACHE_LINE) uint32_t depth;   /* lines of their own: see the chip's layout */
    uint32_t            base;              /* first slot */
    uint64_t            window, mask;      /* task_window slots, task_window - 1 */
    uint64_t            next, retire_next; /* local ids */
    uint64_t            dep_base, dep_size, dep_head, dep_tail;
    uint64_t            heap_addr;         /* device address, 0 while not placed */
    uint64_t            heap_placed;       /* its size when placed */
    strata__heap_ring   heap;
    strata__heap_record *hrec;             /* FIFO, capacity hrec_cap (power of two) */
    uint64_t            hrec_cap, hrec_head, hrec_next;
    uint64_t            high_window, high_dep;
} strata__depth_ring;

typedef struct strata__chip strata__chip;

typedef struct strata__lane {
    strata__chip    *chip;
    strata_core_type core;
    uint32_t         index;        /* among lanes of its core type */
    bool             started;      /* its core runs this lane (platform cores_start) */
    /* Read by the orchestrator's timeout check while the run is live. */
    _Atomic uint64_t running_id;   /* 0 = no task */
    _Atomic uint64_t started_ns;
    _Atomic uint64_t running_kernel; /* its func_id (low word) and part + 1 of a mixed task (high word), or 0 */
    /* Written by the lane, read by the orchestrator after `done` (acquire). */
    uint64_t completed, failed, canceled;
    /* A chip of clusters (lane.c, "Mixed tasks"): an AIC lane's two AIV
       siblings; an AIV lane's part of a mixed task to run next (its part
       index + 1 in chip->parts, 0: none; release by the AIC lane, acquire here) */
    struct strata__lane *sibling[2];
    _Atomic uint32_t assigned;
    /* Its event ring (core/recorder.h), or NULL: every kernel's begin and end
       while the run is traced. `current` is never NULL: the ring's word for
       the kernel it is in (the flight recorder's), or current_here without one. */
    struct strata__rec_ring *rec;
    _Atomic uint64_t *current;
    _Atomic uint64_t current_here;
} strata__lane;

struct strata__chip {
    const strata__platform *platform;
    strata__device         *dev;
    strata__cores          *cores;         /* the platform's cores running the lanes */
    int                     device_id;
    uint32_t                ncores[2];     /* AIC, AIV */
    strata__ring_config     defaults;      /* environment or built-in */
    strata__ring_sizes      sizes[STRATA__DEPTHS];    /* of the current allocation */
    uint8_t                 source_kind[STRATA__DEPTHS][3];  /* STRATA__SOURCE_* of each ring's size this run */
    strata__ring_sources    sources[STRATA__DEPTHS];  /* their words (strata__ring_source) */
    uint32_t                task_timeout_ms;

    /* rings: every depth's task window and dep pool, one after another */
    uint32_t            nslots;            /* the windows together */
    strata__task       *tasks;
    strata__task_body  *bodies;
    strata__edge       *edges;
    uint64_t            nedges;

    /* orchestrator state (one thread). The rings' words change at every
       submit, so they start a cache line of their own: on the line of
       `bodies` and `edges`, which every lane reads for every task, they cost
       a miss per task on each side (bench/l2_overhead independent: 42 ->
       55 ns per task). */
    const strata__callable *callable;      /* of the run in progress */
    strata__depth_ring  ring[STRATA__DEPTHS];
    strata__depth_ring *cur;               /* the ring of the open scope's depth */
    uint32_t            rings_used;        /* depths 0 .. rings_used - 1 have had tasks this run */
    /* The TensorMap's test of a task id: retired when below live_from[its
       depth] (that ring's oldest unretired id). */
    uint64_t            live_from[STRATA__DEPTHS];
    uint64_t            seq;               /* tasks submitted since open */
    uint64_t            run_first_seq;     /* seq at the run's start: task numbers count from it */
    strata__tensormap   tmap;
    uint64_t           *scopes;            /* its ring's hrec_next at each open scope_begin */
    uint32_t            nscopes, scopes_cap;
    uint64_t            run_timeout_ms;
    /* A wait for progress also ends when this word holds this value
       (acquire): the fanout of a producer a dep_pool wait needs, or the
       pending count an abandoned submit waits down to. NULL: none. A ring's
       oldest task may itself wait for the submit that waits (an outer task
       waiting for an inner loop), so progress cannot mean "an oldest task
       finished" alone. */
    _Atomic uint32_t   *await_word;
    uint32_t            await_value;
    /* Runtime host_build_graph (orch.c): a run's whole graph is built first,
       with explicit edges, checked, then run. */
    bool                host_graph;        /* its tasks all go to the depth-0 ring */
    uint64_t            run_first_local;   /* the run's first local id there: its tasks are 0, 1, ... from it */
    struct strata__host_edge *hedges;      /* the run's explicit edges, in the order given */
    uint32_t            nhedges, hedges_cap;
    /* read by lanes at every task, written between runs: apart from the
       orchestrator's words above */
    alignas(STRATA__CACHE_LINE) uint32_t run_watch; /* STRATA__WATCH_*: what the run records or checks; set,
                                              with launch, before its first task is pushed */
    /* The run's kernel launch: the platform's, or, for a timed or traced run,
       strata__lane_watched_launch around it, so an unwatched kernel pays no
       test for either. */
    int               (*launch)(strata__device *dev, strata_kernel_fn fn, const strata_task_args *args);

    /* Called in traced runs (strata__chip_drain_hook): a level-2 worker
       drains its rings into the trace then. */
    void              (*on_wait)(void *ctx);
    void               *on_wait_ctx;
    uint64_t            waited_ns;
    bool                hung;              /* a task passed its timeout: lanes abandoned */

    strata__failure     failure;           /* first failure of the run */

    /* shared with lanes */
    /* by core type, and [STRATA__CORE_MIXED] for mixed tasks (a cluster's AIC
       lane takes them) */
    strata__ready_queue orch_queues[3];    /* pushed by the orchestrator only */
    strata__ready_queue lane_queues[3];    /* pushed by lanes */
    strata__event       ready_event[3];
    bool                clusters;          /* aiv = 2 * aic: mixed tasks run here */
    strata__task_body  *parts;             /* mixed tasks' parts: 3 per slot (AIC, AIV0, AIV1) once one
                                              was submitted; fn NULL for a part a task lacks */
    uint64_t            parts_slots;       /* the slots parts was made for */
    const strata_mixed_task *mixed_parts;  /* during strata_chip_submit_mixed's submit only (orch.c) */
    uint32_t            orch_special;      /* STRATA__SPECIAL_*: what a submit must do beyond the usual;
                                              the orchestrator's own word (set at run start, and around
                                              a mixed submit) */
    strata__event       orch_event;        /* a task completed */
    _Atomic uint32_t    stop;
    _Atomic uint32_t    streaming;         /* the orchestrator is submitting (see lane.c) */
    /* How many tasks were submitted (seq), on a line of its own: the
       orchestrator only stores it, lanes holding off read it (lane.c). */
    alignas(STRATA__CACHE_LINE) _Atomic uint64_t submitted;
    strata__lane       *lanes;
    uint32_t            nlanes;
    uint32_t            ndetached;         /* lanes close abandoned in a hung kernel */

    uint64_t            stat_completed, stat_failed, stat_canceled;
    strata_ring_stats   last_rings[STRATA__DEPTHS][3];   /* the last run's, by depth: window, heap, dep_pool */
    struct strata__rec_area *rec;          /* its events (strata__chip_set_recorder), or NULL */
    strata__chip       *next_abandoned;    /* see strata__chip_close() */
    uint32_t           *attached;          /* TensorMap indexes of external buffers */
    uint32_t            nattached, attached_cap;
};

/* The opaque handle an orchestration function gets. */
struct strata_chip_orch {
    strata__chip *chip;
};

/* Open the device (over `memory` when not NULL, see platform.h), allocate rings
   of `defaults`, start lanes. On failure nothing is left. Must be called by the
   thread that will drive the chip. */
int  strata__chip_open(const strata__platform *platform, int device_id, uint64_t memory_bytes, void *memory,
                       uint32_t aic_cores, uint32_t aiv_cores, const strata__ring_config *defaults,
                       uint32_t task_timeout_ms, strata__chip **out);
/* Stop and join lanes, release everything. A chip whose task hung is abandoned
   instead (see lane.c); returns true when it was released. */
bool strata__chip_close(strata__chip *chip);

/* Runtime host_build_graph instead of tensormap_and_ringbuffer: before the
   first run. */
void strata__chip_set_host_graph(strata__chip *chip, bool on);
/* host_build_graph: the orchestration function returned orc; check the run's
   graph and start it, or fail the run (a cycle, a ring too small) and settle
   every task without running any (orch.c). */
void strata__chip_host_graph_start(strata__chip *chip, int orc);

/* Record into area (core/recorder.h; it outlives the chip): ring 0 is the
   orchestrator's, ring 1 + i lane i's (AIC lanes first). Before the first run. */
void strata__chip_set_recorder(strata__chip *chip, struct strata__rec_area *area);

/* One run of callable c. */
int  strata__chip_run(strata__chip *chip, const strata__callable *c, const strata_task_args *args,
                      const strata_call_config *cfg);

/* Chip memory for strata_worker_malloc and friends. */
int  strata__chip_malloc(strata__chip *chip, uint64_t nbytes, uint64_t *addr);
int  strata__chip_free(strata__chip *chip, uint64_t addr);
int  strata__chip_copy(strata__chip *chip, uint64_t addr, uint64_t offset, void *host, uint64_t nbytes,
                       bool to_device);
void strata__chip_stats(const strata__chip *chip, strata_run_stats *out);
/* The last run's rings of one scope depth: task_window, heap, dep_pool. */
void strata__chip_depth_stats(const strata__chip *chip, uint32_t depth, strata_ring_stats out[3]);

/* Engine internals shared by engine.c, orch.c and lane.c. */
/* The orchestrator made slot ready at submit. */
void strata__chip_make_ready(strata__chip *chip, uint32_t slot);
/* A lane finished slot. Returns a successor made ready that the lane should
   run next (of the lane's core type), or STRATA__NONE. */
uint32_t strata__chip_complete(strata__chip *chip, strata__lane *lane, uint32_t slot, int32_t status);
void strata__chip_retire(strata__chip *chip);
/* The slot of task `id` (any ring). */
static inline uint32_t strata__slot_of(const strata__chip *chip, uint64_t id)
{
    const strata__depth_ring *r = &chip->ring[STRATA__ID_DEPTH(id)];
    return r->base + (uint32_t)(STRATA__ID_LOCAL(id) & r->mask);
}
/* How many rings the chip uses: STRATA_SCOPE_RINGS, or one under
   host_build_graph (every task of a run in the depth-0 ring). */
static inline uint32_t strata__rings_in_use(const strata__chip *chip)
{
    return chip->host_graph ? 1 : chip->defaults.scope_rings;
}
/* Whether every task submitted so far, in every ring, has retired. */
static inline bool strata__chip_all_retired(const strata__chip *chip)
{
    for (uint32_t d = 0; d < chip->rings_used; d++)
        if (chip->ring[d].retire_next != chip->ring[d].next)
            return false;
    return true;
}
/* Whether task `id` has retired (or is 0). */
static inline bool strata__retired(const strata__chip *chip, uint64_t id)
{
    return id < chip->live_from[STRATA__ID_DEPTH(id)];
}
/* Where ring `which` (STRATA__RING_*) of scope depth d got its size in this
   run, in words, for a message. */
const char *strata__ring_source(strata__chip *chip, uint32_t d, int which);
/* "scope depth 2", "scope depth 3 and deeper", ...: the depths ring d
   serves, for messages (buf: at least 96 bytes). */
const char *strata__ring_name(const strata__chip *chip, uint32_t d, char *buf, size_t size);
/* Give back to chip memory the heap rings of depth `from` and deeper, other
   than `except` (may be NULL), that hold no buffer (a deeper ring between
   runs, or one an earlier run sized); true when one was placed. */
bool strata__chip_give_back_idle_heaps(strata__chip *chip, uint32_t from, const strata__depth_ring *except);
/* Place the heap ring of r's depth in chip memory, if it is not (orch.c's
   strata_chip_alloc; engine.c). */
int  strata__chip_place_heap(strata__chip *chip, strata__depth_ring *r);
/* Wait until some ring's oldest unretired task completes (or the timeout
   check fires). Returns 0, or STRATA_ETIMEDOUT once a task passed its timeout. */
int  strata__chip_wait_progress(strata__chip *chip);
/* The same, also ending when *word == value (see await_word). */
int  strata__chip_wait_for(strata__chip *chip, _Atomic uint32_t *word, uint32_t value);
int  strata__lanes_start(strata__chip *chip);
void strata__lanes_stop(strata__chip *chip);
/* A timed or traced run's launch (chip->launch): the lane's bookkeeping around
   the platform's. */
int  strata__lane_watched_launch(strata__device *dev, strata_kernel_fn fn, const strata_task_args *args);
/* Record a traced run's event on the orchestrator's ring. */
void strata__chip_note(strata__chip *chip, uint32_t kind, uint32_t aux, uint64_t id, uint64_t arg);
/* A traced run's rings to the trace (chip->on_wait), at most every 0.25 ms:
   while the orchestrator waits, and every 1024 submits. */
void strata__chip_drain_hook(strata__chip *chip);
/* A traced run's occupancy counters, on the orchestrator's ring. */
void strata__chip_note_counters(strata__chip *chip);
/* Whether the calling thread is one of chip's lanes (a kernel is calling). */
bool strata__on_lane_of(const strata__chip *chip);

/* Buffers a chip sees only for one run: the host and chip buffers a node task
   names (they live in memory the node worker owns). Attached before the run,
   detached after it. */
int  strata__chip_attach_args(strata__chip *chip, const strata_task_args *args);
void strata__chip_detach_all(strata__chip *chip);

enum { STRATA__BUFFER_USER = 1, STRATA__BUFFER_HEAP = 2, STRATA__BUFFER_EXTERNAL = 5 };

#endif
