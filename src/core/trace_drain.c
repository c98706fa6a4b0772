/* From event rings to the trace (core/trace_drain.h). */
#include "core/trace_drain.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/sys.h"
#include "core/trace.h"


/* Flow ids: bit 52 tells the two kinds apart; a source's number above the
   run's and task's (every id stays below 2^53, exact in a JSON reader's
   double). */
static uint64_t submit_flow(uint32_t source, uint64_t id)
{
    return (uint64_t)(source & 0xff) << 44 | ((id >> 32) & 0xfff) << 32 | (id & 0xffffffffu);
}

int strata__rec_reader_init(strata__rec_reader *r, const strata__rec_area *area, uint32_t nrings, uint32_t capacity,
                            uint32_t dispatch, const strata__trace_names *names, const char *label,
                            uint32_t flow_source)
{
    memset(r, 0, sizeof *r);
    r->area = area;
    r->names = *names;
    snprintf(r->label, sizeof r->label, "%s", label);
    static const char *const counters[STRATA__COUNTERS] = {"task window", "ready tasks", "heap bytes", "dep pool"};
    for (uint32_t i = 0; i < STRATA__COUNTERS; i++)
        snprintf(r->counter_names[i], sizeof r->counter_names[i], "%s (%s)", counters[i], r->label);
    r->nrings = nrings;
    r->capacity = capacity;
    r->ntracks = nrings + dispatch;
    r->track_base = strata__trace_new_tracks(r->ntracks);
    r->source = strata__trace_new_source();
    r->flow_source = flow_source;
    r->cursors = strata__calloc(r->nrings, sizeof r->cursors[0]);
    r->open = strata__calloc(r->ntracks, sizeof r->open[0]);
    r->depth = strata__calloc(r->ntracks, sizeof r->depth[0]);
    r->pending = dispatch ? strata__calloc(STRATA__DRAIN_PENDING, sizeof r->pending[0]) : NULL;
    r->batch = strata__calloc((size_t)r->nrings * STRATA__DRAIN_BATCH, sizeof r->batch[0]);
    r->core_names = strata__calloc(r->nrings, sizeof r->core_names[0]);
    r->submitted = strata__calloc(STRATA__DRAIN_KERNELS, sizeof r->submitted[0]);
    r->batch_at = strata__calloc(r->nrings, sizeof r->batch_at[0]);
    r->batch_len = strata__calloc(r->nrings, sizeof r->batch_len[0]);
    bool kernels = r->nrings > 1;   /* an area with cores */
    r->ring_ids = kernels;
    r->edges = kernels ? strata__calloc(STRATA__DRAIN_PENDING, sizeof r->edges[0]) : NULL;
    r->ended = kernels ? strata__calloc(STRATA__DRAIN_KERNELS, sizeof r->ended[0]) : NULL;
    if (!r->cursors || !r->open || !r->depth || (dispatch && !r->pending) || !r->batch || !r->batch_at ||
        !r->batch_len || !r->core_names || !r->submitted || (kernels && (!r->edges || !r->ended))) {
        strata__rec_reader_free(r);
        return strata__fail(STRATA_ENOMEM, "out of host memory for a trace reader of %u tracks", r->ntracks);
    }
    r->named_pid = -1;
    return STRATA_OK;
}

void strata__rec_reader_free(strata__rec_reader *r)
{
    free(r->cursors);
    free(r->open);
    free(r->depth);
    free(r->pending);
    free(r->batch);
    free(r->batch_at);
    free(r->batch_len);
    free(r->edges);
    free(r->ended);
    free(r->core_names);
    free(r->submitted);
    memset(r, 0, sizeof *r);   /* read nothing more */
}

void strata__rec_reader_restart(strata__rec_reader *r)
{
    memset(r->cursors, 0, r->nrings * sizeof r->cursors[0]);
    memset(r->depth, 0, r->ntracks * sizeof r->depth[0]);
    r->named_pid = -1;
    r->chip_handle = 0;
}

