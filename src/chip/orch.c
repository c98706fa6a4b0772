/* What a chip orchestration function calls: submit, scopes, intermediate
 * buffers. Everything here runs on the orchestrator thread and owns the
 * orchestrator state of the chip (TensorMap, rings' heads, scope stack). */
#include "chip/engine.h"

#include "core/recorder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/array.h"
#include "core/tensor.h"

/* Every failure inside an orchestration function also fails the run. */
static int orch_fail(strata__chip *chip, int status)
{
    strata__failure_set_from_error(&chip->failure, status);
    return status;
}

static int check_orch(strata_chip_orch *o, const char *call)
{
    if (o == NULL || o->chip == NULL || o->chip->callable == NULL)
        return strata__fail(STRATA_EINVAL, "%s: o is not the handle of a running orchestration function", call);
    strata__chip *chip = o->chip;
    if (chip->hung)
        return strata__fail(STRATA_ETIMEDOUT, "%s: a task of this run passed its timeout; return from the "
                            "orchestration function", call);
    if (strata__failure_status(&chip->failure) != 0)
        return strata__fail(STRATA_ECANCELED, "%s: not done because this run already failed (%s); the run "
                            "returns that first failure", call,
                            strata_status_name(strata__failure_status(&chip->failure)));
    return STRATA_OK;
}

/* The error a call returns when a wait found a task past its timeout: the run's
   first failure says which task, on which core. */
static const char *depth_words(strata__chip *chip, char *buf, size_t size);

static int timeout_error(strata__chip *chip, const char *call, int which)
{
    static const char *const ring[3] = {"task_window", "heap", "dep_pool"};
    int status = strata__failure_raise(&chip->failure);
    char where[128];
    return strata__error_prefix(status ? status : STRATA_ETIMEDOUT, "%s: waiting for room in the %s ring of %s (%s)",
                                call, ring[which], depth_words(chip, where, sizeof where),
                                strata__ring_source(chip, chip->cur->depth, which));
}

/* The public call a submit's errors name (failure paths only). */
static const char *submit_name(const strata__chip *chip)
{
    return chip->mixed_parts ? "strata_chip_submit_mixed" : "strata_chip_submit";
}

/* ---- dependencies ---- */

typedef struct submit_ctx {
    strata__chip *chip;
    uint64_t      id;
    uint32_t      slot;
    int           func_id;
    uint32_t      linked;     /* edges linked into producers' fanout lists */
    bool          retired;    /* this submit has called strata__chip_retire */
} submit_ctx;

static strata__task *t_of(const submit_ctx *ctx)
{
    return &ctx->chip->tasks[ctx->slot];
}

static bool dep_pool_full(const strata__depth_ring *r)
{
    return r->dep_head - r->dep_tail >= r->dep_size;
}

/* Back-pressure: wait until a task retires, for room in `ring` (a
   strata__rec_counter), or until *word == value (word may be NULL); a traced
   run records the wait and the rings' fill. */
static int wait_for_room_or(strata__chip *chip, uint32_t ring, _Atomic uint32_t *word, uint32_t value)
{
    if (!(chip->run_watch & STRATA__WATCH_TRACED))
        return word ? strata__chip_wait_for(chip, word, value) : strata__chip_wait_progress(chip);
    strata__chip_note_counters(chip);
    uint64_t next = STRATA__TASK_ID(chip->cur->depth, chip->cur->next);   /* the task that waits */
    strata__chip_note(chip, STRATA__REC_WAIT_BEGIN, 0, next, ring);
    int rc = word ? strata__chip_wait_for(chip, word, value) : strata__chip_wait_progress(chip);
    strata__chip_note(chip, STRATA__REC_WAIT_END, 0, next, ring);
    strata__chip_note_counters(chip);
    return rc;
}

static int wait_for_room(strata__chip *chip, uint32_t ring)
{
    return wait_for_room_or(chip, ring, NULL, 0);
}

/* Whether producer has finished, so the new task needs no edge to it; poisons
   the new task when the producer failed. */
static inline __attribute__((always_inline)) bool producer_finished(submit_ctx *ctx, uint64_t producer,
                                                                     uint32_t slot)
{
    strata__chip *chip = ctx->chip;
    if (strata__retired(chip, producer))
        return true;                            /* retired: finished and ordered already */
    if (!ctx->retired) {
        /* Submit retires only now and then (see strata_chip_submit); a task with
           producers retires now, once, so that finished ones need no look at
           their slots (lines the lanes are writing). */
        ctx->retired = true;
        strata__chip_retire(chip);
        if (strata__retired(chip, producer))
            return true;
    }
    strata__task *p = &chip->tasks[slot];
    /* acquire: if we see CLOSED, the producer's status is visible */
    if (strata__load_acquire(&p->fanout) != STRATA__EDGE_CLOSED)
        return false;
    if (p->status != STRATA_OK)
        strata__store_relaxed(&t_of(ctx)->poisoned, 1);  /* read by the lane after our release */
    return true;
}

