/* The node engine (L3): a worker whose chips and SUB workers are child processes.
 *
 * Processes: the application (the parent, where the engine runs on the thread
 * that drives the worker), one spawner process per worker (node/spawner.c),
 * forked at init, and the children, which the spawner forks on request and
 * alone reaps. The application therefore never has a child of Strata's but the
 * spawner: its own SIGCHLD handling, waitpid(-1) or recycled pids cannot touch
 * a child, and no thread of the application can end a child by exiting.
 *
 * The engine has no thread of its own. During a run the orchestration function
 * submits tasks on the driving thread; the engine links their dependencies
 * through a TensorMap, posts ready tasks to idle children through their
 * mailboxes (ipc/mailbox.h), and, whenever it must wait, sleeps on one futex
 * word that a child bumps when it answers and the spawner bumps when a child
 * dies.
 *
 * Children: chips are workers 0..ndevices-1 in device_ids order; SUB workers
 * follow them. A chip child hosts an L2 chip engine over a range of chip memory
 * the parent mapped shared before forking the spawner, so buffers from
 * strata_worker_malloc are allocated and copied by the parent directly and are
 * at the same address in every process. */
#ifndef STRATA_NODE_NODE_H
#define STRATA_NODE_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "chip/engine.h"
#include "chip/kernel.h"
#include "core/arena.h"
#include "core/status.h"
#include "core/tensormap.h"
#include "ipc/mailbox.h"
#include "strata/strata.h"

/* A child one level down (a chip at L3, an added worker at L4+) or a SUB
   worker. */
typedef enum { STRATA__CHILD_CHIP, STRATA__CHILD_SUB, STRATA__CHILD_WORKER, STRATA__CHILD_REMOTE } strata__child_kind;

struct strata__node;
struct strata__transport;

typedef struct strata__child {
    const struct strata__transport *tp; /* how the engine reaches it (node/transport.h) */
    strata__child_kind kind;
    int                worker;        /* worker id: chips first, then SUB workers */
    int                device_id;     /* chips */
    pid_t              pid;           /* 0 until the spawner has forked it; for messages only */
    uint32_t           gen;           /* generation: which fork of this child the mailbox's life word is about */
    pid_t              lost_pid;      /* chips: the pid of the last child whose death lost its buffers */
    strata__mailbox   *mb;
    uint32_t           seq;           /* last request posted */
    bool               busy;          /* a request is outstanding */
    uint64_t           task;          /* the task it runs (index + 1), 0 when idle */
    uint64_t           started_ns;    /* when that task was posted */
    uint32_t           timeout_ms;    /* that task's timeout, 0 = none */
    bool               dead;          /* exited or killed, reaped, not replaced yet */
    bool               death_reported;
    int                death_status;  /* STRATA_ECHILD, or STRATA_ETIMEDOUT when Strata killed it */
    char              *death_message; /* owned */
    /* chips: the range of chip memory reserved for it (shared mapping) */
    uint8_t           *memory;
    uint64_t           memory_bytes;
    strata__device    *resident;      /* the parent's platform device over the upper half: the
                                         buffers of strata_worker_malloc, allocated and copied
                                         through the platform (platform/platform.h) */
    /* workers (L4+): the configured worker one level down that this child
       process initialises and serves (node/worker_child.c); owned by the
       strata_worker this node belongs to */
    strata_worker     *sub_worker;
    struct strata__node *sub_node;
    /* what it did since create (strata_worker_child_stats) */
    uint64_t           stat_tasks, stat_busy_ns, stat_restarts;
    /* its events (node/record.h): its area in the node's shared mapping (NULL
       for a remote worker), the trace's reader of it, and whether its death's
       record was read */
    struct strata__rec_area *rec;
    struct strata__record_reader *trace;
    bool               death_recorded;
    char              *death_record;  /* the flight recorder's words on its last death (owned), or NULL */
    char             **remote_names;  /* a remote worker's callables' names by its handle (owned), for traces */
    uint32_t           nremote_names;
    /* remote workers (L4+, another transport: an MPI rank) */
    int                rank;
    void              *tp_state;      /* the transport's own record of it (owned by the transport) */
} strata__child;

/* What a handle names: a chip callable (run by a chip child at L3), a SUB
   function, or an orchestration function (run by an added worker at L4+). */
