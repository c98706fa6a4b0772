/* The TensorMap and buffer registry: see core/tensormap.h. */
#include "core/tensormap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/sys.h"

/* The home slot of a buffer's base: Fibonacci hashing (Knuth), the top bits
   of addr times 2^64 / phi. Bases in arithmetic progression (buffers
   allocated one after another, of one size) land spread over the whole
   table, so that linear probing finds buffers packed one after another
   within a slot or two, and others as it would random keys (the table is at
   most half full).
   An earlier hash sent the 64 lines of a 4 KiB page to one block of 64
   slots, so that buffers named one after another shared the table's cache
   lines. Pages packed with small buffers then filled whole blocks, and a
   buffer whose home fell in such a run (the one matrix that every tile of a
   DAG names, registered after 100,000 small buffers) was found after up to
   a hundred probes, each reading another buffer's record: a process whose
   address layout put it there ran those views at 1.6x the time per task
   (docs/performance.md, "A slow mode that was a hash table"). */
static inline uint32_t hash_addr(uint64_t addr, uint32_t nslots)
{
    return (uint32_t)((addr * 0x9E3779B97F4A7C15ull) >> (64 - __builtin_ctz(nslots)));
}

int strata__tmap_init(strata__tensormap *m)
{
    memset(m, 0, sizeof *m);
    m->nslots = 64;
    m->slots = strata__malloc(m->nslots * sizeof m->slots[0]);
    m->scratch = strata__malloc(sizeof *m->scratch);
    if (!m->slots || !m->scratch) {
        free(m->slots);
        free(m->scratch);
        return strata__fail(STRATA_ENOMEM, "out of host memory for the TensorMap");
    }
    memset(m->slots, 0xff, m->nslots * sizeof m->slots[0]);
    m->free_buffer = STRATA__NONE;
    m->free_access = STRATA__NONE;
    return STRATA_OK;
}

static void free_grid(strata__tensormap *m, strata__buffer *b);
static void clear_records(strata__tensormap *m, strata__grid *g);

void strata__tmap_destroy(strata__tensormap *m)
{
    for (uint32_t i = 0; i < m->nbuffers && m->accesses; i++)
        if (m->buffers[i].kind != 0 && m->buffers[i].grid)
            free_grid(m, &m->buffers[i]);
    free(m->slots);
    free(m->buffers);
    free(m->accesses);
    free(m->scratch);
    if (m->spare_cells)
        munmap(m->spare_cells, m->spare_ncells * sizeof m->spare_cells[0]);
    memset(m, 0, sizeof *m);
}

static int grow_slots(strata__tensormap *m)
{
    uint32_t n = m->nslots * 2;
    uint32_t *s = strata__malloc(n * sizeof s[0]);
    if (!s)
        return strata__fail(STRATA_ENOMEM, "out of host memory growing the buffer registry to %u slots", n);
    memset(s, 0xff, n * sizeof s[0]);
    for (uint32_t i = 0; i < m->nslots; i++) {
        uint32_t b = m->slots[i];
        if (b == STRATA__NONE)
            continue;
        uint32_t h = hash_addr(m->buffers[b].addr, n);
        while (s[h] != STRATA__NONE)
            h = (h + 1) & (n - 1);
        s[h] = b;
    }
    free(m->slots);
    m->slots = s;
    m->nslots = n;
    return STRATA_OK;
}

/* The buffer whose base is addr, or STRATA__NONE; *probes: the slots read. */
static inline uint32_t lookup(const strata__tensormap *m, uint64_t addr, uint32_t *probes)
{
    *probes = 1;
    for (uint32_t h = hash_addr(addr, m->nslots);; h = (h + 1) & (m->nslots - 1), ++*probes) {
        uint32_t b = m->slots[h];
        if (b == STRATA__NONE || m->buffers[b].addr == addr)
            return b;
    }
}

uint32_t strata__tmap_buffer_find(const strata__tensormap *m, uint64_t addr)
{
    uint32_t probes;
    return lookup(m, addr, &probes);
}

uint32_t strata__tmap_buffer_probes(const strata__tensormap *m, uint64_t addr)
{
    uint32_t probes;
    (void)lookup(m, addr, &probes);
    return probes;
}

int strata__tmap_buffer_add(strata__tensormap *m, uint64_t addr, uint64_t nbytes, uint32_t kind,
                            uint32_t *index)
{
    if ((m->nused + 1) * 2 > m->nslots) {
        int rc = grow_slots(m);
        if (rc)
            return rc;
    }
    if (m->free_buffer == STRATA__NONE) {
        uint32_t n = m->nbuffers ? m->nbuffers * 2 : 64;
        strata__buffer *b = strata__realloc(m->buffers, n * sizeof b[0]);
        if (!b)
            return strata__fail(STRATA_ENOMEM, "out of host memory growing the buffer registry to %u buffers", n);
        for (uint32_t i = m->nbuffers; i < n; i++) {
            b[i].writers = i + 1 < n ? i + 1 : m->free_buffer;  /* free list threads through `writers` */
            b[i].kind = 0;
        }
        m->free_buffer = m->nbuffers;
        m->buffers = b;
        m->nbuffers = n;
    }
    uint32_t i = m->free_buffer;
    m->free_buffer = m->buffers[i].writers;
    m->buffers[i] = (strata__buffer){
        .addr = addr, .nbytes = nbytes, .writers = STRATA__NONE, .readers = STRATA__NONE, .kind = kind};
    uint32_t h = hash_addr(addr, m->nslots);
    while (m->slots[h] != STRATA__NONE)
        h = (h + 1) & (m->nslots - 1);
    m->slots[h] = i;
    m->nused++;
    *index = i;
    return STRATA_OK;
}

