/* Memory of a node worker: the shared host heap (strata_worker_host_alloc),
 * chip memory (strata_worker_malloc at L3) and the memory of a worker child
 * (strata_worker_malloc at L4+).
 *
 * Both are allocated by the parent. The host heap is one shared mapping made at
 * create; each chip child's memory is a shared mapping made at init, whose lower
 * half is the child's own L2 chip memory (its heap ring) and whose upper half
 * holds the buffers allocated here. The parent reaches the upper half through
 * the chip's platform (platform/platform.h: a device opened over that range at
 * init), so that allocation and copies are the platform's: on sim they are an
 * allocator and memcpy over memory every child inherited at the same address;
 * a real accelerator's backend would transfer instead.
 * A worker child's buffers lie in the shared heap of the worker it runs, which
 * was mapped when that worker was created, in this process, before any child:
 * the child allocates them (a MALLOC request: its own heap's allocator lives in
 * its process) and the parent copies to and from them directly.
 * Every buffer is registered in the node's TensorMap, which is how a submit
 * checks that a tensor lies in memory its target can see. */
#include "node/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static strata__buffer *find_kind(strata__node *n, uint64_t addr, uint32_t kind)
{
    uint32_t i = strata__tmap_buffer_find(&n->buffers, addr);
    if (i == STRATA__NONE)
        return NULL;
    strata__buffer *b = strata__tmap_buffer(&n->buffers, i);
    return b->kind == kind ? b : NULL;
}

int strata__node_host_alloc(strata__node *n, uint64_t nbytes, void **out)
{
    if (nbytes == 0)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_alloc: nbytes is 0; ask for at least 1 byte");
    uint64_t addr;
    int rc = strata__arena_alloc(&n->heap_arena, nbytes, &addr, "the shared host heap", "shared_heap_bytes");
    if (rc)
        return strata__error_prefix(rc, "strata_worker_host_alloc");
    uint32_t index;
    rc = strata__tmap_buffer_add(&n->buffers, addr, nbytes, STRATA__BUFFER_HOST, &index);
    if (rc) {
        strata__arena_free(&n->heap_arena, addr, nbytes);
        return rc;
    }
    *out = (void *)(uintptr_t)addr;
    return STRATA_OK;
}

int strata__node_host_free(strata__node *n, void *p)
{
    uint64_t addr = (uint64_t)(uintptr_t)p;
    strata__buffer *b = find_kind(n, addr, STRATA__BUFFER_HOST);
    if (!b && find_kind(n, addr, STRATA__BUFFER_ADOPTED))
        return strata__fail(STRATA_EINVAL, "strata_worker_host_free: %p is memory the application adopted "
                            "(strata_worker_host_adopt); it stays the application's, to unmap after close", p);
    if (!b)
        return strata__fail(STRATA_ENOENT, "strata_worker_host_free: no live buffer from strata_worker_host_alloc "
                            "starts at %p (already freed, or not the base address?)", p);
    strata__arena_free(&n->heap_arena, addr, b->nbytes);
    strata__tmap_buffer_remove(&n->buffers, strata__tmap_buffer_find(&n->buffers, addr));
    return STRATA_OK;
}

/* Whether [lo, hi) is covered by shared mappings of this process (a child
   forked now inherits them, and sees writes either way): read from
   /proc/self/maps, whose lines start "lo-hi perms" with perms[3] 's' or 'p'. */
static int check_shared(uint64_t lo, uint64_t hi)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return strata__fail(STRATA_ESYS, "strata_worker_host_adopt: cannot read /proc/self/maps to check the memory "
                            "is shared");
    char line[512], perms[8];
    unsigned long long a, b;
    uint64_t covered = lo;   /* [lo, covered) is shared so far; mappings come in address order */
    while (covered < hi && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%llx-%llx %7s", &a, &b, perms) != 3 || b <= covered)
            continue;
        if (a > covered || perms[3] != 's' || perms[0] != 'r' || perms[1] != 'w')
            break;
        covered = b;
    }
    fclose(f);
    if (covered < hi)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_adopt: the range 0x%llx..0x%llx is not all shared, "
                            "writable memory (byte 0x%llx is not): children would see copies of their own; map it "
                            "with MAP_SHARED (shm_open, a shared anonymous mapping) before init",
                            (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)covered);
    return STRATA_OK;
}

