/* What the benchmarks share: see common.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L   /* clock_gettime, strtok_r: however it is built */
#endif
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

uint64_t bench_median_u64(uint64_t *v, uint32_t n)
{
    qsort(v, n, sizeof v[0], bench_cmp_u64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t bench_percentile(const uint64_t *sorted, uint32_t n, double q)
{
    if (n == 0)
        return 0;
    double r = q * n;
    uint32_t k = (uint32_t)r;
    if ((double)k < r)
        k++;
    if (k == 0)
        k = 1;
    return sorted[k - 1];
}

bool bench_parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > UINT32_MAX || s[0] == '-')
        return false;
    *out = (uint32_t)v;
    return true;
}

bool bench_parse_u32_list(const char *s, uint32_t *out, uint32_t cap, uint32_t *n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == cap || !bench_parse_u32(tok, &out[*n]))
            return false;
        (*n)++;
    }
    return *n > 0;
}

bool bench_real_preset(int argc, char **argv, uint32_t *reps, uint32_t *warmup, uint64_t *min_tasks)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--real") == 0) {
            *reps = 3;
            *warmup = 1;
            *min_tasks = 0;
            return true;
        }
    return false;
}

bool bench_selected(const char *only, const char *name, bool prefix)
{
    if (!only)
        return true;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", only);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (prefix ? strncmp(name, tok, strlen(tok)) == 0 : strcmp(name, tok) == 0)
            return true;
    return false;
}

void bench_print_machine(const char *runtime, const char *extra)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                const char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ' || *c == '\t')
                        c++;
                    snprintf(model, sizeof model, "%s", c);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        }
        fclose(f);
    }
    printf("# %s, %ld online CPUs, %s%s\n", runtime, sysconf(_SC_NPROCESSORS_ONLN), model, extra);
}