void strata__rec_reader_skip(strata__rec_reader *r)
{
    for (uint32_t i = 0; i < r->nrings; i++)   /* acquire: pairs with the writers' release */
        r->cursors[i] = strata__load_acquire(&strata__rec_ring_at(r->area, r->nrings, r->capacity, i)->head);
    memset(r->depth, 0, r->ntracks * sizeof r->depth[0]);
    if (r->pending)
        memset(r->pending, 0, STRATA__DRAIN_PENDING * sizeof r->pending[0]);
}

static int pid_of(const strata__rec_reader *r)
{
    return strata__load_relaxed(&r->area->pid);   /* relaxed: set before the process's first event */
}

static void name_tracks(strata__rec_reader *r, int pid)
{
    char buf[160];
    if (r->names.process) {   /* an area that is a whole process */
        r->names.process(r->names.ctx, buf, sizeof buf);
        strata__trace_process_name(pid, buf, (int)r->track_base);
    }
    for (uint32_t t = 0; t < r->ntracks; t++) {
        r->names.track(r->names.ctx, t, buf, sizeof buf);
        strata__trace_thread_name(pid, r->track_base + t, buf, (int)(r->track_base + t));
    }
    r->named_pid = pid;
    r->epoch = strata__trace_epoch();
}

static const char *callable(const strata__rec_reader *r, bool dispatched, uint32_t handle, char *buf, size_t cap)
{
    const char *name = r->names.callable ? r->names.callable(r->names.ctx, dispatched, handle) : NULL;
    if (name)
        return name;
    snprintf(buf, cap, "handle %u", handle);
    return buf;
}

static void push(strata__rec_reader *r, uint32_t track, const strata__rec_copy *e)
{
    if (track >= r->ntracks || r->depth[track] >= STRATA__DRAIN_DEPTH)
        return;
    r->open[track][r->depth[track]++] = (strata__drain_open){e->ts_ns, e->id, e->arg, e->kind};
}

/* The open slice on track that `end_kind` ends (the innermost of its begin
   kind): removed and returned, or false when its begin was lost. */
static bool pop(strata__rec_reader *r, uint32_t track, uint32_t begin_kind, uint64_t id, strata__drain_open *out)
{
    if (track >= r->ntracks)
        return false;
    for (uint32_t d = r->depth[track]; d-- > 0;) {
        strata__drain_open *o = &r->open[track][d];
        if (o->kind != begin_kind || o->id != id)
            continue;
        *out = *o;
        memmove(o, o + 1, (r->depth[track] - d - 1) * sizeof *o);
        r->depth[track]--;
        return true;
    }
    return false;
}

/* A small text builder (no printf on the per-task path): appends while it
   fits, always NUL-terminated. */
typedef struct text {
    char  *at, *end;
} text;

static void t_str(text *t, const char *s)
{
    while (*s && t->at + 1 < t->end)
        *t->at++ = *s++;
    *t->at = '\0';
}

/* s as the inside of a JSON string */
static void t_json(text *t, const char *s)
{
    for (; *s && t->at + 2 < t->end; s++) {
        if (*s == '"' || *s == '\\')
            *t->at++ = '\\';
        *t->at++ = (unsigned char)*s < 0x20 ? ' ' : *s;
    }
    *t->at = '\0';
}

static void t_u64(text *t, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && t->at + 1 < t->end)
        *t->at++ = tmp[--n];
    *t->at = '\0';
}

static void t_i64(text *t, int64_t v)
{
    if (v < 0) {
        t_str(t, "-");
        t_u64(t, (uint64_t)0 - (uint64_t)v);
    } else {
        t_u64(t, (uint64_t)v);
    }
}

/* The JSON-escaped name of core track `track` (named once per reader). */
static const char *core_label(strata__rec_reader *r, uint32_t track)
{
    if (track >= r->nrings)
        return "";
    if (!r->core_names[track][0]) {
        char raw[32];
        r->names.track(r->names.ctx, track, raw, sizeof raw);
        size_t k = 0;
        for (const char *s = raw; *s && k + 2 < sizeof r->core_names[track]; s++) {
            if (*s == '"' || *s == '\\')
                r->core_names[track][k++] = '\\';
            r->core_names[track][k++] = (unsigned char)*s < 0x20 ? ' ' : *s;
        }
        r->core_names[track][k] = '\0';
    }
    return r->core_names[track];
}

