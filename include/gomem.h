// SPDX-License-Identifier: MIT
//
// gomem: Go's runtime memory system for C programs.
//
// Go's heap allocator (size classes, per-thread caches, the tiny
// allocator), used through gm_malloc and its kin or as the program's malloc;
// Go's stack allocator; and on top of them goroutine-style coroutines with
// channels, select, timers and waits for file descriptors.
//
// The one public header. Every function here is thread-safe unless its
// comment says otherwise. Errors follow the C library's habits: a function
// that can fail returns NULL, a zero value or -1 and sets errno (ENOMEM when
// memory or address space ran out, EINVAL for a bad argument). Misuse that
// would corrupt memory (freeing what gomem never gave out, freeing twice)
// prints one line starting "gomem: " to stderr and aborts.
//
// Sections: version; statistics and the scavenger; stacks; heap; tiny;
// coroutines; I/O; channels; timers; contexts (deadlines and cancellation). The man pages (man gomem) are made
// from these comments by tools/mkman.c.
#ifndef GOMEM_H
#define GOMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GM_API __attribute__((visibility("default")))
#else
#define GM_API
#endif

// ---------------------------------------------------------------- version

#define GM_VERSION_MAJOR 0
#define GM_VERSION_MINOR 1
#define GM_VERSION_PATCH 0

// "0.1.0" and the build settings, e.g. "0.1.0 FixedStack=256 orders=7 debug=0".
GM_API const char *gm_version(void);

// ------------------------------------------------- statistics, scavenger

// The most stack orders any build may configure (build switch GM_STACK_ORDERS).
#define GM_STACK_ORDERS_MAX 16
// Go's 67 size classes up to 32 KiB, plus class 0 for larger objects.
#define GM_SIZE_CLASSES 68
// Workers listed one by one in gm_memstats.sched_worker (the totals count
// them all).
#define GM_STATS_WORKERS 64

// A snapshot of gomem's memory, in the spirit of Go's runtime.MemStats.
// Bytes unless the name says otherwise. Go's field name is in brackets.
// Identities that hold in every snapshot:
//   heap_sys      == heap_inuse + heap_idle
//   heap_idle     >= heap_released
//   stack_inuse   == sum over orders of (stack_order[o].inuse +
//                    stack_order[o].cached + stack_order[o].pooled)
//                    + stack_large_inuse + stack_large_cached
//   sys           == heap_sys + stack_inuse + meta_sys
typedef struct gm_memstats {
    uint64_t sys;               // [Sys] all bytes gomem committed from the OS
    uint64_t heap_sys;          // [HeapSys] pages of the page heap not used by stacks
    uint64_t heap_inuse;        // [HeapInuse] bytes in in-use heap spans
    uint64_t heap_idle;         // [HeapIdle] bytes in free spans
    uint64_t heap_released;     // [HeapReleased] free bytes given back to the OS
    uint64_t stack_inuse;       // [StackInuse] bytes in stack (manual) spans
    uint64_t meta_sys;          // [MSpanSys+OtherSys] gomem's own metadata
    uint64_t arena_reserved;    // address space reserved for arenas
    uint64_t nspan_inuse;       // heap spans in use
    uint64_t nspan_manual;      // stack spans in use
    uint64_t nspan_free;        // free spans in the page heap
    uint64_t mmap_calls;        // address-space reservations and metadata maps
    uint64_t mprotect_calls;    // commits and guard pages
    uint64_t madvise_calls;     // decommits (scavenger)
    uint64_t mremap_calls;      // page moves tried (realloc of large objects)
    uint64_t scavenged_bytes;   // total bytes the scavenger ever released
    uint64_t scavenge_retain;   // the scavenger's retained budget (GOMEM_SCAVENGE)

    // Stacks (gm_stackalloc). "inuse": handed out to callers; "cached":
    // in threads' stackcaches; "pooled": free in stackpool spans.
    uint64_t stack_fixed;       // FixedStack: the smallest stack, bytes
    uint64_t stack_orders;      // NumStackOrders in this build
    struct {
        uint64_t size;          // FixedStack << order
        uint64_t inuse;         // bytes handed out
        uint64_t cached;        // bytes in threads' stackcache[order]
        uint64_t pooled;        // bytes free in stackpool[order] spans
        uint64_t nspans;        // spans in stackpool[order] use
    } stack_order[GM_STACK_ORDERS_MAX];
    uint64_t stack_large_inuse; // bytes of large stacks handed out
    uint64_t stack_large_cached;// bytes of large stacks in stackLarge.free[]

    // Heap objects (gm_malloc & co.). Object bytes are the rounded-up sizes
    // (the size class, or whole pages for objects over 32 KiB).
    //   heap_alloc   == sum over classes c >= 1 of
    //                   by_size[c].size * (by_size[c].mallocs - by_size[c].frees)
    //                   + large_inuse + tiny_block_bytes
    //   mallocs      == sum of by_size[c].mallocs + tiny_allocs (frees alike)
    //   heap_objects == mallocs - frees
    //   heap_alloc   <= heap_inuse
    uint64_t heap_alloc;        // [HeapAlloc] bytes of allocated objects
    uint64_t heap_objects;      // [HeapObjects] allocated objects
    uint64_t mallocs;           // [Mallocs] objects ever allocated
    uint64_t frees;             // [Frees] objects ever freed
    uint64_t large_inuse;       // bytes of allocated objects over 32 KiB
    uint64_t realloc_moves;     // large reallocs whose pages moved to the new object, not copied
                                // (each also counts as a malloc and a free)
    uint64_t realloc_moved_bytes; // their bytes
    uint64_t nspan_partial;     // heap spans in mcentral partial lists
    uint64_t nspan_full;        // heap spans in mcentral full lists
    // The tiny allocator (objects below max_tiny_size packed into blocks).
    uint64_t max_tiny_size;     // current setting: 0 (off), 16 or 32
    uint64_t tiny_allocs;       // tiny objects ever allocated
    uint64_t tiny_frees;        // tiny objects ever freed
    uint64_t tiny_blocks;       // blocks holding a live tiny object, or current, or holding a thread's cached hole
    uint64_t tiny_block_bytes;  // their bytes
    uint64_t tiny_unpacked_bytes; // bytes the tiny objects ever allocated would have taken unpacked
    uint64_t tiny_hole_allocs;  // of tiny_allocs, those placed in bytes freed inside a live block
    struct {
        uint64_t size;          // object size of the class (0: class 0, objects over 32 KiB)
        uint64_t mallocs;
        uint64_t frees;
    } by_size[GM_SIZE_CLASSES]; // [BySize] indexed by size class

    // Coroutines (process-wide).
    uint64_t coro_created;      // coroutines ever started
    uint64_t coro_ended;        // coroutines that returned
    uint64_t coro_stack_grows;  // copied mode: saved-stack buffer doublings
    uint64_t coro_stack_shrinks;// copied mode: halvings (under a quarter used)
    uint64_t coro_saved_bytes;  // copied mode: bytes of the saved-stack buffers held now
    uint64_t coro_running;      // running now (at most one per worker)
    uint64_t coro_runnable;     // started or not, waiting for their worker to run them
    uint64_t coro_waiting;      // parked: channel, select, mutex, waitgroup, sleep, I/O, gm_park
                                // (one readied from another thread counts here until its
                                // worker takes it from its inbox)
    // copied mode: bytes of saved-stack buffers held now, by stack order
    // (buffer FixedStack << i); the entry at stack_orders counts larger ones.
    uint64_t coro_saved_by_order[GM_STACK_ORDERS_MAX + 1];
    uint64_t coro_exec_stacks;  // copied mode: execution stacks mapped now, all workers
                                // (GOMEM_EXECSTACKS per worker at most, and pinned ones)
    uint64_t coro_frame_saves;  // copied mode: frames saved because another coroutine took
                                // their execution stack (0 while the working set fits)
    uint64_t coro_pins;         // copied mode: execution stacks made a coroutine's own, because
                                // an address in its frames was handed to another coroutine
    // The scheduler (process-wide).
    uint64_t sched_steals;      // coroutines an idle worker took from another's queue
    uint64_t sched_steals_started; // of those, started ones: movable ones (dedicated, pinned), and
                                // copied ones that moved with their execution stack
    uint64_t sched_stack_lends; // execution stacks a busy worker gave an idle one, with the
                                // copied coroutines bound to them (all runnable)
    uint64_t sched_long_runs;   // times a coroutine ran 10 ms or more without switching while
                                // other workers ran (sysmon; GOMEM_DEBUG=sched names them)
    uint64_t sched_handoffs;    // idle workers sysmon woke to take such a worker's coroutines
    uint64_t sched_ready_moves; // parked movable coroutines readied by a coroutine of another worker
                                // and moved to that worker (Go's ready: a pair that talks stays
                                // on one worker instead of waking each other's)
    // Dedicated stacks: an ended coroutine's stack keeps its guard page and
    // waits for the next dedicated coroutine of its size, in its thread's
    // cache (up to 8 MiB) or a process-wide list, which the scavenger's
    // budget bounds (GOMEM_SCAVENGE, GOMEM_SCAVENGE_DELAY: stacks left
    // unused past them give their pages back, and keep their guard and
    // address range for the next ones) and gm_scavenge empties. Their bytes
    // count in the stack figures above as in use.
    uint64_t dedicated_cached;  // bytes of ended dedicated stacks kept for reuse
    uint64_t dedicated_guards;  // guard pages ever installed (stacks that came from no cache)
    uint64_t dedicated_canaries;// stacks ever given the canary instead of a guard: too small
                                // (under two OS pages), or no guard could be made
    // Where the workers' time goes, ns, summed over every worker of every
    // gm_main (running or returned): for each worker,
    //   busy + spin + idle == its time in gm_main so far
    // and busy >= the CPU time its thread spent in coroutines meanwhile.
    uint64_t sched_busy_ns;     // running coroutines (and the scheduler's own steps between them)
    uint64_t sched_spin_ns;     // with nothing to run: spinning, trying to steal, before it slept
    uint64_t sched_idle_ns;     // asleep (in the poller) with nothing to run
    uint64_t sched_workers;     // workers in a running gm_main now, all groups; the first
                                // GM_STATS_WORKERS of them are in sched_worker[]
    struct {
        uint64_t worker;        // its index in its gm_main (0: the thread that called it)
        uint64_t busy_ns;       // the three times above, for this worker alone
        uint64_t spin_ns;
        uint64_t idle_ns;
    } sched_worker[GM_STATS_WORKERS];
} gm_memstats;

