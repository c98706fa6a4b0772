/* A request to one idle child outside a run, answered before the call that
 * made it returns: the memory requests of a worker child (MALLOC, FREE), whose
 * heap's allocator lives in the child's process. */
#define _GNU_SOURCE
#include "node/transport.h"

#include "core/sys.h"

int strata__node_request(strata__node *n, strata__child *c, uint32_t kind, uint64_t value, uint64_t *reply)
{
    char name[96];
    strata__reap(n);
    if (c->dead || c->pid <= 0)
        return strata__fail(STRATA_ECHILD, "%s", c->death_message ? c->death_message : "the child is not running");
    c->busy = true;   /* an answer is outstanding: every transport's waits look for it */
    strata__post(n, c, &(strata__request){.kind = kind, .value = value});
    uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
    while (!strata__answered(n, c)) {
        strata__reap(n);
        if (c->dead) {
            c->busy = false;
            return strata__fail(STRATA_ECHILD, "%s while answering a request",
                                c->death_message ? c->death_message : "the child died");
        }
        if (strata__now_ns() > deadline) {
            strata__child_name(c, name, sizeof name);
            strata__kill(n, c, NULL);
            c->busy = false;
            return strata__fail(STRATA_ETIMEDOUT, "%s did not answer within init_timeout_ms (%u ms) and was killed; "
                                "the next run reports its death and replaces it", name, n->cfg.init_timeout_ms);
        }
        strata__sleep(n, 10);
    }
    c->busy = false;
    strata__reply r;
    strata__reply_of(n, c, &r);
    if (r.status != STRATA_OK)
        return strata__fail(r.status, "%s: %.*s", strata__child_name(c, name, sizeof name), (int)r.message_len,
                            r.message);
    if (reply)
        *reply = r.value;
    return STRATA_OK;
}
