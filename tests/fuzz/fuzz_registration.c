/* fuzz.registration: a registration frame as a child reads it
 * (src/node/registry.c, strata__reg_frame_parse): kind, kernel table, name,
 * path and symbol lengths are each checked against the frame; a chip
 * callable is then copied (its kernel table validated) but never called. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chip/kernel.h"
#include "core/status.h"
#include "node/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static _Alignas(8) uint8_t frame[STRATA__MAILBOX_ARGS];
    if (size > sizeof frame)
        return 0;
    memcpy(frame, data, size);
    strata__reg_parsed f;
    if (strata__reg_frame_parse(frame, size, &f) != STRATA_OK) {
        if (strata_last_error()[0] == '\0')
            abort();
        return 0;
    }
    const uint8_t *end = frame + size;
    if ((const uint8_t *)f.symbol + f.symbol_len > end || (const uint8_t *)f.name < frame)
        abort();
    if (f.kind == STRATA__REG_CHIP && !f.by_symbol) {
        strata__callable c;
        if (strata__reg_parsed_callable(&f, &c) == STRATA_OK)
            strata__callable_free(&c);
    }
    return 0;
}
