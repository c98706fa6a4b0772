/* node.hostile: a worker inside an application that does what real servers do:
 * ignores SIGCHLD or reaps every child itself, recycles pids, initialises on a
 * thread that then ends, blocks signals, lowers its descriptor limit, forks
 * itself, signals its own process group, kills two children at once, runs SUB
 * functions that close every descriptor or start processes of their own, and
 * calls the worker from places it must refuse. Every case checks the status,
 * the words of the message, and that every task ran exactly once. */
#include "node_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* ---- the SUB function and its orchestration ---- */

enum {
    MODE_COUNT = 0,        /* t[0] += 1: counts how often the task ran */
    MODE_HANG = 1,         /* t[1] = pid, then wait to be killed */
    MODE_CLOSE_FDS = 2,    /* close 3..1024, open the log file, write a line, count */
    MODE_GRANDCHILD = 3,   /* start a process that runs forever; t[2] = its pid; count */
    MODE_USE_PARENT = 4,   /* call the parent's worker; count only if each call is refused */
    MODE_SLEEP = 5,        /* 200 ms, then count */
    MODE_FORK_RETURN = 6,  /* fork, and both copies return (a helper that forgot _exit); count */
    MODE_DESTROY_OTHER = 7 /* open /dev/null, destroy another worker, then write to the file; count */
};

static char log_path[256];
static strata_worker *parent_worker;
static strata_worker *other_worker;

static int hostile_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    uint64_t *t = u64_of(&a->tensors[0]);
    switch (a->scalars[0]) {
    case MODE_HANG:
        t[1] = (uint64_t)getpid();
        for (;;)
            pause();
    case MODE_CLOSE_FDS: {
        for (int fd = 3; fd <= 1024; fd++)
            close(fd);
        int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, "log line\n", 9) != 9)
            return 1;
        break;   /* left open, as a daemon's log is */
    }
    case MODE_GRANDCHILD: {
        pid_t g = fork();
        if (g == 0)
            for (;;)
                pause();
        if (g < 0)
            return 1;
        t[2] = (uint64_t)g;
        break;
    }
    case MODE_USE_PARENT: {
        void *p;
        if (strata_worker_host_alloc(parent_worker, 64, &p) != STRATA_ESTATE ||
            strstr(strata_last_error(), "belongs to process") == NULL)
            return 2;
        if (strata_worker_register_sub(parent_worker, hostile_sub, NULL, &(strata_handle){0}) != STRATA_ESTATE)
            return 3;
        if (strata_worker_close(parent_worker) != STRATA_ESTATE)
            return 4;
        strata_worker_destroy(parent_worker);   /* must neither crash nor free what this child lives on */
        break;
    }
    case MODE_SLEEP:
        sleep_ms(200);
        break;
    case MODE_FORK_RETURN: {
        pid_t copy = fork();
        if (copy < 0)
            return 1;
        if (copy == 0)
            return 0;   /* the copy returns into Strata's loop: it must not answer, nor take requests */
        break;
    }
    case MODE_DESTROY_OTHER: {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        strata_worker_destroy(other_worker);   /* another worker's copy, in this child */
        bool ok = fd >= 0 && write(fd, "x", 1) == 1;
        if (fd >= 0)
            close(fd);
        if (!ok)
            return 2;
        break;
    }
    }
    t[0] += 1;
    return 0;
}

typedef struct job {
    strata_handle  sub;
    uint64_t       mode[4];     /* per task */
    uint32_t       ntasks;
    strata_tensor  t[4];        /* one 4-element tensor per task: independent tasks */
    uint64_t      *data[4];
} job;

static int job_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    job *j = ctx;
    strata_tag tag = STRATA_INOUT;
    for (uint32_t i = 0; i < j->ntasks; i++) {
        int rc = strata_submit_sub(o, j->sub, &(strata_task_args){&j->t[i], &tag, 1, &j->mode[i], 1});
        if (rc)
            return rc;
    }
    return 0;
}

/* A worker of nsubs SUB children (and no chip) running hostile_sub. */
static strata_worker *sub_only_worker(uint32_t nsubs, strata_death_policy policy, job *j)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.num_sub_workers = nsubs;
    cfg.on_child_death = policy;
    cfg.shared_heap_bytes = 1 << 20;
    cfg.close_grace_ms = 500;
    cfg.init_timeout_ms = 5000;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK_OK(strata_worker_register_sub(w, hostile_sub, NULL, &j->sub));
    for (uint32_t i = 0; i < 4; i++)
        j->t[i] = host_u64(w, 4, &j->data[i]);
    return w;
}

