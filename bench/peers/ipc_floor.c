/* ipc_floor: the floor under Strata's L3 mailbox (src/ipc/mailbox.c). The same
 * round trip as bench/l3_dispatch measures -- the parent posts a one-word
 * request to a forked child, the child answers with one word -- over four bare
 * channels, with no Strata code at all:
 *
 *   pipe        two pipes; write/read of 8 bytes each way (both sides block
 *               in read).
 *   eventfd     two eventfds; write/read of 8 bytes each way (blocking).
 *   shm-spin    two 32-bit words in an anonymous MAP_SHARED mapping, each on
 *               its own cache line; the poster stores with release, the waiter
 *               spins with acquire loads and __builtin_ia32_pause(). Nobody
 *               ever sleeps.
 *   shm-futex   the same words, spin-then-futex on both sides, the protocol of
 *               Strata's mailbox: the waiter spins up to 256 pauses, then sets
 *               its "sleeping" flag, seq_cst fence, re-checks the word and
 *               FUTEX_WAITs on it (shared futex); the poster stores (release),
 *               seq_cst fence, and calls FUTEX_WAKE only if the other side's
 *               flag is set. (Strata's parent waits on an eventfd with poll;
 *               here both sides use the futex, so this is the floor of the
 *               child's side twice.)
 *
 * One child is forked for the whole program; it serves the methods in the same
 * order as the parent runs them, and leaves each method on a stop message
 * (which it acknowledges). At the end the parent waitpid()s it. The child has
 * PR_SET_PDEATHSIG(SIGKILL), and the parent checks that the child is alive
 * whenever one of its waits takes long, so no process is left behind on errors.
 *
 * Per method: --warmup untimed round trips (default 2000), then --runs timed
 * ones (default 20000; --quick: 500 runs after 100 warm-up). Each round trip is
 * timed alone with CLOCK_MONOTONIC; the table gives min, median, p90, p99 and
 * max in microseconds (nearest-rank percentiles).
 *
 * --pin adds two more passes over the four methods: parent on CPU 0 and child
 * on CPU 1, then both on CPU 0 (sched_setaffinity). Both on one CPU, shm-spin
 * only progresses when the scheduler preempts the spinner (a tick, ~ms), so
 * that row is clipped to 200 runs after 20 warm-up and marked with '*'.
 *
 *   cc -O2 -std=c11 -Wall -Wextra -Werror bench/peers/ipc_floor.c -o /tmp/strata-peers/ipc_floor
 *   /tmp/strata-peers/ipc_floor [--runs N] [--warmup N] [--quick] [--pin]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#define STOP 0xFFFFFFFFu
#define SPIN_PAUSES 256
#define CHECK_SPINS (1u << 22)   /* pure spin: check the peer is alive this often */

enum method { M_PIPE, M_EVENTFD, M_SHM_SPIN, M_SHM_FUTEX, M_COUNT };
static const char *const method_name[M_COUNT] = { "pipe", "eventfd", "shm-spin", "shm-futex" };

enum pinning { P_NONE, P_SPLIT, P_SAME, P_COUNT };
static const char *const pin_name[P_COUNT] = { "unpinned", "cpu0/cpu1", "cpu0/cpu0" };

/* One pair of words per phase (pinning x method), so a phase starts from 0. */
struct slot {
    _Alignas(64) atomic_uint req;
    atomic_uint child_sleeping;
    _Alignas(64) atomic_uint rep;
    atomic_uint parent_sleeping;
};

static int req_pipe[2], rep_pipe[2];   /* parent -> child, child -> parent */
static int req_efd, rep_efd;
static struct slot *slots;
static pid_t child_pid;
static int is_child;

static void die(const char *what)
{
    fprintf(stderr, "ipc_floor: %s: %s\n", what, strerror(errno));
    if (is_child)
        _exit(1);
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
    }
    exit(1);
}

/* Parent: has the child gone? (Called only when a wait takes long.) */
static void check_peer(void)
{
    if (is_child) {
        if (getppid() == 1)
            _exit(1);
        return;
    }
    int st;
    pid_t r = waitpid(child_pid, &st, WNOHANG);
    if (r == child_pid) {
        child_pid = 0;
        fprintf(stderr, "ipc_floor: child exited unexpectedly (status %d)\n", st);
        exit(1);
    }
}

static long futex(atomic_uint *addr, int op, unsigned val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)(void *)addr, op, val, ts, NULL, 0);
}

/* ---- pipe / eventfd ---- */

static void put_fd(int fd, uint64_t v)
{
    for (;;) {
        ssize_t n = write(fd, &v, sizeof v);
        if (n == (ssize_t)sizeof v)
            return;
        if (n < 0 && errno == EINTR)
            continue;
        die("write");
    }
}

