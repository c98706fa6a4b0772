/* Named helpers for C11 atomics. Every use states what it orders and names its
 * partner; a relaxed access says why it is safe; seq_cst is reserved for the
 * store-then-load of sleep/wake protocols (core/wait.h). */
#ifndef STRATA_CORE_ATOMIC_H
#define STRATA_CORE_ATOMIC_H

#include <stdatomic.h>

#define strata__load_relaxed(p)      atomic_load_explicit((p), memory_order_relaxed)
#define strata__load_acquire(p)      atomic_load_explicit((p), memory_order_acquire)
#define strata__store_relaxed(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)
#define strata__store_release(p, v)  atomic_store_explicit((p), (v), memory_order_release)
#define strata__fetch_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define strata__fetch_sub_acq_rel(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel)
#define strata__exchange_acq_rel(p, v)  atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define strata__full_fence()         atomic_thread_fence(memory_order_seq_cst)

/* Tell the processor we are spinning (lets a sibling hyperthread run). */
static inline void strata__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#define STRATA__CACHE_LINE 64

#endif