/* The JSON-escaped name of the callable the cores' kernels belong to. */
static const char *chip_callable(strata__rec_reader *r)
{
    if (r->chip_callable_of != r->chip_handle + 1) {
        char buf[96];
        const char *c = callable(r, false, r->chip_handle, buf, sizeof buf);
        text t = {r->chip_callable, r->chip_callable + sizeof r->chip_callable};
        t_json(&t, c);
        r->chip_callable_of = r->chip_handle + 1;
    }
    return r->chip_callable;
}

/* The name and args of a slice that began with o. */
/* The name and args of a slice that began with o. */
/* The name and args of a slice that began with o. */
static void describe(strata__rec_reader *r, uint32_t track, const strata__drain_open *o, const strata__rec_copy *end,
                     char *name, size_t name_cap, char *args, size_t args_cap)
{
    char buf[96];
    text n = {name, name + name_cap}, a = {args, args + args_cap};
    name[0] = args[0] = '\0';
    switch (o->kind) {
    case STRATA__REC_RUN_BEGIN:
        t_str(&n, "run ");
        t_u64(&n, o->id);
        t_str(&a, "\"run\":");
        t_u64(&a, o->id);
        t_str(&a, ",\"level\":");
        t_u64(&a, o->arg);
        break;
    case STRATA__REC_TASK_BEGIN:
    case STRATA__REC_POST:
        t_str(&n, callable(r, o->kind == STRATA__REC_POST, (uint32_t)o->arg, buf, sizeof buf));
        t_str(&a, "\"run\":");
        t_u64(&a, o->id >> 32);
        t_str(&a, ",\"task\":");
        t_u64(&a, o->id & 0xffffffffu);
        t_str(&a, ",\"handle\":");
        t_u64(&a, o->arg);
        if (o->kind == STRATA__REC_POST) {
            t_str(&a, ",\"child\":");
            t_u64(&a, track - r->nrings);
        }
        if (end) {
            t_str(&a, ",\"status\":");
            t_i64(&a, (int64_t)end->arg);
        }
        break;
    case STRATA__REC_KERNEL_BEGIN: {
        const char *c = chip_callable(r);   /* escaped: as a slice's name, it is escaped again */
        t_str(&n, callable(r, false, r->chip_handle, buf, sizeof buf));
        t_str(&n, ": func_id ");
        t_u64(&n, o->arg);
        t_str(&a, "\"task\":");
        t_u64(&a, o->id);
        t_str(&a, ",\"func_id\":");
        t_u64(&a, o->arg);
        t_str(&a, ",\"core\":\"");
        t_str(&a, core_label(r, track));
        t_str(&a, "\",\"callable\":\"");
        t_str(&a, c);
        t_str(&a, "\",\"run\":");
        t_u64(&a, r->chip_task >> 32);
        t_str(&a, ",\"node_task\":");
        t_u64(&a, r->chip_task & 0xffffffffu);
        if (end && end->arg)
            t_str(&a, ",\"failed\":true");
        break;
    }
    case STRATA__REC_WAIT_BEGIN:
        snprintf(name, name_cap, "waiting for room in the %s", o->arg == STRATA__COUNTER_HEAP ? "heap"
                                                               : o->arg == STRATA__COUNTER_DEP_POOL ? "dep pool"
                                                                                                    : "task window");
        args[0] = '\0';
        break;
    default:
        snprintf(name, name_cap, "%s", strata__rec_kind_name(o->kind));
        args[0] = '\0';
    }
}