/* Make task ctx->id follow `producer`: one edge in the producer's fanout list. */
static int add_dep(void *arg, uint64_t producer, uint32_t slot)
{
    submit_ctx *ctx = arg;
    strata__chip *chip = ctx->chip;
    if (producer_finished(ctx, producer, slot))
        return STRATA_OK;                       /* no edge, no atomics */
    strata__task *p = &chip->tasks[slot];
    if (p->last_succ == ctx->id)
        return STRATA_OK;                       /* one edge per producer is enough */
    p->last_succ = ctx->id;

    /* A full dep_pool holds edges of tasks in flight, this one's included. The
       oldest task of the ring can always finish and free its edges, and once
       this producer has finished no edge is needed: so waiting always ends,
       and a task never needs more edges at once than it has producers still
       running. The edge comes from the consumer's ring (freed when it
       retires, in its ring's order). */
    strata__depth_ring *r = chip->cur;
    while (dep_pool_full(r)) {
        strata__chip_retire(chip);
        if (!dep_pool_full(r))
            break;
        if (producer_finished(ctx, producer, slot))
            return STRATA_OK;
        /* room, or this producer done (then no edge is needed): the ring's
           oldest task may be waiting for this very submit */
        if (wait_for_room_or(chip, STRATA__COUNTER_DEP_POOL, &chip->tasks[slot].fanout, STRATA__EDGE_CLOSED))
            return timeout_error(chip, submit_name(chip), STRATA__RING_DEP);
    }

    uint32_t e = (uint32_t)(r->dep_base + r->dep_head % r->dep_size);
    strata__task *t = t_of(ctx);
    chip->edges[e].succ_slot = ctx->slot;
    /* acquire: as in producer_finished(); it may have finished meanwhile */
    uint32_t head = strata__load_acquire(&p->fanout);
    for (;;) {
        if (head == STRATA__EDGE_CLOSED) {
            if (p->status != STRATA_OK)
                strata__store_relaxed(&t->poisoned, 1);  /* read by the lane after our release */
            return STRATA_OK;
        }
        chip->edges[e].next = head;
        /* release: publishes the edge (and the task's guard); pairs with the
           acquire of the exchange in strata__chip_complete() */
        if (atomic_compare_exchange_weak_explicit(&p->fanout, &head, e, memory_order_release,
                                                  memory_order_acquire))
            break;
    }
    r->dep_head++;
    ctx->linked++;
    if (__builtin_expect(chip->run_watch & STRATA__WATCH_TRACED, 0))   /* a traced run records the edge */
        strata__chip_note(chip, STRATA__REC_EDGE, 0, producer, ctx->id);
    if (r->dep_head - r->dep_tail > r->high_dep) {
        strata__chip_retire(chip);   /* as for the window's mark, see strata_chip_submit */
        uint64_t used = r->dep_head - r->dep_tail;
        if (used > r->high_dep)
            r->high_dep = used;
    }
    return STRATA_OK;
}

/* Fail the task being built (slot taken, edges maybe linked) so the window can
   retire it. Only called when nothing before it can still complete into it. */
static void abandon_task(strata__chip *chip, uint32_t slot, int status)
{
    strata__task *t = &chip->tasks[slot];
    t->dep_end = chip->cur->dep_head;
    t->status = status;
    strata__store_relaxed(&t->fanout, STRATA__EDGE_CLOSED);
    strata__store_release(&t->done, 1);
    chip->stat_failed++;
}

/* What a submit's errors name: "strata_chip_submit(func_id 3)", or, for a
   part of a mixed task (part 0 to 2), "strata_chip_submit_mixed(its AIV0 part,
   func_id 3)". */
static const char *const part_label[3] = {"its AIC part, ", "its AIV0 part, ", "its AIV1 part, "};
#define SUBMIT_WHO      "%s(%sfunc_id %d)"
#define SUBMIT_WHO_ARGS(part, func_id) \
    (part) < 0 ? "strata_chip_submit" : "strata_chip_submit_mixed", (part) < 0 ? "" : part_label[part], (func_id)

/* The heap record of an intermediate buffer: owner_data is its index in its
   depth's FIFO, times 4, plus the depth. */
static inline strata__heap_record *heap_record_of(strata__chip *chip, const strata__buffer *b)
{
    strata__depth_ring *r = &chip->ring[b->owner_data & 3];
    return &r->hrec[(b->owner_data >> 2) & (r->hrec_cap - 1)];
}

/* Why tensor i's buffer is refused (resolve_buffers); off the hot path. */
static __attribute__((cold, noinline)) int bad_buffer(strata__chip *chip, int func_id, int part, uint32_t i,
                                                      const strata_tensor *t, uint32_t buf)
{
    if (buf == STRATA__NONE)
        return strata__fail(STRATA_EINVAL,
                            SUBMIT_WHO ": tensor %u: addr 0x%llx is not the base of a live buffer of chip %d; pass "
                            "a buffer from strata_worker_malloc or strata_chip_alloc as addr and select the view "
                            "with offset, shape and strides",
                            SUBMIT_WHO_ARGS(part, func_id), i, (unsigned long long)t->addr, chip->device_id);
    const strata__buffer *b = strata__tmap_buffer(&chip->tmap, buf);
    if (t->nbytes > b->nbytes)
        return strata__fail(STRATA_EINVAL, SUBMIT_WHO ": tensor %u says its buffer at 0x%llx holds %llu bytes, but "
                            "it holds %llu", SUBMIT_WHO_ARGS(part, func_id), i, (unsigned long long)t->addr,
                            (unsigned long long)t->nbytes, (unsigned long long)b->nbytes);
    return strata__fail(STRATA_EINVAL, SUBMIT_WHO ": tensor %u: the intermediate buffer at 0x%llx belongs to a "
                        "scope that has already ended; use it only inside its scope, or allocate it in an outer one",
                        SUBMIT_WHO_ARGS(part, func_id), i, (unsigned long long)t->addr);
}

/* Find each tensor's buffer: a live chip buffer whose base is the tensor's addr,
   at least as large as the tensor says, and, for an intermediate, of a scope
   that is still open. part: -1, or the part of a mixed task args are (for
   messages). */
static inline __attribute__((always_inline)) int resolve_buffers(strata__chip *chip, int func_id, int part,
                                                                 const strata_task_args *args, uint32_t *buf)
{
    for (uint32_t i = 0; i < args->ntensors; i++) {
        const strata_tensor *t = &args->tensors[i];
        buf[i] = strata__tmap_buffer_find_next(&chip->tmap, t->addr);
        if (buf[i] == STRATA__NONE)
            return bad_buffer(chip, func_id, part, i, t, buf[i]);
        const strata__buffer *b = strata__tmap_buffer(&chip->tmap, buf[i]);
        if (t->nbytes > b->nbytes ||
            (b->kind == STRATA__BUFFER_HEAP && heap_record_of(chip, b)->closed))
            return bad_buffer(chip, func_id, part, i, t, buf[i]);
    }
    return STRATA_OK;
}

static void fill_parts(strata__chip *chip, uint32_t slot, const strata_mixed_task *m);

