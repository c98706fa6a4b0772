/* The spawner: one single-threaded process per node worker that forks, signals
 * and reaps the worker's children, so that the application never does.
 *
 * Why a process of its own. A child forked by the application is the
 * application's child: a server that sets SIGCHLD to SIG_IGN or reaps with
 * waitpid(-1) takes its exit status and frees its pid for reuse, after which no
 * pid-based call (kill, waitpid) is safe; PR_SET_PDEATHSIG follows the *thread*
 * that forked, so children forked by a thread that then ends (a startup thread,
 * a pool) die with it; and a fork from a process whose other threads hold locks
 * needs care. The spawner is forked once, at init, by the thread that calls it
 * (and again only if it dies); it runs no thread and none of the application's
 * code but the pthread_atfork handlers the application registered (every fork
 * runs them), and it is the only process that ever waits for a child. A pid it holds
 * belongs to an unreaped child of its own, so it cannot have been reused: every
 * kill and wait by pid is safe by construction, with or without pidfds.
 *
 * The spawner's loop: poll() on its end of a socket pair (requests from the
 * parent; hang-up when the parent is gone) and a signalfd for SIGCHLD (blocked),
 * waking at least every STRATA__SPAWNER_CHECK_MS to check that its parent is
 * still the application. Requests (struct request, one SOCK_SEQPACKET record
 * each):
 *   SPAWN child gen   fork child `child` as generation `gen`; publish ALIVE and
 *                     its pid in the mailbox's life word (or NOFORK and errno)
 *   SIGNAL child gen sig   send sig to that child's process group, if that
 *                     generation is still alive (an older one is ignored)
 *   EXIT              SIGKILL every child's group, reap them, exit
 * When a child dies, the spawner SIGKILLs its process group (the child's
 * descendants go with it; the zombie still holds the group id, so it cannot
 * name another group), reaps it, publishes DEAD and the wait status in the
 * mailbox's life word, and wakes the parent (ipc/mailbox.h). It is a child
 * subreaper, so an orphaned descendant is reaped here too, never left <defunct>.
 *
 * Parent death: the spawner sees the socket hang up (or its parent pid change)
 * and ends every child as for EXIT. A child dies with the spawner through
 * PR_SET_PDEATHSIG, which is reliable here because the spawner's only thread
 * forked it. The spawner itself uses no PR_SET_PDEATHSIG: the thread that forked
 * it may end long before the worker does.
 *
 * Each child and the spawner run in a process group of their own, so signals
 * the terminal sends to the application's group (Ctrl-C's SIGINT, SIGTSTP) or
 * the application sends to its group reach neither: the parent decides what
 * happens to them. A descendant that leaves its group (setsid, setpgid) is not
 * reached by the group kill; it is reaped here if it ends while the spawner
 * lives (docs/lifecycle.md).
 *
 * The parent's side (strata__spawner_*) writes requests, checks whether the
 * spawner lives (its pidfd, or the socket's hang-up where pidfds are missing),
 * and stops and reaps it. Without a pidfd the parent names the spawner by pid
 * and start time (/proc/<pid>/stat), checked before every kill or wait. */
#define _GNU_SOURCE
#include "node/node.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fault.h"
#include "core/hooks.h"
#include "core/log.h"
#include "core/sys.h"
#include "ipc/shm.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define STRATA__SPAWNER_CHECK_MS 100
/* How long the spawner waits for killed children before it exits anyway (a
   process in uninterruptible sleep then ends as init's child). */
#define STRATA__SPAWNER_REAP_MS 2000

enum { REQ_SPAWN = 1, REQ_SIGNAL = 2, REQ_EXIT = 3 };

typedef struct request {
    uint32_t op;
    uint32_t child;
    uint32_t gen;
    int32_t  sig;
} request;

/* ---- the spawner process ---- */

typedef struct spawner {
    strata__node *n;
    int           sock;     /* requests */
    int           sigfd;    /* SIGCHLD; -1 if signalfd failed (then the poll timeout reaps) */
    pid_t        *pids;     /* per child: the live process, 0 when none */
    uint32_t     *gens;     /* per child: its generation */
} spawner;