static void end_slice(strata__rec_reader *r, int pid, uint32_t track, uint32_t begin_kind, const strata__rec_copy *e)
{
    strata__drain_open o;
    if (!pop(r, track, begin_kind, e->id, &o))
        return;
    char name[160], args[512];
    describe(r, track, &o, e, name, sizeof name, args, sizeof args);
    strata__trace_slice(pid, r->track_base + track, o.ts_ns, e->ts_ns, name, args);
    if (begin_kind == STRATA__REC_POST) {
        r->answer_id = e->id;
        r->answer_track = track;
        r->answer_begin = o.ts_ns;
        r->answer_end = e->ts_ns;
    }
}

static void release(strata__rec_reader *r, int pid, const strata__rec_copy *e)
{
    if (!r->pending)
        return;
    uint32_t track = 0;
    uint64_t ts = e->ts_ns;
    if (r->answer_id == e->id) {   /* inside the producer's dispatch slice, just before its end */
        track = r->answer_track;
        ts = r->answer_end > r->answer_begin ? r->answer_end - 1 : r->answer_end;
    }
    uint64_t flow = (uint64_t)1 << 52 | (uint64_t)(r->source & 0xff) << 44 | (r->next_flow++ & 0xfffffffffffull);
    /* the consumer's slot: a task id's low bits, probed linearly */
    for (uint32_t k = 0; k < 8; k++) {
        uint32_t at = (uint32_t)(e->arg + k) % STRATA__DRAIN_PENDING;
        if (r->pending[at].consumer == 0) {
            r->pending[at].consumer = e->arg;
            r->pending[at].flow = flow;
            strata__trace_flow(pid, r->track_base + track, ts, "dependency", flow, true);
            return;
        }
    }
    /* a consumer with more producers than the table keeps nearby: no arrow */
}

static void posted(strata__rec_reader *r, int pid, uint32_t track, const strata__rec_copy *e)
{
    if (!r->pending)
        return;
    for (uint32_t k = 0; k < 8; k++) {
        uint32_t at = (uint32_t)(e->id + k) % STRATA__DRAIN_PENDING;
        if (r->pending[at].consumer == e->id) {
            strata__trace_flow(pid, r->track_base + track, e->ts_ns, "dependency", r->pending[at].flow, false);
            r->pending[at].consumer = 0;
        }
    }
}

/* Where task id goes in the tables kept by id: consecutive tasks of one ring
   take consecutive places, so a window of recent tasks does not collide. */
static inline uint64_t id_key(const strata__rec_reader *r, uint64_t id)
{
    return r->ring_ids ? (id >> 2) + (id & 3) * 1021 : id;
}

/* Kernels: each one's submit arrow from the orchestrator ends where it starts;
   each edge the orchestrator linked (kept by its consumer until then) is an
   arrow from the producer's kernel to it. In time order the producer's end
   and the edge come before the consumer's start. */
static void edge_linked(strata__rec_reader *r, const strata__rec_copy *e)
{
    if (!r->edges)
        return;
    for (uint32_t k = 0; k < 8; k++) {
        uint32_t at = (uint32_t)((id_key(r, e->arg) + k) % STRATA__DRAIN_PENDING);
        if (r->edges[at].consumer == 0) {
            r->edges[at].producer = e->id;
            r->edges[at].consumer = e->arg;
            return;
        }
    }
}

/* The start of task id's submit arrow, on the orchestrator's track at its
   submit, once it starts; whether it was submitted in this trace. */
static bool submit_arrow(strata__rec_reader *r, int pid, uint64_t id)
{
    uint32_t at = (uint32_t)(id_key(r, id) % STRATA__DRAIN_KERNELS);
    if (r->submitted[at].id != id || id == 0)
        return false;
    strata__trace_flow(pid, r->track_base, r->submitted[at].ts_ns, "submit", submit_flow(r->source, id), true);
    r->submitted[at].id = 0;   /* a group's other members: one arrow */
    return true;
}