typedef enum { STRATA__REG_CHIP, STRATA__REG_SUB, STRATA__REG_ORCH,
               STRATA__REG_COPY   /* not a registration: a task kind, a copy (strata_submit_copy) */
} strata__reg_kind;

typedef struct strata__registration {
    strata__reg_kind  kind;
    strata__callable  chip;    /* STRATA__REG_CHIP */
    strata_sub_fn     fn;      /* STRATA__REG_SUB */
    strata_orch_fn    orch;    /* STRATA__REG_ORCH */
    void             *ctx;
    char             *so_path, *symbol; /* a chip callable loaded by symbol (owned), replayed as such */
    char             *name;    /* ORCH, SUB: the name it was registered under (owned), by which a
                                  remote worker finds its own copy; NULL: unnamed */
    char             *error;   /* in a child that could not take it: why (owned); its tasks fail */
} strata__registration;

/* One member of a task: the task itself, or one of a group's. Its tensors and
   scalars are a slice of the task's arrays. */
typedef struct strata__node_member {
    int      target;                /* next-level worker id; -1 for any SUB worker */
    uint32_t first_tensor, ntensors, first_scalar, nscalars;
} strata__node_member;

/* One task of a run: a single task, or a group (one node of the dependency graph
   whose members start together and which completes when all of them have). */
typedef struct strata__node_task {
    strata__reg_kind   kind;
    uint32_t           handle;
    strata_call_config cfg;
    strata__node_member *members;   /* owned, nmembers >= 1 */
    uint32_t           nmembers;
    uint32_t           remaining;   /* members posted and not answered */
    int                group_status; /* first member failure */
    char              *group_message; /* owned */
    void              *block;       /* the slot's memory for the copies below, kept for the next task */
    size_t             block_bytes;
    strata_tensor     *tensors;     /* copies, in block (views for the TensorMap) */
    strata_tag        *tags;
    uint64_t          *scalars;
    uint32_t           ntensors, nscalars;
    uint32_t           pending;     /* producers not finished */
    uint32_t           last_succ;   /* last successor linked (index + 1): one edge per pair */
    uint32_t           succ;        /* first edge, or STRATA__NONE */
    int                status;
    bool               done, poisoned;
} strata__node_task;

/* Ready tasks of a run, in the order they became ready: a ring of one entry
   per slot of the task window. A task is in at most one FIFO at a time, so a
   push never overflows and never allocates. */
typedef struct strata__task_fifo {
    uint32_t *items;          /* task ids; window entries */
    uint32_t  head, tail;     /* items[head, tail), positions modulo the window */
} strata__task_fifo;

typedef struct strata__node_edge {
    uint32_t succ, next;
} strata__node_edge;

