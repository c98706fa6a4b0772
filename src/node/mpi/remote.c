/* The MPI transport (node/transport.h): remote workers, each served by a rank of
 * the application's MPI job (node/mpi/serve.c), seen from the top worker on
 * rank 0. A request is one MPI_Isend; its answer, one MPI_Irecv posted with it;
 * the engine polls with MPI_Test, never a blocking call, and waits by short
 * naps (max_wait_ms), since no futex can wake it across hosts.
 *
 * Only the thread driving the top worker calls MPI. A fork of the application
 * (or a child of the worker running an exit handler) never does: close there
 * only frees this process's memory.
 *
 * Deaths: with the Open MPI Debian ships (no ULFM) a rank that dies takes the
 * job with it, so no death is ever reported here; a rank that does not answer
 * within a task's timeout is "killed" by aborting the job with a message that
 * names the rank, the task and the callable. Where the MPI library has ULFM
 * (MPIX_ERR_PROC_FAILED), a failed MPI call to a rank makes that worker dead
 * (STRATA_ECHILD) and the others go on. docs/lifecycle.md says what is promised
 * with which. */
#define _GNU_SOURCE
#include "node/mpi/mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/sys.h"
#include "core/wait.h"
#include "ipc/wire.h"
#include "node/record.h"

/* The naps of this file's bounded waits: from 1 us, doubling up to 1 ms. */
#define NAP_MIN_NS 1000ull
#define NAP_MAX_NS 1000000ull

typedef struct peer {
    uint32_t    seq;
    MPI_Request send, recv;
    uint32_t    handle;               /* the request outstanding: for the abort message */
    uint64_t    task;
    uint8_t    *out;                  /* request header + payload */
    size_t      out_cap;
    uint8_t    *in;                   /* reply header + message */
    MPI_Request *data;                /* a copy task's chunks to or from this process (ndata of them) */
    int          ndata, data_cap;
    bool         copying;             /* the request outstanding is a copy task's part */
    int          refused;             /* a request that could not be sent: its answer, made here */
    /* the rank's clock against this host's (from every answer, the shortest
       round trip's estimate kept), for its trace events */
    uint64_t     sent_at;             /* when the request outstanding was sent */
    bool         taken;               /* its answer's times and events were taken (once: an answered
                                         request keeps testing done) */
    int64_t      offset_ns;           /* the rank's CLOCK_MONOTONIC minus this host's */
    uint64_t     best_rtt_ns;         /* the round trip of that estimate; 0: none yet */
    uint8_t     *events;              /* a traced task's events, received after its answer */
    size_t       events_cap;
} peer;

static peer *peer_of(const strata__child *c)
{
    return c->tp_state;
}

static bool ours(const strata__child *c)
{
    return c->tp == &strata__mpi_transport;
}

/* Grow p's request buffer to hold `bytes`. */
static int reserve_out(peer *p, size_t bytes)
{
    if (bytes <= p->out_cap)
        return STRATA_OK;
    uint8_t *grown = realloc(p->out, bytes);
    if (!grown)
        return strata__fail(STRATA_ENOMEM, "out of host memory for a request to a remote worker");
    p->out = grown;
    p->out_cap = bytes;
    return STRATA_OK;
}

/* Append r's name entry to buf at *at (the caller reserved the room). */
/* Whether the ranks must know registration r by its name: an orchestration
   function (what a remote worker runs). A SUB function's name only labels
   its tasks here (traces, messages): SUB tasks never leave this process's
   children. */
static bool names_a_remote_callable(const strata__registration *r)
{
    return r->name && r->kind == STRATA__REG_ORCH;
}

static void put_name(uint8_t *buf, size_t *at, uint32_t handle, const strata__registration *r)
{
    strata__mpi_name e = {.handle = handle, .kind = (uint32_t)r->kind, .name_len = (uint32_t)strlen(r->name)};
    memcpy(buf + *at, &e, sizeof e);
    memcpy(buf + *at + sizeof e, r->name, e.name_len);
    *at += sizeof e + e.name_len;
}

