/* The main loop of a worker child (L4+): the process that runs a worker one
 * level down for the worker above it.
 *
 * The worker it serves was created and configured in the application (its
 * shared heap mapped there, before any child existed) and added with
 * strata_worker_add_worker; the spawner of the worker above forks this process
 * like any other child (node/child.c does the common start). Here the worker
 * becomes this process's own, takes the memory of the levels above as memory
 * its own children see (the tensors of the tasks it gets lie there or in its
 * own heap), and is initialised: its spawner, chips and SUB workers start below
 * this process before it reports ready. Then each TASK is one run of a
 * registered orchestration function on it, whose status and message are the
 * answer; MALLOC and FREE allocate in its heap; EXIT closes it.
 *
 * While a run is in progress this loop does not look at its own parent: the
 * kernel ends it when the spawner above dies (PR_SET_PDEATHSIG), and its own
 * spawner sees its socket hang up then and ends every child below. */
#define _GNU_SOURCE
#include "node/node.h"
#include "node/record.h"

#include <stdlib.h>
#include <unistd.h>

#include "core/sys.h"
#include "core/wait.h"

/* The orchestration function a TASK names, or a failure saying why not. */
static int find_orch(const strata__node *n, uint32_t handle, const strata__registration **out)
{
    int rc = strata__child_registration(n, handle, out);
    if (rc == STRATA_OK && (*out)->kind != STRATA__REG_ORCH)
        rc = strata__fail(STRATA_ENOENT, "handle %u is not an orchestration function", handle);
    return rc;
}

/* The memory of the worker above (its heap, what it adopted and what it
   inherited in turn) becomes memory the served worker's children see: its
   tasks' tensors may lie there (memory.c: strata__node_inherited_buffer). */
static int inherit(strata__node *child, const strata__node *parent)
{
    uint32_t count = 1 + parent->nadopted + parent->ninherited;
    void *ranges = calloc(count, sizeof *child->inherited);
    if (!ranges)
        return strata__fail(STRATA_ENOMEM, "out of host memory in a worker child");
    free(child->inherited);
    child->inherited = ranges;
    child->inherited[0].addr = (uint64_t)(uintptr_t)parent->heap;
    child->inherited[0].nbytes = parent->heap_bytes;
    for (uint32_t i = 0; i < parent->nadopted; i++) {
        child->inherited[1 + i].addr = parent->adopted[i].addr;
        child->inherited[1 + i].nbytes = parent->adopted[i].nbytes;
    }
    for (uint32_t i = 0; i < parent->ninherited; i++)
        child->inherited[1 + parent->nadopted + i] = parent->inherited[i];
    child->ninherited = count;
    return STRATA_OK;
}

void strata__worker_child_main(strata__node *n, strata__child *c)
{
    strata_worker *w = c->sub_worker;
    int rc = inherit(c->sub_node, n);
    strata__record_adopt(c->sub_node, c->rec);   /* its engine's events go where this level reads them */
    if (rc == STRATA_OK) {
        strata__node_take_over(c->sub_node);
        rc = strata_worker_init(w);
    }
    if (rc)
        strata__child_fail_start(n, c, strata_last_error());
    strata__child_report_ready(n, c);

    uint32_t seen = 0;
    uint64_t spin_ns = STRATA__SPIN_MIN_NS;
    for (;;) {
        strata__mailbox *mb = strata__child_next(c, &seen, &spin_ns);
        strata__clear_error();
        switch (mb->kind) {
        case STRATA__REQ_EXIT:
            strata_worker_close(w);
            _exit(0);
        case STRATA__REQ_REGISTER:
            rc = strata__child_register(n, mb);
            break;
        case STRATA__REQ_MALLOC: {
            void *p = NULL;
            rc = strata_worker_host_alloc(w, mb->value, &p);
            mb->value = (uint64_t)(uintptr_t)p;
            break;
        }
        case STRATA__REQ_FREE:
            rc = strata_worker_host_free(w, (void *)(uintptr_t)mb->value);
            break;
        case STRATA__REQ_TASK: {
            strata_task_args args;
            const strata__registration *r = NULL;
            rc = strata__mailbox_request_args(mb, &args);
            if (rc == STRATA_OK)
                rc = find_orch(n, mb->handle, &r);
            if (rc == STRATA_OK) {
                /* The level above kills this process close_grace_ms after the
                   task's timeout: the run ends its own stuck tasks at the
                   timeout, so that the answer names them. */
                strata_call_config cfg = mb->cfg;
                c->sub_node->deadline_ns = cfg.timeout_ms ? strata__now_ns() + (uint64_t)cfg.timeout_ms * 1000000u : 0;
                uint64_t id = (uint64_t)mb->run << 32 | (mb->task & 0xffffffffu);
                strata__rec_ring *rec = strata__rec_area_ring(c->rec, 0);
                if (rec)
                    strata__rec_write(rec, strata__now_ns(), STRATA__REC_TASK_BEGIN, 0, id, mb->handle);
                rc = strata_worker_run(w, r->orch, r->ctx, &args, &cfg);
                if (rec)
                    strata__rec_write(rec, strata__now_ns(), STRATA__REC_TASK_END, 0, id, (uint64_t)(int64_t)rc);
                c->sub_node->deadline_ns = 0;
            }
            break;
        }
        default:
            rc = strata__fail(STRATA_EINVAL, "request of unknown kind %u", mb->kind);
            break;
        }
        strata__child_answer(n, c, seen, rc);
    }
}
