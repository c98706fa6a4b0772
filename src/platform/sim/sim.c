/* The sim platform: a chip whose device memory is one mapping of this process,
 * carved by the first-fit allocator of core/arena.h.
 *
 * The memory is either mapped here (MAP_NORESERVE: untouched device memory costs
 * no host memory) or handed in by the caller (a node worker gives each chip child
 * a range it reserved before the child started, so addresses never collide
 * between processes); only memory mapped here is unmapped at close. Not
 * thread-safe: the chip calls it from the thread that drives the worker. */
#define _GNU_SOURCE
#include "platform/sim/sim.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/fault.h"
#include "core/status.h"
#include "core/sys.h"

struct strata__device {
    int           device_id;
    uint8_t      *base;
    uint64_t      size;
    bool          owned;     /* mapped here, unmapped at close */
    strata__arena arena;
    char          name[32];  /* "sim chip 3", for messages */
};

const char *strata__sim_name(const strata__device *dev)
{
    return dev->name;
}

static void sim_close(strata__device *dev)
{
    if (!dev)
        return;
    strata__arena_destroy(&dev->arena);
    if (dev->base && dev->owned)
        munmap(dev->base, dev->size);
    free(dev);
}

static int sim_open(int device_id, uint64_t memory_bytes, void *memory, strata__device **out)
{
    strata__device *dev = strata__calloc(1, sizeof *dev);
    if (!dev)
        return strata__fail(STRATA_ENOMEM, "out of host memory opening sim chip %d", device_id);
    dev->device_id = device_id;
    snprintf(dev->name, sizeof dev->name, "sim chip %d", device_id);
    if (memory) {
        dev->base = memory;
        dev->size = memory_bytes;
    } else {
        dev->size = (memory_bytes + 4095) & ~(uint64_t)4095;
        void *p = strata__sys_mmap(dev->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE);
        if (p == MAP_FAILED) {
            int err = errno;
            free(dev);
            return strata__fail_sys(err, "mmap of %llu bytes of device memory for sim chip %d",
                                    (unsigned long long)memory_bytes, device_id);
        }
        dev->base = p;
        dev->owned = true;
    }
    uint64_t lo = (uint64_t)(uintptr_t)dev->base;
    int rc = strata__arena_init(&dev->arena, lo, lo + dev->size, STRATA__DEVICE_ALIGN, dev->name);
    if (rc) {
        if (dev->owned)
            munmap(dev->base, dev->size);
        free(dev);
        return rc;
    }
    *out = dev;
    return STRATA_OK;
}

static int sim_mem_alloc(strata__device *dev, uint64_t nbytes, uint64_t *addr)
{
    return strata__arena_alloc(&dev->arena, nbytes, addr, dev->name, "device_memory_bytes");
}

static void sim_mem_free(strata__device *dev, uint64_t addr, uint64_t nbytes)
{
    strata__arena_free(&dev->arena, addr, nbytes);
}

/* A copy is a memcpy on sim; the fault point "device_copy" stands for the
   transfer a real device can fail (core/fault.h). */
static int copy_refused(const strata__device *dev, const char *dir, uint64_t addr, uint64_t nbytes)
{
    return strata__fail(STRATA_ESYS, "copy %s %s at 0x%llx (%llu bytes) failed: Input/output error (a fault "
                        "injected by a test)", dir, dev->name, (unsigned long long)addr, (unsigned long long)nbytes);
}

static int sim_copy_to(strata__device *dev, uint64_t dst, const void *src, uint64_t nbytes)
{
    if (strata__fault_hit("device_copy"))
        return copy_refused(dev, "to", dst, nbytes);
    memcpy((void *)(uintptr_t)dst, src, nbytes);
    return STRATA_OK;
}

static int sim_copy_from(strata__device *dev, void *dst, uint64_t src, uint64_t nbytes)
{
    if (strata__fault_hit("device_copy"))
        return copy_refused(dev, "from", src, nbytes);
    memcpy(dst, (const void *)(uintptr_t)src, nbytes);
    return STRATA_OK;
}

static void sim_mem_range(const strata__device *dev, uint64_t *lo, uint64_t *hi)
{
    *lo = (uint64_t)(uintptr_t)dev->base;
    *hi = *lo + dev->size;
}

static void sim_mem_free_bytes(const strata__device *dev, uint64_t *free_bytes, uint64_t *largest)
{
    strata__arena_usage(&dev->arena, free_bytes, largest);
}

const strata__platform strata__platform_sim = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .mem_alloc = sim_mem_alloc,
    .mem_free = sim_mem_free,
    .copy_to = sim_copy_to,
    .copy_from = sim_copy_from,
    .mem_range = sim_mem_range,
    .mem_free_bytes = sim_mem_free_bytes,
    .cores_start = strata__sim_cores_start,
    .core_join = strata__sim_core_join,
    .core_abandon = strata__sim_core_abandon,
    .cores_free = strata__sim_cores_free,
    .launch = strata__sim_launch,
};
