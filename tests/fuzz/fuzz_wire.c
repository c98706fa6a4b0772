/* fuzz.wire: the task-args wire format (src/ipc/wire.c), as a child decodes a
 * frame the parent wrote. Whatever the bytes, decode either refuses them with a
 * message or yields arguments whose every array lies inside the frame; those
 * re-encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "ipc/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* decode works in place on an 8-aligned frame, as the mailbox's is */
    static _Alignas(8) uint8_t frame[1 << 20];
    static _Alignas(8) uint8_t again[1 << 20];
    if (size > sizeof frame)
        return 0;
    memcpy(frame, data, size);
    strata_task_args a;
    if (strata__wire_decode(frame, size, &a) != STRATA_OK) {
        if (strata_last_error()[0] == '\0')
            abort();   /* a refusal always says why */
        return 0;
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < a.ntensors; i++)
        sum += a.tensors[i].addr + a.tensors[i].nbytes + (uint64_t)a.tags[i];
    for (uint32_t i = 0; i < a.nscalars; i++)
        sum += a.scalars[i];
    size_t len = 0;
    if (strata__wire_encode(&a, again, sizeof again, &len) != STRATA_OK || len != size ||
        memcmp(again, frame, size) != 0)
        abort();
    return (int)(sum & 0);
}
