/* The process-wide list of node workers and its lock, which every fork of the
 * process takes (pthread_atfork): a new spawner drops the other workers'
 * descriptors and mappings it copied (forget_others), and adoption refuses a
 * range that is some worker's own (mapping_at). Also which worker this process
 * serves, when it is a spawner or a child. */
#define _GNU_SOURCE
#include "node/node.h"

#include <pthread.h>
#include <unistd.h>

#include "core/sys.h"
#include "ipc/shm.h"

/* Global state: every node worker from create to destroy, so that a new
   spawner can drop the others' descriptors and mappings (forget_others).
   live_lock guards the list and every field of a listed node that
   forget_others reads (its heap, mailboxes, chips' memory, children array and
   its spawner's descriptors): a fork that copied a half-made picture would give
   a spawner another worker's memory or socket. pthread_atfork takes the lock
   around every fork of the process, Strata's and the application's, so each new
   process sees the list whole. Strata never forks holding it (the prepare
   handler takes it inside fork, after the handlers of the application
   registered later), and a thread may take it again while it holds it (the
   depth below), so the prepare handler of a fork Strata makes does not wait on
   itself. In the new process the forking thread, its only one, still holds it
   and releases it (a plain mutex: glibc does not check the owner). */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;
static _Thread_local unsigned live_depth;   /* this thread's holds of live_lock */
static strata__node *live_nodes;

static void live_setup(void);

void strata__node_live_lock(void)
{
    pthread_once(&live_once, live_setup);
    if (live_depth++ == 0)
        pthread_mutex_lock(&live_lock);
}

void strata__node_live_unlock(void)
{
    if (--live_depth == 0)
        pthread_mutex_unlock(&live_lock);
}

static void live_setup(void)
{
    /* prepare, parent, child */
    pthread_atfork(strata__node_live_lock, strata__node_live_unlock, strata__node_live_unlock);
}

void strata__node_live_add(strata__node *n)
{
    strata__node_live_lock();
    n->next_live = live_nodes;
    live_nodes = n;
    strata__node_live_unlock();
}

void strata__node_live_remove(strata__node *n)
{
    strata__node_live_lock();
    for (strata__node **p = &live_nodes; *p; p = &(*p)->next_live)
        if (*p == n) {
            *p = n->next_live;
            break;
        }
    strata__node_live_unlock();
}

/* The node this process serves as its spawner or child; NULL in the
   application. Set once, right after the fork, in a single-threaded process. */
static const strata__node *serving;

bool strata__node_serves_here(const strata__node *n)
{
    return serving == n;
}

void strata__node_set_serving(const strata__node *n)
{
    serving = n;
}

/* Whether a is b or one of b's ancestors (b was added to it, directly or
   through workers between them). */
static bool is_ancestor_or_self(const strata__node *a, const strata__node *b)
{
    for (; b; b = b->added_to)
        if (a == b)
            return true;
    return false;
}

/* The node whose worker this process runs as a worker child; NULL elsewhere.
   With the pid that took it over: the processes forked below it (its
   spawner, its children) inherit the variables but not the worker. */
static const strata__node *taken_over;
static pid_t taken_over_by;

void strata__node_take_over(const strata__node *n)
{
    taken_over = n;
    taken_over_by = getpid();
}

bool strata__node_taken_over_here(const strata__node *n)
{
    return taken_over == n && taken_over_by == strata__self_pid();
}

void strata__node_forget_others(const strata__node *self)
{
    /* Run in a new spawner, single-threaded: the list is this process's copy.
       Each copy is emptied as it is dropped, so that a later close of that
       worker here (an exit handler in a child) touches nothing twice.
       Kept: self; the workers added below it, whole (a worker child runs one
       of them, on the heap mapped when it was created); and the heaps of the
       workers above it (its tasks' tensors may lie there, at L4+), of which
       every descriptor, mailbox and chip memory goes. */
    for (strata__node *o = live_nodes; o; o = o->next_live) {
        if (o == self || is_ancestor_or_self(self, o))
            continue;
        bool ancestor = is_ancestor_or_self(o, self);
        for (uint32_t i = 0; i < o->nchildren; i++) {
            strata__child *c = &o->children[i];
            if (c->memory)
                strata__shm_unmap(c->memory, c->memory_bytes);
            c->memory = NULL;
            c->resident = NULL;   /* its small record stays allocated here: harmless */
        }
        if (o->spawner_cmd >= 0)
            close(o->spawner_cmd);
        if (o->spawner_peer >= 0)
            close(o->spawner_peer);
        if (o->spawner_pidfd >= 0)
            close(o->spawner_pidfd);
        o->spawner_cmd = o->spawner_peer = o->spawner_pidfd = -1;
        o->spawner_pid = 0;
        strata__shm_unmap(o->mail, o->mail_bytes);
        o->mail = NULL;
        if (!ancestor) {   /* an ancestor's: the areas of this worker's tree lie in it */
            strata__shm_unmap(o->rec_map, o->rec_map_bytes);
            o->rec_map = NULL;
            for (uint32_t i = 0; i < o->nchildren; i++)
                o->children[i].rec = NULL;
        }
        if (!ancestor) {
            strata__shm_unmap(o->heap, o->heap_bytes);
            o->heap = NULL;
        }
    }
}

static bool overlaps(uint64_t lo, uint64_t hi, const void *p, uint64_t nbytes)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    return p && lo < a + nbytes && a < hi;
}

const char *strata__node_mapping_at(uint64_t lo, uint64_t hi)
{
    const char *what = NULL;
    strata__node_live_lock();
    for (strata__node *o = live_nodes; o && !what; o = o->next_live) {
        if (overlaps(lo, hi, o->heap, o->heap_bytes))
            what = "the shared heap of a Strata worker";
        else if (overlaps(lo, hi, o->mail, o->mail_bytes))
            what = "the mailboxes of a Strata worker";
        else if (overlaps(lo, hi, o->rec_map, o->rec_map_bytes))
            what = "the event rings of a Strata worker's children";
        for (uint32_t i = 0; i < o->nchildren && !what; i++)
            if (overlaps(lo, hi, o->children[i].memory, o->children[i].memory_bytes))
                what = "the memory of a Strata worker's chip child";
    }
    strata__node_live_unlock();
    return what;
}