// Fills *out. Cheap enough to call often (takes the heap lock briefly and
// sums per-thread counters). Returns 0, or -1 with EINVAL if out is NULL.
GM_API int gm_stats(gm_memstats *out);

// Writes the statistics as one JSON object. Returns 0, or -1 and errno.
GM_API int gm_stats_json(FILE *f);

// The event trace (GOMEM_TRACE=file starts one at program start and stops it
// at exit): span allocations and frees, scavenges, coroutine creation, parks,
// ends and saved-stack grows and shrinks, with timestamps, plus samples of
// RSS, heap and stack figures and the workers' time (sched_*_ns) every
// GOMEM_TRACE_INTERVAL ms (default 10).
// `gomem-info report FILE -o report.html` plots it. One trace per process at
// a time; a forked child does not trace. gm_trace_start returns 0, or -1 and
// errno (EBUSY: a trace is on; EINVAL: bad path; open(2)'s errors).
// gm_trace_stop writes what is buffered and closes the file: 0, or -1 and
// errno (EINVAL: no trace is on; EIO: a write failed, warned about on stderr).
// Do not call them concurrently with each other.
GM_API int gm_trace_start(const char *path);
GM_API int gm_trace_stop(void);

// Heap profiling (Go's heap profile; GOMEM_PROF=file starts it at program
// start and writes the file at exit): a sample of the allocations, one
// every rate bytes on average (Go's method: an exponentially distributed
// interval; 0 takes GOMEM_PROF_RATE's default, 512 KiB; 1 records every
// allocation), each with its call stack, kept as Go's four views (objects
// and bytes allocated, and still in use), scaled to unbiased estimates.
// The file is pprof's gzip-compressed profile.proto: `go tool pprof -top
// PROGRAM FILE` names the functions and lines from the program's symbols;
// `gomem-info pprof FILE` prints the top call sites without Go. Off by
// default; on or off, it costs a small allocation one untaken branch. A
// running thread takes up a start, stop or new rate at its next sample
// point of each size class (at once in the calling thread; see
// docs/profiling.md).
// gm_prof_start returns 0, or -1 and errno (EBUSY: already on; EINVAL: no
// path; open(2)'s errors: the file cannot be written, found at once).
// gm_prof_dump writes the profile so far to the file (0, or -1 and errno:
// EINVAL when off, or write(2)'s and rename(2)'s); gm_prof_stop writes it
// and stops sampling (the same). A file is written whole or not at all (a
// temporary renamed over it). Objects sampled before a stop stay tracked;
// a later start adds to the same profile (each record scaled by the rate
// it was sampled at). Rate 1 unwinds the stack at every allocation: for
// tests and small runs. A forked child keeps sampling,
// but only the process that started profiling writes the file at exit.
// Thread-safe; threads that exit keep their samples.
GM_API int gm_prof_start(const char *path, size_t rate);
GM_API int gm_prof_dump(void);
GM_API int gm_prof_stop(void);

// What gm_prof_write writes.
enum {
    GM_PROF_HEAP = 1,            // the heap profile (as gm_prof_dump), profiling on or off
    GM_PROF_COROUTINES = 2,      // every coroutine with its call stack, in pprof's format (Go's goroutine profile)
    GM_PROF_COROUTINES_TEXT = 3, // the same as text: a paragraph per coroutine
};

