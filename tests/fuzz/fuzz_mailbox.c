/* fuzz.mailbox: what each side reads of a mailbox the other side wrote
 * (src/ipc/mailbox.c): the child's view of a request frame (kind, handle,
 * args_len, arguments) and the parent's view of a reply (status, message
 * length, message). A child's or parent's memory is not trusted: every length
 * is checked against the area before it is used, and a reply's status is one
 * of the list. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "ipc/mailbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static strata__mailbox mb;
    /* the first 16 bytes are the words, the rest the areas */
    uint32_t words[4] = {0};
    memcpy(words, data, size < sizeof words ? size : sizeof words);
    size_t rest = size > sizeof words ? size - sizeof words : 0;
    const uint8_t *body = data + (size - rest);
    mb.kind = words[0];
    mb.args_len = words[1];
    mb.status = (int32_t)words[2];
    mb.message_len = words[3];
    size_t nmsg = rest < sizeof mb.message ? rest : sizeof mb.message;
    memcpy(mb.message, body, nmsg);
    memcpy(mb.args, body, rest < sizeof mb.args ? rest : sizeof mb.args);

    /* the child's side */
    strata_task_args a;
    if (strata__mailbox_request_args(&mb, &a) == STRATA_OK) {
        uint64_t sum = 0;
        for (uint32_t i = 0; i < a.ntensors; i++)
            sum += a.tensors[i].offset + (uint64_t)a.tags[i];
        for (uint32_t i = 0; i < a.nscalars; i++)
            sum += a.scalars[i];
        (void)sum;
    } else if (strata_last_error()[0] == '\0') {
        abort();
    }
    /* the parent's side: the status it acts on, and the message it quotes */
    int status = strata__mailbox_reply_status(&mb);
    if (status > 0 || strcmp(strata_status_name(status), "STRATA_UNKNOWN") == 0)
        abort();
    uint32_t len = strata__mailbox_message_len(&mb);
    if (len > sizeof mb.message)
        abort();
    char quoted[128];
    snprintf(quoted, sizeof quoted, "child: %.*s", (int)len, mb.message);
    /* and what a child writes: a message of any length is cut to fit */
    char text[600];
    size_t tl = nmsg < sizeof text - 1 ? nmsg : sizeof text - 1;
    memcpy(text, body, tl);
    text[tl] = '\0';
    strata__mailbox_set_result(&mb, STRATA_ETASK, text);
    if (mb.message_len > sizeof mb.message)
        abort();
    return 0;
}
