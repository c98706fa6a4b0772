/* Mailboxes: one fixed-size frame in shared memory per child process, through
 * which the parent posts one request at a time and the child answers it.
 *
 *   word            writer   reader   ordering   meaning
 *   request         parent   child    release /  sequence number of the latest request; the
 *                                     acquire    frame (kind, handle, cfg, args) is complete
 *   child_sleeping  child    parent   seq_cst    the child is (about to be) in futex_wait
 *   reply           child    parent   release /  sequence number of the latest request the
 *                                     acquire    child finished; status and message are complete
 *   ready           child    parent   release    the child's main loop runs (init handshake)
 *   parent_sleeping parent   children seq_cst    the parent is (about to be) in futex_wait(wake);
 *   (in the header)                              a child that replies bumps `wake` and wakes it
 *   wake            children parent   release /  bumped by a child that replies while the parent
 *   (in the header) spawner           acquire    sleeps, and by the spawner after every death
 *   life            spawner  parent   release /  generation << 2 | STRATA__LIFE_*: the process that
 *                                     acquire    serves this mailbox was forked, or died (pid and
 *                                                wait status complete), or could not be forked
 *
 * No wakeup is lost: each side sets its "sleeping" word, issues a full fence and
 * checks again before it sleeps; each poster publishes, issues a full fence and
 * then reads the other side's "sleeping" word (the store-buffering pattern, as
 * in core/wait.h). The parent reads `wake` before it checks and sleeps only while
 * `wake` still holds that value, so a bump between its check and its sleep makes
 * the futex_wait return at once. The spawner (node/spawner.c) publishes `life`
 * and bumps `wake` after every death, so a child that dies instead of answering
 * wakes the parent too.
 *
 * Nothing here is a file descriptor: a child (which runs the application's code,
 * and may close or reuse any descriptor) only ever writes shared memory and
 * calls futex on it.
 *
 * The mapping is anonymous and made before the child is forked: it has no name,
 * and nothing is left anywhere when every process is killed. */
#ifndef STRATA_IPC_MAILBOX_H
#define STRATA_IPC_MAILBOX_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/atomic.h"
#include "strata/tensor.h"

#define STRATA__MAILBOX_ARGS    (64u * 1024u)   /* encoded task args (ipc/wire.h) */
#define STRATA__MAILBOX_MESSAGE (32u * 1024u)   /* a child's error message */

typedef enum strata__request_kind {
    STRATA__REQ_TASK = 1,   /* run handle with args and cfg */
    STRATA__REQ_EXIT = 2,   /* leave the main loop and _exit(0) */
    STRATA__REQ_REGISTER = 3, /* append a registration (node/registry.c) */
    STRATA__REQ_MALLOC = 4,   /* a worker child: allocate `value` bytes in its heap; reply value: the address */
    STRATA__REQ_FREE = 5      /* a worker child: free the buffer at address `value` */
} strata__request_kind;

typedef struct strata__mailbox {
    alignas(STRATA__CACHE_LINE) _Atomic uint32_t request;
    _Atomic uint32_t child_sleeping;
    alignas(STRATA__CACHE_LINE) _Atomic uint32_t reply;
    _Atomic uint32_t ready;
    alignas(STRATA__CACHE_LINE) uint32_t kind;   /* strata__request_kind */
    uint32_t           handle;
    uint64_t           task;                     /* the parent's task id, for messages */
    uint32_t           run;                      /* the parent's run, for events (node/record.h) */
    uint64_t           value;                    /* MALLOC, FREE: the request's operand; reply: MALLOC's address */
    strata_call_config cfg;
    uint32_t           args_len;
    int32_t            status;                   /* reply: 0 or a strata_status */
    uint32_t           message_len;              /* reply: bytes in message, no NUL */
    char               start_fault[16];          /* test builds' start hook (node/child.c); set at spawn */
    char               message[STRATA__MAILBOX_MESSAGE];
    alignas(8) uint8_t args[STRATA__MAILBOX_ARGS];
    /* Written by the spawner only, and never cleared by the parent's reset of
       the frame (it lies past it): the life of the process serving this box. */
    alignas(STRATA__CACHE_LINE) _Atomic uint32_t life;   /* generation << 2 | STRATA__LIFE_* */
    int32_t            pid;                      /* ALIVE, DEAD: that generation's pid */
    int32_t            wstatus;                  /* DEAD: wait status; NOFORK: errno of fork */
} strata__mailbox;