/* Run n tasks of mode `mode`; each must have run exactly once. */
static void run_counted(strata_worker *w, job *j, uint32_t n, uint64_t mode)
{
    uint64_t before[4];
    j->ntasks = n;
    for (uint32_t i = 0; i < n; i++) {
        j->mode[i] = mode;
        before[i] = j->data[i][0];
    }
    CHECK_OK(strata_worker_run(w, job_orch, j, NULL, NULL));
    for (uint32_t i = 0; i < n; i++)
        CHECK_EQ_U64(j->data[i][0], before[i] + 1);
}

/* ---- the process table ---- */

/* The parent pid of pid, 0 if it does not exist. */
static pid_t parent_of(pid_t pid)
{
    char state;
    pid_t ppid;
    return proc_stat(pid, &state, &ppid) ? ppid : 0;
}

/* Live (non-zombie) processes whose parent is pid. */
static int live_children_of(pid_t pid)
{
    DIR *d = opendir("/proc");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pid_t p = (pid_t)atoi(e->d_name);
        if (parent_of(p) == pid && process_alive(p))
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* The worker's spawner: the parent of its child 0. */
static pid_t spawner_of(strata_worker *w)
{
    pid_t c;
    CHECK_OK(strata_worker_child_pid(w, 0, &c));
    return parent_of(c);
}

/* A started worker of two SUB children: its spawner's and children's pids. */
static strata_worker *two_subs_started(job *j, pid_t *spawner, pid_t *c0, pid_t *c1)
{
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, j);
    CHECK_OK(strata_worker_init(w));
    *spawner = spawner_of(w);
    CHECK_OK(strata_worker_child_pid(w, 0, c0));
    CHECK_OK(strata_worker_child_pid(w, 1, c1));
    return w;
}

/* Wait (10 s) until the SUB task of job slot i has reported its pid (MODE_HANG). */
static pid_t hanging_pid(job *j, uint32_t i)
{
    uint64_t deadline = test_now_ns() + 10000000000ull;
    while (atomic_load((_Atomic uint64_t *)&j->data[i][1]) == 0 && test_now_ns() < deadline)
        sleep_ms(1);
    return (pid_t)j->data[i][1];
}

/* ---- SIGCHLD and the application's own reaping ---- */

typedef struct killer {
    job     *j;
    uint32_t nslots;
    pid_t    victims[4];
} killer;

/* Kill the children running MODE_HANG tasks in slots 0..nslots-1, all at once. */
static void *kill_hanging(void *arg)
{
    killer *k = arg;
    for (uint32_t i = 0; i < k->nslots; i++)
        k->victims[i] = hanging_pid(k->j, i);
    for (uint32_t i = 0; i < k->nslots; i++)
        if (k->victims[i] > 0)   /* never kill(0, ...): that is the test's own group */
            kill(k->victims[i], SIGKILL);
    return NULL;
}

/* Run nslots MODE_HANG tasks while a thread kills their children at once;
   the run names every death. */
static void run_and_kill(strata_worker *w, job *j, uint32_t nslots)
{
    for (uint32_t i = 0; i < nslots; i++) {
        j->data[i][1] = 0;
        j->mode[i] = MODE_HANG;
    }
    j->ntasks = nslots;
    killer k = {.j = j, .nslots = nslots};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, kill_hanging, &k) == 0);
    CHECK_STATUS(strata_worker_run(w, job_orch, j, NULL, NULL), STRATA_ECHILD);
    CHECK(pthread_join(t, NULL) == 0);
    for (uint32_t i = 0; i < nslots; i++) {
        char text[96];
        snprintf(text, sizeof text, "(pid %d) was killed by signal 9 (Killed) while running task", (int)k.victims[i]);
        CHECK_ERROR_HAS(text);
    }
}

TEST_CASE(sigchld_ignored)
{
    CHECK(signal(SIGCHLD, SIG_IGN) != SIG_ERR);
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    run_counted(w, &j, 2, MODE_COUNT);
    run_and_kill(w, &j, 1);
    run_counted(w, &j, 2, MODE_COUNT);   /* replaced */
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.child_restarts, 1);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    signal(SIGCHLD, SIG_DFL);
}

/* A thread of the application that reaps every child of the process, as a
   server's SIGCHLD loop does, until it has none. */
static void *reap_everything(void *arg)
{
    _Atomic int *reaped = arg;
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p > 0)
            atomic_fetch_add(reaped, 1);
        else if (errno == ECHILD)
            return NULL;
    }
}

