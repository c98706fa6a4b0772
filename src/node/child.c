/* The main loop of a child process: a chip child runs chip callables on an L2
 * chip of its own, a SUB child runs SUB functions; a worker child (L4+) shares
 * the start here and then runs its own loop (node/worker_child.c).
 *
 * A child is forked by the worker's spawner (node/spawner.c), in a process
 * group of its own. It leaves only through _exit: it inherited the parent's
 * whole state, and must run none of the parent's exit handlers or flush its
 * stdio buffers. It exits when the parent asks, and when the spawner is gone:
 * the kernel kills it then (PR_SET_PDEATHSIG, set here and reliable because the
 * spawner's only thread forked it), and it checks its parent pid whenever it
 * wakes, at least every STRATA__PARENT_CHECK_MS. The spawner in turn ends every
 * child when the application process ends.
 *
 * A child owns no descriptor of Strata's: it answers through shared memory and
 * futex wake-ups only, so a SUB function that closes or reuses descriptors
 * cannot make it write into someone else's file. */
#define _GNU_SOURCE
#include "node/node.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "chip/engine.h"
#include "core/fault.h"
#include "core/sys.h"
#include "core/wait.h"
#include "ipc/wire.h"
#include "node/record.h"


static pid_t spawner_pid;
static pid_t self_pid;
/* Set in a copy of this child made by fork() inside a SUB function that then
   returned (a helper that forgot to _exit): that copy must not take the
   mailbox's requests too. */
static volatile bool forked_copy;

static void mark_forked_copy(void)
{
    forked_copy = true;
}

/* Whether this process is a copy of the child rather than the child. Once per
   SUB task: strata__self_pid costs no system call, and a copy made without
   the atfork handlers (a raw clone) still gets its own pid from it. */
static bool not_the_child(void)
{
    return forked_copy || strata__self_pid() != self_pid;
}

bool strata__child_parent_alive(void)
{
    return getppid() == spawner_pid;
}

void strata__child_report_ready(strata__node *n, strata__child *c)
{
    /* release: everything the child set up is done; pairs with the acquire in
       await_ready() */
    strata__store_release(&c->mb->ready, 1);
    strata__mailbox_answer(n->header, c->mb, 0);
}

void strata__child_fail_start(strata__node *n, strata__child *c, const char *message)
{
    strata__mailbox_set_result(c->mb, STRATA_ECHILD, message);
    (void)n;
    _exit(3);
}

static int run_chip_task(const strata__registration *r, strata__chip *chip, const strata__mailbox *mb,
                         const strata_task_args *args)
{
    /* The parent enforces the timeout by killing this child, which (unlike a
       stuck core thread at L2) always works: the chip itself runs without one. */
    strata_call_config cfg = mb->cfg;
    cfg.timeout_ms = 0;
    int rc = strata__chip_attach_args(chip, args);
    if (rc == STRATA_OK)
        rc = strata__chip_run(chip, &r->chip, args, &cfg);
    strata__chip_detach_all(chip);
    return rc;
}

static int run_sub_task(const strata__registration *r, const strata__mailbox *mb, const strata_task_args *args)
{
    strata__clear_error();
    int rc = r->fn(args, r->ctx);
    if (rc != 0 && strata_last_error()[0] == '\0')
        strata__fail(STRATA_ETASK, "SUB function (handle %u) returned %d in task %llu", mb->handle, rc,
                     (unsigned long long)mb->task);
    else if (rc != 0)
        strata__error_prefix(STRATA_ETASK, "SUB function (handle %u) returned %d in task %llu", mb->handle, rc,
                             (unsigned long long)mb->task);
    return rc == 0 ? STRATA_OK : STRATA_ETASK;
}

/* Fault hook for tests of the init transaction: STRATA_FAULT_CHILD_START set to
   exit, kill, hang or stall (300 ms, then go on; optionally ":<worker>" for one
   child) makes a starting child do that before it reports ready. The parent
   reads the variable at each spawn and passes it in the mailbox. docs/testing.md
   lists the hooks. */
