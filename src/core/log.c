/* Logging to stderr, gated by STRATA_LOG.
 *
 * Global state: the level, an atomic int written by strata__log_configure()
 * (called at every worker create) and read by any thread. */
#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic int log_level = STRATA__LOG_OFF;
static const char *const level_names[] = {"off", "error", "warn", "info", "debug"};

int strata__log_configure(void)
{
    const char *v = getenv("STRATA_LOG");
    int level = STRATA__LOG_OFF;
    if (v && v[0]) {
        level = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(v, level_names[i]) == 0)
                level = i;
        if (level < 0)
            return strata__fail(STRATA_EINVAL, "STRATA_LOG is \"%s\"; it must be one of off, error, warn, info, "
                                "debug", v);
    }
    /* relaxed: the level is a hint; a message a moment late or early is harmless */
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
    return STRATA_OK;
}

bool strata__log_enabled(strata__log_level level)
{
    return level != STRATA__LOG_OFF && (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void strata__log(strata__log_level level, const char *fmt, ...)
{
    if (!strata__log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = strata__vformat(fmt, ap);
    va_end(ap);
    /* one write per line, so lines from different threads do not interleave */
    char *line = strata__format("strata[%d] %s: %s\n", (int)getpid(), level_names[level], msg ? msg : fmt);
    if (line) {
        ssize_t r = write(2, line, strlen(line));
        (void)r;
    }
    free(line);
    free(msg);
}