// Writes a profile of kind to path, whole or not at all: 0, or -1 and errno
// (EINVAL: bad kind or path; open(2)'s, write(2)'s, rename(2)'s errors).
// The coroutine profile lists each coroutine's id, name, state, wait
// reason, how long it has waited and its stack bytes, with its call stack:
// a parked coroutine's is followed along its frame pointers (code built
// without them shows the frame where it parked only), read from its saved
// copy in copied mode. Thread-safe.
GM_API int gm_prof_write(const char *path, int kind);

// Returns every free page to the OS now (Go's debug.FreeOSMemory, minus the
// GC). Flushes the calling thread's caches first. Returns the bytes released.
GM_API size_t gm_scavenge(void);

// Walks every shared structure (page heap, central lists, stack pools, the
// hardened mode's guard cache) and the calling thread's own (its caches,
// and its worker's run queues and timers when it runs coroutines), and
// checks their invariants. Returns NULL when all hold, else a description of the
// first problem (a static string, valid until the next call). Takes the
// locks one at a time; meant for tests and debugging, not hot paths.
GM_API const char *gm_debug_check(void);

// Gives the calling thread's caches (stack cache, heap spans) back to
// the shared pools. Threads do this by themselves when they exit.
GM_API void gm_thread_flush(void);

// ----------------------------------------------------------------- stacks

// A stack: the bytes [lo, hi). hi - lo is a power of two, at least
// FixedStack (gm_memstats.stack_fixed). lo is aligned to the size for sizes
// below StackCacheSize and to 16 bytes (in practice a page) always.
// A zero gm_stack ({0, 0}) means failure.
typedef struct {
    uintptr_t lo, hi;
} gm_stack;

// Allocates a stack of at least n bytes (rounded up to a power of two at
// least FixedStack). n == 0: {0,0} and EINVAL; n too large or out of memory:
// {0,0} and ENOMEM. The memory is not zeroed.
GM_API gm_stack gm_stackalloc(size_t n);

// Frees a stack from gm_stackalloc. A range gomem did not hand out, a wrong
// size, or a second free of the same stack: message and abort.
// Freeing {0,0} does nothing.
GM_API void gm_stackfree(gm_stack s);

// ------------------------------------------------------------------- heap
//
// Go's heap allocator with explicit free: the C library's contracts (C17,
// C23 and POSIX), from any thread. A free of memory from another thread is
// lock-free. Sizes over PTRDIFF_MAX, and products or sums that overflow,
// fail with ENOMEM. free of a pointer gomem did not return (or returned
// inside a stack), of an interior pointer, or a second free: message naming
// the pointer, and abort.

#if defined(__GNUC__)
#define GM_MALLOC_ATTR(...) __attribute__((malloc, warn_unused_result, __VA_ARGS__))
#else
#define GM_MALLOC_ATTR(...)
#endif

// malloc: at least n bytes, aligned for any object that fits in n bytes
// (the largest power of two <= n, at most 16). gm_malloc(0) returns a unique
// pointer that may be freed. NULL + ENOMEM when out of memory.
GM_API void *gm_malloc(size_t n) GM_MALLOC_ATTR(alloc_size(1));
// free: NULL is a no-op.
GM_API void gm_free(void *p);
// calloc: n * size zeroed bytes; NULL + ENOMEM when the product overflows.
GM_API void *gm_calloc(size_t n, size_t size) GM_MALLOC_ATTR(alloc_size(1, 2));
// realloc: p NULL acts as malloc; n == 0 frees p and returns NULL (glibc's
// behaviour); on failure p is untouched and NULL + ENOMEM is returned.
// Keeps p when n still fits its size class and uses over half of it. A
// small object that grows by less than a sixteenth of its size, and a
// large object realloc has moved to grow before, get half again the bytes
// asked for when they move (gm_malloc_usable_size counts them), so a
// buffer grown step by step is not copied at every step.
GM_API void *gm_realloc(void *p, size_t n) __attribute__((warn_unused_result, alloc_size(2)));
// reallocarray: realloc(p, n * size) with the product checked (ENOMEM).
GM_API void *gm_reallocarray(void *p, size_t n, size_t size)
    __attribute__((warn_unused_result, alloc_size(2, 3)));
// aligned_alloc: align a power of two (else NULL + EINVAL), any size.
GM_API void *gm_aligned_alloc(size_t align, size_t n) GM_MALLOC_ATTR(alloc_size(2), alloc_align(1));
// posix_memalign: align a power of two and a multiple of sizeof(void *),
// else EINVAL; returns 0, EINVAL or ENOMEM (errno is not set, as POSIX says).
GM_API int gm_posix_memalign(void **out, size_t align, size_t n);
// memalign: as aligned_alloc, but an alignment that is not a power of two is
// rounded up to one (glibc's behaviour).
GM_API void *gm_memalign(size_t align, size_t n) GM_MALLOC_ATTR(alloc_size(2));
// ------------------------------------------------------------------- tiny
//
// Go's tiny allocator: requests below max_tiny_size bytes
// (gm_malloc_bytes, gm_strdup; gm_malloc and gm_calloc only those of at
// most 4 bytes, as C's alignment gives a larger one 8 bytes of its block,
// which the 8-byte class gives it too)
// share blocks of that size, carved by the calling thread; a block goes
// back when all its objects are freed (from any thread), and bytes freed
// inside a block that lives on are reused by the freeing thread. A tiny
// object's usable size never reaches another object, but may grow by
// padding a later object skipped.

// Sets and reads max_tiny_size. Settings: 0 (off),
// 8 (same as off: no packing), 16 (default) or 32. Returns 0, or -1 and
// EINVAL for another value. GOMEM_MAXTINY sets it at start.
GM_API int gm_set_max_tiny_size(size_t n);
GM_API size_t gm_get_max_tiny_size(void);
// Memory for bytes (strings, byte buffers): aligned only as the size's own
// low bits ask (Go's tiny rule: 8 if n % 8 == 0, else 4, 2 or 1), so tiny
// requests pack tighter than malloc's C alignment allows.
GM_API void *gm_malloc_bytes(size_t n) GM_MALLOC_ATTR(alloc_size(1));
// Copies of C strings: chars, so aligned to 1 (tighter than Go's rule).
GM_API char *gm_strdup(const char *s) __attribute__((malloc, warn_unused_result));
GM_API char *gm_strndup(const char *s, size_t n) __attribute__((malloc, warn_unused_result));

// The bytes usable at p (>= the size asked for); 0 for NULL.
GM_API size_t gm_malloc_usable_size(void *p);
// C23 free_sized: size must be the size p was allocated with (malloc,
// calloc, realloc); a size that cannot be p's aborts with a message.
GM_API void gm_free_sized(void *p, size_t size);
// C23 free_aligned_sized: for memory from aligned_alloc (align, size).
GM_API void gm_free_aligned_sized(void *p, size_t align, size_t size);

