/* A run of a node worker: the orchestration function's submits, dependencies
 * through the TensorMap, posting ready tasks to idle children, collecting their
 * answers, and noticing deaths and timeouts. All on the thread that called
 * strata_worker_run (see node/node.h).
 *
 * A task's life: submitted (pending = running producers) -> ready (pending 0,
 * in the ready list) -> posted to a child's mailbox -> answered (or its child
 * died, or it passed its timeout and its child was killed) -> done. A failure
 * makes the run fail: its dependents are cancelled, tasks already posted finish,
 * and later submits return STRATA_ECANCELED. */
#define _GNU_SOURCE
#include "node/record.h"
#include "node/transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/array.h"
#include "core/hooks.h"
#include "core/log.h"
#include "core/sys.h"
#include "core/wait.h"
#include "ipc/wire.h"

struct strata_orch {
    strata__node             *node;
    const strata_call_config *run_cfg;
};

/* Replace the dead children inside strata_worker_run (before a run that
   reports them, after one that saw them die). It waits for the spawner and the
   new children, as long as init_timeout_ms: to the embedding hooks, the
   driving thread sleeps (an interpreter lets its other threads go). Nothing in
   it calls back into the application. */
static int recover_waiting(strata__node *n)
{
    strata__hooks_wait_begin(&n->hooks);
    int rc = strata__node_recover(n);
    strata__hooks_wait_end(&n->hooks);
    return rc;
}

/* ---- tasks ---- */

static void run_fail(strata__node *n, int status, const char *msg)
{
    strata__failure_set(&n->failure, status, "%s", msg);
}

/* The slot of task id t. */
static inline strata__node_task *task_of(strata__node *n, uint32_t t)
{
    return &n->tasks[t & (n->window - 1)];
}

/* Children one level down run chip callables at L3 and orchestration
   functions at L4+: the registration kind strata_submit_next_level takes. */
static strata__reg_kind next_kind(const strata__node *n)
{
    return n->level == 3 ? STRATA__REG_CHIP : STRATA__REG_ORCH;
}

/* "chip" at L3, "worker" at L4+: for messages. */
static const char *next_word(const strata__node *n)
{
    return n->level == 3 ? "chip" : "worker";
}

/* The FIFO a ready task waits in (see node/node.h). */
static strata__task_fifo *fifo_for(strata__node *n, strata__reg_kind kind, uint32_t nmembers, int target)
{
    if (nmembers != 1)
        return &n->group_ready;
    if (kind == STRATA__REG_COPY && target < 0)
        return &n->engine_ready;
    return kind != STRATA__REG_SUB ? &n->chip_ready[target] : &n->sub_ready;
}

/* A task enters a FIFO once, and at most `window` tasks live at once: a FIFO
   of `window` entries never overflows. */
static void push_ready(strata__node *n, uint32_t t)
{
    strata__node_task *task = task_of(n, t);
    strata__task_fifo *f = fifo_for(n, task->kind, task->nmembers, task->members[0].target);
    f->items[f->tail++ & (n->window - 1)] = t;
}

static uint32_t fifo_at(const strata__node *n, const strata__task_fifo *f, uint32_t pos)
{
    return f->items[pos & (n->window - 1)];
}

static void complete(strata__node *n, uint32_t t, int status, const char *msg)
{
    strata__node_task *task = task_of(n, t);
    task->done = true;
    task->status = status;
    n->done_count++;
    strata__count_outcome(status, &n->stat_completed, &n->stat_canceled, &n->stat_failed);
    if (status != STRATA_OK && status != STRATA_ECANCELED)
        run_fail(n, status, msg);
    for (uint32_t e = task->succ, next; e != STRATA__NONE; e = next) {
        strata__node_task *s = task_of(n, n->edges[e].succ);
        strata__record(n, STRATA__REC_RELEASE, 0, strata__record_id(n, t), strata__record_id(n, n->edges[e].succ));
        if (status != STRATA_OK)
            s->poisoned = true;
        if (--s->pending == 0)
            push_ready(n, n->edges[e].succ);
        next = n->edges[e].next;
        n->edges[e].next = n->free_edge;   /* walked once: free for the next link */
        n->free_edge = e;
    }
    task->succ = STRATA__NONE;
    while (n->done_watermark < n->ntasks && task_of(n, n->done_watermark)->done)
        n->done_watermark++;
}

static const char *reg_name(const strata__node *n, uint32_t handle)
{
    if (handle == 0)
        return "copy";   /* strata_submit_copy */
    const strata__registration *r = &n->regs[handle - 1];
    return r->kind == STRATA__REG_CHIP ? r->chip.name : r->kind == STRATA__REG_ORCH ? "orchestration function"
                                                                                    : "SUB function";
}

/* The first byte a contiguous view touches, and how many it touches. */
static uint64_t view_start(const strata_tensor *t)
{
    return t->addr + t->offset * strata_dtype_size(t->dtype);
}

static uint64_t view_bytes(const strata_tensor *t)
{
    uint64_t b = strata_dtype_size(t->dtype);
    for (uint32_t d = 0; d < t->ndims; d++)
        b *= t->shape[d];
    return b;
}

/* The remote child whose memory holds the buffer at addr, or NULL (this
   process's memory: a host buffer, or a local worker child's heap). */
static strata__child *remote_owner(strata__node *n, uint64_t addr)
{
    uint32_t i = strata__tmap_buffer_find(&n->buffers, addr);
    const strata__buffer *b = i == STRATA__NONE ? NULL : strata__tmap_buffer(&n->buffers, i);
    if (!b || b->kind != STRATA__BUFFER_CHIP)
        return NULL;
    strata__child *c = &n->children[b->owner_data];
    return c->kind == STRATA__CHILD_REMOTE ? c : NULL;
}

/* Post child c's part of copy task (tensors [dst, src]): receive into dst if
   dst is in its memory, else send src; the other end is another remote
   worker's rank, or this process (rank 0) with its local pointer. */
