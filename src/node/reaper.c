/* Noticing dead children, reaping them, and saying how they died.
 *
 * Every wait of the node engine is a poll() on the children's pidfds (with the
 * wake eventfd), so a death wakes it at once; this file then reaps with
 * waitpid(WNOHANG), so no child is ever left <defunct>. A child that someone else
 * reaped (a stray waitpid(-1) in the application) is noticed too: waitpid says
 * ECHILD, and the message says the exit status is unknown. */
#define _GNU_SOURCE
#include "node/node.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/log.h"

static void mark_dead(strata__child *c, int status_code, char *message)
{
    c->dead = true;
    c->busy = false;
    c->death_status = status_code;
    free(c->death_message);
    c->death_message = message;
    strata__log(STRATA__LOG_WARN, "%s", message ? message : "a child died");
}

static char *describe(const strata__child *c, int wstatus, bool reaped_elsewhere)
{
    char name[96];
    strata__child_name(c, name, sizeof name);
    if (reaped_elsewhere)
        return strata__format("%s exited, but something else in this process reaped it (waitpid: No child "
                              "processes), so its exit status is unknown; do not wait for pids Strata started",
                              name);
    if (WIFEXITED(wstatus))
        return strata__format("%s exited with status %d", name, WEXITSTATUS(wstatus));
    return strata__format("%s was killed by signal %d (%s)", name, WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
}

int strata__node_reap(strata__node *n)
{
    int found = 0;
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (c->pid <= 0 || c->dead)
            continue;
        int wstatus = 0;
        pid_t r = waitpid(c->pid, &wstatus, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR))
            continue;
        mark_dead(c, STRATA_ECHILD, describe(c, wstatus, r < 0));
        found++;
    }
    return found;
}

void strata__node_kill(strata__node *n, strata__child *c, const char *why)
{
    (void)n;
    if (c->pid <= 0 || c->dead)
        return;
    kill(c->pid, SIGKILL);
    int wstatus = 0;
    pid_t r;
    /* SIGKILL cannot be caught: the child is gone once the kernel has torn it
       down, so this wait is short. */
    do
        r = waitpid(c->pid, &wstatus, 0);
    while (r < 0 && errno == EINTR);
    char *msg = why ? strata__format("%s", why) : describe(c, wstatus, r < 0);
    mark_dead(c, why ? STRATA_ETIMEDOUT : STRATA_ECHILD, msg);
}