// ------------------------------------------------------------- coroutines
//
// Goroutine-style coroutines (Go: proc.go). gm_main runs a scheduler with
// gm_set_procs() workers (GOMEM_PROCS, default the number of CPUs): the
// calling thread and procs-1 threads it starts, each with a run queue. A
// new coroutine goes on its creator's worker; an idle worker steals
// coroutines that have not started yet, and runnable started ones whose
// frames are on a stack of their own (dedicated, or pinned copied ones:
// below). A started copied coroutine moves only with its execution stack:
// a busy worker lends an idle one a stack every coroutine of which is
// runnable, with them (a burst woken at once spreads; coroutines that
// park between messages stay). A coroutine that
// moves resumes on another thread: a thread-local it reads after a call
// that parks is that thread's, and on AArch64 GCC and clang may go on
// using the address they computed before the call (they read the thread
// pointer once per function), so read thread-locals that such a coroutine
// uses in a separate noinline function (errno is one already). Each
// coroutine keeps its own floating-point controls (rounding mode,
// flush-to-zero, exception masks; a new one starts with the defaults); the
// sticky exception flags that fetestexcept reads are the thread's, shared
// by the coroutines that run on it. Several threads may each run their
// own gm_main.
// Scheduling is cooperative: a coroutine runs until it parks, yields or
// returns. A CPU loop without gm_yield, or a plain blocking system call
// (read on a blocking fd, sleep, a mutex of another library), holds its
// worker: that worker's other coroutines wait, while other workers go on
// and take its stealable ones (a background monitor, Go's sysmon, wakes an
// idle worker for them once such a run passes 10 ms; GOMEM_DEBUG=sched
// names the coroutine). Use gm_read/gm_write/gm_sleep, which park instead.
// Two stack modes:
//   GM_STACK_COPIED (default): each worker keeps up to GOMEM_EXECSTACKS (8)
//     execution stacks (GOMEM_MAXSTACK bytes each: 8 MiB unless set, at
//     most 1 GiB; address space, touched only as deep as used; guard page
//     below). A coroutine runs on one of them, chosen when it starts; up to
//     that many per worker switch without copying, at any depth. When more
//     are alive, the one that ran least recently has its used part saved
//     to a buffer from gm_stackalloc that doubles when too small and halves
//     when under a quarter is used (Go's contiguous-stack policy), and
//     copied back when it resumes. While its frames are saved, no pointer
//     into them may be used; an address in its frames given as gm_go's
//     argument or sent on a channel of pointer-sized elements pins them
//     instead (they never move again), or aborts naming the coroutine when
//     others share its stack (docs/stack-or-heap.md).
//   GM_STACK_DEDICATED: a fixed stack of its own (stack_size bytes), C's
//     usual pointer rules; overflow hits a guard page (stacks of two pages or
//     more) or breaks a canary checked at every switch (smaller stacks; a
//     frame that skips the canary's word goes unseen: the dynamic linker's
//     resolver, run at a program's first call of a lazily bound function,
//     takes about 3 KiB where AVX-512 is. gomem binds its own calls at load;
//     give stacks that call into other libraries 8 KiB, or link with -z now).
//     An ended coroutine's stack keeps its guard for the next dedicated
//     coroutine of its size: no system call per coroutine once warm
//     (gm_memstats.dedicated_*). Where Linux has guard regions (6.13+) a
//     guard takes no kernel mapping, so millions may be alive at once;
//     elsewhere each takes two, and past a quarter of vm.max_map_count
//     guards (16k by default) new stacks get the canary.
// Stack overflow, readying a coroutine that ended, parking outside a
// coroutine: a message naming the coroutine, and abort.
// A gm_g * names its coroutine until the coroutine ends. Its descriptor is
// then reused for a later coroutine (with a new gm_id), never freed: the
// pointer stays readable, but gm_ready, gm_id and the like act on whatever
// coroutine holds the descriptor now. To wait for a coroutine's end, keep
// its id with the pointer and call gm_join, which tells the two apart.
typedef struct gm_g gm_g;
typedef struct gm_ctx gm_ctx; // a context: a deadline and cancellation (section "contexts")
typedef enum { GM_STACK_COPIED = 0, GM_STACK_DEDICATED = 1 } gm_stack_mode;
typedef struct {
    gm_stack_mode mode;
    size_t stack_size;  // dedicated: bytes (rounded up to a power of two); 0: 64 KiB. From
                        // 16 KiB, up to 1/16 of it (3.5 KiB at most) staggers where frames start
                        // (stacks switching at one page offset slow each other: 4K aliasing)
    const char *name;   // for messages; not copied, must outlive the coroutine
    int worker;         // 0: the creator's worker (idle workers may steal it before it
                        // starts); k > 0: worker (k-1) mod procs of the running gm_main, for good
} gm_go_options;

// Starts fn(arg) as a coroutine on the calling worker (or, outside gm_main,
// queued for the thread's next gm_main); it runs when a scheduler gets to
// it. NULL and ENOMEM when out of memory, EINVAL for a NULL fn.
GM_API gm_g *gm_go(void (*fn)(void *), void *arg);
GM_API gm_g *gm_go_opts(void (*fn)(void *), void *arg, const gm_go_options *opts);
// gm_go_opts (opts may be NULL), storing the new coroutine's gm_id in *id
// (if id is not NULL) before the coroutine can run: with the pointer, the
// pair gm_join needs. (gm_id(g) after gm_go returned may already be another
// coroutine's when an idle worker stole g, ran it to its end and reused the
// descriptor.) Returns and fails as gm_go_opts.
GM_API gm_g *gm_go_id(void (*fn)(void *), void *arg, const gm_go_options *opts, uint64_t *id);
// Runs fn(arg) as a coroutine, and the scheduler's workers until every
// coroutine has ended. Returns 0, or -1 and ENOMEM/EAGAIN (no memory or no
// threads for the workers). When every coroutine is parked and no timer,
// file descriptor or thread can wake one: "all coroutines are asleep -
// deadlock!", the list of them, and abort (Go's rule). A plain thread
// counts as one that may wake a coroutine from its first call of a sync
// type's function, gm_join or gm_ready until it exits (as Go counts its
// threads in cgo calls); before that, it does not.
GM_API int gm_main(void (*fn)(void *), void *arg);
// Workers for the next gm_main (1..1024; 0 only reads it). Returns the
// previous value, or -1 and EINVAL.
GM_API int gm_set_procs(int n);
// Lets the other runnable coroutines run; returns when this one is resumed.
GM_API void gm_yield(void);
// The running coroutine, or NULL outside one.
GM_API gm_g *gm_self(void);
// Parks the running coroutine until someone calls gm_ready on it.
GM_API void gm_park(void);
// Makes a parked coroutine runnable again; from any thread.
GM_API void gm_ready(gm_g *g);
// Parks the running coroutine for at least ns nanoseconds (a timer heap
// per worker; a worker's thread sleeps only when no coroutine can run).
// Outside a coroutine, the thread sleeps. gm_ready wakes a sleeper early.
GM_API void gm_sleep(uint64_t ns);
// The coroutine's id: unique in the process, never 0, increasing in the
// order a worker creates its coroutines (each worker takes ids 16 at a
// time, as Go's Ps do: two workers' ids interleave, with gaps); 0 for
// NULL. Of a descriptor
// whose coroutine ended: that one's id until the descriptor is reused, then
// the new coroutine's.
GM_API uint64_t gm_id(const gm_g *g);
// Waits (parks, or blocks a plain thread) until the coroutine that g named
// when gm_id(g) was id has ended;
// returns at once if it has (also when g has since been reused for another
// coroutine: its id differs). Any number of coroutines may join one. Get
// the pair from gm_go_id, or from gm_self and gm_id inside the coroutine.
// A coroutine joining itself, or g NULL: message and abort.
GM_API void gm_join(gm_g *g, uint64_t id);
// gm_join until a deadline, or until a context is done (section
// "contexts"): 0 once the coroutine ended, or -1 and ETIMEDOUT, or the
// context's error (ECANCELED, ETIMEDOUT).
GM_API int gm_join_until(gm_g *g, uint64_t id, int64_t deadline_ns);
GM_API int gm_join_ctx(gm_g *g, uint64_t id, gm_ctx *ctx);

