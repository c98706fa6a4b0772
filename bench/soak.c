/* bench/soak: a level-3 worker (two chips, two SUB workers) running random DAGs
 * for a given time under chaos, every run checked.
 *
 * Each run builds a random DAG of chip tasks, SUB tasks and chip groups over a
 * few shared host buffers (tags INPUT and INOUT), computes what it must leave
 * in them with a sequential reference, and compares after the run. Meanwhile:
 * - a chaos thread sends SIGKILL or SIGSTOP (so that timeouts fire) to random
 *   children at random moments, found in /proc as the children of the worker's
 *   spawner, and now and then SIGKILL to the spawner itself;
 * - some tasks misbehave on purpose: a kernel or SUB function that fails, that
 *   calls _exit, or that hangs past the task timeout.
 * Every run must either leave exactly the reference's buffers, or fail with a
 * named cause (STRATA_ECHILD or STRATA_ETIMEDOUT naming a pid, STRATA_ETASK
 * naming what returned nonzero). Between runs it samples the parent's RSS,
 * descriptors, mappings and threads, and the worker's processes; at the end
 * they must be flat (after a warm-up sample) and close must leave nothing.
 *
 *   soak [--seconds N] [--seed S] [--sample-s N] [--quiet]
 *
 * Exit status 0 when every run was correct or failed with a named cause and
 * everything stayed flat; 1 otherwise. docs/reliability.md has the figures. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <strata/strata.h>

#include "common.h"

/* Under a sanitizer its runtime holds freed memory back and maps memory of its
   own: RSS and mappings are then not Strata's, and are reported, not judged. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZED 1
#endif
#endif
#ifndef SOAK_SANITIZED
#define SOAK_SANITIZED 0
#endif

enum { NBUF = 6, ELEMS = 8, MAX_TASKS = 60 };
enum { ACT_OK = 0, ACT_FAIL = 1, ACT_EXIT = 2, ACT_HANG = 3 };

/* ---- what tasks compute ---- */

/* out[i] = out[i] * 1000003 + in0[i] + in1[i] + salt + i */
static void mix(const strata_task_args *a)
{
    uint64_t *out = (uint64_t *)(uintptr_t)(a->tensors[0].addr);
    uint64_t acc[ELEMS];
    for (int i = 0; i < ELEMS; i++)
        acc[i] = out[i] * 1000003u + a->scalars[1] + (uint64_t)i;
    for (uint32_t k = 1; k < a->ntensors; k++) {
        const uint64_t *in = (const uint64_t *)(uintptr_t)(a->tensors[k].addr);
        for (int i = 0; i < ELEMS; i++)
            acc[i] += in[i];
    }
    memcpy(out, acc, sizeof acc);
}

/* scalars: [0] the action, [1] the salt */
static int act(const strata_task_args *a)
{
    switch (a->scalars[0]) {
    case ACT_FAIL: return 1;
    case ACT_EXIT: _exit(3);
    case ACT_HANG:
        for (;;)
            pause();
    }
    mix(a);
    return 0;
}

static int mix_kernel(const strata_task_args *a)
{
    return act(a);
}

static int mix_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    return strata_chip_submit(o, 0, args);
}

static int mix_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    return act(a);
}

static const strata_kernel_entry mix_kernels[] = {{0, STRATA_AIV, mix_kernel}};

/* ---- random DAGs ---- */

typedef struct task_plan {
    int      target;            /* 0, 1: that chip; 2: a SUB child; 3: a group on both chips */
    uint32_t out[2], nin[2], in[2][2];
    uint64_t action, salt[2];
} task_plan;

typedef struct dag {
    strata_handle chip, sub;
    strata_tensor buf[NBUF];
    uint64_t     *data[NBUF];
    task_plan     tasks[MAX_TASKS];
    uint32_t      ntasks;
} dag;

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void plan(dag *d, double misbehave)
{
    d->ntasks = 1 + (uint32_t)(rnd() % MAX_TASKS);
    bool bad_one = (double)(rnd() % 1000000) / 1e6 < misbehave;
    uint32_t bad_at = (uint32_t)(rnd() % d->ntasks);
    for (uint32_t t = 0; t < d->ntasks; t++) {
        task_plan *p = &d->tasks[t];
        memset(p, 0, sizeof *p);
        p->target = (int)(rnd() % 4);
        uint32_t members = p->target == 3 ? 2 : 1;
        p->out[0] = (uint32_t)(rnd() % NBUF);
        p->out[1] = (p->out[0] + 1 + (uint32_t)(rnd() % (NBUF - 1))) % NBUF;
        for (uint32_t m = 0; m < members; m++) {
            p->salt[m] = rnd();
            p->nin[m] = (uint32_t)(rnd() % 3);
            for (uint32_t k = 0; k < p->nin[m]; k++) {
                /* never the other member's output: members run together */
                uint32_t b;
                do
                    b = (uint32_t)(rnd() % NBUF);
                while (b == p->out[0] || (members == 2 && b == p->out[1]));
                p->in[m][k] = b;
            }
        }
        p->action = bad_one && t == bad_at ? 1 + rnd() % 3 : ACT_OK;
    }
}