typedef struct strata__node {
    strata_worker_config   cfg;          /* the worker's copy */
    int                    level;
    strata__ring_config    chip_rings;   /* ring defaults of every chip child */
    /* shared host heap: mapped at create, valid until close */
    uint8_t               *heap;
    uint64_t               heap_bytes;
    strata__arena          heap_arena;
    strata__tensormap      buffers;      /* host and chip buffers; the run's TensorMap */
    /* memory the application mapped shared before init (strata_worker_host_adopt) */
    struct { uint64_t addr, nbytes; } *adopted;
    uint32_t               nadopted;
    /* children: nnext one level down (chips at L3, added workers at L4+), then
       the SUB workers */
    strata__child         *children;
    uint32_t               nchildren, nnext;
    const struct strata__transport *tps[2]; /* the children's transports, each once; [0] the process one */
    uint32_t               ntps;
    /* L4+: the workers added one level down (strata_worker_add_worker), ids
       0..nadded-1; not owned (their strata_worker owns them) */
    struct {
        strata_worker *worker; struct strata__node *node;   /* local: run by a worker child */
        const struct strata__transport *tp; int rank;      /* remote: reached through tp (worker NULL) */
    } *added;
    uint32_t               nadded;
    /* The node this one was added to (NULL at the top): a spawner keeps the
       heaps of its node's ancestors and descendants (live.c). */
    struct strata__node   *added_to;
    /* In a worker child: the memory of the levels above, which this worker's
       children see at the same address (the parent's heap and what it saw);
       a tensor inside it is taken as it comes (memory.c). */
    struct { uint64_t addr, nbytes; } *inherited;
    uint32_t               ninherited;
    void                  *mail;         /* header + mailboxes, shared */
    uint64_t               mail_bytes;
    strata__mailbox_header *header;
    const strata__platform *platform;    /* the chips' platform (cfg.platform) */
    pid_t                  parent_pid;   /* the application process that owns the worker */
    /* the spawner (node/spawner.c): 0 / -1 when none */
    pid_t                  spawner_pid;
    int                    spawner_pidfd; /* -1 where pidfds are missing: then spawner_start_time names it */
    int                    spawner_cmd;  /* the parent's end of its request socket pair */
    int                    spawner_peer; /* the spawner's end while it is being forked, else -1 */
    uint64_t               spawner_start_time; /* /proc/<pid>/stat starttime, for the fallback */
    uint32_t               nregs_spawner; /* registrations the spawner inherited; later ones are replayed */
    bool                   check_spawner; /* see whether the spawner lives at the next reap */
    uint64_t               spawner_checked_ns; /* when it was last seen alive */
    uint64_t               spawner_polled_ns;  /* when its pidfd was last asked (at least every
                                                  STRATA__NODE_SLEEP_MAX_MS: the robust mutex's
                                                  word is not trusted alone) */
    bool                   life_robust;  /* the header's spawner_life mutex could be made robust */
    struct strata__node   *next_live;    /* the process-wide list of initialised nodes */
    strata_hooks           hooks;        /* the embedding hooks: fork ones taken at init, the
                                            others at each run (core/hooks.h) */
    uint64_t               interrupt_checked_ns; /* the run's last interrupt poll */
    uint64_t               stop_by_ns;   /* interrupted run: running tasks end by then, else killed */
    uint64_t               deadline_ns;  /* in a worker child: when the task of the level above that
                                            started this run times out (0: never); running tasks
                                            are killed then, so the run names what was stuck */
    uint64_t               restarts;
    /* events (node/record.h): the engine's own area (owned at the top; a
       worker child's is the one its parent made for it), the children's
       areas in one shared mapping, the trace's reader of the engine's area */
    struct strata__rec_area *rec;
    bool                   rec_owned;
    uint32_t               rec_capacity;  /* events per ring (STRATA_TRACE_EVENTS) */
    void                  *rec_map;
    uint64_t               rec_map_bytes;
    uint8_t               *rec_reserved; /* a worker child's: its children's areas and below, in the
                                            top's mapping (set by the level above before the fork) */
    struct strata__record_reader **deep; /* the top's readers of areas below its worker children */
    uint32_t               ndeep;
    struct strata__record_reader *trace;
    bool                   traced;       /* the run in progress is recorded in the trace */
    bool                   trace_forced; /* a served worker (MPI): the level above traces this run */
    uint64_t              *export_at;    /* a served worker: per area and ring, what was exported */
    int32_t               *export_pid;   /* per area: the process its events were of */
    uint32_t               export_regs;  /* registrations whose names were exported */
    struct strata__record_mirror *mirrors; /* rank 0: areas mirroring remote children's (owned) */
    uint32_t               nmirrors;
    uint64_t               drained_ns;   /* when its rings were last drained */
    uint32_t               run_id;       /* runs so far (events name a run by it) */
    bool                   check_deaths; /* reap at the next pump (set after every sleep) */
    uint64_t               spin_ns;      /* how long the next wait polls (strata__spin_learn) */
    bool                   failed;       /* policy FAIL after a death */
    /* registrations: handle h is regs[h - 1] */
    strata__registration  *regs;
    uint32_t               nregs, regs_cap;
    uint64_t              *objects;      /* [start, end) pairs: loadable segments mapped at init */
    uint32_t               nobjects, objects_cap;
    /* The run in progress. Its tasks live in a window of `window` slots (task
       id t in slot t % window): a submit waits while the window is full, until
       the oldest tasks are done (done_watermark), so a run of any length holds
       at most `window` tasks and their edges and copies. */
    strata__node_task     *tasks;        /* window slots */
    uint32_t               window;       /* node_task_window: a power of two */
    uint32_t               ntasks;       /* tasks submitted in this run (the next id) */
    uint32_t               window_high_water;
    strata__node_edge     *edges;        /* grows to the most edges live at once */
    uint32_t               nedges, edges_cap, free_edge; /* free_edge: a free list through next */
    /* Ready tasks wait where an idle child finds them without walking other
       children's backlog: a task for one chip in that chip's FIFO, a task for
       one SUB child in the SUB FIFO, a group (several children at once) in
       the group list, which is compacted in place. */
    strata__task_fifo     *chip_ready;   /* nnext FIFOs */
    strata__task_fifo      sub_ready, group_ready;
    strata__task_fifo      engine_ready;  /* copies the engine makes itself (both ends in this process) */
    uint32_t               done_count, done_watermark;
    uint32_t               nscopes;
    bool                   running;
    char                 **run_deaths;   /* every death the run saw, in order (owned strings) */
    uint32_t               nrun_deaths, run_deaths_cap;
    strata__failure        failure;
    uint64_t               stat_completed, stat_failed, stat_canceled;
    /* the last run in time (strata_worker_run_info) */
    uint64_t               run_wall_ns, run_orch_ns, run_longest_ns, run_longest_task;
    uint32_t               run_tasks;
    uint64_t               cur_longest_ns, cur_longest_task;   /* the run in progress */
} strata__node;

