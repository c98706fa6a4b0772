/* Lanes: the engine's loop on each of the chip's cores. The platform runs the
 * cores (platform/platform.h: on sim a thread each, src/platform/sim/cores.c);
 * on each, a lane pops ready tasks of its core type, launches the kernel
 * through the platform (or cancels the task when a producer failed or the run
 * already failed), completes it, and sleeps on its type's event when there is
 * nothing to do (core/wait.h: spin briefly, then futex).
 *
 * A lane stuck in a kernel past the run's timeout cannot be stopped: close then
 * abandons its core instead of joining it (docs/lifecycle.md). */
#include "chip/engine.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/recorder.h"
#include "core/sys.h"

/* The lane a thread is, so close() called from inside a kernel can refuse to join
   its own thread. */
static _Thread_local strata__lane *current_lane;

/* The launch of a run with a timeout (the orchestrator's check reads which
   task a lane runs since when) or traced (each kernel's begin and end): the
   lane's bookkeeping around the platform's launch. Only such runs call it
   (chip->launch), so a plain run's kernels pay for neither. */
int strata__lane_watched_launch(strata__device *dev, strata_kernel_fn fn, const strata_task_args *args)
{
    strata__lane *lane = current_lane;
    strata__chip *chip = lane->chip;
    const strata__task_body *body = (const strata__task_body *)(const void *)
                                    ((const char *)args - offsetof(strata__task_body, view));
    /* A task's body, or a mixed task's part (three per slot). The bodies are
       tested first: chip->parts is made by the orchestrator at a run's first
       mixed submit, so only a lane running a part (handed to it after that,
       through the ready queue or `assigned`) may read it. */
    uintptr_t from_bodies = (uintptr_t)body - (uintptr_t)chip->bodies;
    uint32_t slot, part;
    if (from_bodies < (uint64_t)chip->nslots * sizeof chip->bodies[0]) {
        slot = (uint32_t)(from_bodies / sizeof chip->bodies[0]);
        part = 0;
    } else {
        size_t i = (size_t)(body - chip->parts);
        slot = (uint32_t)(i / 3);
        part = (uint32_t)(i % 3) + 1;
    }
    uint64_t id = chip->tasks[slot].id;
    uint32_t watch = chip->run_watch;
    uint64_t now = strata__now_ns();
    if (watch & STRATA__WATCH_TIMED) {
        strata__store_relaxed(&lane->running_kernel, (uint64_t)(uint32_t)body->func_id | (uint64_t)part << 32);
        strata__store_relaxed(&lane->started_ns, now);
        /* release: started_ns and running_kernel are visible to the acquire in check_timeouts() */
        strata__store_release(&lane->running_id, id);
    }
    if ((watch & STRATA__WATCH_TRACED) && lane->rec)
        strata__rec_write(lane->rec, now, STRATA__REC_KERNEL_BEGIN, 0, id, (uint64_t)body->func_id);
    int rc = chip->platform->launch(dev, fn, args);
    if ((watch & STRATA__WATCH_TRACED) && lane->rec)
        strata__rec_write(lane->rec, strata__now_ns(), STRATA__REC_KERNEL_END, 0, id, (uint64_t)(int64_t)rc);
    if (watch & STRATA__WATCH_TIMED)
        strata__store_release(&lane->running_id, 0);
    return rc;
}

/* Runs slot; returns the next slot to run (see strata__chip_complete) or NONE. */
static uint32_t run_task(strata__lane *lane, uint32_t slot)
{
    strata__chip *chip = lane->chip;
    strata__task *t = &chip->tasks[slot];
    strata__task_body *body = &chip->bodies[slot];
    int32_t status = STRATA_OK;
    if (strata__load_relaxed(&t->poisoned) || strata__failure_status(&chip->failure) != 0) {
        status = STRATA_ECANCELED;
    } else {
        /* The flight recorder: the kernel this core is in, one store each way
           (relaxed: read by the parent after this process died, or as a hint). */
        strata__store_relaxed(lane->current, strata__rec_current(body->func_id));
        int rc = chip->launch(chip->dev, body->fn, &body->view);
        strata__store_relaxed(lane->current, 0);
        if (rc != 0) {
            /* A kernel may have said why (strata_task_error): read on failure
               only, then cleared, so the hot path never touches the message. */
            const char *why = strata_last_error();
            status = STRATA_ETASK;
            strata__failure_set(&chip->failure, STRATA_ETASK,
                                "kernel func_id %d (%s) of chip callable '%s' returned %d in task %u "
                                "on %s core %u of chip %d%s%s; its dependent tasks were cancelled",
                                body->func_id, strata__core_name(body->core), chip->callable->name, rc,
                                t->number, strata__core_name(lane->core), lane->index,
                                chip->device_id, why[0] ? ": " : "", why);
            strata__clear_error();
        }
    }
    return strata__chip_complete(chip, lane, slot, status);
}

