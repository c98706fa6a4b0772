/* The node's events: areas, the drain, the flight recorder (node/record.h). */
#define _GNU_SOURCE
#include "node/record.h"
#include "node/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/sys.h"
#include "core/trace.h"
#include "ipc/shm.h"
#include "strata/trace.h"

/* The trace's reader of one area, with what names its process, tracks and
   tasks. At the top worker, an area is its own, a child's, or (below a worker
   child, levels 4+) a descendant's: the top maps the areas of its whole local
   tree before any child starts, so it reads every one of them directly. */
typedef struct strata__record_reader {
    strata__rec_reader  reader;
    const strata__node *owner;      /* the worker whose child writes the area (whose registrations
                                       name its tasks); the top itself for its own area */
    const strata__node *sub;        /* a worker child's own node: its dispatch tracks, its engine's handles */
    strata__child      *c;          /* the top's own child record, or NULL */
    bool                own;        /* the top engine's own area */
    strata__child_kind  kind;
    uint32_t            index;      /* the child's worker id in owner */
    int                 device_id;
    char                under[96];  /* the worker child it runs under ("" for the top's children) */
    /* a mirror of a remote worker's area (rank 0): its child record, which
       area of it (0: its engine), and what names the rank's own handles and cores */
    strata__child      *remote;
    uint32_t            remote_area, remote_aic, remote_level;
} strata__record_reader;

/* An area of rank 0 that mirrors one of a remote worker's (record.h). */
typedef struct strata__record_mirror {
    strata__child         *c;
    uint32_t               area;
    uint32_t               nrings;
    strata__rec_area      *rec;
    size_t                 bytes;
    strata__record_reader *reader;
} strata__record_mirror;

/* How many children node n has, from its config (the same before its init,
   in the application, as after it, in the process that runs it). */
static uint32_t children_of(const strata__node *n)
{
    return (n->level == 3 ? n->cfg.ndevices : n->nadded) + n->cfg.num_sub_workers;
}

/* Child i of n as n's config makes it: its kind, the rings of its area (0: a
   remote worker, which has none here), and its node when it is a local worker. */
static uint32_t layout_of(const strata__node *n, uint32_t i, strata__child_kind *kind, const strata__node **sub)
{
    uint32_t next = n->level == 3 ? n->cfg.ndevices : n->nadded;
    *sub = NULL;
    if (i >= next) {
        *kind = STRATA__CHILD_SUB;
        return 1;
    }
    if (n->level == 3) {
        *kind = STRATA__CHILD_CHIP;
        return 1 + n->cfg.aic_cores + n->cfg.aiv_cores;
    }
    if (n->added[i].tp) {
        *kind = STRATA__CHILD_REMOTE;
        return 0;
    }
    *kind = STRATA__CHILD_WORKER;
    *sub = n->added[i].node;
    return 1;
}

/* Bytes of the areas of n's children and of everything below them. */
static uint64_t tree_bytes(const strata__node *n)
{
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < children_of(n); i++) {
        strata__child_kind kind;
        const strata__node *sub;
        uint32_t rings = layout_of(n, i, &kind, &sub);
        if (rings)
            bytes += strata__rec_area_bytes(rings, n->rec_capacity);
        if (sub)
            bytes += tree_bytes(sub);
    }
    return bytes;
}

/* Rings of child c's area. */
static uint32_t rings_of(const strata__node *n, const strata__child *c)
{
    return c->kind == STRATA__CHILD_CHIP ? 1 + n->cfg.aic_cores + n->cfg.aiv_cores : 1;
}

int strata__record_create(strata__node *n)
{
    int rc = strata__rec_capacity_from_env(&n->rec_capacity);
    if (rc)
        return rc;
    size_t bytes = strata__rec_area_bytes(1, n->rec_capacity);
    /* a private mapping: aligned, and its pages allocated as they are written */
    void *p = strata__sys_mmap(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (p == MAP_FAILED)
        return strata__fail(STRATA_ENOMEM, "cannot map the worker's event ring (%zu bytes; STRATA_TRACE_EVENTS): %s",
                            bytes, strerror(errno));
    n->rec = p;
    strata__rec_area_reset(n->rec, 1, n->rec_capacity);
    strata__store_relaxed(&n->rec->pid, (int32_t)getpid());
    n->rec_owned = true;
    return STRATA_OK;
}

static void free_reader(strata__record_reader **p)
{
    if (*p) {
        strata__rec_reader_free(&(*p)->reader);
        free(*p);
        *p = NULL;
    }
}

static void free_mirrors(strata__node *n)
{
    for (uint32_t i = 0; i < n->nmirrors; i++) {
        free_reader(&n->mirrors[i].reader);
        munmap(n->mirrors[i].rec, n->mirrors[i].bytes);
    }
    free(n->mirrors);
    n->mirrors = NULL;
    n->nmirrors = 0;
}

void strata__record_destroy(strata__node *n)
{
    free_reader(&n->trace);
    for (uint32_t i = 0; i < n->ndeep; i++)
        free_reader(&n->deep[i]);
    free(n->deep);
    n->deep = NULL;
    n->ndeep = 0;
    free_mirrors(n);
    free(n->export_at);
    free(n->export_pid);
    n->export_at = NULL;
    n->export_pid = NULL;
    if (n->rec_owned)
        munmap(n->rec, strata__rec_area_bytes(1, n->rec_capacity));
    n->rec = NULL;
    n->rec_owned = false;
}

int strata__record_map_children(strata__node *n)
{
    uint64_t bytes = tree_bytes(n);
    if (bytes == 0)
        return STRATA_OK;
    uint8_t *at;
    if (n->rec_reserved) {   /* a worker child: its part of the top's mapping */
        at = n->rec_reserved;
    } else {
        /* pages are allocated as they are written: untraced rings cost address space only */
        int rc = strata__shm_map(bytes, "the event rings of the worker's children (STRATA_TRACE_EVENTS)", &n->rec_map);
        if (rc)
            return rc;
        n->rec_map_bytes = bytes;
        at = n->rec_map;
    }
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child_kind kind;
        const strata__node *sub;
        uint32_t rings = layout_of(n, i, &kind, &sub);
        if (rings) {
            n->children[i].rec = (strata__rec_area *)(void *)at;
            strata__rec_area_reset(n->children[i].rec, rings, n->rec_capacity);
            at += strata__rec_area_bytes(rings, n->rec_capacity);
        }
        if (sub) {
            /* before the spawner is forked: the worker child finds its block in its copy */
            n->children[i].sub_node->rec_reserved = at;
            at += tree_bytes(sub);
        }
    }
    return STRATA_OK;
}