TEST_CASE(application_reaps_every_child)
{
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    _Atomic int reaped = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reap_everything, &reaped) == 0);
    for (int round = 0; round < 3; round++) {
        run_counted(w, &j, 2, MODE_COUNT);
        run_and_kill(w, &j, 2);   /* two at once */
    }
    run_counted(w, &j, 2, MODE_COUNT);
    CHECK_EQ_U64(atomic_load(&reaped), 0);   /* none of Strata's children was the application's to reap */
    CHECK_OK(strata_worker_close(w));   /* the reaping thread may take the spawner: close copes */
    CHECK(pthread_join(t, NULL) == 0);   /* it ends when the process has no child left */
    strata_worker_destroy(w);
}

/* The pid of a dead child is handed to a process of the application (through
   /proc/sys/kernel/ns_last_pid): Strata must neither signal it nor take its
   exit status for the child's. */
static pid_t fork_with_pid(pid_t want)
{
    FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (!f)
        return -1;
    fprintf(f, "%d", (int)want - 1);
    if (fclose(f) != 0)
        return -1;
    pid_t p = fork();
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlives a failed test */
        for (;;)
            pause();
    }
    return p;
}

TEST_CASE(recycled_pid_is_never_touched)
{
    CHECK(signal(SIGCHLD, SIG_IGN) != SIG_ERR);
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(w, 1, &victim));
    CHECK(kill(victim, SIGKILL) == 0);
    CHECK(known_dead(w, 1));
    signal(SIGCHLD, SIG_DFL);   /* the application's own process below is reaped by the test */
    /* Another process of the machine may take the pid between the write and
       the fork: try again a few times. */
    pid_t stranger = -1;
    for (int attempt = 0; attempt < 50 && stranger != victim; attempt++) {
        if (stranger > 0) {
            kill(stranger, SIGKILL);
            waitpid(stranger, NULL, 0);
        }
        stranger = fork_with_pid(victim);
        if (stranger < 0)
            break;
    }
    if (stranger != victim) {
        if (stranger > 0) {
            kill(stranger, SIGKILL);
            waitpid(stranger, NULL, 0);
        }
        strata_worker_destroy(w);
        test_skip("cannot choose the next pid (/proc/sys/kernel/ns_last_pid is not writable here)");
    }
    char text[96];
    snprintf(text, sizeof text, "SUB child 1 (pid %d) was killed by signal 9", (int)victim);
    j.ntasks = 1;
    j.mode[0] = MODE_COUNT;
    CHECK_STATUS(strata_worker_run(w, job_orch, &j, NULL, NULL), STRATA_ECHILD);
    CHECK_ERROR_HAS(text);
    run_counted(w, &j, 2, MODE_COUNT);
    CHECK(process_alive(stranger));
    CHECK_OK(strata_worker_close(w));
    CHECK(process_alive(stranger));   /* close sent it nothing */
    int st;
    CHECK(waitpid(stranger, &st, WNOHANG) == 0);   /* and did not reap it */
    kill(stranger, SIGKILL);
    CHECK(waitpid(stranger, &st, 0) == stranger && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    strata_worker_destroy(w);
}

/* ---- threads that end ---- */

typedef struct on_thread {
    strata_worker *w;
    job           *j;
    int            rc;
} on_thread;

static void *init_here(void *arg)
{
    on_thread *t = arg;
    t->rc = strata_worker_init(t->w);
    return NULL;
}

static void *run_here(void *arg)
{
    on_thread *t = arg;
    t->j->ntasks = 2;
    t->j->mode[0] = t->j->mode[1] = MODE_COUNT;
    t->rc = strata_worker_run(t->w, job_orch, t->j, NULL, NULL);
    return NULL;
}

TEST_CASE(init_on_a_thread_that_ends)
{
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    on_thread t = {w, &j, -1};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, init_here, &t) == 0);
    CHECK(pthread_join(th, NULL) == 0);   /* the thread that initialised the worker is gone */
    CHECK_OK(t.rc);
    pid_t before[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(strata_worker_child_pid(w, i, &before[i]));
    for (int r = 0; r < 20; r++)
        run_counted(w, &j, 2, MODE_COUNT);
    for (int i = 0; i < 2; i++) {
        pid_t now;
        CHECK_OK(strata_worker_child_pid(w, i, &now));
        CHECK(now == before[i] && process_alive(now));
    }
    /* a restart done by a run on another short-lived thread */
    CHECK(kill(before[0], SIGKILL) == 0);
    CHECK(known_dead(w, 0));
    CHECK(pthread_create(&th, NULL, run_here, &t) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_STATUS(t.rc, STRATA_ECHILD);
    pid_t replacement;
    CHECK_OK(strata_worker_child_pid(w, 0, &replacement));
    for (int r = 0; r < 5; r++)
        run_counted(w, &j, 2, MODE_COUNT);
    CHECK(process_alive(replacement));
    strata_worker_destroy(w);
}

/* ---- deaths that overlap ---- */

/* The first child of `spawner` that is none of known[0..n), or 0. */
static pid_t new_child_of(pid_t spawner, const pid_t *known, int n)
{
    DIR *d = opendir("/proc");
    pid_t found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pid_t p = (pid_t)atoi(e->d_name);
        bool old = false;
        for (int i = 0; i < n; i++)
            old |= known[i] == p;
        if (!old && parent_of(p) == spawner && process_alive(p))
            found = p;
    }
    if (d)
        closedir(d);
    return found;
}

