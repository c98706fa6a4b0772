/* Mailboxes: see ipc/mailbox.h for the protocol. */
#define _GNU_SOURCE
#include "ipc/mailbox.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"
#include "core/sys.h"
#include "core/wait.h"
#include "ipc/wire.h"

void strata__mailbox_post(strata__mailbox *mb, uint32_t seq)
{
    /* release: publishes the frame; pairs with the acquire in strata__mailbox_wait() */
    strata__store_release(&mb->request, seq);
    /* seq_cst fence: the store above before the load of child_sleeping; pairs
       with the fence after the child sets child_sleeping. */
    strata__full_fence();
    if (atomic_load_explicit(&mb->child_sleeping, memory_order_relaxed))
        strata__futex_wake_shared(&mb->request, 1);
}

bool strata__mailbox_answered(strata__mailbox *mb, uint32_t seq)
{
    /* acquire: pairs with the release in strata__mailbox_answer() */
    return strata__load_acquire(&mb->reply) == seq;
}

typedef struct request_watch {
    strata__mailbox *mb;
    uint32_t         seen;
} request_watch;

static bool request_arrived(void *arg)
{
    request_watch *w = arg;
    /* acquire: pairs with the release in strata__mailbox_post() */
    return strata__load_acquire(&w->mb->request) != w->seen;
}

uint32_t strata__mailbox_wait(strata__mailbox *mb, uint32_t seen, uint64_t spin_ns, uint32_t check_ms,
                              bool (*still_wanted)(void))
{
    request_watch watch = {mb, seen};
    if (strata__spin_poll(request_arrived, &watch, spin_ns))
        return strata__load_acquire(&mb->request);
    for (;;) {
        strata__store_relaxed(&mb->child_sleeping, 1);
        /* seq_cst fence: child_sleeping before the re-check; pairs with the fence
           in strata__mailbox_post(). */
        strata__full_fence();
        uint32_t r = strata__load_acquire(&mb->request);
        if (r == seen)
            strata__futex_wait_shared(&mb->request, seen, (uint64_t)check_ms * 1000000u);
        strata__store_relaxed(&mb->child_sleeping, 0);
        r = strata__load_acquire(&mb->request);
        if (r != seen)
            return r;
        if (!still_wanted())
            _exit(0);
    }
}

int strata__mailbox_reply_status(const strata__mailbox *mb)
{
    int status = mb->status;
    return status <= 0 && strata__is_status(status) ? status : STRATA_ETASK;
}

int strata__mailbox_request_args(const strata__mailbox *mb, strata_task_args *out)
{
    uint32_t len = mb->args_len;
    if (len > STRATA__MAILBOX_ARGS)
        return strata__fail(STRATA_EINVAL, "request frame says its arguments take %u bytes; a mailbox holds %u", len,
                            STRATA__MAILBOX_ARGS);
    return strata__wire_decode(mb->args, len, out);
}

void strata__mailbox_set_result(strata__mailbox *mb, int status, const char *message)
{
    mb->status = status;
    size_t n = message ? strlen(message) : 0;
    if (n >= STRATA__MAILBOX_MESSAGE) {
        static const char cut[] = " [message cut: longer than the 32 KiB mailbox]";
        n = STRATA__MAILBOX_MESSAGE - sizeof cut;
        memcpy(mb->message, message, n);
        memcpy(mb->message + n, cut, sizeof cut - 1);
        n += sizeof cut - 1;
    } else if (n) {
        memcpy(mb->message, message, n);
    }
    mb->message_len = (uint32_t)n;
}

void strata__mailbox_answer(strata__mailbox_header *hdr, strata__mailbox *mb, uint32_t seq)
{
    /* release: publishes status and message; pairs with the acquire in
       strata__mailbox_answered() */
    strata__store_release(&mb->reply, seq);
    /* seq_cst fence: reply before the load of parent_sleeping; pairs with the
       fence after the parent sets parent_sleeping (node/dispatch.c). */
    strata__full_fence();
    if (atomic_load_explicit(&hdr->parent_sleeping, memory_order_relaxed))
        strata__mailbox_wake_parent(hdr);
}

void strata__mailbox_wake_parent(strata__mailbox_header *hdr)
{
    /* release: whatever the caller published (a reply, a life word) happens
       before a parent's acquire load of `wake` that reads this bump, so a parent
       that misses the bump in its futex_wait sees the publication in its check
       (node/dispatch.c, sleep_until_something). */
    atomic_fetch_add_explicit(&hdr->wake, 1, memory_order_release);
    strata__futex_wake_shared(&hdr->wake, 1);
}