/* Copy a task's args into body b, packed: tensors, scalars, tags (8-byte
   members first), element by element (a task has few, and a library call per
   array cost more than the copy); b->view points into the copy. */
static inline __attribute__((always_inline)) void copy_args(strata__task_body *b, const strata_task_args *a)
{
    strata_tensor *tensors = (strata_tensor *)(void *)b->data;
    uint64_t *scalars = (uint64_t *)(void *)(tensors + a->ntensors);
    strata_tag *tags = (strata_tag *)(void *)(scalars + a->nscalars);
    for (uint32_t i = 0; i < a->ntensors; i++) {
        tensors[i] = a->tensors[i];
        tags[i] = a->tags[i];
    }
    for (uint32_t i = 0; i < a->nscalars; i++)
        scalars[i] = a->scalars[i];
    b->view = (strata_task_args){.tensors = tensors, .tags = tags, .ntensors = a->ntensors, .scalars = scalars,
                                 .nscalars = a->nscalars};
}

static inline __attribute__((always_inline)) int submit(strata_chip_orch *o, int func_id,
                                                        const strata_task_args *args, uint32_t *task);


int strata_chip_submit(strata_chip_orch *o, int func_id, const strata_task_args *args)
{
    return submit(o, func_id, args, NULL);   /* task NULL: folded away in this copy */
}

int strata_chip_submit_task(strata_chip_orch *o, int func_id, const strata_task_args *args, uint32_t *task)
{
    return submit(o, func_id, args, task);
}

/* The submit, inlined into both public ones (the plain one, the hot path,
   keeps the shape it had before the others came): strata_chip_submit_mixed
   passes its parts in chip->mixed_parts, NULL for every other submit. */