void strata__record_unmap_children(strata__node *n)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        free_reader(&n->children[i].trace);
        n->children[i].rec = NULL;
    }
    for (uint32_t i = 0; i < n->ndeep; i++)
        free_reader(&n->deep[i]);
    free(n->deep);
    n->deep = NULL;
    n->ndeep = 0;
    strata__shm_unmap(n->rec_map, n->rec_map_bytes);
    n->rec_map = NULL;
    n->rec_map_bytes = 0;
}

void strata__record_child_reset(strata__node *n, strata__child *c)
{
    if (!c->rec)
        return;
    strata__rec_area_reset(c->rec, rings_of(n, c), n->rec_capacity);
    if (c->trace)
        strata__rec_reader_restart(&c->trace->reader);
    c->death_recorded = false;
    free(c->death_record);
    c->death_record = NULL;
}

/* ---- names ---- */

/* "chip child 0 (device 10)", "SUB child 2", "level-3 worker child 1" */
static void child_label(strata__child_kind kind, uint32_t index, int device_id, const strata__node *sub, char *buf,
                        size_t cap)
{
    if (kind == STRATA__CHILD_CHIP && device_id >= 0)
        snprintf(buf, cap, "chip child %u (device %d)", index, device_id);
    else if (kind == STRATA__CHILD_CHIP)
        snprintf(buf, cap, "chip child %u", index);
    else if (kind == STRATA__CHILD_WORKER)
        snprintf(buf, cap, "level-%d worker child %u", sub ? sub->level : 0, index);
    else if (kind == STRATA__CHILD_REMOTE)
        snprintf(buf, cap, "remote worker %u", index);
    else
        snprintf(buf, cap, "SUB child %u", index);
}

static void name_process(void *ctx, char *buf, size_t cap)
{
    strata__record_reader *rr = ctx;
    if (rr->own) {
        snprintf(buf, cap, "application (pid %d)", (int)getpid());
        return;
    }
    char label[96];
    child_label(rr->kind, rr->index, -1, rr->sub, label, sizeof label);
    int pid = (int)strata__load_relaxed(&rr->reader.area->pid);
    if (rr->kind == STRATA__CHILD_CHIP)
        snprintf(buf, cap, "%s (device %d, pid %d)%s%s", label, rr->device_id, pid, rr->under[0] ? " under " : "",
                 rr->under);
    else
        snprintf(buf, cap, "%s (pid %d)%s%s", label, pid, rr->under[0] ? " under " : "", rr->under);
}

/* "tasks of chip child 0 (device 10)": a dispatch track of node n. */
static void dispatch_track(const strata__node *n, uint32_t i, char *buf, size_t cap)
{
    strata__child_kind kind;
    const strata__node *sub;
    (void)layout_of(n, i, &kind, &sub);
    char label[96];
    child_label(kind, i, kind == STRATA__CHILD_CHIP ? n->cfg.device_ids[i] : -1, sub, label, sizeof label);
    snprintf(buf, cap, "level-%d worker: tasks of %s", n->level, label);
}

static void name_track(void *ctx, uint32_t track, char *buf, size_t cap)
{
    strata__record_reader *rr = ctx;
    const strata__node *owner = rr->owner;
    uint32_t nrings = rr->reader.nrings;
    if (rr->remote && rr->remote_area == 0) {   /* a remote worker's engine */
        if (track == 0)
            snprintf(buf, cap, "engine");
        else
            snprintf(buf, cap, "level-%u worker: tasks of its child %u", rr->remote_level, track - nrings);
        return;
    }
    if (rr->remote && track >= 1) {   /* a remote chip's cores */
        if (track - 1 < rr->remote_aic)
            snprintf(buf, cap, "AIC core %u", track - 1);
        else
            snprintf(buf, cap, "AIV core %u", track - 1 - rr->remote_aic);
        return;
    }
    if (rr->own || (rr->sub && track >= nrings)) {   /* an engine's own tracks */
        const strata__node *n = rr->own ? owner : rr->sub;
        if (track == 0)
            snprintf(buf, cap, "level-%d worker: orchestrator", n->level);
        else
            dispatch_track(n, track - nrings, buf, cap);
        return;
    }
    if (track == 0) {
        snprintf(buf, cap, "%s", rr->kind == STRATA__CHILD_CHIP ? "chip orchestrator"
                                 : rr->kind == STRATA__CHILD_SUB ? "SUB function"
                                                                  : "engine");
        return;
    }
    uint32_t core = track - 1;
    if (core < owner->cfg.aic_cores)
        snprintf(buf, cap, "AIC core %u", core);
    else
        snprintf(buf, cap, "AIV core %u", core - owner->cfg.aic_cores);
}

static const char *reg_name_of(const strata__node *n, uint32_t handle)
{
    if (handle == 0)
        return "copy";
    if (handle > n->nregs)
        return NULL;
    const strata__registration *r = &n->regs[handle - 1];
    if (r->kind == STRATA__REG_CHIP)
        return r->chip.name;
    return r->name;   /* NULL: unnamed, called by its handle */
}

