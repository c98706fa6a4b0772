/* The platform interface: what a chip backend provides to the chip engine.
 *
 * A platform owns a chip's device memory. `sim` keeps it in one anonymous mapping
 * of the calling process, so device addresses are host pointers a kernel on a
 * simulated core can touch directly. A real accelerator backend goes beside sim
 * and implements the same table (with copies that cross to the device). */
#ifndef STRATA_PLATFORM_H
#define STRATA_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>

#include "strata/chip.h"

typedef struct strata__device strata__device;
typedef struct strata__cores  strata__cores;   /* the chip's running cores */

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

    /* ---- cores: where the chip engine's per-core loops run ---- */
    /* Start ncores cores, core i running core_main(args[i]) until it returns
       (sim: a thread each). On failure the status says why, and *nstarted
       cores run: the caller makes their loops return, then joins them. */
    int  (*cores_start)(strata__device *dev, uint32_t ncores, void *(*core_main)(void *), void *const *args,
                        strata__cores **out, uint32_t *nstarted);
    /* Wait until core i's loop has returned. */
    void (*core_join)(strata__cores *cores, uint32_t i);
    /* Leave core i running: it is stuck in a kernel that cannot be stopped
       (sim: the thread is detached; it ends if the kernel ever returns). */
    void (*core_abandon)(strata__cores *cores, uint32_t i);
    /* Release the record of the cores (after each was joined or abandoned). */
    void (*cores_free)(strata__cores *cores);
    /* Launch kernel fn with args on the calling core and wait for its
       completion: its status (0 = success). sim calls it in place. */
    int  (*launch)(strata__device *dev, strata_kernel_fn fn, const strata_task_args *args);
} strata__platform;

/* The platform called `name` ("sim"), or NULL. */
const strata__platform *strata__platform_find(const char *name);

#define STRATA__DEVICE_ALIGN 64u

#endif
