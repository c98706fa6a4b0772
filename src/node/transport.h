/* How the node engine reaches its children: the transport, behind one small
 * interface.
 *
 * The engine (dispatch.c, registry.c, request.c, lifecycle.c, worker.c) talks to
 * a child one level down or a SUB worker only through these calls: post a
 * request, see whether it was answered and read the answer, kill or signal the
 * child, start it; and, for all the children of a transport at once, take the
 * deaths it has news of and sleep until something happens. What is behind them
 * is the transport's own: node/proc.c implements them for child processes of
 * this host (a shared-memory mailbox each; the spawner forks, signals and reaps
 * them), whatever the child runs (a chip, a SUB function, a whole worker one
 * level down). Remote workers (ranks of an MPI job) are the second transport
 * the interface is shaped for.
 *
 * Every call is made by the thread driving the worker. A request is posted only
 * to a child that is alive and idle (nothing outstanding); its answer stays
 * readable until the next post to that child. */
#ifndef STRATA_NODE_TRANSPORT_H
#define STRATA_NODE_TRANSPORT_H

#include "node/node.h"

/* Request kinds of a copy task's members (strata_submit_copy): the child
   sends its bytes to, or receives them from, `peer` (another remote worker's
   rank, or 0: this process, from or into `local`). */
enum { STRATA__REQ_SEND_TO = 19, STRATA__REQ_RECV_FROM = 20 };

typedef struct strata__request {
    uint32_t                    kind;     /* strata__request_kind (ipc/mailbox.h), or the two above */
    uint32_t                    handle;   /* TASK: the registration to run */
    uint64_t                    task;     /* TASK: the engine's task id + 1, for messages */
    uint32_t                    run;      /* TASK: the engine's run, for events */
    const strata_call_config   *cfg;      /* TASK */
    const strata_task_args     *args;     /* TASK: fits the transport (checked at submit) */
    const strata__registration *reg;      /* REGISTER: fits (checked at register) */
    uint64_t                    value;    /* MALLOC: bytes; FREE: the address; SEND_TO, RECV_FROM: the child's */
    uint64_t                    nbytes;   /* SEND_TO, RECV_FROM */
    int                         peer;     /* SEND_TO, RECV_FROM: the rank at the other end */
    void                       *local;    /* SEND_TO, RECV_FROM with peer 0: this process's end */
} strata__request;

typedef struct strata__reply {
    int         status;       /* STRATA_OK or a strata_status: a child's word, checked */
    const char *message;      /* not NUL-terminated */
    uint32_t    message_len;
    uint64_t    value;        /* MALLOC: the address */
} strata__reply;

typedef struct strata__transport {
    const char *name;
    /* every child of this transport: made ready to start (memory mapped, helper
       processes started) / ended and released (kill_them false: in a process
       other than the parent, drop this process's copies only) */
    int  (*open)(strata__node *n);
    void (*close)(strata__node *n, bool kill_them);
    /* one child */
    int  (*start)(strata__node *n, strata__child *c, uint64_t deadline_ns);  /* ready, or failed (dead) */
    void (*post)(strata__node *n, strata__child *c, const strata__request *r);
    bool (*answered)(strata__node *n, strata__child *c);
    void (*reply)(strata__node *n, strata__child *c, strata__reply *out);
    void (*kill)(strata__node *n, strata__child *c, const char *why);       /* bounded; dead after */
    void (*signal)(strata__node *n, strata__child *c, int sig);
    /* every child of this transport */
    int  (*reap)(strata__node *n);                      /* deaths found: each child becomes dead */
    void (*sleep)(strata__node *n, uint32_t timeout_ms); /* until an answer, a death, or timeout_ms */
    /* the same sleep in two halves, for a node whose children use several
       transports: a look (one poll, no wait) and a wait without a spin */
    bool (*any_answer)(strata__node *n);
    void (*wait)(strata__node *n, uint32_t timeout_ms);
    uint32_t max_wait_ms;   /* how long a wait may last and still notice what it cannot wake on */
    /* copy to (to) or from a buffer of child c, bounded; NULL where the engine
       reaches the child's memory itself (memory.c) */
    int  (*copy)(strata__node *n, strata__child *c, uint64_t addr, void *host, uint64_t nbytes, bool to);
} strata__transport;

/* Child processes of this host (node/proc.c). */
extern const strata__transport strata__proc_transport;

/* The engine's calls: a child's through its own transport; the node-wide
   ones through every transport of the node's children. */
static inline void strata__post(strata__node *n, strata__child *c, const strata__request *r)
{
    c->tp->post(n, c, r);
}

static inline bool strata__answered(strata__node *n, strata__child *c)
{
    return c->tp->answered(n, c);
}

static inline void strata__reply_of(strata__node *n, strata__child *c, strata__reply *out)
{
    c->tp->reply(n, c, out);
}

static inline void strata__kill(strata__node *n, strata__child *c, const char *why)
{
    c->tp->kill(n, c, why);
}

static inline void strata__signal(strata__node *n, strata__child *c, int sig)
{
    c->tp->signal(n, c, sig);
}

static inline int strata__start(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    return c->tp->start(n, c, deadline_ns);
}

static inline int strata__reap(strata__node *n)
{
    int found = 0;
    for (uint32_t t = 0; t < n->ntps; t++)
        found += n->tps[t]->reap(n);
    return found;
}

/* Sleep until a child of any transport answers or dies, or timeout_ms passes
   (node/transport.c). */
void strata__sleep(strata__node *n, uint32_t timeout_ms);
/* The sleep of a transport that nothing can wake (remote workers): a spin,
   then naps polling every transport (node/transport.c). */
void strata__sleep_polling(strata__node *n, uint32_t timeout_ms);

#endif