/* ---- mixed tasks ----
 *
 * On a chip of clusters (AIC core i with AIV cores 2i and 2i + 1), a mixed
 * task waits in the MIXED ready queues. The AIC lane of a cluster whose two
 * AIV lanes have no part pending takes one, hands its AIV parts to them (their
 * `assigned` word, release; they take it, acquire, before any other work) and
 * runs its AIC part: the three start together on one cluster, as soon as each
 * core is free. The task completes when its last part has (parts_left counts
 * down; the last finisher completes it, with the first failing part's status). */

static const char *const part_names[3] = {"AIC", "AIV0", "AIV1"};

static uint32_t run_part(strata__lane *lane, uint32_t slot, int p)
{
    strata__chip *chip = lane->chip;
    strata__task *t = &chip->tasks[slot];
    strata__task_body *body = &chip->parts[(size_t)slot * 3 + (size_t)p];
    int32_t status = 0;
    /* A part handed over after the run failed is not started: it might wait
       for a sibling that will never come (a kernel past its timeout), and a
       lane in such a wait could not be joined at close. */
    if (strata__failure_status(&chip->failure) != 0) {
        status = STRATA_ECANCELED;
    } else {
        strata__store_relaxed(lane->current, strata__rec_current(body->func_id));
        int rc = chip->launch(chip->dev, body->fn, &body->view);
        strata__store_relaxed(lane->current, 0);
        if (rc != 0) {
            const char *why = strata_last_error();
            status = STRATA_ETASK;
            strata__failure_set(&chip->failure, STRATA_ETASK,
                                "kernel func_id %d (the %s part of a mixed task) of chip callable '%s' returned %d "
                                "in task %u on %s core %u of chip %d%s%s; its dependent tasks were cancelled",
                                body->func_id, part_names[p], chip->callable->name, rc, t->number,
                                strata__core_name(lane->core), lane->index, chip->device_id, why[0] ? ": " : "",
                                why);
            strata__clear_error();
        }
    }
    if (status != 0) {
        int32_t expect = 0;
        atomic_compare_exchange_strong_explicit(&t->parts_status, &expect, status, memory_order_relaxed,
                                                memory_order_relaxed);
    }
    /* acq_rel: the last finisher sees every part's status (relaxed above, ordered by this chain) */
    if (strata__fetch_sub_acq_rel(&t->parts_left, 1) != 1)
        return STRATA__NONE;
    return strata__chip_complete(chip, lane, slot, strata__load_relaxed(&t->parts_status));
}

static uint32_t run_mixed(strata__lane *lane, uint32_t slot)
{
    strata__chip *chip = lane->chip;
    strata__task *t = &chip->tasks[slot];
    const strata__task_body *parts = &chip->parts[(size_t)slot * 3];
    if (strata__load_relaxed(&t->poisoned) || strata__failure_status(&chip->failure) != 0)
        return strata__chip_complete(chip, lane, slot, STRATA_ECANCELED);
    /* Which parts there are, read once, now: once the last handed part has
       finished, the task may complete and retire and its slot take a new
       task before this lane looks again. */
    bool has[3] = {parts[0].fn != NULL, parts[1].fn != NULL, parts[2].fn != NULL};
    uint32_t n = has[0] + has[1] + has[2];
    strata__store_relaxed(&t->parts_status, 0);
    /* relaxed: the releases below publish it with the part */
    strata__store_relaxed(&t->parts_left, n);
    bool handed = false;
    for (int p = 1; p <= 2; p++) {
        if (!has[p])
            continue;
        /* release: the part's body and the counts are visible to the sibling's acquire */
        strata__store_release(&lane->sibling[p - 1]->assigned, slot * 3 + (uint32_t)p + 1);
        handed = true;
    }
    if (handed)
        strata__event_notify(&chip->ready_event[STRATA_AIV]);
    return has[0] ? run_part(lane, slot, 0) : STRATA__NONE;
}