static const char *name_callable(void *ctx, bool dispatched, uint32_t handle)
{
    strata__record_reader *rr = ctx;
    if (rr->remote && (dispatched || rr->remote_area != 0)) {   /* a handle of the rank's own worker */
        strata__child *c = rr->remote;
        return handle >= 1 && handle <= c->nremote_names ? c->remote_names[handle - 1] : NULL;
    }
    /* what a worker child's engine dispatched is its own worker's; the task
       it was given is the level above's */
    return reg_name_of(dispatched && rr->sub ? rr->sub : rr->owner, handle);
}

static strata__record_reader *new_reader(const strata__node *owner, strata__rec_area *area, uint32_t nrings,
                                         uint32_t capacity, uint32_t dispatch, uint32_t flow_source, const char *label)
{
    strata__record_reader *rr = strata__calloc(1, sizeof *rr);
    if (!rr)
        return NULL;
    rr->owner = owner;
    strata__trace_names names = {rr, name_process, name_track, name_callable};
    if (strata__rec_reader_init(&rr->reader, area, nrings, capacity, dispatch, &names, label, flow_source) !=
        STRATA_OK) {
        free(rr);
        return NULL;
    }
    return rr;
}

/* Readers of the areas below worker child `sub` (levels 4+), added to n->deep. */
static bool add_deep(strata__node *n, const strata__node *sub, uint8_t *at, uint32_t flow_source, const char *under)
{
    for (uint32_t i = 0; i < children_of(sub); i++) {
        strata__child_kind kind;
        const strata__node *below;
        uint32_t rings = layout_of(sub, i, &kind, &below);
        if (!rings)
            continue;
        strata__rec_area *area = (strata__rec_area *)(void *)at;
        at += strata__rec_area_bytes(rings, sub->rec_capacity);
        char label[64];
        snprintf(label, sizeof label, "%s %u of %.32s", kind == STRATA__CHILD_CHIP ? "chip" : "child", i, under);
        void *grown = realloc(n->deep, (n->ndeep + 1) * sizeof n->deep[0]);
        if (!grown)
            return false;
        n->deep = grown;
        strata__record_reader *rr = new_reader(sub, area, rings, sub->rec_capacity, below ? children_of(below) : 0,
                                               flow_source, label);
        if (!rr)
            return false;
        n->deep[n->ndeep++] = rr;
        rr->sub = below;
        rr->kind = kind;
        rr->index = i;
        rr->device_id = kind == STRATA__CHILD_CHIP ? sub->cfg.device_ids[i] : -1;
        snprintf(rr->under, sizeof rr->under, "%s", under);
        if (below) {
            char deeper[96];
            child_label(kind, i, -1, below, deeper, sizeof deeper);
            char path[104];
            snprintf(path, sizeof path, "%.40s under %.50s", deeper, under);
            if (!add_deep(n, below, at, rr->reader.source, path))
                return false;
            at += tree_bytes(below);
        }
    }
    return true;
}

/* Readers of every area of the top's tree, made the first time a run is traced. */
static bool make_readers(strata__node *n)
{
    if (!n->trace) {
        char label[48];
        snprintf(label, sizeof label, "level-%d worker", n->level);
        n->trace = new_reader(n, n->rec, 1, n->rec_capacity, n->nchildren, 0, label);
        if (!n->trace)
            return false;
        n->trace->own = true;
    }
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!c->rec || c->trace)
            continue;
        char label[48];
        snprintf(label, sizeof label, "%s %d", c->kind == STRATA__CHILD_CHIP ? "chip" : "child", c->worker);
        c->trace = new_reader(n, c->rec, rings_of(n, c), n->rec_capacity, c->sub_node ? children_of(c->sub_node) : 0,
                              n->trace->reader.source, label);
        if (!c->trace)
            return false;
        c->trace->c = c;
        c->trace->sub = c->sub_node;
        c->trace->kind = c->kind;
        c->trace->index = (uint32_t)c->worker;
        c->trace->device_id = c->device_id;
        if (c->sub_node) {
            char under[96];
            child_label(c->kind, (uint32_t)c->worker, -1, c->sub_node, under, sizeof under);
            if (!add_deep(n, c->sub_node, c->sub_node->rec_reserved, c->trace->reader.source, under))
                return false;
        }
    }
    return true;
}

/* ---- runs ---- */

static void tell_children(strata__node *n, uint32_t traced)
{
    for (uint32_t i = 0; i < n->nchildren; i++)
        if (n->children[i].rec)   /* relaxed: the post of each task publishes it (release) */
            strata__store_relaxed(&n->children[i].rec->traced, traced);
}

void strata__record_run_begin(strata__node *n, const strata_call_config *cfg)
{
    n->run_id++;
    /* at the top, whether this process has a trace open; in a worker child,
       whether the level above traces the run that runs this one */
    bool open = n->trace_forced || (n->rec_owned ? strata__trace_active() : strata__rec_traced(n->rec));
    bool want = open && cfg->trace != STRATA_TRACE_SKIP;
    /* the top reads every area of its tree; a worker child, or a served one,
       only records */
    n->traced = want && (!n->rec_owned || n->trace_forced || make_readers(n));   /* no reader (memory): untraced */
    if (n->traced && n->trace) {
        /* what untraced runs left in the rings is not this trace's (a traced
           run drains everything before it ends) */
        strata__rec_reader_skip(&n->trace->reader);
        for (uint32_t i = 0; i < n->nchildren; i++)
            if (n->children[i].trace && !n->children[i].dead)
                strata__rec_reader_skip(&n->children[i].trace->reader);
        for (uint32_t i = 0; i < n->ndeep; i++)
            strata__rec_reader_skip(&n->deep[i]->reader);
    }
    if (n->traced)
        tell_children(n, 1);
    strata__rec_write(strata__rec_area_ring(n->rec, 0), strata__now_ns(), STRATA__REC_RUN_BEGIN, 0, n->run_id,
                      (uint64_t)n->level);
}

