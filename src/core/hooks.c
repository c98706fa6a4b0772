/* The process's embedding hooks (strata/hooks.h, core/hooks.h). */
#include "core/hooks.h"

#include <pthread.h>
#include <stdarg.h>

#include "core/status.h"

static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static strata_hooks    hooks;   /* guarded by hooks_lock */

int strata_set_hooks(const strata_hooks *h)
{
    strata__clear_error();
    if (h && (h->wait_begin == NULL) != (h->wait_end == NULL))
        return strata__fail(STRATA_EINVAL, "strata_set_hooks: wait_begin and wait_end come as a pair: set both or "
                            "neither");
    pthread_mutex_lock(&hooks_lock);
    hooks = h ? *h : (strata_hooks){0};
    pthread_mutex_unlock(&hooks_lock);
    return STRATA_OK;
}

strata_hooks strata__hooks_get(void)
{
    pthread_mutex_lock(&hooks_lock);
    strata_hooks copy = hooks;
    pthread_mutex_unlock(&hooks_lock);
    return copy;
}

int strata_task_error(const char *fmt, ...)
{
    if (fmt == NULL)
        return strata__fail(STRATA_ETASK, "the task failed (strata_task_error without a message)");
    va_list ap;
    va_start(ap, fmt);
    strata__failv(STRATA_ETASK, fmt, ap);
    va_end(ap);
    return STRATA_ETASK;
}
