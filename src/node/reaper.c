/* Noticing dead children and saying how they died.
 *
 * The spawner (node/spawner.c) is the only process that waits for a child: it
 * reaps each one as it dies and publishes the wait status in the child's
 * mailbox (the life word, ipc/mailbox.h), then wakes the parent. This file reads
 * those words, turns each death into a message, and asks the spawner to kill a
 * child (timeouts, close). The application's own SIGCHLD handling and
 * waitpid(-1) never see a child, so an exit status is always known and no pid
 * is ever reused under Strata's feet.
 *
 * The spawner's own death publishes nothing: every sleep of the engine ends
 * after STRATA__NODE_SLEEP_MAX_MS to look (check_spawner), and then every child
 * is dead with it (they die through PR_SET_PDEATHSIG). */
#define _GNU_SOURCE
#include "node/node.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/log.h"
#include "core/sys.h"

/* How long a kill waits for the spawner to report the child reaped. SIGKILL
   cannot be caught; only a spawner that stopped answering makes this run out. */
#define STRATA__KILL_WAIT_MS 5000u

const char *strata__child_name(const strata__child *c, char *buf, size_t cap)
{
    if (c->kind == STRATA__CHILD_CHIP)
        snprintf(buf, cap, "chip child %d (device %d, pid %d)", c->worker, c->device_id, (int)c->pid);
    else if (c->kind == STRATA__CHILD_REMOTE)
        snprintf(buf, cap, "remote worker %d (rank %d, pid %d)", c->worker, c->rank, (int)c->pid);
    else if (c->kind == STRATA__CHILD_WORKER)
        snprintf(buf, cap, "level-%d worker child %d (pid %d)", c->sub_node ? c->sub_node->level : 0, c->worker,
                 (int)c->pid);
    else
        snprintf(buf, cap, "SUB child %d (pid %d)", c->worker, (int)c->pid);
    return buf;
}


static void mark_dead(strata__child *c, int status_code, char *message)
{
    c->dead = true;
    c->busy = false;
    c->death_status = status_code;
    free(c->death_message);
    c->death_message = message;
    strata__log(STRATA__LOG_WARN, "%s", message ? message : "a child died");
}

static char *describe(const strata__child *c, int wstatus)
{
    char name[96];
    strata__child_name(c, name, sizeof name);
    if (WIFEXITED(wstatus))
        return strata__format("%s exited with status %d", name, WEXITSTATUS(wstatus));
    return strata__format("%s was killed by signal %d (%s)", name, WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
}

/* Take the deaths the spawner published: each child found becomes dead with its
   wait status (or the errno of a failed fork). Returns how many. */
static int take_published(strata__node *n)
{
    int found = 0;
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (c->gen == 0 || c->dead)
            continue;
        /* acquire: pairs with the release in the spawner's publish(); pid and
           wstatus are complete */
        uint32_t life = strata__load_acquire(&c->mb->life);
        if (life >> 2 != c->gen)
            continue;
        uint32_t state = life & 3u;
        if (state != STRATA__LIFE_NONE)
            c->pid = c->mb->pid;
        if (state == STRATA__LIFE_DEAD) {
            mark_dead(c, STRATA_ECHILD, describe(c, c->mb->wstatus));
            found++;
        } else if (state == STRATA__LIFE_NOFORK) {
            char name[96];
            strata__child_name(c, name, sizeof name);
            mark_dead(c, STRATA_ESYS, strata__format("fork of %s by Strata's spawner process (pid %d) failed: %s",
                                                     name, (int)n->spawner_pid, strerror(c->mb->wstatus)));
            found++;
        }
    }
    return found;
}

int strata__node_spawner_lost(strata__node *n, const strata__child *skip)
{
    /* deaths it published before it went keep their own cause */
    int found = take_published(n);
    pid_t spid = n->spawner_pid;
    char *how = strata__spawner_describe_end(n);
    strata__spawner_stop(n, 0);   /* reaps it, closes its descriptors */
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (c->gen == 0 || c->dead || c == skip)
            continue;
        char name[96];
        strata__child_name(c, name, sizeof name);
        mark_dead(c, STRATA_ECHILD,
                  strata__format("%s was killed with Strata's spawner process (pid %d), which %s; something outside "
                                 "Strata ended it", name, (int)spid, how ? how : "ended"));
        found++;
    }
    free(how);
    return found;
}

int strata__proc_reap(strata__node *n)
{
    int found = take_published(n);
    /* The spawner's death publishes nothing: look when asked, and at least
       every STRATA__NODE_SLEEP_MAX_MS whatever ends the sleeps (an
       application's timer signal interrupts every futex wait). */
    uint64_t now = strata__now_ns();
    /* Asked (every run, after every sleep): the robust mutex, no system call.
       At least every STRATA__NODE_SLEEP_MAX_MS: the pidfd too, which does not
       depend on the kernel having marked the mutex (an emulator without robust
       futexes, an old kernel whose OOM reaper ran first). */
    bool poll_pidfd = now - n->spawner_polled_ns >= STRATA__NODE_SLEEP_MAX_MS * 1000000ull;
    if (n->check_spawner || poll_pidfd || now - n->spawner_checked_ns >= STRATA__NODE_SLEEP_MAX_MS * 1000000ull) {
        n->check_spawner = false;
        n->spawner_checked_ns = now;
        if (poll_pidfd)
            n->spawner_polled_ns = now;
        if (n->spawner_pid > 0 && !(poll_pidfd ? strata__spawner_alive_pidfd(n) : strata__spawner_alive(n)))
            found += strata__node_spawner_lost(n, NULL);
    }
    return found;
}

void strata__proc_signal(strata__node *n, strata__child *c, int sig)
{
    if (c->gen != 0 && !c->dead)
        (void)strata__spawner_kill(n, c, sig);
}

void strata__proc_kill(strata__node *n, strata__child *c, const char *why)
{
    if (c->gen == 0 || c->dead)
        return;
    char name[96];
    strata__child_name(c, name, sizeof name);
    int rc = strata__spawner_kill(n, c, SIGKILL);
    uint64_t deadline = strata__now_ns() + STRATA__KILL_WAIT_MS * 1000000ull;
    while (rc == STRATA_OK && !c->dead && strata__now_ns() < deadline) {
        n->check_spawner = true;
        strata__proc_reap(n);
        if (!c->dead)
            strata__proc_sleep(n, 10);
    }
    if (!c->dead) {
        /* The spawner cannot be trusted with it any more: end the spawner, and
           every child with it; the next spawn starts a new one. */
        strata__log(STRATA__LOG_ERROR, "the spawner (pid %d) did not report %s reaped within %u ms; ending it",
                    (int)n->spawner_pid, name, STRATA__KILL_WAIT_MS);
        strata__node_spawner_lost(n, NULL);
    }
    if (why) {
        char *copy = strata__format("%s", why);
        if (copy) {
            free(c->death_message);
            c->death_message = copy;
        }
        c->death_status = STRATA_ETIMEDOUT;
    }
}
