// SPDX-License-Identifier: MIT
//
// The heap profiler (Go: mprof.go, and malloc.go's nextSample): which code
// allocated the memory. GOMEM_PROF=path (and GOMEM_PROF_RATE), or
// gm_prof_start / gm_prof_dump / gm_prof_stop, record a sample of the
// allocations with their call stacks; pprof.c writes them in pprof's format.
//
// Owns: the sampling decision, the records (buckets), the profile's file
// and the GOMEM_PROF* options. Entry points for the malloc files are in
// mprof.h; the API is gm_prof_* in gomem.h.
//
// Sampling, Go's method. A sample is taken every rate bytes on average
// (GOMEM_PROF_RATE, default 512 KiB, Go's MemProfileRate): the distance in
// bytes to the next sample is drawn from an exponential distribution of
// mean rate, so the sampled points form a Poisson process over the bytes
// allocated, and an object of s bytes is sampled with probability
// 1 - exp(-s/rate), independently of every other. The writer divides each
// record by that probability (Go's scaleHeapSample), which makes every
// figure of the profile an unbiased estimate. Three countdowns per thread
// feed the same process, each over its own bytes (independent Poisson
// processes add up to one):
//   - small objects: per size class, objects rather than bytes (every
//     object of a class has its size), and the countdown is the class's
//     allocation counter (bin.nextSample; mcache.h): the fast path's `sub`
//     counts the allocation, and its flags say whether this is the sample
//     point. So profiling, on or off, costs the fast path one branch that
//     is not taken (bench/instr.sh). At the point, sampleSmall looks at
//     the rate: on, it samples; off, it only draws the next distance.
//   - large objects: bytes, on mallocLargeTry's slow path.
//   - tiny blocks: Go's rule, a block is the sampled unit (its bytes count
//     when a new block starts; a request that fits the current block costs
//     nothing). The sampled request is recorded with the block's size.
//
// Starting and stopping. Only the owner writes its countdowns (a plain
// `sub` on the fast path: another thread's store could be lost), so a
// thread takes up a new rate at its next sample point in each class, as
// Go's caches take up a new MemProfileRate at their next sample; the thread
// that calls gm_prof_start or gm_prof_stop takes it up at once, and a
// thread's first cache draws with the rate of the moment. While profiling
// is off the distances are drawn at the default rate: the exponential
// distance has no memory, so a start at the default rate (GOMEM_PROF, or
// gm_prof_start with rate 0) samples every thread from that moment exactly
// as if it had been on all along. A start at another rate is exact in
// each class from its first sample point on; before it, the class is
// sampled at the default rate instead (at most one distance).
//
// Sampled objects stay where the fast path put them (Go's specials): a
// small object's record hangs off its span (mspan.specials, a short list
// of address and record, under specialsLock), and its page's pageClass
// code becomes PageClassSampled + the class. That code is outside the
// free fast path's range of classes, so every free on such a page takes
// the slow path (freeNotSmall), which asks mProf_freeSampled whether the
// object is a sample, then frees it as usual: the fast path does nothing
// new. Cost: about one page in 64 holds a sample at the default rate
// (rate / page size), so about 1.6% of the frees of small objects take
// the slow path and a lock; no memory beyond the records. (A span of its
// own per sample, tcmalloc's way and this file's first, cost a touched
// page per live sample: 0.8% of a large heap's RSS.) A tiny block that is
// sampled still gets a span of its own, spanclass 0 like a large object,
// its record in the span's profBucket; so does a large object.

