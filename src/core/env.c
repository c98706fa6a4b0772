/* Sizes from the environment. */
#include "core/env.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

static int range_error(const char *what, const char *text, uint64_t min, uint64_t max,
                       bool power_of_two, bool allow_suffix)
{
    return strata__fail(STRATA_EINVAL,
                        "%s is \"%s\"; it must be %s between %llu and %llu%s",
                        what, text, power_of_two ? "a power of two" : "an integer",
                        (unsigned long long)min, (unsigned long long)max,
                        allow_suffix ? " (a K, M or G suffix multiplies by 1024, 1024^2, 1024^3)" : "");
}

int strata__parse_u64(const char *what, const char *text, uint64_t min, uint64_t max,
                      bool power_of_two, bool allow_suffix, uint64_t *out)
{
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return range_error(what, text, min, max, power_of_two, allow_suffix);
    errno = 0;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno == ERANGE)
        return range_error(what, text, min, max, power_of_two, allow_suffix);
    unsigned shift = 0;
    if (allow_suffix && *end) {
        switch (*end) {
        case 'k': case 'K': shift = 10; end++; break;
        case 'm': case 'M': shift = 20; end++; break;
        case 'g': case 'G': shift = 30; end++; break;
        default: break;
        }
        if (shift && (*end == 'i' || *end == 'I'))
            end++;
        if (shift && (*end == 'b' || *end == 'B'))
            end++;
    }
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0')
        return range_error(what, text, min, max, power_of_two, allow_suffix);
    if (shift && v > (UINT64_MAX >> shift))
        return range_error(what, text, min, max, power_of_two, allow_suffix);
    v <<= shift;
    if (v < min || v > max || (power_of_two && (v & (v - 1)) != 0))
        return range_error(what, text, min, max, power_of_two, allow_suffix);
    *out = v;
    return STRATA_OK;
}

int strata__env_u64(const char *name, uint64_t min, uint64_t max, bool power_of_two,
                    bool allow_suffix, uint64_t *out)
{
    const char *text = getenv(name);
    if (text == NULL || text[0] == '\0')
        return STRATA_OK;
    return strata__parse_u64(name, text, min, max, power_of_two, allow_suffix, out);
}

int strata__env_u64_list(const char *name, uint64_t min, uint64_t max, bool power_of_two, bool allow_suffix,
                         uint64_t *out, uint32_t n, const char *const *entry, bool *listed)
{
    const char *text = getenv(name);
    *listed = false;
    if (text == NULL || text[0] == '\0')
        return STRATA_OK;
    if (strchr(text, ',') == NULL) {
        uint64_t v = 0;
        int rc = strata__parse_u64(name, text, min, max, power_of_two, allow_suffix, &v);
        for (uint32_t i = 0; rc == STRATA_OK && i < n; i++)
            out[i] = v;
        return rc;
    }
    uint64_t v[16];
    uint32_t count = 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[64], what[128];
        if (count == n || len >= sizeof one || n > 16)
            break;
        memcpy(one, p, len);
        one[len] = '\0';
        snprintf(what, sizeof what, "%s's value for %s", name, entry[count]);
        int rc = strata__parse_u64(what, one, min, max, power_of_two, allow_suffix, &v[count]);
        if (rc)
            return rc;
        count++;
        if (!comma) {
            if (count != n)
                break;
            for (uint32_t i = 0; i < n; i++)
                out[i] = v[i];
            *listed = true;
            return STRATA_OK;
        }
        p = comma + 1;
    }
    return strata__fail(STRATA_EINVAL, "%s is \"%s\"; it must be one value or %u comma-separated values (one "
                        "for each of %s ... %s)", name, text, n, entry[0], entry[n - 1]);
}
