/* Chip callables, and kernels loaded with dlopen or compiled from C sources.
 *
 * Global state: the process-wide cache of opened shared objects (a mutex-guarded
 * list). Objects are never closed: a kernel pointer handed out may run at any
 * later time, and dlclose would unmap it. Deliberate: the handles stay reachable
 * from the list, so leak checkers do not report them. */
#define _GNU_SOURCE
#include "chip/kernel.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/sys.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
/* A compile that takes longer than this is taken for a hung compiler. */
#define STRATA__COMPILE_TIMEOUT_S 300

extern char **environ;

const char *strata__core_name(strata_core_type core)
{
    return core == STRATA_AIC ? "AIC" : core == STRATA_AIV ? "AIV" : "invalid core type";
}

static int cmp_entry(const void *x, const void *y)
{
    const strata_kernel_entry *a = x, *b = y;
    return (a->func_id > b->func_id) - (a->func_id < b->func_id);
}

int strata__callable_copy(const strata_chip_callable *c, strata__callable *out)
{
    memset(out, 0, sizeof *out);
    const char *name = c->name ? c->name : "(unnamed)";
    if (c->orch == NULL)
        return strata__fail(STRATA_EINVAL, "chip callable '%s': orch is NULL", name);
    if (c->nkernels && c->kernels == NULL)
        return strata__fail(STRATA_EINVAL, "chip callable '%s': nkernels is %u but kernels is NULL",
                            name, c->nkernels);
    for (uint32_t i = 0; i < c->nkernels; i++) {
        const strata_kernel_entry *k = &c->kernels[i];
        if (k->func_id < 0)
            return strata__fail(STRATA_EINVAL, "chip callable '%s': kernels[%u] has func_id %d; func_ids must be >= 0",
                                name, i, k->func_id);
        if (k->fn == NULL)
            return strata__fail(STRATA_EINVAL, "chip callable '%s': kernels[%u] (func_id %d) has a NULL fn",
                                name, i, k->func_id);
        if (k->core != STRATA_AIC && k->core != STRATA_AIV)
            return strata__fail(STRATA_EINVAL, "chip callable '%s': kernels[%u] (func_id %d) has core type %d; use STRATA_AIC or STRATA_AIV",
                                name, i, k->func_id, (int)k->core);
    }
    out->name = strata__strdup(name);
    out->kernels = c->nkernels ? strata__malloc(c->nkernels * sizeof out->kernels[0]) : NULL;
    if (!out->name || (c->nkernels && !out->kernels)) {
        strata__callable_free(out);
        return strata__fail(STRATA_ENOMEM, "out of host memory copying chip callable '%s'", name);
    }
    if (c->nkernels)
        memcpy(out->kernels, c->kernels, c->nkernels * sizeof out->kernels[0]);
    if (c->nkernels > 1)
        qsort(out->kernels, c->nkernels, sizeof out->kernels[0], cmp_entry);
    for (uint32_t i = 1; i < c->nkernels; i++) {
        if (out->kernels[i].func_id == out->kernels[i - 1].func_id) {
            int id = out->kernels[i].func_id;
            strata__callable_free(out);
            return strata__fail(STRATA_EINVAL, "chip callable '%s': func_id %d appears twice in its kernel table",
                                name, id);
        }
    }
    out->orch = c->orch;
    out->nkernels = c->nkernels;
    return STRATA_OK;
}

void strata__callable_free(strata__callable *c)
{
    free(c->name);
    free(c->kernels);
    memset(c, 0, sizeof *c);
}

const strata_kernel_entry *strata__callable_kernel(const strata__callable *c, int func_id)
{
    /* func_ids 0..n-1, the common case, index the sorted table directly */
    if (func_id >= 0 && (uint32_t)func_id < c->nkernels && c->kernels[func_id].func_id == func_id)
        return &c->kernels[func_id];
    uint32_t lo = 0, hi = c->nkernels;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->kernels[mid].func_id < func_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nkernels && c->kernels[lo].func_id == func_id ? &c->kernels[lo] : NULL;
}

/* ---- shared objects ---- */

typedef struct loaded_object {
    char                 *path;
    void                 *handle;
    struct loaded_object *next;
} loaded_object;

static pthread_mutex_t objects_lock = PTHREAD_MUTEX_INITIALIZER;
static loaded_object *objects;

