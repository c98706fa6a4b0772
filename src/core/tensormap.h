/* The TensorMap: which tasks last wrote, and have since read, the bytes of each
 * buffer; and the registry of live buffers it is keyed by.
 *
 * Every tensor names its buffer's base as addr. Buffers never overlap, so the base
 * is a canonical key: one lookup per tensor finds the buffer (which also
 * proves the tensor lies in memory the engine knows) and its list of accesses.
 * Overlap between views of one buffer is decided exactly, strided views included
 * (core/tensor.h).
 *
 * Each buffer keeps two lists, newest first: its writers (accesses that wrote,
 * and maybe read) and its readers (read only). A reader walks only the writers
 * (read after read orders nothing), so a buffer read by a thousand tasks costs
 * each of them a walk over its writers alone; a writer walks both.
 *
 * Invariants:
 * - An access whose task has retired is stale; stale entries are dropped lazily,
 *   when a later lookup walks past them, and the readers of a buffer that is
 *   only read (which no writer walks) every so many reads, so the lists stay
 *   as long as what is live (twice, at most). A task id's low two bits name
 *   its ring (the chip engine's scope depths, chip/engine.h): it is stale when
 *   below live_from[its two low bits]. Rings retire independently, so a list
 *   (newest first) may hold a stale entry before a live one; pruning filters
 *   the whole list. Nothing else ever removes a live entry
 *   except writers that together cover it, each ordered after it already
 *   (strata__view_covered_blocks): any later access that overlaps its bytes
 *   overlaps one of those writers and follows it. So a buffer read whole and
 *   then rewritten slice by slice (a fan-in) does not keep every old reader.
 * - No cap: a buffer may have any number of readers and writers; the entry pool
 *   grows. Once warm, lookups allocate nothing.
 *
 * Cells: a buffer named by contiguous views that are parts of it (slots of one
 * buffer, rows of a cache), or by boxes of a row-major lattice (tiles of a
 * matrix), gets a grid of cells sized by the first such view once it has no
 * live access; from then on an access that is a whole number of
 * aligned cells is kept per cell (each cell: its newest writer and its readers
 * since), so it looks only at the accesses of its own cells, however many are
 * live in the buffer. Cells partition the bytes and such an access touches
 * exactly the bytes of its cells, so two of them overlap exactly when they
 * share a cell. Any other access (a strided view, another size or alignment)
 * turns the buffer back into its two lists first ("flatten").
 * A buffer of at most STRATA__DIRECT_CELLS cells finds a cell's record by its
 * number (a table allocated zeroed when small, else mapped, so that only the
 * pages of cells in use take memory; a mapped table a grid gives up is kept as
 * the tensormap's spare for the next grid, so that a buffer flattened and
 * started again every run maps nothing after the first); a larger one by a
 * hash of it. Either way nothing else walks the
 * records but a rebuild of the hash table (when it fills) and a sweep of the
 * direct one (a record per access, which drops what retired in cells no
 * longer named). Between node-level runs the records are cleared and the grid
 * is kept.
 * Not thread-safe: owned by one orchestrator thread. */
#ifndef STRATA_CORE_TENSORMAP_H
#define STRATA_CORE_TENSORMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"

#define STRATA__NONE UINT32_MAX

typedef struct strata__access {
    uint64_t             task;     /* id of the task that made the access */
    uint32_t             slot;     /* the owner's word for where that task lives (dep's third argument) */
    const strata_tensor *view;     /* that task's copy of the tensor; valid until it retires */
    strata__extent       ext;      /* its bytes, in a list; a cell's access has none (flatten() sets it) */
    uint64_t             covered;  /* blocks of ext later writers that follow it wrote */
    uint32_t             next;     /* next access of the same buffer, or STRATA__NONE */
    uint32_t             writes;   /* 1: wrote (and maybe read); 0: read only */
} strata__access;
_Static_assert(sizeof(strata__access) == 64, "an access is one cache line (the pool is line-aligned)");

/* The most cells a buffer's grid numbers directly (24 MiB of address space). */
#define STRATA__DIRECT_CELLS (1u << 20)

/* One cell of a buffer's grid (tensormap.c). */
typedef struct strata__cell {
    uint64_t id;                   /* cell number + 1; 0: an empty record */
    uint32_t writer;               /* its newest writer's access, or STRATA__NONE */
    uint32_t readers;              /* accesses that read it since, newest first */
    uint32_t reads_since_prune, prune_after;
} strata__cell;

/* A buffer's grid: of bytes (contiguous views), or of boxes of a row-major
   lattice (strided views: the tiles of a matrix; core/tensor.h, strata__box). */
typedef struct strata__grid {
    bool          lattice;
    uint64_t      origin, bytes;   /* bytes: cell k is [addr + origin + k * bytes, ... + bytes) */
    strata__box   box;             /* lattice: its element size and strides (box.es, box.st) */
    uint64_t      cell[STRATA_MAX_DIMS];   /* lattice: a cell's shape, */
    uint64_t      at[STRATA_MAX_DIMS];     /* the coordinates cells start at, modulo cell[], */
    uint64_t      mult[STRATA_MAX_DIMS];   /* and what a cell coordinate weighs in its number */
    /* cells whose edges are powers of two, of bytes or of a 2-D lattice (the
       slots of a buffer, the tiles of a matrix): an access of one cell is
       numbered by one_cell() without strata__view_box */
    bool          pow2;
    strata_dtype  dtype;           /* lattice: the first view's; a tile of another dtype takes the general path */
    uint8_t       shift[2];        /* bytes == 1 << shift[0]; lattice: cell[k] == 1 << shift[k] */
    uint64_t      row_magic;       /* lattice: 2^64 / box.st[0], rounded up, when 2 <= st[0] < 2^32; else 0 */
    /* The records: by number when the buffer has at most
       STRATA__DIRECT_CELLS cells (ndirect of them, cell id - 1 indexes
       cells[], mapped lazily), else open addressing by id (cap a power of
       two, ncells in use). */
    strata__cell *cells;
    uint32_t      ncells, cap;
    uint64_t      ndirect;         /* 0: open addressing */
    uint64_t      used_lo, used_hi; /* direct: the records ever used lie in [used_lo, used_hi) */
    uint64_t      sweep;           /* direct: the next record whose retired accesses are dropped */
} strata__grid;

