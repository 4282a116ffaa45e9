// SPDX-License-Identifier: MIT
//
// The event trace's record format and the hooks every file calls (Go:
// trace.go's traceEvent and its event numbers); trace.c writes the file.
// runtime.h includes this header.
#include "runtime.h" // first, outside the guard: runtime.h includes this header in turn
#ifndef GOMEM_TRACE_H
#define GOMEM_TRACE_H
#pragma GCC visibility push(hidden)

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
    EvSampleSched = 40,      // aux 0 busy, 1 spin, 2 idle: y the workers' ns so far (gm_memstats.sched_*_ns)
    EvSampleSchedEvents = 41, // aux 0 steals, 1 of started ones, 2 long runs, 3 sysmon hand-offs,
                              // 4 ready moves, 5 stack lends: y the count so far (gm_memstats.sched_*)
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

// CLOCK_MONOTONIC as of the kernel's last tick (Linux's _COARSE clock;
// elsewhere nanotime itself): a read is a few loads, where nanotime's
// reads the time-stamp counter (4.6 against 32.7 ns on the VM this was
// measured on). It lags nanotime() by at most nanotimeSlack: only for "is
// this deadline surely ahead?" (loopIdle), a precise read deciding when
// it is not sure.
static inline uint64_t nanotimeCoarse(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#else
    return nanotime();
#endif
}
extern uint64_t nanotimeSlack; // set by nanotime_init: twice the coarse clock's tick
void nanotime_init(void);

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

#pragma GCC visibility pop
#endif
