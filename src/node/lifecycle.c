/* The node worker's life: create (shared host heap), init (mailboxes, chip
 * memory, forking every child, the ready handshake), close (polite exit, grace,
 * SIGTERM, SIGKILL, reap, unmap) and restarts.
 *
 * Fork ordering: every child is forked by the thread that drives the worker,
 * while Strata runs no other thread in this process and holds no lock (the node
 * engine has no thread of its own). Each mapping a child needs (mailboxes, the
 * shared heap, its chip memory) exists before its fork. */
#define _GNU_SOURCE
#include "node/node.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sys.h"
#include "ipc/shm.h"

/* Global state: every node worker between init and close, so a new child can
   drop the others' descriptors and mappings (a mutex guards the list; a child
   reads its snapshot without the lock, since it is single-threaded then). */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static strata__node *live_nodes;

static void live_add(strata__node *n)
{
    pthread_mutex_lock(&live_lock);
    n->next_live = live_nodes;
    live_nodes = n;
    pthread_mutex_unlock(&live_lock);
}

static void live_remove(strata__node *n)
{
    pthread_mutex_lock(&live_lock);
    for (strata__node **p = &live_nodes; *p; p = &(*p)->next_live)
        if (*p == n) {
            *p = n->next_live;
            break;
        }
    pthread_mutex_unlock(&live_lock);
}

void strata__node_forget_others(const strata__node *self)
{
    for (strata__node *o = live_nodes; o; o = o->next_live) {
        if (o == self)
            continue;
        for (uint32_t i = 0; i < o->nchildren; i++) {
            if (o->children[i].pidfd >= 0)
                close(o->children[i].pidfd);
            if (o->children[i].memory)
                strata__shm_unmap(o->children[i].memory, o->children[i].memory_bytes);
        }
        if (o->wake_fd >= 0)
            close(o->wake_fd);
        for (int k = 0; k < 2; k++)
            if (o->death_pipe[k] >= 0)
                close(o->death_pipe[k]);
        strata__shm_unmap(o->mail, o->mail_bytes);
        strata__shm_unmap(o->heap, o->heap_bytes);
    }
    /* Its own siblings' pidfds are no business of a child either. */
    for (uint32_t i = 0; i < self->nchildren; i++)
        if (self->children[i].pidfd >= 0)
            close(self->children[i].pidfd);
}

const char *strata__child_name(const strata__child *c, char *buf, size_t cap)
{
    if (c->kind == STRATA__CHILD_CHIP)
        snprintf(buf, cap, "chip child %d (device %d, pid %d)", c->worker, c->device_id, (int)c->pid);
    else
        snprintf(buf, cap, "SUB child %d (pid %d)", c->worker, (int)c->pid);
    return buf;
}

int strata__node_create(const strata_worker_config *cfg, strata__node **out)
{
    strata__node *n = calloc(1, sizeof *n);
    if (!n)
        return strata__fail(STRATA_ENOMEM, "strata_worker_create: out of host memory for a level-%d worker",
                            cfg->level);
    n->cfg = *cfg;
    n->level = cfg->level;
    n->wake_fd = -1;
    n->spin_ns = STRATA__SPIN_MIN_NS;
    n->death_pipe[0] = n->death_pipe[1] = -1;
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
    if (rc) {
        free(n);
        return strata__error_prefix(rc, "strata_worker_create");
    }
    *out = n;
    return STRATA_OK;
}

/* Wait until child c reports ready or dies, or the deadline passes. A child
   started earlier that dies meanwhile fails the wait too: init is all or
   nothing. Every death found is reaped (or its readable pidfd would make each
   poll return at once). */
static int await_ready(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    char name[96];
    for (;;) {
        strata__node_reap(n);
        if (c->dead) {
            c->death_reported = true;
            const char *how = c->death_message ? c->death_message : "the child died";
            if (strata__mailbox_message_len(c->mb))
                return strata__fail(STRATA_ECHILD, "%s while starting: %.*s", how,
                                    (int)strata__mailbox_message_len(c->mb), c->mb->message);
            return strata__fail(STRATA_ECHILD, "%s while starting", how);
        }
        for (uint32_t i = 0; i < n->nchildren; i++) {
            strata__child *o = &n->children[i];
            if (o != c && o->dead && !o->death_reported) {
                o->death_reported = true;
                return strata__fail(STRATA_ECHILD, "%s while %s was starting",
                                    o->death_message ? o->death_message : "a child died",
                                    strata__child_name(c, name, sizeof name));
            }
        }
        /* acquire: pairs with the release of `ready` in the child */
        if (strata__load_acquire(&c->mb->ready))
            return STRATA_OK;
        if (strata__now_ns() >= deadline_ns) {
            strata__child_name(c, name, sizeof name);
            strata__node_kill(n, c, NULL);
            c->death_reported = true;
            return strata__fail(STRATA_ETIMEDOUT, "%s did not report ready within init_timeout_ms (%u ms) and was "
                                "killed; raise init_timeout_ms if starting is just slow", name, n->cfg.init_timeout_ms);
        }
        strata__node_sleep(n, 10);
    }
}