static int open_object(const char *path, void **handle)
{
    pthread_mutex_lock(&objects_lock);
    for (loaded_object *o = objects; o; o = o->next) {
        if (strcmp(o->path, path) == 0) {
            *handle = o->handle;
            pthread_mutex_unlock(&objects_lock);
            return STRATA_OK;
        }
    }
    int rc = STRATA_OK;
    void *h = strata__sys_dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = strata__sys_dlerror();
        struct stat st;
        rc = strata__fail(stat(path, &st) == 0 ? STRATA_EINVAL : STRATA_ENOENT,
                          "dlopen of kernel object '%s' failed: %s", path, why ? why : "unknown error");
    } else {
        loaded_object *o = strata__malloc(sizeof *o);
        char *p = strata__strdup(path);
        if (!o || !p) {
            free(o);
            free(p);
            dlclose(h);
            rc = strata__fail(STRATA_ENOMEM, "out of host memory caching kernel object '%s'", path);
        } else {
            o->path = p;
            o->handle = h;
            o->next = objects;
            objects = o;
            *handle = h;
        }
    }
    pthread_mutex_unlock(&objects_lock);
    return rc;
}

int strata_kernel_load(const char *so_path, const char *symbol, strata_kernel_fn *out)
{
    strata__clear_error();
    if (!so_path || !symbol || !out)
        return strata__fail(STRATA_EINVAL, "strata_kernel_load: %s is NULL",
                            !so_path ? "so_path" : !symbol ? "symbol" : "out");
    void *h = NULL;
    int rc = open_object(so_path, &h);
    if (rc)
        return rc;
    dlerror();
    void *sym = dlsym(h, symbol);
    if (sym == NULL)
        return strata__fail(STRATA_ENOENT, "kernel object '%s' has no symbol '%s'%s%s", so_path, symbol,
                            dlerror() ? "" : " (it resolves to NULL)", "; check the name and that it is not static");
    /* POSIX guarantees a data pointer from dlsym converts to a function pointer. */
    *out = (strata_kernel_fn)(uintptr_t)sym;
    return STRATA_OK;
}

/* ---- compiling kernel sources ---- */

/* Split extra flags on whitespace into argv (a copy in *storage). */
static int split_flags(const char *flags, char **storage, char ***argv_out, size_t *n_out)
{
    *storage = strata__strdup(flags ? flags : "");
    size_t cap = 8, n = 0;
    char **argv = strata__malloc(cap * sizeof *argv);
    if (!*storage || !argv) {
        free(*storage);
        free(argv);
        return strata__fail(STRATA_ENOMEM, "out of host memory splitting extra_cflags");
    }
    for (char *save = NULL, *tok = strtok_r(*storage, " \t\n\r\f\v", &save); tok;
         tok = strtok_r(NULL, " \t\n\r\f\v", &save)) {
        if (n == cap) {
            char **p = strata__realloc(argv, (cap *= 2) * sizeof *argv);
            if (!p) {
                free(argv);
                free(*storage);
                return strata__fail(STRATA_ENOMEM, "out of host memory splitting extra_cflags");
            }
            argv = p;
        }
        argv[n++] = tok;
    }
    *argv_out = argv;
    *n_out = n;
    return STRATA_OK;
}

