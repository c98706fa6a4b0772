/* The driving thread's wait for its children (node/node.h): a short spin on
 * the answers, learned per worker, then a futex sleep on the header's wake
 * word until a child answers, the spawner publishes news of a child (a pid, a
 * death, a failed fork), or the timeout. Used by runs, init, close,
 * registrations and kills alike. */
#define _GNU_SOURCE
#include "node/transport.h"

#include <errno.h>

#include "core/hooks.h"
#include "core/sys.h"
#include "core/wait.h"

bool strata__proc_any_answer(strata__node *n)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (c->tp == &strata__proc_transport && c->busy && !c->dead && strata__mailbox_answered(c->mb, c->seq))
            return true;
    }
    return false;
}

static bool any_answer_of(void *n)
{
    return strata__proc_any_answer(n);
}

void strata__proc_sleep(strata__node *n, uint32_t timeout_ms)
{
    uint64_t wait_from = strata__now_ns();
    bool answered = strata__spin_poll(any_answer_of, n, n->spin_ns);
    if (!answered)
        strata__proc_wait(n, timeout_ms);
    n->spin_ns = strata__spin_learn(strata__now_ns() - wait_from);
}

/* Whether the spawner published news of a child the engine has not taken yet:
   a pid, a death, a failed fork. */
static bool any_life_news(strata__node *n)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        const strata__child *c = &n->children[i];
        if (c->gen == 0 || c->dead || c->tp != &strata__proc_transport)
            continue;
        /* acquire: pairs with the release in the spawner's publish() */
        uint32_t life = strata__load_acquire(&c->mb->life);
        if (life >> 2 == c->gen && ((life & 3u) > STRATA__LIFE_ALIVE || (c->pid == 0 && (life & 3u) != 0)))
            return true;
    }
    return false;
}

/* The sleep of strata__proc_sleep: a futex wait on the header's wake word,
   which a child bumps when it answers while the parent sleeps and the spawner
   bumps after every death (ipc/mailbox.h). */
void strata__proc_wait(strata__node *n, uint32_t timeout_ms)
{
    if (timeout_ms == 0 || timeout_ms > STRATA__NODE_SLEEP_MAX_MS)
        timeout_ms = STRATA__NODE_SLEEP_MAX_MS;
    /* acquire: a bump read here makes what its writer published visible to the
       checks below; pairs with the release in strata__mailbox_wake_parent() */
    uint32_t seen = strata__load_acquire(&n->header->wake);
    strata__store_relaxed(&n->header->parent_sleeping, 1);
    /* seq_cst fence: parent_sleeping before the re-check; pairs with the fence in
       strata__mailbox_answer(). */
    strata__full_fence();
    int r = 0;
    if (!strata__proc_any_answer(n) && !any_life_news(n)) {
        /* In a run, the embedding hooks see the driving thread sleep (an
           interpreter lets its other threads go meanwhile). */
        bool hooked = n->running;
        if (hooked)
            strata__hooks_wait_begin(&n->hooks);
        r = strata__futex_wait_shared(&n->header->wake, seen, (uint64_t)timeout_ms * 1000000u);
        if (hooked)
            strata__hooks_wait_end(&n->hooks);
    }
    strata__store_relaxed(&n->header->parent_sleeping, 0);
    n->check_deaths = true;
    if (r == ETIMEDOUT || r == EINTR)
        n->check_spawner = true;   /* its death publishes nothing: look */
}