typedef struct sniper {
    pid_t spawner, known[3], victim;
    bool  fired;
} sniper;

/* Kill `victim` as soon as the spawner has forked a replacement (which then
   stalls 300 ms before it reports ready: the death lands while it starts). */
static void *kill_during_start(void *arg)
{
    sniper *s = arg;
    uint64_t deadline = test_now_ns() + 10000000000ull;
    while (!new_child_of(s->spawner, s->known, 3) && test_now_ns() < deadline)
        sleep_ms(1);
    s->fired = kill(s->victim, SIGKILL) == 0;
    return NULL;
}

TEST_CASE(death_while_a_replacement_starts)
{
    job j = {0};
    strata_worker *w = sub_only_worker(3, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    sniper sn = {.spawner = spawner_of(w)};
    for (int i = 0; i < 3; i++)
        CHECK_OK(strata_worker_child_pid(w, i, &sn.known[i]));
    sn.victim = sn.known[1];
    CHECK(kill(sn.known[0], SIGKILL) == 0);
    CHECK(known_dead(w, 0));
    test_setenv("STRATA_FAULT_CHILD_START", "stall:0");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, kill_during_start, &sn) == 0);
    j.ntasks = 1;
    j.mode[0] = MODE_COUNT;
    /* reports child 0's death, starts its replacement, during which child 1 dies */
    CHECK_STATUS(strata_worker_run(w, job_orch, &j, NULL, NULL), STRATA_ECHILD);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(sn.fired);
    test_setenv("STRATA_FAULT_CHILD_START", NULL);
    char text[96];
    snprintf(text, sizeof text, "SUB child 0 (pid %d) was killed by signal 9", (int)sn.known[0]);
    CHECK_ERROR_HAS(text);
    /* the healthy replacement of child 0 serves; child 1's death is reported
       once, by the next run, which replaces it */
    CHECK(known_dead(w, 1));
    CHECK_STATUS(strata_worker_run(w, job_orch, &j, NULL, NULL), STRATA_ECHILD);
    snprintf(text, sizeof text, "SUB child 1 (pid %d) was killed by signal 9", (int)sn.victim);
    CHECK_ERROR_HAS(text);
    CHECK_ERROR_HAS("between runs");
    for (int r = 0; r < 10; r++)
        run_counted(w, &j, 3, MODE_COUNT);   /* no task runs twice, none is dropped */
    /* exactly three children run under the spawner: no replacement was lost
       and left running beside its successor */
    CHECK_EQ_U64(live_children_of(sn.spawner), 3);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.child_restarts, 2);
    strata_worker_destroy(w);
    CHECK(wait_gone(sn.spawner));
}