/* Whether an AIC lane may take a mixed task now: its cluster's AIV lanes
   have no part pending. */
static bool cluster_free(const strata__lane *lane)
{
    return strata__load_acquire(&lane->sibling[0]->assigned) == 0 &&
           strata__load_acquire(&lane->sibling[1]->assigned) == 0;
}

/* A cluster's AIC lane: take a mixed task and start it; *slot: what to run
   next. */
static bool take_mixed(strata__lane *lane, uint32_t *slot)
{
    strata__chip *chip = lane->chip;
    if (!cluster_free(lane) || !(strata__ready_pop(&chip->lane_queues[STRATA__CORE_MIXED], slot) ||
                                 strata__ready_pop(&chip->orch_queues[STRATA__CORE_MIXED], slot)))
        return false;
    *slot = run_mixed(lane, *slot);
    return true;
}

/* An AIV lane of a cluster: run the part handed to it, if any; *slot: what
   to run next. */
static inline bool take_part(strata__lane *lane, uint32_t *slot)
{
    uint32_t part = strata__load_relaxed(&lane->assigned);
    if (__builtin_expect(part == 0, 1))
        return false;
    strata__chip *chip = lane->chip;
    /* acquire: pairs with the release in run_mixed() */
    part = strata__load_acquire(&lane->assigned);
    strata__store_relaxed(&lane->assigned, 0);
    /* The cluster may be free now: its AIC lane may be asleep with a mixed
       task queued, waiting for exactly this (work_or_stop). The full notify
       orders the store above before its look for sleepers. */
    strata__event_notify(&chip->ready_event[STRATA_AIC]);
    *slot = run_part(lane, (part - 1) / 3, (int)((part - 1) % 3));
    return true;
}

static bool work_or_stop(void *arg)
{
    strata__lane *lane = arg;
    strata__chip *chip = lane->chip;
    return strata__ready_nonempty(&chip->lane_queues[lane->core]) ||
           strata__ready_nonempty(&chip->orch_queues[lane->core]) || strata__load_acquire(&chip->stop) ||
           strata__load_relaxed(&lane->assigned) != 0 ||
           (lane->sibling[0] && cluster_free(lane) &&
            (strata__ready_nonempty(&chip->lane_queues[STRATA__CORE_MIXED]) ||
             strata__ready_nonempty(&chip->orch_queues[STRATA__CORE_MIXED])));
}

/* An idle lane that finds work while the orchestrator is still submitting
   waits until it has submitted a few more tasks (or a short time passed)
   before it starts: taking each task the instant it is pushed makes the lane
   and the orchestrator pull the same cache lines back and forth (the queue
   cell, the task's slot, its producer's slot), which costs more than the
   wait, and a few tasks ahead the orchestrator links a chain without
   touching a line the lane holds. Bounded: never more than
   STRATA__HOLD_OFF_NS, and not at all once the orchestrator waits or has
   returned. */
#define STRATA__HOLD_OFF_TASKS 32u
#define STRATA__HOLD_OFF_NS    2000u

static void hold_off(strata__chip *chip)
{
    /* relaxed (all): hints; the pop that follows is what synchronizes */
    uint64_t from = strata__load_relaxed(&chip->submitted), start = 0;
    for (unsigned i = 0;; i++) {
        if (!strata__load_relaxed(&chip->streaming) || strata__load_relaxed(&chip->stop) ||
            strata__load_relaxed(&chip->submitted) - from >= STRATA__HOLD_OFF_TASKS)
            return;
        if (i % 16 == 0) {
            uint64_t now = strata__now_ns();
            if (start == 0)
                start = now;
            else if (now - start >= STRATA__HOLD_OFF_NS)
                return;
        }
        strata__cpu_relax();
    }
}

