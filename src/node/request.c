/* A request to one idle child outside a run, answered before the call that
 * made it returns: the memory requests of a worker child (MALLOC, FREE), whose
 * heap's allocator lives in the child's process. */
#define _GNU_SOURCE
#include "node/node.h"

#include "core/sys.h"

int strata__node_request(strata__node *n, strata__child *c, uint32_t kind, uint64_t value, uint64_t *reply)
{
    char name[96];
    strata__node_reap(n);
    if (c->dead || c->pid <= 0)
        return strata__fail(STRATA_ECHILD, "%s", c->death_message ? c->death_message : "the child is not running");
    c->mb->kind = kind;
    c->mb->value = value;
    c->mb->args_len = 0;
    strata__mailbox_post(c->mb, ++c->seq);
    uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
    while (!strata__mailbox_answered(c->mb, c->seq)) {
        strata__node_reap(n);
        if (c->dead)
            return strata__fail(STRATA_ECHILD, "%s while answering a request",
                                c->death_message ? c->death_message : "the child died");
        if (strata__now_ns() > deadline) {
            strata__child_name(c, name, sizeof name);
            strata__node_kill(n, c, NULL);
            return strata__fail(STRATA_ETIMEDOUT, "%s did not answer within init_timeout_ms (%u ms) and was killed; "
                                "the next run reports its death and replaces it", name, n->cfg.init_timeout_ms);
        }
        strata__node_sleep(n, 10);
    }
    int status = strata__mailbox_reply_status(c->mb);
    if (status != STRATA_OK)
        return strata__fail(status, "%s: %.*s", strata__child_name(c, name, sizeof name),
                            (int)strata__mailbox_message_len(c->mb), c->mb->message);
    if (reply)
        *reply = c->mb->value;
    return STRATA_OK;
}
