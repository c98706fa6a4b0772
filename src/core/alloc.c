/* The one door to the heap: see core/alloc.h. */
#define _GNU_SOURCE
#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"

static bool refused(void)
{
    if (!strata__fault_hit("alloc"))
        return false;
    errno = ENOMEM;
    return true;
}

void *strata__malloc(size_t n)
{
    return refused() ? NULL : malloc(n);
}

void *strata__calloc(size_t count, size_t size)
{
    return refused() ? NULL : calloc(count, size);
}

void *strata__realloc(void *p, size_t n)
{
    return refused() ? NULL : realloc(p, n);
}

void *strata__aligned_alloc(size_t align, size_t n)
{
    void *p = NULL;
    if (refused())
        return NULL;
    int rc = posix_memalign(&p, align, n);
    if (rc) {
        errno = rc;
        return NULL;
    }
    return p;
}

char *strata__strdup(const char *s)
{
    return refused() ? NULL : strdup(s);
}

char *strata__strndup(const char *s, size_t n)
{
    return refused() ? NULL : strndup(s, n);
}