static void publish(const spawner *s, uint32_t i, uint32_t gen, uint32_t state, pid_t pid, int wstatus)
{
    strata__mailbox *mb = s->n->children[i].mb;
    mb->pid = pid;
    mb->wstatus = wstatus;
    /* release: pid and wstatus before the word; pairs with the acquire in
       strata__proc_reap() */
    strata__store_release(&mb->life, strata__life_word(gen, state));
    strata__mailbox_wake_parent(s->n->header);
}

static uint32_t child_of(const spawner *s, pid_t pid)
{
    for (uint32_t i = 0; i < s->n->nchildren; i++)
        if (s->pids[i] == pid)
            return i;
    return UINT32_MAX;
}

/* Reap every child that has ended, each after its group is killed. Orphaned
   descendants (this process is their subreaper) are reaped as they come. */
static void reap_all(spawner *s)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
            return;
        pid_t pid = si.si_pid;
        uint32_t i = child_of(s, pid);
        if (i != UINT32_MAX)
            kill(-pid, SIGKILL);   /* its descendants: the zombie still holds the group id */
        int wstatus = 0;
        pid_t r;
        do
            r = waitpid(pid, &wstatus, 0);   /* a zombie: returns at once */
        while (r < 0 && errno == EINTR);
        if (i != UINT32_MAX) {
            s->pids[i] = 0;
            publish(s, i, s->gens[i], STRATA__LIFE_DEAD, pid, wstatus);
        }
    }
}

static void sleep_1ms(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* SIGKILL the processes this one adopted as subreaper (descendants whose
   parent died: a worker child's own spawner, at L4+, before it has ended its
   children), from the kernel's list of this process's children. */
static void kill_adopted(const spawner *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "re");
    if (!f)
        return;   /* a kernel without the list: they end through their own parent checks */
    int pid;
    while (fscanf(f, "%d", &pid) == 1)
        if (child_of(s, pid) == UINT32_MAX)
            kill(pid, SIGKILL);
    fclose(f);
}

