// SPDX-License-Identifier: MIT
//
// The base every file of gomem includes: constants (pages, arenas, stack
// orders), throw and the assert tiers, debug levels, locks with their
// ranks, options and the trace hooks; then the heap's types, one header per
// concept (mheap.h, mcentral.h, mcache.h). The coroutine runtime's types
// are in runtime2.h, as Go's are in runtime2.go. The story of how it all
// fits together is the overview at the top of malloc.c; headers only
// declare.
//
// Lock ranks (Go's lockrank.go): a thread may take a lock only if its rank is
// higher than every lock it holds. GM_DEBUG >= 1 checks this.
//   lockRankStackpool < lockRankStackLarge
//       < lockRankMcentral < lockRankMheap < lockRankAllm < lockRankProf < lockRankPersistent
#ifndef GOMEM_RUNTIME_H
#define GOMEM_RUNTIME_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "gomem.h"
#include "os.h"
#include "sizeclasses.h"
#include "track.h"

// Every internal declaration is hidden: code built -fPIC then reaches gomem's
// own variables and functions directly, not through the GOT.
#pragma GCC visibility push(hidden)

// Span classes: Go's size classes 0..67, then two classes of blocks for the
// tiny allocator (tiny.c), 16- and 32-byte blocks in 16- and 32-byte
// spans laid out as classes 2 and 4, so free can tell a tiny block's span.
#define TinyClass16 NumSizeClasses
#define TinyClass32 (NumSizeClasses + 1)
#define NumSpanClasses (NumSizeClasses + 2)
static inline uint8_t spanclass_sizeclass(uint8_t spc)
{
    return spc < NumSizeClasses ? spc : spc == TinyClass16 ? 2 : 4;
}

#define GM_HIDDEN __attribute__((visibility("hidden")))
#define GM_LIKELY(x) __builtin_expect(!!(x), 1)
#define GM_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define GM_NOINLINE __attribute__((noinline))
#define GM_COLD __attribute__((cold, noinline))

// ----------------------------------------------------------- debug levels
//
// GM_DEBUG (build time, 0..3): 1 checks the public contract and lock ranks,
// 2 internal invariants on every operation, 3 walks whole structures
// (mheap_valid, stackpool_valid) at every slow-path step.
#ifndef GM_DEBUG
#define GM_DEBUG 0
#endif

// throw: the runtime found corruption or misuse that would corrupt. Prints
// "gomem: " + the message on one line and aborts. Never returns.
__attribute__((noreturn, cold, format(printf, 1, 2))) void throw(const char *fmt, ...);

// The three tiers of asserts, compiled in from GM_DEBUG >= their number:
// assert1 the public contract, assert2 internal invariants, assert3 the
// expensive walks of a whole structure (the *_valid validators).
#define assertLevel(level, cond)                                                                             \
    do {                                                                                                     \
        if (GM_DEBUG >= (level) && GM_UNLIKELY(!(cond)))                                                     \
            throw("internal error: %s:%d: assertion failed: %s", __FILE__, __LINE__, #cond);                 \
    } while (0)
#define assert1(cond) assertLevel(1, cond)
#define assert2(cond) assertLevel(2, cond)
#define assert3(cond) assertLevel(3, cond)

// -------------------------------------------------------------- constants

// gomem's page: 8 KiB, as Go's. Spans are whole pages.
#define PageShift 13
#define PageSize ((uintptr_t)1 << PageShift)
#define PageMask (PageSize - 1)

// Address space is reserved in arenas of 64 MiB (Go's heapArenaBytes on
// 64-bit Linux), committed to the OS in chunks of 4 MiB as the heap grows.
#define LogHeapArenaBytes 26
#define HeapArenaBytes ((uintptr_t)1 << LogHeapArenaBytes)
#define PagesPerArena (HeapArenaBytes / PageSize)
#define HeapCommitChunk ((uintptr_t)4 << 20)
// A large object allocated while it is at least mheap_.bigFreePages goes
// back to the OS as soon as it is freed (mheap.c, releaseBigFreeLocked),
// as glibc's mmapped chunks do. The bound starts at BigFreePages and rises
// to each such span's size when it is freed, up to BigFreeMaxPages, as
// glibc's dynamic mmap threshold does. (glibc starts at 128 KiB; at that
// bound bench/malloc.sh's large workload, 64 KiB-4 MiB buffers, peaked 8%
// higher than at 256 KiB, where it is as before, and python's 400 KiB
// strings still go back.)
#define BigFreePages (((uintptr_t)256 << 10) >> PageShift)
#define BigFreeMaxPages (((uintptr_t)32 << 20) >> PageShift)
enum { BigAllocKeep, BigAllocRelease, BigAllocMoved };

// The arena index covers a 48-bit address space in one level (as Go's on
// linux/amd64 and linux/arm64): 4M entries, 32 MiB of zero-filled .bss of
// which only the pages that name an arena are ever touched. A lookup of any
// pointer, ours or not, is one load and never faults. Linux gives user
// space 47 bits on x86-64 with 4-level paging and 39 to 48 on arm64, so
// everything fits. Kernels with 57-bit (x86-64 LA57) or 52-bit (arm64
// LVA) user addresses still place mmap below 2^48 unless the caller's hint
// is above it, and gomem never gives one (os_reserve passes NULL); a
// pointer above (a tagged pointer, or another allocator's high mapping) is
// simply not gomem's (arenaOf).
#define HeapAddrBits 48
#define ArenaIndexBits (HeapAddrBits - LogHeapArenaBytes)

// The most pages one span may have: the whole 48-bit space, less a margin
// so that page arithmetic cannot overflow.
#define MaxSpanPages (((uintptr_t)1 << (HeapAddrBits - PageShift)) - PagesPerArena)

#include "stack.h"

// ------------------------------------------------------------------ locks

enum lockRank {
    lockRankNone = 0,
    lockRankStackpool,
    lockRankStackLarge,
    lockRankMcentral,
    lockRankMheap,
    lockRankAllm,
    lockRankProf,       // the heap profiler's buckets (mprof.c)
    lockRankPersistent, // persistentalloc: a leaf, taken under any other lock
};

typedef struct mutex {
    pthread_mutex_t m;
    enum lockRank rank; // immutable after init
} mutex;

// Adaptive: spins briefly before sleeping. Slow paths hold locks for well
// under a microsecond, so a futex sleep (a syscall each side) costs more
// than the wait; measured on bench/stack churn with 2 threads. glibc's
// kind; other C libraries (musl) get a plain mutex (musl's spins briefly
// before it sleeps anyway).
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define MUTEX_INIT(r) { PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP, (r) }
#else
#define MUTEX_INIT(r) { PTHREAD_MUTEX_INITIALIZER, (r) }
#endif

void lock(mutex *l);
void unlock(mutex *l);
// After fork, in the child: releases a lock the fork handler took.
void lock_reinit_child(mutex *l);

// A spinlock on a plain int, so it can sit in public structs (gm_mutex,
// gm_waitgroup) and in channels: for the scheduler's and channels' critical
// sections, a few dozen instructions long. Not ranked: nothing is taken
// under one except another spin lock in a fixed order (an API timer, a
// channel, the list of workers, a worker; runtime2.h) and gm_malloc. The slow path yields the CPU after a while so a
// preempted holder can finish.
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif
// A thread-local read by code that may run on either side of a switch.
// A movable coroutine (a stack of its own) that parks on one worker may
// resume on another's thread, but compilers assume a function stays on its
// thread: on AArch64 GCC and clang read the thread pointer (tpidr_el0) once
// per function, after inlining, and reuse it after calls, so a read after
// the park would find the first thread's variable (its worker, its
// mcache). TLS(var) reads the thread pointer afresh; the offset of var
// from it is the same in every thread. On x86-64 every access goes
// through %fs, always this thread's: nothing to do.
#if defined(__aarch64__)
static inline char *threadPointerNow(void)
{
    char *tp;
    __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp)::"memory"); // never reused, never moved across a call
    return tp;
}
#define TLS(var) \
    (*(__typeof__(&(var)))(threadPointerNow() + ((char *)&(var) - (char *)__builtin_thread_pointer())))
