/* Reading sizes from the environment, with errors that name the variable and say
 * what is allowed. */
#ifndef STRATA_CORE_ENV_H
#define STRATA_CORE_ENV_H

#include <stdbool.h>
#include <stdint.h>

/* Read `name` as an unsigned integer in [min, max], with an optional K, M or G
   suffix (powers of 1024) when `allow_suffix`. Unset or empty leaves *out alone.
   A bad value is STRATA_EINVAL naming the variable, the value and the range. */
int strata__env_u64(const char *name, uint64_t min, uint64_t max, bool power_of_two,
                    bool allow_suffix, uint64_t *out);

/* The same for a variable that holds one value or `n` comma-separated values
   (one per ring, say; entry[i] names value i in messages, "scope depth 2"):
   one value fills every out[i]; *listed says which form it was. Unset or
   empty leaves out[] alone. */
int strata__env_u64_list(const char *name, uint64_t min, uint64_t max, bool power_of_two, bool allow_suffix,
                         uint64_t *out, uint32_t n, const char *const *entry, bool *listed);

/* Parse text the same way (shared with call_config checks); `what` names the
   source in messages. */
int strata__parse_u64(const char *what, const char *text, uint64_t min, uint64_t max,
                      bool power_of_two, bool allow_suffix, uint64_t *out);

#endif
