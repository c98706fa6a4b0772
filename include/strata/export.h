/* Strata: symbol visibility for the public API.
 *
 * Every public function carries STRATA_API. The library is built with hidden
 * visibility, so only these symbols (also listed in cmake/strata.map) are exported. */
#ifndef STRATA_EXPORT_H
#define STRATA_EXPORT_H

#if defined(STRATA_BUILDING_LIBRARY) && defined(__GNUC__)
#define STRATA_API __attribute__((visibility("default")))
#else
#define STRATA_API
#endif

#endif