/* Whether this process has any child left, alive or not yet reaped. */
static bool any_child_left(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* SIGKILL every child's group, reap (bounded), and leave; not before every
   descendant adopted meanwhile is gone too, so that a close that waited for
   this process has ended the whole tree below it. */
static void __attribute__((noreturn)) shut_down(spawner *s)
{
    for (uint32_t i = 0; i < s->n->nchildren; i++)
        if (s->pids[i] > 0) {
            kill(-s->pids[i], SIGKILL);
            kill(s->pids[i], SIGKILL);
        }
    uint64_t deadline = strata__now_ns() + STRATA__SPAWNER_REAP_MS * 1000000ull;
    for (;;) {
        reap_all(s);
        bool left = false;
        for (uint32_t i = 0; i < s->n->nchildren; i++)
            left |= s->pids[i] > 0;
        if (!left)
            kill_adopted(s);
        if ((!left && !any_child_left()) || strata__now_ns() > deadline)
            _exit(0);
        sleep_1ms();
    }
}

static void spawn(spawner *s, uint32_t i, uint32_t gen)
{
    if (s->pids[i] > 0) {
        /* The parent respawns only a child whose death it saw; an older
           generation still here means the parent gave up waiting for it. It
           is killed and forgotten; reap_all reaps it when it is gone (a pid
           never reused meanwhile: it stays this process's unreaped child). */
        kill(-s->pids[i], SIGKILL);
        kill(s->pids[i], SIGKILL);
        s->pids[i] = 0;
    }
    strata__hooks_fork_prepare(&s->n->hooks);
    pid_t pid = strata__sys_fork();
    if (pid == 0) {
        close(s->sock);
        if (s->sigfd >= 0)
            close(s->sigfd);
        setpgid(0, 0);
        strata__hooks_fork_child(&s->n->hooks);
        strata__child *c = &s->n->children[i];
        strata__child_start(c, getppid());
        if (c->kind == STRATA__CHILD_WORKER)
            strata__worker_child_main(s->n, c);
        strata__child_main(s->n, c);
    }
    int err = errno;
    strata__hooks_fork_parent(&s->n->hooks);
    errno = err;
    if (pid < 0) {
        publish(s, i, gen, STRATA__LIFE_NOFORK, 0, errno);
        return;
    }
    setpgid(pid, pid);   /* also done by the child: whichever runs first, the group exists before a signal */
    s->pids[i] = pid;
    s->gens[i] = gen;
    publish(s, i, gen, STRATA__LIFE_ALIVE, pid, 0);
}

static void handle(spawner *s, const request *r)
{
    if (r->op == REQ_EXIT)
        shut_down(s);
    if (r->child >= s->n->nchildren)
        return;
    if (r->op == REQ_SPAWN) {
        spawn(s, r->child, r->gen);
    } else if (r->op == REQ_SIGNAL && s->pids[r->child] > 0 && s->gens[r->child] == r->gen) {
        if (kill(-s->pids[r->child], r->sig) != 0)
            kill(s->pids[r->child], r->sig);
    }
}

static void __attribute__((noreturn)) spawner_main(strata__node *n, int sock)
{
    /* A group of its own, default dispositions (none of the application's
       handlers runs here or in a child), SIGCHLD blocked and read from a
       signalfd. */
    strata__fault_enter_child();
    /* Held until this process ends: the parent's no-syscall test of its life
       (strata__spawner_alive). Robust: the kernel marks it when this, the
       only thread, ends, however it ends. */
    if (n->life_robust && pthread_mutex_lock(&n->header->spawner_life) == EOWNERDEAD)
        pthread_mutex_consistent(&n->header->spawner_life);
    setpgid(0, 0);
    strata__node_set_serving(n);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    spawner s = {.n = n, .sock = sock, .sigfd = strata__sys_signalfd(&chld, SFD_CLOEXEC | SFD_NONBLOCK)};
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (getppid() != n->parent_pid)
        _exit(1);
    strata__node_forget_others(n);
    s.pids = strata__calloc(n->nchildren, sizeof s.pids[0]);
    s.gens = strata__calloc(n->nchildren, sizeof s.gens[0]);
    if (!s.pids || !s.gens)
        _exit(2);
    for (;;) {
        struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = s.sigfd, .events = POLLIN}};
        int r = poll(p, s.sigfd >= 0 ? 2 : 1, STRATA__SPAWNER_CHECK_MS);
        if (getppid() != n->parent_pid)
            shut_down(&s);   /* the application is gone */
        if (r > 0 && (p[1].revents & POLLIN)) {
            struct signalfd_siginfo drained[8];
            while (read(s.sigfd, drained, sizeof drained) > 0)
                ;
        }
        reap_all(&s);
        if (r <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        request req;
        ssize_t got = recv(sock, &req, sizeof req, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
            shut_down(&s);   /* every parent end is closed */
        if (got == (ssize_t)sizeof req)
            handle(&s, &req);
    }
}

/* ---- the parent's side ---- */

/* Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), 0 when
   the process does not exist. With the pid it names one process for good. */
static uint64_t start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')');
    /* fields 3.. follow the command name; the start time is the 20th of them */
    for (int field = 3; p && field <= 22; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* Whether the spawner's pid still names the spawner (the fallback without a
   pidfd: a process with that pid and start time). */
static bool still_ours(const strata__node *n)
{
    /* A start time of 0: /proc could not be read at start; then the pid alone
       (still our unreaped child unless the application reaped it) */
    return n->spawner_start_time == 0 || start_time(n->spawner_pid) == n->spawner_start_time;
}

/* Make spawner_life new and free, for the spawner about to be forked (the last
   one may have died holding it). Where it cannot be made robust and shared,
   life_robust is false and the pidfd alone says whether the spawner lives. */
static void reset_life(strata__node *n)
{
    pthread_mutexattr_t a;
    bool ok = pthread_mutexattr_init(&a) == 0;
    ok = ok && pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0;
    ok = ok && pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0;
    memset(&n->header->spawner_life, 0, sizeof n->header->spawner_life);
    ok = ok && pthread_mutex_init(&n->header->spawner_life, &a) == 0;
    pthread_mutexattr_destroy(&a);
    n->life_robust = ok;
}

