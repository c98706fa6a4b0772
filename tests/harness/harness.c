/* The test harness: see harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *running_case = "?";
static int allowed_mappings;

void test_allow_mappings(int n)
{
    allowed_mappings = n;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s (%s:%d): ", running_case, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

void test_skip(const char *reason)
{
    printf("SKIP %s: %s\n", running_case, reason);
    fflush(stdout);
    _exit(77);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Large anonymous writable mappings (16 MiB or more): chip memory and shared
   heaps are such mappings, and malloc's own arenas stay below the size. Under a
   sanitizer or valgrind the runtime makes large mappings of its own, so the count
   is not taken there (-1). */
static int count_large_mappings(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return -1;
#else
    if (getenv("STRATA_TEST_NO_MAPS_CHECK"))
        return -1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long lo, hi, off;
        char perms[8], dev[16];
        unsigned long inode;
        int path_at = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %15s %lu %n", &lo, &hi, perms, &off, dev, &inode, &path_at) < 6)
            continue;
        bool anonymous = inode == 0 && (path_at == 0 || line[path_at] == '\n' || line[path_at] == '\0');
        if (anonymous && perms[0] == 'r' && perms[1] == 'w' && hi - lo >= (16ull << 20))
            n++;
    }
    fclose(f);
    return n;
#endif
}

typedef struct snapshot {
    int fds, threads, shm, maps;
} snapshot;

static snapshot take_snapshot(void)
{
    snapshot s = {count_dir("/proc/self/fd"), count_dir("/proc/self/task"), count_dir("/dev/shm"),
                  count_large_mappings()};
    return s;
}

int test_thread_count(void)
{
    return count_dir("/proc/self/task");
}

bool test_wait_for_threads(int n, unsigned timeout_ms)
{
    for (unsigned i = 0; i < timeout_ms && test_thread_count() > n; i++) {
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    return test_thread_count() <= n;
}

static void *nothing(void *arg)
{
    return arg;
}

/* Start and join one thread before the snapshot: sanitizer runtimes start their
   own helper thread at the first pthread_create, which is not a leak. */
static void warm_up_threads(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) == 0)
        pthread_join(t, NULL);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: hard timeout (the case hung); alarm fired\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(2);
}

int test_run_main(int argc, char **argv, const test_case *cases, size_t ncases)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < ncases; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASE | --list\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < ncases; i++) {
        if (strcmp(argv[1], cases[i].name) != 0)
            continue;
        running_case = cases[i].name;
        /* Backstop behind CTest's TIMEOUT: a hung case dies here with a message. */
        const char *t = getenv("STRATA_TEST_ALARM_S");
        signal(SIGALRM, on_alarm);
        alarm(t ? (unsigned)atoi(t) : 600);
        warm_up_threads();
        snapshot before = take_snapshot();
        cases[i].fn();
        alarm(0);
        snapshot after = take_snapshot();
        if (after.threads != before.threads)
            test_fail(__FILE__, __LINE__, "left %d threads running (had %d at the start)", after.threads,
                      before.threads);
        if (after.fds != before.fds)
            test_fail(__FILE__, __LINE__, "left %d file descriptors open (had %d at the start)", after.fds,
                      before.fds);
        if (after.shm != before.shm)
            test_fail(__FILE__, __LINE__, "left %d entries in /dev/shm (had %d at the start)", after.shm,
                      before.shm);
        if (before.maps >= 0 && after.maps != before.maps + allowed_mappings)
            test_fail(__FILE__, __LINE__, "left %d large anonymous mappings (had %d at the start, %d allowed to "
                      "stay): chip memory or a shared heap was not unmapped", after.maps, before.maps,
                      allowed_mappings);
        errno = 0;
        if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
            test_fail(__FILE__, __LINE__, "left a child process behind");
        printf("PASS %s\n", running_case);
        return 0;
    }
    fprintf(stderr, "%s: no case named '%s' (try --list)\n", argv[0], argv[1]);
    return 2;
}

strata_worker *test_worker(uint32_t aic, uint32_t aiv)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.aic_cores = aic;
    cfg.aiv_cores = aiv;
    cfg.device_memory_bytes = 256ull << 20;
    strata_worker *w = NULL;
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK_OK(strata_worker_init(w));
    return w;
}

strata_buffer test_malloc(strata_worker *w, uint64_t nbytes)
{
    strata_buffer b;
    CHECK_OK(strata_worker_malloc(w, 0, nbytes, &b));
    void *zero = calloc(1, nbytes);
    CHECK(zero != NULL);
    CHECK_OK(strata_worker_copy_to(w, b, 0, zero, nbytes));
    free(zero);
    return b;
}

strata_tensor test_tensor(strata_buffer b, strata_dtype dtype)
{
    uint64_t shape[1] = {b.nbytes / strata_dtype_size(dtype)};
    return strata_tensor_make((const void *)(uintptr_t)b.addr, dtype, 1, shape);
}

void test_setenv(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

uint64_t test_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

bool test_is_mapped(uint64_t addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        test_fail(__FILE__, __LINE__, "cannot read /proc/self/maps");
    char line[512];
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long long lo, hi;
        if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && addr >= lo && addr < hi)
            found = true;
    }
    fclose(f);
    return found;
}

uint64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
