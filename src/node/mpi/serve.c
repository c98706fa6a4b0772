/* A rank that serves a worker to the top worker on rank 0
 * (strata_mpi_serve, include/strata/mpi.h).
 *
 * The loop takes one request at a time from rank 0 (node/mpi/protocol.h) and
 * answers it: HELLO (check every named callable of the top worker against this
 * rank's copy of it, then initialise the served worker), TASK (one run of a
 * named orchestration function on the served worker), REGISTER, MALLOC, FREE,
 * COPY_TO, COPY_FROM, EXIT (close the served worker and return).
 *
 * Waiting costs little: a short spin on MPI_Iprobe (back-to-back tasks never
 * sleep), then naps that double up to STRATA__SERVE_NAP_MAX_NS, so an idle rank
 * uses under 0.5 % of a core (bench/l4_dispatch.sh, docs/performance.md) and
 * the first request after a long idle waits at most one nap. */
#define _GNU_SOURCE
#include "node/mpi/mpi.h"
#include "strata/mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/sys.h"
#include "core/wait.h"
#include "ipc/wire.h"
#include "node/record.h"

#define STRATA__SERVE_SPIN_NS    50000ull
#define STRATA__SERVE_NAP_MAX_NS 10000000ull

typedef struct server {
    strata_worker *top, *w;
    strata__node  *names;       /* the top worker's copy here: its named registrations */
    int            rank;
    uint32_t      *local;       /* top handle h -> this rank's registration index + 1 (0: unknown) */
    uint32_t       nlocal;
    uint8_t       *in;          /* the request being served */
    size_t         in_cap;
    uint8_t       *scratch;     /* copy data that has no place here */
    uint64_t       received_ns; /* when the request being served came */
    uint8_t       *events;      /* a traced task's events for rank 0 (node/record.h) */
    size_t         events_cap, events_len;
} server;

static const char *kind_name(uint32_t kind)
{
    return kind == STRATA__REG_ORCH ? "orchestration function" : kind == STRATA__REG_SUB ? "SUB function"
                                                                                        : "chip callable";
}

static uint8_t reply_buf[sizeof(strata__mpi_reply) + STRATA__MPI_MESSAGE_MAX];

/* The answer, then (a traced task) its events: rank 0 receives them once it
   has the answer, so the events may be any size without either side waiting
   on the other. */
static void answer(server *s, const strata__mpi_request *h, int status, const char *message, uint64_t value)
{
    size_t mlen = message ? strlen(message) : 0;
    if (mlen > STRATA__MPI_MESSAGE_MAX)
        mlen = STRATA__MPI_MESSAGE_MAX;
    size_t events = s->events_len <= INT32_MAX ? s->events_len : 0;
    strata__mpi_reply r = {STRATA__MPI_MAGIC, h->seq, status, (uint32_t)mlen, value, s->received_ns, 0,
                           (uint32_t)events, 0};
    if (mlen)
        memcpy(reply_buf + sizeof r, message, mlen);
    r.sent_ns = strata__now_ns();
    memcpy(reply_buf, &r, sizeof r);
    MPI_Send(reply_buf, (int)(sizeof r + mlen), MPI_BYTE, 0, STRATA__TAG_REPLY, strata__mpi_comm);
    if (events)
        MPI_Send(s->events, (int)events, MPI_BYTE, 0, STRATA__TAG_TRACE, strata__mpi_comm);
    s->events_len = 0;
}

/* Wait for the next request from rank 0 and receive it into s->in, which holds
   the largest one rank 0 makes (a task's arguments, or a HELLO naming up to
   1 MiB of callables). */