static inline __attribute__((always_inline)) int submit(strata_chip_orch *o, int func_id,
                                                        const strata_task_args *args, uint32_t *task)
{
    strata__clear_error();
    int rc = check_orch(o, "strata_chip_submit");
    if (rc)
        return rc;
    strata__chip *chip = o->chip;
    static const strata_task_args none;
    if (args == NULL)
        args = &none;

    const strata_kernel_entry *k = strata__callable_kernel(chip->callable, func_id);
    if (k == NULL)
        return orch_fail(chip, strata__fail(STRATA_ENOENT, "strata_chip_submit: chip callable '%s' has no kernel "
                                            "with func_id %d (%u kernels registered)", chip->callable->name,
                                            func_id, chip->callable->nkernels));
    strata__extent ext[STRATA_MAX_CORE_TENSORS];
    rc = strata__task_args_check(args, STRATA_MAX_CORE_TENSORS, STRATA_MAX_CORE_SCALARS, ext);
    if (rc)
        return orch_fail(chip, strata__error_prefix(rc, "strata_chip_submit(func_id %d)", func_id));
    /* The buffers: retiring (below, and while waiting for dep_pool room)
       recycles only heap buffers whose scope has ended, which are refused here,
       so the indices stay valid for the whole submit. */
    uint32_t buf[STRATA_MAX_CORE_TENSORS];
    rc = resolve_buffers(chip, func_id, -1, args, buf);
    if (rc)
        return orch_fail(chip, rc);
    /* Retire what has finished every 16 submits, so the TensorMap sees it as
       stale: each look reads the oldest slot, a line the lanes write, which is a
       cross-core miss when they are close behind (a submit with producers also
       retires before its first dependency check, see producer_finished). Then a
       slot in the task window: back-pressure until the oldest task retires. */
    strata__depth_ring *r = chip->cur;   /* the ring of the open scope's depth */
    if ((chip->seq & 15) == 0)
        strata__chip_retire(chip);
    while (r->next - r->retire_next >= r->window) {
        strata__chip_retire(chip);
        if (r->next - r->retire_next < r->window)
            break;
        if (chip->host_graph)   /* nothing runs before the graph is whole: the window holds it all */
            return orch_fail(chip, strata__fail(STRATA_ERING, "%s: runtime host_build_graph holds "
                                                "a run's whole graph in the task_window ring, which has %llu slots "
                                                "(%s); this run submits more tasks: raise it", submit_name(chip),
                                                (unsigned long long)r->window, strata__ring_source(chip, 0, STRATA__RING_WINDOW)));
        if (wait_for_room(chip, STRATA__COUNTER_TASK_WINDOW))
            return timeout_error(chip, submit_name(chip), STRATA__RING_WINDOW);
    }
    /* A new high-water mark is recorded only after a look at what has finished
       (retirement is lazy), so the stats report what the run needed. Before
       next moves: retirement must not reach the slot being filled. */
    if (r->next + 1 - r->retire_next > r->high_window) {
        strata__chip_retire(chip);
        uint64_t inflight = r->next + 1 - r->retire_next;
        if (inflight > r->high_window)
            r->high_window = inflight;
    }
    /* The ring's words in locals: the stores below (to uint64_t fields of
       other structs, as far as the compiler knows) would make it reload them. */
    const uint64_t local = r->next++, mask = r->mask, retire_next = r->retire_next;
    const uint32_t base = r->base, depth = r->depth;
    const uint64_t id = STRATA__TASK_ID(depth, local);
    const uint64_t seq = chip->seq++;
    strata__store_relaxed(&chip->submitted, seq);   /* a hint for lanes holding off */
    const uint32_t number = (uint32_t)(seq - chip->run_first_seq);
    const uint32_t slot = base + (uint32_t)(local & mask);

    strata__task_body *body = &chip->bodies[slot];
    /* Ask for the lines of the slot four ahead now, for writing: the lane read
       them last, and their transfer then overlaps the submits in between.
       (bench/l2_overhead: ~10 % off independent, fan-out and Cholesky.) */
    uint32_t ahead = base + (uint32_t)((local + 4) & mask);
    __builtin_prefetch(&chip->tasks[ahead], 1);
    __builtin_prefetch(&chip->bodies[ahead], 1);
    __builtin_prefetch((const char *)&chip->bodies[ahead] + STRATA__CACHE_LINE, 1);
    __builtin_prefetch((const char *)&chip->bodies[ahead] + 2 * STRATA__CACHE_LINE, 1);
    /* and, one per submit, the slots the next retirement will look at */
    __builtin_prefetch(&chip->tasks[base + ((retire_next + (local & 15)) & mask)]);
    body->fn = k->fn;
    body->func_id = func_id;
    body->core = k->core;
    copy_args(body, args);
    const strata_tensor *tensors = body->view.tensors;
    const strata_tag *tags = body->view.tags;

    strata__task *t = &chip->tasks[slot];
    t->id = id;
    t->number = number;
    t->status = STRATA_OK;
    t->last_succ = 0;
    strata__store_relaxed(&t->pending, STRATA__PENDING_GUARD);  /* see chip/engine.h */
    strata__store_relaxed(&t->poisoned, 0);
    strata__store_relaxed(&t->done, 0);
    strata__store_relaxed(&t->fanout, STRATA__EDGE_EMPTY);

    /* One test for the rare kinds of submit: traced, mixed, host_build_graph. */
    uint32_t special = chip->orch_special;
    if (__builtin_expect(special != 0, 0)) {
        if (special & STRATA__SPECIAL_MIXED) {
            body->core = (strata_core_type)STRATA__CORE_MIXED;   /* a cluster's AIC lane takes it (lane.c) */
            fill_parts(chip, slot, chip->mixed_parts);
        }
        if (special & STRATA__SPECIAL_TRACED) {   /* before its edges and any lane */
            strata__chip_note(chip, STRATA__REC_SUBMIT, 0, id, (uint64_t)func_id);
            if ((seq & 63) == 0)
                strata__chip_note_counters(chip);
            if ((seq & 1023) == 0)
                strata__chip_drain_hook(chip);   /* a level-2 worker's rings to the trace as they fill */
        }
    }
    /* Every buffer is marked used by this task before the first wait inside
       tmap_access (dep_pool back-pressure): a second line of defence behind the
       scope check in resolve_buffers(). */
    for (uint32_t i = 0; i < args->ntensors; i++)
        strata__tmap_buffer(&chip->tmap, buf[i])->last_user[depth] = id;
    if (task)
        *task = number;
    if (__builtin_expect(special & STRATA__SPECIAL_HOST_GRAPH, 0)) {
        /* ordered by explicit edges only; held (pending at GUARD) until the
           orchestration function returns and the graph is checked */
        t->dep_end = r->dep_head;
        return STRATA_OK;
    }
    submit_ctx ctx = {.chip = chip, .id = id, .slot = slot, .func_id = func_id};
    for (uint32_t i = 0; i < args->ntensors; i++) {
        strata_tag tag = tags[i];
        if (tag == STRATA_NO_DEP)
            continue;
        rc = strata__tmap_access(&chip->tmap, buf[i], id, slot, &tensors[i], &ext[i], strata__tag_reads(tag),
                                 strata__tag_writes(tag), chip->live_from, add_dep, &ctx);
        if (rc) {
            orch_fail(chip, strata__error_prefix(rc, "%s(func_id %d)", submit_name(chip), func_id));
            /* Out of host memory, or a timeout while waiting. Edges already
               linked belong to producers that will complete normally; once they
               have, nothing touches the slot and it can be failed in place. */
            while (strata__load_acquire(&t->pending) != STRATA__PENDING_GUARD - ctx.linked && !chip->hung)
                if (strata__chip_wait_for(chip, &t->pending, STRATA__PENDING_GUARD - ctx.linked))
                    break;
            if (!chip->hung)
                abandon_task(chip, slot, rc);
            return rc;
        }
    }
    t->dep_end = r->dep_head;
    /* No edge linked: no other thread knows this task, so the guard can be
       dropped without an atomic read-modify-write (the push publishes). */
    if (ctx.linked == 0) {
        strata__store_relaxed(&t->pending, 0);
        strata__chip_make_ready(chip, slot);
        return STRATA_OK;
    }
    /* acq_rel: drops the guard, leaving one count per linked edge not yet
       released; the thread that brings pending to zero sees the body and every
       edge (see chip/engine.h) */
    uint32_t drop = STRATA__PENDING_GUARD - ctx.linked;
    if (strata__fetch_sub_acq_rel(&t->pending, drop) == drop)
        strata__chip_make_ready(chip, slot);
    return STRATA_OK;
}

/* ---- scopes and intermediate buffers ---- */

/* The ring of scope depth `depth` (0: the run's own scope): depths past the
   last ring in use share it; under host_build_graph every depth uses the
   first. */
static strata__depth_ring *ring_of_depth(strata__chip *chip, uint32_t depth)
{
    uint32_t last = strata__rings_in_use(chip) - 1;
    return &chip->ring[depth < last ? depth : last];
}

/* The open scope's depth and, where it shares one, whose ring it uses:
   "scope depth 2", "scope depth 5 (the ring of depth 3 and deeper)". */
static const char *depth_words(strata__chip *chip, char *buf, size_t size)
{
    uint32_t depth = chip->nscopes, ring = ring_of_depth(chip, depth)->depth;
    if (chip->host_graph && depth > 0)
        snprintf(buf, size, "scope depth %u (runtime host_build_graph keeps every depth in the ring of depth 0)",
                 depth);
    else if (ring != depth && ring + 1 < STRATA__DEPTHS)
        snprintf(buf, size, "scope depth %u (the ring of depth %u and deeper: STRATA_SCOPE_RINGS is %u)", depth,
                 ring, ring + 1);
    else if (ring != depth)
        snprintf(buf, size, "scope depth %u (the ring of depth %u and deeper)", depth, ring);
    else
        snprintf(buf, size, "scope depth %u", depth);
    return buf;
}

