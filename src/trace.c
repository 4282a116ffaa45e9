// SPDX-License-Identifier: MIT
//
// The event trace (Go: trace.go, much reduced): GOMEM_TRACE=file or
// gm_trace_start(path) records allocator and scheduler events, with
// timestamps, to a binary file that `gomem-info report` turns into plots.
//
// Owns: the trace file, the per-thread event buffers, the sampler thread.
//
// Cost when off: every hook is TRACE(...) in runtime.h, one load of
// trace_on and a branch predicted not taken; the event's arguments are not
// even computed. When on, an event is one uncontended spin lock and a
// 24-byte store into the thread's buffer; a full buffer (64 KiB) is written
// with one write(2) under traceLock.
//
// Timestamps are cputicks() (the TSC: a clock_gettime would double an
// event's cost); each sampling round records an EvClock pairing ticks with
// ns, from which the reader scales.
//
// File layout (little-endian, what tools/report.c reads):
//   header  "GOMEMTRC" u32 version=1 u32 record size=24
//           u64 start time (CLOCK_REALTIME ns) u64 pid        (32 bytes)
//   records traceRecord, in per-thread batches: time order holds within
//           one thread's batches, not across threads (the reader sorts).
// Besides the events the hooks emit, a sampler thread records every
// GOMEM_TRACE_INTERVAL ms (default 10) the process RSS and the gm_stats
// figures the report plots over time, and gm_trace_stop records the size-
// class histogram once.
//
// Invariants: trace_on is set only after the file and the sampler exist,
// and cleared before they go away; a buffer is touched only under its own
// lock (owner per event, the stopper at the end); traceLock orders writes
// to the file and guards the buffer registry. A forked child stops tracing
// without writing (the parent owns the file).
#include "runtime.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TraceBufBytes (64 << 10)
#define TraceBufRecords ((TraceBufBytes - 64) / sizeof(traceRecord))

typedef struct traceBuf traceBuf;
struct traceBuf {
    int lk;            // spin lock: the owner per event, the stopper
    bool owned;        // a live thread writes here (guarded by traceLock)
    uint16_t thread;   // the thread's number in this trace
    uint32_t n;        // records in rec (guarded by lk)
    traceBuf *next;    // registry (guarded by traceLock; never unlinked)
    traceRecord rec[TraceBufRecords];
};

bool trace_on;                                  // read relaxed by TRACE()
static pthread_mutex_t traceLock = PTHREAD_MUTEX_INITIALIZER;
static int traceFd = -1;                        // guarded by traceLock
static bool traceFailed;                        // a write failed (guarded by traceLock)
static char tracePath[512];                     // guarded by traceLock
static traceBuf *allBufs;                       // guarded by traceLock
static uint16_t nthreads;                       // guarded by traceLock
static uint64_t traceStart;                     // CLOCK_MONOTONIC ns at start
static uint64_t traceStartTicks;                // cputicks() at start
static uint64_t traceGen;                       // bumped per start: stale thread buffers
static __thread traceBuf *tbuf __attribute__((tls_model("initial-exec")));
static __thread uint64_t tbufGen __attribute__((tls_model("initial-exec")));
static pthread_key_t traceKey;
static pthread_once_t traceKeyOnce = PTHREAD_ONCE_INIT;
static pthread_t sampler;
static bool samplerRunning;                     // guarded by traceLock
static _Atomic bool samplerStop;
static unsigned sampleIntervalMs = 10;

// Caller holds traceLock. Writes all of [p, p+n) or marks the trace failed.
static void writeAllLocked(const void *p, size_t n)
{
    const char *c = p;
    while (n > 0 && !traceFailed) {
        ssize_t w = write(traceFd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            runtime_warning("GOMEM_TRACE: writing %s failed (%s); the trace stops here", tracePath,
                    w < 0 ? strerror(errno) : "no space");
            traceFailed = true;
            break;
        }
        c += w;
        n -= (size_t)w;
    }
}

// Caller holds b->lk.
static void flushBuf(traceBuf *b)
{
    if (b->n == 0)
        return;
    pthread_mutex_lock(&traceLock);
    if (traceFd >= 0)
        writeAllLocked(b->rec, b->n * sizeof(traceRecord));
    pthread_mutex_unlock(&traceLock);
    b->n = 0;
}

static void threadExit(void *arg)
{
    traceBuf *b = arg;
    spin_lock(&b->lk);
    flushBuf(b);
    spin_unlock(&b->lk);
    pthread_mutex_lock(&traceLock);
    b->owned = false; // free for the next new thread
    pthread_mutex_unlock(&traceLock);
    tbuf = NULL;
}

