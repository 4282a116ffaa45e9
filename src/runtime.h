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
//       < lockRankMcentral < lockRankMheap < lockRankAllm < lockRankPersistent
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
// linux/amd64): 4M entries, 32 MiB of zero-filled .bss of which only the
// pages that name an arena are ever touched. A lookup of any pointer, ours
// or not, is one load and never faults.
#define HeapAddrBits 48
#define ArenaIndexBits (HeapAddrBits - LogHeapArenaBytes)

// The most pages one span may have: the whole 48-bit space, less a margin
// so that page arithmetic cannot overflow.
#define MaxSpanPages (((uintptr_t)1 << (HeapAddrBits - PageShift)) - PagesPerArena)

// Stacks (stack.c). FixedStack and the order count are build-time settings:
// gomem's copied-mode coroutines save stacks of about a hundred bytes when
// parked shallow, so the default minimum is 256 B, not Go's 2 KiB, with
// three more orders so that stacks up to 16 KiB still come from the
// per-thread caches (an idle coroutine: 256 B saved + a 96 B descriptor). A smaller
// FixedStack wastes less per idle coroutine; each extra order costs one more
// cache list and pool list per thread/process and nothing per stack.
#ifndef GM_FIXED_STACK
#define GM_FIXED_STACK 256
#endif
#ifndef GM_STACK_ORDERS
#define GM_STACK_ORDERS 7
#endif
#define FixedStack ((uintptr_t)GM_FIXED_STACK)
#define NumStackOrders GM_STACK_ORDERS
#ifndef GM_STACK_CACHE_SIZE
#define GM_STACK_CACHE_SIZE (32 << 10)
#endif
#define StackCacheSize ((uintptr_t)GM_STACK_CACHE_SIZE)
#define StackSpanPages (StackCacheSize / PageSize)

_Static_assert((FixedStack & (FixedStack - 1)) == 0, "FixedStack must be a power of two");
_Static_assert(FixedStack >= 256, "FixedStack below 256 B makes stack spans too dense");
_Static_assert((FixedStack << (NumStackOrders - 1)) < StackCacheSize,
               "the largest stack order must be smaller than StackCacheSize");
_Static_assert(NumStackOrders <= GM_STACK_ORDERS_MAX, "raise GM_STACK_ORDERS_MAX");
_Static_assert(StackCacheSize % PageSize == 0, "stack spans are whole pages");
_Static_assert((StackCacheSize & (StackCacheSize - 1)) == 0, "StackCacheSize must be a power of two (stacks align to their size)");
_Static_assert((FixedStack << NumStackOrders) >= PageSize, "large stacks must be whole pages");

// ------------------------------------------------------------------ locks

enum lockRank {
    lockRankNone = 0,
    lockRankStackpool,
    lockRankStackLarge,
    lockRankMcentral,
    lockRankMheap,
    lockRankAllm,
    lockRankPersistent, // persistentalloc: a leaf, taken under any other lock
};

typedef struct mutex {
    pthread_mutex_t m;
    enum lockRank rank; // immutable after init
} mutex;

// Adaptive: spins briefly before sleeping. Slow paths hold locks for well
// under a microsecond, so a futex sleep (a syscall each side) costs more
// than the wait; measured on bench/stack churn with 2 threads.
#define MUTEX_INIT(r) { PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP, (r) }

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
} debugVars;
extern debugVars debug;
extern int runtime_procs; // GOMEM_PROCS (workers of gm_main), 0 if unset
// GOMEM_SECURE=1: the hardened mode (malloc.c, free.c, guardcache.c). Immutable after runtime_init.
extern bool runtime_secure;

// Reads GOMEM_* once; cheap after the first call.
void runtime_init(void);

// With GOMEM_VERBOSE set, prints "gomem: " + message for a caller's error.
__attribute__((format(printf, 1, 2))) void callerError(const char *fmt, ...);

// Prints "gomem: warning: " + message, always (bad options, trace errors).
__attribute__((format(printf, 1, 2))) void runtime_warning(const char *fmt, ...);