int strata_chip_scope_begin(strata_chip_orch *o)
{
    strata__clear_error();
    int rc = check_orch(o, "strata_chip_scope_begin");
    if (rc)
        return rc;
    strata__chip *chip = o->chip;
    rc = STRATA__RESERVE(chip->scopes, chip->nscopes, chip->scopes_cap, 16, "the scope stack");
    if (rc)
        return orch_fail(chip, strata__error_prefix(rc, "strata_chip_scope_begin"));
    strata__depth_ring *r = ring_of_depth(chip, chip->nscopes + 1);
    chip->scopes[chip->nscopes++] = r->hrec_next;
    chip->cur = r;
    if (r->depth + 1 > chip->rings_used)
        chip->rings_used = r->depth + 1;
    return STRATA_OK;
}

int strata_chip_scope_end(strata_chip_orch *o)
{
    strata__clear_error();
    if (o == NULL || o->chip == NULL || o->chip->callable == NULL)
        return strata__fail(STRATA_EINVAL, "strata_chip_scope_end: o is not the handle of a running "
                            "orchestration function");
    strata__chip *chip = o->chip;
    if (chip->nscopes == 0)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_scope_end without a matching "
                                            "strata_chip_scope_begin in the orchestration function of chip "
                                            "callable '%s' on chip %d", chip->callable->name, chip->device_id));
    strata__depth_ring *r = ring_of_depth(chip, chip->nscopes);
    uint64_t first = chip->scopes[--chip->nscopes];
    if (first < r->hrec_head)
        first = r->hrec_head;
    for (uint64_t s = first; s < r->hrec_next; s++)
        r->hrec[s & (r->hrec_cap - 1)].closed = true;
    chip->cur = ring_of_depth(chip, chip->nscopes);
    strata__chip_retire(chip);   /* never blocks: recycles what is free already */
    return STRATA_OK;
}

static int heap_stuck(strata__chip *chip, strata__depth_ring *r, uint64_t n)
{
    const char *source = strata__ring_source(chip, r->depth, STRATA__RING_HEAP);
    char where[128];
    depth_words(chip, where, sizeof where);
    if (chip->host_graph)
        return strata__fail(STRATA_ERING,
                            "heap ring is %llu bytes (%s) and a %llu-byte buffer does not fit: runtime "
                            "host_build_graph runs nothing before the orchestration function returns, so a run's "
                            "intermediate buffers are all held at once (%llu bytes so far); set %s to at least %llu",
                            (unsigned long long)r->heap.size, source, (unsigned long long)n,
                            (unsigned long long)r->heap.used, source, (unsigned long long)(r->heap.used + n));
    uint64_t open = 0, open_bytes = 0;
    for (uint64_t s = r->hrec_head; s < r->hrec_next; s++) {
        const strata__heap_record *h = &r->hrec[s & (r->hrec_cap - 1)];
        if (!h->closed) {
            open++;
            open_bytes += h->nbytes;
        }
    }
    return strata__fail(STRATA_ERING,
                        "heap ring of %s is %llu bytes (%s) and a %llu-byte buffer does not fit: "
                        "%llu bytes are held, %llu of them by %llu buffers whose scope has not ended, and "
                        "nothing running can free the space; end scopes sooner with strata_chip_scope_end, or "
                        "set %s to at least %llu", where,
                        (unsigned long long)r->heap.size, source, (unsigned long long)n,
                        (unsigned long long)r->heap.used, (unsigned long long)open_bytes,
                        (unsigned long long)open, source, (unsigned long long)(r->heap.used + n));
}

int strata_chip_alloc(strata_chip_orch *o, strata_dtype dtype, uint32_t ndims, const uint64_t *shape,
                      strata_tensor *out)
{
    strata__clear_error();
    int rc = check_orch(o, "strata_chip_alloc");
    if (rc)
        return rc;
    strata__chip *chip = o->chip;
    if (out == NULL || shape == NULL)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_alloc: %s is NULL",
                                            out == NULL ? "out" : "shape"));
    strata_tensor t = strata_tensor_make((const void *)(uintptr_t)1, dtype, ndims, shape);
    if (t.ndims == 0)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_alloc: dtype %d with %u dims is not a "
                                            "valid shape (dtype must be a strata_dtype, ndims 1..%d)",
                                            (int)dtype, ndims, STRATA_MAX_DIMS));
    for (uint32_t i = 0; i < ndims; i++)
        if (shape[i] == 0)
            return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_alloc: shape[%u] is 0", i));
    /* the ring of the open scope's depth, placed in chip memory at its first use */
    strata__depth_ring *r = chip->cur;
    rc = strata__chip_place_heap(chip, r);
    if (rc)
        return orch_fail(chip, strata__error_prefix(rc, "strata_chip_alloc"));
    uint64_t n = (t.nbytes + STRATA__DEVICE_ALIGN - 1) & ~(uint64_t)(STRATA__DEVICE_ALIGN - 1);
    if (n < t.nbytes || n > r->heap.size) {
        char where[128];
        return orch_fail(chip, strata__fail(STRATA_ERING,
                                            "heap ring of %s is %llu bytes (%s); a %llu-byte buffer can never "
                                            "fit; set %s to at least %llu", depth_words(chip, where, sizeof where),
                                            (unsigned long long)r->heap.size, strata__ring_source(chip, r->depth, STRATA__RING_HEAP),
                                            (unsigned long long)t.nbytes, strata__ring_source(chip, r->depth, STRATA__RING_HEAP),
                                            (unsigned long long)n));
    }
    if (r->hrec_next - r->hrec_head == r->hrec_cap) {
        strata__heap_record *p = strata__malloc(2 * r->hrec_cap * sizeof p[0]);
        if (!p)
            return orch_fail(chip, strata__fail(STRATA_ENOMEM, "strata_chip_alloc: out of host memory growing the "
                                                "heap records to %llu entries",
                                                (unsigned long long)(2 * r->hrec_cap)));
        for (uint64_t s = r->hrec_head; s < r->hrec_next; s++)
            p[s & (2 * r->hrec_cap - 1)] = r->hrec[s & (r->hrec_cap - 1)];
        free(r->hrec);
        r->hrec = p;
        r->hrec_cap *= 2;
    }
    uint64_t offset, charged;
    strata__heap_ring before;
    for (;;) {
        strata__chip_retire(chip);
        before = r->heap;   /* the state to restore if registering fails */
        if (strata__heap_ring_alloc(&r->heap, n, &offset, &charged))
            break;
        /* Waiting helps only if the ring's oldest buffer's scope has ended: the
           ring frees in order, so its users retiring is the only way forward. */
        bool oldest_closed = r->hrec_head < r->hrec_next && r->hrec[r->hrec_head & (r->hrec_cap - 1)].closed;
        if (!oldest_closed || strata__chip_all_retired(chip) || chip->host_graph)
            return orch_fail(chip, heap_stuck(chip, r, n));   /* host_build_graph: nothing runs before it returns */
        if (wait_for_room(chip, STRATA__COUNTER_HEAP))
            return timeout_error(chip, "strata_chip_alloc", STRATA__RING_HEAP);
    }
    uint64_t addr = r->heap_addr + offset;
    uint32_t index;
    rc = strata__tmap_buffer_add(&chip->tmap, addr, n, STRATA__BUFFER_HEAP, &index);
    if (rc) {
        /* give the bytes back: this allocation is the newest, so undo it */
        before.high_water = r->heap.high_water;
        r->heap = before;
        return orch_fail(chip, rc);
    }
    strata__tmap_buffer(&chip->tmap, index)->owner_data = r->hrec_next << 2 | r->depth;   /* heap_record_of() */
    r->hrec[r->hrec_next++ & (r->hrec_cap - 1)] =
        (strata__heap_record){.buffer = index, .closed = false, .offset = offset, .nbytes = n, .charged = charged};
    t.addr = addr;
    t.nbytes = n;
    *out = t;
    return STRATA_OK;
}