// Sync primitives that park instead of block (Go: sync.WaitGroup,
// sync.Mutex, sync.RWMutex, sync.Once, sync.Cond, and a counting
// semaphore like golang.org/x/sync/semaphore), for coroutines on any
// worker and for plain threads: a coroutine that must wait parks, a plain
// thread blocks (on a futex), and either may wake the other. Waiters are
// served in order, and a woken waiter owns what it waited for (the lock,
// the units). Zero-initialise ({0}) or use the _INIT macros; no destroy
// needed when no one waits. Misuse that Go reports with a panic (an unlock
// of an unlocked mutex, a counter below zero) prints a message naming the
// object and aborts. The _until and _ctx variants give up at a deadline or
// when a context is done (section "contexts"), owning nothing then.

// A queue of parked coroutines inside the sync types (internal).
typedef struct {
    gm_g *head, *tail;
} gm_waitq;
typedef struct {
    long count;
    gm_waitq waiters;  // internal
    int lk;            // internal
} gm_waitgroup;
#define GM_WAITGROUP_INIT { 0, { 0, 0 }, 0 }
// Adds delta (may be negative); a count below zero: message and abort.
GM_API void gm_waitgroup_add(gm_waitgroup *wg, long delta);
// gm_waitgroup_add(wg, -1).
GM_API void gm_waitgroup_done(gm_waitgroup *wg);
// Waits (parks, or blocks a plain thread) until the count is zero.
GM_API void gm_waitgroup_wait(gm_waitgroup *wg);
// gm_waitgroup_wait until a deadline, or until ctx is done: 0 (the count
// reached zero), or -1 and ETIMEDOUT, or ctx's error.
GM_API int gm_waitgroup_wait_until(gm_waitgroup *wg, int64_t deadline_ns);
GM_API int gm_waitgroup_wait_ctx(gm_waitgroup *wg, gm_ctx *ctx);

typedef struct {
    int locked;
    gm_waitq waiters;  // FIFO (internal)
    int lk;            // internal
} gm_mutex;
#define GM_MUTEX_INIT { 0, { 0, 0 }, 0 }
// Locks m; while another holds it, waits (parks, or blocks a plain
// thread) until an unlock hands it over.
GM_API void gm_mutex_lock(gm_mutex *m);
// gm_mutex_lock until a deadline, or until ctx is done: 0 (locked), or -1
// and ETIMEDOUT, or ctx's error (not locked).
GM_API int gm_mutex_lock_until(gm_mutex *m, int64_t deadline_ns);
GM_API int gm_mutex_lock_ctx(gm_mutex *m, gm_ctx *ctx);
GM_API int gm_mutex_trylock(gm_mutex *m); // 1 locked, 0 busy
// Hands the lock to the longest waiter, if any. Unlock of an unlocked
// mutex: message and abort.
GM_API void gm_mutex_unlock(gm_mutex *m);

// A reader/writer lock (Go's sync.RWMutex): any number of readers or one
// writer. Writers do not starve: once a writer waits, new readers wait
// behind it; its Unlock admits every reader that queued meanwhile before
// the next writer. So a reader must not take a read lock it already holds
// (a writer arriving between the two would deadlock both), as in Go.
// Either lock may be released by another coroutine than the one that took
// it.
typedef struct {
    int writer;        // internal: 1 while a writer holds it
    long readers;      // internal: readers holding it
    gm_waitq readq;    // internal: readers waiting behind a writer
    gm_waitq writeq;   // internal: writers waiting, FIFO
    int lk;            // internal
} gm_rwmutex;
#define GM_RWMUTEX_INIT { 0, 0, { 0, 0 }, { 0, 0 }, 0 }
// Takes a read lock; waits while a writer holds rw or waits for it.
GM_API void gm_rwmutex_rlock(gm_rwmutex *rw);
// gm_rwmutex_rlock until a deadline, or until ctx is done: 0 (read-locked),
// or -1 and ETIMEDOUT, or ctx's error (not locked).
GM_API int gm_rwmutex_rlock_until(gm_rwmutex *rw, int64_t deadline_ns);
GM_API int gm_rwmutex_rlock_ctx(gm_rwmutex *rw, gm_ctx *ctx);
// Takes a read lock if that needs no wait: 1 taken, 0 not.
GM_API int gm_rwmutex_tryrlock(gm_rwmutex *rw);
// Releases a read lock; the last reader out hands rw to the longest
// waiting writer. A read unlock of an rwmutex no reader holds: message
// and abort.
GM_API void gm_rwmutex_runlock(gm_rwmutex *rw);
// Takes the write lock; waits while readers or a writer hold rw.
GM_API void gm_rwmutex_lock(gm_rwmutex *rw);
// gm_rwmutex_lock until a deadline, or until ctx is done: 0 (write-locked),
// or -1 and ETIMEDOUT, or ctx's error (not locked; readers that queued
// behind this writer go ahead as if it had never come).
GM_API int gm_rwmutex_lock_until(gm_rwmutex *rw, int64_t deadline_ns);
GM_API int gm_rwmutex_lock_ctx(gm_rwmutex *rw, gm_ctx *ctx);
// Takes the write lock if that needs no wait: 1 taken, 0 not.
GM_API int gm_rwmutex_trylock(gm_rwmutex *rw);
// Releases the write lock: to every waiting reader if any, else to the
// longest waiting writer. An unlock of an rwmutex no writer holds: message
// and abort.
GM_API void gm_rwmutex_unlock(gm_rwmutex *rw);

// Go's sync.Once.
typedef struct {
    int done;          // internal: 0, running (1) or done (2)
    gm_waitq waiters;  // internal
    int lk;            // internal
} gm_once;
#define GM_ONCE_INIT { 0, { 0, 0 }, 0 }
// Runs fn(arg) if no call on once has run it yet: exactly once per once.
// A call while fn runs waits until fn has returned, so when gm_once_do
// returns fn has completed. After the first call returned, a call is one
// atomic load. fn must not call gm_once_do on the same once (it would wait
// for itself). A NULL fn: message and abort.
GM_API void gm_once_do(gm_once *once, void (*fn)(void *), void *arg);

