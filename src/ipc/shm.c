/* Anonymous shared mappings: see ipc/shm.h. */
#define _GNU_SOURCE
#include "ipc/shm.h"

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

#include "core/status.h"
#include "core/sys.h"

static uint64_t pages(uint64_t n)
{
    return (n + 4095) & ~(uint64_t)4095;
}

int strata__shm_map(uint64_t nbytes, const char *what, void **out)
{
    void *p = strata__sys_mmap(pages(nbytes), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE);
    if (p == MAP_FAILED)
        return strata__fail_sys(errno, "mmap of %llu bytes of shared memory for %s", (unsigned long long)nbytes,
                                what);
    *out = p;
    return STRATA_OK;
}

void strata__shm_unmap(void *p, uint64_t nbytes)
{
    if (p)
        munmap(p, pages(nbytes));
}