int strata__spawner_start(strata__node *n)
{
    int rc = strata__node_snapshot_objects(n);
    if (rc)
        return rc;
    n->nregs_spawner = n->nregs;
    fflush(NULL);   /* nothing buffered is written twice by the spawner's children */
    /* The socket pair is made, and both ends recorded, under the list's lock
       (node/lifecycle.c), so that another worker's spawner forked meanwhile
       closes them; the fork itself takes the lock in its prepare handler. */
    strata__node_live_lock();
    int sv[2];
    if (strata__sys_socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        rc = strata__fail_sys(errno, "socketpair for the spawner process's requests");
        strata__node_live_unlock();
        return rc;
    }
    n->spawner_cmd = sv[0];
    n->spawner_peer = sv[1];
    strata__node_live_unlock();
    /* The embedding hooks run around this fork and each fork of the spawner,
       from the copy taken here (core/hooks.h); never under the list's lock: an
       interpreter's prepare hook may wait for a thread that waits for it. */
    n->hooks = strata__hooks_get();
    reset_life(n);
    strata__hooks_fork_prepare(&n->hooks);
    pid_t pid = strata__sys_fork();
    if (pid == 0) {
        close(sv[0]);
        /* Here the node names none of the parent's descriptors: a worker
           child forked from here (L4+) keeps this copy of the node, and would
           otherwise close numbers it has reused since. */
        n->spawner_cmd = n->spawner_peer = -1;
        strata__hooks_fork_child(&n->hooks);
        spawner_main(n, sv[1]);
    }
    int err = errno;
    strata__hooks_fork_parent(&n->hooks);
    strata__node_live_lock();
    close(sv[1]);
    n->spawner_peer = -1;
    if (pid < 0) {
        close(sv[0]);
        n->spawner_cmd = -1;
        strata__node_live_unlock();
        return strata__fail_sys(err, "fork of the spawner process of a level-%d worker", n->level);
    }
    n->spawner_pid = pid;
    n->spawner_start_time = 0;
    n->spawner_pidfd = strata__sys_pidfd_open(pid);
    err = errno;
    if (n->spawner_pidfd < 0) {   /* (a pidfd is close-on-exec from pidfd_open) */
        /* pid and start time name it instead; it is our unreaped child, so the
           pid is still its own here */
        n->spawner_start_time = start_time(pid);
        strata__log(STRATA__LOG_INFO, "pidfd_open of the spawner (pid %d) failed (%s); naming it by pid and start "
                    "time instead", (int)pid, strerror(err));
    }
    strata__node_live_unlock();
    return STRATA_OK;
}

static int send_request(strata__node *n, request r)
{
    if (n->spawner_cmd < 0)
        return strata__fail(STRATA_ECHILD, "the spawner process of this level-%d worker is gone", n->level);
    ssize_t w;
    do
        w = send(n->spawner_cmd, &r, sizeof r, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)sizeof r)
        return STRATA_OK;
    if (w < 0 && errno == EAGAIN)
        return strata__fail(STRATA_ECHILD, "the spawner process (pid %d) does not take requests (its queue is full: "
                            "is it stopped?)", (int)n->spawner_pid);
    return strata__fail_sys(errno, "send of a request to the spawner process (pid %d)", (int)n->spawner_pid);
}

int strata__spawner_spawn(strata__node *n, const strata__child *c)
{
    return send_request(n, (request){REQ_SPAWN, (uint32_t)c->worker, c->gen, 0});
}

int strata__spawner_kill(strata__node *n, const strata__child *c, int sig)
{
    return send_request(n, (request){REQ_SIGNAL, (uint32_t)c->worker, c->gen, sig});
}

/* Wait up to timeout_ms for the spawner to end; whether it has. */
static bool wait_spawner(const strata__node *n, int timeout_ms)
{
    struct pollfd p = n->spawner_pidfd >= 0 ? (struct pollfd){.fd = n->spawner_pidfd, .events = POLLIN}
                                            : (struct pollfd){.fd = n->spawner_cmd, .events = 0};
    if (p.fd < 0)
        return true;
    uint64_t deadline = strata__now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = strata__now_ns();
        int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
        int r = poll(&p, 1, left);
        if (r > 0)
            return n->spawner_pidfd >= 0 ? (p.revents & POLLIN) != 0 : (p.revents & (POLLHUP | POLLERR)) != 0;
        if (r == 0 || (r < 0 && errno != EINTR))
            return r < 0;
    }
}

bool strata__spawner_alive_pidfd(const strata__node *n)
{
    return n->spawner_pid > 0 && !wait_spawner(n, 0);
}