static uint64_t get_fd(int fd)
{
    uint64_t v;
    for (;;) {
        ssize_t n = read(fd, &v, sizeof v);
        if (n == (ssize_t)sizeof v)
            return v;
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {   /* pipe EOF: the peer is gone */
            if (is_child)
                _exit(1);
            check_peer();
            fprintf(stderr, "ipc_floor: pipe closed by child\n");
            exit(1);
        }
        die("read");
    }
}

/* eventfd has no EOF: wait with poll and a timeout, then check the peer. */
static uint64_t get_efd(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    for (;;) {
        int r = poll(&p, 1, 500);
        if (r > 0)
            return get_fd(fd);
        if (r < 0 && errno != EINTR)
            die("poll");
        check_peer();
    }
}

/* ---- shared words ---- */

static void post(atomic_uint *word, atomic_uint *peer_sleeping, unsigned v, int futexed)
{
    atomic_store_explicit(word, v, memory_order_release);
    if (!futexed)
        return;
    /* seq_cst fence: the store above before the load of the flag; pairs with
       the fence after the waiter sets its flag. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(peer_sleeping, memory_order_relaxed))
        futex(word, FUTEX_WAKE, 1, NULL);
}

static unsigned wait_spin(atomic_uint *word, unsigned seen)
{
    for (unsigned i = 1;; i++) {
        unsigned r = atomic_load_explicit(word, memory_order_acquire);
        if (r != seen)
            return r;
        __builtin_ia32_pause();
        if (i % CHECK_SPINS == 0)
            check_peer();
    }
}

static unsigned wait_futex(atomic_uint *word, atomic_uint *my_sleeping, unsigned seen)
{
    for (int i = 0; i < SPIN_PAUSES; i++) {
        unsigned r = atomic_load_explicit(word, memory_order_acquire);
        if (r != seen)
            return r;
        __builtin_ia32_pause();
    }
    const struct timespec ts = { .tv_sec = 0, .tv_nsec = 500 * 1000 * 1000 };
    for (;;) {
        atomic_store_explicit(my_sleeping, 1, memory_order_relaxed);
        /* seq_cst fence: the flag before the re-check; pairs with post(). */
        atomic_thread_fence(memory_order_seq_cst);
        unsigned r = atomic_load_explicit(word, memory_order_acquire);
        long fr = 0;
        if (r == seen)
            fr = futex(word, FUTEX_WAIT, seen, &ts);
        atomic_store_explicit(my_sleeping, 0, memory_order_relaxed);
        r = atomic_load_explicit(word, memory_order_acquire);
        if (r != seen)
            return r;
        if (fr < 0 && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
            die("futex wait");
        check_peer();
    }
}

/* ---- child: serve one phase until STOP (acknowledged) ---- */

static void serve(enum method m, struct slot *s)
{
    unsigned seen = 0;
    for (;;) {
        unsigned v;
        switch (m) {
        case M_PIPE:
            v = (unsigned)get_fd(req_pipe[0]);
            put_fd(rep_pipe[1], v);
            break;
        case M_EVENTFD:
            v = (unsigned)get_efd(req_efd);
            put_fd(rep_efd, v);
            break;
        case M_SHM_SPIN:
            v = seen = wait_spin(&s->req, seen);
            post(&s->rep, &s->parent_sleeping, v, 0);
            break;
        default:
            v = seen = wait_futex(&s->req, &s->child_sleeping, seen);
            post(&s->rep, &s->parent_sleeping, v, 1);
            break;
        }
        if (v == STOP)
            return;
    }
}

/* ---- parent: one round trip ---- */

static void round_trip(enum method m, struct slot *s, unsigned seq)
{
    unsigned got;
    switch (m) {
    case M_PIPE:
        put_fd(req_pipe[1], seq);
        got = (unsigned)get_fd(rep_pipe[0]);
        break;
    case M_EVENTFD:
        put_fd(req_efd, seq);
        got = (unsigned)get_efd(rep_efd);
        break;
    case M_SHM_SPIN: {
        unsigned prev = atomic_load_explicit(&s->rep, memory_order_relaxed);
        post(&s->req, &s->child_sleeping, seq, 0);
        got = wait_spin(&s->rep, prev);
        break;
    }
    default: {
        unsigned prev = atomic_load_explicit(&s->rep, memory_order_relaxed);
        post(&s->req, &s->child_sleeping, seq, 1);
        got = wait_futex(&s->rep, &s->parent_sleeping, prev);
        break;
    }
    }
    if (got != seq) {
        fprintf(stderr, "ipc_floor: %s: sent %u, got %u back\n", method_name[m], seq, got);
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        exit(1);
    }
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(const uint64_t *v, long n, double p)
{
    long k = (long)(p * (double)n + 0.999999);   /* nearest rank */
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1000.0;
}

static void set_cpu(pid_t pid, int cpu, const cpu_set_t *all)
{
    cpu_set_t set;
    if (cpu < 0) {
        set = *all;
    } else {
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
    }
    if (sched_setaffinity(pid, sizeof set, &set) != 0)
        die("sched_setaffinity");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ipc_floor [--runs N] [--warmup N] [--quick] [--pin]\n"
               "  parent<->forked child round trip over pipe, eventfd, shared-memory spin,\n"
               "  shared-memory spin-then-futex; --pin adds cpu0/cpu1 and cpu0/cpu0 passes\n");
}