static void kernel_began(strata__rec_reader *r, int pid, uint32_t track, const strata__rec_copy *e)
{
    if (submit_arrow(r, pid, e->id))
        strata__trace_flow(pid, r->track_base + track, e->ts_ns, "submit", submit_flow(r->source, e->id), false);
    if (!r->edges)
        return;
    for (uint32_t k = 0; k < 8; k++) {
        uint32_t at = (uint32_t)((id_key(r, e->id) + k) % STRATA__DRAIN_PENDING);
        if (r->edges[at].consumer != e->id)
            continue;
        uint64_t p = r->edges[at].producer;
        r->edges[at].consumer = 0;
        const __typeof__(r->ended[0]) *end = &r->ended[id_key(r, p) % STRATA__DRAIN_KERNELS];
        if (end->id != p)
            continue;   /* its end was not read (lost, or long ago): no arrow */
        uint64_t flow = (uint64_t)1 << 52 | (uint64_t)(r->source & 0xff) << 44 | (r->next_flow++ & 0xfffffffffffull);
        strata__trace_flow(pid, r->track_base + end->track, end->end_ns ? end->end_ns - 1 : 0, "dependency", flow, true);
        strata__trace_flow(pid, r->track_base + track, e->ts_ns, "dependency", flow, false);
    }
}

static void counter(strata__rec_reader *r, int pid, const strata__rec_copy *e)
{
    if (e->aux < STRATA__COUNTERS)   /* a dead child's memory is read too: anything else is skipped */
        strata__trace_counter(pid, e->ts_ns, r->counter_names[e->aux], e->arg);
}

static void one_event(strata__rec_reader *r, int pid, uint32_t ring, const strata__rec_copy *e)
{
    uint32_t track = ring;
    switch (e->kind) {
    case STRATA__REC_KERNEL_BEGIN:
        push(r, track, e);
        kernel_began(r, pid, track, e);
        break;
    case STRATA__REC_RUN_BEGIN:
    case STRATA__REC_WAIT_BEGIN:
        push(r, track, e);
        break;
    case STRATA__REC_EDGE:
        edge_linked(r, e);
        break;
    case STRATA__REC_TASK_BEGIN:
        push(r, track, e);
        if (ring == 0) {
            r->chip_handle = (uint32_t)e->arg;
            r->chip_task = e->id;
        }
        if (r->flow_source)
            strata__trace_flow(pid, r->track_base + track, e->ts_ns, "submit", submit_flow(r->flow_source, e->id),
                               false);
        break;
    case STRATA__REC_RUN_END:
        end_slice(r, pid, track, STRATA__REC_RUN_BEGIN, e);
        if (r->pending)   /* arrows to tasks that never started end with their run */
            memset(r->pending, 0, STRATA__DRAIN_PENDING * sizeof r->pending[0]);
        break;
    case STRATA__REC_TASK_END:
        end_slice(r, pid, track, STRATA__REC_TASK_BEGIN, e);
        break;
    case STRATA__REC_KERNEL_END:
        end_slice(r, pid, track, STRATA__REC_KERNEL_BEGIN, e);
        if (r->ended) {
            uint32_t at = (uint32_t)(id_key(r, e->id) % STRATA__DRAIN_KERNELS);
            r->ended[at].id = e->id;
            r->ended[at].end_ns = e->ts_ns;
            r->ended[at].track = track;
        }
        break;
    case STRATA__REC_WAIT_END:
        end_slice(r, pid, track, STRATA__REC_WAIT_BEGIN, e);
        break;
    case STRATA__REC_SUBMIT: {
        uint32_t at = (uint32_t)(id_key(r, e->id) % STRATA__DRAIN_KERNELS);
        r->submitted[at].id = e->id;
        r->submitted[at].ts_ns = e->ts_ns;
        break;
    }
    case STRATA__REC_POST:
        push(r, r->nrings + e->aux, e);
        submit_arrow(r, pid, e->id);   /* its child's start ends it (that area's reader) */
        posted(r, pid, r->nrings + e->aux, e);
        break;
    case STRATA__REC_ANSWER:
        end_slice(r, pid, r->nrings + e->aux, STRATA__REC_POST, e);
        break;
    case STRATA__REC_RELEASE:
        release(r, pid, e);
        break;
    case STRATA__REC_COUNTER:
        counter(r, pid, e);
        break;
    default:
        break;   /* a dead child's memory is read too: unknown kinds are skipped */
    }
}

