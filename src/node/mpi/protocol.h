/* The messages between the top worker (rank 0) and a rank that serves a worker
 * (node/mpi/serve.c), on Strata's duplicate of the application's communicator.
 *
 * Every request is one message of tag TAG_REQUEST: a header, then `payload_len`
 * bytes (TASK: the task arguments in the wire format of ipc/wire.h; HELLO: every
 * named registration; REGISTER: one). Every request gets exactly one answer of
 * tag TAG_REPLY: a header, then `message_len` bytes (an error message, or on
 * HELLO the serving host's name); the answer to a traced TASK is followed by
 * one TAG_TRACE message of the events the run recorded on that rank. COPY_TO and COPY_FROM move their bytes in
 * TAG_DATA messages of at most STRATA__MPI_CHUNK bytes, after the request
 * (COPY_TO, rank 0 sends) or before the answer (COPY_FROM, the rank sends);
 * SEND_TO and RECV_FROM (a copy task's parts) move theirs, in the same chunks,
 * to or from `peer`: another serving rank, or rank 0, which posts its side of
 * the data with the request.
 * One request is outstanding per rank at a time. */
#ifndef STRATA_NODE_MPI_PROTOCOL_H
#define STRATA_NODE_MPI_PROTOCOL_H

#include <stdint.h>

#include "ipc/mailbox.h"
#include "strata/tensor.h"

enum { STRATA__TAG_REQUEST = 0x5301, STRATA__TAG_REPLY = 0x5302, STRATA__TAG_DATA = 0x5303, STRATA__TAG_TRACE = 0x5304 };

#define STRATA__MPI_MAGIC 0x5354524du   /* "STRM" */
#define STRATA__MPI_CHUNK (16u << 20)

/* Request kinds beyond the mailbox's (ipc/mailbox.h: TASK, EXIT, REGISTER,
   MALLOC, FREE). */
enum { STRATA__REQ_HELLO = 16, STRATA__REQ_COPY_TO = 17, STRATA__REQ_COPY_FROM = 18 };

typedef struct strata__mpi_request {
    uint32_t           magic;
    uint32_t           kind;
    uint32_t           seq;
    uint32_t           handle;        /* TASK: the top worker's handle */
    uint64_t           task;          /* TASK: the top's task id + 1, for messages */
    uint64_t           value;         /* MALLOC: bytes; FREE, COPY_*: the address */
    uint64_t           nbytes;        /* COPY_*: bytes */
    strata_call_config cfg;           /* TASK */
    uint32_t           payload_len;
    int32_t            level;         /* HELLO: the top worker's level */
    int32_t            peer;          /* SEND_TO, RECV_FROM: the rank at the other end */
    uint32_t           run;           /* TASK: the top's run when it is traced (0: not traced) */
    uint64_t           other;         /* SEND_TO to itself: the destination address */
} strata__mpi_request;

typedef struct strata__mpi_reply {
    uint32_t magic;
    uint32_t seq;
    int32_t  status;
    uint32_t message_len;
    uint64_t value;                   /* MALLOC: the address; HELLO: the serving process's pid */
    /* the serving rank's CLOCK_MONOTONIC when the request came and when this
       answer left: rank 0 estimates the offset between the two hosts' clocks
       from every answer (the one with the shortest round trip wins) */
    uint64_t received_ns, sent_ns;
    uint32_t events_len;              /* a traced TASK: bytes of trace events that follow in one TAG_TRACE
                                         message (node/record.h, strata__record_export) */
    uint32_t pad;
} strata__mpi_reply;

/* One named registration in a HELLO or REGISTER payload, then name_len bytes. */
typedef struct strata__mpi_name {
    uint32_t handle;
    uint32_t kind;                    /* strata__reg_kind */
    uint32_t name_len;
    uint32_t pad;
} strata__mpi_name;

#define STRATA__MPI_PAYLOAD_MAX (STRATA__MAILBOX_ARGS + 4096u)
#define STRATA__MPI_MESSAGE_MAX STRATA__MAILBOX_MESSAGE

#endif