static void member_args(const dag *d, const task_plan *p, uint32_t m, strata_tensor *t, strata_tag *tags,
                        uint64_t *sc, strata_task_args *a)
{
    t[0] = d->buf[p->out[m]];
    tags[0] = STRATA_INOUT;
    for (uint32_t k = 0; k < p->nin[m]; k++) {
        t[1 + k] = d->buf[p->in[m][k]];
        tags[1 + k] = STRATA_INPUT;
    }
    sc[0] = p->action;
    sc[1] = p->salt[m];
    *a = (strata_task_args){t, tags, 1 + p->nin[m], sc, 2};
}

static int dag_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    dag *d = ctx;
    for (uint32_t i = 0; i < d->ntasks; i++) {
        const task_plan *p = &d->tasks[i];
        strata_tensor t[2][3];
        strata_tag tags[2][3];
        uint64_t sc[2][2];
        strata_task_args a[2];
        member_args(d, p, 0, t[0], tags[0], sc[0], &a[0]);
        int rc;
        if (p->target == 3) {
            member_args(d, p, 1, t[1], tags[1], sc[1], &a[1]);
            rc = strata_submit_next_level_group(o, d->chip, a, 2, NULL, (int[]){0, 1});
        } else if (p->target == 2) {
            rc = strata_submit_sub(o, d->sub, &a[0]);
        } else {
            rc = strata_submit_next_level(o, d->chip, &a[0], NULL, p->target);
        }
        if (rc == STRATA_ECANCELED)
            return 0;   /* the run failed already: it returns that failure */
        if (rc)
            return rc;
    }
    return 0;
}

/* The DAG's effect, one task after another (what the tags promise). */
static void reference(const dag *d, uint64_t ref[NBUF][ELEMS])
{
    for (uint32_t i = 0; i < d->ntasks; i++) {
        const task_plan *p = &d->tasks[i];
        uint32_t members = p->target == 3 ? 2 : 1;
        uint64_t next[2][ELEMS];
        for (uint32_t m = 0; m < members; m++) {
            for (int e = 0; e < ELEMS; e++) {
                uint64_t v = ref[p->out[m]][e] * 1000003u + p->salt[m] + (uint64_t)e;
                for (uint32_t k = 0; k < p->nin[m]; k++)
                    v += ref[p->in[m][k]][e];
                next[m][e] = v;
            }
        }
        for (uint32_t m = 0; m < members; m++)
            memcpy(ref[p->out[m]], next[m], sizeof next[m]);
    }
}

/* ---- the process table ---- */

/* The processes whose parent is `parent`: up to cap pids; zombies counted. */
static int children_of(pid_t parent, pid_t *out, int cap, int *zombies)
{
    DIR *d = opendir("/proc");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pid_t p = (pid_t)atoi(e->d_name);
        char st;
        int ppid;
        if (!bench_proc_stat(p, &st, &ppid) || ppid != parent)
            continue;
        if (st == 'Z') {
            if (zombies)
                ++*zombies;
            continue;
        }
        if (n < cap)
            out[n] = p;
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "re");
    int n = 0;
    for (int c; f && (c = fgetc(f)) != EOF;)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

/* Held by the chaos thread while it reads /proc (its descriptors would count
   as the process's) and by the sampler. */
static pthread_mutex_t proc_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct sample {
    double t_s;
    long   rss_kib;
    int    fds, maps, threads, procs, zombies;
    uint64_t runs;
} sample;

static sample take_sample(double t_s, uint64_t runs)
{
    pthread_mutex_lock(&proc_lock);
    sample s = {t_s, bench_rss_kib(), bench_count_dir("/proc/self/fd"), count_lines("/proc/self/maps"),
                bench_count_dir("/proc/self/task"), 0, 0, runs};
    pid_t kids[8];
    int zombies = 0;
    int n = children_of(getpid(), kids, 8, &zombies);
    s.procs = n;
    for (int i = 0; i < n && i < 8; i++)
        s.procs += children_of(kids[i], NULL, 0, &zombies);
    s.zombies = zombies;
    pthread_mutex_unlock(&proc_lock);
    return s;
}

/* ---- chaos ---- */

typedef struct chaos {
    _Atomic bool stop;
    uint64_t     seed;
    _Atomic uint64_t kills, stops, spawner_kills;
} chaos;


