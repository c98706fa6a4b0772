/* Fault points: see core/fault.h. Compiled into test builds only. */
#ifdef STRATA_FAULT_INJECTION
#define _GNU_SOURCE
#include "core/fault.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

typedef struct fault_state {
    _Atomic unsigned armed;        /* 0 or 1 */
    unsigned         countdown;
    bool             persistent, in_children;
    _Atomic unsigned injected;     /* faults injected in every process since the arm */
    char             first_point[64];
} fault_state;

static fault_state *state;          /* the shared page; NULL until the first arm */
static _Atomic unsigned hits;       /* this process's points since the arm */
static bool in_child;               /* this process is a spawner or a child */

void strata__fault_injected(const char *point)
{
    (void)point;
}

bool strata__fault_hit(const char *point)
{
    /* relaxed: arming happens before the scenario starts, on the same thread
       or before the fork of the process that reads it */
    if (state == NULL || !atomic_load_explicit(&state->armed, memory_order_relaxed) ||
        state->in_children != in_child)
        return false;
    unsigned h = atomic_fetch_add_explicit(&hits, 1, memory_order_relaxed) + 1;
    if (h != state->countdown && !(state->persistent && h > state->countdown))
        return false;
    if (atomic_fetch_add_explicit(&state->injected, 1, memory_order_relaxed) == 0)
        snprintf(state->first_point, sizeof state->first_point, "%s", point);
    strata__fault_injected(point);
    return true;
}

void strata__fault_arm(unsigned countdown, bool persistent, bool in_children)
{
    if (state == NULL) {
        /* deliberately never unmapped: a test process arms many times */
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return;
        state = p;
    }
    atomic_store(&hits, 0);
    state->countdown = countdown;
    state->persistent = persistent;
    state->in_children = in_children;
    atomic_store(&state->injected, 0);
    state->first_point[0] = '\0';
    atomic_store(&state->armed, 1);
}

unsigned strata__fault_disarm(char *point_out, unsigned cap)
{
    if (state == NULL)
        return 0;
    atomic_store(&state->armed, 0);
    if (point_out && cap)
        snprintf(point_out, cap, "%s", state->first_point);
    return atomic_load(&state->injected);
}

void strata__fault_enter_child(void)
{
    in_child = true;
    atomic_store(&hits, 0);
}
#else
/* The library users link has no fault points (core/fault.h). */
typedef int strata__fault_points_compiled_out;
#endif