void strata__record_run_end(strata__node *n)
{
    strata__rec_write(strata__rec_area_ring(n->rec, 0), strata__now_ns(), STRATA__REC_RUN_END, 0, n->run_id, 0);
    if (n->traced) {
        strata__record_drain(n, true);
        tell_children(n, 0);
    }
    n->traced = false;
}

void strata__record_drain(strata__node *n, bool final)
{
    uint64_t now = strata__now_ns();
    if (!final && now - n->drained_ns < STRATA__TRACE_DRAIN_MS * 1000000ull)
        return;   /* while the run waits: at most once per STRATA__TRACE_DRAIN_MS */
    n->drained_ns = now;
    if (!n->trace || !strata__trace_lock())
        return;
    for (uint32_t i = 0; i < n->ndeep; i++)   /* below worker children first: their tasks end before their parents' */
        strata__rec_drain(&n->deep[i]->reader, final);
    for (uint32_t i = 0; i < n->nmirrors; i++)   /* remote workers' areas: complete once imported */
        strata__rec_drain(&n->mirrors[i].reader->reader, true);
    for (uint32_t i = 0; i < n->nchildren; i++)
        if (n->children[i].trace && !n->children[i].dead)
            strata__rec_drain(&n->children[i].trace->reader, final);
    strata__rec_drain(&n->trace->reader, final);   /* last: the answers it saw have their tasks' slices */
    if (final)
        strata__trace_flush();
    strata__trace_unlock();
}

void strata__record_instant(strata__node *n, const strata__child *c, const char *what, const char *detail)
{
    if (!n->trace || !strata__trace_lock())
        return;
    char args[1024] = "";
    if (detail) {
        size_t k = 0;
        k += (size_t)snprintf(args, sizeof args, "\"detail\":\"");
        for (const char *s = detail; *s && k + 8 < sizeof args; s++) {
            if (*s == '"' || *s == '\\')
                args[k++] = '\\';
            args[k++] = (unsigned char)*s < 0x20 ? ' ' : *s;
        }
        snprintf(args + k, sizeof args - k, "\"");
    }
    uint32_t track = c ? (uint32_t)(c - n->children) + 1 : 0;
    strata__trace_instant((int)getpid(), n->trace->reader.track_base + track, strata__now_ns(), what, args);
    strata__trace_unlock();
}

/* ---- the flight recorder ---- */

/* What names child c's area's tracks and tasks, without a reader. */
static strata__record_reader names_for(strata__node *n, strata__child *c)
{
    strata__record_reader rr = {.owner = n, .sub = c->sub_node, .c = c, .kind = c->kind,
                                .index = (uint32_t)c->worker, .device_id = c->device_id};
    rr.reader.area = c->rec;
    rr.reader.nrings = rings_of(n, c);
    return rr;
}

#define POSTMORTEM_EVENTS 2048u   /* the last events of each ring in a postmortem file */
#define POSTMORTEM_FILES  16u     /* kept per process; the oldest goes first */

static pthread_mutex_t postmortem_lock = PTHREAD_MUTEX_INITIALIZER;
static char *postmortems[POSTMORTEM_FILES];
static uint32_t npostmortems;

/* Where postmortem files go: STRATA_POSTMORTEM_DIR, else TMPDIR, else /tmp;
   NULL for STRATA_POSTMORTEM_DIR=none. */