// A condition variable (Go's sync.Cond) used with a gm_mutex: a waiter
// holds the mutex, gm_cond_wait releases it while waiting and takes it
// again before returning. As with any condition variable, wake-ups are
// hints: wait in a loop that checks the condition.
typedef struct {
    gm_mutex *m;       // internal: the mutex its waiters hold
    gm_waitq waiters;  // internal, FIFO
    int lk;            // internal
} gm_cond;
#define GM_COND_INIT { 0, { 0, 0 }, 0 }
// Unlocks m, waits until gm_cond_signal or gm_cond_broadcast wakes this
// waiter, and locks m again. m unlocked when called (gomem cannot tell
// which coroutine holds it, only that someone does), or another mutex than
// the one the cond's other waiters hold: message and abort.
GM_API void gm_cond_wait(gm_cond *c, gm_mutex *m);
// gm_cond_wait until a deadline, or until ctx is done (pthread_cond_timedwait's
// rule): 0 (woken), or -1 and ETIMEDOUT, or ctx's error; m is locked again
// either way (a deadline already past, or ctx already done, returns
// without releasing it). Misuse as gm_cond_wait.
GM_API int gm_cond_wait_until(gm_cond *c, gm_mutex *m, int64_t deadline_ns);
GM_API int gm_cond_wait_ctx(gm_cond *c, gm_mutex *m, gm_ctx *ctx);
// Wakes the longest waiter, if any. Holding the mutex is allowed, not
// required.
GM_API void gm_cond_signal(gm_cond *c);
// Wakes every waiter.
GM_API void gm_cond_broadcast(gm_cond *c);

// A counting semaphore (golang.org/x/sync/semaphore's Weighted, without a
// fixed size): count units are available; acquire takes n, release gives n
// back. Waiters are served first come, first served: one waiting for many
// units holds back later ones asking for fewer, so none starves.
typedef struct {
    long count;        // units available (read it only for reports)
    gm_waitq waiters;  // internal, FIFO
    int lk;            // internal
} gm_sema;
#define GM_SEMA_INIT(n) { (n), { 0, 0 }, 0 }
// Takes n units, waiting until they are available and every earlier waiter
// is served (n == 0 returns at once). A negative n, or a negative count
// (GM_SEMA_INIT(-1)): message and abort.
GM_API void gm_sema_acquire(gm_sema *s, long n);
// gm_sema_acquire until a deadline, or until ctx is done: 0 (the n units
// taken), or -1 and ETIMEDOUT, or ctx's error (none taken; the waiters it
// held back are served). Misuse as gm_sema_acquire.
GM_API int gm_sema_acquire_until(gm_sema *s, long n, int64_t deadline_ns);
GM_API int gm_sema_acquire_ctx(gm_sema *s, long n, gm_ctx *ctx);
// Takes n units if that needs no wait: 1 taken, 0 not. A negative n or
// count: message and abort.
GM_API int gm_sema_tryacquire(gm_sema *s, long n);
// Gives n units back, waking the waiters they satisfy in order. A negative
// n, or a count that would overflow a long: message and abort.
GM_API void gm_sema_release(gm_sema *s, long n);

// ------------------------------------------------------------------ I/O
//
// Waiting for file descriptors parks the coroutine, not the thread (epoll,
// one instance per worker; Go's netpoll). Outside a coroutine these block
// the thread (poll(2)), so the same code runs on a plain thread.
enum { GM_FD_READ = 1, GM_FD_WRITE = 2 };
// Waits until fd is ready for events (GM_FD_READ | GM_FD_WRITE). timeout_ns
// < 0: no limit; 0: only checks. Returns the ready events (an error or
// hang-up on fd counts as every event asked for, so the next read or write
// reports it), 0 on timeout, or -1 and errno (EBADF, EINVAL; EEXIST when
// another coroutine of the same worker already waits on fd). A regular
// file is always ready.
GM_API int gm_wait_fd(int fd, int events, int64_t timeout_ns);
// gm_wait_fd until a deadline, or until ctx is done: the ready events, or
// -1 and errno (as gm_wait_fd; ETIMEDOUT; ctx's error). A deadline already
// past, or ctx already done, still reports events ready now. On a plain
// thread (which polls) a cancel is seen only at the deadline.
GM_API int gm_wait_fd_until(int fd, int events, int64_t deadline_ns);
GM_API int gm_wait_fd_ctx(int fd, int events, gm_ctx *ctx);
// read/write/accept/connect that park instead of block. A socket is read
// and written with MSG_DONTWAIT and left as it is; any other fd, and the
// listening or connecting socket of gm_accept and gm_connect, is put in
// non-blocking mode (as Go does with its files); gm_accept's new socket is
// non-blocking and close-on-exec. Return values and errno as the calls.
GM_API ssize_t gm_read(int fd, void *buf, size_t n);
GM_API ssize_t gm_write(int fd, const void *buf, size_t n); // writes all n unless an error
GM_API int gm_accept(int fd, struct sockaddr *addr, socklen_t *len);
GM_API int gm_connect(int fd, const struct sockaddr *addr, socklen_t len);
// The same calls until a deadline (Go's SetDeadline, per call), or until
// ctx is done: -1 and ETIMEDOUT or ctx's error when that comes first, as
// gm_wait_fd_until. gm_write_until and gm_write_ctx return the bytes
// written when some were (a short count, errno set), else -1. A connect
// cut short leaves the socket connecting: close it.
GM_API ssize_t gm_read_until(int fd, void *buf, size_t n, int64_t deadline_ns);
GM_API ssize_t gm_read_ctx(int fd, void *buf, size_t n, gm_ctx *ctx);
GM_API ssize_t gm_write_until(int fd, const void *buf, size_t n, int64_t deadline_ns);
GM_API ssize_t gm_write_ctx(int fd, const void *buf, size_t n, gm_ctx *ctx);
GM_API int gm_accept_until(int fd, struct sockaddr *addr, socklen_t *len, int64_t deadline_ns);
GM_API int gm_accept_ctx(int fd, struct sockaddr *addr, socklen_t *len, gm_ctx *ctx);
GM_API int gm_connect_until(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline_ns);
GM_API int gm_connect_ctx(int fd, const struct sockaddr *addr, socklen_t len, gm_ctx *ctx);

