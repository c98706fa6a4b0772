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
#if defined(__SANITIZE_THREAD__)
#define STRATA__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRATA__TSAN 1
#endif
#endif
#ifndef STRATA__TSAN
#define strata__full_fence()         atomic_thread_fence(memory_order_seq_cst)
#else
/* ThreadSanitizer models no fences (gcc refuses them with -Werror=tsan). A
   seq_cst read-modify-write of a thread's own word stands in: a full barrier on
   the hardware (lock-prefixed on x86), and the fences order nothing TSan
   checks, since every handoff also goes through acquire/release. */
static inline void strata__full_fence(void)
{
    static _Thread_local _Atomic unsigned word;
    (void)atomic_fetch_add_explicit(&word, 0, memory_order_seq_cst);
}
#endif

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