static void post_copy(strata__node *n, strata__child *c, const strata__node_task *task)
{
    const strata_tensor *dst = &task->tensors[0], *src = &task->tensors[1];
    strata__child *d = remote_owner(n, dst->addr), *s = remote_owner(n, src->addr);
    strata__request r = {.task = c->task, .cfg = &task->cfg, .nbytes = view_bytes(dst)};
    if (d == c && s == c) {   /* both ends in its memory: it copies (local: the destination there) */
        r.kind = STRATA__REQ_SEND_TO;
        r.value = view_start(src);
        r.peer = c->rank;
        r.local = (void *)(uintptr_t)view_start(dst);
    } else if (d == c) {      /* it receives from the other rank, or from this process */
        r.kind = STRATA__REQ_RECV_FROM;
        r.value = view_start(dst);
        r.peer = s ? s->rank : 0;
        r.local = s ? NULL : (void *)(uintptr_t)view_start(src);
    } else {                  /* it sends to the other rank, or to this process */
        r.kind = STRATA__REQ_SEND_TO;
        r.value = view_start(src);
        r.peer = d ? d->rank : 0;
        r.local = d ? NULL : (void *)(uintptr_t)view_start(dst);
    }
    strata__post(n, c, &r);
}

/* Tasks ready and not posted (for the trace's counter). */
static uint64_t ready_count(const strata__node *n)
{
    uint64_t k = (uint64_t)(n->sub_ready.tail - n->sub_ready.head) + (n->group_ready.tail - n->group_ready.head) +
                 (n->engine_ready.tail - n->engine_ready.head);
    for (uint32_t i = 0; n->chip_ready && i < n->nnext; i++)
        k += n->chip_ready[i].tail - n->chip_ready[i].head;
    return k;
}

/* Post member m of task t to child c. */
static void post(strata__node *n, strata__child *c, uint32_t t, uint32_t m)
{
    strata__node_task *task = task_of(n, t);
    const strata__node_member *mem = &task->members[m];
    strata_task_args a = {task->tensors + mem->first_tensor, task->tags + mem->first_tensor, mem->ntensors,
                          task->scalars + mem->first_scalar, mem->nscalars};
    c->busy = true;
    c->task = (uint64_t)t + 1;
    c->started_ns = strata__now_ns();
    c->timeout_ms = task->cfg.timeout_ms;
    if (n->traced) {
        strata__record(n, STRATA__REC_POST, (uint32_t)(c - n->children), strata__record_id(n, t), task->handle);
        strata__record(n, STRATA__REC_COUNTER, STRATA__COUNTER_READY, 0, ready_count(n));
    }
    if (task->kind == STRATA__REG_COPY) {
        post_copy(n, c, task);
        return;
    }
    strata__post(n, c, &(strata__request){.kind = STRATA__REQ_TASK, .handle = task->handle, .task = c->task,
                                          .run = n->run_id, .cfg = &task->cfg, .args = &a});
}

/* One member of task t finished (answered, or its child died): the task
   completes when its last member has, with the first member's failure. */
static void member_done(strata__node *n, uint32_t t, int status, const char *msg)
{
    strata__node_task *task = task_of(n, t);
    if (status != STRATA_OK && task->group_status == STRATA_OK) {
        task->group_status = status;
        task->group_message = strata__format("%s", msg ? msg : strata_status_name(status));
    }
    if (--task->remaining == 0)
        complete(n, t, task->group_status, task->group_message);
}

/* Children that can take task t's members now, one each, into picks[]; false
   when some target is busy. *dead is set when some target can never take it. */
static bool pick_children(strata__node *n, const strata__node_task *task, strata__child **picks, bool *dead)
{
    *dead = false;
    if (task->kind != STRATA__REG_SUB) {
        bool all = true;
        for (uint32_t m = 0; m < task->nmembers; m++) {
            strata__child *c = &n->children[task->members[m].target];
            *dead |= c->dead;
            all &= !c->dead && !c->busy;
            picks[m] = c;
        }
        return all && !*dead;
    }
    uint32_t found = 0, alive = 0;
    for (uint32_t k = n->nnext; k < n->nchildren; k++) {
        strata__child *c = &n->children[k];
        alive += !c->dead;
        if (!c->dead && !c->busy && found < task->nmembers)
            picks[found++] = c;
    }
    *dead = alive < task->nmembers;
    return found == task->nmembers;
}

static bool child_idle(const strata__child *c)
{
    return c->pid > 0 && !c->dead && !c->busy;
}

/* Complete task t without running it when it cannot run: cancelled (a producer
   failed, or the run did) or `dead_why` (its children are gone). Returns
   whether it did. */
static bool settle_unrunnable(strata__node *n, uint32_t t, bool failed, const char *dead_why)
{
    strata__node_task *task = task_of(n, t);
    if (task->poisoned || failed) {
        complete(n, t, STRATA_ECANCELED, NULL);
        return true;
    }
    if (dead_why) {
        char *msg = strata__format("task %u (%s) not run: %s", t + 1, reg_name(n, task->handle), dead_why);
        complete(n, t, STRATA_ECHILD, msg ? msg : "task not run: its child is dead");
        free(msg);
        return true;
    }
    return false;
}

/* Groups: each waits until all its children are idle at once. Returns whether
   some task completed (which may make others ready). */
static bool dispatch_groups(strata__node *n)
{
    strata__task_fifo *f = &n->group_ready;
    bool settled = false;
    uint32_t keep = f->head;
    strata__child *picks[256];
    for (uint32_t i = f->head; i != f->tail; i++) {
        uint32_t t = fifo_at(n, f, i);
        strata__node_task *task = task_of(n, t);
        bool failed = strata__failure_status(&n->failure) != 0;
        bool dead = false;
        bool can = !task->poisoned && !failed && pick_children(n, task, picks, &dead);
        if (!can && settle_unrunnable(n, t, failed, dead ? (task->kind == STRATA__REG_SUB
                                                                ? "too few SUB children are alive"
                                                                : "a child it targets is dead")
                                                         : NULL)) {
            settled = true;
            continue;
        }
        if (!can) {
            f->items[keep++ & (n->window - 1)] = t;   /* wait for its children */
            continue;
        }
        task->remaining = task->nmembers;
        for (uint32_t m = 0; m < task->nmembers; m++)
            post(n, picks[m], t, m);
    }
    f->tail = keep;
    return settled;
}

