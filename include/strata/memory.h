/* Strata: chip memory and shared host memory. At L2 a worker's chip owns one
 * contiguous arena of device_memory_bytes; at L3 each chip child has its own
 * range. Buffers allocated here live until freed or until close, across any
 * number of runs (weights uploaded once); at L3 a chip buffer is lost when its
 * chip child dies. */
#ifndef STRATA_MEMORY_H
#define STRATA_MEMORY_H

#include <stdint.h>

#include "strata/export.h"
#include "strata/worker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strata_buffer {
    uint64_t addr;     /* base address in the chip's memory */
    uint64_t nbytes;   /* size, bytes */
    int      worker;   /* the chip that owns it (0 at L2) */
} strata_buffer;

/* Allocate nbytes (> 0) of chip memory, 64-byte aligned. `worker`: the chip
   worker at L3 (0..ndevices-1); ignored at L2 (pass 0). READY only. */
STRATA_API int strata_worker_malloc(strata_worker *w, int worker, uint64_t nbytes,
                                    strata_buffer *out);

/* Free a buffer from strata_worker_malloc. A buffer that is not live is
   STRATA_ENOENT. READY only. */
STRATA_API int strata_worker_free(strata_worker *w, strata_buffer buf);

/* Copy nbytes between host memory and the chip buffer dst/src at byte offset
   `offset`; the range must lie inside the buffer. src/dst host pointers:
   borrowed. READY only. */
STRATA_API int strata_worker_copy_to(strata_worker *w, strata_buffer dst, uint64_t offset,
                                     const void *src, uint64_t nbytes);
STRATA_API int strata_worker_copy_from(strata_worker *w, void *dst, strata_buffer src,
                                       uint64_t offset, uint64_t nbytes);

/* L3: host memory every child sees at the same address (an anonymous shared
   mapping made at create, before any child exists). From create until close.
   *out: returned, release with strata_worker_host_free. */
STRATA_API int strata_worker_host_alloc(strata_worker *w, uint64_t nbytes, void **out);
STRATA_API int strata_worker_host_free(strata_worker *w, void *p);

/* L3: let tasks name memory the application mapped shared itself (shm_open and
   mmap MAP_SHARED, a shared anonymous mapping) before init: every child
   inherits it at the same address. Tensors name p as their base, as they name
   a host_alloc buffer. The range must be shared and writable in this process
   (checked) and overlap neither the worker's heap nor another adopted range.
   It stays the application's: unmap it after close, not before. NEW only. */
STRATA_API int strata_worker_host_adopt(strata_worker *w, void *p, uint64_t nbytes);

#ifdef __cplusplus
}
#endif

#endif