int strata_kernel_compile(const char *c_path, const char *so_path, const char *extra_cflags)
{
    strata__clear_error();
    if (!c_path || !so_path)
        return strata__fail(STRATA_EINVAL, "strata_kernel_compile: %s is NULL", !c_path ? "c_path" : "so_path");
    if (access(c_path, R_OK) != 0)
        return strata__fail(STRATA_ENOENT, "kernel source '%s' cannot be read: %s", c_path, strerror(errno));
    const char *cc = getenv("CC");
    if (cc == NULL || cc[0] == '\0')
        cc = "cc";

    char *storage = NULL;
    char **extra = NULL;
    size_t nextra = 0;
    int rc = split_flags(extra_cflags, &storage, &extra, &nextra);
    if (rc)
        return rc;
    char **argv = strata__malloc((nextra + 10) * sizeof *argv);
    if (!argv) {
        free(extra);
        free(storage);
        return strata__fail(STRATA_ENOMEM, "out of host memory building the compiler command");
    }
    size_t n = 0;
    argv[n++] = (char *)cc;
    argv[n++] = "-shared";
    argv[n++] = "-fPIC";
    argv[n++] = "-O2";
    for (size_t i = 0; i < nextra; i++)
        argv[n++] = extra[i];
    argv[n++] = "-o";
    argv[n++] = (char *)so_path;
    argv[n++] = (char *)c_path;
    argv[n] = NULL;

    /* The compiler's stdout and stderr go to a pipe we read to the end, so its
       diagnostics reach the message whole. */
    int fds[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int fa_ok = 0;
    pid_t pid = -1;
    char *out = NULL;
    size_t out_len = 0, out_cap = 0;
    if (strata__sys_pipe2(fds, O_CLOEXEC) != 0) {
        rc = strata__fail_sys(errno, "pipe2 for the kernel compiler");
        goto done;
    }
    if ((errno = posix_spawn_file_actions_init(&fa)) != 0) {
        rc = strata__fail_sys(errno, "posix_spawn_file_actions_init");
        goto done;
    }
    fa_ok = 1;
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    int err = strata__sys_posix_spawnp(&pid, cc, &fa, argv, environ);
    close(fds[1]);
    fds[1] = -1;
    if (err != 0) {
        rc = strata__fail(STRATA_ENOENT, "starting the C compiler '%s' failed: %s; install a C compiler or set CC",
                          cc, strerror(err));
        goto done;
    }
    /* The pidfd names the compiler for the kill and the wait below, so that
       neither can reach another process if the application reaps children
       itself. Without one (old kernels), the pid is used. */
    int pidfd = strata__sys_pidfd_open(pid);
    /* Read to the end, whatever happens: a compiler blocked on a full pipe
       would never exit. Out of memory keeps what was read and drops the rest.
       A compiler that runs past STRATA__COMPILE_TIMEOUT_S is killed. */
    uint64_t deadline = strata__now_ns() + STRATA__COMPILE_TIMEOUT_S * 1000000000ull;
    bool timed_out = false;
    for (;;) {
        if (out_len + 4096 + 1 > out_cap) {
            size_t cap = out_cap ? out_cap * 2 : 8192;
            char *p = strata__realloc(out, cap);
            if (p) {
                out = p;
                out_cap = cap;
            }
        }
        uint64_t now = strata__now_ns();
        struct pollfd pf = {.fd = fds[0], .events = POLLIN};
        int pr = now < deadline ? poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1) : 0;
        if (pr == 0) {
            timed_out = true;
            if (pidfd >= 0)
                syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
            else
                kill(pid, SIGKILL);
            break;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        char drain[4096];
        bool keep = out_len + 4096 + 1 <= out_cap;
        ssize_t r = read(fds[0], keep ? out + out_len : drain, 4096);
        if (r > 0 && keep)
            out_len += (size_t)r;
        else if (r == 0 || (r < 0 && errno != EINTR))
            break;
    }
    if (out)
        out[out_len] = '\0';
    int status = 0;
    if (pidfd >= 0) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        long w;
        do
            w = syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED, NULL);
        while (w < 0 && errno == EINTR);
        int werr = errno;
        close(pidfd);
        if (w < 0) {
            rc = werr == ECHILD ? strata__fail(STRATA_ESYS, "the C compiler (pid %d) was reaped by someone else in this "
                                              "process (is SIGCHLD ignored?), so whether it succeeded is unknown; "
                                              "do not ignore SIGCHLD while kernels compile", (int)pid)
                               : strata__fail_sys(werr, "waitid for the C compiler (pid %d)", (int)pid);
            goto done;
        }
        status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
    } else {
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                rc = strata__fail_sys(errno, "waitpid for the C compiler (pid %d)", (int)pid);
                goto done;
            }
        }
    }
    if (timed_out) {
        rc = strata__fail(STRATA_ETIMEDOUT, "compiling kernel source '%s' with '%s' took more than %d s; the compiler "
                          "(pid %d) was killed", c_path, cc, STRATA__COMPILE_TIMEOUT_S, (int)pid);
        goto done;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        rc = STRATA_OK;
    } else if (WIFEXITED(status)) {
        rc = strata__fail(STRATA_EINVAL, "compiling kernel source '%s' with '%s' failed (exit status %d):\n%s",
                          c_path, cc, WEXITSTATUS(status), out ? out : "");
    } else {
        rc = strata__fail(STRATA_EINVAL, "compiling kernel source '%s': compiler '%s' (pid %d) was killed by signal %d",
                          c_path, cc, (int)pid, WTERMSIG(status));
    }
done:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    free(out);
    free(argv);
    free(extra);
    free(storage);
    return rc;
}