/* Send request h with the payload already in p->out after the header (len
   bytes), and post the receive of its answer. An MPI error here means the rank
   failed (ULFM; without it the job has ended already): c becomes dead. */
static void send_request(strata__child *c, strata__mpi_request h, size_t len)
{
    peer *p = peer_of(c);
    h.magic = STRATA__MPI_MAGIC;
    h.seq = ++p->seq;
    h.payload_len = (uint32_t)len;
    memcpy(p->out, &h, sizeof h);
    p->handle = h.kind == STRATA__REQ_TASK ? h.handle : 0;   /* names the task in an abort message */
    p->task = h.kind == STRATA__REQ_TASK || h.kind == STRATA__REQ_SEND_TO || h.kind == STRATA__REQ_RECV_FROM ? h.task
                                                                                                           : 0;
    p->copying = h.kind == STRATA__REQ_SEND_TO || h.kind == STRATA__REQ_RECV_FROM;
    if (h.kind == STRATA__REQ_EXIT)
        strata__mpi_told_to_exit(c->rank);
    p->sent_at = strata__now_ns();
    p->taken = false;
    int err = MPI_Isend(p->out, (int)(sizeof h + len), MPI_BYTE, c->rank, STRATA__TAG_REQUEST, strata__mpi_comm,
                        &p->send);
    if (err == MPI_SUCCESS)
        err = MPI_Irecv(p->in, (int)(sizeof(strata__mpi_reply) + STRATA__MPI_MESSAGE_MAX), MPI_BYTE, c->rank,
                        STRATA__TAG_REPLY, strata__mpi_comm, &p->recv);
    if (err != MPI_SUCCESS) {
        p->send = p->recv = MPI_REQUEST_NULL;
        c->dead = true;
        c->busy = false;
        c->death_status = STRATA_ECHILD;
        free(c->death_message);
        char name[96];
        c->death_message = strata__format("%s could not be reached (MPI error %d)",
                                          strata__child_name(c, name, sizeof name), err);
    }
}

/* A copy task's part with rank 0 at the other end: post this process's side
   of the data, chunk by chunk, with the request; the answer counts only once
   every chunk has moved (mpi_answered). */
/* Room for the chunks of a copy of nbytes (before anything is sent). */
static bool reserve_data(peer *p, uint64_t nbytes)
{
    int chunks = (int)((nbytes + STRATA__MPI_CHUNK - 1) / STRATA__MPI_CHUNK);
    if (chunks <= p->data_cap)
        return true;
    MPI_Request *grown = realloc(p->data, (size_t)chunks * sizeof *grown);
    if (!grown)
        return false;
    p->data = grown;
    p->data_cap = chunks;
    return true;
}

static void post_data(strata__child *c, const strata__request *r)
{
    peer *p = peer_of(c);
    int chunks = (int)((r->nbytes + STRATA__MPI_CHUNK - 1) / STRATA__MPI_CHUNK);   /* room: reserve_data */
    p->ndata = chunks;
    for (int k = 0; k < chunks; k++) {
        uint64_t at = (uint64_t)k * STRATA__MPI_CHUNK, left = r->nbytes - at;
        int len = (int)(left < STRATA__MPI_CHUNK ? left : STRATA__MPI_CHUNK);
        uint8_t *local = (uint8_t *)r->local + at;
        if (r->kind == STRATA__REQ_SEND_TO)   /* the rank sends: this process receives */
            MPI_Irecv(local, len, MPI_BYTE, c->rank, STRATA__TAG_DATA, strata__mpi_comm, &p->data[k]);
        else
            MPI_Isend(local, len, MPI_BYTE, c->rank, STRATA__TAG_DATA, strata__mpi_comm, &p->data[k]);
    }
}