/* live.c: the process-wide list of node workers */
/* Add n (at create) and remove it (at destroy). */
void strata__node_live_add(strata__node *n);
void strata__node_live_remove(strata__node *n);
/* In a new child: drop every other node worker's descriptors and mappings that
   the fork copied, so a child never keeps another worker's resources alive. */
void strata__node_forget_others(const strata__node *self);
/* Whether this process is n's spawner or one of its children (which live on
   n's mappings: a close there must leave them alone). */
bool strata__node_serves_here(const strata__node *n);
/* Mark this process as n's spawner or child (at its start). */
void strata__node_set_serving(const strata__node *n);
/* In a worker child (L4+): the worker of node n, created in the application
   and added to the worker above, is this process's own from now on (its
   public calls are admitted here, node/worker.c). */
void strata__node_take_over(const strata__node *n);
bool strata__node_taken_over_here(const strata__node *n);
/* The lock of the process-wide list of node workers and of the fields of a
   listed node that a new spawner reads (see lifecycle.c); recursive. */
void  strata__node_live_lock(void);
void  strata__node_live_unlock(void);
/* What of a live worker's own shared memory (heap, mailboxes, chip memory)
   overlaps [lo, hi), or NULL. Every spawner drops the other workers' mappings,
   so no such range may be adopted. Takes the live lock. */
const char *strata__node_mapping_at(uint64_t lo, uint64_t hi);

/* lifecycle.c */
int  strata__node_create(const strata_worker_config *cfg, strata__node **out);
int  strata__node_init(strata__node *n);
void strata__node_close(strata__node *n);
void strata__node_destroy(strata__node *n);
/* Replace every dead child whose death has been reported (policy RESTART), or
   mark the worker failed. */
int  strata__node_recover(strata__node *n);

/* start.c */
/* Have the spawner fork child c (its mailbox reset) and wait until it reports
   ready (and has taken every registration the spawner did not inherit), dies,
   or passes the deadline (then it is killed). Another child's death meanwhile
   is recorded for the next run to report, and fails nothing here. */
int  strata__proc_start(strata__node *n, strata__child *c, uint64_t deadline_ns);

/* reaper.c */
/* "chip child 0 (device 3, pid 42)", "SUB child 2 (pid 43)": into buf. */
const char *strata__child_name(const strata__child *c, char *buf, size_t cap);
/* Take the deaths the spawner published (and, when check_spawner is set, see
   whether the spawner itself lives); each child found becomes dead with its
   death message. Returns the number found. */
int  strata__proc_reap(strata__node *n);
/* Kill child c (its process group) with SIGKILL through the spawner and wait,
   bounded, until it is reaped. why: the death message, or NULL to describe how
   it died. */
void strata__proc_kill(strata__node *n, strata__child *c, const char *why);
/* The spawner is gone (or cannot be trusted): take the deaths it published,
   end and reap it; every other child not dead yet (but `skip`, may be NULL) is
   dead with it (PR_SET_PDEATHSIG), for the next run to report. Returns how many
   children became dead. */
int  strata__node_spawner_lost(strata__node *n, const strata__child *skip);
/* Send signal sig to child c's process group through the spawner. */
void strata__proc_signal(strata__node *n, strata__child *c, int sig);

/* spawner.c: the parent's side of the spawner (the spawner's own side is
   static there). */
