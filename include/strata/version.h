/* Strata: version of the headers and of the library they were linked to. */
#ifndef STRATA_VERSION_H
#define STRATA_VERSION_H

#include "strata/export.h"

#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 1
#define STRATA_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* "0.1.0": the version of the library actually linked. Static string, never NULL.
   Any thread. */
STRATA_API const char *strata_version_string(void);

#ifdef __cplusplus
}
#endif

#endif