static void *lane_main(void *arg)
{
    strata__lane *lane = arg;
    strata__chip *chip = lane->chip;
    strata__ready_queue *from_lanes = &chip->lane_queues[lane->core];
    strata__ready_queue *from_orch = &chip->orch_queues[lane->core];
    current_lane = lane;
    for (;;) {
        uint32_t slot;
        /* Successors first: they are on some task's critical path. Then a part
           of a mixed task handed to this lane, checked after every chain too:
           the rest of its cluster may be waiting for it, so it waits for at
           most the chain in progress and, when the lane wakes to both, one
           more. Then, a cluster's AIC lane, a mixed task. One loop runs them
           all, so that run_task stays inlined here. */
        if (strata__ready_pop(from_lanes, &slot) || strata__ready_pop(from_orch, &slot) || take_part(lane, &slot) ||
            (lane->sibling[0] && take_mixed(lane, &slot))) {
            for (;;) {
                while (slot != STRATA__NONE)
                    slot = run_task(lane, slot);
                if (!take_part(lane, &slot))
                    break;
            }
            continue;
        }
        /* acquire: pairs with the release in strata__lanes_stop() */
        if (strata__load_acquire(&chip->stop))
            break;
        strata__event_wait(&chip->ready_event[lane->core], work_or_stop, lane, 0);
        if (!strata__ready_nonempty(from_lanes))
            hold_off(chip);
    }
    return NULL;
}

void strata__chip_set_recorder(strata__chip *chip, strata__rec_area *area)
{
    chip->rec = area;
    for (uint32_t i = 0; i < chip->nlanes; i++) {
        strata__lane *l = &chip->lanes[i];
        l->rec = strata__rec_area_ring(area, 1 + i);
        l->current = l->rec ? &l->rec->current : &l->current_here;
    }
}

bool strata__on_lane_of(const strata__chip *chip)
{
    return current_lane && current_lane->chip == chip;
}

int strata__lanes_start(strata__chip *chip)
{
    uint32_t n = chip->ncores[STRATA_AIC] + chip->ncores[STRATA_AIV];
    chip->lanes = strata__calloc(n, sizeof chip->lanes[0]);
    void **args = strata__calloc(n, sizeof args[0]);
    if (!chip->lanes || !args) {
        free(args);
        return strata__fail(STRATA_ENOMEM, "out of host memory for %u core threads of chip %d", n, chip->device_id);
    }
    for (uint32_t i = 0; i < n; i++) {
        strata__lane *l = &chip->lanes[i];
        l->chip = chip;
        l->core = i < chip->ncores[STRATA_AIC] ? STRATA_AIC : STRATA_AIV;
        l->index = l->core == STRATA_AIC ? i : i - chip->ncores[STRATA_AIC];
        l->current = &l->current_here;
        if (chip->clusters && l->core == STRATA_AIC) {   /* cluster i: AIC i, AIV 2i and 2i + 1 */
            l->sibling[0] = &chip->lanes[chip->ncores[STRATA_AIC] + 2 * i];
            l->sibling[1] = &chip->lanes[chip->ncores[STRATA_AIC] + 2 * i + 1];
        }
        args[i] = l;
    }
    uint32_t started = 0;
    int rc = chip->platform->cores_start(chip->dev, n, lane_main, args, &chip->cores, &started);
    free(args);
    for (uint32_t i = 0; i < started; i++)
        chip->lanes[i].started = true;
    chip->nlanes = started;
    return rc;   /* on failure, strata__lanes_stop ends and joins the cores that run */
}

void strata__lanes_stop(strata__chip *chip)
{
    if (!chip->lanes)
        return;
    /* release: pairs with the acquire in lane_main(); the notify wakes sleepers */
    strata__store_release(&chip->stop, 1);
    for (int t = 0; t < 3; t++)
        strata__event_notify(&chip->ready_event[t]);
    for (uint32_t i = 0; i < chip->nlanes; i++) {
        strata__lane *l = &chip->lanes[i];
        if (!l->started)
            continue;
        if (chip->hung && strata__load_acquire(&l->running_id) != 0) {
            chip->platform->core_abandon(chip->cores, i);   /* stuck in a kernel (see top of file) */
            chip->ndetached++;
        } else
            chip->platform->core_join(chip->cores, i);
        l->started = false;
    }
}