int main(int argc, char **argv)
{
    long runs = 20000, warmup = 2000;
    int pin = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = strtol(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
            warmup = strtol(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--quick")) {
            runs = 500;
            warmup = 100;
        } else if (!strcmp(argv[i], "--pin")) {
            pin = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (runs < 1 || runs > 100000000 || warmup < 0 || warmup > 100000000) {
        fprintf(stderr, "ipc_floor: bad --runs or --warmup\n");
        return 2;
    }
    int npin = pin ? P_COUNT : 1;

    cpu_set_t all;
    if (sched_getaffinity(0, sizeof all, &all) != 0)
        die("sched_getaffinity");
    if (pin && (!CPU_ISSET(0, &all) || !CPU_ISSET(1, &all))) {
        fprintf(stderr, "ipc_floor: --pin needs CPUs 0 and 1 in the affinity mask\n");
        return 1;
    }

    if (pipe(req_pipe) || pipe(rep_pipe))
        die("pipe");
    req_efd = eventfd(0, 0);
    rep_efd = eventfd(0, 0);
    if (req_efd < 0 || rep_efd < 0)
        die("eventfd");
    size_t nslots = (size_t)P_COUNT * M_COUNT;
    slots = mmap(NULL, nslots * sizeof *slots, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        die("mmap");   /* anonymous: zero-filled */

    uint64_t *t = malloc((size_t)runs * sizeof *t);
    if (!t)
        die("malloc");

    pid_t parent = getpid();
    fflush(stdout);
    child_pid = fork();
    if (child_pid < 0)
        die("fork");
    if (child_pid == 0) {
        is_child = 1;
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
            _exit(1);
        if (getppid() != parent)   /* the parent died before prctl */
            _exit(1);
        close(req_pipe[1]);
        close(rep_pipe[0]);
        for (int p = 0; p < npin; p++)
            for (int m = 0; m < M_COUNT; m++)
                serve((enum method)m, &slots[p * M_COUNT + m]);
        _exit(0);
    }
    close(req_pipe[0]);
    close(rep_pipe[1]);

    printf("ipc_floor: parent<->child round trip, %ld runs after %ld warm-up, microseconds\n", runs, warmup);
    printf("%-10s %-10s %8s %8s %8s %8s %8s %9s\n", "method", "pinning", "runs", "min", "median", "p90", "p99", "max");
    fflush(stdout);

    for (int p = 0; p < npin; p++) {
        if (p == P_NONE) {
            set_cpu(0, -1, &all);
            set_cpu(child_pid, -1, &all);
        } else {
            set_cpu(0, 0, &all);
            set_cpu(child_pid, p == P_SPLIT ? 1 : 0, &all);
        }
        for (int m = 0; m < M_COUNT; m++) {
            struct slot *s = &slots[p * M_COUNT + m];
            long r = runs, w = warmup;
            int clipped = 0;
            if (p == P_SAME && m == M_SHM_SPIN && r > 200) {
                r = 200;
                w = w < 20 ? w : 20;
                clipped = 1;
            }
            unsigned seq = 0;
            for (long i = 0; i < w; i++)
                round_trip((enum method)m, s, ++seq);
            for (long i = 0; i < r; i++) {
                uint64_t t0 = now_ns();
                round_trip((enum method)m, s, ++seq);
                t[i] = now_ns() - t0;
            }
            round_trip((enum method)m, s, STOP);   /* the child moves to the next phase */
            qsort(t, (size_t)r, sizeof *t, cmp_u64);
            printf("%-10s %-10s %7ld%s %8.3f %8.3f %8.3f %8.3f %9.3f\n", method_name[m], pin_name[p], r,
                   clipped ? "*" : " ", (double)t[0] / 1000.0, pct_us(t, r, 0.50), pct_us(t, r, 0.90),
                   pct_us(t, r, 0.99), (double)t[r - 1] / 1000.0);
            fflush(stdout);
        }
    }
    if (pin)
        printf("* both on one CPU, shm-spin advances only when the spinner is preempted: clipped to 200 runs\n");

    int st;
    while (waitpid(child_pid, &st, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    child_pid = 0;
    set_cpu(0, -1, &all);
    free(t);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "ipc_floor: child ended with status %d\n", st);
        return 1;
    }
    return 0;
}
