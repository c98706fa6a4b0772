/* Logging, off unless STRATA_LOG asks for it. Strata never prints by itself
 * otherwise. Levels: off, error, warn, info, debug; messages go to stderr with a
 * "strata[pid] level: " prefix. */
#ifndef STRATA_CORE_LOG_H
#define STRATA_CORE_LOG_H

#include "core/status.h"

typedef enum strata__log_level {
    STRATA__LOG_OFF, STRATA__LOG_ERROR, STRATA__LOG_WARN, STRATA__LOG_INFO, STRATA__LOG_DEBUG
} strata__log_level;

/* Read STRATA_LOG (again). A bad value is STRATA_EINVAL naming the variable. */
int  strata__log_configure(void);
bool strata__log_enabled(strata__log_level level);
void strata__log(strata__log_level level, const char *fmt, ...) STRATA__PRINTF(2, 3);

#endif