static void free_access(strata__tensormap *m, uint32_t a)
{
    m->accesses[a].next = m->free_access;
    m->free_access = a;
    m->live_accesses--;
}

static void free_list(strata__tensormap *m, uint32_t *head)
{
    for (uint32_t a = *head; a != STRATA__NONE;) {
        uint32_t next = m->accesses[a].next;
        free_access(m, a);
        a = next;
    }
    *head = STRATA__NONE;
}

void strata__tmap_forget_accesses(strata__tensormap *m)
{
    for (uint32_t i = 0; i < m->nbuffers; i++) {
        if (m->buffers[i].kind == 0)
            continue;
        free_list(m, &m->buffers[i].writers);
        free_list(m, &m->buffers[i].readers);
        if (m->buffers[i].grid)
            clear_records(m, m->buffers[i].grid);   /* the next run likely names the same cells */
    }
}

void strata__tmap_buffer_remove(strata__tensormap *m, uint32_t index)
{
    strata__buffer *b = &m->buffers[index];
    free_list(m, &b->writers);
    free_list(m, &b->readers);
    if (b->grid)
        free_grid(m, b);
    /* Delete from the open-addressing table with backward shift, so no tombstones
       accumulate over thousands of runs. */
    uint32_t mask = m->nslots - 1, h = hash_addr(b->addr, m->nslots);
    while (m->slots[h] != index)
        h = (h + 1) & mask;
    for (uint32_t j = (h + 1) & mask; m->slots[j] != STRATA__NONE; j = (j + 1) & mask) {
        uint32_t home = hash_addr(m->buffers[m->slots[j]].addr, m->nslots);
        /* move slot j into hole h if its home is not in (h, j] cyclically */
        bool between = h <= j ? (h < home && home <= j) : (h < home || home <= j);
        if (!between) {
            m->slots[h] = m->slots[j];
            h = j;
        }
    }
    m->slots[h] = STRATA__NONE;
    m->nused--;
    b->kind = 0;   /* free: iterations over the pool skip it */
    b->writers = m->free_buffer;
    m->free_buffer = index;
}

static __attribute__((noinline)) int grow_accesses(strata__tensormap *m)
{
    uint32_t n = m->naccesses ? m->naccesses * 2 : 256;
    /* at a cache line's start: an entry is one line, not two halves */
    strata__access *a = strata__aligned_alloc(64, n * sizeof a[0]);
    if (!a)
        return strata__fail(STRATA_ENOMEM, "out of host memory growing the TensorMap to %u entries", n);
    if (m->naccesses)
        memcpy(a, m->accesses, m->naccesses * sizeof a[0]);
    free(m->accesses);
    for (uint32_t i = m->naccesses; i < n; i++)
        a[i].next = i + 1 < n ? i + 1 : STRATA__NONE;
    m->free_access = m->naccesses;
    m->accesses = a;
    m->naccesses = n;
    return STRATA_OK;
}

static inline __attribute__((always_inline)) int alloc_access(strata__tensormap *m, uint32_t *out)
{
    if (__builtin_expect(m->free_access == STRATA__NONE, 0)) {
        int rc = grow_accesses(m);
        if (rc)
            return rc;
    }
    *out = m->free_access;
    m->free_access = m->accesses[*out].next;
    if (++m->live_accesses > m->high_accesses)
        m->high_accesses = m->live_accesses;
    return STRATA_OK;
}

/* Walk one list of buffer accesses for a new access (see strata__tmap_access):
   report each live access it must follow, drop stale ones and, for a writer,
   those it covers. */