typedef struct strata__buffer {
    uint64_t addr, nbytes;         /* the registered range */
    uint64_t last_user[4];         /* last task id of each ring (a task id's low bits) that named it; 0 = none */
    uint32_t writers, readers;     /* heads of its access lists, newest first */
    uint32_t reads_since_prune;    /* readers added since the stale ones were dropped */
    uint32_t prune_after;          /* ... and how many more trigger the next drop; 0 = 32 */
    uint32_t kind;                 /* owner's tag: user buffer, heap buffer, ...; 0 = a free record */
    uint64_t owner_data;           /* owner's use (the heap record of a heap buffer) */
    strata__grid *grid;            /* its cells, or NULL: its accesses are in the two lists */
} strata__buffer;

typedef struct strata__tensormap {
    uint32_t       *slots;         /* hash: addr -> buffer index; STRATA__NONE = empty */
    uint32_t        nslots;        /* power of two */
    uint32_t        nused;
    strata__buffer *buffers;       /* pool; indices are stable */
    uint32_t        nbuffers, free_buffer;
    uint32_t        last_found;    /* strata__tmap_buffer_find_next's last answer */
    strata__access *accesses;      /* pool; indices are stable */
    uint32_t        naccesses, free_access;
    uint64_t        live_accesses, high_accesses;
    strata__overlap_scratch *scratch;
    strata__cell   *spare_cells;   /* a mapped direct table no grid uses, all zero; or NULL */
    uint64_t        spare_ncells;
} strata__tensormap;

int  strata__tmap_init(strata__tensormap *m);
void strata__tmap_destroy(strata__tensormap *m);

/* Register [addr, addr + nbytes) as a buffer; *index receives its handle. */
int  strata__tmap_buffer_add(strata__tensormap *m, uint64_t addr, uint64_t nbytes, uint32_t kind,
                             uint32_t *index);
/* The buffer whose base is addr, or STRATA__NONE. */
uint32_t strata__tmap_buffer_find(const strata__tensormap *m, uint64_t addr);
/* Whether record i holds the live buffer whose base is addr. */
static inline bool strata__tmap_record_is(const strata__tensormap *m, uint32_t i, uint64_t addr)
{
    /* kind 0: a free record, whose addr is stale or was never set; a live
       record's addr is in the hash, so a guess answers as the hash would */
    return i < m->nbuffers && m->buffers[i].kind != 0 && m->buffers[i].addr == addr;
}

/* strata__tmap_buffer_find for the stream of lookups of one thread (a chip's
   submits): first the buffer it found last and the record after that one,
   which catch the usual orders without a hash (views of one buffer; buffers
   named in the order they were registered, whose records are consecutive),
   then the hash. Not for a registry that several threads look up at once. */
static inline uint32_t strata__tmap_buffer_find_next(strata__tensormap *m, uint64_t addr)
{
    uint32_t g = m->last_found;
    if (strata__tmap_record_is(m, g, addr))
        return g;
    if (strata__tmap_record_is(m, g + 1, addr)) {
        m->last_found = g + 1;
        return g + 1;
    }
    uint32_t b = strata__tmap_buffer_find(m, addr);
    if (b != STRATA__NONE)
        m->last_found = b;
    return b;
}
/* How many registry slots a lookup of addr reads (strata__tmap_buffer_find's
   cost; the registry's tests bound it). */
uint32_t strata__tmap_buffer_probes(const strata__tensormap *m, uint64_t addr);
/* Forget a buffer and its accesses. */
void strata__tmap_buffer_remove(strata__tensormap *m, uint32_t index);
static inline strata__buffer *strata__tmap_buffer(strata__tensormap *m, uint32_t index)
{
    return &m->buffers[index];
}

/* Forget every access of every buffer (the node engine, between runs). */
void strata__tmap_forget_accesses(strata__tensormap *m);

/* Called for each earlier task the new access must follow; returns 0 or a status
   that stops the walk. */
typedef int (*strata__dep_fn)(void *ctx, uint64_t producer, uint32_t producer_slot);

/* Record that task `task` (in `slot`, handed back to dep() with its id)
   accesses `view` (extent `ext`) of buffer `index`, reading and/or writing. First reports every earlier live access it must follow
   (RAW, WAR, WAW) through dep(); entries of tasks below live_from[task & 3] are
   stale and dropped (one ring: four equal entries). Returns 0, a status from
   dep(), or STRATA_ENOMEM. */
int strata__tmap_access(strata__tensormap *m, uint32_t index, uint64_t task, uint32_t slot,
                        const strata_tensor *view, const strata__extent *ext, bool reads,
                        bool writes, const uint64_t live_from[4], strata__dep_fn dep, void *ctx);

#endif