TEST_CASE(replacement_that_cannot_start_and_another_death)
{
    job j = {0};
    strata_worker *w = sub_only_worker(3, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    pid_t spawner = spawner_of(w);
    pid_t a, b;
    CHECK_OK(strata_worker_child_pid(w, 0, &a));
    CHECK_OK(strata_worker_child_pid(w, 2, &b));
    CHECK(kill(a, SIGKILL) == 0 && kill(b, SIGKILL) == 0);
    CHECK(known_dead(w, 0) && known_dead(w, 2));
    test_setenv("STRATA_FAULT_CHILD_START", "exit:2");   /* b's replacement fails to start */
    j.ntasks = 1;
    j.mode[0] = MODE_COUNT;
    CHECK_STATUS(strata_worker_run(w, job_orch, &j, NULL, NULL), STRATA_ECHILD);
    char text[96];
    snprintf(text, sizeof text, "SUB child 0 (pid %d) was killed by signal 9", (int)a);
    CHECK_ERROR_HAS(text);
    snprintf(text, sizeof text, "SUB child 2 (pid %d) was killed by signal 9", (int)b);
    CHECK_ERROR_HAS(text);
    test_setenv("STRATA_FAULT_CHILD_START", NULL);
    /* child 0 was replaced; child 2's replacement exited while starting: the
       next run says so and replaces it; then everything runs once */
    CHECK_STATUS(strata_worker_run(w, job_orch, &j, NULL, NULL), STRATA_ECHILD);
    CHECK_ERROR_HAS("its replacement could not start");
    CHECK_ERROR_HAS("exited with status 7 while starting");
    for (int r = 0; r < 5; r++)
        run_counted(w, &j, 3, MODE_COUNT);
    CHECK_EQ_U64(live_children_of(spawner), 3);
    strata_worker_destroy(w);
}

/* ---- the spawner itself killed ---- */

TEST_CASE(spawner_killed)
{
    job j = {0};
    pid_t spawner, c0, c1;
    strata_worker *w = two_subs_started(&j, &spawner, &c0, &c1);
    CHECK(kill(spawner, SIGKILL) == 0);
    CHECK(wait_gone(c0) && wait_gone(c1));   /* the children die with it */
    j.ntasks = 2;
    j.mode[0] = j.mode[1] = MODE_COUNT;
    CHECK_STATUS(strata_worker_run(w, job_orch, &j, NULL, NULL), STRATA_ECHILD);
    char text[128];
    snprintf(text, sizeof text, "was killed with Strata's spawner process (pid %d), which was killed by signal 9",
             (int)spawner);
    CHECK_ERROR_HAS(text);
    /* a new spawner and new children: the worker goes on */
    for (int r = 0; r < 5; r++)
        run_counted(w, &j, 2, MODE_COUNT);
    CHECK(spawner_of(w) != spawner);
    CHECK_EQ_U64(zombie_children(), 0);
    strata_worker_destroy(w);
}

/* ---- signals, masks and limits of the application ---- */

static _Atomic int app_signals;
static void count_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&app_signals, 1);
}

TEST_CASE(signals_to_the_application_group)
{
    CHECK(setpgid(0, 0) == 0 || getpgrp() == getpid());   /* a group of the test's own */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_signal;
    CHECK(sigaction(SIGINT, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0);
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    pid_t c[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(strata_worker_child_pid(w, i, &c[i]));
    /* Ctrl-C and a SIGTERM to the whole group, as a terminal or a service
       manager sends them: the application handles them; Strata's processes
       are in groups of their own */
    CHECK(kill(0, SIGINT) == 0 && kill(0, SIGTERM) == 0);
    CHECK(atomic_load(&app_signals) == 2);
    run_counted(w, &j, 2, MODE_COUNT);
    for (int i = 0; i < 2; i++) {
        pid_t now;
        CHECK_OK(strata_worker_child_pid(w, i, &now));
        CHECK(now == c[i]);
    }
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.child_restarts, 0);
    strata_worker_destroy(w);
}

TEST_CASE(every_signal_blocked)
{
    sigset_t all, old;
    sigfillset(&all);
    CHECK(pthread_sigmask(SIG_BLOCK, &all, &old) == 0);
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    run_counted(w, &j, 2, MODE_COUNT);
    run_and_kill(w, &j, 2);
    run_counted(w, &j, 2, MODE_COUNT);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
}

TEST_CASE(descriptor_limit_too_low)
{
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    struct rlimit old, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    /* no descriptor left: the holes below the highest one open are filled,
       and the limit is set just above it */
    int top = 0, fillers[1024], nfillers = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            top = fd;
    for (;;) {
        int fd = dup(0);
        if (fd < 0)
            break;
        if (fd > top) {
            close(fd);
            break;
        }
        fillers[nfillers++] = fd;
    }
    low = old;
    low.rlim_cur = (rlim_t)top + 1;
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    CHECK_STATUS(strata_worker_init(w), STRATA_ESYS);
    CHECK_ERROR_HAS("socketpair for the spawner process's requests failed: Too many open files");
    CHECK(strata_worker_state(w) == STRATA_STATE_NEW);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    for (int i = 0; i < nfillers; i++)
        close(fillers[i]);
    CHECK_OK(strata_worker_init(w));   /* nothing was left behind: a second init works */
    run_counted(w, &j, 2, MODE_COUNT);
    strata_worker_destroy(w);
}

/* ---- what SUB functions do ---- */

TEST_CASE(sub_closes_every_descriptor)
{
    snprintf(log_path, sizeof log_path, "/tmp/strata-test-log-%d", (int)getpid());
    unlink(log_path);
    job j = {0};
    strata_worker *w = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    for (int r = 0; r < 20; r++)
        run_counted(w, &j, 1, r == 0 ? MODE_CLOSE_FDS : MODE_COUNT);
    for (int r = 0; r < 3; r++)
        run_counted(w, &j, 1, MODE_CLOSE_FDS);
    struct stat sb;
    CHECK(stat(log_path, &sb) == 0);
    CHECK_EQ_U64(sb.st_size, 4 * 9);   /* its own four lines, not one byte of Strata's */
    strata_worker_destroy(w);
    unlink(log_path);
}

TEST_CASE(grandchildren_end_with_their_child)
{
    job j = {0};
    pid_t spawner, c0, c1;
    strata_worker *w = two_subs_started(&j, &spawner, &c0, &c1);
    /* a grandchild of a child that is then killed */
    run_counted(w, &j, 1, MODE_GRANDCHILD);
    pid_t g1 = (pid_t)j.data[0][2];
    CHECK(g1 > 0 && process_alive(g1));
    pid_t owner = parent_of(g1) == c0 ? c0 : c1;
    CHECK(kill(owner, SIGKILL) == 0);
    CHECK(wait_gone(g1));
    CHECK(known_dead(w, owner == c0 ? 0 : 1));
    j.ntasks = 1;
    CHECK_STATUS(strata_worker_run(w, job_orch, &j, NULL, NULL), STRATA_ECHILD);
    /* a grandchild alive at close */
    run_counted(w, &j, 1, MODE_GRANDCHILD);
    pid_t g2 = (pid_t)j.data[0][2];
    CHECK(g2 > 0 && g2 != g1 && process_alive(g2));
    strata_worker_destroy(w);
    CHECK(wait_gone(g2));
}

TEST_CASE(sub_calls_the_parents_worker)
{
    job j = {0};
    strata_worker *w = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &j);
    parent_worker = w;
    CHECK_OK(strata_worker_init(w));
    pid_t c;
    CHECK_OK(strata_worker_child_pid(w, 0, &c));
    run_counted(w, &j, 1, MODE_USE_PARENT);   /* every call refused, nothing broken */
    for (int r = 0; r < 5; r++)
        run_counted(w, &j, 1, MODE_COUNT);
    pid_t now;
    CHECK_OK(strata_worker_child_pid(w, 0, &now));
    CHECK(now == c);   /* the child lived through its close and destroy of the parent's worker */
    strata_worker_destroy(w);
}

