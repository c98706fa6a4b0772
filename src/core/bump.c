/* Run-long bump allocation: see core/bump.h. */
#include "core/bump.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/status.h"

#define FIRST_CHUNK (16u * 1024u)

void *strata__bump_alloc(strata__bump *b, size_t nbytes, const char *what)
{
    size_t need = nbytes ? (nbytes + 15) & ~(size_t)15 : 16;
    if (need < nbytes)
        need = SIZE_MAX;   /* overflow: no chunk is that large, so ENOMEM below */
    strata__bump_chunk *c = b->chunk;
    if (c == NULL || c->size - c->used < need) {
        size_t size = c ? 2 * c->size : FIRST_CHUNK;
        while (size < need && size < SIZE_MAX / 2)
            size *= 2;
        strata__bump_chunk *fresh = size >= need ? strata__malloc(sizeof *fresh + size) : NULL;
        if (fresh == NULL) {
            strata__fail(STRATA_ENOMEM, "out of host memory for %s (%zu bytes)", what, nbytes);
            return NULL;
        }
        fresh->prev = c;
        fresh->size = size;
        fresh->used = 0;
        b->chunk = c = fresh;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

void strata__bump_reset(strata__bump *b)
{
    strata__bump_chunk *c = b->chunk;
    if (c == NULL)
        return;
    if (c->prev) {
        /* Several chunks: replace them by one that holds them all, so the same
           run again allocates nothing. Without memory for it, keep the newest. */
        size_t total = 0;
        for (strata__bump_chunk *p = c; p; p = p->prev)
            total += p->size;
        strata__bump_chunk *one = strata__malloc(sizeof *one + total);
        for (strata__bump_chunk *p = one ? c : c->prev; p;) {
            strata__bump_chunk *prev = p->prev;
            free(p);
            p = prev;
        }
        if (one) {
            one->size = total;
            c = one;
        }
        c->prev = NULL;
        b->chunk = c;
    }
    c->used = 0;
}

void strata__bump_destroy(strata__bump *b)
{
    strata__bump_reset(b);
    free(b->chunk);
    b->chunk = NULL;
}