int  strata__spawner_start(strata__node *n);
/* Ask the spawner to fork child c as generation c->gen. */
int  strata__spawner_spawn(strata__node *n, const strata__child *c);
int  strata__spawner_kill(strata__node *n, const strata__child *c, int sig);
/* Whether the spawner process still runs: a trylock of the robust mutex it
   holds (no system call), or its pidfd where that mutex could not be made. */
bool strata__spawner_alive(const strata__node *n);
/* The same, asking the pidfd (one poll, no wait) whatever the mutex says. */
bool strata__spawner_alive_pidfd(const strata__node *n);
/* Ask the spawner to end every child and exit; wait (bounded) and reap it. */
void strata__spawner_stop(strata__node *n, uint64_t deadline_ns);
/* Close the spawner's descriptors here and forget it (after it ended, or in a
   process other than the parent, where they are copies). */
void strata__spawner_forget(strata__node *n);
/* How the spawner ended ("was killed by signal 9 (Killed)"), malloc'd; NULL
   when unknown. Before it is reaped. */
char *strata__spawner_describe_end(strata__node *n);

/* child.c: the start of every child process, in the spawner's fork of it
   (dies with the spawner, default signal mask, the tests' start hook), then
   the main loop of a chip or SUB child; it never returns. */
void strata__child_start(strata__child *c, pid_t spawner);
void strata__child_main(strata__node *n, strata__child *c) __attribute__((noreturn));
/* In a child: tell the parent it runs (the init handshake); or report why it
   could not start, and exit. */
void strata__child_report_ready(strata__node *n, strata__child *c);
void strata__child_fail_start(strata__node *n, strata__child *c, const char *message) __attribute__((noreturn));
/* In a child: whether the spawner that forked it still runs. */
bool strata__child_parent_alive(void);
/* In a child: wait for the parent's next request (polling as long as recent
   waits lasted, strata__spin_learn; leaving when the spawner is gone); then
   answer it with status rc and, on failure, the thread's last error. */
strata__mailbox *strata__child_next(strata__child *c, uint32_t *seen, uint64_t *spin_ns);
void strata__child_answer(strata__node *n, strata__child *c, uint32_t seen, int rc);
/* In a child: registration `handle` as this process holds it, or why not. */
int  strata__child_registration(const strata__node *n, uint32_t handle, const strata__registration **out);
/* How often a waiting child looks whether its spawner still runs. */
#define STRATA__PARENT_CHECK_MS 100

/* dispatch.c */
int  strata__node_run(strata__node *n, strata_worker *w, strata_orch_fn orch, void *ctx,
                      const strata_task_args *args, const strata_call_config *cfg);

/* worker_child.c: the main loop of a worker child (L4+): it initialises
   c->sub_worker, reports ready, then runs orchestration functions on it until
   asked to exit. Never returns. */
void strata__worker_child_main(strata__node *n, strata__child *c) __attribute__((noreturn));


/* worker.c, for the MPI layer (node/mpi/): the node of a level-3+ worker;
   and adding a remote child to w (as strata_worker_add_worker checks it). */
strata__node *strata__worker_node(strata_worker *w);
int  strata__worker_add_remote(strata_worker *w, const struct strata__transport *tp, int rank, int *id,
                               const char *call);

/* request.c */
/* Post request `kind` with `value` to idle child c and wait, bounded by
   init_timeout_ms, for its answer; *reply (may be NULL): its value. The
   child's failure comes back with its name in front. */
int  strata__node_request(strata__node *n, strata__child *c, uint32_t kind, uint64_t value, uint64_t *reply);

/* window.c */
/* Make the task window and the ready FIFOs (at the first run). */
int  strata__node_make_window(strata__node *n);
/* Free the task window and the ready FIFOs (at destroy). */
void strata__node_free_window(strata__node *n);

/* sleep.c */
/* Sleep until a child answers or dies, or timeout_ms passes (0 = the longest
   sleep, STRATA__NODE_SLEEP_MAX_MS): a spin on any_answer, then the wait. */
void strata__proc_sleep(strata__node *n, uint32_t timeout_ms);
/* Whether a busy child of the process transport has answered. */
bool strata__proc_any_answer(strata__node *n);
/* The futex wait of strata__proc_sleep alone. */
void strata__proc_wait(strata__node *n, uint32_t timeout_ms);
/* Every sleep of the engine ends after this long, to see whether the spawner
   still lives (its death publishes nothing). */
#define STRATA__NODE_SLEEP_MAX_MS 100u