static void mpi_post(strata__node *n, strata__child *c, const strata__request *r)
{
    peer *p = peer_of(c);
    strata__mpi_request h = {.kind = r->kind, .handle = r->handle, .task = r->task, .value = r->value};
    size_t len = 0;
    if (r->kind == STRATA__REQ_SEND_TO || r->kind == STRATA__REQ_RECV_FROM) {
        if (r->peer == 0 && !reserve_data(p, r->nbytes)) {
            p->refused = STRATA_ENOMEM;   /* nothing sent: answered at once, saying why */
            return;
        }
        h.nbytes = r->nbytes;
        h.peer = r->peer;
        h.other = r->peer == c->rank ? (uint64_t)(uintptr_t)r->local : 0;
        send_request(c, h, 0);   /* it names the copy task for an abort message */
        if (r->peer == 0 && !c->dead)
            post_data(c, r);
        return;
    }
    if (r->kind == STRATA__REQ_TASK) {
        h.cfg = *r->cfg;
        h.run = n->traced ? n->run_id : 0;   /* the rank records the run and sends its events back */
        len = strata__wire_size(r->args);
        if (reserve_out(p, sizeof h + len) == STRATA_OK)
            (void)strata__wire_encode(r->args, p->out + sizeof h, len, &len);   /* fits: checked at submit */
        else
            len = 0;   /* the rank then refuses a task without its arguments, saying so */
    } else if (r->kind == STRATA__REQ_REGISTER && names_a_remote_callable(r->reg)) {
        if (reserve_out(p, sizeof h + sizeof(strata__mpi_name) + strlen(r->reg->name)) == STRATA_OK)
            put_name(p->out, &(size_t){sizeof h}, (uint32_t)(r->reg - n->regs) + 1, r->reg);
        len = sizeof(strata__mpi_name) + strlen(r->reg->name);
    }
    send_request(c, h, len);
}

/* Whether an MPI error on a call to c's rank means that rank failed (ULFM). */
static bool rank_failed(int err)
{
#ifdef MPIX_ERR_PROC_FAILED
    int cls = err;
    MPI_Error_class(err, &cls);
    return cls == MPIX_ERR_PROC_FAILED;
#else
    (void)err;
    return false;
#endif
}

static void mark_dead(strata__child *c, const char *how)
{
    char name[96];
    c->dead = true;
    c->busy = false;
    c->death_status = STRATA_ECHILD;
    free(c->death_message);
    c->death_message = strata__format("%s %s", strata__child_name(c, name, sizeof name), how);
}

/* An answer came: the clocks' offset from its times, and a traced task's
   events, which the rank sends right after it (so this receive does not
   wait on anything but their transfer), into the trace's mirror of the rank. */
static void took_answer(strata__node *n, strata__child *c, peer *p)
{
    uint64_t t2 = strata__now_ns();
    strata__mpi_reply h;
    memcpy(&h, p->in, sizeof h);
    if (h.magic != STRATA__MPI_MAGIC || h.seq != p->seq)
        return;   /* damaged: mpi_reply says so */
    /* The offsets this answer allows: the request came after it was sent and
       the answer left before it came. The best estimate, held inside them,
       places this answer's events inside [sent_at, t2] on this host's clock:
       a task's slice never starts before its submit arrow, nor overlaps the
       rank's previous task, whatever the estimate's error. */
    int64_t offset = p->offset_ns;
    if (h.sent_ns >= h.received_ns && t2 >= p->sent_at) {
        uint64_t served = h.sent_ns - h.received_ns, total = t2 - p->sent_at;
        uint64_t rtt = total > served ? total - served : 0;
        int64_t lo = (int64_t)h.sent_ns - (int64_t)t2, hi = (int64_t)h.received_ns - (int64_t)p->sent_at;
        if (p->best_rtt_ns == 0 || rtt < p->best_rtt_ns) {
            p->best_rtt_ns = rtt ? rtt : 1;
            p->offset_ns = lo + (hi - lo) / 2;
        }
        offset = p->offset_ns;
        if (lo <= hi)
            offset = offset < lo ? lo : offset > hi ? hi : offset;
    }
    if (h.events_len == 0 || h.events_len > INT32_MAX)
        return;
    if (h.events_len > p->events_cap) {
        uint8_t *grown = realloc(p->events, h.events_len);
        if (grown) {
            p->events = grown;
            p->events_cap = h.events_len;
        }
    }
    /* received whatever happens (the rank is sending it); used when it fits */
    uint8_t *into = h.events_len <= p->events_cap ? p->events : NULL;
    if (into) {
        MPI_Recv(into, (int)h.events_len, MPI_BYTE, c->rank, STRATA__TAG_TRACE, strata__mpi_comm,
                 MPI_STATUS_IGNORE);
        strata__record_import(n, c, into, h.events_len, offset);
    } else {
        MPI_Recv(NULL, 0, MPI_BYTE, c->rank, STRATA__TAG_TRACE, strata__mpi_comm, MPI_STATUS_IGNORE);
    }
}