static inline __attribute__((always_inline)) int walk(strata__tensormap *m, uint32_t *link, uint64_t task, const strata_tensor *view,
                const strata__extent *ext, bool reads, bool writes, const uint64_t *live_from, strata__dep_fn dep,
                void *ctx)
{
    while (*link != STRATA__NONE) {
        uint32_t ai = *link;
        strata__access *a = &m->accesses[ai];
        if (a->task < live_from[a->task & 3]) { /* stale: its task retired */
            *link = a->next;
            free_access(m, ai);
            continue;
        }
        /* disjoint byte ranges first: the usual answer, without a call */
        bool apart = ext->hi <= a->ext.lo || a->ext.hi <= ext->lo;
        bool must_follow = !apart && a->task != task && (writes || (reads && a->writes)) &&
                           ((ext->dense && a->ext.dense) ||   /* both fill their meeting intervals */
                            strata__views_overlap(view, ext, a->view, &a->ext, m->scratch));
        if (must_follow) {
            int rc = dep(ctx, a->task, a->slot);
            if (rc)
                return rc;
        }
        /* Writers that follow an earlier access and together cover it make it
           redundant: anything that later overlaps those bytes overlaps one of
           them and follows it (see core/tensormap.h). */
        if (writes && !apart && (must_follow || a->task == task)) {
            a->covered |= strata__view_covered_blocks(ext, &a->ext);
            if (a->covered == strata__extent_all_blocks(&a->ext)) {
                *link = a->next;
                free_access(m, ai);
                continue;
            }
        }
        link = &a->next;
    }
    return STRATA_OK;
}

/* Drop the stale readers of b (anywhere in the list: rings retire
   independently). The next drop comes after twice as many reads as survive
   this one (at least 32): amortised O(1) per read. */
static inline bool stale(const strata__tensormap *m, uint32_t ai, const uint64_t *live_from)
{
    uint64_t t = m->accesses[ai].task;
    return t < live_from[t & 3];
}

/* Drop the stale entries of the list at *link; returns how many are left. */
static uint32_t drop_stale(strata__tensormap *m, uint32_t *link, const uint64_t *live_from)
{
    uint32_t live = 0;
    while (*link != STRATA__NONE) {
        uint32_t ai = *link;
        if (stale(m, ai, live_from)) {
            *link = m->accesses[ai].next;
            free_access(m, ai);
        } else {
            link = &m->accesses[ai].next;
            live++;
        }
    }
    return live;
}

/* The next drop of a list only read comes after twice as many reads as
   survive this one (at least 32). */
static inline uint32_t next_prune(uint32_t live)
{
    return live > 16 ? 2 * live : 32;
}

static void prune_readers(strata__tensormap *m, strata__buffer *b, const uint64_t *live_from)
{
    b->reads_since_prune = 0;
    b->prune_after = next_prune(drop_stale(m, &b->readers, live_from));
}

/* ---- cells (see core/tensormap.h) ---- */

/* The records a walk over every cell must visit: the used range of a direct
   table, the whole of a hash table. */
static strata__cell *records_begin(const strata__grid *g)
{
    return g->ndirect ? g->cells + g->used_lo : g->cells;
}

static strata__cell *records_end(const strata__grid *g)
{
    return g->ndirect ? g->cells + g->used_hi : g->cells + g->cap;
}

/* A direct table of more than this many bytes is mapped rather than
   allocated, so that only the pages of cells in use take memory (an unused
   record reads as zero, id 0); a smaller one is allocated zeroed. */
#define DIRECT_MAPPED_BYTES (64u << 10)

static bool direct_mapped(uint64_t ndirect)
{
    return ndirect * sizeof(strata__cell) > DIRECT_MAPPED_BYTES;
}

/* Give back g's records. A mapped direct table is kept as the tensormap's
   spare (zeroed where it was used), so that a buffer that goes from views to
   whole accesses and back every run maps nothing after the first: a system
   call on every run is what the spare is for. */
static void free_records(strata__tensormap *m, strata__grid *g)
{
    if (!g->ndirect || !direct_mapped(g->ndirect)) {
        free(g->cells);
        return;
    }
    if (m->spare_cells && m->spare_ncells >= g->ndirect) {
        munmap(g->cells, g->ndirect * sizeof g->cells[0]);
        return;
    }
    if (m->spare_cells)
        munmap(m->spare_cells, m->spare_ncells * sizeof m->spare_cells[0]);
    memset(g->cells + g->used_lo, 0, (g->used_hi - g->used_lo) * sizeof g->cells[0]);
    m->spare_cells = g->cells;
    m->spare_ncells = g->ndirect;
}

/* Free every access of b's cells and leave the records empty. */
static void clear_records(strata__tensormap *m, strata__grid *g)
{
    for (strata__cell *c = records_begin(g); c != records_end(g); c++) {
        if (c->id == 0)
            continue;
        if (c->writer != STRATA__NONE)
            free_access(m, c->writer);
        free_list(m, &c->readers);
        *c = (strata__cell){0};
    }
    g->ncells = 0;
    g->used_lo = g->used_hi = g->sweep = 0;
}

static void free_grid(strata__tensormap *m, strata__buffer *b)
{
    clear_records(m, b->grid);
    free_records(m, b->grid);
    free(b->grid);
    b->grid = NULL;
}

/* Move access a of a cell to the list at *head, or free it when its task
   has retired. A cell's access carries no extent (cells decide without
   one), so the lists get it from the view, which its task still holds. */
static void to_list(strata__tensormap *m, uint32_t a, uint32_t *head, const uint64_t *live_from)
{
    strata__access *x = &m->accesses[a];
    if (stale(m, a, live_from)) {   /* its view may be gone */
        free_access(m, a);
        return;
    }
    (void)strata__tensor_check(x->view, 0, &x->ext);   /* it passed when the task was submitted */
    x->covered = 0;
    x->next = *head;
    *head = a;
}