/* ---- forks of the application ---- */

TEST_CASE(forked_application_is_refused)
{
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    run_counted(w, &j, 2, MODE_COUNT);
    pid_t c[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(strata_worker_child_pid(w, i, &c[i]));
    pid_t p = fork();
    if (p == 0) {
        /* the copy of the application: every call refused, nothing shared touched */
        int bad = 0;
        j.ntasks = 2;
        bad |= strata_worker_run(w, job_orch, &j, NULL, NULL) != STRATA_ESTATE;
        bad |= strstr(strata_last_error(), "belongs to process") == NULL;
        bad |= strata_worker_register_sub(w, hostile_sub, NULL, &(strata_handle){0}) != STRATA_ESTATE;
        void *mem;
        bad |= strata_worker_host_alloc(w, 64, &mem) != STRATA_ESTATE;
        strata_run_stats st;
        bad |= strata_worker_stats(w, &st) != STRATA_ESTATE;
        bad |= strata_worker_close(w) != STRATA_ESTATE;
        strata_worker_destroy(w);   /* releases this process's copies only */
        _exit(bad ? 1 : 0);
    }
    CHECK(p > 0);
    int st;
    CHECK(waitpid(p, &st, 0) == p);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int r = 0; r < 10; r++)
        run_counted(w, &j, 2, MODE_COUNT);   /* no task dropped or run twice */
    for (int i = 0; i < 2; i++) {
        pid_t now;
        CHECK_OK(strata_worker_child_pid(w, i, &now));
        CHECK(now == c[i]);
    }
    strata_worker_destroy(w);
}

/* ---- deadlines ---- */

TEST_CASE(timeout_returns_at_its_deadline)
{
    job j = {0};
    strata_worker *w = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    j.ntasks = 1;
    j.mode[0] = MODE_HANG;
    j.data[0][1] = 0;
    strata_call_config cfg = {0};
    cfg.timeout_ms = 100;
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run(w, job_orch, &j, NULL, &cfg), STRATA_ETIMEDOUT);
    uint64_t took_ms = (test_now_ns() - t0) / 1000000u;
    /* A correctness bound, not a timing goal (bench/lifecycle measures it): the
       run must not sleep a second past the deadline it met. */
    CHECK(took_ms >= 100 && took_ms < 900);
    CHECK_ERROR_HAS("its task ran past its timeout of 100 ms");
    run_counted(w, &j, 1, MODE_COUNT);
    strata_worker_destroy(w);
}

/* ---- calls from inside a run ---- */

typedef struct destroyer {
    strata_worker *w;
    job           *j;
} destroyer;

static int destroy_inside(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    destroyer *d = ctx;
    strata_worker_destroy(d->w);   /* carried out when the run returns */
    return job_orch(o, args, cfg, d->j);
}

