/* The sim platform: a chip whose device memory is one anonymous mapping of this
 * process, carved by a first-fit allocator.
 *
 * Invariant: the free list is sorted by address and no two free blocks touch
 * (they are merged on free). The mapping is MAP_NORESERVE: untouched device memory
 * costs no host memory. Not thread-safe: the chip calls it from the thread that
 * drives the worker. */
#define _GNU_SOURCE
#include "platform/platform.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/status.h"

typedef struct free_block {
    uint64_t addr, nbytes;
    struct free_block *next;
} free_block;

struct strata__device {
    int         device_id;
    uint8_t    *base;
    uint64_t    size;
    free_block *free_list;   /* sorted by addr, coalesced */
};

static void sim_close(strata__device *dev)
{
    if (!dev)
        return;
    while (dev->free_list) {
        free_block *b = dev->free_list;
        dev->free_list = b->next;
        free(b);
    }
    if (dev->base)
        munmap(dev->base, dev->size);
    free(dev);
}

static int sim_open(int device_id, uint64_t memory_bytes, strata__device **out)
{
    strata__device *dev = calloc(1, sizeof *dev);
    free_block *all = malloc(sizeof *all);
    if (!dev || !all) {
        free(dev);
        free(all);
        return strata__fail(STRATA_ENOMEM, "out of host memory opening sim chip %d", device_id);
    }
    dev->device_id = device_id;
    dev->size = (memory_bytes + 4095) & ~(uint64_t)4095;
    void *p = mmap(NULL, dev->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        free(all);
        free(dev);
        return strata__fail_sys(err, "mmap of %llu bytes of device memory for sim chip %d",
                                (unsigned long long)memory_bytes, device_id);
    }
    dev->base = p;
    all->addr = (uint64_t)(uintptr_t)p;
    all->nbytes = dev->size;
    all->next = NULL;
    dev->free_list = all;
    *out = dev;
    return STRATA_OK;
}

static uint64_t round_up(uint64_t n)
{
    return (n + STRATA__DEVICE_ALIGN - 1) & ~(uint64_t)(STRATA__DEVICE_ALIGN - 1);
}

static int sim_mem_alloc(strata__device *dev, uint64_t nbytes, uint64_t *addr)
{
    uint64_t n = round_up(nbytes);
    if (n < nbytes)
        n = UINT64_MAX;
    for (free_block **link = &dev->free_list; *link; link = &(*link)->next) {
        free_block *b = *link;
        if (b->nbytes < n)
            continue;
        *addr = b->addr;
        b->addr += n;
        b->nbytes -= n;
        if (b->nbytes == 0) {
            *link = b->next;
            free(b);
        }
        return STRATA_OK;
    }
    uint64_t free_bytes = 0, largest = 0;
    for (free_block *b = dev->free_list; b; b = b->next) {
        free_bytes += b->nbytes;
        largest = b->nbytes > largest ? b->nbytes : largest;
    }
    return strata__fail(STRATA_ENOMEM,
                        "sim chip %d: no block of %llu bytes left in its %llu-byte device memory "
                        "(%llu bytes free, largest free block %llu); free buffers or raise "
                        "device_memory_bytes", dev->device_id, (unsigned long long)n,
                        (unsigned long long)dev->size, (unsigned long long)free_bytes,
                        (unsigned long long)largest);
}

static void sim_mem_free(strata__device *dev, uint64_t addr, uint64_t nbytes)
{
    uint64_t n = round_up(nbytes);
    free_block *prev = NULL, *next = dev->free_list;
    while (next && next->addr < addr) {
        prev = next;
        next = next->next;
    }
    bool join_prev = prev && prev->addr + prev->nbytes == addr;
    bool join_next = next && addr + n == next->addr;
    if (join_prev && join_next) {
        prev->nbytes += n + next->nbytes;
        prev->next = next->next;
        free(next);
    } else if (join_prev) {
        prev->nbytes += n;
    } else if (join_next) {
        next->addr = addr;
        next->nbytes += n;
    } else {
        free_block *b = malloc(sizeof *b);
        if (!b) {
            /* Deliberate leak of device memory, not of host memory: without a node
               the block cannot be listed. Harmless beyond the lost bytes, and only
               under host memory exhaustion. */
            return;
        }
        b->addr = addr;
        b->nbytes = n;
        b->next = next;
        if (prev)
            prev->next = b;
        else
            dev->free_list = b;
    }
}

static void sim_copy_to(strata__device *dev, uint64_t dst, const void *src, uint64_t nbytes)
{
    (void)dev;
    memcpy((void *)(uintptr_t)dst, src, nbytes);
}

static void sim_copy_from(strata__device *dev, void *dst, uint64_t src, uint64_t nbytes)
{
    (void)dev;
    memcpy(dst, (const void *)(uintptr_t)src, nbytes);
}

static void sim_mem_range(const strata__device *dev, uint64_t *lo, uint64_t *hi)
{
    *lo = (uint64_t)(uintptr_t)dev->base;
    *hi = *lo + dev->size;
}

static void sim_mem_free_bytes(const strata__device *dev, uint64_t *free_bytes, uint64_t *largest)
{
    *free_bytes = *largest = 0;
    for (const free_block *b = dev->free_list; b; b = b->next) {
        *free_bytes += b->nbytes;
        *largest = b->nbytes > *largest ? b->nbytes : *largest;
    }
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
};