enum {
    STRATA__LIFE_NONE = 0,    /* no process of this generation yet */
    STRATA__LIFE_ALIVE = 1,   /* forked; pid is set */
    STRATA__LIFE_DEAD = 2,    /* exited or killed and reaped; wstatus is set */
    STRATA__LIFE_NOFORK = 3   /* fork failed; wstatus is its errno */
};

static inline uint32_t strata__life_word(uint32_t generation, uint32_t state)
{
    return generation << 2 | state;
}

/* The shared header before the mailboxes. */
typedef struct strata__mailbox_header {
    alignas(STRATA__CACHE_LINE) _Atomic uint32_t parent_sleeping;
    alignas(STRATA__CACHE_LINE) _Atomic uint32_t wake;   /* the parent's futex word */
    /* Held by the spawner for its whole life: a robust, process-shared mutex,
       which the kernel marks "owner died" the moment the spawner's only thread
       ends. The parent's trylock says whether it lives without a system call
       (node/spawner.c: strata__spawner_alive). */
    alignas(STRATA__CACHE_LINE) pthread_mutex_t spawner_life;
} strata__mailbox_header;

/* Bump `wake` and wake the parent (a child that answered, or the spawner). */
void strata__mailbox_wake_parent(strata__mailbox_header *hdr);

/* ---- parent side ---- */

/* Post the request already written into the frame under sequence number seq,
   and wake the child if it sleeps. */
void strata__mailbox_post(strata__mailbox *mb, uint32_t seq);
/* Whether the child has answered request seq (acquire: its reply is visible). */
bool strata__mailbox_answered(strata__mailbox *mb, uint32_t seq);

/* ---- child side ---- */

/* Wait for a request newer than `seen`: poll for about spin_ns (see
   strata__spin_learn), then sleep on the futex, waking every `check_ms` to call
   still_wanted() (the parent-death check); when it returns false, the child
   exits without answering. Returns the new seq. */
uint32_t strata__mailbox_wait(strata__mailbox *mb, uint32_t seen, uint64_t spin_ns, uint32_t check_ms,
                              bool (*still_wanted)(void));
/* Publish the answer to request seq (status and message already written) and
   wake the parent if it sleeps. */
void strata__mailbox_answer(strata__mailbox_header *hdr, strata__mailbox *mb, uint32_t seq);
/* The length of the message a child wrote, never more than the area holds (a
   child's memory is not trusted). */
static inline uint32_t strata__mailbox_message_len(const strata__mailbox *mb)
{
    return mb->message_len < STRATA__MAILBOX_MESSAGE ? mb->message_len : STRATA__MAILBOX_MESSAGE;
}

/* The status a child answered, as the parent may use it: a child's memory is
   not trusted, so anything but STRATA_OK or a negative status of the list
   becomes STRATA_ETASK. */
int strata__mailbox_reply_status(const strata__mailbox *mb);

/* In the child: the request's arguments, decoded in place (ipc/wire.h), with the
   parent's args_len checked against the area first. STRATA_EINVAL, saying what is
   wrong, for a frame that is not one. */
int strata__mailbox_request_args(const strata__mailbox *mb, strata_task_args *out);

/* Write status and message (cut at STRATA__MAILBOX_MESSAGE bytes, saying so). */
void strata__mailbox_set_result(strata__mailbox *mb, int status, const char *message);

#endif