#define RING_DONE UINT32_MAX   /* batch_at: nothing more to read from the ring in this drain */

/* Read ring's next batch, up to `limit` in time; whether it has one (else the
   ring is done for this drain). */
static bool refill(strata__rec_reader *r, uint32_t ring, uint64_t limit)
{
    strata__rec_copy *b = &r->batch[(size_t)ring * STRATA__DRAIN_BATCH];
    uint64_t cursor = r->cursors[ring];
    uint32_t n = strata__rec_read(strata__rec_ring_at(r->area, r->nrings, r->capacity, ring), r->capacity, &cursor, b,
                                  STRATA__DRAIN_BATCH, &r->lost);
    uint32_t keep = 0;
    while (keep < n && b[keep].ts_ns <= limit)
        keep++;
    /* from the first event held on (what the writer overwrote before it is
       counted lost once) */
    r->cursors[ring] = n ? b[0].pos : cursor;
    r->batch_at[ring] = keep ? 0 : RING_DONE;
    r->batch_len[ring] = keep;
    return keep > 0;
}

void strata__rec_drain(strata__rec_reader *r, bool final)
{
    int pid = pid_of(r);
    if (pid <= 0)
        return;   /* the process has not started */
    if (r->named_pid > 0 && pid != r->named_pid) {
        /* another process writes the area now (a restart the reader was not
           told of: one below a worker child): the last one's open slices
           never ended, and the area started over */
        strata__rec_drain_died(r);
        memset(r->cursors, 0, r->nrings * sizeof r->cursors[0]);
    }
    if (r->named_pid != pid || r->epoch != strata__trace_epoch())
        name_tracks(r, pid);
    /* Merge the rings in time order, a batch of each at a time; a ring's
       events past `limit` wait for the next drain. */
    uint64_t limit = final ? UINT64_MAX : strata__now_ns() - STRATA__DRAIN_LAG_NS;
    for (uint32_t ring = 0; ring < r->nrings; ring++)
        r->batch_at[ring] = r->batch_len[ring] = 0;   /* empty: read at the first look */
    for (;;) {
        uint32_t best = UINT32_MAX;
        uint64_t best_ts = 0;
        for (uint32_t ring = 0; ring < r->nrings; ring++) {
            if (r->batch_at[ring] == RING_DONE)
                continue;
            if (r->batch_at[ring] == r->batch_len[ring] && !refill(r, ring, limit))
                continue;
            uint64_t ts = r->batch[(size_t)ring * STRATA__DRAIN_BATCH + r->batch_at[ring]].ts_ns;
            if (best == UINT32_MAX || ts < best_ts) {
                best = ring;
                best_ts = ts;
            }
        }
        if (best == UINT32_MAX)
            break;
        const strata__rec_copy *e = &r->batch[(size_t)best * STRATA__DRAIN_BATCH + r->batch_at[best]++];
        r->cursors[best] = e->pos + 1;
        one_event(r, pid, best, e);
    }
    if (r->lost != r->lost_told) {
        char args[96];
        snprintf(args, sizeof args, "\"lost\":%" PRIu64 ",\"raise\":\"STRATA_TRACE_EVENTS\"", r->lost - r->lost_told);
        strata__trace_instant(pid, r->track_base, strata__now_ns(), "events lost: a ring wrapped before "
                              "it was read", args);
        r->lost_told = r->lost;
    }
}

void strata__rec_drain_died(strata__rec_reader *r)
{
    int pid = r->named_pid;   /* the process the open slices were of */
    if (pid <= 0)
        return;
    for (uint32_t t = 0; t < r->ntracks; t++) {
        for (uint32_t d = 0; d < r->depth[t]; d++) {
            char name[160], args[512];
            describe(r, t, &r->open[t][d], NULL, name, sizeof name, args, sizeof args);
            strata__trace_unended(pid, r->track_base + t, r->open[t][d].ts_ns, name, args);
        }
        r->depth[t] = 0;
    }
}