// Stacks are unwound with libgcc's unwinder (_Unwind_Backtrace, from the
// compiler's runtime, which every gcc and clang link on Linux already
// brings), not by following frame pointers: it reads the .eh_frame tables
// that the x86-64 and AArch64 ABIs require in every object, so it unwinds
// code built without frame pointers (gcc's and clang's default at -O2, and
// Debian's python, perl and libc), which a frame-pointer walk would stop at
// or misread. It costs microseconds per sample, and a sample comes every
// 512 KiB. The frames of gomem itself are cut off the top: the frames up to
// the last one whose function is one of the allocation paths' (each malloc
// file lists its functions: *_allocFrames). A coroutine's parked stack
// cannot be unwound by libgcc; pprof.c follows its frame pointers instead.
//
// Records (Go's bucket and memRecord): a hash table of buckets keyed by
// (stack, size, rate), each with four counters (objects and bytes allocated and
// freed). Buckets are made under profLock and published with a release
// store; readers (the writer, frees) walk them without the lock. They come
// from persistentalloc, never from the heap: no allocation of the profiler
// can be sampled in turn. Never freed, so a thread that exits keeps its
// samples, and records outlive gm_prof_stop (a later start goes on adding).
//
// The file: each dump writes path.tmp.PID and renames it over path, so a
// signal, a full disk or a fork during a dump leaves the old profile or
// the new one, never half of one. A forked child keeps sampling (its heap
// is the parent's copy), but only the process that started profiling
// writes its file at exit.
//
// Locks: profLock (rank lockRankProf, above allmLock, below persistentLock)
// guards bucket creation and the file's state; specialsLock (a spin lock,
// a leaf but for fixalloc's persistentalloc) the sampled objects of spans
// of a size class. A sampling thread holds no
// other lock. Setting a class's next distance takes allmLock
// (mcache_setNextSample), never inside profLock.
//
// Differs from Go: no GC, so frees are exact (Go counts frees at sweep and
// keeps three cycles of records to publish a consistent view); sampled
// objects live in spans of their own; stacks come from the C unwinder.
#include "malloc.h"
#include "mprof.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>

#define DefaultProfRate ((uint64_t)512 << 10) // Go's MemProfileRate
#define BuckHashSize (1u << 9)                // chains of the bucket table (Go: 179999): 4 KiB, one page
#define SkipFrames 24                         // most gomem frames looked at above the caller's

_Atomic uint64_t mprofRate;
static mutex profLock = MUTEX_INIT(lockRankProf);
static _Atomic(_Atomic(mbucket *) *) buckhash; // BuckHashSize chains; set once under profLock
static _Atomic(mbucket *) mbuckets;       // every bucket, newest first
static _Atomic uint64_t lastRate;         // the rate of the last start
// The sampled live objects of spans of a size class: mspan.specials, their
// pages' PageClassSampled codes, and specialAlloc.
// A spin lock, not a mutex: it is held for a walk of a list of a few
// records, on 1 free in 64 at the default rate (a pthread mutex's lock
// and unlock were 2/3 of what in-place samples cost churn).
static int specialsLock;
typedef struct mspecial {
    struct mspecial *next;
    uintptr_t addr; // the object
    mbucket *b;     // its record
} mspecial;
static fixalloc specialAlloc = { .size = sizeof(mspecial) }; // guarded by specialsLock
static char profPath[4096];               // guarded by profLock
static pid_t profPid;                     // who started profiling; guarded by profLock
// The calling thread is in the profiler: a malloc it makes (the unwinder
// may, on its first use in a static program) is not sampled.
static __thread bool profBusy __attribute__((tls_model("initial-exec")));

// ---------------------------------------------------------------- random