/* ---- mixed tasks ---- */

/* The parts of mixed task `slot`, copied into chip->parts (made for the
   window at the first mixed submit: no mixed task is in flight then). */
static void fill_parts(strata__chip *chip, uint32_t slot, const strata_mixed_task *m)
{
    const int ids[3] = {m->aic_func_id, m->aiv0_func_id, m->aiv1_func_id};
    const strata_task_args *args[3] = {m->aic_args, m->aiv0_args, m->aiv1_args};
    static const strata_task_args none;
    for (int p = 0; p < 3; p++) {
        strata__task_body *b = &chip->parts[(size_t)slot * 3 + (size_t)p];
        const strata_kernel_entry *k = ids[p] >= 0 ? strata__callable_kernel(chip->callable, ids[p]) : NULL;
        b->fn = k ? k->fn : NULL;
        b->func_id = ids[p];
        b->core = p == 0 ? STRATA_AIC : STRATA_AIV;
        copy_args(b, args[p] ? args[p] : &none);
    }
}

int strata_chip_submit_mixed(strata_chip_orch *o, const strata_mixed_task *t, uint32_t *task)
{
    strata__clear_error();
    int rc = check_orch(o, "strata_chip_submit_mixed");
    if (rc)
        return rc;
    strata__chip *chip = o->chip;
    if (t == NULL)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_submit_mixed: t is NULL"));
    if (!chip->clusters)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_submit_mixed: chip %d has %u AIC and %u AIV "
                                            "cores; mixed tasks need clusters of 1 AIC + 2 AIV cores "
                                            "(aiv_cores = 2 * aic_cores)", chip->device_id,
                                            chip->ncores[STRATA_AIC], chip->ncores[STRATA_AIV]));
    const int ids[3] = {t->aic_func_id, t->aiv0_func_id, t->aiv1_func_id};
    const strata_task_args *args[3] = {t->aic_args, t->aiv0_args, t->aiv1_args};
    static const char *const part[3] = {"AIC", "AIV0", "AIV1"};
    int first = -1;
    /* the node's tensors: every part's, for the TensorMap (the parts keep their own) */
    strata_tensor tensors[STRATA_MAX_CORE_TENSORS];
    strata_tag tags[STRATA_MAX_CORE_TENSORS];
    uint32_t nt = 0;
    for (int p = 0; p < 3; p++) {
        if (ids[p] < 0)
            continue;
        const strata_kernel_entry *k = strata__callable_kernel(chip->callable, ids[p]);
        if (k == NULL)
            return orch_fail(chip, strata__fail(STRATA_ENOENT, "strata_chip_submit_mixed: chip callable '%s' has no "
                                                "kernel with func_id %d (its %s part)", chip->callable->name, ids[p],
                                                part[p]));
        if (k->core != (p == 0 ? STRATA_AIC : STRATA_AIV))
            return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_submit_mixed: the %s part's kernel "
                                                "func_id %d is an %s kernel", part[p], ids[p],
                                                strata__core_name(k->core)));
        const strata_task_args *a = args[p];
        if (a) {
            rc = strata__task_args_check(a, STRATA_MAX_CORE_TENSORS, STRATA_MAX_CORE_SCALARS, NULL);
            if (rc)
                return orch_fail(chip, strata__error_prefix(rc, "strata_chip_submit_mixed(its %s part, func_id %d)",
                                                            part[p], ids[p]));
            uint32_t buf[STRATA_MAX_CORE_TENSORS];   /* each part's own tensor numbers in messages */
            rc = resolve_buffers(chip, ids[p], p, a, buf);
            if (rc)
                return orch_fail(chip, rc);
            if (nt + a->ntensors > STRATA_MAX_CORE_TENSORS)
                return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_submit_mixed: its parts name more "
                                                    "than %u tensors in all; a task takes at most %u",
                                                    (unsigned)STRATA_MAX_CORE_TENSORS,
                                                    (unsigned)STRATA_MAX_CORE_TENSORS));
            for (uint32_t i = 0; i < a->ntensors; i++) {
                tensors[nt] = a->tensors[i];
                tags[nt++] = a->tags[i];
            }
        }
        if (first < 0)
            first = p;
    }
    if (first < 0)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_submit_mixed: every func_id is -1; a mixed "
                                            "task has at least one part"));
    if (chip->parts_slots != chip->nslots) {
        free(chip->parts);
        chip->parts = aligned_alloc(STRATA__CACHE_LINE, (size_t)chip->nslots * 3 * sizeof chip->parts[0]);
        chip->parts_slots = chip->parts ? chip->nslots : 0;
        if (!chip->parts)
            return orch_fail(chip, strata__fail(STRATA_ENOMEM, "strata_chip_submit_mixed: out of host memory for "
                                                "the parts of %u mixed tasks", chip->nslots));
    }
    chip->mixed_parts = t;
    chip->orch_special |= STRATA__SPECIAL_MIXED;
    rc = strata_chip_submit_task(o, ids[first], &(strata_task_args){tensors, tags, nt, NULL, 0}, task);
    chip->orch_special &= ~(uint32_t)STRATA__SPECIAL_MIXED;
    chip->mixed_parts = NULL;
    return rc;
}