/* Move every live access of b's cells into b's lists and drop the grid: an
   access that is not a whole number of its cells comes. */
static void flatten(strata__tensormap *m, strata__buffer *b, const uint64_t *live_from)
{
    strata__grid *g = b->grid;
    for (strata__cell *c = records_begin(g); c != records_end(g); c++) {
        if (c->id == 0)
            continue;
        if (c->writer != STRATA__NONE)
            to_list(m, c->writer, &b->writers, live_from);
        for (uint32_t a = c->readers; a != STRATA__NONE;) {
            uint32_t next = m->accesses[a].next;
            to_list(m, a, &b->readers, live_from);
            a = next;
        }
    }
    free_records(m, g);
    free(g);
    b->grid = NULL;
}

/* The cells an access covers, as ranges of cell coordinates [lo, hi) per
   dimension (one dimension for a grid of bytes); a cell's number is the sum
   of its coordinates times mult[]. */
typedef struct cell_range {
    uint32_t n;
    uint64_t lo[STRATA_MAX_DIMS], hi[STRATA_MAX_DIMS], mult[STRATA_MAX_DIMS];
} cell_range;

/* The most cells one access may take: each is a record of its own, so a view
   of many (a whole buffer of small slots) is decided in the lists instead. */
#define STRATA__CELLS_PER_ACCESS 64u

/* Whether view (extent ext) is a whole number of b's cells, at most
   STRATA__CELLS_PER_ACCESS of them, and which. */
static bool cells_of(const strata__buffer *b, const strata_tensor *view, const strata__extent *ext, cell_range *r)
{
    const strata__grid *g = b->grid;
    if (!g->lattice) {
        if (!ext->dense || ext->lo < b->addr + g->origin)
            return false;
        uint64_t from = ext->lo - b->addr - g->origin, len = ext->hi - ext->lo;
        if (from % g->bytes != 0 || len % g->bytes != 0)
            return false;
        if (len / g->bytes > STRATA__CELLS_PER_ACCESS)
            return false;
        r->n = 1;
        r->lo[0] = from / g->bytes;
        r->hi[0] = r->lo[0] + len / g->bytes;
        r->mult[0] = 1;
        return true;
    }
    strata__box x;
    if (view->ndims != g->box.ndims || !strata__view_box(view, &x) || x.es != g->box.es)
        return false;
    uint64_t cells = 1;
    for (uint32_t k = 0; k < x.ndims; k++) {
        if (x.st[k] != g->box.st[k] || x.c[k] < g->at[k] || (x.c[k] - g->at[k]) % g->cell[k] != 0 ||
            x.shape[k] % g->cell[k] != 0)
            return false;
        r->lo[k] = (x.c[k] - g->at[k]) / g->cell[k];
        r->hi[k] = r->lo[k] + x.shape[k] / g->cell[k];
        r->mult[k] = g->mult[k];
        cells *= r->hi[k] - r->lo[k];
        if (cells > STRATA__CELLS_PER_ACCESS)
            return false;
    }
    r->n = x.ndims;
    return true;
}

/* The cells of r in turn: *q starts at r's lower corner; false after the last. */
static inline bool next_cell(const cell_range *r, uint64_t *q)
{
    for (uint32_t k = r->n; k-- > 0;) {
        if (++q[k] < r->hi[k])
            return true;
        q[k] = r->lo[k];
    }
    return false;
}

static inline uint64_t cell_id(const cell_range *r, const uint64_t *q)
{
    uint64_t id = 1;   /* 0 marks an empty record */
    for (uint32_t k = 0; k < r->n; k++)
        id += q[k] * r->mult[k];
    return id;
}