/* Tasks for one child each: an idle child takes the head of its FIFO. */
static bool dispatch_singles(strata__node *n)
{
    bool settled = false;
    for (uint32_t k = 0; k < n->nnext; k++) {
        strata__child *c = &n->children[k];
        strata__task_fifo *f = &n->chip_ready[k];
        while (f->head != f->tail) {
            uint32_t t = fifo_at(n, f, f->head);
            bool failed = strata__failure_status(&n->failure) != 0;
            if (settle_unrunnable(n, t, failed, c->dead ? "the child it targets is dead" : NULL)) {
                f->head++;
                settled = true;
                continue;
            }
            if (!child_idle(c))
                break;
            f->head++;
            task_of(n, t)->remaining = 1;
            post(n, c, t, 0);
        }
    }
    strata__task_fifo *f = &n->sub_ready;
    uint32_t next_sub = n->nnext, alive = 0;   /* deaths are noticed in pump(), not here */
    for (uint32_t k = n->nnext; k < n->nchildren; k++)
        alive += !n->children[k].dead;
    while (f->head != f->tail) {
        uint32_t t = fifo_at(n, f, f->head);
        bool failed = strata__failure_status(&n->failure) != 0;
        if (settle_unrunnable(n, t, failed, alive ? NULL : "too few SUB children are alive")) {
            f->head++;
            settled = true;
            continue;
        }
        while (next_sub < n->nchildren && !child_idle(&n->children[next_sub]))
            next_sub++;
        if (next_sub == n->nchildren)
            break;
        f->head++;
        task_of(n, t)->remaining = 1;
        post(n, &n->children[next_sub], t, 0);
    }
    return settled;
}

/* Post what is ready to idle children; cancel what cannot run. Completing a
   task that cannot run may make others ready, in any FIFO: so until stable. */
/* Copies with both ends in this process: made here, at once. */
static bool dispatch_engine(strata__node *n)
{
    strata__task_fifo *f = &n->engine_ready;
    bool settled = false;
    while (f->head != f->tail) {
        uint32_t t = fifo_at(n, f, f->head++);
        strata__node_task *task = task_of(n, t);
        settled = true;
        if (settle_unrunnable(n, t, strata__failure_status(&n->failure) != 0, NULL))
            continue;
        memmove((void *)(uintptr_t)view_start(&task->tensors[0]), (const void *)(uintptr_t)view_start(&task->tensors[1]),
                view_bytes(&task->tensors[0]));
        task->remaining = 1;
        member_done(n, t, STRATA_OK, NULL);
    }
    return settled;
}

static void dispatch(strata__node *n)
{
    for (;;) {
        bool settled = dispatch_engine(n);
        settled |= dispatch_groups(n);
        settled |= dispatch_singles(n);
        if (!settled)
            return;
    }
}

/* Remember a death of this run, for the run's message (every death is named,
   not only the first failure). */
static void note_death(strata__node *n, const char *msg)
{
    char *copy = strata__format("%s", msg);
    if (copy && STRATA__RESERVE(n->run_deaths, n->nrun_deaths, n->run_deaths_cap, 4, "the run's deaths") == STRATA_OK)
        n->run_deaths[n->nrun_deaths++] = copy;
    else
        free(copy);
}

/* The run failed with rc and this thread's message: add every death of the
   run that the message does not name yet, then forget them. */
static void name_every_death(strata__node *n, int rc)
{
    if (rc != STRATA_OK && n->nrun_deaths) {
        char *text = strata__format("%s", strata_last_error());
        for (uint32_t i = 0; text && i < n->nrun_deaths; i++) {
            if (strstr(text, n->run_deaths[i]))
                continue;
            char *more = strata__format("%s; also %s", text, n->run_deaths[i]);
            free(text);
            text = more;
        }
        if (text)
            strata__fail(rc, "%s", text);
        free(text);
    }
    for (uint32_t i = 0; i < n->nrun_deaths; i++)
        free(n->run_deaths[i]);
    n->nrun_deaths = 0;
}

/* Deal with children that died: the task member each held fails with its death. */
static void handle_deaths(strata__node *n)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!c->dead || c->death_reported)
            continue;
        c->death_reported = true;
        strata__record_death(n, c);   /* the flight recorder's summary joins its message */
        char *msg;
        if (c->task) {
            uint32_t t = (uint32_t)(c->task - 1);
            strata__record(n, STRATA__REC_ANSWER, i, strata__record_id(n, t), (uint64_t)(int64_t)c->death_status);
            msg = strata__format("%s while running task %u (%s)%s", c->death_message ? c->death_message : "a child died",
                                 t + 1, reg_name(n, task_of(n, t)->handle), c->death_record ? c->death_record : "");
            c->task = 0;
            note_death(n, msg ? msg : "a child died while running a task");
            member_done(n, t, c->death_status, msg ? msg : "a child died while running a task");
        } else {
            msg = strata__format("%s while idle%s", c->death_message ? c->death_message : "a child died",
                                 c->death_record ? c->death_record : "");
            note_death(n, msg ? msg : "a child died while idle");
            run_fail(n, STRATA_ECHILD, msg ? msg : "a child died while idle");
        }
        free(msg);
    }
}

/* Ask the application's interrupt check (core/hooks.h) whether to stop the run:
   each time the run would sleep, and every STRATA__INTERRUPT_POLL_NS while it
   keeps busy. A stop fails the run with STRATA_EINTR (which cancels what has
   not started) and gives the running tasks close_grace_ms. */
static void poll_interrupt(strata__node *n, bool about_to_sleep)
{
    if (n->hooks.interrupted == NULL || n->stop_by_ns != 0)
        return;
    uint64_t now = strata__now_ns();
    if (!about_to_sleep && now - n->interrupt_checked_ns < STRATA__INTERRUPT_POLL_NS)
        return;
    n->interrupt_checked_ns = now;
    int r = n->hooks.interrupted(n->hooks.ctx);
    if (r == 0)
        return;
    n->stop_by_ns = now + (uint64_t)n->cfg.close_grace_ms * 1000000u + 1;
    strata__failure_set(&n->failure, STRATA_EINTR, "the run was interrupted: the application's interrupt check "
                        "(strata_set_hooks) returned %d; tasks not started were cancelled, and tasks running "
                        "were given close_grace_ms (%u ms) to finish", r, n->cfg.close_grace_ms);
}