static bool mpi_answered(strata__node *n, strata__child *c)
{
    peer *p = peer_of(c);
    if (c->dead)
        return false;
    if (p->refused)
        return true;
    int done = 0;
    int err = MPI_Test(&p->recv, &done, MPI_STATUS_IGNORE);
    if (err != MPI_SUCCESS && rank_failed(err)) {
        mark_dead(c, "failed (its MPI process is gone, MPIX_ERR_PROC_FAILED)");
        return false;
    }
    if (done && p->ndata) {
        /* a copy task's part: its data moved too (the rank answers after
           its last chunk, so this does not wait long) */
        int moved = 0;
        if (MPI_Testall(p->ndata, p->data, &moved, MPI_STATUSES_IGNORE) != MPI_SUCCESS) {
            mark_dead(c, "failed while moving a copy's data (MPI error)");
            return false;
        }
        if (!moved)
            return false;   /* the answer stays received; tested again */
        p->ndata = 0;
    }
    if (done && p->send != MPI_REQUEST_NULL)
        MPI_Wait(&p->send, MPI_STATUS_IGNORE);   /* answered: its request was received */
    if (done && !p->taken) {
        p->taken = true;
        took_answer(n, c, p);
    }
    return done != 0;
}

static void mpi_reply(strata__node *n, strata__child *c, strata__reply *out)
{
    (void)n;
    peer *p = peer_of(c);
    if (p->refused) {
        out->status = p->refused;
        out->message = "out of host memory for the requests of a copy's data";
        out->message_len = (uint32_t)strlen(out->message);
        out->value = 0;
        p->refused = 0;
        return;
    }
    strata__mpi_reply h;
    memcpy(&h, p->in, sizeof h);
    bool sane = h.magic == STRATA__MPI_MAGIC && h.seq == p->seq && h.message_len <= STRATA__MPI_MESSAGE_MAX;
    out->status = !sane ? STRATA_ETASK : h.status <= 0 && strata__is_status(h.status) ? h.status : STRATA_ETASK;
    out->message = sane ? (const char *)p->in + sizeof h : "the remote worker's answer is damaged";
    out->message_len = sane ? h.message_len : (uint32_t)strlen(out->message);
    out->value = h.value;
}

/* Poll c's answer until it comes, c is dead, or the deadline passes (the
   naps keep the CPU free). */
static bool await_answer(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    uint64_t nap_ns = NAP_MIN_NS;
    while (!mpi_answered(n, c)) {
        if (c->dead || strata__now_ns() >= deadline_ns)
            return false;
        strata__nap(&nap_ns, NAP_MAX_NS);
    }
    return true;
}

/* Cancel c's outstanding receive (and send, and a copy's data): nothing of it
   is in flight after. */