/* ---- runtime host_build_graph ----
 *
 * The followed runtime's development variant: the orchestration function
 * builds the run's whole graph, tasks (strata_chip_submit_task) and explicit
 * edges (strata_chip_add_dep), into the task window; no task starts before it
 * returns. Then the graph is checked (every edge between tasks of the run, no
 * cycle) and started: the edges are linked into their producers' fanout lists
 * (in the dep_pool ring, grouped by consumer so that retirement frees them in
 * order) and each task's guard is dropped as at a submit, so the lanes run it
 * exactly as they run the other runtime's tasks. A graph that fails the check
 * runs nothing: every task is settled as cancelled and the run fails saying
 * why. Tags still say which buffers a task touches (checked at submit); they
 * order nothing here. */

typedef struct strata__host_edge {
    uint32_t from, to;   /* task numbers of the run */
} strata__host_edge;

void strata__chip_set_host_graph(strata__chip *chip, bool on)
{
    chip->host_graph = on;
}

int strata_chip_add_dep(strata_chip_orch *o, uint32_t producer, uint32_t consumer)
{
    strata__clear_error();
    int rc = check_orch(o, "strata_chip_add_dep");
    if (rc)
        return rc;
    strata__chip *chip = o->chip;
    if (!chip->host_graph)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_add_dep: chip %d runs runtime "
                                            "tensormap_and_ringbuffer, which orders tasks by their tensors' tags; "
                                            "explicit edges need runtime \"host_build_graph\"", chip->device_id));
    uint64_t n = chip->ring[0].next - chip->run_first_local;
    if (n == 0)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_add_dep(%u, %u): this run has submitted no "
                                            "task yet; submit both with strata_chip_submit_task first", producer,
                                            consumer));
    if (producer >= n || consumer >= n)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_add_dep(%u, %u): task %u has not been "
                                            "submitted; this run has tasks 0 to %lld so far", producer, consumer,
                                            producer >= n ? producer : consumer, (long long)n - 1));
    if (producer == consumer)
        return orch_fail(chip, strata__fail(STRATA_EINVAL, "strata_chip_add_dep(%u, %u): a task cannot wait for "
                                            "itself", producer, consumer));
    rc = STRATA__RESERVE(chip->hedges, chip->nhedges, chip->hedges_cap, 64, "the run's explicit edges");
    if (rc)
        return orch_fail(chip, strata__error_prefix(rc, "strata_chip_add_dep"));
    chip->hedges[chip->nhedges++] = (strata__host_edge){producer, consumer};
    return STRATA_OK;
}

/* Settle every task of the run without running any: cancelled, its slot
   free to retire. */
static void settle_all(strata__chip *chip)
{
    strata__depth_ring *r = &chip->ring[0];
    for (uint64_t local = chip->run_first_local; local < r->next; local++) {
        strata__task *t = &chip->tasks[r->base + (local & r->mask)];
        t->dep_end = r->dep_head;
        t->status = STRATA_ECANCELED;
        strata__store_relaxed(&t->fanout, STRATA__EDGE_CLOSED);
        strata__store_release(&t->done, 1);
        chip->stat_canceled++;
    }
}

/* A cycle of the graph, if it has one: Kahn's algorithm settles every task
   not on or behind a cycle; of those left, each has a producer left, so
   following producers from any of them reaches a cycle within n steps. The
   cycle goes in path[] (path[0] its first task, each entry a producer of the
   one before) and its length is returned; 0: no cycle. in[], path[]: n entries
   each, first[]: n + 1, by_from[]: ne; scratch. */
static uint32_t find_cycle(const strata__host_edge *e, uint32_t ne, uint32_t n, uint32_t *in, uint32_t *first,
                           uint32_t *path, uint32_t *by_from)
{
    uint32_t *order = path;   /* Kahn's queue first */
    memset(in, 0, n * sizeof in[0]);
    memset(first, 0, (n + 1) * sizeof first[0]);
    for (uint32_t i = 0; i < ne; i++) {
        in[e[i].to]++;
        first[e[i].from + 1]++;
    }
    for (uint32_t v = 0; v < n; v++)
        first[v + 1] += first[v];
    for (uint32_t i = 0; i < ne; i++)   /* edges by producer (order[] as the fill cursor) */
        order[e[i].from] = 0;
    for (uint32_t i = 0; i < ne; i++)
        by_from[first[e[i].from] + order[e[i].from]++] = e[i].to;
    uint32_t head = 0, tail = 0;
    for (uint32_t v = 0; v < n; v++)
        if (in[v] == 0)
            order[tail++] = v;
    while (head < tail) {
        uint32_t v = order[head++];
        for (uint32_t k = first[v]; k < first[v + 1]; k++)
            if (--in[by_from[k]] == 0)
                order[tail++] = by_from[k];
    }
    if (tail == n)
        return 0;
    uint32_t *producer = first;   /* a producer still left, of each task left */
    uint32_t start = UINT32_MAX;
    for (uint32_t i = 0; i < ne; i++)
        if (in[e[i].from] > 0 && in[e[i].to] > 0) {
            producer[e[i].to] = e[i].from;
            start = e[i].to;
        }
    for (uint32_t k = 0; k < n; k++)
        start = producer[start];
    uint32_t len = 0, v = start;
    do {
        path[len++] = v;
        v = producer[v];
    } while (v != start && len < n);
    return len;
}