/* How long child c's task may run before c is killed (its timeout_ms set). A
   child that runs a whole worker gets close_grace_ms more: that worker's run
   ends its own stuck tasks at the timeout and answers, naming them. */
static uint64_t kill_after_ns(const strata__node *n, const strata__child *c)
{
    uint64_t limit = (uint64_t)c->timeout_ms * 1000000u;
    if (c->kind == STRATA__CHILD_WORKER || c->kind == STRATA__CHILD_REMOTE)
        limit += (uint64_t)n->cfg.close_grace_ms * 1000000u;
    return limit;
}

/* Kill children whose task passed its timeout, or the end an interrupted run
   gave it; whether it killed any. */
static bool check_timeouts(strata__node *n)
{
    bool killed = false;
    uint64_t now = strata__now_ns();
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!c->busy || c->dead)
            continue;
        bool late = c->timeout_ms && now - c->started_ns > kill_after_ns(n, c);
        bool stopped = n->stop_by_ns && now > n->stop_by_ns;
        bool above = n->deadline_ns && now > n->deadline_ns;
        if (!late && !stopped && !above)
            continue;
        char name[96];
        strata__child_name(c, name, sizeof name);
        char *why = late ? strata__format("%s was killed by Strata: its task ran past its timeout of %u ms", name,
                                          c->timeout_ms)
                    : above ? strata__format("%s was killed by Strata: its task was still running when the task of "
                                             "the level above that started this run reached its timeout", name)
                         : strata__format("%s was killed by Strata: the run was interrupted and its task did not "
                                          "finish within close_grace_ms (%u ms)", name, n->cfg.close_grace_ms);
        strata__kill(n, c, why ? why : "a child was killed: its task passed its timeout");
        free(why);
        killed = true;
    }
    return killed;
}

/* Collect answers, deaths and timeouts; post what became ready. When nothing
   happened and `block`, sleep until something does. */
static void pump(strata__node *n, bool block)
{
    bool progress = false;
    uint64_t answered_ns = 0;
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!c->busy || c->dead || !strata__answered(n, c))
            continue;
        uint32_t t = (uint32_t)(c->task - 1);
        if (!answered_ns)
            answered_ns = strata__now_ns();   /* once per pass, for every answer found in it */
        uint64_t took = answered_ns - c->started_ns;
        c->stat_tasks++;
        c->stat_busy_ns += took;
        if (took > n->cur_longest_ns) {
            n->cur_longest_ns = took;
            n->cur_longest_task = c->task;
        }
        c->busy = false;
        c->task = 0;
        strata__reply reply;
        strata__reply_of(n, c, &reply);
        strata__record(n, STRATA__REC_ANSWER, i, strata__record_id(n, t), (uint64_t)(int64_t)reply.status);
        char *msg = NULL;
        if (reply.status != STRATA_OK) {
            char name[96];
            msg = strata__format("%s: %.*s", strata__child_name(c, name, sizeof name), (int)reply.message_len,
                                 reply.message);
        }
        member_done(n, t, reply.status, msg ? msg : "a task failed in a child");
        free(msg);
        progress = true;
    }
    /* Reaping costs a waitpid per child: only after a sleep (a death wakes the
       sleep through its pidfd) or when a child has no pidfd. */
    if (n->check_deaths) {
        n->check_deaths = false;
        if (strata__reap(n)) {
            handle_deaths(n);
            progress = true;
        }
    }
    /* A child killed for its timeout is a death to handle now: the run must
       not sleep past a deadline it has already met. */
    progress |= check_timeouts(n);
    handle_deaths(n);
    poll_interrupt(n, false);
    dispatch(n);
    if (progress || !block)
        return;
    poll_interrupt(n, true);
    dispatch(n);   /* an interrupt cancels what waits */
    uint32_t timeout_ms = STRATA__NODE_SLEEP_MAX_MS;
    uint64_t now = strata__now_ns();
    if (n->stop_by_ns) {
        uint32_t left = n->stop_by_ns > now ? (uint32_t)((n->stop_by_ns - now) / 1000000u) + 1 : 1;
        timeout_ms = left < timeout_ms ? left : timeout_ms;
    }
    if (n->deadline_ns) {
        uint32_t left = n->deadline_ns > now ? (uint32_t)((n->deadline_ns - now) / 1000000u) + 1 : 1;
        timeout_ms = left < timeout_ms ? left : timeout_ms;
    }
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!c->busy || c->dead || !c->timeout_ms)
            continue;
        uint64_t end = c->started_ns + kill_after_ns(n, c);
        uint32_t left = end > now ? (uint32_t)((end - now) / 1000000u) + 1 : 1;
        timeout_ms = left < timeout_ms ? left : timeout_ms;
    }
    if (n->traced) {
        /* a traced run drains the rings while it waits, at least every
           STRATA__TRACE_DRAIN_MS, so a long task's kernels do not lap them */
        strata__record_drain(n, false);
        timeout_ms = timeout_ms < STRATA__TRACE_DRAIN_MS ? timeout_ms : STRATA__TRACE_DRAIN_MS;
    }
    strata__sleep(n, timeout_ms);
}

/* ---- submit ---- */

typedef struct link_ctx {
    strata__node *n;
    uint32_t      t;
} link_ctx;

static int link_dep(void *arg, uint64_t producer, uint32_t unused_slot)
{
    (void)unused_slot;   /* a task's slot follows from its id here */
    link_ctx *ctx = arg;
    strata__node *n = ctx->n;
    /* producer >= done_watermark + 1 (the TensorMap skips older ids), so its
       slot still holds it */
    strata__node_task *p = task_of(n, (uint32_t)(producer - 1)), *t = task_of(n, ctx->t);
    if (p->done) {
        if (p->status != STRATA_OK)
            t->poisoned = true;
        return STRATA_OK;
    }
    if (p->last_succ == ctx->t + 1)
        return STRATA_OK;   /* already linked through another tensor */
    p->last_succ = ctx->t + 1;
    uint32_t e = n->free_edge;
    if (e != STRATA__NONE) {
        n->free_edge = n->edges[e].next;
    } else {
        int rc = STRATA__RESERVE(n->edges, n->nedges, n->edges_cap, 256, "the run's dependency edges");
        if (rc)
            return rc;
        e = n->nedges++;
    }
    n->edges[e] = (strata__node_edge){.succ = ctx->t, .next = p->succ};
    p->succ = e;
    t->pending++;
    return STRATA_OK;
}

