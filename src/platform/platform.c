/* The table of built-in platforms. */
#include "platform/platform.h"

#include <string.h>

extern const strata__platform strata__platform_sim;

const strata__platform *strata__platform_find(const char *name)
{
    if (name && strcmp(name, strata__platform_sim.name) == 0)
        return &strata__platform_sim;
    return NULL;
}