TEST_CASE(destroy_inside_a_run)
{
    job j = {0};
    strata_worker *w = sub_only_worker(2, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    pid_t spawner = spawner_of(w);
    j.ntasks = 2;
    j.mode[0] = j.mode[1] = MODE_COUNT;
    destroyer d = {w, &j};
    CHECK_OK(strata_worker_run(w, destroy_inside, &d, NULL, NULL));
    CHECK(wait_gone(spawner));   /* closed and freed: the harness sees nothing left */
}

/* ---- what the review of the spawner found ---- */

/* The application's timer signal interrupts every sleep of the engine (a
   thread signals the driving thread every 20 ms, as a profiler or an interval
   timer does); the spawner is killed during a task without a timeout: the run
   still returns. */
static void on_timer(int sig)
{
    (void)sig;
}

typedef struct ticker {
    pthread_t    target;
    _Atomic bool stop;
} ticker;

static void *tick(void *arg)
{
    ticker *t = arg;
    while (!atomic_load(&t->stop)) {
        pthread_kill(t->target, SIGUSR1);
        sleep_ms(20);
    }
    return NULL;
}

/* Kill the spawner once the MODE_HANG task of hang_job's slot 0 runs. */
static job *hang_job;
static void *kill_spawner_mid_task(void *arg)
{
    sniper *s = arg;
    if (hanging_pid(hang_job, 0) > 0)
        s->fired = kill(s->spawner, SIGKILL) == 0;
    return NULL;
}

TEST_CASE(spawner_killed_under_a_timer_signal)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timer;   /* no SA_RESTART: every futex wait ends with EINTR */
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    ticker tk = {.target = pthread_self()};
    pthread_t ticking;
    CHECK(pthread_create(&ticking, NULL, tick, &tk) == 0);
    job j = {0};
    strata_worker *w = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    sniper sn = {.spawner = spawner_of(w)};
    j.ntasks = 1;
    j.mode[0] = MODE_HANG;
    j.data[0][1] = 0;
    hang_job = &j;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, kill_spawner_mid_task, &sn) == 0);
    uint64_t t0 = test_now_ns();
    int rc = strata_worker_run(w, job_orch, &j, NULL, NULL);   /* the task hangs, no timeout */
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(sn.fired);
    CHECK_STATUS(rc, STRATA_ECHILD);
    CHECK_ERROR_HAS("was killed with Strata's spawner process");
    CHECK(test_now_ns() - t0 < 10000000000ull);
    run_counted(w, &j, 1, MODE_COUNT);
    atomic_store(&tk.stop, true);
    CHECK(pthread_join(ticking, NULL) == 0);
    strata_worker_destroy(w);
}

/* A child and then the spawner killed between runs: the next run reports both
   children's deaths without starting anything, and the one after works. */
static _Atomic int orch_calls;
static int counting_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    atomic_fetch_add(&orch_calls, 1);
    return job_orch(o, args, cfg, ctx);
}

TEST_CASE(child_then_spawner_killed_between_runs)
{
    job j = {0};
    pid_t spawner, c0, c1;
    strata_worker *w = two_subs_started(&j, &spawner, &c0, &c1);
    CHECK(kill(c0, SIGKILL) == 0);
    CHECK(known_dead(w, 0));
    CHECK(kill(spawner, SIGKILL) == 0);
    CHECK(wait_gone(spawner) && wait_gone(c1));
    CHECK(known_dead(w, 1));   /* child_pid looks at the spawner too */
    j.ntasks = 2;
    j.mode[0] = j.mode[1] = MODE_COUNT;
    atomic_store(&orch_calls, 0);
    CHECK_STATUS(strata_worker_run(w, counting_orch, &j, NULL, NULL), STRATA_ECHILD);
    CHECK_EQ_U64(atomic_load(&orch_calls), 0);   /* nothing started */
    char text[96];
    snprintf(text, sizeof text, "SUB child 0 (pid %d) was killed by signal 9", (int)c0);
    CHECK_ERROR_HAS(text);
    snprintf(text, sizeof text, "SUB child 1 (pid %d) was killed with Strata's spawner process", (int)c1);
    CHECK_ERROR_HAS(text);
    for (int r = 0; r < 5; r++)
        run_counted(w, &j, 2, MODE_COUNT);
    /* a new spawner with exactly two children: none left running, none lost */
    pid_t fresh = spawner_of(w);
    CHECK(fresh != spawner);
    CHECK_EQ_U64(live_children_of(fresh), 2);
    strata_worker_destroy(w);
}

/* Two workers made, initialised and destroyed on two threads at once: no
   spawner gets the other's mailboxes or sockets. */
