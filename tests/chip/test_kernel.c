/* chip.kernel: kernels loaded from shared objects and compiled from C sources. */
#include "harness.h"

#include <unistd.h>

static strata_kernel_fn axpy_fn;

static int axpy_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tags[2] = {STRATA_INPUT, STRATA_INOUT};
    uint64_t a = 3;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, tags, 2, &a, 1});
}

/* Run y += 3 x with kernel fn on a fresh worker and check the result. */
static void check_axpy(strata_kernel_fn fn)
{
    strata_worker *w = test_worker(1, 1);
    strata_kernel_entry k[] = {{0, STRATA_AIV, fn}};
    strata_chip_callable c = {"axpy", axpy_orch, k, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    float x[256], y[256];
    for (int i = 0; i < 256; i++) {
        x[i] = (float)i;
        y[i] = 1.0f;
    }
    strata_buffer bx = test_malloc(w, sizeof x), by = test_malloc(w, sizeof y);
    CHECK_OK(strata_worker_copy_to(w, bx, 0, x, sizeof x));
    CHECK_OK(strata_worker_copy_to(w, by, 0, y, sizeof y));
    strata_tensor t[2] = {test_tensor(bx, STRATA_F32), test_tensor(by, STRATA_F32)};
    strata_tag tags[2] = {STRATA_INPUT, STRATA_INOUT};
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){t, tags, 2, NULL, 0}, NULL));
    CHECK_OK(strata_worker_copy_from(w, y, by, 0, sizeof y));
    for (int i = 0; i < 256; i++)
        CHECK(y[i] == 1.0f + 3.0f * (float)i);
    strata_worker_destroy(w);
}

TEST_CASE(load_from_shared_object)
{
    CHECK_OK(strata_kernel_load(STRATA_TEST_KERNEL_SO, "strata_test_axpy", &axpy_fn));
    CHECK(axpy_fn != NULL);
    strata_kernel_fn again = NULL;
    CHECK_OK(strata_kernel_load(STRATA_TEST_KERNEL_SO, "strata_test_axpy", &again));
    CHECK(again == axpy_fn);
    check_axpy(axpy_fn);
}

TEST_CASE(load_errors)
{
    strata_kernel_fn fn;
    CHECK_STATUS(strata_kernel_load("/nonexistent/kernels.so", "k", &fn), STRATA_ENOENT);
    CHECK_ERROR_HAS("dlopen of kernel object '/nonexistent/kernels.so' failed");
    CHECK_STATUS(strata_kernel_load(STRATA_TEST_KERNEL_SO, "no_such_kernel", &fn), STRATA_ENOENT);
    CHECK_ERROR_HAS("has no symbol 'no_such_kernel'");
    CHECK_STATUS(strata_kernel_load(STRATA_SOURCE_DIR "/README.md", "k", &fn), STRATA_EINVAL);
    CHECK_ERROR_HAS("README.md");
    CHECK_STATUS(strata_kernel_load(NULL, "k", &fn), STRATA_EINVAL);
    CHECK_ERROR_HAS("so_path is NULL");
}

static void temp_path(char *buf, size_t n, const char *suffix)
{
    snprintf(buf, n, "/tmp/strata-test-%d-%s", (int)getpid(), suffix);
}

TEST_CASE(compile_then_load)
{
    if (access("/usr/bin/cc", X_OK) != 0 && getenv("CC") == NULL)
        test_skip("no C compiler at /usr/bin/cc");
    char so[256];
    temp_path(so, sizeof so, "axpy.so");
    CHECK_OK(strata_kernel_compile(STRATA_SOURCE_DIR "/tests/chip/kernels/axpy.c", so,
                                   "-I" STRATA_SOURCE_DIR "/include   -DUNUSED_FLAG=1 "));
    strata_kernel_fn fn;
    CHECK_OK(strata_kernel_load(so, "strata_test_axpy", &fn));
    check_axpy(fn);
    unlink(so);
}

TEST_CASE(compile_errors)
{
    char src[256], so[256];
    temp_path(src, sizeof src, "broken.c");
    temp_path(so, sizeof so, "broken.so");
    FILE *f = fopen(src, "w");
    CHECK(f != NULL);
    fputs("int broken(void) { return undeclared_identifier_xyz; }\n", f);
    fclose(f);
    CHECK_STATUS(strata_kernel_compile(src, so, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("compiling kernel source");
    CHECK_ERROR_HAS("undeclared_identifier_xyz");   /* the compiler's own words */
    unlink(src);
    CHECK_STATUS(strata_kernel_compile("/nonexistent/k.c", so, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("kernel source '/nonexistent/k.c' cannot be read");
    /* A missing compiler is named. */
    temp_path(src, sizeof src, "ok.c");
    f = fopen(src, "w");
    CHECK(f != NULL);
    fputs("int ok(void) { return 0; }\n", f);
    fclose(f);
    test_setenv("CC", "/nonexistent/bin/cc");
    CHECK_STATUS(strata_kernel_compile(src, so, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("starting the C compiler '/nonexistent/bin/cc' failed");
    test_setenv("CC", NULL);
    unlink(src);
}

TEST_MAIN(CASE(load_from_shared_object), CASE(load_errors), CASE(compile_then_load), CASE(compile_errors))
