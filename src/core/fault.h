/* Fault points: where a test build can make a fallible step fail on purpose.
 *
 * Every allocation (core/alloc.h) and every system call of the table in
 * core/sys.h passes through strata__fault_hit(point). In the library users
 * link, STRATA_FAULT_INJECTION is not defined and the check is the constant
 * false, compiled away. The test build of the library (strata_faulty) defines
 * it: a test arms the injector to fail hit N of the points (once, or every hit
 * from N on), in this process or only in the worker's children, runs a
 * scenario, and learns from strata__fault_disarm() whether a fault was injected
 * (tests/fault/; SQLite's faultsim and curl's torture mode are the models).
 *
 * Global state (test builds only): one shared anonymous page, made at the
 * first arm and inherited by every process forked afterwards, holds the arming
 * and a count of faults injected anywhere; each process counts its own hits.
 * Arm before init to reach the children (the spawner is forked at init). */
#ifndef STRATA_CORE_FAULT_H
#define STRATA_CORE_FAULT_H

#include <stdbool.h>

#ifdef STRATA_FAULT_INJECTION
/* Whether this call at `point` ("alloc", "mmap", "fork", ...) must fail. Any
   thread. */
bool strata__fault_hit(const char *point);
/* Arm: fail hit `countdown` (1-based) of this process's points, and every later
   one when persistent; in_children: count and fail only in the worker's
   children and spawner, not in the application. */
void strata__fault_arm(unsigned countdown, bool persistent, bool in_children);
/* Disarm; returns how many faults were injected since the arm, in every
   process, and the point of the first in point_out (may be NULL). */
unsigned strata__fault_disarm(char *point_out, unsigned cap);
/* Called first thing in a spawner or child: restart this process's hit count
   (it inherited the application's). */
void strata__fault_enter_child(void);
/* Empty: a place for a breakpoint on every injected fault. */
void strata__fault_injected(const char *point);
#else
static inline bool strata__fault_hit(const char *point)
{
    (void)point;
    return false;
}
static inline void strata__fault_enter_child(void)
{
}
#endif

#endif