static int receive(server *s, size_t *len)
{
    uint64_t from = strata__now_ns(), nap_ns = 20000;
    MPI_Status st;
    MPI_Request rq;
    MPI_Irecv(s->in, (int)s->in_cap, MPI_BYTE, 0, STRATA__TAG_REQUEST, strata__mpi_comm, &rq);
    for (;;) {
        int done = 0;
        int err = MPI_Test(&rq, &done, &st);
        if (err != MPI_SUCCESS) {
            /* truncated: larger than this rank takes; answered, so that rank 0
               says why rather than that the rank fell silent */
            strata__mpi_request h;
            memcpy(&h, s->in, sizeof h);
            int rc = strata__fail(STRATA_EINVAL, "rank %d: a request from rank 0 larger than %zu bytes (more than "
                                  "1 MiB of callable names?) (MPI error %d)", s->rank, s->in_cap, err);
            if (h.magic == STRATA__MPI_MAGIC)
                answer(s, &h, rc, strata_last_error(), (uint64_t)getpid());
            return rc;
        }
        if (done) {
            s->received_ns = strata__now_ns();
            break;
        }
        if (strata__now_ns() - from < STRATA__SERVE_SPIN_NS)
            continue;
        strata__nap(&nap_ns, STRATA__SERVE_NAP_MAX_NS);
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    *len = (size_t)count;
    return STRATA_OK;
}

/* Map the name entries of a HELLO or REGISTER payload to this rank's
   registrations of the same name and kind. */
static int map_names(server *s, const uint8_t *p, size_t len)
{
    for (size_t at = 0; at < len;) {
        strata__mpi_name e;
        if (len - at < sizeof e)
            return strata__fail(STRATA_EINVAL, "a damaged list of callables (%zu bytes left)", len - at);
        memcpy(&e, p + at, sizeof e);
        at += sizeof e;
        if (e.name_len > len - at || e.handle == 0 || e.handle > 1u << 24)
            return strata__fail(STRATA_EINVAL, "a damaged list of callables (handle %u, name of %u bytes)", e.handle,
                                e.name_len);
        const char *name = (const char *)p + at;
        at += e.name_len;
        uint32_t found = 0;
        for (uint32_t i = 0; i < s->names->nregs && !found; i++) {
            const char *mine = s->names->regs[i].name;
            if (mine && strlen(mine) == e.name_len && memcmp(mine, name, e.name_len) == 0)
                found = i + 1;
        }
        if (!found)
            return strata__fail(STRATA_ENOENT, "rank %d: callable '%.*s' (%s) is not registered here; register it "
                                "under the same name on every rank", s->rank, (int)e.name_len, name,
                                kind_name(e.kind));
        if ((uint32_t)s->names->regs[found - 1].kind != e.kind)
            return strata__fail(STRATA_EINVAL, "rank %d: callable '%.*s' is %s %s on rank 0 and %s %s here; register "
                                "it as the same kind on every rank", s->rank, (int)e.name_len, name,
                                e.kind == STRATA__REG_ORCH ? "an" : "a", kind_name(e.kind),
                                s->names->regs[found - 1].kind == STRATA__REG_ORCH ? "an" : "a",
                                kind_name(s->names->regs[found - 1].kind));
        if (e.handle > s->nlocal) {
            uint32_t *grown = realloc(s->local, e.handle * sizeof *grown);
            if (!grown)
                return strata__fail(STRATA_ENOMEM, "out of host memory for the callables' table");
            memset(grown + s->nlocal, 0, (e.handle - s->nlocal) * sizeof *grown);
            s->local = grown;
            s->nlocal = e.handle;
        }
        s->local[e.handle - 1] = found;
    }
    return STRATA_OK;
}

static int run_task(server *s, const strata__mpi_request *h, const uint8_t *payload)
{
    uint32_t local = h->handle && h->handle <= s->nlocal ? s->local[h->handle - 1] : 0;
    if (!local)
        return strata__fail(STRATA_ENOENT, "rank %d: handle %u of the top worker has no name here; run orchestration "
                            "functions on remote workers by registering them with "
                            "strata_worker_register_orch_named on every rank", s->rank, h->handle);
    const strata__registration *r = &s->names->regs[local - 1];
    if (r->kind != STRATA__REG_ORCH)
        return strata__fail(STRATA_ENOENT, "rank %d: '%s' is a %s, not an orchestration function", s->rank, r->name,
                            kind_name(r->kind));
    strata_task_args args;
    int rc = strata__wire_decode(payload, h->payload_len, &args);
    if (rc)
        return strata__error_prefix(rc, "rank %d: the arguments of task %llu", s->rank, (unsigned long long)h->task);
    strata__node *wn = strata__worker_node(s->w);
    strata_call_config cfg = h->cfg;
    /* the top kills nothing here: the run ends its own stuck tasks at the
       task's timeout, so that its answer names them */
    wn->deadline_ns = cfg.timeout_ms ? strata__now_ns() + (uint64_t)cfg.timeout_ms * 1000000u : 0;
    /* a traced task (run: rank 0's): this worker's run is recorded, and its
       events go back with the answer; the task's own slice in its engine's
       ring, under rank 0's run and task */
    uint64_t id = (uint64_t)h->run << 32 | (h->task & 0xffffffffu);
    strata__rec_ring *ring = strata__rec_area_ring(wn->rec, 0);
    if (h->run && ring) {
        strata__record_force(wn, true);
        strata__rec_write(ring, strata__now_ns(), STRATA__REC_TASK_BEGIN, 0, id, h->handle);
    }
    rc = strata_worker_run(s->w, r->orch, r->ctx, &args, &cfg);
    wn->deadline_ns = 0;
    if (h->run && ring) {
        strata__rec_write(ring, strata__now_ns(), STRATA__REC_TASK_END, 0, id, (uint64_t)(int64_t)rc);
        strata__record_force(wn, false);
        char *saved = rc ? strata__format("%s", strata_last_error()) : NULL;
        if (strata__record_export(wn, &s->events, &s->events_cap, &s->events_len) != STRATA_OK)
            s->events_len = 0;   /* the trace loses this task's events; the task's answer stands */
        if (saved) {
            strata__fail(rc, "%s", saved);
            free(saved);
        }
    }
    return rc;
}

/* Whether [addr, addr + nbytes) lies in the served worker's shared heap. */
static bool in_heap(server *s, uint64_t addr, uint64_t nbytes)
{
    strata__node *wn = strata__worker_node(s->w);
    uint64_t lo = (uint64_t)(uintptr_t)wn->heap, hi = lo + wn->heap_bytes;
    return addr >= lo && addr <= hi && nbytes <= hi - addr;
}

/* COPY_TO / COPY_FROM: the data moves in chunks whether or not the range is
   valid (rank 0 sends or waits for it either way); an invalid range is refused
   in the answer. */
static int copy(server *s, const strata__mpi_request *h, bool to)
{
    bool ok = in_heap(s, h->value, h->nbytes);
    for (uint64_t done = 0; done < h->nbytes;) {
        int chunk = (int)(h->nbytes - done < STRATA__MPI_CHUNK ? h->nbytes - done : STRATA__MPI_CHUNK);
        uint8_t *at = ok ? (uint8_t *)(uintptr_t)(h->value + done) : s->scratch;
        if (to)
            MPI_Recv(at, chunk, MPI_BYTE, 0, STRATA__TAG_DATA, strata__mpi_comm, MPI_STATUS_IGNORE);
        else
            MPI_Send(at, chunk, MPI_BYTE, 0, STRATA__TAG_DATA, strata__mpi_comm);
        done += (uint64_t)chunk;
    }
    if (!ok)
        return strata__fail(STRATA_EINVAL, "rank %d: bytes 0x%llx..0x%llx do not lie in the served worker's shared "
                            "heap", s->rank, (unsigned long long)h->value,
                            (unsigned long long)(h->value + h->nbytes));
    return STRATA_OK;
}

/* SEND_TO / RECV_FROM, a copy task's part: this rank's bytes at value go to,
   or come from, rank peer (0: the top's process; itself: a copy within its
   heap, to `other`), in chunks; as for copy(), the data moves even when the
   range is refused, so that the other side is never left waiting. */
static int move(server *s, const strata__mpi_request *h, bool send)
{
    if (h->peer == s->rank) {   /* within this rank's memory */
        if (!in_heap(s, h->value, h->nbytes) || !in_heap(s, h->other, h->nbytes))
            return strata__fail(STRATA_EINVAL, "rank %d: a copy within its heap names bytes outside it", s->rank);
        memmove((void *)(uintptr_t)h->other, (const void *)(uintptr_t)h->value, h->nbytes);
        return STRATA_OK;
    }
    int size = 0;
    MPI_Comm_size(strata__mpi_comm, &size);
    if (h->peer < 0 || h->peer >= size)
        return strata__fail(STRATA_EINVAL, "rank %d: a copy with rank %d, which is not in the job", s->rank, h->peer);
    bool ok = in_heap(s, h->value, h->nbytes);
    for (uint64_t done = 0; done < h->nbytes;) {
        int chunk = (int)(h->nbytes - done < STRATA__MPI_CHUNK ? h->nbytes - done : STRATA__MPI_CHUNK);
        uint8_t *at = ok ? (uint8_t *)(uintptr_t)(h->value + done) : s->scratch;
        if (send)
            MPI_Send(at, chunk, MPI_BYTE, h->peer, STRATA__TAG_DATA, strata__mpi_comm);
        else
            MPI_Recv(at, chunk, MPI_BYTE, h->peer, STRATA__TAG_DATA, strata__mpi_comm, MPI_STATUS_IGNORE);
        done += (uint64_t)chunk;
    }
    if (!ok)
        return strata__fail(STRATA_EINVAL, "rank %d: bytes 0x%llx..0x%llx of a copy task do not lie in the served "
                            "worker's shared heap", s->rank, (unsigned long long)h->value,
                            (unsigned long long)(h->value + h->nbytes));
    return STRATA_OK;
}

int strata_mpi_serve(strata_worker *top, strata_worker *w)
{
    strata__clear_error();
    if (strata__mpi_comm == MPI_COMM_NULL)
        return strata__fail(STRATA_ESTATE, "strata_mpi_serve: call strata_mpi_init first");
    if (top == NULL || w == NULL)
        return strata__fail(STRATA_EINVAL, "strata_mpi_serve: %s is NULL", top == NULL ? "top" : "w");
    server s = {.top = top, .w = w, .names = strata__worker_node(top)};
    MPI_Comm_rank(strata__mpi_comm, &s.rank);
    if (s.rank == 0)
        return strata__fail(STRATA_EINVAL, "strata_mpi_serve: rank 0 holds the top worker; it runs it, and the "
                            "other ranks serve");
    if (!s.names || !strata__worker_node(w))
        return strata__fail(STRATA_EINVAL, "strata_mpi_serve: top and w must be level 3 or more (top: the top "
                            "worker as configured on rank 0; w: the worker this rank serves)");
    s.in_cap = sizeof(strata__mpi_request) + STRATA__MPI_PAYLOAD_MAX + (1u << 20);   /* + 1 MiB of names */
    s.in = malloc(s.in_cap);
    /* where the data of a refused copy goes (or comes from): made now, so that
       a refusal never leaves a peer's chunks unread */
    s.scratch = strata__calloc(1, STRATA__MPI_CHUNK);
    if (!s.in || !s.scratch) {
        free(s.in);
        free(s.scratch);
        return strata__fail(STRATA_ENOMEM, "strata_mpi_serve: out of host memory");
    }
    char host[256] = "unknown host";
    gethostname(host, sizeof host - 1);
    int result = STRATA_OK;
    char *why = NULL;   /* result's message */
    for (bool serving = true; serving;) {
        size_t len = 0;
        int rc = receive(&s, &len);
        strata__mpi_request h;
        if (rc == STRATA_OK && (len < sizeof h || (memcpy(&h, s.in, sizeof h), h.magic != STRATA__MPI_MAGIC) ||
                                h.payload_len > len - sizeof h))
            rc = strata__fail(STRATA_EINVAL, "rank %d: a damaged request of %zu bytes from rank 0", s.rank, len);
        if (rc) {
            result = rc;   /* nothing to answer: the top worker's own checks end the job */
            why = strata__format("%s", strata_last_error());
            break;
        }
        const uint8_t *payload = s.in + sizeof h;
        uint64_t value = 0;
        strata__clear_error();
        switch (h.kind) {
        case STRATA__REQ_HELLO:
            rc = map_names(&s, payload, h.payload_len);
            if (rc == STRATA_OK && strata_worker_state(w) == STRATA_STATE_NEW) {
                rc = strata_worker_init(w);
                if (rc)
                    rc = strata__error_prefix(rc, "rank %d", s.rank);
            }
            value = (uint64_t)getpid();
            if (rc) {
                result = rc;
                why = strata__format("%s", strata_last_error());
                serving = false;   /* rank 0's init fails: it will not ask again */
            }
            answer(&s, &h, rc, rc ? strata_last_error() : host, value);
            continue;
        case STRATA__REQ_REGISTER:
            rc = map_names(&s, payload, h.payload_len);
            break;
        case STRATA__REQ_TASK:
            rc = run_task(&s, &h, payload);
            break;
        case STRATA__REQ_MALLOC: {
            void *p = NULL;
            rc = strata_worker_host_alloc(w, h.value, &p);
            value = (uint64_t)(uintptr_t)p;
            break;
        }
        case STRATA__REQ_FREE:
            rc = strata_worker_host_free(w, (void *)(uintptr_t)h.value);
            break;
        case STRATA__REQ_COPY_TO:
        case STRATA__REQ_COPY_FROM:
            rc = copy(&s, &h, h.kind == STRATA__REQ_COPY_TO);
            break;
        case STRATA__REQ_SEND_TO:
        case STRATA__REQ_RECV_FROM:
            rc = move(&s, &h, h.kind == STRATA__REQ_SEND_TO);
            break;
        case STRATA__REQ_EXIT:
            rc = strata_worker_close(w);
            serving = false;
            break;
        default:
            rc = strata__fail(STRATA_EINVAL, "rank %d: a request of unknown kind %u", s.rank, h.kind);
            break;
        }
        answer(&s, &h, rc, rc ? strata_last_error() : NULL, value);
    }
    free(s.local);
    free(s.in);
    free(s.scratch);
    free(s.events);
    if (result)
        strata__fail(result, "strata_mpi_serve: %s", why ? why : strata_status_name(result));
    free(why);
    return result;
}