static const char *postmortem_dir(void)
{
    const char *d = getenv("STRATA_POSTMORTEM_DIR");
    if (d && strcmp(d, "none") == 0)
        return NULL;
    if (!d || !d[0])
        d = getenv("TMPDIR");
    return d && d[0] ? d : "/tmp";
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* The fork handlers of the list of files (a fork waits for its lock; the
   child starts with no files of its own, and never removes its parent's). */
static void postmortem_prepare(void)
{
    pthread_mutex_lock(&postmortem_lock);
}

static void postmortem_parent(void)
{
    pthread_mutex_unlock(&postmortem_lock);
}

static void postmortem_child(void)
{
    pthread_mutex_unlock(&postmortem_lock);   /* taken by this thread in postmortem_prepare */
    for (uint32_t i = 0; i < npostmortems; i++)
        free(postmortems[i]);
    npostmortems = 0;
}

static pthread_once_t postmortem_once = PTHREAD_ONCE_INIT;

static void postmortem_handlers(void)
{
    pthread_atfork(postmortem_prepare, postmortem_parent, postmortem_child);
}

/* Write child c's area to a postmortem file: its path (malloc'd), or NULL
   with *why saying why not (malloc'd). A new file only: never through a
   link, never over a file that is there (the directory may be /tmp). */
static char *write_postmortem(strata__node *n, strata__child *c, const char *summary, uint64_t now, char **why)
{
    pthread_once(&postmortem_once, postmortem_handlers);
    *why = NULL;
    const char *dir = postmortem_dir();
    if (!dir) {
        *why = strata__format("no file (STRATA_POSTMORTEM_DIR=none)");
        return NULL;
    }
    char *path = NULL;
    int fd = -1, err = 0;
    for (unsigned k = 0; k < 16 && fd < 0; k++) {
        free(path);
        path = k ? strata__format("%s/strata-%d-%d-%u.%u.json", dir, (int)getpid(), (int)c->pid, c->gen, k)
                 : strata__format("%s/strata-%d-%d-%u.json", dir, (int)getpid(), (int)c->pid, c->gen);
        if (!path)
            return NULL;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        err = errno;
        if (fd < 0 && err != EEXIST)
            break;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        *why = strata__format("no file: '%s' could not be written (%s; set STRATA_POSTMORTEM_DIR to a writable "
                              "directory, or to none)", path, strerror(fd >= 0 ? errno : err));
        free(path);
        return NULL;
    }
    strata__record_reader names = names_for(n, c);
    char name[96];
    strata__child_name(c, name, sizeof name);
    fprintf(f, "{\"strata_postmortem\": 1,\n \"child\": ");
    json_string(f, name);
    fprintf(f, ",\n \"parent_pid\": %d, \"pid\": %d, \"noticed_ns\": %" PRIu64 ",\n \"death\": ", (int)getpid(),
            (int)c->pid, now);
    json_string(f, c->death_message);
    fprintf(f, ",\n \"summary\": ");
    json_string(f, summary);
    fprintf(f, ",\n \"rings\": [");
    strata__rec_copy e;
    uint32_t nrings = rings_of(n, c), cap = n->rec_capacity;
    /* a file stays under about 4 MiB however many cores the chip has */
    uint64_t per_ring = (4u << 20) / 160u / nrings;
    per_ring = per_ring < POSTMORTEM_EVENTS ? per_ring : POSTMORTEM_EVENTS;
    for (uint32_t r = 0; r < nrings; r++) {
        const strata__rec_ring *ring = strata__rec_ring_at(c->rec, nrings, cap, r);
        char track[64];
        name_track(&names, r, track, sizeof track);
        uint64_t current = strata__load_relaxed(&ring->current);
        fprintf(f, "%s\n  {\"name\": ", r ? "," : "");
        json_string(f, track);
        if (current)
            fprintf(f, ", \"in_kernel\": {\"func_id\": %" PRIu64 "}", strata__rec_current_func(current));
        fprintf(f, ", \"events\": [");
        uint64_t cursor = strata__rec_oldest(ring, cap), lost = 0;
        uint64_t head = strata__load_acquire(&ring->head);
        if (head - cursor > per_ring)
            cursor = head - per_ring;
        bool first = true;
        while (strata__rec_read(ring, cap, &cursor, &e, 1, &lost) == 1) {
            fprintf(f, "%s\n    {\"ts_ns\": %" PRIu64 ", \"event\": \"%s\", \"id\": %" PRIu64 ", \"arg\": %" PRIu64,
                    first ? "" : ",", e.ts_ns, strata__rec_kind_name(e.kind), e.id, e.arg);
            if (e.kind == STRATA__REC_TASK_BEGIN) {
                const char *cn = name_callable(&names, false, (uint32_t)e.arg);
                fprintf(f, ", \"run\": %" PRIu64 ", \"task\": %" PRIu64 ", \"callable\": ", e.id >> 32,
                        e.id & 0xffffffffu);
                json_string(f, cn ? cn : "?");
            }
            fprintf(f, "}");
            first = false;
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n ]}\n");
    bool ok = fflush(f) == 0 && !ferror(f);
    int werr = errno;
    fclose(f);
    if (!ok) {
        *why = strata__format("no file: writing '%s' failed (%s)", path, strerror(werr));
        unlink(path);
        free(path);
        return NULL;
    }
    /* bounded: the oldest file of this process goes once POSTMORTEM_FILES are kept */
    pthread_mutex_lock(&postmortem_lock);
    if (npostmortems == POSTMORTEM_FILES) {
        unlink(postmortems[0]);
        free(postmortems[0]);
        memmove(postmortems, postmortems + 1, (POSTMORTEM_FILES - 1) * sizeof postmortems[0]);
        npostmortems--;
    }
    postmortems[npostmortems++] = strata__format("%s", path);
    pthread_mutex_unlock(&postmortem_lock);
    return path;
}

static void append(char *buf, size_t cap, const char *fmt, ...) STRATA__PRINTF(3, 4);
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* "1.204 s", "3.2 ms", "41 us" */
static const char *duration(uint64_t ns, char *buf, size_t cap)
{
    if (ns >= 1000000000u)
        snprintf(buf, cap, "%.3f s", (double)ns / 1e9);
    else if (ns >= 1000000u)
        snprintf(buf, cap, "%.1f ms", (double)ns / 1e6);
    else
        snprintf(buf, cap, "%" PRIu64 " us", ns / 1000u);
    return buf;
}

/* "it was running task 3 of run 2 (chip callable 'spin') for 1.204 s; AIV
   core 0 was in kernel func_id 1 (chip task 7)". */
static void summarize(strata__node *n, strata__child *c, uint64_t now, char *out, size_t cap)
{
    strata__record_reader names = names_for(n, c);
    uint32_t nrings = rings_of(n, c), capacity = n->rec_capacity;
    const strata__rec_ring *main = strata__rec_ring_at(c->rec, nrings, capacity, 0);
    strata__rec_copy e, begin = {0}, last_end = {0};
    uint64_t cursor = strata__rec_oldest(main, capacity), lost = 0, count = 0;
    while (strata__rec_read(main, capacity, &cursor, &e, 1, &lost) == 1) {
        count++;
        if (e.kind == STRATA__REC_TASK_BEGIN)
            begin = e;
        else if (e.kind == STRATA__REC_TASK_END && e.id == begin.id) {
            last_end = e;
            begin.kind = STRATA__REC_NONE;
        }
    }
    out[0] = '\0';
    const char *what = c->kind == STRATA__CHILD_CHIP ? "chip callable" : c->kind == STRATA__CHILD_SUB ? "SUB function"
                                                                                                      : "callable";
    char took[32];
    if (begin.kind == STRATA__REC_TASK_BEGIN) {
        const char *cn = name_callable(&names, false, (uint32_t)begin.arg);
        char callable[96];
        if (cn)
            snprintf(callable, sizeof callable, "%s '%s'", what, cn);
        else
            snprintf(callable, sizeof callable, "%s, handle %" PRIu64, what, begin.arg);
        append(out, cap, "it was running task %" PRIu64 " of run %" PRIu64 " (%s) for %s", begin.id & 0xffffffffu,
               begin.id >> 32, callable, duration(now > begin.ts_ns ? now - begin.ts_ns : 0, took, sizeof took));
    } else if (last_end.kind == STRATA__REC_TASK_END) {
        append(out, cap, "it was idle; its last task, %" PRIu64 " of run %" PRIu64 ", ended %s before",
               last_end.id & 0xffffffffu, last_end.id >> 32,
               duration(now > last_end.ts_ns ? now - last_end.ts_ns : 0, took, sizeof took));
    } else {
        append(out, cap, "it had run no task%s", count ? " it recorded" : "");
    }
    for (uint32_t r = 1; r < nrings; r++) {
        const strata__rec_ring *ring = strata__rec_ring_at(c->rec, nrings, capacity, r);
        uint64_t current = strata__load_relaxed(&ring->current);
        if (!current)
            continue;
        char track[64];
        name_track(&names, r, track, sizeof track);
        append(out, cap, "; %s was in kernel func_id %" PRIu64, track, strata__rec_current_func(current));
    }
}

void strata__record_death(strata__node *n, strata__child *c)
{
    if (c->death_recorded)
        return;
    c->death_recorded = true;
    if (n->traced && c->trace && strata__trace_lock()) {   /* a traced run: what it published, then its death */
        strata__rec_drain(&c->trace->reader, true);
        strata__rec_drain_died(&c->trace->reader);
        strata__trace_flush();
        strata__trace_unlock();
    }
    if (c->rec && strata__load_relaxed(&c->rec->pid) > 0) {
        uint64_t now = strata__now_ns();
        char summary[1024];
        summarize(n, c, now, summary, sizeof summary);
        char *why = NULL;
        char *path = write_postmortem(n, c, summary, now, &why);
        free(c->death_record);
        if (path)
            c->death_record = strata__format("; flight recorder: %s; its last events are in %s", summary, path);
        else
            c->death_record = strata__format("; flight recorder: %s; its last events: %s", summary,
                                             why ? why : "no file (out of memory)");
        free(path);
        free(why);
    }
    char *detail = strata__format("%s%s", c->death_message ? c->death_message : "a child died",
                                  c->death_record ? c->death_record : "");
    strata__record_instant(n, c, c->death_status == STRATA_ETIMEDOUT ? "child killed: timeout" : "child died",
                           detail ? detail : c->death_message);
    free(detail);
}

/* ---- level 2: a chip in this process ---- */

struct strata__chip_record {
    strata__rec_area  *area;
    size_t             bytes;
    uint32_t           nrings, capacity;
    uint32_t           aic, runs;
    int                device_id;
    bool               traced;
    uint64_t           id;
    strata__rec_reader reader;
    bool               reading;
    const char *(*name)(void *ctx, uint32_t handle);
    void              *ctx;
};

static void chip_process(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "application (pid %d)", (int)getpid());
}

static void chip_track(void *ctx, uint32_t track, char *buf, size_t cap)
{
    strata__chip_record *r = ctx;
    if (track == 0)
        snprintf(buf, cap, "chip %d: orchestrator", r->device_id);
    else if (track - 1 < r->aic)
        snprintf(buf, cap, "chip %d: AIC core %u", r->device_id, track - 1);
    else
        snprintf(buf, cap, "chip %d: AIV core %u", r->device_id, track - 1 - r->aic);
}

static const char *chip_callable(void *ctx, bool dispatched, uint32_t handle)
{
    (void)dispatched;
    strata__chip_record *r = ctx;
    return r->name(r->ctx, handle);
}

/* The orchestrator waits in a traced run: what the rings hold so far goes to
   the trace, so a long run's kernels do not lap them. */
static void chip_drain_while_waiting(void *ctx)
{
    strata__chip_record *r = ctx;
    if (r->traced && r->reading && strata__trace_lock()) {
        strata__rec_drain(&r->reader, false);
        strata__trace_unlock();
    }
}

int strata__chip_record_open(strata__chip *chip, int device_id, uint32_t aic, uint32_t aiv,
                             const char *(*name)(void *ctx, uint32_t handle), void *ctx, strata__chip_record **out)
{
    uint32_t capacity;
    int rc = strata__rec_capacity_from_env(&capacity);
    if (rc)
        return rc;
    strata__chip_record *r = strata__calloc(1, sizeof *r);
    if (!r)
        return strata__fail(STRATA_ENOMEM, "out of host memory for chip %d's event rings", device_id);
    r->bytes = strata__rec_area_bytes(1 + aic + aiv, capacity);
    void *p = strata__sys_mmap(r->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (p == MAP_FAILED) {
        int err = errno;
        size_t bytes = r->bytes;
        free(r);
        return strata__fail(STRATA_ENOMEM, "cannot map chip %d's event rings (%zu bytes; STRATA_TRACE_EVENTS): %s",
                            device_id, bytes, strerror(err));
    }
    r->area = p;
    r->nrings = 1 + aic + aiv;
    r->capacity = capacity;
    strata__rec_area_reset(r->area, 1 + aic + aiv, capacity);
    strata__store_relaxed(&r->area->pid, (int32_t)getpid());
    r->aic = aic;
    r->device_id = device_id;
    r->name = name;
    r->ctx = ctx;
    strata__chip_set_recorder(chip, r->area);
    chip->on_wait = chip_drain_while_waiting;
    chip->on_wait_ctx = r;
    *out = r;
    return STRATA_OK;
}

void strata__chip_record_close(strata__chip_record *r, bool abandoned)
{
    if (!r)
        return;
    if (r->reading)
        strata__rec_reader_free(&r->reader);
    if (!abandoned)
        munmap(r->area, r->bytes);
    free(r);
}

void strata__chip_record_run_begin(strata__chip_record *r, uint32_t handle, const strata_call_config *cfg)
{
    r->runs++;
    r->id = (uint64_t)r->runs << 32 | 1;   /* a level-2 run is one task: its callable */
    r->traced = strata__trace_active() && (!cfg || cfg->trace != STRATA_TRACE_SKIP);
    if (r->traced && !r->reading) {
        strata__trace_names names = {r, chip_process, chip_track, chip_callable};
        char label[48];
        snprintf(label, sizeof label, "chip %d", r->device_id);
        r->reading = strata__rec_reader_init(&r->reader, r->area, r->nrings, r->capacity, 0, &names, label, 0) ==
                     STRATA_OK;
    }
    r->traced = r->traced && r->reading;
    if (r->traced) {
        strata__rec_reader_skip(&r->reader);
        strata__store_relaxed(&r->area->traced, 1);   /* relaxed: the run's first push publishes it */
    }
    strata__rec_write(strata__rec_area_ring(r->area, 0), strata__now_ns(), STRATA__REC_TASK_BEGIN, 0, r->id, handle);
}

void strata__chip_record_run_end(strata__chip_record *r, int status)
{
    strata__rec_write(strata__rec_area_ring(r->area, 0), strata__now_ns(), STRATA__REC_TASK_END, 0, r->id,
                      (uint64_t)(int64_t)status);
    if (!r->traced)
        return;
    strata__store_relaxed(&r->area->traced, 0);
    if (strata__trace_lock()) {
        strata__rec_drain(&r->reader, true);
        strata__trace_flush();
        strata__trace_unlock();
    }
    r->traced = false;
}

/* ---- events across hosts (remote workers) ---- */

void strata__record_force(strata__node *n, bool forced)
{
    n->trace_forced = forced;
}

/* The areas a served worker exports: its own, then its children's (0 when
   it has none there). */
static strata__rec_area *export_area(const strata__node *n, uint32_t a)
{
    return a == 0 ? n->rec : n->children[a - 1].rec;
}

/* Rings of export area a, as n made it. */
static uint32_t export_rings(const strata__node *n, uint32_t a)
{
    return a == 0 ? 1 : rings_of(n, &n->children[a - 1]);
}

static int put_bytes(uint8_t **buf, size_t *cap, size_t *len, const void *p, size_t n)
{
    if (*len + n > *cap) {
        size_t want = *cap ? *cap : 65536;
        while (want < *len + n)
            want *= 2;
        uint8_t *grown = realloc(*buf, want);
        if (!grown)
            return strata__fail(STRATA_ENOMEM, "out of host memory for a remote worker's trace events (%zu bytes)",
                                want);
        *buf = grown;
        *cap = want;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return STRATA_OK;
}

int strata__record_export(strata__node *n, uint8_t **buf, size_t *cap, size_t *len)
{
    uint32_t nareas = 1 + n->nchildren, slots = 0;
    for (uint32_t a = 0; a < nareas; a++)
        slots += export_area(n, a) ? export_rings(n, a) : 0;
    if (!n->export_at) {   /* children are made once per init: their number stays */
        n->export_at = strata__calloc(slots ? slots : 1, sizeof n->export_at[0]);
        n->export_pid = strata__calloc(nareas, sizeof n->export_pid[0]);
        if (!n->export_at || !n->export_pid)
            return strata__fail(STRATA_ENOMEM, "out of host memory for a served worker's trace cursors");
    }
    int rc = STRATA_OK;
    if (n->nregs > n->export_regs) {   /* names of the callables its events number */
        size_t at = *len;
        strata__record_block b = {.area = STRATA__RECORD_NAMES};
        rc = put_bytes(buf, cap, len, &b, sizeof b);
        size_t body = *len;
        for (uint32_t h = n->export_regs + 1; rc == STRATA_OK && h <= n->nregs; h++) {
            const char *name = reg_name_of(n, h);
            uint32_t entry[2] = {h, name ? (uint32_t)strlen(name) : 0};
            rc = put_bytes(buf, cap, len, entry, sizeof entry);
            if (rc == STRATA_OK && entry[1])
                rc = put_bytes(buf, cap, len, name, entry[1]);
        }
        if (rc)
            return rc;
        b.count = (uint32_t)(*len - body);
        memcpy(*buf + at, &b, sizeof b);
        n->export_regs = n->nregs;
    }
    uint32_t slot = 0;
    strata__rec_copy e[256];
    for (uint32_t a = 0; rc == STRATA_OK && a < nareas; a++) {
        const strata__rec_area *area = export_area(n, a);
        if (!area)
            continue;
        int32_t pid = strata__load_relaxed(&area->pid);
        if (pid != n->export_pid[a]) {   /* another process: its area started over */
            memset(&n->export_at[slot], 0, export_rings(n, a) * sizeof n->export_at[0]);
            n->export_pid[a] = pid;
        }
        const strata__child *c = a ? &n->children[a - 1] : NULL;
        uint32_t nrings = export_rings(n, a);
        for (uint32_t r = 0; rc == STRATA_OK && r < nrings; r++, slot++) {
            const strata__rec_ring *ring = strata__rec_ring_at(area, nrings, n->rec_capacity, r);
            uint64_t lost = 0;
            for (;;) {
                uint32_t got = strata__rec_read(ring, n->rec_capacity, &n->export_at[slot], e, 256, &lost);
                if (got == 0 || rc)
                    break;
                strata__record_block b = {.area = a, .ring = r, .pid = pid, .count = got, .nrings = nrings,
                                          .kind = c ? (uint32_t)c->kind : (uint32_t)STRATA__CHILD_REMOTE,
                                          .device_id = c ? c->device_id : -1, .aic = n->cfg.aic_cores,
                                          .children = n->nchildren, .level = (uint32_t)n->level};
                rc = put_bytes(buf, cap, len, &b, sizeof b);
                for (uint32_t i = 0; rc == STRATA_OK && i < got; i++) {
                    strata__record_event ev = {e[i].ts_ns, (uint64_t)e[i].kind | (uint64_t)e[i].aux << 8, e[i].id,
                                               e[i].arg};
                    rc = put_bytes(buf, cap, len, &ev, sizeof ev);
                }
            }
        }
    }
    return rc;
}

/* Rank 0's mirror of remote child c's area `area`, made at its first block. */
static strata__record_mirror *mirror_of(strata__node *n, strata__child *c, const strata__record_block *b)
{
    for (uint32_t i = 0; i < n->nmirrors; i++)
        if (n->mirrors[i].c == c && n->mirrors[i].area == b->area)
            return &n->mirrors[i];
    if (b->nrings == 0 || b->nrings > 1 + 2 * STRATA__MAX_CORES || !make_readers(n))
        return NULL;
    strata__record_mirror *engine = NULL;   /* area 0's: its submits are the arrows' starts */
    for (uint32_t i = 0; b->area && i < n->nmirrors; i++)
        if (n->mirrors[i].c == c && n->mirrors[i].area == 0)
            engine = &n->mirrors[i];
    if (b->area && !engine)
        return NULL;   /* the engine's block comes first */
    void *grown = realloc(n->mirrors, (n->nmirrors + 1) * sizeof n->mirrors[0]);
    if (!grown)
        return NULL;
    n->mirrors = grown;
    strata__record_mirror *m = &n->mirrors[n->nmirrors];
    memset(m, 0, sizeof *m);
    m->bytes = strata__rec_area_bytes(b->nrings, n->rec_capacity);
    void *p = strata__sys_mmap(m->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (p == MAP_FAILED)
        return NULL;
    m->rec = p;
    strata__rec_area_reset(m->rec, b->nrings, n->rec_capacity);
    char label[48];
    snprintf(label, sizeof label, "rank %d%s", c->rank, b->area ? " child" : "");
    m->nrings = b->nrings;
    m->reader = new_reader(n, m->rec, b->nrings, n->rec_capacity, b->area == 0 ? b->children : 0,
                           b->area == 0 ? n->trace->reader.source : engine->reader->reader.source, label);
    if (!m->reader) {
        munmap(m->rec, m->bytes);
        return NULL;
    }
    strata__record_reader *rr = m->reader;
    rr->remote = c;
    rr->remote_area = b->area;
    rr->remote_aic = b->aic;
    rr->remote_level = b->level;
    rr->kind = b->area == 0 ? STRATA__CHILD_REMOTE : (strata__child_kind)b->kind;
    rr->index = b->area == 0 ? (uint32_t)c->worker : b->area - 1;
    rr->device_id = b->device_id;
    if (b->area)
        snprintf(rr->under, sizeof rr->under, "remote worker %d (rank %d)", c->worker, c->rank);
    m->c = c;
    m->area = b->area;
    n->nmirrors++;
    return m;
}

static void import_names(strata__child *c, const uint8_t *p, size_t len)
{
    for (size_t at = 0; at + 8 <= len;) {
        uint32_t entry[2];
        memcpy(entry, p + at, sizeof entry);
        at += sizeof entry;
        if (entry[1] > len - at || entry[0] == 0 || entry[0] > 1u << 20)
            return;
        if (entry[0] > c->nremote_names) {
            char **grown = realloc(c->remote_names, entry[0] * sizeof *grown);
            if (!grown)
                return;
            memset(grown + c->nremote_names, 0, (entry[0] - c->nremote_names) * sizeof *grown);
            c->remote_names = grown;
            c->nremote_names = entry[0];
        }
        free(c->remote_names[entry[0] - 1]);
        c->remote_names[entry[0] - 1] = entry[1] ? strata__strndup((const char *)p + at, entry[1]) : NULL;
        at += entry[1];
    }
}

void strata__record_import(strata__node *n, strata__child *c, const uint8_t *buf, size_t len, int64_t offset_ns)
{
    for (size_t at = 0; at + sizeof(strata__record_block) <= len;) {
        strata__record_block b;
        memcpy(&b, buf + at, sizeof b);
        at += sizeof b;
        if (b.area == STRATA__RECORD_NAMES) {
            if (b.count > len - at)
                return;
            import_names(c, buf + at, b.count);
            at += b.count;
            continue;
        }
        if (b.count > (len - at) / sizeof(strata__record_event))
            return;   /* damaged */
        strata__record_mirror *m = mirror_of(n, c, &b);
        if (m && b.ring < m->nrings) {
            if (strata__load_relaxed(&m->rec->pid) != b.pid) {
                /* another process there now (a restart on the rank): what the
                   last one left is drained, and the mirror starts over */
                if (strata__load_relaxed(&m->rec->pid) > 0 && strata__trace_lock()) {
                    strata__rec_drain(&m->reader->reader, true);
                    strata__rec_drain_died(&m->reader->reader);
                    strata__trace_unlock();
                }
                strata__rec_area_reset(m->rec, m->nrings, n->rec_capacity);
                strata__rec_reader_restart(&m->reader->reader);
                strata__store_relaxed(&m->rec->pid, b.pid);
            }
            strata__rec_ring *ring = strata__rec_ring_at(m->rec, m->nrings, n->rec_capacity, b.ring);
            for (uint32_t i = 0; i < b.count; i++) {
                strata__record_event ev;
                memcpy(&ev, buf + at + i * sizeof ev, sizeof ev);
                strata__rec_write(ring, (uint64_t)((int64_t)ev.ts_ns - offset_ns), (uint32_t)(ev.what & 0xff),
                                  (uint32_t)(ev.what >> 8), ev.id, ev.arg);
            }
        }
        at += (size_t)b.count * sizeof(strata__record_event);
    }
}