static void cancel(peer *p)
{
    for (int k = 0; k < p->ndata; k++)
        if (p->data[k] != MPI_REQUEST_NULL) {
            MPI_Cancel(&p->data[k]);
            MPI_Request_free(&p->data[k]);
        }
    p->ndata = 0;
    if (p->recv != MPI_REQUEST_NULL) {
        MPI_Cancel(&p->recv);
        MPI_Request_free(&p->recv);
    }
    if (p->send != MPI_REQUEST_NULL) {
        MPI_Cancel(&p->send);
        MPI_Request_free(&p->send);
    }
}

/* The whole job is ended: Open MPI without ULFM cannot leave a rank behind and
   go on. The message goes to stderr first, since this process ends too. */
static void __attribute__((noreturn)) abort_job(strata__node *n, strata__child *c, const char *why)
{
    peer *p = peer_of(c);
    const strata__registration *r = p->handle && p->handle <= n->nregs ? &n->regs[p->handle - 1] : NULL;
    char task[160] = "";
    if (p->task && p->copying)
        snprintf(task, sizeof task, " (copy task %llu)", (unsigned long long)p->task);
    else if (p->task)
        snprintf(task, sizeof task, " (task %llu, callable '%s', handle %u)", (unsigned long long)p->task,
                 r && r->name ? r->name : "unnamed", p->handle);
    fprintf(stderr, "strata: aborting the MPI job: %s%s; a remote rank that stops answering cannot be stopped "
            "alone with an MPI that has no ULFM\n", why ? why : "a remote worker stopped answering", task);
    fflush(stderr);
    MPI_Abort(strata__mpi_comm, 70);
    _exit(70);
}

static void mpi_kill(strata__node *n, strata__child *c, const char *why)
{
    if (c->dead)
        return;
#ifdef MPIX_ERR_PROC_FAILED
    /* With ULFM the job survives a lost rank: stop talking to it instead. */
    cancel(peer_of(c));
    mark_dead(c, "was given up by Strata");
    if (why) {
        free(c->death_message);
        c->death_message = strata__format("%s", why);
        c->death_status = STRATA_ETIMEDOUT;
    }
    (void)n;
#else
    char name[96];
    char *msg = why ? NULL : strata__format("%s stopped answering", strata__child_name(c, name, sizeof name));
    abort_job(n, c, why ? why : msg);
#endif
}

static void mpi_signal(strata__node *n, strata__child *c, int sig)
{
    (void)n;
    (void)c;
    (void)sig;   /* a rank is asked to exit, never signalled: close's escalation ends in abort */
}

static int mpi_start(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    peer *p = peer_of(c);
    size_t len = 0, need = 0;
    for (uint32_t i = 0; i < n->nregs; i++)
        if (names_a_remote_callable(&n->regs[i]))
            need += sizeof(strata__mpi_name) + strlen(n->regs[i].name);
    int rc = reserve_out(p, sizeof(strata__mpi_request) + need);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n->nregs; i++)
        if (names_a_remote_callable(&n->regs[i])) {
            size_t at = sizeof(strata__mpi_request) + len;
            put_name(p->out, &at, i + 1, &n->regs[i]);
            len = at - sizeof(strata__mpi_request);
        }
    c->dead = false;
    c->death_reported = false;
    send_request(c, (strata__mpi_request){.kind = STRATA__REQ_HELLO, .level = n->level}, len);
    char name[96];
    if (!await_answer(n, c, deadline_ns)) {
        if (c->dead)
            return strata__fail(STRATA_ECHILD, "%s", c->death_message);
        abort_job(n, c, strata__format("remote worker %d (rank %d) did not answer the start within "
                                       "init_timeout_ms (%u ms)", c->worker, c->rank, n->cfg.init_timeout_ms));
    }
    strata__reply r;
    mpi_reply(n, c, &r);
    c->pid = (pid_t)r.value;
    if (r.status != STRATA_OK) {
        strata__mpi_told_to_exit(c->rank);   /* a rank that could not start has left strata_mpi_serve */
        c->dead = true;
        c->death_reported = true;
        c->death_status = r.status;
        free(c->death_message);
        c->death_message = strata__format("remote worker %d (rank %d) could not start: %.*s", c->worker, c->rank,
                                          (int)r.message_len, r.message);
        return strata__fail(r.status, "%s", c->death_message);
    }
    strata__log(STRATA__LOG_INFO, "%s serves on host %.*s", strata__child_name(c, name, sizeof name),
                (int)r.message_len, r.message);
    return STRATA_OK;
}