static int check_submit(strata_orch *o, const char *call)
{
    if (o == NULL || o->node == NULL || !o->node->running)
        return strata__fail(STRATA_EINVAL, "%s: o is not the handle of a running orchestration function", call);
    if (strata__failure_status(&o->node->failure) != 0)
        return strata__fail(STRATA_ECANCELED, "%s: not done because this run already failed (%s); the run returns "
                            "that first failure", call, strata_status_name(strata__failure_status(&o->node->failure)));
    return STRATA_OK;
}

/* A failure inside the orchestration function fails the run. */
static int orch_fail(strata__node *n, int status)
{
    strata__failure_set_from_error(&n->failure, status);
    return status;
}

/* Check member m's arguments and find the buffer of each tensor, which must lie
   in memory its target sees. */
static int check_member(strata__node *n, const char *call, uint32_t m, uint32_t nmembers, strata__reg_kind kind,
                        const strata_task_args *args, int worker, strata__extent *ext, uint32_t *buf)
{
    char who[48] = "";
    if (nmembers > 1)
        snprintf(who, sizeof who, " member %u", m);
    int rc = strata__task_args_check(args, STRATA_MAX_TASK_TENSORS, STRATA_MAX_TASK_SCALARS, ext);
    if (rc)
        return strata__error_prefix(rc, "%s%s", call, who);
    for (uint32_t i = 0; args && i < args->ntensors; i++) {
        const strata_tensor *t = &args->tensors[i];
        buf[i] = strata__tmap_buffer_find(&n->buffers, t->addr);
        strata__buffer *b = buf[i] == STRATA__NONE ? NULL : strata__tmap_buffer(&n->buffers, buf[i]);
        if (!b && strata__node_lost_buffer_owner(n, t->addr)) {
            char what[128];
            snprintf(what, sizeof what, "%s%s: tensor %u", call, who, i);
            return strata__node_no_chip_buffer(n, what, t->addr);
        }
        if (!b && n->ninherited && strata__node_inherited_buffer(n, t->addr, t->nbytes, &buf[i]))
            b = strata__tmap_buffer(&n->buffers, buf[i]);
        if (!b)
            return strata__fail(STRATA_EINVAL, "%s%s: tensor %u: addr 0x%llx is not the base of a buffer the children "
                                "can see; use memory from strata_worker_host_alloc (shared host heap) or "
                                "strata_worker_malloc (%s memory)", call, who, i, (unsigned long long)t->addr,
                                n->level == 3 ? "chip" : "a worker child's");
        if (t->nbytes > b->nbytes)
            return strata__fail(STRATA_EINVAL, "%s%s: tensor %u says its buffer at 0x%llx holds %llu bytes, but it "
                                "holds %llu", call, who, i, (unsigned long long)t->addr,
                                (unsigned long long)t->nbytes, (unsigned long long)b->nbytes);
        if (kind == STRATA__REG_COPY)
            continue;   /* a copy's ends are checked by strata_submit_copy */
        if (b->kind != STRATA__BUFFER_CHIP && kind != STRATA__REG_SUB &&
            n->children[worker].kind == STRATA__CHILD_REMOTE)
            return strata__fail(STRATA_EINVAL, "%s%s: tensor %u lies in this worker's host memory, which remote worker "
                                "%d (rank %d) cannot see; allocate the buffer on it (strata_worker_malloc with worker "
                                "%d) and move data with strata_worker_copy_to or a copy task", call, who, i, worker,
                                n->children[worker].rank, worker);
        if (b->kind == STRATA__BUFFER_CHIP && (kind == STRATA__REG_SUB || (int)b->owner_data != worker))
            return strata__fail(STRATA_EINVAL, "%s%s: tensor %u lies in the memory of %s %d, which %s cannot "
                                "see", call, who, i, n->level == 3 ? "chip worker" : "worker", (int)b->owner_data,
                                kind == STRATA__REG_SUB ? "a SUB worker"
                                : n->level == 3         ? "the target chip"
                                                        : "the target worker");
    }
    if (strata__wire_size(args) > STRATA__MAILBOX_ARGS)
        return strata__fail(STRATA_EINVAL, "%s%s: the arguments take %zu bytes encoded; a mailbox holds %u", call,
                            who, strata__wire_size(args), STRATA__MAILBOX_ARGS);
    return STRATA_OK;
}

/* Check the targets of a submit: next-level workers that exist, distinct within a
   group; enough SUB workers for a SUB group. */
static int check_targets(strata__node *n, const char *call, strata__reg_kind kind, uint32_t count,
                         const int *workers)
{
    if (kind == STRATA__REG_SUB) {
        uint32_t nsubs = n->nchildren - n->nnext;
        if (nsubs == 0)
            return strata__fail(STRATA_ENOENT, "%s: this worker has no SUB workers (num_sub_workers is 0)", call);
        if (count > nsubs)
            return strata__fail(STRATA_EINVAL, "%s: a group of %u members needs as many SUB workers at once; this "
                                "worker has %u", call, count, nsubs);
        return STRATA_OK;
    }
    for (uint32_t m = 0; m < count; m++) {
        int worker = workers[m];
        if (worker < 0 || (uint32_t)worker >= n->nnext)
            return strata__fail(STRATA_ENOENT, "%s: worker %d is not a %s of this level-%d worker (%u %ss: 0..%d)",
                                call, worker, next_word(n), n->level, n->nnext, next_word(n), (int)n->nnext - 1);
        for (uint32_t k = 0; k < m; k++)
            if (workers[k] == worker)
                return strata__fail(STRATA_EINVAL, "%s: members %u and %u both target %s worker %d; the members of "
                                    "a group start together, one per %s", call, k, m, next_word(n), worker,
                                    next_word(n));
    }
    return STRATA_OK;
}

/* Submit a task of `count` members (1 for a single task): args[m] and, for
   chips, workers[m]. */