// ---------------------------------------------------------------- channels
//
// Go's channels (Go: chan.go), between coroutines on any worker and plain
// threads: a blocking call parks a coroutine and blocks a plain thread (on
// a futex), and either wakes the other, so a thread pool and coroutines can
// hand work to each other both ways. A thread that used a blocking call
// counts, as for the sync types, as one that may wake coroutines (gm_main).
// Elements are copied in and out (elem_size bytes). A send to a parked
// receiver copies straight into the receiver's variable, even when it lives
// in a copied coroutine's saved stack (Go's sendDirect). Send on a closed
// channel, close of a closed or NULL channel, free of a channel with
// waiters: message and abort.
typedef struct gm_chan gm_chan;
// cap 0: unbuffered. NULL and ENOMEM/EINVAL (elem_size 0 or too large).
GM_API gm_chan *gm_chan_new(size_t elem_size, size_t cap);
// Blocks (parks the coroutine) until the value is taken or buffered.
GM_API void gm_chan_send(gm_chan *c, const void *elem);
// gm_chan_send until a deadline, or until ctx is done (section "contexts"):
// 0 (sent), or -1 and ETIMEDOUT, or ctx's error (not sent).
GM_API int gm_chan_send_until(gm_chan *c, const void *elem, int64_t deadline_ns);
GM_API int gm_chan_send_ctx(gm_chan *c, const void *elem, gm_ctx *ctx);
// Blocks until a value arrives; returns 1, or 0 with *elem zeroed when the
// channel is closed and drained. A NULL elem drops the value (Go's `<-c`
// as a statement); so does a NULL elem in a receive case of gm_select.
GM_API int gm_chan_recv(gm_chan *c, void *elem);
// gm_chan_recv until a deadline, or until ctx is done: 1 (received), 0
// (closed and drained), or -1 and ETIMEDOUT, or ctx's error.
GM_API int gm_chan_recv_until(gm_chan *c, void *elem, int64_t deadline_ns);
GM_API int gm_chan_recv_ctx(gm_chan *c, void *elem, gm_ctx *ctx);
// Never block: 1 done, 0 would block; try_recv returns -1 when closed and drained.
GM_API int gm_chan_try_send(gm_chan *c, const void *elem);
GM_API int gm_chan_try_recv(gm_chan *c, void *elem);
// Closes c. Parked receivers wake with 0, parked senders abort (send on a
// closed channel); the buffered values can still be received.
GM_API void gm_chan_close(gm_chan *c);
// Frees c (NULL: no-op); a gm_after channel is freed when its timer fires.
GM_API void gm_chan_free(gm_chan *c);
// Buffered elements now.
GM_API size_t gm_chan_len(const gm_chan *c);
// The capacity c was made with (0: unbuffered; 0 for NULL).
GM_API size_t gm_chan_cap(const gm_chan *c);

// select over several sends and receives (Go's select). Returns the index
// of the case that proceeded, chosen at random among the ready ones, or -1
// when has_default is set and none is ready. A receive case stores the
// value in elem and, if ok is not NULL, 1 or 0 (closed) in *ok. A case
// with a NULL channel never proceeds.
enum { GM_SELECT_RECV = 0, GM_SELECT_SEND = 1 };
typedef struct {
    gm_chan *c;
    int dir;       // GM_SELECT_RECV or GM_SELECT_SEND
    void *elem;    // where to receive into, or what to send
    int *ok;       // receive: set to 1, or 0 when the channel is closed
} gm_select_case;
GM_API int gm_select(gm_select_case *cases, int n, int has_default);
// gm_select without a default, until a deadline or until ctx is done: the
// case's index, or -1 and ETIMEDOUT, or ctx's error (no case proceeded).
// Cheaper than a case on a timer's channel: no channel, no timer object.
GM_API int gm_select_until(gm_select_case *cases, int n, int64_t deadline_ns);
GM_API int gm_select_ctx(gm_select_case *cases, int n, gm_ctx *ctx);

// Go's time.After: a channel (elem_size 8, cap 1) that receives the
// CLOCK_MONOTONIC time in ns once, ns nanoseconds from now; usable in
// gm_select. Free it with gm_chan_free when done (also before it fires:
// the timer then frees it). Call from a coroutine: NULL and EPERM outside
// one, ENOMEM without memory.
GM_API gm_chan *gm_after(uint64_t ns);

// ------------------------------------------------------------------ timers
//
// Go's time.Timer, time.Ticker and time.AfterFunc. A timer lives in the
// timer heap of a worker: the one whose coroutine started it (created it,
// or reset it while it was stopped). Stop and reset work from any
// coroutine or thread; one from another worker or thread is handed to the
// timer's worker, which applies it at its next scheduling round (or wakes
// for it when it sleeps). As in Go 1.23, once gm_timer_stop, gm_timer_reset,
// gm_ticker_stop or gm_ticker_reset returns, no value sent before the call
// is received: a value sent and not yet received is taken back.
// When gm_main returns, its pending timers are dropped: they count as
// stopped (a pending timer does not keep gm_main running, as a Go program
// ends with main whatever its timers). A reset of a stopped timer from
// outside a coroutine starts it on the worker it last ran on, while that
// worker's gm_main runs. Creating allocates once (the timer and its
// channel together); stop and reset never allocate. A NULL timer or ticker
// given to any of these but the _free calls: message and abort.
typedef struct gm_timer gm_timer;
typedef struct gm_ticker gm_ticker;
// A timer that fires once, ns nanoseconds from now, sending the
// CLOCK_MONOTONIC time it fired at (ns, >= the deadline) on its channel
// (gm_timer_chan; elem_size 8, cap 1). Call from a coroutine: NULL and
// EPERM outside one, ENOMEM without memory.
GM_API gm_timer *gm_timer_new(uint64_t ns);
// The channel t sends on (Go's Timer.C); NULL for a gm_after_func timer.
// It belongs to t: gm_chan_close or gm_chan_free on it aborts.
GM_API gm_chan *gm_timer_chan(gm_timer *t);
// Stops t. Returns 1 if that stopped it from firing, or from delivering a
// value not yet received (taken back); 0 if it had already fired (value
// received, or gm_after_func's function started) or was stopped.
GM_API int gm_timer_stop(gm_timer *t);
// Stops t and starts it again, to fire ns nanoseconds from now. Returns 1
// or 0 as gm_timer_stop would have; -1 and EPERM when called outside a
// coroutine on a stopped timer whose last worker's gm_main has ended (it
// stays stopped).
GM_API int gm_timer_reset(gm_timer *t, uint64_t ns);
// Stops t and frees it with its channel, which must not be used after
// (NULL: no-op). A coroutine parked on the channel: message and abort.
GM_API void gm_timer_free(gm_timer *t);
// Go's time.AfterFunc: ns nanoseconds from now, fn(arg) starts as a new
// coroutine on the timer's worker. gm_timer_stop prevents it if it has not
// started (returns 1); gm_timer_reset arms it again. Free it with
// gm_timer_free when done, also after it fired. Call from a coroutine: NULL
// and EPERM outside one, EINVAL for a NULL fn, ENOMEM without memory.
GM_API gm_timer *gm_after_func(uint64_t ns, void (*fn)(void *), void *arg);