static int mpi_open(strata__node *n)
{
    if (strata__mpi_comm == MPI_COMM_NULL)
        return strata__fail(STRATA_ESTATE, "remote workers need strata_mpi_init first (on every rank)");
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!ours(c))
            continue;
        peer *p = strata__calloc(1, sizeof *p);
        uint8_t *in = strata__malloc(sizeof(strata__mpi_reply) + STRATA__MPI_MESSAGE_MAX);
        if (!p || !in || reserve_out(p, sizeof(strata__mpi_request) + 4096) != STRATA_OK) {
            free(p);
            free(in);
            return strata__fail(STRATA_ENOMEM, "out of host memory for remote worker %d", c->worker);
        }
        p->in = in;
        p->send = p->recv = MPI_REQUEST_NULL;
        c->tp_state = p;
    }
    return STRATA_OK;
}

static void mpi_close(strata__node *n, bool kill_them)
{
    /* Every rank that started is asked to exit, unless the engine's close
       already did (its answer is outstanding); all at once, then each answer
       (it closed its worker) within close_grace_ms and a second of its own. A
       rank silent past that ends the job. Ranks never reached are told at
       strata_mpi_finalize. */
    for (uint32_t i = 0; kill_them && i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        peer *p = ours(c) ? peer_of(c) : NULL;
        if (p && !c->dead && c->pid > 0 && p->recv == MPI_REQUEST_NULL)
            send_request(c, (strata__mpi_request){.kind = STRATA__REQ_EXIT}, 0);
    }
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        peer *p = ours(c) ? peer_of(c) : NULL;
        if (!p)
            continue;
        uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.close_grace_ms * 1000000u + 1000000000u;
        if (kill_them && !c->dead && c->pid > 0 && !await_answer(n, c, deadline)) {
            char name[96];
            abort_job(n, c, strata__format("%s did not close within close_grace_ms (%u ms)",
                                           strata__child_name(c, name, sizeof name), n->cfg.close_grace_ms));
        }
        if (kill_them)
            cancel(p);
        free(p->out);
        free(p->in);
        free(p->data);
        free(p->events);
        free(p);
        c->tp_state = NULL;
        c->pid = 0;
    }
}

static int mpi_reap(strata__node *n)
{
    (void)n;
    return 0;   /* deaths show as failed calls (ULFM), in mpi_answered */
}

static bool mpi_any_answer(strata__node *n)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (ours(c) && c->busy && !c->dead && mpi_answered(n, c))
            return true;
    }
    return false;
}