static inline uint32_t cell_hash(uint64_t id, uint32_t cap)
{
    return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

/* Make a record for cell `id`, which has none; NULL when out of memory. When
   the table would pass half full, it is rebuilt first: the records whose
   accesses have all retired are dropped, and the table doubles until the live
   ones fill at most an eighth of it, so that a rebuild comes only after as
   many new cells as three eighths of the table (scanning and clearing it costs
   a few records' worth per new cell). */
static __attribute__((noinline)) strata__cell *new_cell(strata__tensormap *m, strata__grid *g, uint64_t id,
                                                        const uint64_t *live_from)
{
    if ((g->ncells + 1) * 2 > g->cap) {
        /* Counted first without a change, so that a failed allocation leaves
           the table as it was (a record emptied in place would break the
           probe chains behind it). */
        uint32_t live = 0;
        for (uint32_t i = 0; i < g->cap; i++) {
            const strata__cell *c = &g->cells[i];
            if (c->id == 0)
                continue;
            bool any = c->writer != STRATA__NONE && !stale(m, c->writer, live_from);
            for (uint32_t a = c->readers; !any && a != STRATA__NONE; a = m->accesses[a].next)
                any = !stale(m, a, live_from);
            live += any;
        }
        uint32_t cap = g->cap;
        while ((uint64_t)(live + 1) * 8 > cap)
            cap *= 2;
        strata__cell *cells = strata__calloc(cap, sizeof cells[0]);
        if (!cells)
            return NULL;
        for (uint32_t i = 0; i < g->cap; i++) {
            strata__cell *c = &g->cells[i];
            if (c->id == 0)
                continue;
            if (c->writer != STRATA__NONE && stale(m, c->writer, live_from)) {
                free_access(m, c->writer);
                c->writer = STRATA__NONE;
            }
            drop_stale(m, &c->readers, live_from);
            if (c->writer == STRATA__NONE && c->readers == STRATA__NONE)
                continue;   /* nothing live: no record needed */
            uint32_t h = cell_hash(c->id, cap);
            while (cells[h].id != 0)
                h = (h + 1) & (cap - 1);
            cells[h] = *c;
        }
        free(g->cells);
        g->cells = cells;
        g->cap = cap;
        g->ncells = live;
    }
    uint32_t h = cell_hash(id, g->cap);
    while (g->cells[h].id != 0)
        h = (h + 1) & (g->cap - 1);
    g->cells[h] = (strata__cell){.id = id, .writer = STRATA__NONE, .readers = STRATA__NONE};
    g->ncells++;
    return &g->cells[h];
}

/* The record of cell `id` (number + 1), made if it has none; NULL when out of
   memory. A record stays where it is until the next new_cell. */
static inline strata__cell *cell_at(strata__tensormap *m, strata__grid *g, uint64_t id, const uint64_t *live_from)
{
    if (g->ndirect) {
        /* by number (cells_of checked id <= ndirect) */
        strata__cell *c = &g->cells[id - 1];
        if (__builtin_expect(c->id == 0, 0)) {
            c->id = id;
            c->writer = c->readers = STRATA__NONE;
            if (g->used_hi == 0) {
                g->used_lo = id - 1;
                g->used_hi = id;
            } else if (id - 1 < g->used_lo) {
                g->used_lo = id - 1;
            } else if (id > g->used_hi) {
                g->used_hi = id;
            }
        }
        return c;
    }
    for (uint32_t h = cell_hash(id, g->cap);; h = (h + 1) & (g->cap - 1)) {
        if (g->cells[h].id == id)
            return &g->cells[h];
        if (g->cells[h].id == 0)
            return new_cell(m, g, id, live_from);
    }
}

/* Every dependency of an access to cell c: a writer follows the cell's newest
   writer and its readers since, a reader the newest writer. Drops a retired
   newest writer. */
static inline int cell_deps(strata__tensormap *m, strata__cell *c, uint64_t task, bool writes,
                            const uint64_t *live_from, strata__dep_fn dep, void *ctx)
{
    if (c->writer != STRATA__NONE && stale(m, c->writer, live_from)) {
        free_access(m, c->writer);
        c->writer = STRATA__NONE;
    }
    if (c->writer != STRATA__NONE && m->accesses[c->writer].task != task) {
        int rc = dep(ctx, m->accesses[c->writer].task, m->accesses[c->writer].slot);
        if (rc)
            return rc;
    }
    if (!writes)
        return STRATA_OK;
    for (uint32_t a = c->readers; a != STRATA__NONE; a = m->accesses[a].next) {
        if (stale(m, a, live_from) || m->accesses[a].task == task)
            continue;
        int rc = dep(ctx, m->accesses[a].task, m->accesses[a].slot);
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

/* Enter access `fresh` in cell c: a writer becomes the cell's only entry
   (anything later that meets the cell meets it and follows it), a reader
   joins its readers. */
static inline void cell_enter(strata__tensormap *m, strata__cell *c, uint32_t fresh, bool writes,
                              const uint64_t *live_from)
{
    if (writes) {
        if (c->writer != STRATA__NONE)
            free_access(m, c->writer);
        free_list(m, &c->readers);
        c->writer = fresh;
        c->reads_since_prune = 0;
        return;
    }
    m->accesses[fresh].next = c->readers;
    c->readers = fresh;
    if (++c->reads_since_prune >= (c->prune_after ? c->prune_after : 32)) {
        c->reads_since_prune = 0;   /* a cell only read: drop its retired readers */
        c->prune_after = next_prune(drop_stale(m, &c->readers, live_from));
    }
}

/* A direct table's sweep: drop what retired in the next record, round the
   used range, so that cells no access names again give their entries back (a
   hash table does so when it is rebuilt). A reader list is dropped only once
   its newest entry has retired: a cell still in use prunes its own readers
   (cell_enter), and walking every list here cost more than the lookups on
   DAGs whose tiles many tasks read (Cholesky). A step every access, not
   every fourth: on independent tasks that each write a slot of their own,
   the records it frees at once are the ones the next accesses take, still
   in cache (every fourth access: 1.2-1.7x the time per task there). */
static inline void sweep(strata__tensormap *m, strata__grid *g, const uint64_t *live_from)
{
    if (g->sweep < g->used_lo || g->sweep >= g->used_hi)
        g->sweep = g->used_lo;
    strata__cell *c = &g->cells[g->sweep++];
    if (c->id == 0)
        return;   /* a record never used (all zero: its writer would read as access 0) */
    if (c->writer != STRATA__NONE && stale(m, c->writer, live_from)) {
        free_access(m, c->writer);
        c->writer = STRATA__NONE;
    }
    if (c->readers != STRATA__NONE && stale(m, c->readers, live_from))
        drop_stale(m, &c->readers, live_from);
}

/* Fill a cell's new access: no extent, which only the lists use (to_list). */
static inline void enter_cell_access(strata__access *a, uint64_t task, uint32_t slot, const strata_tensor *view,
                                     bool writes)
{
    a->task = task;
    a->slot = slot;
    a->view = view;
    a->writes = writes;
    a->next = STRATA__NONE;
}

/* The common case, an access of exactly one cell: one lookup. On a failing
   dep() nothing has changed but a new empty record. */
static inline __attribute__((always_inline)) int one_cell_access(strata__tensormap *m, strata__grid *g, uint64_t id,
                                                                 uint64_t task, uint32_t slot,
                                                                 const strata_tensor *view, bool writes,
                                                                 const uint64_t *live_from,
                                                                 strata__dep_fn dep, void *ctx)
{
    strata__cell *c = cell_at(m, g, id, live_from);
    if (!c)
        return strata__fail(STRATA_ENOMEM, "out of host memory growing a buffer's cells");
    int rc = cell_deps(m, c, task, writes, live_from, dep, ctx);
    uint32_t fresh;
    if (rc || (rc = alloc_access(m, &fresh)))   /* the access pool may move; the cells do not */
        return rc;
    enter_cell_access(&m->accesses[fresh], task, slot, view, writes);
    cell_enter(m, c, fresh, writes, live_from);
    if (g->ndirect)
        sweep(m, g, live_from);
    return STRATA_OK;
}

/* An access that covers the cells of r: first every dependency, then the
   cells' records change. On a failing dep() nothing has changed but new empty
   records. */
static int cells_access(strata__tensormap *m, strata__buffer *b, const cell_range *r, uint64_t task, uint32_t slot,
                        const strata_tensor *view, bool writes, const uint64_t *live_from, strata__dep_fn dep,
                        void *ctx)
{
    strata__grid *g = b->grid;
    uint64_t q[STRATA_MAX_DIMS];
    memcpy(q, r->lo, sizeof q);
    do {
        strata__cell *c = cell_at(m, g, cell_id(r, q), live_from);
        if (!c)
            return strata__fail(STRATA_ENOMEM, "out of host memory growing a buffer's cells");
        int rc = cell_deps(m, c, task, writes, live_from, dep, ctx);
        if (rc)
            return rc;
    } while (next_cell(r, q));
    memcpy(q, r->lo, sizeof q);
    do {
        uint32_t fresh;
        int rc = alloc_access(m, &fresh);
        if (rc)
            return rc;   /* the accesses entered so far stay: more order, never less */
        strata__cell *c = cell_at(m, g, cell_id(r, q), live_from);   /* the table may have been rebuilt */
        if (!c) {
            free_access(m, fresh);
            return strata__fail(STRATA_ENOMEM, "out of host memory growing a buffer's cells");
        }
        enter_cell_access(&m->accesses[fresh], task, slot, view, writes);
        cell_enter(m, c, fresh, writes, live_from);
        if (g->ndirect)
            sweep(m, g, live_from);
    } while (next_cell(r, q));
    return STRATA_OK;
}

/* offset / box.st[0]: a multiply instead of a divide instruction (tens of
   cycles, once per tile access) where offset and the row stride fit 32 bits,
   which makes it exact (Lemire, Kaser and Kurz, "Faster remainder by direct
   computation", 2019). */
static inline uint64_t row_of(const strata__grid *g, uint64_t offset)
{
#ifdef __SIZEOF_INT128__
    if (g->row_magic && offset >> 32 == 0)
        return (uint64_t)(((unsigned __int128)offset * g->row_magic) >> 64);
#endif
    return offset / g->box.st[0];
}

/* The common access of a grid, exactly one cell whose edges are powers of
   two: a slot of a buffer of slots (a dense view of one cell of bytes), or a
   tile of a matrix (a 2-D view with the grid's row stride, dtype and cell
   shape, at a cell's corner). Its number in *id, from shifts and a multiply
   (row_of); false for anything else, which cells_of() decides. The tile's
   box test is strata__view_box's: its columns stay inside their row
   (c1 + shape[1] <= st0). */
static inline bool one_cell(const strata__buffer *b, const strata_tensor *view, const strata__extent *ext,
                            uint64_t *id)
{
    const strata__grid *g = b->grid;
    if (!g->pow2)
        return false;
    if (!g->lattice) {
        uint64_t from = ext->lo - b->addr - g->origin;
        if (!ext->dense || ext->hi - ext->lo != g->bytes || ext->lo < b->addr + g->origin ||
            (from & (g->bytes - 1)) != 0)
            return false;
        *id = 1 + (from >> g->shift[0]);
    } else {
        uint64_t st0 = g->box.st[0];
        if (view->ndims != 2 || view->strides[1] != 1 || (uint64_t)view->strides[0] != st0 ||
            view->dtype != g->dtype || view->shape[0] != g->cell[0] || view->shape[1] != g->cell[1])
            return false;
        uint64_t c0 = row_of(g, view->offset), c1 = view->offset - c0 * st0;
        /* A coordinate below at[k] wraps q[k] to a negative that is not a
           multiple of cell[k] (at[k] < cell[k]), so the mask test refuses it. */
        uint64_t q0 = c0 - g->at[0], q1 = c1 - g->at[1];
        if (c1 + g->cell[1] > st0 || ((q0 & (g->cell[0] - 1)) | (q1 & (g->cell[1] - 1))) != 0)
            return false;
        *id = 1 + (q0 >> g->shift[0]) * g->mult[0] + (q1 >> g->shift[1]);   /* mult[1] is 1 */
    }
    return g->ndirect == 0 || *id <= g->ndirect;
}

/* An access to a buffer with cells that is not one_cell()'s: by
   cells_of(), or, when it is not a whole number of cells, STRATA__NOT_CELLS
   after the buffer went back to its lists. */
#define STRATA__NOT_CELLS 1
static __attribute__((noinline)) int cells_or_lists(strata__tensormap *m, strata__buffer *b, uint64_t task,
                                                    uint32_t slot, const strata_tensor *view,
                                                    const strata__extent *ext, bool writes,
                                                    const uint64_t *live_from, strata__dep_fn dep, void *ctx)
{
    cell_range r;
    if (cells_of(b, view, ext, &r)) {
        bool one = true;
        uint64_t last = 1;   /* the highest cell id of the access */
        for (uint32_t k = 0; k < r.n; k++) {
            one &= r.hi[k] == r.lo[k] + 1;
            last += (r.hi[k] - 1) * r.mult[k];
        }
        if (b->grid->ndirect && last > b->grid->ndirect)
            goto not_cells;   /* beyond the table: cannot happen inside the buffer, but cheap to refuse */
        if (one)
            return one_cell_access(m, b->grid, cell_id(&r, r.lo), task, slot, view, writes, live_from, dep, ctx);
        return cells_access(m, b, &r, task, slot, view, writes, live_from, dep, ctx);
    }
not_cells:
    flatten(m, b, live_from);   /* not its cells: the lists decide, as for any buffer */
    return STRATA__NOT_CELLS;
}

/* An access to a buffer with cells: one_cell()'s at once, anything else by
   cells_or_lists(). */
static inline __attribute__((always_inline)) int grid_access(strata__tensormap *m, strata__buffer *b, uint64_t task,
                                                             uint32_t slot, const strata_tensor *view,
                                                             const strata__extent *ext, bool writes,
                                                             const uint64_t *live_from, strata__dep_fn dep, void *ctx)
{
    uint64_t id;
    if (one_cell(b, view, ext, &id))
        return one_cell_access(m, b->grid, id, task, slot, view, writes, live_from, dep, ctx);
    return cells_or_lists(m, b, task, slot, view, ext, writes, live_from, dep, ctx);
}

/* Whether b, with no live access in its lists, should take cells for a view:
   part of it, and contiguous or a box of a lattice (*box, then). */
static inline bool wants_cells(const strata__buffer *b, const strata_tensor *view, const strata__extent *ext,
                               strata__box *box)
{
    /* part of it first: a view of a whole buffer (a buffer per datum) stops there */
    if ((ext->lo == b->addr && ext->hi - ext->lo == b->nbytes) || b->writers != STRATA__NONE ||
        b->readers != STRATA__NONE)
        return false;
    box->ndims = 0;
    return ext->dense || strata__view_box(view, box);
}

/* The largest power of two that divides both n and at (n when at is 0),
   or n when that would cut n in more than 16. */
static uint64_t cell_size(uint64_t n, uint64_t at)
{
    uint64_t cell = n & (~n + 1), lowest = at ? at & (~at + 1) : cell;
    if (lowest < cell)
        cell = lowest;
    return n / cell <= 16 ? cell : n;
}

static __attribute__((noinline)) int start_cells(strata__tensormap *m, strata__buffer *b, const strata_tensor *view,
                                                 const strata__extent *ext, const strata__box *box)
{
    strata__grid *g = strata__calloc(1, sizeof *g);
    strata__cell *cells = strata__calloc(64, sizeof cells[0]);
    if (!g || !cells) {
        free(g);
        free(cells);
        return strata__fail(STRATA_ENOMEM, "out of host memory for a buffer's cells");
    }
    if (box->ndims == 0) {
        /* contiguous: cells of bytes, as large as the first view's length
           and offset allow (three slots at slot 2 make cells of one slot) */
        uint64_t len = ext->hi - ext->lo, off = ext->lo - b->addr;
        g->bytes = cell_size(len, off);
        g->origin = off % g->bytes;
        g->pow2 = (g->bytes & (g->bytes - 1)) == 0;
        g->shift[0] = (uint8_t)__builtin_ctzll(g->bytes);
    } else {
        /* a box of a lattice: cells of boxes, as large as it allows in each
           dimension; a cell's number weighs each coordinate by the cells
           that fit the dimensions after it (+1: a box may start anywhere
           below its span) */
        g->lattice = true;
        g->box = *box;
        uint64_t mult = 1, per_view = 1;
        for (uint32_t k = 0; k < box->ndims; k++)
            per_view *= box->shape[k] / cell_size(box->shape[k], box->c[k]);
        bool whole = per_view > STRATA__CELLS_PER_ACCESS;   /* then the first view is one cell */
        for (uint32_t k = box->ndims; k-- > 0;) {
            g->cell[k] = whole ? box->shape[k] : cell_size(box->shape[k], box->c[k]);
            g->at[k] = box->c[k] % g->cell[k];
            g->mult[k] = mult;
            if (k > 0)
                mult *= box->st[k - 1] / box->st[k] / g->cell[k] + 1;
        }
        g->dtype = view->dtype;
        if (box->st[0] >= 2 && box->st[0] >> 32 == 0)
            g->row_magic = UINT64_MAX / box->st[0] + 1;
        g->pow2 = box->ndims == 2;
        for (uint32_t k = 0; k < box->ndims && g->pow2; k++) {
            g->pow2 = (g->cell[k] & (g->cell[k] - 1)) == 0;
            g->shift[k] = (uint8_t)__builtin_ctzll(g->cell[k]);
        }
    }
    /* How many cells the buffer holds: ids 1 .. n. A lattice's first
       coordinate is bounded by the buffer's size, the others by mult[]. */
    uint64_t n = 0;
    if (!g->lattice)
        n = (b->nbytes - g->origin + g->bytes - 1) / g->bytes;
    else if (__builtin_mul_overflow(b->nbytes / g->box.es / g->box.st[0] / g->cell[0] + 1, g->mult[0], &n))
        n = UINT64_MAX;
    if (n <= STRATA__DIRECT_CELLS) {
        /* by number */
        void *table = NULL;
        if (!direct_mapped(n)) {
            table = strata__calloc(n, sizeof cells[0]);
        } else if (m->spare_cells && m->spare_ncells >= n) {
            table = m->spare_cells;
            n = m->spare_ncells;
            m->spare_cells = NULL;
        } else {
            table = strata__sys_mmap(n * sizeof cells[0], PROT_READ | PROT_WRITE, MAP_PRIVATE);
            if (table == MAP_FAILED)
                table = NULL;
        }
        if (table) {   /* else the hash table serves */
            free(cells);
            cells = table;
            g->ndirect = n;
        }
    }
    g->cells = cells;
    g->cap = 64;
    b->grid = g;
    return STRATA_OK;
}

int strata__tmap_access(strata__tensormap *m, uint32_t index, uint64_t task, uint32_t slot,
                        const strata_tensor *view, const strata__extent *ext, bool reads,
                        bool writes, const uint64_t live_from[4], strata__dep_fn dep, void *ctx)
{
    strata__buffer *b = &m->buffers[index];
    if (__builtin_expect(b->grid != NULL, 0)) {
        int rc = grid_access(m, b, task, slot, view, ext, writes, live_from, dep, ctx);
        if (rc != STRATA__NOT_CELLS)
            return rc;
    }
    uint32_t fresh = STRATA__NONE;
    int rc = alloc_access(m, &fresh);   /* first: the pool may move */
    if (rc)
        return rc;
    rc = walk(m, &b->writers, task, view, ext, reads, writes, live_from, dep, ctx);
    if (rc == STRATA_OK && writes)      /* read after read orders nothing */
        rc = walk(m, &b->readers, task, view, ext, reads, writes, live_from, dep, ctx);
    if (rc) {
        free_access(m, fresh);
        return rc;
    }
    strata__box box;
    if (__builtin_expect(wants_cells(b, view, ext, &box), 0)) {
        /* nothing live in its lists: a grid of this view's cells from here on
           (the view fits it; were it refused, the lists take it below) */
        rc = start_cells(m, b, view, ext, &box);
        if (rc == STRATA_OK)
            rc = grid_access(m, b, task, slot, view, ext, writes, live_from, dep, ctx);
        if (rc != STRATA__NOT_CELLS) {
            free_access(m, fresh);
            return rc;
        }
    }
    if (!writes && ++b->reads_since_prune >= (b->prune_after ? b->prune_after : 32))
        prune_readers(m, b, live_from);   /* no writer walks them */
    uint32_t *head = writes ? &b->writers : &b->readers;
    strata__access *a = &m->accesses[fresh];
    a->task = task;
    a->slot = slot;
    a->view = view;
    a->ext = *ext;
    a->covered = 0;
    a->writes = writes;
    a->next = *head;
    *head = fresh;
    return STRATA_OK;
}
