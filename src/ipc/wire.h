/* Task arguments on the wire: a strata_task_args copied by memcpy into a flat
 * frame that can cross a process (and later a network) boundary, and decoded in
 * place on the other side with every length checked.
 *
 *   offset  size              field
 *   0       4                 ntensors
 *   4       4                 nscalars
 *   8       112 * ntensors    tensors (strata_tensor, host byte order)
 *   ...     4 * ntensors      tags, padded with zeros to 8 bytes
 *   ...     8 * nscalars      scalars
 */
#ifndef STRATA_IPC_WIRE_H
#define STRATA_IPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "strata/tensor.h"

/* Bytes the frame of args takes (args may be NULL: an empty frame). */
size_t strata__wire_size(const strata_task_args *args);
/* Write args into buf[0, cap); STRATA_EINVAL when it does not fit. */
int strata__wire_encode(const strata_task_args *args, void *buf, size_t cap, size_t *len);
/* View a frame as args (pointers into buf, which must be 8-byte aligned).
   STRATA_EINVAL, saying what is wrong, for a frame that is not one. */
int strata__wire_decode(const void *buf, size_t len, strata_task_args *out);

#endif
