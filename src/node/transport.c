/* The engine's sleep over every transport of a node's children
 * (node/transport.h). With one transport it is that transport's own sleep. With
 * several (local children and remote workers), a spin polls every transport for
 * an answer as long as recent waits lasted (strata__spin_learn); then, while a
 * local child is busy, the first transport waits without spinning (a futex a
 * local answer or death wakes), never longer than the shortest max_wait_ms,
 * since remote answers cannot wake it; with only remote work outstanding, naps
 * that double from NAP_MIN_NS poll every transport in between, so an answer that
 * comes a little after the spin costs a little, not a whole max_wait_ms. */
#include "node/transport.h"


#include "core/sys.h"
#include "core/wait.h"

#define NAP_MIN_NS 20000ull

static bool any_answer(void *arg)
{
    strata__node *n = arg;
    for (uint32_t t = 0; t < n->ntps; t++)
        if (n->tps[t]->any_answer(n))
            return true;
    return false;
}

/* Naps that double from NAP_MIN_NS up to max_ns, polling every transport in
   between, until an answer or timeout_ms after `from`. */
static void nap_until_answer(strata__node *n, uint64_t from, uint32_t timeout_ms, uint64_t max_ns)
{
    uint64_t end = from + (uint64_t)timeout_ms * 1000000u, nap_ns = NAP_MIN_NS;
    while (!any_answer(n) && strata__now_ns() < end)
        strata__nap(&nap_ns, max_ns);
}

void strata__sleep_polling(strata__node *n, uint32_t timeout_ms)
{
    uint64_t wait_from = strata__now_ns();
    if (!strata__spin_poll(any_answer, n, n->spin_ns))
        nap_until_answer(n, wait_from, timeout_ms ? timeout_ms : STRATA__NODE_SLEEP_MAX_MS,
                         (uint64_t)n->tps[n->ntps - 1]->max_wait_ms * 1000000u);
    n->spin_ns = strata__spin_learn(strata__now_ns() - wait_from);
}

void strata__sleep(strata__node *n, uint32_t timeout_ms)
{
    if (n->ntps == 1) {
        n->tps[0]->sleep(n, timeout_ms);
        return;
    }
    uint64_t wait_from = strata__now_ns();
    if (!strata__spin_poll(any_answer, n, n->spin_ns)) {
        uint32_t limit_ms = timeout_ms ? timeout_ms : STRATA__NODE_SLEEP_MAX_MS, nap = limit_ms;
        for (uint32_t t = 0; t < n->ntps; t++)
            nap = n->tps[t]->max_wait_ms < nap ? n->tps[t]->max_wait_ms : nap;
        bool local_busy = false;
        for (uint32_t i = 0; i < n->nchildren; i++)
            local_busy |= n->children[i].tp == n->tps[0] && n->children[i].busy && !n->children[i].dead;
        if (local_busy) {
            n->tps[0]->wait(n, nap);
        } else {
            nap_until_answer(n, wait_from, limit_ms, (uint64_t)nap * 1000000u);
            n->check_deaths = true;   /* as after the first transport's own wait */
        }
    }
    n->spin_ns = strata__spin_learn(strata__now_ns() - wait_from);
}