// A ticker: sends the time on its channel every period nanoseconds, the
// first one period from now. A receiver that falls behind misses ticks:
// the channel holds one, and the ticks due meanwhile are dropped, not
// queued (Go's rule), so the next one comes at the next multiple of the
// period. Call from a coroutine: NULL and EPERM outside one, EINVAL for a
// zero period, ENOMEM without memory.
GM_API gm_ticker *gm_ticker_new(uint64_t period);
// The channel tk sends on (Go's Ticker.C); elem_size 8, cap 1.
GM_API gm_chan *gm_ticker_chan(gm_ticker *tk);
// Stops tk: no tick is received after (one sent and not received is taken
// back). gm_ticker_reset starts it again.
GM_API void gm_ticker_stop(gm_ticker *tk);
// Stops tk and restarts it with a new period, the next tick one period
// from now. Returns 0, or -1 and EINVAL (period 0) or EPERM (as
// gm_timer_reset).
GM_API int gm_ticker_reset(gm_ticker *tk, uint64_t period);
// Stops tk and frees it with its channel (NULL: no-op).
GM_API void gm_ticker_free(gm_ticker *tk);

// --------------------------------------------------------------- contexts
//
// Deadlines and cancellation (Go: deadlines on calls, the context package,
// golang.org/x/sync/errgroup).
//
// Deadlines: every blocking call has an _until variant taking deadline_ns,
// a time on gm_now()'s clock (CLOCK_MONOTONIC, ns; gm_deadline(ns) is ns
// from now, GM_NO_DEADLINE none). It fails with -1 and ETIMEDOUT once the
// deadline passes first; a deadline already past tries the call without
// waiting. A wait costs no allocation for its deadline: it is an entry in
// its worker's timer heap (or the thread's futex timeout), gone when the
// wait ends.
//
// Contexts: a tree of gm_ctx, each done once, when cancelled
// (gm_ctx_cancel), when its deadline passes, or when its parent is done.
// Every blocking call has a _ctx variant that also fails when its context
// is done: -1 and the context's error, ECANCELED (cancelled) or ETIMEDOUT
// (its deadline, which applies to the call as a deadline too); a context
// already done tries the call without waiting. gm_ctx_done's channel is
// closed when the context is done: a receive case in gm_select. A call
// that failed this way owns nothing (no lock, no units, no value sent or
// taken). Wakes from a cancel reach parked coroutines and threads blocked
// on the futex; a thread in gm_read_ctx and the other fd calls (which
// poll) sees it only at the deadline.
//
// Freeing: the creator of a context frees it with gm_ctx_free once nothing
// uses it any more: no call waits with it, no select has its done channel,
// no child is made from it after. Freeing cancels it (and so its
// children), detaches it from its parent, and leaves its children as roots,
// done, for their own creators to free. Use of a freed context, or a NULL
// one: message and abort, when gomem can tell (the memory may be reused).
// Misuse that would corrupt (closing or freeing the done channel): message
// and abort.
//
// Thread safety: every call, from any coroutine or thread, but
// gm_ctx_with_deadline and gm_ctx_with_timeout need a coroutine when the
// deadline is earlier than the parent's (its timer lives on a worker).

// A deadline that never comes (for the _until calls; gm_ctx_deadline of a
// context without one).
#define GM_NO_DEADLINE INT64_MAX
// CLOCK_MONOTONIC now, in ns: the clock of every deadline.
GM_API int64_t gm_now(void);
// The deadline ns nanoseconds from now (saturating at GM_NO_DEADLINE; ns
// <= 0: now, a deadline that has passed).
GM_API int64_t gm_deadline(int64_t ns);

// The root context (Go's Background): never done, no deadline, a NULL
// done channel (a case that never proceeds). Needs no free.
GM_API gm_ctx *gm_ctx_background(void);
// A child of parent that gm_ctx_cancel ends (Go's WithCancel); done at
// once if parent is. NULL and ENOMEM without memory. A NULL or freed
// parent: message and abort (every gm_ctx call alike).
GM_API gm_ctx *gm_ctx_with_cancel(gm_ctx *parent);
// A child of parent also done at deadline_ns (gm_now's clock), with error
// ETIMEDOUT (Go's WithDeadline, WithTimeout); a deadline not earlier than
// parent's adds nothing to it, one already past makes it done at once.
// NULL and ENOMEM, or EPERM when a timer is needed outside a coroutine.
GM_API gm_ctx *gm_ctx_with_deadline(gm_ctx *parent, int64_t deadline_ns);
// gm_ctx_with_deadline(parent, gm_deadline(timeout_ns)).
GM_API gm_ctx *gm_ctx_with_timeout(gm_ctx *parent, int64_t timeout_ns);
// Cancels ctx and its descendants not done yet, with error ECANCELED and
// cause (Go's CancelCauseFunc; 0: ECANCELED): parked calls with them wake
// and fail, their done channels close. A context already done stays as it
// was. Cancelling the background context: message and abort.
GM_API void gm_ctx_cancel(gm_ctx *ctx, int cause);
// Frees ctx as the section says (NULL, background: no-op).
GM_API void gm_ctx_free(gm_ctx *ctx);
// 0 while ctx is not done, then ECANCELED or ETIMEDOUT (Go's Err).
GM_API int gm_ctx_err(gm_ctx *ctx);
// 0 while ctx is not done, then why (Go's Cause): the cause given to the
// gm_ctx_cancel that ended it or an ancestor, or ETIMEDOUT for a deadline.
GM_API int gm_ctx_cause(gm_ctx *ctx);
// The channel closed when ctx is done (Go's Done); NULL for the
// background. It belongs to ctx: gm_chan_close or gm_chan_free on it aborts.
GM_API gm_chan *gm_ctx_done(gm_ctx *ctx);
// ctx's deadline (the earliest of its and its ancestors'), or
// GM_NO_DEADLINE.
GM_API int64_t gm_ctx_deadline(gm_ctx *ctx);

// A group of coroutines working on one task (golang.org/x/sync/errgroup):
// each runs fn(ctx, arg) with the group's context, a child of the parent;
// the first non-zero result cancels that context with the result as its
// cause, so the others can stop; gm_errgroup_wait waits for all and
// returns that first result.
typedef struct gm_errgroup gm_errgroup;
// NULL and ENOMEM without memory.
GM_API gm_errgroup *gm_errgroup_new(gm_ctx *parent);
// The group's context, cancelled by the first error and by
// gm_errgroup_wait's return.
GM_API gm_ctx *gm_errgroup_ctx(gm_errgroup *eg);
// Starts fn(ctx, arg) as a coroutine (gm_go's placement). 0, or -1 and
// ENOMEM, EINVAL (NULL fn).
GM_API int gm_errgroup_go(gm_errgroup *eg, int (*fn)(gm_ctx *ctx, void *arg), void *arg);
// Waits until every fn has returned, cancels the group's context, and
// returns the first non-zero result, or 0.
GM_API int gm_errgroup_wait(gm_errgroup *eg);
// Frees the group and its context (NULL: no-op). Coroutines of the group
// still running (no gm_errgroup_wait): message and abort.
GM_API void gm_errgroup_free(gm_errgroup *eg);

#ifdef __cplusplus
}
#endif

#endif