int strata__node_host_adopt(strata__node *n, void *p, uint64_t nbytes)
{
    uint64_t lo = (uint64_t)(uintptr_t)p, hi = lo + nbytes;
    if (p == NULL || nbytes == 0 || hi < lo)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_adopt: the range (%p, %llu bytes) is empty or wraps",
                            p, (unsigned long long)nbytes);
    uint64_t heap_lo = (uint64_t)(uintptr_t)n->heap, heap_hi = heap_lo + n->heap_bytes;
    if (lo < heap_hi && heap_lo < hi)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_adopt: the range overlaps this worker's own shared "
                            "heap; its buffers come from strata_worker_host_alloc");
    const char *theirs = strata__node_mapping_at(lo, hi);
    if (theirs)
        return strata__fail(STRATA_EINVAL, "strata_worker_host_adopt: the range overlaps %s; a worker's children "
                            "never see another worker's memory (each spawner drops it)", theirs);
    for (uint32_t i = 0; i < n->nadopted; i++)
        if (lo < n->adopted[i].addr + n->adopted[i].nbytes && n->adopted[i].addr < hi)
            return strata__fail(STRATA_EINVAL, "strata_worker_host_adopt: the range overlaps one adopted before "
                                "(0x%llx, %llu bytes)", (unsigned long long)n->adopted[i].addr,
                                (unsigned long long)n->adopted[i].nbytes);
    int rc = check_shared(lo, hi);
    if (rc)
        return rc;
    void *grown = realloc(n->adopted, (n->nadopted + 1) * sizeof *n->adopted);
    if (!grown)
        return strata__fail(STRATA_ENOMEM, "strata_worker_host_adopt: out of memory");
    n->adopted = grown;
    uint32_t index;
    rc = strata__tmap_buffer_add(&n->buffers, lo, nbytes, STRATA__BUFFER_ADOPTED, &index);
    if (rc)
        return rc;
    n->adopted[n->nadopted].addr = lo;
    n->adopted[n->nadopted].nbytes = nbytes;
    n->nadopted++;
    return STRATA_OK;
}

/* Free a buffer of next-level child c: through the chip's platform, or by
   asking the worker child (a child that cannot be asked, being dead, took the
   buffer with it). */
static void child_free(strata__node *n, strata__child *c, uint64_t addr, uint64_t nbytes)
{
    if (c->kind == STRATA__CHILD_CHIP)
        n->platform->mem_free(c->resident, addr, nbytes);
    else if (!c->dead && c->pid > 0)
        (void)strata__node_request(n, c, STRATA__REQ_FREE, addr, NULL);
}

int strata__node_malloc(strata__node *n, int worker, uint64_t nbytes, strata_buffer *out)
{
    const char *what = n->level == 3 ? "chip" : "worker", *which = n->level == 3 ? "chip worker" : "worker";
    if (worker < 0 || (uint32_t)worker >= n->nnext)
        return strata__fail(STRATA_ENOENT, "strata_worker_malloc: worker %d is not a %s of this level-%d worker "
                            "(%ss are 0..%d)", worker, what, n->level, what, (int)n->nnext - 1);
    if (nbytes == 0)
        return strata__fail(STRATA_EINVAL, "strata_worker_malloc: nbytes is 0; ask for at least 1 byte");
    strata__child *c = &n->children[worker];
    uint64_t addr;
    int rc = c->kind == STRATA__CHILD_CHIP ? n->platform->mem_alloc(c->resident, nbytes, &addr)
                                           : strata__node_request(n, c, STRATA__REQ_MALLOC, nbytes, &addr);
    if (rc == STRATA_OK && c->kind == STRATA__CHILD_WORKER) {
        /* the child's word: it must name a range of its heap, which this
           process writes into on copies */
        uint64_t lo = (uint64_t)(uintptr_t)c->sub_node->heap, hi = lo + c->sub_node->heap_bytes;
        if (addr < lo || addr > hi || nbytes > hi - addr)
            rc = strata__fail(STRATA_ECHILD, "the child answered address 0x%llx, outside its shared heap "
                              "(0x%llx..0x%llx)", (unsigned long long)addr, (unsigned long long)lo,
                              (unsigned long long)hi);
    }
    if (rc)
        return strata__error_prefix(rc, "strata_worker_malloc on %s %d", which, worker);
    uint32_t index;
    rc = strata__tmap_buffer_add(&n->buffers, addr, nbytes, STRATA__BUFFER_CHIP, &index);
    if (rc) {
        child_free(n, c, addr, nbytes);
        return rc;
    }
    strata__tmap_buffer(&n->buffers, index)->owner_data = (uint64_t)worker;
    *out = (strata_buffer){.addr = addr, .nbytes = nbytes, .worker = worker};
    return STRATA_OK;
}

const strata__child *strata__node_lost_buffer_owner(const strata__node *n, uint64_t addr)
{
    for (uint32_t i = 0; i < n->nnext; i++) {
        const strata__child *c = &n->children[i];
        if (c->kind == STRATA__CHILD_REMOTE)
            continue;   /* its memory is on another host: no address range here */
        uint64_t lo = (uint64_t)(uintptr_t)c->memory, hi = lo + c->memory_bytes;
        if (c->kind == STRATA__CHILD_WORKER) {
            lo = (uint64_t)(uintptr_t)c->sub_node->heap;
            hi = lo + c->sub_node->heap_bytes;
        } else {
            lo += c->memory_bytes / 2;
        }
        if (c->lost_pid && addr >= lo && addr < hi)
            return c;
    }
    return NULL;
}

