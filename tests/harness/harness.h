/* The test harness: one process per case, assertions on status and message, and
 * a cleanliness check after every case.
 *
 * A test file defines cases with TEST_CASE(name) { ... } and ends with
 * TEST_MAIN(CASE(a), CASE(b), ...). CMake (tests/CMakeLists.txt) finds the
 * TEST_CASE lines and registers each as CTest test <area>.<topic>.<name>, run as
 * `<program> <name>` under a TIMEOUT. A case fails on the first failed CHECK (it
 * prints file, line, the expression, and the last Strata error), on a hard
 * timeout (alarm), or when it leaves something behind: a thread, a child
 * process, a file descriptor, an entry in /dev/shm. Exit code 77 means skipped. */
#ifndef STRATA_TEST_HARNESS_H
#define STRATA_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

#define TEST_CASE(name) static void test_##name(void)
#define CASE(name) {#name, test_##name}
#define TEST_MAIN(...)                                                            \
    int main(int argc, char **argv)                                              \
    {                                                                            \
        static const test_case cases[] = {__VA_ARGS__};                          \
        return test_run_main(argc, argv, cases, sizeof cases / sizeof cases[0]); \
    }

int test_run_main(int argc, char **argv, const test_case *cases, size_t ncases);

void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
/* The running case leaves n large mappings behind on purpose (a chip abandoned
   to a hung kernel keeps its memory). */
void test_allow_mappings(int n);
/* The process's threads now (/proc/self/task). */
int test_thread_count(void);
/* Wait up to timeout_ms for the process to have at most n threads (a core
   thread abandoned to a hung kernel leaves once the kernel returns); true when
   it does. */
bool test_wait_for_threads(int n, unsigned timeout_ms);
/* Skip the running case (exit 77) with a reason. */
void test_skip(const char *reason) __attribute__((noreturn));

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond))                                                               \
            test_fail(__FILE__, __LINE__, "CHECK(%s) failed; last error: \"%s\"", #cond, \
                      strata_last_error());                                        \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                         \
    do {                                                                           \
        uint64_t va_ = (uint64_t)(a), vb_ = (uint64_t)(b);                        \
        if (va_ != vb_)                                                            \
            test_fail(__FILE__, __LINE__, "%s == %s failed: %llu != %llu", #a, #b, \
                      (unsigned long long)va_, (unsigned long long)vb_);          \
    } while (0)

/* The call returns `status` (a strata_status). */
#define CHECK_STATUS(expr, status)                                                 \
    do {                                                                           \
        int rc_ = (expr);                                                          \
        if (rc_ != (status))                                                       \
            test_fail(__FILE__, __LINE__, "%s returned %s, expected %s; last error: \"%s\"", #expr, \
                      strata_status_name(rc_), strata_status_name(status), strata_last_error()); \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, STRATA_OK)

/* The calling thread's last Strata error contains `needle`. */
#define CHECK_ERROR_HAS(needle)                                                    \
    do {                                                                           \
        if (strstr(strata_last_error(), (needle)) == NULL)                        \
            test_fail(__FILE__, __LINE__, "last error does not contain \"%s\": \"%s\"", (needle), \
                      strata_last_error());                                        \
    } while (0)

/* Run `program` with extra environment (NAME=value strings, NULL-terminated) is
   not needed here; helpers for workers: */
strata_worker *test_worker(uint32_t aic, uint32_t aiv);        /* created and initialised */
strata_buffer  test_malloc(strata_worker *w, uint64_t nbytes);  /* zeroed */
/* A 1-D contiguous tensor over a whole buffer of elements of dtype. */
strata_tensor  test_tensor(strata_buffer b, strata_dtype dtype);
/* Set (value non-NULL) or unset an environment variable. */
void test_setenv(const char *name, const char *value);
/* Resident set size of this process, bytes. */
uint64_t test_rss_bytes(void);
/* Whether addr lies in a mapping of this process (/proc/self/maps). */
bool test_is_mapped(uint64_t addr);
/* Monotonic time in nanoseconds. */
uint64_t test_now_ns(void);

#endif
