/* A bump allocator for memory that lives exactly as long as one run: the node
 * engine's copies of task arguments. Allocation moves a pointer inside the
 * current chunk; a new chunk (twice the last, at least the request) is taken
 * when it is full; reset merges the chunks into one that holds them all, so a
 * worker that repeats the same run allocates nothing after the first one.
 * Not thread-safe. */
#ifndef STRATA_CORE_BUMP_H
#define STRATA_CORE_BUMP_H

#include <stddef.h>

typedef struct strata__bump_chunk {
    struct strata__bump_chunk *prev;
    size_t                     size, used;   /* bytes of data[] */
    _Alignas(16) unsigned char data[];
} strata__bump_chunk;

typedef struct strata__bump {
    strata__bump_chunk *chunk;   /* newest; NULL before the first allocation */
} strata__bump;

/* nbytes (rounded up to 16, > 0) aligned to 16, or NULL with STRATA_ENOMEM set
   naming `what`. */
void *strata__bump_alloc(strata__bump *b, size_t nbytes, const char *what);
/* Forget every allocation; keep one chunk as large as all of them. */
void  strata__bump_reset(strata__bump *b);
void  strata__bump_destroy(strata__bump *b);

#endif
