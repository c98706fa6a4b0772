/* Memory shared between a node worker and its children: anonymous MAP_SHARED
 * mappings made by the parent before a child is forked, so the child inherits
 * them at the same address, and nothing has a name that could outlive the
 * processes (nothing in /dev/shm, even after SIGKILL of every process). */
#ifndef STRATA_IPC_SHM_H
#define STRATA_IPC_SHM_H

#include <stdint.h>

/* Map nbytes (rounded up to pages) of zeroed shared memory; `what` names it in
   the message of a failure. MAP_NORESERVE: untouched pages cost nothing. */
int  strata__shm_map(uint64_t nbytes, const char *what, void **out);
void strata__shm_unmap(void *p, uint64_t nbytes);

#endif