static int submit(strata_orch *o, const char *call, strata__reg_kind kind, strata_handle h,
                  const strata_task_args *args, uint32_t count, const strata_call_config *cfg, const int *workers)
{
    strata__clear_error();
    int rc = check_submit(o, call);
    if (rc)
        return rc;
    strata__node *n = o->node;
    if (kind != STRATA__REG_SUB && kind != STRATA__REG_COPY)
        kind = next_kind(n);
    if (count == 0 || (count > 1 && args == NULL) || (kind != STRATA__REG_SUB && workers == NULL))
        return orch_fail(n, strata__fail(STRATA_EINVAL, "%s: %s", call,
                                         count == 0 ? "a group needs at least one member"
                                         : workers == NULL && kind != STRATA__REG_SUB ? "workers is NULL"
                                                                                      : "args is NULL"));
    if (count > 256)
        return orch_fail(n, strata__fail(STRATA_EINVAL, "%s: a group of %u members; at most 256", call, count));
    if (kind != STRATA__REG_COPY && (h == STRATA_HANDLE_INVALID || h > n->nregs || n->regs[h - 1].kind != kind))
        return orch_fail(n, strata__fail(STRATA_ENOENT, "%s: handle %u is not %s registered on this worker", call,
                                         h, kind == STRATA__REG_CHIP   ? "a chip callable"
                                            : kind == STRATA__REG_ORCH ? "an orchestration function "
                                                                         "(strata_worker_register_orch)"
                                                                       : "a SUB function"));
    rc = kind == STRATA__REG_COPY ? STRATA_OK : check_targets(n, call, kind, count, workers);   /* copy: checked */
    if (rc)
        return orch_fail(n, rc);

    /* Members' arrays, concatenated. */
    uint32_t nt = 0, ns = 0;
    for (uint32_t m = 0; m < count; m++) {
        const strata_task_args *a = args ? &args[m] : NULL;
        if (a && a->ntensors > STRATA_MAX_TASK_TENSORS)
            return orch_fail(n, strata__fail(STRATA_EINVAL, "%s: %u tensors given; a task takes at most %u", call,
                                             a->ntensors, STRATA_MAX_TASK_TENSORS));
        nt += a ? a->ntensors : 0;
        ns += a ? a->nscalars : 0;
    }
    /* Scratch for the check: on the stack for the usual few tensors. */
    strata__extent ext_small[8];
    uint32_t buf_small[8];
    bool small = nt <= 8;
    strata__extent *ext = small ? ext_small : strata__malloc(nt * sizeof ext[0]);
    uint32_t *buf = small ? buf_small : strata__malloc(nt * sizeof buf[0]);
    if (!ext || !buf)
        rc = strata__fail(STRATA_ENOMEM, "%s: out of host memory", call);
    for (uint32_t m = 0, at = 0; rc == STRATA_OK && m < count; m++) {
        const strata_task_args *a = args ? &args[m] : NULL;
        rc = check_member(n, call, m, count, kind, a, workers ? workers[m] : -1, ext + at, buf + at);
        at += a ? a->ntensors : 0;
    }
    /* Back-pressure: a full window waits until its oldest task is done. The
       tasks in it always finish (children run them, or die and fail them), so
       this wait always ends. */
    if (rc == STRATA_OK && n->ntasks - n->done_watermark >= n->window) {
        strata__record(n, STRATA__REC_WAIT_BEGIN, 0, n->ntasks, STRATA__COUNTER_TASK_WINDOW);
        while (n->ntasks - n->done_watermark >= n->window)
            pump(n, true);
        strata__record(n, STRATA__REC_WAIT_END, 0, n->ntasks, STRATA__COUNTER_TASK_WINDOW);
    }
    uint32_t t = n->ntasks;
    strata__node_task *task = NULL;
    if (rc == STRATA_OK) {
        task = task_of(n, t);
        free(task->group_message);
        void *keep_block = task->block;
        size_t keep_bytes = task->block_bytes;
        memset(task, 0, sizeof *task);
        task->block = keep_block;
        task->block_bytes = keep_bytes;
        task->kind = kind;
        task->handle = h;
        task->cfg = cfg ? *cfg : *o->run_cfg;
        if (cfg && cfg->timeout_ms == 0)
            task->cfg.timeout_ms = o->run_cfg->timeout_ms;
        if (task->cfg.timeout_ms == 0)
            task->cfg.timeout_ms = n->cfg.task_timeout_ms;   /* the worker's default */
        task->succ = STRATA__NONE;
        task->nmembers = count;
        task->ntensors = nt;
        task->nscalars = ns;
        /* One block, the slot's own (grown when a task needs more), widest
           alignment first: tensors and scalars (8), then members and tags (4). */
        size_t bytes = nt * sizeof task->tensors[0] + ns * sizeof task->scalars[0] +
                       count * sizeof task->members[0] + nt * sizeof task->tags[0];
        if (bytes > task->block_bytes) {
            size_t want = bytes < 512 ? 512 : bytes;
            void *grown = strata__realloc(task->block, want);
            if (grown) {
                task->block = grown;
                task->block_bytes = want;
            }
        }
        unsigned char *block = bytes <= task->block_bytes ? task->block : NULL;
        if (!block) {
            task = NULL;
            rc = strata__fail(STRATA_ENOMEM, "%s: out of host memory for a task's copy of its arguments (%zu bytes)",
                              call, bytes);
        } else {
            task->tensors = nt ? (strata_tensor *)block : NULL;
            block += nt * sizeof task->tensors[0];
            task->scalars = ns ? (uint64_t *)block : NULL;
            block += ns * sizeof task->scalars[0];
            task->members = (strata__node_member *)block;
            block += count * sizeof task->members[0];
            task->tags = nt ? (strata_tag *)block : NULL;
            uint32_t ft = 0, fs = 0;
            for (uint32_t m = 0; m < count; m++) {
                const strata_task_args *a = args ? &args[m] : NULL;
                uint32_t mt = a ? a->ntensors : 0, ms = a ? a->nscalars : 0;
                task->members[m] = (strata__node_member){kind != STRATA__REG_SUB ? workers[m] : -1, ft, mt, fs, ms};
                if (mt) {
                    memcpy(task->tensors + ft, a->tensors, mt * sizeof task->tensors[0]);
                    memcpy(task->tags + ft, a->tags, mt * sizeof task->tags[0]);
                }
                if (ms)
                    memcpy(task->scalars + fs, a->scalars, ms * sizeof task->scalars[0]);
                ft += mt;
                fs += ms;
            }
            n->ntasks++;
            if (n->ntasks - n->done_watermark > n->window_high_water)
                n->window_high_water = n->ntasks - n->done_watermark;
            if (n->traced) {
                strata__record(n, STRATA__REC_SUBMIT, kind != STRATA__REG_SUB ? (uint32_t)workers[0] + 1 : 0,
                               strata__record_id(n, t), h);
                strata__record(n, STRATA__REC_COUNTER, STRATA__COUNTER_TASK_WINDOW, 0, n->ntasks - n->done_watermark);
            }
        }
    }
    /* The task reads and writes the union of its members' tensors. */
    link_ctx lc = {n, t};
    /* one ring: the same watermark whatever a task id's low bits say */
    uint64_t w = (uint64_t)n->done_watermark + 1;
    const uint64_t live_from[4] = {w, w, w, w};
    for (uint32_t i = 0; rc == STRATA_OK && i < nt; i++) {
        strata_tag tag = task->tags[i];
        if (tag == STRATA_NO_DEP)
            continue;
        rc = strata__tmap_access(&n->buffers, buf[i], (uint64_t)t + 1, 0, &task->tensors[i], &ext[i],
                                 strata__tag_reads(tag), strata__tag_writes(tag), live_from, link_dep, &lc);
    }
    if (!small) {
        free(ext);
        free(buf);
    }
    if (rc) {
        if (task) {
            /* linked to producers that are still running: it must wait for them
               to keep the counts right, then it is cancelled without running */
            task->poisoned = true;
            if (task->pending == 0)
                push_ready(n, t);
        }
        return orch_fail(n, rc);
    }
    if (task->pending == 0)
        push_ready(n, t);
    pump(n, false);
    return STRATA_OK;
}

