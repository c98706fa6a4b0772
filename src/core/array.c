/* Growable arrays: see core/array.h. */
#include "core/array.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"

int strata__array_reserve(void *slot, uint32_t count, uint32_t *cap, size_t size, uint32_t first,
                          const char *what)
{
    if (count < *cap)
        return STRATA_OK;
    void *items;
    memcpy(&items, slot, sizeof items);
    uint32_t want = *cap ? 2 * *cap : first;
    void *p = strata__realloc(items, (size_t)want * size);
    if (!p)
        return strata__fail(STRATA_ENOMEM, "out of host memory growing %s to %u entries", what, want);
    memcpy(slot, &p, sizeof p);
    *cap = want;
    return STRATA_OK;
}
