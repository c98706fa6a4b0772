/* fuzz.env: sizes from the environment and from call_config
 * (src/core/env.c, strata__parse_u64), and the log level (STRATA_LOG). The
 * first byte picks the flags and the range; the rest is the text. A value is
 * either taken, inside its range, or refused with a message naming it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/log.h"
#include "core/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 256)
        return 0;
    char text[257];
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    uint8_t flags = data[0];
    bool power_of_two = flags & 1, suffix = flags & 2;
    uint64_t min = (flags & 4) ? 64 : 0, max = (flags & 8) ? (1ull << 30) : UINT64_MAX;
    uint64_t v = 12345;
    int rc = strata__parse_u64("PTO2_RING_HEAP", text, min, max, power_of_two, suffix, &v);
    if (rc == STRATA_OK) {
        if (v < min || v > max || (power_of_two && (v & (v - 1)) != 0))
            abort();
    } else if (v != 12345 || strstr(strata_last_error(), "PTO2_RING_HEAP") == NULL) {
        abort();
    }
    if (flags & 16) {
        setenv("STRATA_LOG", text, 1);
        rc = strata__log_configure();
        if (rc != STRATA_OK && strstr(strata_last_error(), "STRATA_LOG") == NULL)
            abort();
        unsetenv("STRATA_LOG");
        strata__log_configure();   /* back to off */
    }
    return 0;
}