// ------------------------------------------------------------------ trace
// The event trace (trace.c). A hook costs one load and a branch predicted
// not taken when tracing is off; its arguments are evaluated only when on.
// Build with -DGM_NO_TRACE to compile the hooks out (to measure that cost).
#define TraceVersion 1
typedef struct traceRecord {
    uint64_t ts;      // cputicks() since the trace started (EvClock gives the rate)
    uint8_t ev;       // traceEv
    uint8_t aux;      // per event: span class, stack order, size class
    uint16_t thread;  // the thread's number in this trace
    uint32_t x;       // per event: pages, bytes
    uint64_t y;       // per event: address, coroutine id, bytes
} traceRecord;
_Static_assert(sizeof(traceRecord) == 24, "trace records are 24 bytes");
// Numbers are part of the file format: append only.
enum traceEv {
    EvSpanAlloc = 1,    // aux spanclass, x npages, y base       (heap span)
    EvSpanFree = 2,     // aux spanclass, x npages, y base
    EvStackSpanAlloc = 3, // x npages, y base                   (stack span)
    EvStackSpanFree = 4,  // x npages, y base
    EvScavenge = 5,     // y bytes released to the OS
    EvStackGrow = 6,    // x new saved-stack bytes, y coroutine id (aux: old order)
    EvStackShrink = 7,  // x new saved-stack bytes, y coroutine id
    EvGoCreate = 8,     // y coroutine id
    EvGoPark = 9,       // y coroutine id
    EvGoEnd = 10,       // y coroutine id
    EvSampleRSS = 32,   // y bytes (sampler thread, every interval)
    EvSampleHeapAlloc = 33,
    EvSampleHeapInuse = 34,
    EvSampleHeapReleased = 35,
    EvSampleStackInuse = 36,
    EvSampleStackOrder = 37, // aux order, x size/256, y bytes in use
    EvSampleSavedOrder = 38, // aux order (stack_orders: larger), y saved bytes
    EvSampleCoros = 39,      // x running, y runnable | waiting << 32
    EvClassLive = 48,        // at stop: aux class, x size, y live objects (class 0: y large bytes)
    EvTinyLive = 49,         // at stop: x tiny blocks, y live tiny objects
    EvClassTotal = 50,       // at stop: aux class, x size, y objects ever allocated
    EvClock = 51,            // with each sample: y ns since the start at this record's ticks
};
// CLOCK_MONOTONIC in ns (Go's nanotime): timers, the trace's clock.
static inline uint64_t nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// A cheap timestamp: the time-stamp counter on x86-64 (invariant and
// synchronised across cores on the machines gomem targets; Go's cputicks),
// nanotime elsewhere. Only trace.c uses it.
static inline uint64_t cputicks(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return nanotime();
#endif
}
extern bool trace_on;
void traceEvent(int ev, unsigned aux, uint32_t x, uint64_t y);
#ifdef GM_NO_TRACE
#define TRACE(ev, aux, x, y) ((void)0)
#else
#define TRACE(ev, aux, x, y)                                                                                 \
    do {                                                                                                     \
        if (GM_UNLIKELY(__atomic_load_n(&trace_on, __ATOMIC_RELAXED)))                                       \
            traceEvent((ev), (aux), (x), (y));                                                               \
    } while (0)
#endif

// Parses "123", "64k", "16m", "1g" into bytes. Returns -1 if malformed.
int parse_bytes(const char *s, uint64_t *out);


// Stack allocator internals (stack.c), used by mcache and stats.
void stackcache_clear(mcache *c);
void stackFreeMarkInit(uintptr_t seed);
// A per-process secret mixed with salt (set by runtime_init).
uintptr_t runtime_secret(uintptr_t salt);
void stack_stats(gm_memstats *out);
void stackLarge_releaseAll(void);
const char *stackpool_valid(void);
void stack_atfork_prepare(void);
void stack_atfork_parent(void);
void stack_atfork_child(void);


#pragma GCC visibility pop
#endif
