/* The engine's sleep over every transport of a node's children
 * (node/transport.h). With one transport it is that transport's own sleep. With
 * several (local children and remote workers), a spin polls every transport for
 * an answer as long as recent waits lasted (strata__spin_learn), then the
 * first transport waits without spinning, never longer than the shortest
 * max_wait_ms of them, since it cannot be woken by the others' answers. */
#include "node/transport.h"

#include "core/sys.h"
#include "core/wait.h"

static bool any_answer(void *arg)
{
    strata__node *n = arg;
    for (uint32_t t = 0; t < n->ntps; t++)
        if (n->tps[t]->any_answer(n))
            return true;
    return false;
}

void strata__sleep(strata__node *n, uint32_t timeout_ms)
{
    if (n->ntps == 1) {
        n->tps[0]->sleep(n, timeout_ms);
        return;
    }
    uint64_t wait_from = strata__now_ns();
    if (!strata__spin_poll(any_answer, n, n->spin_ns)) {
        uint32_t nap = timeout_ms ? timeout_ms : STRATA__NODE_SLEEP_MAX_MS;
        for (uint32_t t = 0; t < n->ntps; t++)
            nap = n->tps[t]->max_wait_ms < nap ? n->tps[t]->max_wait_ms : nap;
        n->tps[0]->wait(n, nap);
    }
    n->spin_ns = strata__spin_learn(strata__now_ns() - wait_from);
}