#else
#define TLS(var) (var)
#endif

void spin_lock_slow(int *l);
static inline void spin_lock(int *l)
{
    if (GM_LIKELY(!__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)))
        return;
    spin_lock_slow(l);
}
static inline void spin_unlock(int *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

// ------------------------------------------------------------------- heap
//
// The heap's types and prototypes have headers of their own, one concept
// each, named after Go's files: mheap.h (spans and their bitmaps, arenas,
// fixalloc and persistentalloc, the page heap), mcentral.h and mcache.h.
// They are included here, so every file reaches them through this header;
// what the malloc files share among themselves is malloc.h.
#include "mheap.h"
#include "mcentral.h"
#include "mcache.h"

// --------------------------------------------------------------- options

// Run-time knobs read once from the environment (runtime1.c).
typedef struct debugVars {
    int verbose;               // GOMEM_VERBOSE=1: print a line for caller errors
    int stacks;                // GOMEM_DEBUG=stacks
    int stackcheck;            // GOMEM_DEBUG=stackcheck
    int sched;                 // GOMEM_DEBUG=sched
} debugVars;
extern debugVars debug;
extern int runtime_procs; // GOMEM_PROCS (workers of gm_main), 0 if unset
// GOMEM_MAXSTACK: the bytes of each worker's execution stack, so the deepest
// a copied coroutine may go (Go's maxstacksize). Reserved address space,
// touched only as deep as used. Immutable after runtime_init.
extern size_t runtime_maxstack;
#define DefaultMaxStack ((size_t)8 << 20)
#define MaxMaxStack ((size_t)1 << 30) // Go's default limit on 64-bit systems
// GOMEM_EXECSTACKS: how many execution stacks each worker maps for copied
// coroutines (gstack.c's head). Immutable after runtime_init.
extern int runtime_execstacks;
#define DefaultExecStacks 8
#define MaxExecStacks 64
// GOMEM_SECURE=1: the hardened mode (malloc.c, free.c, guardcache.c). Immutable after runtime_init.
extern bool runtime_secure;

// sysmon.c: a forked child has no sysmon thread (mcache.c's fork handler).
void sysmon_atfork_child(void);
// fork (mcache.c's handlers): the list of workers' and the free
// descriptors' locks (proc.c), and the context tree's (context.c), held
// across it and released in parent and child.
void proc_atfork_prepare(void);
void proc_atfork_parent(void);
void context_atfork_prepare(void);
void context_atfork_parent(void);

// Reads GOMEM_* once; cheap after the first call.
void runtime_init(void);

// With GOMEM_VERBOSE set, prints "gomem: " + message for a caller's error.
__attribute__((format(printf, 1, 2))) void callerError(const char *fmt, ...);

// Prints "gomem: warning: " + message, always (bad options, trace errors).
__attribute__((format(printf, 1, 2))) void runtime_warning(const char *fmt, ...);

#include "trace.h"

// Parses "123", "64k", "16m", "1g" into bytes. Returns -1 if malformed.
int parse_bytes(const char *s, uint64_t *out);

#pragma GCC visibility pop
#endif
