/* The doors to the system calls Strata makes.
 *
 * The fallible ones that set up or tear down (mappings, processes, threads,
 * descriptors, shared objects) go through the table below, one function per
 * call, so that a test build can fail any of them (core/fault.h; the point is
 * the call's name). Each behaves as the call it wraps; an injected failure
 * returns what the call returns on failure, with a plausible errno (ENOMEM,
 * EAGAIN, EMFILE). The clock and futex calls of the hot and waiting paths are
 * not fault points. */
#ifndef STRATA_CORE_SYS_H
#define STRATA_CORE_SYS_H

#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the fault-point table ---- */
void *strata__sys_mmap(size_t len, int prot, int flags);          /* anonymous; MAP_FAILED on failure */
pid_t strata__sys_fork(void);
int   strata__sys_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int   strata__sys_socketpair(int domain, int type, int protocol, int sv[2]);
int   strata__sys_signalfd(const sigset_t *mask, int flags);
int   strata__sys_pidfd_open(pid_t pid);
int   strata__sys_pipe2(int fds[2], int flags);
int   strata__sys_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa, char *const argv[],
                               char *const envp[]);
void *strata__sys_dlopen(const char *path, int flags);
/* dlerror() after strata__sys_dlopen, which says so when the failure was injected. */
const char *strata__sys_dlerror(void);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t strata__now_ns(void);

/* This process's pid, without a system call after the first: every public
   call checks it (a worker belongs to the process that created it), and a
   getpid costs 100 ns and more on a virtual machine. Kept in a page the kernel
   zeroes in every child however it was forked (MADV_WIPEONFORK: fork, _Fork,
   a raw system call); without that (Linux before 4.14), getpid every time. */
pid_t strata__self_pid(void);

/* Sleep while *word == expected, at most timeout_ns (0 = no limit). Returns 0 when
   woken or the word differed, ETIMEDOUT after the limit, EINTR on a signal. */
int  strata__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns);
void strata__futex_wake(_Atomic uint32_t *word, int nwaiters);
/* The same on a word in memory shared between processes. */
int  strata__futex_wait_shared(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns);
void strata__futex_wake_shared(_Atomic uint32_t *word, int nwaiters);

#endif