static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *chaos_main(void *arg)
{
    chaos *c = arg;
    uint64_t r = c->seed | 1;
    while (!atomic_load(&c->stop)) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        sleep_ms(50 + r % 450);
        pid_t spawner[2], kids[8];
        pthread_mutex_lock(&proc_lock);
        int found = children_of(getpid(), spawner, 2, NULL);
        int n = found == 1 ? children_of(spawner[0], kids, 8, NULL) : 0;
        pthread_mutex_unlock(&proc_lock);
        if (found != 1 || n <= 0)
            continue;
        uint64_t dice = (r >> 20) % 100;
        if (dice < 2) {
            kill(spawner[0], SIGKILL);
            atomic_fetch_add(&c->spawner_kills, 1);
        } else if (dice < 60) {
            kill(kids[(r >> 8) % (uint64_t)(n < 8 ? n : 8)], SIGKILL);
            atomic_fetch_add(&c->kills, 1);
        } else {
            kill(kids[(r >> 8) % (uint64_t)(n < 8 ? n : 8)], SIGSTOP);
            atomic_fetch_add(&c->stops, 1);
        }
    }
    return NULL;
}

/* ---- the soak ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: soak [--seconds N] [--seed S] [--sample-s N] [--quiet]\n"
               "  a level-3 worker with 2 chips and 2 SUB workers runs random DAGs for N seconds\n"
               "  (default 60) while children are killed, stopped and made to fail; every run is\n"
               "  checked and resources are sampled every --sample-s seconds (default 10)\n");
}

int main(int argc, char **argv)
{
    uint32_t seconds = 60, seed = (uint32_t)time(NULL), sample_s = 10;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--seconds") == 0 && (v = bench_option_value("soak", argc, argv, &i)))
            seconds = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && (v = bench_option_value("soak", argc, argv, &i)))
            seed = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--sample-s") == 0 && (v = bench_option_value("soak", argc, argv, &i)))
            sample_s = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else {
            usage(strcmp(argv[i], "--help") == 0 ? stdout : stderr);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (sample_s == 0)
        sample_s = 1;
    rng_state = (uint64_t)seed * 0x9e3779b97f4a7c15ull | 1;
    printf("# soak: %u s, seed %u (rerun with --seed %u)\n", seconds, seed, seed);

    int ids[2] = {0, 1};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = 2;
    cfg.num_sub_workers = 2;
    cfg.task_timeout_ms = 300;
    cfg.close_grace_ms = 200;
    cfg.device_memory_bytes = 16 << 20;
    cfg.shared_heap_bytes = 1 << 20;
    cfg.node_task_window = 16;
    strata_worker *w;
    dag d;
    strata_chip_callable callable = {"mix", mix_chip_orch, mix_kernels, 1};
    if (strata_worker_create(&cfg, &w) || strata_worker_register_chip(w, &callable, &d.chip) ||
        strata_worker_register_sub(w, mix_sub, NULL, &d.sub) || strata_worker_init(w)) {
        fprintf(stderr, "soak: setting up the worker failed: %s\n", strata_last_error());
        return 1;
    }
    for (int b = 0; b < NBUF; b++) {
        void *p;
        if (strata_worker_host_alloc(w, ELEMS * 8, &p)) {
            fprintf(stderr, "soak: %s\n", strata_last_error());
            return 1;
        }
        d.data[b] = p;
        d.buf[b] = strata_tensor_make(p, STRATA_U64, 1, (uint64_t[]){ELEMS});
    }

    chaos ch = {.seed = (uint64_t)seed * 7919u + 1};
    pthread_t chaos_thread;
    pthread_create(&chaos_thread, NULL, chaos_main, &ch);

    uint64_t ok = 0, wrong = 0, unnamed = 0, by_status[16] = {0};
    sample samples[4096];
    uint32_t nsamples = 0;
    uint64_t t0 = bench_now_ns(), next_sample = t0;
    for (;;) {
        uint64_t now = bench_now_ns();
        uint64_t runs = ok + wrong + unnamed;
        for (int i = 0; i < 16; i++)
            runs += by_status[i];
        if (now >= next_sample && nsamples < 4095) {
            samples[nsamples] = take_sample((double)(now - t0) / 1e9, runs);
            if (!quiet) {
                sample *s = &samples[nsamples];
                printf("# t=%.0fs runs=%llu rss=%ld KiB fds=%d maps=%d threads=%d procs=%d zombies=%d\n", s->t_s,
                       (unsigned long long)s->runs, s->rss_kib, s->fds, s->maps, s->threads, s->procs, s->zombies);
                fflush(stdout);
            }
            nsamples++;
            next_sample += (uint64_t)sample_s * 1000000000u;
        }
        if (now - t0 >= (uint64_t)seconds * 1000000000u)
            break;
        plan(&d, 0.05);
        uint64_t ref[NBUF][ELEMS];
        for (int b = 0; b < NBUF; b++)
            for (int e = 0; e < ELEMS; e++)
                ref[b][e] = d.data[b][e] = rnd();
        reference(&d, ref);
        int rc = strata_worker_run(w, dag_orch, &d, NULL, NULL);
        if (rc == STRATA_OK) {
            bool same = true;
            for (int b = 0; b < NBUF; b++)
                same &= memcmp(d.data[b], ref[b], sizeof ref[b]) == 0;
            if (same) {
                ok++;
            } else {
                wrong++;
                fprintf(stderr, "soak: run %llu returned OK with wrong buffers (seed %u)\n",
                        (unsigned long long)(ok + wrong), seed);
            }
            continue;
        }
        const char *m = strata_last_error();
        bool named = (rc == STRATA_ECHILD || rc == STRATA_ETIMEDOUT) ? strstr(m, "pid ") != NULL
                     : rc == STRATA_ETASK                            ? strstr(m, "returned") != NULL
                                                                     : false;
        if (named && -rc < 16) {
            by_status[-rc]++;
        } else {
            unnamed++;
            fprintf(stderr, "soak: a run failed without a named cause: %s: %s\n", strata_status_name(rc), m);
        }
    }
    atomic_store(&ch.stop, true);
    pthread_join(chaos_thread, NULL);
    uint64_t failed = 0;
    for (int i = 0; i < 16; i++)
        failed += by_status[i];
    samples[nsamples++] = take_sample((double)(bench_now_ns() - t0) / 1e9, ok + failed + wrong + unnamed);
    int close_rc = strata_worker_close(w);
    strata_run_stats st;
    strata_worker_stats(w, &st);
    strata_worker_destroy(w);
    sample after = take_sample((double)(bench_now_ns() - t0) / 1e9, 0);

    /* flat: from the second sample (after warm-up) to the last */
    bool flat = true;
    const sample *first = nsamples > 2 ? &samples[1] : &samples[0];
    int dfds = 0, dmaps = 0, dthreads = 0;
    long drss = 0;
    for (uint32_t i = (uint32_t)(first - samples); i < nsamples; i++) {
        if (samples[i].fds - first->fds > dfds)
            dfds = samples[i].fds - first->fds;
        if (samples[i].maps - first->maps > dmaps)
            dmaps = samples[i].maps - first->maps;
        if (samples[i].threads - first->threads > dthreads)
            dthreads = samples[i].threads - first->threads;
        if (samples[i].rss_kib - first->rss_kib > drss)
            drss = samples[i].rss_kib - first->rss_kib;
        flat &= samples[i].procs <= 5;
    }
    flat &= dfds == 0 && dthreads == 0 && (SOAK_SANITIZED || (dmaps == 0 && drss < 4096));
    bool clean = close_rc == STRATA_OK && after.procs == 0 && after.zombies == 0;

    printf("\n| runs | correct | failed, named | ECHILD | ETIMEDOUT | ETASK | wrong | unnamed | restarts |\n"
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
           "| %llu | %llu | %llu | %llu | %llu | %llu | %llu | %llu | %llu |\n",
           (unsigned long long)(ok + failed + wrong + unnamed), (unsigned long long)ok, (unsigned long long)failed,
           (unsigned long long)by_status[-STRATA_ECHILD], (unsigned long long)by_status[-STRATA_ETIMEDOUT],
           (unsigned long long)by_status[-STRATA_ETASK], (unsigned long long)wrong, (unsigned long long)unnamed,
           (unsigned long long)st.child_restarts);
    printf("\nchaos: %llu SIGKILL, %llu SIGSTOP, %llu SIGKILL of the spawner\n",
           (unsigned long long)atomic_load(&ch.kills), (unsigned long long)atomic_load(&ch.stops),
           (unsigned long long)atomic_load(&ch.spawner_kills));
    printf("\n| t (s) | runs | RSS (KiB) | fds | mappings | threads | processes | zombies |\n"
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (uint32_t i = 0; i < nsamples; i++)
        printf("| %.0f | %llu | %ld | %d | %d | %d | %d | %d |\n", samples[i].t_s,
               (unsigned long long)samples[i].runs, samples[i].rss_kib, samples[i].fds, samples[i].maps,
               samples[i].threads, samples[i].procs, samples[i].zombies);
    printf("\nafter close: %d processes, %d zombies, close %s\n", after.procs, after.zombies,
           strata_status_name(close_rc));
    printf("growth from the first sample after warm-up: RSS %ld KiB, fds %d, mappings %d, threads %d: %s%s\n",
           drss, dfds, dmaps, dthreads, flat ? "flat" : "NOT FLAT",
           SOAK_SANITIZED ? " (RSS and mappings are the sanitizer's here, not judged)" : "");
    bool pass = wrong == 0 && unnamed == 0 && flat && clean && ok > 0;
    printf("%s\n", pass ? "soak: PASS" : "soak: FAIL");
    return pass ? 0 : 1;
}