static void *churn(void *arg)
{
    int *failures = arg;
    for (int i = 0; i < 25; i++) {
        job j = {0};
        strata_worker *w = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &j);
        if (strata_worker_init(w) != STRATA_OK) {
            ++*failures;
        } else {
            pid_t c;
            if (strata_worker_child_pid(w, 0, &c) != STRATA_OK || count_fds_named(c, "socket:") != 0)
                ++*failures;
            j.ntasks = 1;
            j.mode[0] = MODE_COUNT;
            if (strata_worker_run(w, job_orch, &j, NULL, NULL) != STRATA_OK || j.data[0][0] != 1)
                ++*failures;
        }
        strata_worker_destroy(w);
    }
    return NULL;
}

TEST_CASE(two_threads_make_and_destroy_workers)
{
    int failures[2] = {0, 0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, churn, &failures[i]) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK_EQ_U64(failures[0] + failures[1], 0);
}

/* The application forks while another thread makes and destroys workers; in
   each copy, destroying a worker returns (no lock is left held in a copy). */
typedef struct forker {
    strata_worker *w;
    _Atomic bool   stop;
    int            hung, bad;
} forker;

static void *fork_copies(void *arg)
{
    forker *f = arg;
    while (!atomic_load(&f->stop)) {
        pid_t p = fork();
        if (p == 0) {
            strata_worker_destroy(f->w);   /* this copy's: must return */
            _exit(0);
        }
        if (p < 0)
            continue;
        uint64_t deadline = test_now_ns() + 10000000000ull;
        int st = 0;
        pid_t r;
        while ((r = waitpid(p, &st, WNOHANG)) == 0 && test_now_ns() < deadline)
            sleep_ms(1);
        if (r == 0) {
            f->hung++;
            kill(p, SIGKILL);
            waitpid(p, &st, 0);
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            f->bad++;
        }
    }
    return NULL;
}

TEST_CASE(application_forks_while_workers_come_and_go)
{
    job j = {0};
    forker f = {.w = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &j)};
    CHECK_OK(strata_worker_init(f.w));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fork_copies, &f) == 0);
    int failures = 0;
    churn(&failures);
    atomic_store(&f.stop, true);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ_U64(failures, 0);
    CHECK_EQ_U64(f.hung, 0);
    CHECK_EQ_U64(f.bad, 0);
    strata_worker_destroy(f.w);
}

/* A SUB function forks and both copies return: every task still runs once. */
TEST_CASE(sub_forks_and_both_copies_return)
{
    job j = {0};
    strata_worker *w = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    run_counted(w, &j, 1, MODE_FORK_RETURN);
    for (int r = 0; r < 50; r++)
        run_counted(w, &j, 1, MODE_COUNT);
    CHECK_EQ_U64(j.data[0][0], 51);
    strata_worker_destroy(w);
}

/* A child of one worker destroys its copy of another worker: its own
   descriptors stay its own. */
TEST_CASE(child_destroys_another_workers_copy)
{
    job other = {0};
    other_worker = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &other);
    CHECK_OK(strata_worker_init(other_worker));
    job j = {0};
    strata_worker *w = sub_only_worker(1, STRATA_ON_DEATH_RESTART, &j);
    CHECK_OK(strata_worker_init(w));
    run_counted(w, &j, 1, MODE_DESTROY_OTHER);
    for (int r = 0; r < 3; r++)
        run_counted(w, &j, 1, MODE_COUNT);
    run_counted(other_worker, &other, 1, MODE_COUNT);   /* the real one is untouched */
    strata_worker_destroy(w);
    strata_worker_destroy(other_worker);
}

TEST_MAIN(CASE(spawner_killed_under_a_timer_signal), CASE(child_then_spawner_killed_between_runs),
          CASE(two_threads_make_and_destroy_workers), CASE(application_forks_while_workers_come_and_go),
          CASE(sub_forks_and_both_copies_return), CASE(child_destroys_another_workers_copy),
          CASE(sigchld_ignored), CASE(application_reaps_every_child), CASE(recycled_pid_is_never_touched),
          CASE(init_on_a_thread_that_ends), CASE(death_while_a_replacement_starts),
          CASE(replacement_that_cannot_start_and_another_death), CASE(spawner_killed),
          CASE(signals_to_the_application_group), CASE(every_signal_blocked), CASE(descriptor_limit_too_low),
          CASE(sub_closes_every_descriptor), CASE(grandchildren_end_with_their_child),
          CASE(sub_calls_the_parents_worker), CASE(forked_application_is_refused),
          CASE(timeout_returns_at_its_deadline), CASE(destroy_inside_a_run))