/* "task 3 (func_id 1) -> task 4 (func_id 2) -> task 3": the cycle of
   find_cycle in the direction its edges run, at most 8 tasks of it. */
static void describe_cycle(const strata__chip *chip, const uint32_t *path, uint32_t len, char *out, size_t size)
{
    size_t at = 0;
    uint32_t shown = len < 8 ? len : 8;
    for (uint32_t k = 0; k <= shown && at < size; k++) {
        /* path runs against the edges: path[0], then path[len - 1], ... path[1] */
        uint32_t v = k == 0 || k == len ? path[0] : path[len - k];
        if (k == shown && shown < len) {
            at += (size_t)snprintf(out + at, size - at, " -> ... (%u tasks in all)", len);
            break;
        }
        const strata__depth_ring *r = &chip->ring[0];
        const strata__task_body *b = &chip->bodies[r->base + ((chip->run_first_local + v) & r->mask)];
        at += (size_t)snprintf(out + at, size - at, k == shown ? "%stask %u" : "%stask %u (func_id %d)",
                               k ? " -> " : "", v, b->func_id);
    }
}

void strata__chip_host_graph_start(strata__chip *chip, int orc)
{
    /* every task of the run is in the depth-0 ring (ring_of_depth) */
    strata__depth_ring *r = &chip->ring[0];
    uint64_t n64 = r->next - chip->run_first_local;
    uint32_t n = (uint32_t)n64, ne = chip->nhedges;
    if (n == 0)
        return;
    if (orc != 0 || strata__failure_status(&chip->failure) != 0) {
        settle_all(chip);   /* the orchestration function failed: nothing of its graph runs */
        return;
    }
    uint64_t free_edges = r->dep_size - (r->dep_head - r->dep_tail);
    if (ne > free_edges) {
        strata__failure_set(&chip->failure, STRATA_ERING, "runtime host_build_graph: the run's %u explicit edges do "
                            "not fit the dep_pool ring (%llu edge records, %s); raise it; nothing ran", ne,
                            (unsigned long long)r->dep_size, strata__ring_source(chip, 0, STRATA__RING_DEP));
        settle_all(chip);
        return;
    }
    uint32_t *scratch = strata__malloc((size_t)(4 * (uint64_t)n + 1 + ne) * sizeof(uint32_t));
    if (!scratch) {
        strata__failure_set(&chip->failure, STRATA_ENOMEM, "runtime host_build_graph: out of host memory to check a "
                            "graph of %u tasks and %u edges; nothing ran", n, ne);
        settle_all(chip);
        return;
    }
    uint32_t *in = scratch, *first = in + n, *order = first + n + 1, *by_from = order + n;
    uint32_t *count = by_from + ne;   /* n entries: edges into each task */
    uint32_t cycle = find_cycle(chip->hedges, ne, n, in, first, order, by_from);
    if (cycle) {
        char path[512];
        describe_cycle(chip, order, cycle, path, sizeof path);
        strata__failure_set(&chip->failure, STRATA_EINVAL, "runtime host_build_graph: the explicit edges of chip "
                            "callable '%s' make a cycle, %s: no order can run it; nothing ran", chip->callable->name,
                            path);
        free(scratch);
        settle_all(chip);
        return;
    }
    /* Link the edges grouped by consumer, consumers in id order: each task's
       edges lie together in the dep_pool, before the next task's, so that its
       retirement frees them (dep_end) in order. */
    memset(count, 0, n * sizeof count[0]);
    memset(first, 0, (n + 1) * sizeof first[0]);
    for (uint32_t i = 0; i < ne; i++)
        first[chip->hedges[i].to + 1]++;
    for (uint32_t v = 0; v < n; v++)
        first[v + 1] += first[v];
    for (uint32_t i = 0; i < ne; i++)   /* by_from[] now: producers by consumer */
        by_from[first[chip->hedges[i].to] + count[chip->hedges[i].to]++] = chip->hedges[i].from;
    for (uint32_t v = 0; v < n; v++) {
        uint64_t local = chip->run_first_local + v;
        uint32_t slot = r->base + (uint32_t)(local & r->mask);
        strata__task *t = &chip->tasks[slot];
        for (uint32_t k = first[v]; k < first[v + 1]; k++) {
            uint64_t from = chip->run_first_local + by_from[k];
            strata__task *p = &chip->tasks[r->base + (from & r->mask)];
            uint32_t e = (uint32_t)(r->dep_base + r->dep_head % r->dep_size);
            chip->edges[e].succ_slot = slot;
            /* relaxed: no task of the run runs yet; the ready push below publishes */
            chip->edges[e].next = strata__load_relaxed(&p->fanout);
            strata__store_relaxed(&p->fanout, e);
            r->dep_head++;
            if (chip->run_watch & STRATA__WATCH_TRACED)   /* the trace's dependency arrows */
                strata__chip_note(chip, STRATA__REC_EDGE, 0, STRATA__TASK_ID(0, from), t->id);
        }
        t->dep_end = r->dep_head;
    }
    if (r->dep_head - r->dep_tail > r->high_dep)
        r->high_dep = r->dep_head - r->dep_tail;
    if (n64 > r->high_window)
        r->high_window = n64;
    /* Drop each guard as a submit does: a task whose producers all finished
       meanwhile (they run from the first drop on) is made ready exactly once,
       by whoever brings it to zero. */
    for (uint32_t v = 0; v < n; v++) {
        uint32_t slot = r->base + (uint32_t)((chip->run_first_local + v) & r->mask);
        uint32_t drop = STRATA__PENDING_GUARD - count[v];
        /* acq_rel: as in submit (chip/engine.h) */
        if (strata__fetch_sub_acq_rel(&chip->tasks[slot].pending, drop) == drop)
            strata__chip_make_ready(chip, slot);
    }
    free(scratch);
}