bool strata__spawner_alive(const strata__node *n)
{
    if (n->spawner_pid <= 0)
        return false;
    if (!n->life_robust)
        return !wait_spawner(n, 0);
    /* The spawner holds spawner_life for its whole life (a robust mutex): busy
       means alive, without a system call; "owner died" means it ended. Free
       (it has not taken it yet, just forked): ask its pidfd. */
    pthread_mutex_t *life = &n->header->spawner_life;
    int r = pthread_mutex_trylock(life);
    if (r == EBUSY)
        return true;
    if (r == EOWNERDEAD) {
        pthread_mutex_consistent(life);
        pthread_mutex_unlock(life);
        return false;
    }
    if (r == 0)
        pthread_mutex_unlock(life);
    return !wait_spawner(n, 0);
}


/* Reap the spawner, which has ended (bounded: it may have been reaped by the
   application already, which is fine). */
static void reap_spawner(strata__node *n)
{
    for (int tries = 0; tries < 1000; tries++) {
        if (n->spawner_pidfd >= 0) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            long r = syscall(SYS_waitid, P_PIDFD, n->spawner_pidfd, &si, WEXITED | WNOHANG, NULL);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 || si.si_pid != 0)
                return;   /* reaped here, or by someone else (ECHILD) */
        } else {
            if (!still_ours(n))
                return;   /* reaped elsewhere: the pid is no longer ours to wait for */
            int wstatus;
            pid_t r = waitpid(n->spawner_pid, &wstatus, WNOHANG);
            if (r != 0 && !(r < 0 && errno == EINTR))
                return;
        }
        sleep_1ms();
    }
}

void strata__spawner_stop(strata__node *n, uint64_t deadline_ns)
{
    if (n->spawner_pid <= 0)
        return;
    (void)send_request(n, (request){REQ_EXIT, 0, 0, 0});
    uint64_t now = strata__now_ns();
    int left = deadline_ns > now ? (int)((deadline_ns - now) / 1000000u) + 1 : 0;
    if (!wait_spawner(n, left)) {
        /* it does not leave (stopped, or stuck): kill it; its children die
           with it (PR_SET_PDEATHSIG) */
        if (n->spawner_pidfd >= 0)
            syscall(SYS_pidfd_send_signal, n->spawner_pidfd, SIGKILL, NULL, 0);
        else if (still_ours(n))
            kill(n->spawner_pid, SIGKILL);
        wait_spawner(n, STRATA__SPAWNER_REAP_MS + 1000);
    }
    reap_spawner(n);
    strata__spawner_forget(n);
}

void strata__spawner_forget(strata__node *n)
{
    strata__node_live_lock();
    if (n->spawner_cmd >= 0)
        close(n->spawner_cmd);
    if (n->spawner_pidfd >= 0)
        close(n->spawner_pidfd);
    n->spawner_cmd = n->spawner_pidfd = -1;
    n->spawner_pid = 0;
    n->spawner_start_time = 0;
    strata__node_live_unlock();
}

/* How the spawner ended, after it has (for a message); NULL when unknown. */
char *strata__spawner_describe_end(strata__node *n)
{
    if (n->spawner_pidfd < 0)
        return NULL;
    /* Its robust mutex reads "owner died" as soon as the kernel has released
       the process's futexes, which is before the process is a zombie that
       waitid can see: give it up to a second to get there (its pidfd turns
       readable then), so the message says how it ended. */
    uint64_t deadline = strata__now_ns() + 1000000000ull;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        long r = syscall(SYS_waitid, P_PIDFD, n->spawner_pidfd, &si, WEXITED | WNOHANG | WNOWAIT, NULL);
        if (r == 0 && si.si_pid != 0) {
            if (si.si_code == CLD_EXITED)
                return strata__format("exited with status %d", si.si_status);
            return strata__format("was killed by signal %d (%s)", si.si_status, strsignal(si.si_status));
        }
        uint64_t now = strata__now_ns();
        if (r != 0 || now >= deadline)
            return NULL;
        struct pollfd p = {.fd = n->spawner_pidfd, .events = POLLIN};
        (void)poll(&p, 1, (int)((deadline - now) / 1000000ull) + 1);   /* EINTR: look again */
    }
}
