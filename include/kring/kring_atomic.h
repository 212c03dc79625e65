/*
 * kring_atomic.h - memory-order accessors for the ring's shared words.
 *
 * Each accessor names its ordering. Every use in the ring code says, in one
 * line, which access on the other side it pairs with. Compilers: GCC and
 * clang (user mode, mingw-w64, eBPF) use the __atomic builtins; MSVC (user
 * mode and the WDK) uses the Interlocked family and ReadAcquire/WriteRelease.
 */
#ifndef KRING_ATOMIC_H
#define KRING_ATOMIC_H

#include <kring/kring.h>

#if defined(_MSC_VER) && !defined(__clang__)

#if !defined(_KERNEL_MODE)
#include <windows.h>
#endif

static __forceinline uint64_t kring_load_acquire_u64(const volatile uint64_t *p)
{
    return (uint64_t)ReadAcquire64((const volatile LONG64 *)p);
}
static __forceinline uint32_t kring_load_acquire_u32(const volatile uint32_t *p)
{
    return (uint32_t)ReadAcquire((const volatile LONG *)p);
}
static __forceinline uint64_t kring_load_relaxed_u64(const volatile uint64_t *p)
{
    return (uint64_t)ReadNoFence64((const volatile LONG64 *)p);
}
static __forceinline uint32_t kring_load_relaxed_u32(const volatile uint32_t *p)
{
    return (uint32_t)ReadNoFence((const volatile LONG *)p);
}
static __forceinline void kring_store_release_u64(volatile uint64_t *p, uint64_t v)
{
    WriteRelease64((volatile LONG64 *)p, (LONG64)v);
}
static __forceinline void kring_store_release_u32(volatile uint32_t *p, uint32_t v)
{
    WriteRelease((volatile LONG *)p, (LONG)v);
}
static __forceinline void kring_store_relaxed_u64(volatile uint64_t *p, uint64_t v)
{
    WriteNoFence64((volatile LONG64 *)p, (LONG64)v);
}
static __forceinline void kring_store_relaxed_u32(volatile uint32_t *p, uint32_t v)
{
    WriteNoFence((volatile LONG *)p, (LONG)v);
}
static __forceinline uint32_t kring_fetch_add_u32(volatile uint32_t *p, uint32_t v)
{
    return (uint32_t)InterlockedExchangeAdd((volatile LONG *)p, (LONG)v);
}
static __forceinline uint32_t kring_fetch_or_u32(volatile uint32_t *p, uint32_t v)
{
    return (uint32_t)InterlockedOr((volatile LONG *)p, (LONG)v);
}
static __forceinline uint32_t kring_fetch_and_u32(volatile uint32_t *p, uint32_t v)
{
    return (uint32_t)InterlockedAnd((volatile LONG *)p, (LONG)v);
}
/* Sequentially consistent fence: orders an earlier store before a later load. */
static __forceinline void kring_fence_full(void)
{
    MemoryBarrier();
}

#else /* GCC, clang */

#define KRING_INLINE static inline __attribute__((always_inline))

KRING_INLINE uint64_t kring_load_acquire_u64(const volatile uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
KRING_INLINE uint32_t kring_load_acquire_u32(const volatile uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
KRING_INLINE uint64_t kring_load_relaxed_u64(const volatile uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
KRING_INLINE uint32_t kring_load_relaxed_u32(const volatile uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
KRING_INLINE void kring_store_release_u64(volatile uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
KRING_INLINE void kring_store_release_u32(volatile uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
KRING_INLINE void kring_store_relaxed_u64(volatile uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
KRING_INLINE void kring_store_relaxed_u32(volatile uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
KRING_INLINE uint32_t kring_fetch_add_u32(volatile uint32_t *p, uint32_t v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
KRING_INLINE uint32_t kring_fetch_or_u32(volatile uint32_t *p, uint32_t v)
{
    return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
}
KRING_INLINE uint32_t kring_fetch_and_u32(volatile uint32_t *p, uint32_t v)
{
    return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
}
/* Sequentially consistent fence: orders an earlier store before a later load
 * (mfence on x86, dmb ish on arm64). Release/acquire alone does not. */
KRING_INLINE void kring_fence_full(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#endif

#endif /* KRING_ATOMIC_H */