int strata__node_no_chip_buffer(const strata__node *n, const char *call, uint64_t addr)
{
    const strata__child *c = strata__node_lost_buffer_owner(n, addr);
    if (c)
        return strata__fail(STRATA_ENOENT, "%s: no live chip buffer starts at 0x%llx; it lay in the memory of %s "
                            "worker %d, whose child (pid %d) died and took its buffers with it (the child has been "
                            "replaced since); allocate and upload it again", call, (unsigned long long)addr,
                            c->kind == STRATA__CHILD_CHIP ? "chip" : "level-3+", c->worker, (int)c->lost_pid);
    return strata__fail(STRATA_ENOENT, "%s: no live chip buffer from strata_worker_malloc starts at 0x%llx "
                        "(already freed, or not the base address?)", call, (unsigned long long)addr);
}

int strata__node_free(strata__node *n, strata_buffer buf)
{
    strata__buffer *b = find_kind(n, buf.addr, STRATA__BUFFER_CHIP);
    if (!b)
        return strata__node_no_chip_buffer(n, "strata_worker_free", buf.addr);
    child_free(n, &n->children[b->owner_data], buf.addr, b->nbytes);
    strata__tmap_buffer_remove(&n->buffers, strata__tmap_buffer_find(&n->buffers, buf.addr));
    return STRATA_OK;
}

int strata__node_copy(strata__node *n, strata_buffer buf, uint64_t offset, void *host, uint64_t nbytes, bool to)
{
    const char *call = to ? "strata_worker_copy_to" : "strata_worker_copy_from";
    strata__buffer *b = find_kind(n, buf.addr, STRATA__BUFFER_CHIP);
    if (!b)
        return strata__node_no_chip_buffer(n, call, buf.addr);
    if (nbytes && host == NULL)
        return strata__fail(STRATA_EINVAL, "%s: the host pointer is NULL", call);
    if (offset > b->nbytes || nbytes > b->nbytes - offset)
        return strata__fail(STRATA_EINVAL, "%s: bytes [%llu, %llu) lie outside the %llu-byte buffer at 0x%llx", call,
                            (unsigned long long)offset, (unsigned long long)(offset + nbytes),
                            (unsigned long long)b->nbytes, (unsigned long long)buf.addr);
    strata__child *c = &n->children[b->owner_data];
    if (c->tp->copy) {   /* a remote worker: through its transport */
        int rc = c->tp->copy(n, c, buf.addr + offset, host, nbytes, to);
        return rc ? strata__error_prefix(rc, "%s", call) : STRATA_OK;
    }
    if (c->kind == STRATA__CHILD_WORKER) {
        /* the worker's heap, shared with this process since its create */
        void *at = (void *)(uintptr_t)(buf.addr + offset);
        if (nbytes)
            memcpy(to ? at : host, to ? host : at, nbytes);
        return STRATA_OK;
    }
    strata__device *dev = c->resident;
    int rc = to ? n->platform->copy_to(dev, buf.addr + offset, host, nbytes)
                : n->platform->copy_from(dev, host, buf.addr + offset, nbytes);
    return rc ? strata__error_prefix(rc, "%s", call) : STRATA_OK;
}

void strata__node_drop_chip_buffers(strata__node *n, strata__child *c)
{
    for (uint32_t i = 0; i < n->buffers.nbuffers; i++) {
        strata__buffer *b = &n->buffers.buffers[i];
        if (b->kind == STRATA__BUFFER_CHIP && b->owner_data == (uint64_t)c->worker) {
            if (c->kind == STRATA__CHILD_CHIP)
                n->platform->mem_free(c->resident, b->addr, b->nbytes);
            strata__tmap_buffer_remove(&n->buffers, i);
        }
    }
}

bool strata__node_inherited_buffer(strata__node *n, uint64_t addr, uint64_t nbytes, uint32_t *index)
{
    for (uint32_t k = 0; k < n->ninherited; k++) {
        uint64_t lo = n->inherited[k].addr, hi = lo + n->inherited[k].nbytes;
        if (addr < lo || addr >= hi || nbytes > hi - addr)
            continue;
        uint32_t i = strata__tmap_buffer_find(&n->buffers, addr);
        if (i != STRATA__NONE) {
            strata__buffer *b = strata__tmap_buffer(&n->buffers, i);
            if (b->kind != STRATA__BUFFER_INHERITED)
                return false;
            if (nbytes > b->nbytes)
                b->nbytes = nbytes;   /* the level above reused the address for a larger buffer */
            *index = i;
            return true;
        }
        return strata__tmap_buffer_add(&n->buffers, addr, nbytes, STRATA__BUFFER_INHERITED, index) == STRATA_OK;
    }
    return false;
}