int strata_submit_next_level(strata_orch *o, strata_handle h, const strata_task_args *args,
                             const strata_call_config *cfg, int worker)
{
    return submit(o, "strata_submit_next_level", STRATA__REG_CHIP, h, args, 1, cfg, &worker);
}

int strata_submit_next_level_group(strata_orch *o, strata_handle h, const strata_task_args *args, uint32_t n,
                                   const strata_call_config *cfg, const int *workers)
{
    return submit(o, "strata_submit_next_level_group", STRATA__REG_CHIP, h, args, n, cfg, workers);
}

int strata_submit_sub(strata_orch *o, strata_handle h, const strata_task_args *args)
{
    return submit(o, "strata_submit_sub", STRATA__REG_SUB, h, args, 1, NULL, NULL);
}

int strata_submit_sub_group(strata_orch *o, strata_handle h, const strata_task_args *args, uint32_t n)
{
    return submit(o, "strata_submit_sub_group", STRATA__REG_SUB, h, args, n, NULL, NULL);
}

/* One end of a copy: a contiguous view of a buffer this worker knows. */
static int copy_end(strata__node *n, const strata_tensor *t, const char *which)
{
    if (t == NULL)
        return strata__fail(STRATA_EINVAL, "strata_submit_copy: %s is NULL", which);
    strata__extent ext;
    int rc = strata__tensor_check(t, 0, &ext);
    if (rc)
        return strata__error_prefix(rc, "strata_submit_copy: %s", which);
    /* row-major and contiguous: strides all 0, or each the product of the
       dimensions after it, so bytes and elements come in the same order */
    uint64_t step = 1;
    bool row_major = true, given = false;
    for (uint32_t d = t->ndims; d-- > 0;) {
        given |= t->strides[d] != 0;
        row_major &= (uint64_t)t->strides[d] == step;
        step *= t->shape[d];
    }
    if (given && !row_major)
        return strata__fail(STRATA_EINVAL, "strata_submit_copy: %s is not a contiguous row-major view; a copy moves "
                            "contiguous bytes (copy each row, or make the view contiguous)", which);
    uint32_t i = strata__tmap_buffer_find(&n->buffers, t->addr);
    if (i == STRATA__NONE && !(n->ninherited && strata__node_inherited_buffer(n, t->addr, t->nbytes, &i)))
        return strata__fail(STRATA_EINVAL, "strata_submit_copy: %s: addr 0x%llx is not the base of a buffer of this "
                            "worker or of a worker below it (strata_worker_host_alloc, strata_worker_malloc)", which,
                            (unsigned long long)t->addr);
    const strata__buffer *b = strata__tmap_buffer(&n->buffers, i);
    if (b->kind == STRATA__BUFFER_CHIP && n->children[b->owner_data].kind == STRATA__CHILD_CHIP)
        return strata__fail(STRATA_EINVAL, "strata_submit_copy: %s lies in a chip's memory; copies move data between "
                            "workers of levels 3 and up (a chip task moves it on its chip)", which);
    return STRATA_OK;
}

int strata_submit_copy(strata_orch *o, const strata_tensor *dst, const strata_tensor *src)
{
    strata__clear_error();
    int rc = check_submit(o, "strata_submit_copy");
    if (rc)
        return rc;
    strata__node *n = o->node;
    if ((rc = copy_end(n, dst, "dst")) || (rc = copy_end(n, src, "src")))
        return orch_fail(n, rc);
    if (view_bytes(dst) != view_bytes(src))
        return orch_fail(n, strata__fail(STRATA_EINVAL, "strata_submit_copy: dst's view holds %llu bytes and src's "
                                         "%llu; a copy moves as many as it takes", (unsigned long long)view_bytes(dst),
                                         (unsigned long long)view_bytes(src)));
    /* The remote workers holding an end take part; both ends here: the engine. */
    strata__child *d = remote_owner(n, dst->addr), *s = remote_owner(n, src->addr);
    int workers[2];
    uint32_t count = 0;
    if (d)
        workers[count++] = d->worker;
    if (s && s != d)
        workers[count++] = s->worker;
    if (count == 0)
        workers[count++] = -1;
    strata_tensor ts[2] = {*dst, *src};
    strata_tag tags[2] = {STRATA_OUTPUT, STRATA_INPUT};
    strata_task_args a[2] = {{ts, tags, 2, NULL, 0}, {ts, tags, 2, NULL, 0}};
    return submit(o, "strata_submit_copy", STRATA__REG_COPY, 0, a, count, NULL, workers);
}

