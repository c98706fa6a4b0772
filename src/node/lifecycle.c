/* The node worker's life: create (shared host heap), init (mailboxes, chip
 * memory, the spawner, every child and the ready handshake), close (polite exit,
 * grace, SIGTERM, SIGKILL, reap, unmap) and restarts.
 *
 * Fork ordering: the parent forks only the spawner (node/spawner.c), once at
 * init and again only if it died, from the thread that calls init or run, with
 * Strata's process-wide list of workers locked; every mapping a child needs
 * (mailboxes, the shared heap, its chip memory) exists before that fork. The
 * spawner forks the children. */
#define _GNU_SOURCE
#include "node/record.h"
#include "node/transport.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/sys.h"
#include "ipc/shm.h"

int strata__node_create(const strata_worker_config *cfg, strata__node **out)
{
    strata__node *n = strata__calloc(1, sizeof *n);
    if (!n)
        return strata__fail(STRATA_ENOMEM, "strata_worker_create: out of host memory for a level-%d worker",
                            cfg->level);
    n->cfg = *cfg;
    n->level = cfg->level;
    n->spin_ns = STRATA__SPIN_MIN_NS;
    n->spawner_cmd = n->spawner_peer = n->spawner_pidfd = -1;
    n->heap_bytes = cfg->shared_heap_bytes;
    int rc = strata__shm_map(n->heap_bytes, "the shared host heap (shared_heap_bytes)", (void **)&n->heap);
    if (rc == STRATA_OK) {
        uint64_t lo = (uint64_t)(uintptr_t)n->heap;
        rc = strata__arena_init(&n->heap_arena, lo, lo + n->heap_bytes, 64, "the shared host heap");
        if (rc)
            strata__shm_unmap(n->heap, n->heap_bytes);
    }
    if (rc == STRATA_OK) {
        rc = strata__tmap_init(&n->buffers);
        if (rc) {
            strata__arena_destroy(&n->heap_arena);
            strata__shm_unmap(n->heap, n->heap_bytes);
        }
    }
    if (rc == STRATA_OK) {
        rc = strata__record_create(n);
        if (rc) {
            strata__tmap_destroy(&n->buffers);
            strata__arena_destroy(&n->heap_arena);
            strata__shm_unmap(n->heap, n->heap_bytes);
        }
    }
    if (rc) {
        free(n);
        return strata__error_prefix(rc, "strata_worker_create");
    }
    strata__node_live_add(n);   /* from now on a spawner of another worker drops this heap */
    *out = n;
    return STRATA_OK;
}

static int add_child(strata__node *n, int *id)
{
    if (n->nadded + (uint64_t)n->cfg.num_sub_workers >= 255)
        return strata__fail(STRATA_EINVAL, "this level-%d worker has %u workers and %u SUB workers; a worker has at "
                            "most 255 children", n->level, n->nadded, n->cfg.num_sub_workers);
    void *grown = realloc(n->added, (n->nadded + 1) * sizeof *n->added);
    if (!grown)
        return strata__fail(STRATA_ENOMEM, "out of host memory");
    n->added = grown;
    memset(&n->added[n->nadded], 0, sizeof n->added[0]);
    *id = (int)n->nadded++;
    return STRATA_OK;
}

int strata__node_add_remote(strata__node *n, const strata__transport *tp, int rank, int *id)
{
    int rc = add_child(n, id);
    if (rc == STRATA_OK) {
        n->added[*id].tp = tp;
        n->added[*id].rank = rank;
    }
    return rc;
}

int strata__node_add_worker(strata__node *n, strata_worker *w, strata__node *child, int *id)
{
    int rc = add_child(n, id);
    if (rc)
        return strata__error_prefix(rc, "strata_worker_add_worker");
    n->added[*id].worker = w;
    n->added[*id].node = child;
    strata__node_live_lock();   /* added_to is read by a spawner's forget_others */
    child->added_to = n;
    strata__node_live_unlock();
    return STRATA_OK;
}

/* Undo init: every child ended and reaped (when kill_them), every mapping and
   descriptor of this process released. In a process that is not the one that
   started the children (a child running an exit handler, or a fork of the
   application) kill_them is false: it touches no child and only drops its own
   copies. */