static void keyInit(void)
{
    if (pthread_key_create(&traceKey, threadExit) != 0)
        throw("pthread_key_create failed: cannot flush the trace at thread exit");
}

static GM_COLD traceBuf *newThreadBuf(void)
{
    pthread_once(&traceKeyOnce, keyInit);
    pthread_mutex_lock(&traceLock);
    traceBuf *b = allBufs;
    while (b != NULL && b->owned)
        b = b->next;
    if (b == NULL) {
        b = os_alloc_meta(sizeof *b);
        if (b == NULL) {
            pthread_mutex_unlock(&traceLock);
            return NULL; // this thread's events are lost; the rest goes on
        }
        b->next = allBufs;
        allBufs = b;
    }
    b->owned = true;
    b->thread = ++nthreads;
    b->n = 0;
    uint64_t gen = traceGen;
    pthread_mutex_unlock(&traceLock);
    tbuf = b;
    tbufGen = gen;
    pthread_setspecific(traceKey, b);
    return b;
}

void traceEvent(int ev, unsigned aux, uint32_t x, uint64_t y)
{
    traceBuf *b = tbuf;
    if (GM_UNLIKELY(b == NULL || tbufGen != __atomic_load_n(&traceGen, __ATOMIC_RELAXED)) &&
        (b = newThreadBuf()) == NULL)
        return;
    traceRecord r = { cputicks() - traceStartTicks, (uint8_t)ev, (uint8_t)aux, b->thread, x, y };
    spin_lock(&b->lk);
    if (!__atomic_load_n(&trace_on, __ATOMIC_RELAXED)) { // stopped meanwhile: flushed already
        spin_unlock(&b->lk);
        return;
    }
    b->rec[b->n++] = r;
    if (b->n == TraceBufRecords)
        flushBuf(b);
    spin_unlock(&b->lk);
}

static void sample(void)
{
    gm_memstats m;
    gm_stats(&m);
    traceEvent(EvClock, 0, 0, nanotime() - traceStart); // the tick rate, for the reader
    traceEvent(EvSampleRSS, 0, 0, os_rss());
    traceEvent(EvSampleHeapAlloc, 0, 0, m.heap_alloc);
    traceEvent(EvSampleHeapInuse, 0, 0, m.heap_inuse);
    traceEvent(EvSampleHeapReleased, 0, 0, m.heap_released);
    traceEvent(EvSampleStackInuse, 0, 0, m.stack_inuse);
    for (unsigned o = 0; o < m.stack_orders; o++)
        traceEvent(EvSampleStackOrder, o, (uint32_t)(m.stack_order[o].size >> 8), m.stack_order[o].inuse);
    for (unsigned o = 0; o <= m.stack_orders; o++)
        traceEvent(EvSampleSavedOrder, o, 0, m.coro_saved_by_order[o]);
    traceEvent(EvSampleCoros, 0, (uint32_t)m.coro_running, m.coro_runnable | m.coro_waiting << 32);
    traceEvent(EvSampleSched, 0, 0, m.sched_busy_ns);
    traceEvent(EvSampleSched, 1, 0, m.sched_spin_ns);
    traceEvent(EvSampleSched, 2, 0, m.sched_idle_ns);
    const uint64_t events[] = { m.sched_steals,   m.sched_steals_started, m.sched_long_runs,
                                m.sched_handoffs, m.sched_ready_moves,    m.sched_stack_lends };
    for (unsigned k = 0; k < sizeof events / sizeof events[0]; k++)
        traceEvent(EvSampleSchedEvents, k, 0, events[k]);
}