int strata_orch_scope_begin(strata_orch *o)
{
    strata__clear_error();
    if (o == NULL || o->node == NULL || !o->node->running)
        return strata__fail(STRATA_EINVAL, "strata_orch_scope_begin: o is not the handle of a running "
                            "orchestration function");
    o->node->nscopes++;
    return STRATA_OK;
}

int strata_orch_scope_end(strata_orch *o)
{
    strata__clear_error();
    if (o == NULL || o->node == NULL || !o->node->running)
        return strata__fail(STRATA_EINVAL, "strata_orch_scope_end: o is not the handle of a running "
                            "orchestration function");
    if (o->node->nscopes == 0)
        return orch_fail(o->node, strata__fail(STRATA_EINVAL, "strata_orch_scope_end without a matching "
                                               "strata_orch_scope_begin"));
    o->node->nscopes--;
    return STRATA_OK;
}

/* ---- runs ---- */

static void reset_run(strata__node *n)
{
    for (uint32_t i = 0; i < n->window && i < n->ntasks; i++) {
        free(n->tasks[i].group_message);
        n->tasks[i].group_message = NULL;
    }
    /* Every access of this run is stale for the next one: no dependency crosses
       runs. Entries are dropped lazily (task ids restart at 1, so drop them now). */
    strata__tmap_forget_accesses(&n->buffers);
    n->ntasks = n->nedges = 0;
    n->free_edge = STRATA__NONE;
    for (uint32_t k = 0; n->chip_ready && k < n->nnext; k++)
        n->chip_ready[k].head = n->chip_ready[k].tail = 0;
    n->sub_ready.head = n->sub_ready.tail = 0;
    n->group_ready.head = n->group_ready.tail = 0;
    n->done_count = n->done_watermark = 0;
    n->nscopes = 0;
}

int strata__node_run(strata__node *n, strata_worker *w, strata_orch_fn orch, void *ctx,
                     const strata_task_args *args, const strata_call_config *cfg)
{
    (void)w;
    static const strata_call_config zero_cfg;
    if (n->tasks == NULL) {
        int rc = strata__node_make_window(n);
        if (rc)
            return rc;
    }
    n->window_high_water = 0;
    n->cur_longest_ns = n->cur_longest_task = 0;   /* published as run_* when the run ends */
    n->hooks = strata__hooks_get();
    strata__failure_reset(&n->failure);
    /* Children that died between runs (the spawner's death included): this run
       reports every one of them, in one message, and starts nothing. */
    n->check_spawner = true;
    strata__reap(n);
    char *report = NULL;
    int status = STRATA_OK;
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!c->dead || c->death_reported)
            continue;
        c->death_reported = true;
        strata__record_death(n, c);
        status = status ? status : (c->death_status ? c->death_status : STRATA_ECHILD);
        char *more = strata__format("%s%s%s%s", report ? report : "", report ? "; " : "",
                                    c->death_message ? c->death_message : "a child died",
                                    c->death_record ? c->death_record : "");
        free(report);
        report = more;
    }
    if (status) {
        bool restart = n->cfg.on_child_death == STRATA_ON_DEATH_RESTART;
        int rrc = recover_waiting(n);
        strata__fail(status, "%s (between runs); %s", report ? report : "a child died",
                     !restart ? "the worker is FAILED (policy STRATA_ON_DEATH_FAIL); close it"
                     : rrc ? "it could not be replaced yet; the next run tries again"
                           : "it was replaced and the next run will use the new child");
        free(report);
        return status;
    }
    n->running = true;
    strata__record_run_begin(n, cfg ? cfg : &zero_cfg);
    n->check_deaths = true;
    n->stop_by_ns = 0;
    /* one clock read for the interrupt poll's start and the run's figures: the
       run is timed from here (its checks before are a few loads) */
    uint64_t run_from = n->interrupt_checked_ns = strata__now_ns();
    strata_orch o = {.node = n, .run_cfg = cfg ? cfg : &zero_cfg};
    int orc = orch(&o, args, o.run_cfg, ctx);
    uint64_t orch_ns = strata__now_ns() - run_from;   /* its submits' waits for room included */
    if (orc == STRATA_EINTR && n->stop_by_ns == 0)   /* the orchestration function was interrupted */
        n->stop_by_ns = strata__now_ns() + (uint64_t)n->cfg.close_grace_ms * 1000000u + 1;
    if (orc != 0) {
        /* what it said (strata_task_error), or the failed call it returned after */
        char *why = strata_last_error()[0] ? strata__format(": %s", strata_last_error()) : NULL;
        if (orc < 0 && strata__is_status(orc))
            strata__failure_set(&n->failure, orc, "the orchestration function returned %d (%s)%s", orc,
                                strata_status_name(orc), why ? why : "");
        else
            strata__failure_set(&n->failure, STRATA_ETASK, "the orchestration function returned %d; it must return "
                                "0 or a negative strata_status%s", orc, why ? why : "");
        free(why);
    }
    while (n->done_count < n->ntasks)
        pump(n, true);
    strata__record_run_end(n);
    n->running = false;
    n->run_tasks = n->ntasks;   /* the run is over: its figures replace the last one's */
    n->run_wall_ns = strata__now_ns() - run_from;
    n->run_orch_ns = orch_ns;
    n->run_longest_ns = n->cur_longest_ns;
    n->run_longest_task = n->cur_longest_task;
    reset_run(n);
    int rc = strata__failure_raise(&n->failure);
    if (rc == STRATA_OK)
        strata__clear_error();
    name_every_death(n, rc);
    /* Children that died during the run were reported by it: replace them now,
       so the next run works (or mark the worker FAILED). */
    bool any_dead = false;
    for (uint32_t i = 0; i < n->nchildren; i++)
        any_dead |= n->children[i].dead;
    if (any_dead) {
        char *saved = rc ? strata__format("%s", strata_last_error()) : NULL;
        recover_waiting(n);
        if (saved) {
            strata__fail(rc, "%s", saved);
            free(saved);
        }
    }
    return rc;
}
