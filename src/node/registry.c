/* Registrations of a node worker: chip callables and SUB functions, before init
 * (children inherit them when forked) or after it (each live child is sent the
 * registration and must acknowledge it before the call returns).
 *
 * A function pointer means the same in a child only if its code was mapped
 * before the child was forked. init takes a snapshot of the loaded objects; a
 * registration after init checks every pointer against it with dladdr and
 * refuses one that lies in an object loaded later, naming the object and
 * pointing to strata_worker_register_chip_symbol, which has each child load the
 * shared object itself (objects.c holds the snapshot). Handles are indexes into
 * one list that every process appends to in the same order, and that a
 * replacement child inherits whole (reg_frame.c: the frames and the list). */
#define _GNU_SOURCE
#include "node/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chip/kernel.h"
#include "core/alloc.h"
#include "core/array.h"
#include "core/log.h"
#include "core/sys.h"

/* Send registration r to every live child and wait for each to acknowledge. */
static int broadcast(strata__node *n, const strata__registration *r)
{
    for (uint32_t i = 0; i < n->nchildren; i++) {
        strata__child *c = &n->children[i];
        if (c->dead || c->pid <= 0)
            continue;
        c->busy = true;
        strata__post(n, c, &(strata__request){.kind = STRATA__REQ_REGISTER, .reg = r});
    }
    uint64_t deadline = strata__now_ns() + (uint64_t)n->cfg.init_timeout_ms * 1000000u;
    int rc = STRATA_OK;
    for (;;) {
        bool waiting = false;
        for (uint32_t i = 0; i < n->nchildren; i++) {
            strata__child *c = &n->children[i];
            if (!c->busy || c->dead)
                continue;
            if (!strata__answered(n, c)) {
                waiting = true;
                continue;
            }
            c->busy = false;
            strata__reply reply;
            strata__reply_of(n, c, &reply);
            if (reply.status != STRATA_OK && rc == STRATA_OK) {
                char name[96];
                rc = strata__fail(reply.status, "%s: %.*s", strata__child_name(c, name, sizeof name),
                                  (int)reply.message_len, reply.message);
            }
        }
        strata__reap(n);   /* a death is reported by the next run; its replacement inherits */
        if (!waiting)
            return rc;
        if (strata__now_ns() > deadline) {
            for (uint32_t i = 0; i < n->nchildren; i++) {
                strata__child *c = &n->children[i];
                if (c->busy && !c->dead) {
                    char name[96];
                    strata__child_name(c, name, sizeof name);
                    strata__kill(n, c, NULL);
                    rc = strata__fail(STRATA_ETIMEDOUT, "%s did not acknowledge the registration within "
                                      "init_timeout_ms (%u ms) and was killed", name, n->cfg.init_timeout_ms);
                }
            }
            return rc;
        }
        strata__sleep(n, 10);
    }
}

/* Whether r's registration frame fits a request (encoded once, into scratch
   memory, as each child's transport will). */
static int check_frame(const strata__registration *r)
{
    void *scratch = malloc(STRATA__MAILBOX_ARGS);
    if (!scratch)
        return strata__fail(STRATA_ENOMEM, "out of host memory for a registration frame");
    size_t len;
    int rc = strata__reg_frame_encode(r, scratch, &len);
    free(scratch);
    return rc;
}

int strata__node_register(strata__node *n, bool live, const strata__registration *r, const char *so_path,
                          const char *symbol, strata_handle *out)
{
    strata__registration copy = *r;
    int rc = STRATA_OK;
    if (so_path) {
        copy.kind = STRATA__REG_CHIP;
        rc = strata__reg_load_symbol(so_path, symbol, &copy.chip);
        if (rc)
            return rc;
        copy.so_path = strata__strdup(so_path);
        copy.symbol = strata__strdup(symbol);
        if (!copy.so_path || !copy.symbol)
            rc = strata__fail(STRATA_ENOMEM, "out of host memory for a registration");
        if (rc == STRATA_OK && live)
            rc = check_frame(&copy);
    } else if (live && r->kind == STRATA__REG_CHIP) {
        rc = strata__node_check_pointer(n, (const void *)(uintptr_t)r->chip.orch, "the orchestration function");
        for (uint32_t i = 0; rc == STRATA_OK && i < r->chip.nkernels; i++) {
            char what[64];
            snprintf(what, sizeof what, "the kernel of func_id %d", r->chip.kernels[i].func_id);
            rc = strata__node_check_pointer(n, (const void *)(uintptr_t)r->chip.kernels[i].fn, what);
        }
    } else if (live && r->kind == STRATA__REG_ORCH) {
        rc = strata__node_check_pointer(n, (const void *)(uintptr_t)r->orch, "the orchestration function");
    } else if (live) {
        rc = strata__node_check_pointer(n, (const void *)(uintptr_t)r->fn, "the SUB function");
    }
    if (rc == STRATA_OK && live && !so_path)
        rc = check_frame(&copy);
    if (rc == STRATA_OK)
        rc = strata__node_reg_append(n, &copy, out);
    if (rc) {
        if (copy.kind == STRATA__REG_CHIP)
            strata__callable_free(&copy.chip);   /* given to us: not kept */
        free(copy.so_path);
        free(copy.symbol);
        free(copy.name);
        return rc;
    }
    if (!live)
        return STRATA_OK;
    rc = broadcast(n, &n->regs[n->nregs - 1]);
    if (rc) {
        /* Some child could not take it: the handle stays, so that every process
           keeps the same list, but the caller is told which child failed. */
        return rc;
    }
    return STRATA_OK;
}
