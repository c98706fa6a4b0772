/* System call doors: the fault-point table, futex and the monotonic clock. */
#define _GNU_SOURCE
#include "core/sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/fault.h"

/* ---- the fault-point table ---- */

/* Whether `point` fails now; sets errno to err when it does. */
static bool fails(const char *point, int err)
{
    if (!strata__fault_hit(point))
        return false;
    errno = err;
    return true;
}

void *strata__sys_mmap(size_t len, int prot, int flags)
{
    return fails("mmap", ENOMEM) ? MAP_FAILED : mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);
}

/* The cached pid lives in a page the kernel zeroes in every child made without
   CLONE_VM (MADV_WIPEONFORK): fork(), _Fork(), a raw fork or clone system call,
   whichever ran or skipped the atfork handlers. Where the kernel cannot (before
   Linux 4.14), nothing is cached. */
static _Atomic pid_t *self_pid_page;
static pthread_once_t self_pid_once = PTHREAD_ONCE_INIT;

static void make_self_pid_page(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    if (madvise(p, 4096, MADV_WIPEONFORK) != 0) {
        munmap(p, 4096);
        return;
    }
    self_pid_page = p;
}

pid_t strata__self_pid(void)
{
    pthread_once(&self_pid_once, make_self_pid_page);
    _Atomic pid_t *page = self_pid_page;
    if (!page)
        return getpid();
    pid_t p = atomic_load_explicit(page, memory_order_relaxed);
    if (p == 0) {
        p = getpid();
        atomic_store_explicit(page, p, memory_order_relaxed);
    }
    return p;
}

pid_t strata__sys_fork(void)
{
    return fails("fork", EAGAIN) ? -1 : fork();
}

int strata__sys_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    return fails("pthread_create", EAGAIN) ? EAGAIN : pthread_create(t, attr, fn, arg);
}

int strata__sys_socketpair(int domain, int type, int protocol, int sv[2])
{
    return fails("socketpair", EMFILE) ? -1 : socketpair(domain, type, protocol, sv);
}

int strata__sys_signalfd(const sigset_t *mask, int flags)
{
    return fails("signalfd", EMFILE) ? -1 : signalfd(-1, mask, flags);
}

int strata__sys_pidfd_open(pid_t pid)
{
    return fails("pidfd_open", EMFILE) ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
}

int strata__sys_pipe2(int fds[2], int flags)
{
    return fails("pipe2", EMFILE) ? -1 : pipe2(fds, flags);
}

int strata__sys_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa, char *const argv[],
                             char *const envp[])
{
    return fails("posix_spawnp", EAGAIN) ? EAGAIN : posix_spawnp(pid, file, fa, NULL, argv, envp);
}

static _Thread_local bool dlopen_injected;

void *strata__sys_dlopen(const char *path, int flags)
{
    dlopen_injected = fails("dlopen", ENOMEM);
    return dlopen_injected ? NULL : dlopen(path, flags);
}

const char *strata__sys_dlerror(void)
{
    if (dlopen_injected) {
        dlopen_injected = false;
        return "Cannot allocate memory (a fault injected by a test)";
    }
    return dlerror();
}

uint64_t strata__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int futex_wait_op(_Atomic uint32_t *word, int op, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long)(timeout_ns % 1000000000u);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, (uint32_t *)word, op, expected, tsp, NULL, 0);
    if (r == 0)
        return 0;
    if (errno == EAGAIN)
        return 0;
    return errno;
}

/* Process-private words (FUTEX_PRIVATE_FLAG) live in one process; shared ones
   in a MAP_SHARED mapping that several processes see. */
int strata__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    return futex_wait_op(word, FUTEX_WAIT_PRIVATE, expected, timeout_ns);
}

int strata__futex_wait_shared(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    return futex_wait_op(word, FUTEX_WAIT, expected, timeout_ns);
}

void strata__futex_wake(_Atomic uint32_t *word, int nwaiters)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, nwaiters, NULL, NULL, 0);
}

void strata__futex_wake_shared(_Atomic uint32_t *word, int nwaiters)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, nwaiters, NULL, NULL, 0);
}