static void *samplerMain(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&samplerStop, memory_order_acquire)) {
        sample();
        struct timespec ts = { sampleIntervalMs / 1000, (long)(sampleIntervalMs % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int gm_trace_start(const char *path)
{
    if (path == NULL || path[0] == 0 || strlen(path) >= sizeof tracePath) {
        errno = EINVAL;
        return -1;
    }
    runtime_init();
    pthread_mutex_lock(&traceLock);
    if (traceFd >= 0) {
        pthread_mutex_unlock(&traceLock);
        errno = EBUSY;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        pthread_mutex_unlock(&traceLock);
        return -1;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    unsigned char h[32];
    memcpy(h, "GOMEMTRC", 8);
    uint32_t version = TraceVersion, rsize = sizeof(traceRecord);
    uint64_t start = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec, pid = (uint64_t)getpid();
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &rsize, 4);
    memcpy(h + 16, &start, 8);
    memcpy(h + 24, &pid, 8);
    traceFd = fd;
    traceFailed = false;
    snprintf(tracePath, sizeof tracePath, "%s", path);
    writeAllLocked(h, sizeof h);
    if (traceFailed) {
        close(fd);
        traceFd = -1;
        pthread_mutex_unlock(&traceLock);
        errno = EIO;
        return -1;
    }
    traceStart = nanotime();
    traceStartTicks = cputicks();
    nthreads = 0;
    for (traceBuf *b = allBufs; b != NULL; b = b->next)
        b->owned = false;                               // a stopped trace's buffers are empty
    __atomic_add_fetch(&traceGen, 1, __ATOMIC_RELAXED); // threads take fresh buffers
    atomic_store_explicit(&samplerStop, false, memory_order_relaxed);
    pthread_mutex_unlock(&traceLock);
    __atomic_store_n(&trace_on, true, __ATOMIC_RELEASE);
    // Outside traceLock: pthread_create may call malloc, which (as the
    // drop-in malloc) takes heap locks that are held around trace events.
    bool started = pthread_create(&sampler, NULL, samplerMain, NULL) == 0;
    pthread_mutex_lock(&traceLock);
    samplerRunning = started;
    pthread_mutex_unlock(&traceLock);
    return 0;
}

int gm_trace_stop(void)
{
    pthread_mutex_lock(&traceLock);
    if (traceFd < 0) {
        pthread_mutex_unlock(&traceLock);
        errno = EINVAL;
        return -1;
    }
    bool joinSampler = samplerRunning;
    samplerRunning = false;
    pthread_mutex_unlock(&traceLock);
    if (joinSampler) {
        atomic_store_explicit(&samplerStop, true, memory_order_release);
        pthread_join(sampler, NULL);
    }
    sample(); // the last point of every curve
    gm_memstats m;
    gm_stats(&m);
    for (unsigned c = 1; c < GM_SIZE_CLASSES && c < NumSizeClasses; c++)
    {
        traceEvent(EvClassLive, c, (uint32_t)m.by_size[c].size, m.by_size[c].mallocs - m.by_size[c].frees);
        traceEvent(EvClassTotal, c, (uint32_t)m.by_size[c].size, m.by_size[c].mallocs);
    }
    traceEvent(EvClassLive, 0, 0, m.large_inuse); // class 0: bytes of large objects
    traceEvent(EvTinyLive, 0, (uint32_t)m.tiny_blocks, m.tiny_allocs - m.tiny_frees);
    __atomic_store_n(&trace_on, false, __ATOMIC_RELEASE);
    pthread_mutex_lock(&traceLock);
    traceBuf *bufs = allBufs;
    pthread_mutex_unlock(&traceLock);
    for (traceBuf *b = bufs; b != NULL; b = b->next) { // never unlinked: safe to walk
        spin_lock(&b->lk);
        flushBuf(b);
        spin_unlock(&b->lk);
    }
    pthread_mutex_lock(&traceLock);
    bool failed = traceFailed;
    int rc = close(traceFd);
    traceFd = -1;
    pthread_mutex_unlock(&traceLock);
    if (failed || rc != 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}

static void stopAtExit(void)
{
    if (__atomic_load_n(&trace_on, __ATOMIC_RELAXED))
        gm_trace_stop();
}

static void forkChild(void)
{
    // The sampler thread did not come along and the file is the parent's.
    __atomic_store_n(&trace_on, false, __ATOMIC_RELAXED);
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    traceLock = fresh;
    if (traceFd >= 0)
        close(traceFd);
    traceFd = -1;
    samplerRunning = false;
    for (traceBuf *b = allBufs; b != NULL; b = b->next) {
        b->lk = 0;
        b->n = 0;
        b->owned = false;
    }
    tbuf = NULL;
}

__attribute__((constructor)) static void traceFromEnv(void)
{
    os_atfork(NULL, NULL, forkChild);
    // The key now, while its index is low: glibc allocates (with the
    // drop-in malloc, under heap locks a trace event may be holding) only
    // for keys past the first 32, at pthread_setspecific.
    pthread_once(&traceKeyOnce, keyInit);
    const char *path = os_getenv("GOMEM_TRACE");
    if (path == NULL || path[0] == 0)
        return;
    const char *iv = os_getenv("GOMEM_TRACE_INTERVAL");
    if (iv != NULL) {
        char *end;
        unsigned long ms = strtoul(iv, &end, 10);
        if (*iv == 0 || *end != 0 || ms == 0 || ms > 60000)
            runtime_warning("GOMEM_TRACE_INTERVAL='%s' is not a number of milliseconds from 1 to 60000; using 10", iv);
        else
            sampleIntervalMs = (unsigned)ms;
    }
    if (gm_trace_start(path) != 0) {
        runtime_warning("GOMEM_TRACE: cannot write '%s' (%s); not tracing", path, strerror(errno));
        return;
    }
    atexit(stopAtExit);
}