static void fault_at_start(const strata__child *c)
{
    char f[sizeof c->mb->start_fault + 1];
    memcpy(f, c->mb->start_fault, sizeof c->mb->start_fault);
    f[sizeof c->mb->start_fault] = '\0';   /* the parent's bytes: never trusted to end */
    if (f[0] == '\0')
        return;
    const char *colon = strchr(f, ':');
    if (colon && atoi(colon + 1) != c->worker)
        return;
    size_t len = colon ? (size_t)(colon - f) : strlen(f);
    if (len == 4 && strncmp(f, "exit", 4) == 0)
        _exit(7);
    if (len == 4 && strncmp(f, "kill", 4) == 0)
        kill(getpid(), SIGKILL);
    if (len == 4 && strncmp(f, "hang", 4) == 0)
        for (;;)
            pause();
    if (len == 5 && strncmp(f, "stall", 5) == 0) {
        struct timespec ts = {0, 300000000};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
}

void strata__child_start(strata__child *c, pid_t spawner)
{
    spawner_pid = spawner;
    self_pid = strata__self_pid();
    strata__record_child_started(c);
    /* This process may descend from a child of a level above (a worker child's
       own children): whatever it inherited, it is the child now. */
    forked_copy = false;
    strata__fault_enter_child();
    if (c->kind == STRATA__CHILD_SUB)
        pthread_atfork(NULL, NULL, mark_forked_copy);
    /* Die with the spawner: set first, then check, so a spawner that died
       before the prctl is noticed too. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != spawner_pid)
        _exit(1);
    /* The spawner set every disposition to the default and blocked SIGCHLD
       only; a child blocks nothing. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    fault_at_start(c);
}

strata__mailbox *strata__child_next(strata__child *c, uint32_t *seen, uint64_t *spin_ns)
{
    uint64_t wait_from = strata__now_ns();
    *seen = strata__mailbox_wait(c->mb, *seen, *spin_ns, STRATA__PARENT_CHECK_MS, strata__child_parent_alive);
    *spin_ns = strata__spin_learn(strata__now_ns() - wait_from);
    return c->mb;
}

void strata__child_answer(strata__node *n, strata__child *c, uint32_t seen, int rc)
{
    strata__mailbox_set_result(c->mb, rc, rc ? strata_last_error() : NULL);
    strata__mailbox_answer(n->header, c->mb, seen);
}

int strata__child_registration(const strata__node *n, uint32_t handle, const strata__registration **out)
{
    if (handle == 0 || handle > n->nregs)
        return strata__fail(STRATA_ENOENT, "handle %u is not registered in this child", handle);
    if (n->regs[handle - 1].error)
        return strata__fail(STRATA_ENOENT, "handle %u could not be registered in this child: %s", handle,
                            n->regs[handle - 1].error);
    *out = &n->regs[handle - 1];
    return STRATA_OK;
}

void strata__child_main(strata__node *n, strata__child *c)
{
    strata__chip *chip = NULL;
    if (c->kind == STRATA__CHILD_CHIP) {
        int rc = strata__chip_open(strata__platform_find(n->cfg.platform), c->device_id, c->memory_bytes / 2,
                                   c->memory, n->cfg.aic_cores, n->cfg.aiv_cores, &n->chip_rings, 0, &chip);
        if (rc)
            strata__child_fail_start(n, c, strata_last_error());
        strata__chip_set_recorder(chip, c->rec);   /* its cores' rings follow the orchestrator's */
        strata__chip_set_host_graph(chip, strcmp(n->cfg.runtime, "host_build_graph") == 0);
    }
    strata__child_report_ready(n, c);

    uint32_t seen = 0;
    uint64_t spin_ns = STRATA__SPIN_MIN_NS;
    for (;;) {
        strata__mailbox *mb = strata__child_next(c, &seen, &spin_ns);
        if (mb->kind == STRATA__REQ_EXIT)
            _exit(0);
        if (mb->kind == STRATA__REQ_REGISTER) {
            strata__child_answer(n, c, seen, strata__child_register(n, mb));
            continue;
        }
        strata_task_args args;
        const strata__registration *r;
        /* the flight recorder's two events per task, traced or not */
        uint64_t id = (uint64_t)mb->run << 32 | (mb->task & 0xffffffffu);
        strata__rec_ring *rec = strata__rec_area_ring(c->rec, 0);
        if (rec)
            strata__rec_write(rec, strata__now_ns(), STRATA__REC_TASK_BEGIN, 0, id, mb->handle);
        int rc = strata__mailbox_request_args(mb, &args);
        if (rc == STRATA_OK)
            rc = strata__child_registration(n, mb->handle, &r);
        if (rc == STRATA_OK)
            rc = c->kind == STRATA__CHILD_CHIP ? run_chip_task(r, chip, mb, &args) : run_sub_task(r, mb, &args);
        if (c->kind == STRATA__CHILD_SUB && not_the_child())
            _exit(0);   /* a copy the SUB function forked: the child answers, not it */
        if (rec)
            strata__rec_write(rec, strata__now_ns(), STRATA__REC_TASK_END, 0, id, (uint64_t)(int64_t)rc);
        strata__child_answer(n, c, seen, rc);
    }
}
