/* Starting one child of a node worker (at init, and for each restart): a
 * fresh mailbox and generation, the spawner's fork of it (a new spawner first
 * when the last one died), the ready handshake, then every registration made
 * since the spawner was forked, replayed to it. */
#define _GNU_SOURCE
#include "node/node.h"
#include "node/record.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/sys.h"

/* Wait until child c reports ready or dies, or the deadline passes (then it is
   killed). Other children's deaths found meanwhile are only recorded: they are
   reported by whoever asked (init fails on them, a run reports them). */
static int await_ready(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    char name[96];
    for (;;) {
        strata__proc_reap(n);
        if (c->dead) {
            c->death_reported = true;
            const char *how = c->death_message ? c->death_message : "the child died";
            if (c->death_status != STRATA_ECHILD)
                return strata__fail(c->death_status, "%s", how);
            if (strata__mailbox_message_len(c->mb))
                return strata__fail(STRATA_ECHILD, "%s while starting: %.*s", how,
                                    (int)strata__mailbox_message_len(c->mb), c->mb->message);
            return strata__fail(STRATA_ECHILD, "%s while starting", how);
        }
        /* acquire: pairs with the release of `ready` in the child. The child
           may report ready before the spawner has published its pid: started
           means both. */
        if (strata__load_acquire(&c->mb->ready) && c->pid > 0)
            return STRATA_OK;
        if (strata__now_ns() >= deadline_ns) {
            strata__child_name(c, name, sizeof name);
            strata__proc_kill(n, c, NULL);
            c->death_reported = true;
            return strata__fail(STRATA_ETIMEDOUT, "%s did not report ready within init_timeout_ms (%u ms) and was "
                                "killed; raise init_timeout_ms if starting is just slow", name, n->cfg.init_timeout_ms);
        }
        strata__proc_sleep(n, 10);
    }
}

/* A child that could not even be asked for: dead, its death already said. */
static int not_started(strata__child *c, int rc)
{
    c->dead = true;
    c->death_reported = true;
    c->death_status = rc;
    free(c->death_message);
    c->death_message = strata__format("%s", strata_last_error());
    return rc;
}

/* Send child c (just started) every registration made after its spawner was
   forked, one at a time, and wait for each answer. */
static int replay_registrations(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    char name[96];
    for (uint32_t k = n->nregs_spawner; k < n->nregs; k++) {
        size_t len = 0;
        int rc = strata__reg_frame_encode(&n->regs[k], c->mb->args, &len);
        if (rc)
            return rc;
        c->mb->kind = STRATA__REQ_REGISTER;
        c->mb->args_len = (uint32_t)len;
        strata__mailbox_post(c->mb, ++c->seq);
        while (!strata__mailbox_answered(c->mb, c->seq)) {
            strata__proc_reap(n);
            if (c->dead)
                return strata__fail(STRATA_ECHILD, "%s while taking registration %u", c->death_message
                                    ? c->death_message : "the child died", k + 1);
            if (strata__now_ns() > deadline_ns)
                return strata__fail(STRATA_ETIMEDOUT, "%s did not take registration %u within init_timeout_ms (%u "
                                    "ms)", strata__child_name(c, name, sizeof name), k + 1, n->cfg.init_timeout_ms);
            strata__proc_sleep(n, 10);
        }
        /* A registration the child refused stays there as a placeholder that
           fails each of its tasks with the reason, as it did in the children
           that were told at registration time. */
        if (c->mb->status != STRATA_OK)
            strata__log(STRATA__LOG_WARN, "%s refused registration %u: %.*s",
                        strata__child_name(c, name, sizeof name), k + 1, (int)strata__mailbox_message_len(c->mb),
                        c->mb->message);
    }
    return STRATA_OK;
}

int strata__proc_start(strata__node *n, strata__child *c, uint64_t deadline_ns)
{
    /* A spawner that died since it was last seen took the other children with
       it (reported by the next run): look before c is made new, since c's own
       death is known already; a new spawner is started below. */
    if (n->spawner_pid > 0 && !strata__spawner_alive(n))
        strata__node_spawner_lost(n, NULL);
    /* A fresh mailbox: the new child starts at sequence 0. The life word lies
       past the part cleared; the new generation tells its news from the old. */
    memset(c->mb, 0, offsetof(strata__mailbox, message));
    strata__record_child_reset(n, c);   /* its events: this generation's only */
    /* The start hook of the tests travels in the mailbox: the spawner's
       environment is the one it was forked with. */
    const char *fault = getenv("STRATA_FAULT_CHILD_START");
    if (fault)
        snprintf(c->mb->start_fault, sizeof c->mb->start_fault, "%s", fault);
    c->seq = 0;
    c->busy = false;
    c->task = 0;
    c->pid = 0;
    c->dead = false;
    c->death_reported = false;
    c->death_status = 0;
    free(c->death_message);
    c->death_message = NULL;
    c->gen = (c->gen + 1) & 0x3fffffffu;   /* 30 bits in the life word; 0 means never forked */
    if (c->gen == 0)
        c->gen = 1;
    int rc = n->spawner_pid > 0 ? STRATA_OK : strata__spawner_start(n);
    if (rc == STRATA_OK)
        rc = strata__spawner_spawn(n, c);
    if (rc && n->spawner_pid > 0) {
        /* The request did not reach it (it died between the look and the
           request; its socket closes before its pid says so): once more, on a
           new spawner, c kept out of the deaths that takes. */
        strata__node_spawner_lost(n, c);
        rc = strata__spawner_start(n);
        if (rc == STRATA_OK)
            rc = strata__spawner_spawn(n, c);
    }
    if (rc)
        return not_started(c, rc);
    rc = await_ready(n, c, deadline_ns);
    if (rc == STRATA_OK && n->nregs > n->nregs_spawner) {
        rc = replay_registrations(n, c, deadline_ns);
        if (rc) {
            char name[96];
            strata__child_name(c, name, sizeof name);
            strata__proc_kill(n, c, NULL);
            c->death_reported = true;
            rc = strata__error_prefix(rc, "%s could not take the registrations made after init", name);
        }
    }
    return rc;
}