/* objects.c */
/* Snapshot the loaded objects (at init, before the first fork). */
int  strata__node_snapshot_objects(strata__node *n);
/* Whether fn (named `what` in the message) lies in an object of the snapshot. */
int  strata__node_check_pointer(const strata__node *n, const void *fn, const char *what);

/* registry.c */
/* Register r (given: a chip callable copy is freed on failure) or, with so_path,
   the chip callable `symbol` of that shared object. live: the children run and must each take it before this returns. */
int  strata__node_register(strata__node *n, bool live, const strata__registration *r, const char *so_path,
                           const char *symbol, strata_handle *out);
/* reg_frame.c */
/* Append r to the registration list; *out (may be NULL): its handle. */
int  strata__node_reg_append(strata__node *n, const strata__registration *r, strata_handle *out);
/* Load `symbol`, a const strata_chip_callable, from so_path and copy it. */
int  strata__reg_load_symbol(const char *so_path, const char *symbol, strata__callable *out);
/* Encode r into dst (a mailbox's args area); *len: in, its size; out, the frame's. */
int  strata__reg_frame_encode(const strata__registration *r, uint8_t *dst, size_t *len);
/* A registration frame (the mailbox's args area of a REGISTER request), its
   every length checked against the frame: pointers into it. */
typedef struct strata__reg_parsed {
    strata__reg_kind kind;
    bool             by_symbol;     /* a chip callable to load from path and symbol */
    uint64_t         orch, fn, ctx; /* pointers as the parent sent them */
    const void      *kernels;       /* nkernels strata_kernel_entry, maybe unaligned */
    uint32_t         nkernels;
    const char      *name, *path, *symbol;   /* not NUL-terminated */
    uint32_t         name_len, path_len, symbol_len;
} strata__reg_parsed;
int  strata__reg_frame_parse(const void *buf, size_t len, strata__reg_parsed *out);
/* Copy the chip callable of a parsed frame (its kernel table checked). */
int  strata__reg_parsed_callable(const strata__reg_parsed *f, strata__callable *out);
/* In a child: apply a registration request. */
int  strata__child_register(strata__node *n, const strata__mailbox *mb);

/* memory.c */
int  strata__node_host_alloc(strata__node *n, uint64_t nbytes, void **out);
int  strata__node_host_free(strata__node *n, void *p);
int  strata__node_host_adopt(strata__node *n, void *p, uint64_t nbytes);
int  strata__node_malloc(strata__node *n, int worker, uint64_t nbytes, strata_buffer *out);
int  strata__node_free(strata__node *n, strata_buffer buf);
int  strata__node_copy(strata__node *n, strata_buffer b, uint64_t offset, void *host, uint64_t nbytes, bool to);
/* The chip child whose death lost the buffer that addr named, or NULL. */
const strata__child *strata__node_lost_buffer_owner(const strata__node *n, uint64_t addr);
/* STRATA_ENOENT for an address that is no live chip buffer, saying when it was
   lost with a dead chip child. */
int  strata__node_no_chip_buffer(const strata__node *n, const char *call, uint64_t addr);
/* Forget every buffer of next-level child c (it died). */
void strata__node_drop_chip_buffers(strata__node *n, strata__child *c);
/* Whether [addr, addr + nbytes) lies in memory of the levels above
   (inherited); then a buffer of kind STRATA__BUFFER_INHERITED is made for it
   at addr (or grown), and *index names it. */
bool strata__node_inherited_buffer(strata__node *n, uint64_t addr, uint64_t nbytes, uint32_t *index);
/* Add a worker one level down (strata_worker_add_worker): its id in *id. */
int  strata__node_add_worker(strata__node *n, strata_worker *w, strata__node *child, int *id);
/* Add a remote worker one level down, reached through transport tp as `rank`. */
int  strata__node_add_remote(strata__node *n, const struct strata__transport *tp, int rank, int *id);

/* Buffer kinds in the node's TensorMap. An adopted range is host memory too
   (every child sees it), but the application's: never freed here. */
enum { STRATA__BUFFER_HOST = 3, STRATA__BUFFER_CHIP = 4, STRATA__BUFFER_ADOPTED = 5, STRATA__BUFFER_INHERITED = 6 };
/* A CHIP buffer lies in the memory of the next-level child owner_data: a chip's
   at L3, an added worker's shared heap at L4+. */

#endif