static void release_children(strata__node *n, bool kill_them)
{
    for (uint32_t t = n->ntps; t-- > 0;)
        n->tps[t]->close(n, kill_them);
    strata__node_live_lock();   /* a spawner forked meanwhile reads the children array */
    for (uint32_t i = 0; i < n->nchildren; i++) {
        free(n->children[i].death_message);
        free(n->children[i].death_record);
        for (uint32_t k = 0; k < n->children[i].nremote_names; k++)
            free(n->children[i].remote_names[k]);
        free(n->children[i].remote_names);
    }
    free(n->children);
    n->children = NULL;
    n->nchildren = 0;
    strata__node_live_unlock();
    n->spin_ns = STRATA__SPIN_MIN_NS;
}

/* The first child of children[0, upto) found dead, or NULL. */
static strata__child *first_dead(strata__node *n, uint32_t upto)
{
    strata__reap(n);
    for (uint32_t i = 0; i < upto; i++)
        if (n->children[i].dead)
            return &n->children[i];
    return NULL;
}

int strata__node_init(strata__node *n)
{
    n->parent_pid = getpid();
    n->platform = strata__platform_find(n->cfg.platform);
    /* The children, made under the list's lock: a spawner of another worker
       forked meanwhile sees all of them or none. */
    strata__node_live_lock();
    /* one level down: chips at L3, the added workers at L4+ */
    n->nnext = n->level == 3 ? n->cfg.ndevices : n->nadded;
    n->children = strata__calloc(n->nnext + n->cfg.num_sub_workers, sizeof n->children[0]);
    n->nchildren = n->children ? n->nnext + n->cfg.num_sub_workers : 0;
    n->ntps = 0;
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        c->tp = &strata__proc_transport;
        c->kind = i >= n->nnext ? STRATA__CHILD_SUB : n->level == 3 ? STRATA__CHILD_CHIP : STRATA__CHILD_WORKER;
        c->worker = (int)i;
        c->device_id = c->kind == STRATA__CHILD_CHIP ? n->cfg.device_ids[i] : -1;
        if (c->kind == STRATA__CHILD_WORKER && n->added[i].tp) {
            c->kind = STRATA__CHILD_REMOTE;
            c->tp = n->added[i].tp;
            c->rank = n->added[i].rank;
        } else if (c->kind == STRATA__CHILD_WORKER) {
            c->sub_worker = n->added[i].worker;
            c->sub_node = n->added[i].node;
        }
    }
    /* The transports in use, each once, the process one first; the process
       one alone for a worker with no children. */
    for (uint32_t i = 0; i < n->nchildren; i++)
        if (n->children[i].tp == &strata__proc_transport && n->ntps == 0)
            n->tps[n->ntps++] = &strata__proc_transport;
    for (uint32_t i = 0; i < n->nchildren; i++)
        if (n->children[i].tp != &strata__proc_transport && (n->ntps == 0 || n->tps[n->ntps - 1] != n->children[i].tp))
            n->tps[n->ntps++] = n->children[i].tp;   /* one remote transport at most */
    if (n->ntps == 0)
        n->tps[n->ntps++] = &strata__proc_transport;
    strata__node_live_unlock();
    if (!n->children)
        return strata__fail(STRATA_ENOMEM, "out of host memory for %u children",
                            n->nnext + n->cfg.num_sub_workers);
    /* Every mapping a child needs, then the transport's processes (the
       spawner), then the children one by one. */
    int rc = STRATA_OK;
    uint32_t opened = 0;
    for (; rc == STRATA_OK && opened < n->ntps; opened++)
        rc = n->tps[opened]->open(n);
    if (rc) {
        while (--opened > 0)
            n->tps[opened - 1]->close(n, true);
        release_children(n, false);   /* each open released what it had made */
        return rc;
    }
    uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
    for (uint32_t i = 0; rc == STRATA_OK && i < n->nchildren; i++) {
        rc = strata__start(n, &n->children[i], deadline);
        strata__child *o = rc ? NULL : first_dead(n, i + 1);
        if (o) {
            char name[96];
            rc = strata__fail(STRATA_ECHILD, "%s after it had started, while %s was starting",
                              o->death_message ? o->death_message : "a child died",
                              strata__child_name(&n->children[i], name, sizeof name));
        }
    }
    if (rc) {
        release_children(n, true);
        return rc;
    }
    strata__log(STRATA__LOG_INFO, "level-%d worker ready: %u %s children, %u SUB children, spawner pid %d",
                n->level, n->nnext, n->level == 3 ? "chip" : "worker", n->nchildren - n->nnext,
                (int)n->spawner_pid);
    return STRATA_OK;
}