int strata__node_spawn(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    /* A fresh mailbox: the new child starts at sequence 0. */
    memset(c->mb, 0, offsetof(strata__mailbox, message));
    c->seq = 0;
    c->busy = false;
    c->task = 0;
    c->dead = false;
    c->death_reported = false;
    free(c->death_message);
    c->death_message = NULL;
    fflush(NULL);   /* nothing buffered is written twice by the child */
    strata__forker_tid = (pid_t)syscall(SYS_gettid);
    pid_t pid = fork();
    if (pid < 0) {
        char name[96];
        c->pid = 0;
        return strata__fail_sys(errno, "fork of %s", strata__child_name(c, name, sizeof name));
    }
    if (pid == 0)
        strata__child_main(n, c);
    c->pid = pid;
    /* pidfd: lets the parent's poll() wake when the child dies. Without it
       (ENOSYS on old kernels) the parent polls with a short timeout instead. */
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (c->pidfd >= 0) {
        int fl = fcntl(c->pidfd, F_GETFD);
        if (fl >= 0)
            fcntl(c->pidfd, F_SETFD, fl | FD_CLOEXEC);
    }
    return await_ready(n, c, deadline_ns);
}

static void release_child_memory(strata__child *c)
{
    if (c->memory) {
        strata__arena_destroy(&c->buffers);
        strata__shm_unmap(c->memory, c->memory_bytes);
        c->memory = NULL;
    }
}

/* Undo init: every child is killed and reaped (when kill_them), every mapping
   and descriptor of this process released. In a process that is not the one
   that started the children (a child running an exit handler, or a fork of the
   application) kill_them is false: it touches no child and only drops its own
   copies. */
static void release_children(strata__node *n, bool kill_them)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (kill_them && c->pid > 0 && !c->dead)
            strata__node_kill(n, c, NULL);
        if (c->pidfd >= 0)
            close(c->pidfd);
        free(c->death_message);
        release_child_memory(c);
    }
    free(n->children);
    n->children = NULL;
    n->nchildren = 0;
    if (n->wake_fd >= 0)
        close(n->wake_fd);
    n->wake_fd = -1;
    n->spin_ns = STRATA__SPIN_MIN_NS;
    for (int k = 0; k < 2; k++)
        if (n->death_pipe[k] >= 0)
            close(n->death_pipe[k]);
    n->death_pipe[0] = n->death_pipe[1] = -1;
    strata__shm_unmap(n->mail, n->mail_bytes);
    n->mail = NULL;
    live_remove(n);
}

int strata__node_init(strata__node *n)
{
    n->nchips = n->cfg.ndevices;
    n->nchildren = n->cfg.ndevices + n->cfg.num_sub_workers;
    n->parent_pid = getpid();
    n->init_tid = (pid_t)syscall(SYS_gettid);
    n->children = calloc(n->nchildren, sizeof n->children[0]);
    if (!n->children)
        return strata__fail(STRATA_ENOMEM, "out of host memory for %u children", n->nchildren);
    for (uint32_t i = 0; i < n->nchildren; i++)
        n->children[i].pidfd = -1;
    n->mail_bytes = sizeof(strata__mailbox_header) + (uint64_t)n->nchildren * sizeof(strata__mailbox);
    int rc = strata__shm_map(n->mail_bytes, "the children's mailboxes", &n->mail);
    if (rc) {
        free(n->children);
        n->children = NULL;
        return rc;
    }
    n->header = n->mail;
    n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (n->wake_fd < 0) {
        rc = strata__fail_sys(errno, "eventfd for the node worker's wake-ups");
        release_children(n, true);
        return rc;
    }
    n->header->wake_fd = n->wake_fd;
    if (pipe2(n->death_pipe, O_CLOEXEC) != 0) {
        rc = strata__fail_sys(errno, "pipe2 for the children's parent-death watch");
        n->death_pipe[0] = n->death_pipe[1] = -1;
        release_children(n, true);
        return rc;
    }
    live_add(n);
    strata__mailbox *boxes = (strata__mailbox *)(void *)((uint8_t *)n->mail + sizeof(strata__mailbox_header));
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        c->kind = i < n->nchips ? STRATA__CHILD_CHIP : STRATA__CHILD_SUB;
        c->worker = (int)i;
        c->device_id = i < n->nchips ? n->cfg.device_ids[i] : -1;
        c->mb = &boxes[i];
        if (c->kind == STRATA__CHILD_CHIP) {
            char what[64];
            snprintf(what, sizeof what, "the memory of chip %d (device_memory_bytes)", c->device_id);
            c->memory_bytes = n->cfg.device_memory_bytes;
            rc = strata__shm_map(c->memory_bytes, what, (void **)&c->memory);
            if (rc == STRATA_OK) {
                uint64_t lo = (uint64_t)(uintptr_t)c->memory;
                rc = strata__arena_init(&c->buffers, lo + c->memory_bytes / 2, lo + c->memory_bytes, 64, what);
                if (rc) {
                    strata__shm_unmap(c->memory, c->memory_bytes);
                    c->memory = NULL;
                }
            }
            if (rc) {
                release_children(n, true);
                return rc;
            }
        }
    }
    rc = strata__node_snapshot_objects(n);
    if (rc) {
        release_children(n, true);
        return rc;
    }
    /* Every mapping exists: now the children, one after another. */
    uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
    for (uint32_t i = 0; i < n->nchildren; i++) {
        rc = strata__node_spawn(n, &n->children[i], deadline);
        if (rc) {
            release_children(n, true);
            return rc;
        }
    }
    strata__log(STRATA__LOG_INFO, "level-%d worker ready: %u chip children, %u SUB children", n->level, n->nchips,
                n->nchildren - n->nchips);
    return STRATA_OK;
}