static inline uint64_t rngNext(uint64_t *s)
{
    uint64_t x = *s | 1; // never stuck at 0
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

// log2(r) for r >= 1, in fixed point with 16 fractional bits: the integer
// part from the leading bit, each fractional bit by squaring the mantissa
// (Q31) and seeing whether it reached 2. Integers only: malloc calls it at
// sample points with profiling off too, and must not raise the program's
// floating-point exception flags (FE_INEXACT) or depend on its rounding
// mode.
static uint64_t log2Q16(uint64_t r)
{
    unsigned e = 63u - (unsigned)__builtin_clzll(r);
    uint64_t m = e <= 31 ? r << (31 - e) : r >> (e - 31); // [2^31, 2^32): [1, 2)
    uint64_t frac = 0;
    for (int i = 15; i >= 0; i--) {
        m = (m * m) >> 31; // m < 2^32: no overflow
        if (m >= (1ull << 32)) {
            m >>= 1;
            frac |= 1ull << i;
        }
    }
    return (uint64_t)e << 16 | frac;
}

// Bytes to the next sample: exponential with mean rate (Go: nextSample),
// as rate * -ln(u) for u uniform in (0, 1] = (r + 1) / 2^53, that is
// rate * ln 2 * (53 - log2(r + 1)). Rate 1 samples every allocation.
static uint64_t expBytes(uint64_t *rng, uint64_t rate)
{
    if (rate <= 1)
        return 0;
    uint64_t negLog2 = ((uint64_t)53 << 16) - log2Q16((rngNext(rng) >> 11) + 1); // Q16, >= 0
    unsigned __int128 x = (unsigned __int128)rate * negLog2 * 2977044472u >> 48; // ln 2 in Q32
    return x >= (unsigned __int128)9000000000000000000ull ? 9000000000000000000ull : (uint64_t)x;
}

// Allocations of class spc up to its next sample point (>= 1), at rate
// (0: off, drawn at the default rate; see "Starting and stopping"): the
// object that holds the next sampled byte. Never for the classes that the
// fast path does not sample (large objects' 0, the tiny blocks').
static uint64_t nextSmall(uint64_t *rng, uint64_t rate, uint8_t spc)
{
    if (spc == 0 || spc >= TinyClass16)
        return ProfNever;
    return 1 + expBytes(rng, rate != 0 ? rate : DefaultProfRate) / class_to_size[spc];
}

void mProf_initCache(mcache *c)
{
    c->profRng = runtime_secret((uintptr_t)c ^ 0x70726f66) | 1;
    uint64_t rate = atomic_load_explicit(&mprofRate, memory_order_relaxed);
    // No other thread can reach c yet: no lock for its pairs.
    for (int spc = 0; spc < NumSpanClasses; spc++) {
        uint64_t n = nextSmall(&c->profRng, rate, (uint8_t)spc);
        c->bin[spc].nextSample = n;
        c->nmallocAtSample[spc] = n;
    }
    c->profLeft = (int64_t)expBytes(&c->profRng, rate);
}

// The calling thread's cache takes up rate in every class at once.
static void armOwn(uint64_t rate)
{
    mcache *c = TLS(mcache_tls);
    if (c == NULL)
        return;
    for (int spc = 1; spc < TinyClass16; spc++)
        mcache_setNextSample(c, (uint8_t)spc, nextSmall(&c->profRng, rate, (uint8_t)spc));
    c->profLeft = (int64_t)expBytes(&c->profRng, rate);
}

// --------------------------------------------------------------- stacks


typedef struct unwindState {
    uintptr_t pc[SkipFrames + ProfMaxStack];
    uintptr_t fn[SkipFrames + ProfMaxStack];
    int n;
    const osUnwinder *unw;
} unwindState;

static _Unwind_Reason_Code unwindFrame(struct _Unwind_Context *ctx, void *arg)
{
    unwindState *u = arg;
    uintptr_t pc = u->unw->getIP(ctx);
    if (pc == 0 || u->n == SkipFrames + ProfMaxStack)
        return _URC_END_OF_STACK;
    u->pc[u->n] = pc;
    u->fn[u->n] = (uintptr_t)u->unw->getRegionStart(ctx);
    u->n++;
    return _URC_NO_REASON;
}

static uint32_t profCallers(uintptr_t *stk);
static mbucket *record(uintptr_t size);
static void *sampledSpan(uint8_t spc, uintptr_t size, uintptr_t recorded);
static void *sampleSmall(void *x, bool zero);
// This file's functions a sample passes through (sampleSmall and the rest
// may be inlined, or not, or tail-called).
static const void *const mprof_allocFrames[] = {
    (const void *)mProf_mallocSmall, (const void *)mProf_callocSmall, (const void *)mProf_mallocLarge,
    (const void *)mProf_mallocTiny, (const void *)profCallers, (const void *)record, (const void *)sampledSpan,
    (const void *)sampleSmall, NULL,
};

static bool isAllocFrame(uintptr_t fn)
{
    const void *const *lists[] = {mprof_allocFrames, malloc_allocFrames, realloc_allocFrames, tiny_allocFrames,
                                  override_allocFrames};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        for (const void *const *f = lists[i]; f != NULL && *f != NULL; f++)
            if ((uintptr_t)*f == fn)
                return true;
    return false;
}

// The caller's stack into stk (innermost first): the frames past the last
// allocation-path frame among the first SkipFrames. Returns the count.
static GM_NOINLINE uint32_t profCallers(uintptr_t *stk)
{
    unwindState u;
    u.n = 0;
    // Found by gm_prof_start before any sample (os_unwinder); none: no frames.
    u.unw = os_unwinderLoaded();
    if (u.unw != NULL)
        u.unw->backtrace(unwindFrame, &u);
    int first = 0;
    for (int i = 0; i < u.n && i < SkipFrames; i++)
        if (isAllocFrame(u.fn[i]))
            first = i + 1;
    uint32_t n = 0;
    for (int i = first; i < u.n && n < ProfMaxStack; i++)
        stk[n++] = u.pc[i];
    return n;
}

// ---------------------------------------------------------------- buckets

static uint64_t stackHash(const uintptr_t *stk, uint32_t n, uintptr_t size, uint64_t rate)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ size ^ rate << 32;
    for (uint32_t i = 0; i < n; i++) {
        h ^= stk[i];
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    return h;
}

static mbucket *findBucket(uint64_t h, const uintptr_t *stk, uint32_t n, uintptr_t size, uint64_t rate)
{
    for (mbucket *b = atomic_load_explicit(&buckhash[h % BuckHashSize], memory_order_acquire); b != NULL;
         b = b->next)
        if (b->hash == h && b->size == size && b->rate == rate && b->nstk == n &&
            memcmp(b->stk, stk, n * sizeof stk[0]) == 0)
            return b;
    return NULL;
}

// The bucket of (stk, size, rate), made if new (Go: stkbucket; the rate is
// part of the key so that a profile restarted at another rate scales each
// record by the rate it was sampled at). NULL when out of memory.
static mbucket *stkbucket(const uintptr_t *stk, uint32_t n, uintptr_t size, uint64_t rate)
{
    if (atomic_load_explicit(&buckhash, memory_order_acquire) == NULL)
        return NULL; // never started
    uint64_t h = stackHash(stk, n, size, rate);
    mbucket *b = findBucket(h, stk, n, size, rate);
    if (b != NULL)
        return b;
    lock(&profLock);
    b = findBucket(h, stk, n, size, rate);
    if (b == NULL) {
        // 128-aligned: the low bits of a span's profBucket hold a class.
        b = persistentalloc(sizeof(mbucket) + n * sizeof stk[0], 128);
        if (b != NULL) {
            b->hash = h;
            b->size = size;
            b->rate = rate;
            b->nstk = n;
            memcpy(b->stk, stk, n * sizeof stk[0]);
            b->next = atomic_load_explicit(&buckhash[h % BuckHashSize], memory_order_relaxed);
            b->allnext = atomic_load_explicit(&mbuckets, memory_order_relaxed);
            atomic_store_explicit(&buckhash[h % BuckHashSize], b, memory_order_release);
            atomic_store_explicit(&mbuckets, b, memory_order_release);
        }
    }
    unlock(&profLock);
    return b;
}

mbucket *mProf_buckets(void)
{
    return atomic_load_explicit(&mbuckets, memory_order_acquire);
}

uint64_t mProf_lastRate(void)
{
    return atomic_load_explicit(&lastRate, memory_order_relaxed);
}

// The record of a sampled object of size bytes allocated by the caller.
static mbucket *record(uintptr_t size)
{
    uintptr_t stk[ProfMaxStack];
    uint32_t n = profCallers(stk);
    mbucket *b = stkbucket(stk, n, size, atomic_load_explicit(&mprofRate, memory_order_relaxed));
    if (b != NULL) {
        atomic_fetch_add_explicit(&b->allocs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->allocBytes, size, memory_order_relaxed);
    }
    return b;
}

// ------------------------------------------------------- sampled objects

// A span of its own for a sampled tiny request, counted as class spc (size
// bytes), with its record, or NULL (out of memory: no sample).
static void *sampledSpan(uint8_t spc, uintptr_t size, uintptr_t recorded)
{
    mspan *s = mheap_allocLarge((size + PageMask) >> PageShift, 1);
    if (s == NULL)
        return NULL;
    mbucket *b = record(recorded);
    if (b == NULL) {
        mheap_free(s);
        return NULL;
    }
    s->elemsize = size;
    s->reallocGrown = 0;
    s->profBucket = (uintptr_t)b | spc;
    ASAN_UNPOISON(s->startAddr, size);
    return (void *)s->startAddr;
}

// Whether a sampled object lies on page (the page's start) of s.
static bool pageHasSample(mspan *s, uintptr_t page)
{
    for (mspecial *x = s->specials; x != NULL; x = x->next)
        if ((x->addr & ~(uintptr_t)PageMask) == page)
            return true;
    return false;
}

// x, just allocated in span s of class spc, is a sample with record b.
static void addSpecial(mspan *s, void *x, mbucket *b, uint8_t spc)
{
    spin_lock(&specialsLock);
    mspecial *sp = fixalloc_alloc(&specialAlloc);
    if (sp != NULL) {
        sp->addr = (uintptr_t)x;
        sp->b = b;
        sp->next = s->specials;
        s->specials = sp;
        pageClassSetCode((uintptr_t)x, (uint8_t)(PageClassSampled + spc));
    } else { // out of memory for the record's link: the sample is not kept
        atomic_fetch_add_explicit(&b->frees, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->freeBytes, b->size, memory_order_relaxed);
    }
    spin_unlock(&specialsLock);
}

void mProf_freeSampled(mspan *s, void *p, uint8_t spc)
{
    spin_lock(&specialsLock);
    for (mspecial **px = &s->specials; *px != NULL; px = &(*px)->next) {
        mspecial *x = *px;
        if (x->addr != (uintptr_t)p)
            continue;
        *px = x->next;
        atomic_fetch_add_explicit(&x->b->frees, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&x->b->freeBytes, x->b->size, memory_order_relaxed);
        fixalloc_free(&specialAlloc, x);
        uintptr_t page = (uintptr_t)p & ~(uintptr_t)PageMask;
        if (!pageHasSample(s, page))
            pageClassSetCode(page, spc); // frees on the page take the fast path again
        break;
    }
    spin_unlock(&specialsLock);
}

const char *mProf_specialsValid(mspan *s)
{
    const char *bad = NULL;
    spin_lock(&specialsLock);
    for (mspecial *x = s->specials; x != NULL && bad == NULL; x = x->next) {
        uintptr_t off = x->addr - s->startAddr;
        if (x->addr < s->startAddr || off >= (uintptr_t)s->nelems * s->elemsize || off % s->elemsize != 0)
            bad = "a sampled object's record names no slot of the span";
        else if ((pageClassOf(x->addr) & 0xff) != PageClassSampled + (unsigned)s->spanclass)
            bad = "a page holding a sampled object lacks its sampled code";
    }
    for (uintptr_t i = 0; i < s->npages && bad == NULL; i++) {
        uintptr_t page = s->startAddr + (i << PageShift);
        if ((pageClassOf(page) & 0xff) == PageClassSampled + (unsigned)s->spanclass && !pageHasSample(s, page))
            bad = "a page has the sampled code but holds no sampled object";
    }
    spin_unlock(&specialsLock);
    return bad;
}

static void *sampleSmall(void *x, bool zero)
{
    mcache *c = TLS(mcache_tls);
    mspan *s = spanOfRaw((uintptr_t)x);
    if (GM_UNLIKELY(s == NULL))
        throw("internal error: a sampled object at %p has no span", x);
    uint8_t spc = s->spanclass;
    uint64_t rate = atomic_load_explicit(&mprofRate, memory_order_relaxed);
    mcache_setNextSample(c, spc, nextSmall(&c->profRng, rate, spc));
    if (rate != 0 && !profBusy) {
        profBusy = true;
        mbucket *b = record(class_to_size[spc]);
        if (b != NULL)
            addSpecial(s, x, b, spc);
        profBusy = false;
    }
    return zero ? memset(x, 0, class_to_size[spc]) : x;
}

GM_NOINLINE void *mProf_mallocSmall(void *x)
{
    return sampleSmall(x, false);
}

GM_NOINLINE void *mProf_callocSmall(void *x)
{
    return sampleSmall(x, true);
}

void mProf_mallocLarge(mcache *c, mspan *s)
{
    uint64_t rate = atomic_load_explicit(&mprofRate, memory_order_relaxed);
    if (rate == 0 || profBusy)
        return;
    c->profLeft -= (int64_t)s->elemsize;
    if (c->profLeft >= 0)
        return;
    c->profLeft = (int64_t)expBytes(&c->profRng, rate);
    profBusy = true;
    mbucket *b = record(s->elemsize);
    profBusy = false;
    s->profBucket = (uintptr_t)b;
}

bool mProf_tinyDue(mcache *c, uintptr_t bs)
{
    if (profBusy)
        return false;
    c->profLeft -= (int64_t)bs;
    if (c->profLeft >= 0)
        return false;
    c->profLeft = (int64_t)expBytes(&c->profRng, atomic_load_explicit(&mprofRate, memory_order_relaxed));
    return true;
}

GM_NOINLINE void *mProf_mallocTiny(mcache *c, size_t n, uintptr_t bs)
{
    // The class the request would take unpacked.
    uint8_t spc = 1;
    while (class_to_size[spc] < tinyUnpackedSize[n])
        spc++;
    profBusy = true;
    void *p = sampledSpan(spc, class_to_size[spc], bs);
    profBusy = false;
    if (p != NULL)
        binMallocAdd(c, spc, 1);
    return p;
}

uint8_t mProf_free(mspan *s)
{
    mbucket *b = (mbucket *)(s->profBucket & ~(uintptr_t)127);
    uint8_t spc = (uint8_t)(s->profBucket & 127);
    s->profBucket = 0;
    atomic_fetch_add_explicit(&b->frees, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->freeBytes, b->size, memory_order_relaxed);
    return spc;
}

// ------------------------------------------------------------- the API

// Profiling on at rate, or off (0): the flag, which every thread reads at
// its next sample point, and this thread's countdowns.
static void setRate(uint64_t rate)
{
    atomic_store_explicit(&mprofRate, rate, memory_order_relaxed);
    armOwn(rate);
}

// Writes a profile of kind to path through path.tmp.PID, renamed over
// path when whole: 0, or -1 and errno. Never inlined: the coroutine
// profile skips its frame (pprof.c, selfFrames).
static GM_NOINLINE int writeFile(const char *path, int kind)
{
    char tmp[4200];
    if (path == NULL || path[0] == 0 || strlen(path) > 4096) {
        errno = EINVAL;
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    bool was = profBusy;
    profBusy = true;
    int r = kind == GM_PROF_HEAP ? pprof_writeHeap(fd, mProf_lastRate())
                                 : pprof_writeCoroutines(fd, kind == GM_PROF_COROUTINES_TEXT);
    profBusy = was;
    int e = errno;
    if (close(fd) != 0 && r == 0) {
        r = -1;
        e = errno;
    }
    if (r == 0 && rename(tmp, path) != 0) {
        r = -1;
        e = errno;
    }
    if (r != 0) {
        unlink(tmp);
        errno = e;
    }
    return r;
}

int gm_prof_write(const char *path, int kind)
{
    if (kind != GM_PROF_HEAP && kind != GM_PROF_COROUTINES && kind != GM_PROF_COROUTINES_TEXT) {
        errno = EINVAL;
        callerError("gm_prof_write: unknown kind %d", kind);
        return -1;
    }
    os_unwinder(); // the caller's frames (pprof.c); found here, before any lock is taken
    return writeFile(path, kind);
}

int gm_prof_start(const char *path, size_t rate)
{
    runtime_init();
    os_unwinder(); // before sampling starts: loading it may allocate
    if (path == NULL || path[0] == 0 || strlen(path) >= sizeof profPath) {
        errno = EINVAL;
        callerError("gm_prof_start: no path, or a path too long");
        return -1;
    }
    lock(&profLock);
    if (atomic_load_explicit(&mprofRate, memory_order_relaxed) != 0) {
        unlock(&profLock);
        errno = EBUSY;
        return -1;
    }
    // Can the file be written? Find out now, not at exit.
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        unlock(&profLock);
        return -1;
    }
    close(fd);
    unlink(tmp);
    if (atomic_load_explicit(&buckhash, memory_order_relaxed) == NULL) {
        void *t = persistentalloc(BuckHashSize * sizeof(mbucket *), 64);
        if (t == NULL) {
            unlock(&profLock);
            errno = ENOMEM;
            return -1;
        }
        atomic_store_explicit(&buckhash, t, memory_order_release);
    }
    strcpy(profPath, path);
    profPid = getpid();
    if (rate == 0)
        rate = DefaultProfRate;
    atomic_store_explicit(&lastRate, rate, memory_order_relaxed);
    unlock(&profLock);
    setRate(rate);
    return 0;
}

int gm_prof_dump(void)
{
    char path[sizeof profPath];
    lock(&profLock);
    bool on = atomic_load_explicit(&mprofRate, memory_order_relaxed) != 0;
    strcpy(path, profPath);
    unlock(&profLock);
    if (!on) {
        errno = EINVAL;
        return -1;
    }
    return writeFile(path, GM_PROF_HEAP);
}

int gm_prof_stop(void)
{
    if (atomic_load_explicit(&mprofRate, memory_order_relaxed) == 0) {
        errno = EINVAL;
        return -1;
    }
    int r = gm_prof_dump();
    int e = errno;
    setRate(0);
    errno = e;
    return r;
}

// ----------------------------------------------------- GOMEM_PROF, fork

static void dumpAtExit(void)
{
    lock(&profLock);
    bool mine = profPid == getpid();
    unlock(&profLock);
    if (mine && atomic_load_explicit(&mprofRate, memory_order_relaxed) != 0 && gm_prof_stop() != 0)
        runtime_warning("GOMEM_PROF: cannot write '%s' (%s); no profile", profPath, strerror(errno));
}

__attribute__((constructor)) static void profFromEnv(void)
{
    const char *env = os_getenv("GOMEM_PROF");
    if (env == NULL || env[0] == 0)
        return;
    // "%p" becomes the process id: the programs a profiled program starts
    // inherit GOMEM_PROF, and would otherwise write over each other's file.
    char path[sizeof profPath];
    size_t n = 0;
    for (const char *c = env; *c != 0 && n + 24 < sizeof path; c++)
        if (c[0] == '%' && c[1] == 'p')
            n += (size_t)snprintf(path + n, sizeof path - n, "%ld", (long)getpid()), c++;
        else
            path[n++] = *c;
    path[n] = 0;
    uint64_t rate = DefaultProfRate;
    const char *v = os_getenv("GOMEM_PROF_RATE");
    if (v != NULL && *v != 0 && (parse_bytes(v, &rate) != 0 || rate == 0)) {
        runtime_warning("GOMEM_PROF_RATE='%s' is not a size like 512k (1: every allocation); using 512k", v);
        rate = DefaultProfRate;
    }
    if (gm_prof_start(path, rate) != 0) {
        runtime_warning("GOMEM_PROF: cannot write '%s' (%s); not profiling", path, strerror(errno));
        return;
    }
    atexit(dumpAtExit);
}

void mprof_atfork_prepare(void)
{
    lock(&profLock);
    spin_lock(&specialsLock);
}

void mprof_atfork_parent(void)
{
    spin_unlock(&specialsLock);
    unlock(&profLock);
}

void mprof_atfork_child(void)
{
    specialsLock = 0;
    lock_reinit_child(&profLock);
}