int strata__node_recover(strata__node *n)
{
    int first = STRATA_OK;
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        /* A death not reported yet (it happened while another child was being
           replaced) waits for the next run, which reports it, then replaces it. */
        if (!c->dead || !c->death_reported)
            continue;
        if (n->cfg.on_child_death == STRATA_ON_DEATH_FAIL) {
            n->failed = true;
            continue;
        }
        if (c->kind == STRATA__CHILD_REMOTE)
            continue;   /* a rank cannot be replaced: no process joins the job; its tasks fail fast */
        if (c->kind != STRATA__CHILD_SUB) {
            c->lost_pid = c->pid;
            strata__node_drop_chip_buffers(n, c);
        }
        uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
        int rc = strata__start(n, c, deadline);
        if (rc) {
            /* Could not replace it: it stays dead, the next run says why and
               tries again; the other dead children are still replaced. */
            char *why = strata__format("%s child %d: its replacement could not start: %s",
                                       c->kind == STRATA__CHILD_CHIP     ? "chip"
                                       : c->kind == STRATA__CHILD_WORKER ? "worker"
                                                                         : "SUB",
                                       c->worker, strata_last_error());
            c->dead = true;
            c->death_reported = false;
            free(c->death_message);
            c->death_message = why;
            c->death_status = rc;
            first = first ? first : rc;
            continue;
        }
        n->restarts++;
        c->stat_restarts++;
        strata__log(STRATA__LOG_INFO, "replaced child %d with pid %d", c->worker, (int)c->pid);
        char detail[64];
        snprintf(detail, sizeof detail, "child %d now runs as pid %d", c->worker, (int)c->pid);
        strata__record_instant(n, c, "child restarted", detail);
    }
    return first;
}

static bool child_alive(const strata__child *c)
{
    return c->gen != 0 && !c->dead;
}

/* Wait until every child has exited or the deadline passes. */
static bool all_gone(strata__node *n, uint64_t deadline_ns)
{
    for (;;) {
        strata__reap(n);
        bool alive = false;
        for (uint32_t i = 0; i < n->nchildren; i++)
            alive |= child_alive(&n->children[i]);
        if (!alive)
            return true;
        if (strata__now_ns() >= deadline_ns)
            return false;
        strata__sleep(n, 10);
    }
}

void strata__node_close(strata__node *n)
{
    if (n->children && n->parent_pid != getpid())
        release_children(n, false);
    if (n->children) {
        /* 1. polite: an exit request to every idle child */
        for (uint32_t i = 0; i < n->nchildren; i++) {
            strata__child *c = &n->children[i];
            if (child_alive(c) && !c->busy) {
                strata__post(n, c, &(strata__request){.kind = STRATA__REQ_EXIT});
            }
        }
        uint64_t grace = (uint64_t)n->cfg.close_grace_ms * 1000000u;
        /* 2. the grace period, then SIGTERM, then the same again; then the
           spawner SIGKILLs what is left as it exits */
        if (!all_gone(n, strata__now_ns() + grace)) {
            for (uint32_t i = 0; i < n->nchildren; i++)
                if (child_alive(&n->children[i]))
                    strata__signal(n, &n->children[i], SIGTERM);
            all_gone(n, strata__now_ns() + grace);
        }
        release_children(n, true);
    }
    if (n->heap) {
        strata__tmap_destroy(&n->buffers);
        strata__arena_destroy(&n->heap_arena);
        strata__node_live_lock();
        strata__shm_unmap(n->heap, n->heap_bytes);
        n->heap = NULL;
        strata__node_live_unlock();
    }
}

void strata__node_destroy(strata__node *n)
{
    if (!n)
        return;
    strata__node_close(n);
    strata__node_live_remove(n);
    for (uint32_t i = 0; i < n->nregs; i++) {
        if (n->regs[i].kind == STRATA__REG_CHIP)
            strata__callable_free(&n->regs[i].chip);
        free(n->regs[i].error);
        free(n->regs[i].so_path);
        free(n->regs[i].name);
        free(n->regs[i].symbol);
    }
    free(n->regs);
    free(n->adopted);
    free(n->added);
    free(n->inherited);
    free(n->run_deaths);
    free(n->objects);
    strata__node_free_window(n);
    strata__record_destroy(n);
    strata__failure_reset(&n->failure);
    free(n);
}