static void mpi_wait(strata__node *n, uint32_t timeout_ms)
{
    (void)n;
    struct timespec ts = {0, (long)(timeout_ms < 1 ? 1 : timeout_ms) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Copy nbytes between host and the remote buffer at addr: the request, the
   data in chunks, the answer; each chunk (and the answer) bounded by
   init_timeout_ms. */
static int mpi_copy(strata__node *n, strata__child *c, uint64_t addr, void *host, uint64_t nbytes, bool to)
{
    char name[96];
    if (c->dead || c->busy)
        return strata__fail(c->dead ? STRATA_ECHILD : STRATA_ESTATE, "%s is %s",
                            strata__child_name(c, name, sizeof name), c->dead ? "dead" : "busy");
    uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
    send_request(c, (strata__mpi_request){.kind = to ? STRATA__REQ_COPY_TO : STRATA__REQ_COPY_FROM, .value = addr,
                                          .nbytes = nbytes}, 0);
    for (uint64_t done = 0; done < nbytes;) {
        int chunk = (int)(nbytes - done < STRATA__MPI_CHUNK ? nbytes - done : STRATA__MPI_CHUNK);
        MPI_Request q;
        if (to)
            MPI_Isend((uint8_t *)host + done, chunk, MPI_BYTE, c->rank, STRATA__TAG_DATA, strata__mpi_comm, &q);
        else
            MPI_Irecv((uint8_t *)host + done, chunk, MPI_BYTE, c->rank, STRATA__TAG_DATA, strata__mpi_comm, &q);
        int ok = 0;
        uint64_t nap_ns = NAP_MIN_NS;
        while (!ok) {
            MPI_Test(&q, &ok, MPI_STATUS_IGNORE);
            if (!ok && mpi_answered(n, c))   /* the rank refused the copy before its data: its answer says why */
                break;
            if (!ok && strata__now_ns() > deadline)
                abort_job(n, c, strata__format("%s moved no chunk of a %llu-byte copy %s it within "
                                               "init_timeout_ms (%u ms)", strata__child_name(c, name, sizeof name),
                                               (unsigned long long)nbytes, to ? "to" : "from",
                                               n->cfg.init_timeout_ms));
            if (!ok)
                strata__nap(&nap_ns, NAP_MAX_NS);
        }
        if (!ok) {
            MPI_Cancel(&q);
            MPI_Request_free(&q);
            break;
        }
        done += (uint64_t)chunk;
        deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;   /* the next chunk's */
    }
    if (!await_answer(n, c, deadline))
        abort_job(n, c, strata__format("%s did not answer a copy within init_timeout_ms (%u ms)",
                                       strata__child_name(c, name, sizeof name), n->cfg.init_timeout_ms));
    strata__reply r;
    mpi_reply(n, c, &r);
    if (r.status != STRATA_OK)
        return strata__fail(r.status, "%s: %.*s", strata__child_name(c, name, sizeof name), (int)r.message_len,
                            r.message);
    return STRATA_OK;
}

void strata__mpi_tell_exit(int rank, uint64_t deadline_ns)
{
    strata__mpi_request h = {.magic = STRATA__MPI_MAGIC, .kind = STRATA__REQ_EXIT, .seq = 1};
    uint8_t in[sizeof(strata__mpi_reply) + STRATA__MPI_MESSAGE_MAX];
    MPI_Request rq[2];
    strata__mpi_told_to_exit(rank);
    if (MPI_Isend(&h, (int)sizeof h, MPI_BYTE, rank, STRATA__TAG_REQUEST, strata__mpi_comm, &rq[0]) != MPI_SUCCESS)
        return;   /* (ULFM) gone already */
    MPI_Irecv(in, (int)sizeof in, MPI_BYTE, rank, STRATA__TAG_REPLY, strata__mpi_comm, &rq[1]);
    uint64_t nap_ns = NAP_MIN_NS;
    for (int done = 0; !done;) {
        if (MPI_Testall(2, rq, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
            return;
        if (done)
            break;
        if (strata__now_ns() > deadline_ns) {
            fprintf(stderr, "strata: aborting the MPI job: rank %d did not leave strata_mpi_serve when "
                    "strata_mpi_finalize asked it to\n", rank);
            fflush(stderr);
            MPI_Abort(strata__mpi_comm, 70);
            _exit(70);
        }
        strata__nap(&nap_ns, NAP_MAX_NS);
    }
}

const strata__transport strata__mpi_transport = {
    .name = "mpi",
    .open = mpi_open,
    .close = mpi_close,
    .start = mpi_start,
    .post = mpi_post,
    .answered = mpi_answered,
    .reply = mpi_reply,
    .kill = mpi_kill,
    .signal = mpi_signal,
    .reap = mpi_reap,
    .sleep = strata__sleep_polling,
    .any_answer = mpi_any_answer,
    .wait = mpi_wait,
    .max_wait_ms = 1,
    .copy = mpi_copy,
};
