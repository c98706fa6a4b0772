/* The platform interface: what a chip backend provides to the chip engine.
 *
 * A platform owns a chip's device memory. `sim` keeps it in one anonymous mapping
 * of the calling process, so device addresses are host pointers a kernel on a
 * simulated core can touch directly. A real accelerator backend goes beside sim
 * and implements the same table (with copies that cross to the device). */
#ifndef STRATA_PLATFORM_H
#define STRATA_PLATFORM_H

#include <stdint.h>

typedef struct strata__device strata__device;

typedef struct strata__platform {
    const char *name;
    /* Open device `device_id` with `memory_bytes` of device memory: mapped by the
       platform when `memory` is NULL, else the caller's range [memory, memory +
       memory_bytes), which stays the caller's to unmap. */
    int  (*open)(int device_id, uint64_t memory_bytes, void *memory, strata__device **out);
    void (*close)(strata__device *dev);
    /* Device memory, 64-byte aligned; nbytes > 0. free takes the size alloc got. */
    int  (*mem_alloc)(strata__device *dev, uint64_t nbytes, uint64_t *addr);
    void (*mem_free)(strata__device *dev, uint64_t addr, uint64_t nbytes);
    /* Copies between host memory and device memory; a status (a real device's
       transfer can fail), with the message naming the device and the range. */
    int  (*copy_to)(strata__device *dev, uint64_t dst, const void *src, uint64_t nbytes);
    int  (*copy_from)(strata__device *dev, void *dst, uint64_t src, uint64_t nbytes);
    /* The device memory range [*lo, *hi). */
    void (*mem_range)(const strata__device *dev, uint64_t *lo, uint64_t *hi);
    /* Bytes currently free, and the largest free block. */
    void (*mem_free_bytes)(const strata__device *dev, uint64_t *free_bytes, uint64_t *largest);
} strata__platform;

/* The platform called `name` ("sim"), or NULL. */
const strata__platform *strata__platform_find(const char *name);

#define STRATA__DEVICE_ALIGN 64u

#endif
