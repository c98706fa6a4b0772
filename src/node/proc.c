/* The process transport (node/transport.h): children that are processes of this
 * host, each with a mailbox in shared memory (ipc/mailbox.h), forked, signalled
 * and reaped by the worker's spawner (spawner.c). A request is encoded into the
 * child's frame and published by its sequence number; the answer is the frame's
 * status, message and value once the child has published the same number. The
 * rest of the transport is in the files it shares with the spawner and the
 * child's side: start.c (a child's start), reaper.c (deaths, kills, signals),
 * sleep.c (the driving thread's wait). */
#include "node/transport.h"

#include <stdio.h>

#include "core/sys.h"
#include "ipc/shm.h"
#include "ipc/wire.h"
#include "node/record.h"

/* The process transport's children of n. */
static bool ours(const strata__child *c)
{
    return c->tp == &strata__proc_transport;
}

/* Release chip child c's memory here (the platform device over it first). */
static void release_memory(const strata__node *n, strata__child *c)
{
    if (c->resident)
        n->platform->close(c->resident);   /* over our mapping: it unmaps nothing */
    c->resident = NULL;
    strata__shm_unmap(c->memory, c->memory_bytes);
    c->memory = NULL;
}

/* Every mapping of every child, made under the list's lock (a spawner forked
   meanwhile sees all of them or none), then the spawner: every mapping a
   child needs exists before the fork that will make it (fork ordering,
   lifecycle.c). */
static void proc_close(strata__node *n, bool kill_them);

static int proc_open(strata__node *n)
{
    strata__node_live_lock();
    n->mail_bytes = sizeof(strata__mailbox_header) + (uint64_t)n->nchildren * sizeof(strata__mailbox);
    int rc = strata__shm_map(n->mail_bytes, "the children's mailboxes", &n->mail);
    if (rc == STRATA_OK) {
        n->header = n->mail;
        strata__mailbox *boxes = (strata__mailbox *)(void *)((uint8_t *)n->mail + sizeof(strata__mailbox_header));
        for (uint32_t i = 0; i < n->nchildren; i++)
            n->children[i].mb = &boxes[i];
        rc = strata__record_map_children(n);
    }
    for (uint32_t i = 0; rc == STRATA_OK && i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (!ours(c) || c->kind != STRATA__CHILD_CHIP)
            continue;
        char what[64];
        snprintf(what, sizeof what, "the memory of chip %d (device_memory_bytes)", c->device_id);
        c->memory_bytes = n->cfg.device_memory_bytes;
        rc = strata__shm_map(c->memory_bytes, what, (void **)&c->memory);
        /* the lower half is the chip child's own; the upper half holds the
           buffers the parent allocates and copies through the platform */
        if (rc == STRATA_OK)
            rc = n->platform->open(c->device_id, c->memory_bytes / 2, c->memory + c->memory_bytes / 2,
                                   &c->resident);
    }
    strata__node_live_unlock();
    if (rc == STRATA_OK)
        rc = strata__spawner_start(n);
    if (rc)
        proc_close(n, true);
    return rc;
}

/* Undo proc_open: the spawner ended and reaped with every child (kill_them),
   or, in a process that is not the parent, only this process's copies of its
   descriptors dropped; then every mapping. */
static void proc_close(strata__node *n, bool kill_them)
{
    if (kill_them)
        strata__spawner_stop(n, strata__now_ns() + (uint64_t)n->cfg.close_grace_ms * 1000000u + 1000000000u);
    else
        strata__spawner_forget(n);
    strata__node_live_lock();
    for (uint32_t i = 0; i < n->nchildren; i++) {
        release_memory(n, &n->children[i]);
        n->children[i].mb = NULL;
    }
    strata__shm_unmap(n->mail, n->mail_bytes);
    n->mail = NULL;
    n->header = NULL;
    strata__record_unmap_children(n);
    strata__node_live_unlock();
}

static void proc_post(strata__node *n, strata__child *c, const strata__request *r)
{
    (void)n;
    strata__mailbox *mb = c->mb;
    size_t len = 0;
    if (r->kind == STRATA__REQ_TASK) {
        /* fits: checked at submit */
        (void)strata__wire_encode(r->args, mb->args, sizeof mb->args, &len);
        mb->handle = r->handle;
        mb->task = r->task;
        mb->run = r->run;
        mb->cfg = *r->cfg;
    } else if (r->kind == STRATA__REQ_REGISTER) {
        (void)strata__reg_frame_encode(r->reg, mb->args, &len);   /* fits: checked at register */
    }
    mb->kind = r->kind;
    mb->value = r->value;
    mb->args_len = (uint32_t)len;
    strata__mailbox_post(mb, ++c->seq);
}

static bool proc_answered(strata__node *n, strata__child *c)
{
    (void)n;
    return strata__mailbox_answered(c->mb, c->seq);
}

static void proc_reply(strata__node *n, strata__child *c, strata__reply *out)
{
    (void)n;
    const strata__mailbox *mb = c->mb;
    out->status = strata__mailbox_reply_status(mb);
    out->message = mb->message;
    out->message_len = strata__mailbox_message_len(mb);
    out->value = mb->value;
}

const strata__transport strata__proc_transport = {
    .name = "process",
    .open = proc_open,
    .close = proc_close,
    .start = strata__proc_start,
    .post = proc_post,
    .answered = proc_answered,
    .reply = proc_reply,
    .kill = strata__proc_kill,
    .signal = strata__proc_signal,
    .reap = strata__proc_reap,
    .sleep = strata__proc_sleep,
    .any_answer = strata__proc_any_answer,
    .wait = strata__proc_wait,
    .max_wait_ms = STRATA__NODE_SLEEP_MAX_MS,
};