int strata__node_recover(strata__node *n)
{
    int first = STRATA_OK;
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!c->dead)
            continue;
        if (n->cfg.on_child_death == STRATA_ON_DEATH_FAIL) {
            n->failed = true;
            continue;
        }
        if (c->pidfd >= 0)
            close(c->pidfd);
        c->pidfd = -1;
        if (c->kind == STRATA__CHILD_CHIP)
            strata__node_drop_chip_buffers(n, c);
        uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
        int rc = strata__node_spawn(n, c, deadline);
        if (rc) {
            /* Could not replace it: it stays dead, the next run says why and
               tries again; the other dead children are still replaced. */
            c->dead = true;
            c->death_reported = false;
            free(c->death_message);
            c->death_message = strata__format("its replacement could not start: %s", strata_last_error());
            c->death_status = rc;
            first = first ? first : rc;
            continue;
        }
        n->restarts++;
        strata__log(STRATA__LOG_INFO, "replaced child %d with pid %d", c->worker, (int)c->pid);
    }
    return first;
}

/* Wait until every child has exited or the deadline passes. */
static bool all_gone(strata__node *n, uint64_t deadline_ns)
{
    for (;;) {
        strata__node_reap(n);
        bool alive = false;
        for (uint32_t i = 0; i < n->nchildren; i++)
            alive |= n->children[i].pid > 0 && !n->children[i].dead;
        if (!alive)
            return true;
        if (strata__now_ns() >= deadline_ns)
            return false;
        strata__node_sleep(n, 10);
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
            if (c->pid > 0 && !c->dead && !c->busy) {
                c->mb->kind = STRATA__REQ_EXIT;
                strata__mailbox_post(c->mb, ++c->seq);
            }
        }
        uint64_t grace = (uint64_t)n->cfg.close_grace_ms * 1000000u;
        /* 2. the grace period, then SIGTERM, then the same again, then SIGKILL */
        if (!all_gone(n, strata__now_ns() + grace)) {
            for (uint32_t i = 0; i < n->nchildren; i++) {
                strata__child *c = &n->children[i];
                if (c->pid > 0 && !c->dead)
                    kill(c->pid, SIGTERM);
            }
            all_gone(n, strata__now_ns() + grace);
        }
        release_children(n, true);   /* SIGKILL and reap whatever is left */
    }
    if (n->heap) {
        strata__tmap_destroy(&n->buffers);
        strata__arena_destroy(&n->heap_arena);
        strata__shm_unmap(n->heap, n->heap_bytes);
        n->heap = NULL;
    }
}

void strata__node_destroy(strata__node *n)
{
    if (!n)
        return;
    strata__node_close(n);
    for (uint32_t i = 0; i < n->nregs; i++) {
        if (n->regs[i].kind == STRATA__REG_CHIP)
            strata__callable_free(&n->regs[i].chip);
        free(n->regs[i].error);
    }
    free(n->regs);
    free(n->objects);
    free(n->tasks);
    free(n->edges);
    for (uint32_t k = 0; n->chip_ready && k < n->nchips; k++)
        free(n->chip_ready[k].items);
    free(n->chip_ready);
    free(n->sub_ready.items);
    free(n->group_ready.items);
    strata__bump_destroy(&n->run_memory);
    strata__failure_reset(&n->failure);
    free(n);
}
