// SPDX-License-Identifier: MIT
//
// Allocator workloads for bench/malloc.sh. Built twice: against the C
// library's malloc (and so, under LD_PRELOAD, jemalloc, mimalloc, tcmalloc
// or gomem's drop-in libgomem.so) and with -DUSE_GOMEM against gm_malloc.
// One run of one workload:
//   malloc_work WORKLOAD THREADS
// prints one line: "workload threads ms maxrss_kib rss_after_free_kib check"
// (maxrss: the peak since exec, VmHWM; bench.h says why not ru_maxrss).
// With THREADS > 1 every thread runs its own copy of the workload on its own
// objects (split work: the same total as one thread), unless it says so.
//
// The shapes of the allocator literature (mimalloc-bench, Hoard's suite),
// written here:
//   churn     8-128 B, 200k live slots, random replacement (a slot may be empty)
//   rfree     100k live objects of 8-128 B: each step frees a random live one
//             and allocates a new random size (random-order frees)
//   strings   1M live strings of 1-15 B (strdup), replaced at random
//   powerlaw  20k live, power-law sizes 8 B-64 KiB
//   rptest    50k live, power-law sizes 8 B-64 KiB, random free order, with
//             bursts that allocate and free in runs (rpmalloc's benchmark)
//   cfrac     many small short-lived objects, stack-like lifetimes (cfrac's
//             bignums: 8-64 B, most freed soon, in about reverse order)
//   espresso  mixed sizes 8 B-4 KiB with geometric lifetimes (a time wheel)
//   prodcons  xmalloc-style producer/consumer: every free is remote
//   larson    server pattern: objects outlive their thread's round and are
//             freed by another thread
//   mstress   mimalloc's mstress: random sets kept per thread, a share of
//             them handed to other threads through a global transfer array,
//             occasional large objects
//   cscratch  cache-scratch (passive false sharing): each thread frees one
//             small object the main thread allocated, then mallocs, writes
//             and frees objects of that size in a loop
//   cthrash   cache-thrash (active false sharing): each thread mallocs,
//             writes and frees small objects in a loop
//   realloc   strings grown piece by piece, 64 B-64 KiB
//   regrow    buffers grown by realloc from 16 B to 1 MiB (x1.5 steps)
//   large     64 KiB to 4 MiB, then RSS after everything is freed
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench.h"

#ifdef USE_GOMEM
#include "gomem.h"
#define MALLOC gm_malloc
#define FREE gm_free
#define REALLOC gm_realloc
#define STRDUP gm_strdup
#else
#define MALLOC malloc
#define FREE free
#define REALLOC realloc
#define STRDUP strdup
#endif

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int nthreads;
static _Atomic uint64_t checksum;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}


// ------------------------------------------------------------------ churn

static void *churn(void *arg)
{
    uint64_t s = (uintptr_t)arg * 7919 + 1, sum = 0;
    enum { Live = 200000, Ops = 8000000 };
    unsigned char **slot = calloc(Live, sizeof *slot);
    for (long i = 0; i < Ops / nthreads; i++) {
        uint64_t r = rnd(&s);
        size_t k = r % Live;
        if (slot[k]) {
            sum += slot[k][0];
            FREE(slot[k]);
        }
        size_t n = 8 + (r >> 32) % 121;
        slot[k] = MALLOC(n);
        slot[k][0] = (unsigned char)n;
    }
    for (size_t k = 0; k < Live; k++)
        FREE(slot[k]);
    free(slot);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// --------------------------------------------------------------- powerlaw

static size_t powerlaw_size(uint64_t *s)
{
    // P(size in [2^k, 2^(k+1))) halves with each k from 8 B to 64 KiB.
    uint64_t r = rnd(s);
    int k = 3;
    while (k < 15 && (r & 1)) {
        k++;
        r >>= 1;
    }
    size_t lo = (size_t)1 << k;
    return lo + (rnd(s) % lo);
}

static void *powerlaw(void *arg)
{
    uint64_t s = (uintptr_t)arg * 104729 + 3, sum = 0;
    enum { Live = 20000, Ops = 4000000 };
    unsigned char **slot = calloc(Live, sizeof *slot);
    for (long i = 0; i < Ops / nthreads; i++) {
        size_t k = rnd(&s) % Live;
        if (slot[k]) {
            sum += slot[k][0];
            FREE(slot[k]);
        }
        size_t n = powerlaw_size(&s);
        slot[k] = MALLOC(n);
        slot[k][0] = (unsigned char)n;
        slot[k][n - 1] = 1;
    }
    for (size_t k = 0; k < Live; k++)
        FREE(slot[k]);
    free(slot);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// --------------------------------------------------------------- prodcons

enum { Ring = 4096 };
typedef struct {
    void *_Atomic q[Ring];
    long n;
} ring;

static void *consumer(void *arg)
{
    ring *r = arg;
    uint64_t sum = 0;
    for (long i = 0; i < r->n; i++) {
        void *p;
        while ((p = atomic_exchange_explicit(&r->q[i % Ring], NULL, memory_order_acquire)) == NULL)
            sched_yield();
        sum += *(unsigned char *)p;
        FREE(p);
    }
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

static void *producer(void *arg)
{
    ring *r = arg;
    uint64_t s = (uintptr_t)r;
    for (long i = 0; i < r->n; i++) {
        size_t n = 16 + rnd(&s) % 241;
        unsigned char *p = MALLOC(n);
        p[0] = (unsigned char)n;
        while (atomic_load_explicit(&r->q[i % Ring], memory_order_relaxed) != NULL)
            sched_yield();
        atomic_store_explicit(&r->q[i % Ring], p, memory_order_release);
    }
    return NULL;
}

// ------------------------------------------------------------------ larson

enum { LarsonSlots = 20000, LarsonRounds = 40, LarsonOps = 100000 };
static unsigned char **larson_arrays[16];
static pthread_barrier_t larson_barrier;

static void *larson(void *arg)
{
    int t = (int)(uintptr_t)arg;
    uint64_t s = (uint64_t)t * 31 + 5, sum = 0;
    for (int round = 0; round < LarsonRounds; round++) {
        // Each round works on another thread's array: most frees are of
        // objects another thread allocated.
        unsigned char **slot = larson_arrays[(t + round) % nthreads];
        for (long i = 0; i < LarsonOps / nthreads * 2; i++) {
            size_t k = rnd(&s) % LarsonSlots;
            if (slot[k]) {
                sum += slot[k][0];
                FREE(slot[k]);
            }
            size_t n = 16 + rnd(&s) % 497;
            slot[k] = MALLOC(n);
            slot[k][0] = (unsigned char)n;
        }
        pthread_barrier_wait(&larson_barrier);
    }
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ----------------------------------------------------------------- realloc

static void *reallocs(void *arg)
{
    uint64_t s = (uintptr_t)arg * 13 + 7, sum = 0;
    enum { Strings = 64, Rounds = 300 };
    char *str[Strings] = { 0 };
    size_t len[Strings] = { 0 }, target[Strings];
    for (int k = 0; k < Strings; k++)
        target[k] = 64 + rnd(&s) % 65536;
    for (long round = 0; round < (long)Rounds * Strings / nthreads;) {
        int k = (int)(rnd(&s) % Strings);
        size_t add = 1 + rnd(&s) % 48;
        str[k] = REALLOC(str[k], len[k] + add + 1);
        memset(str[k] + len[k], 'a' + k % 26, add);
        len[k] += add;
        str[k][len[k]] = 0;
        if (len[k] >= target[k]) {
            sum += (unsigned char)str[k][len[k] / 2];
            FREE(str[k]);
            str[k] = NULL;
            len[k] = 0;
            target[k] = 64 + rnd(&s) % 65536;
            round++;
        }
    }
    for (int k = 0; k < Strings; k++)
        FREE(str[k]);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ------------------------------------------------------------------- large

static void *large(void *arg)
{
    uint64_t s = (uintptr_t)arg * 17 + 11, sum = 0;
    // 1000 operations: mimalloc and jemalloc, which give such blocks back
    // to the OS at each free, took minutes with 20000.
    enum { Live = 32, Ops = 1000 };
    unsigned char *slot[Live] = { 0 };
    size_t sz[Live] = { 0 };
    for (long i = 0; i < Ops / nthreads; i++) {
        int k = (int)(rnd(&s) % Live);
        if (slot[k]) {
            sum += slot[k][sz[k] - 1];
            FREE(slot[k]);
        }
        size_t n = ((size_t)64 << 10) << (rnd(&s) % 7); // 64 KiB .. 4 MiB
        n += rnd(&s) % 4096;
        slot[k] = MALLOC(n);
        sz[k] = n;
        // Touch every 4 KiB page, as a program filling its buffer would; a
        // sparser touch would measure where allocators place objects, not
        // how much memory they keep.
        for (size_t off = 0; off < n; off += 4096)
            slot[k][off] = 1;
        slot[k][n - 1] = (unsigned char)n;
    }
    for (int k = 0; k < Live; k++)
        FREE(slot[k]);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ------------------------------------------------------------------- rfree

static void *rfree(void *arg)
{
    uint64_t s = (uintptr_t)arg * 7717 + 9, sum = 0;
    enum { Live = 100000, Ops = 3000000 };
    unsigned char **slot = malloc(Live * sizeof *slot);
    for (size_t k = 0; k < Live; k++) {
        size_t n = 8 + rnd(&s) % 121;
        slot[k] = MALLOC(n);
        slot[k][0] = (unsigned char)n;
    }
    for (long i = 0; i < Ops / nthreads; i++) {
        uint64_t r = rnd(&s);
        size_t k = r % Live;
        sum += slot[k][0];
        FREE(slot[k]);
        size_t n = 8 + (r >> 32) % 121;
        slot[k] = MALLOC(n);
        slot[k][0] = (unsigned char)n;
    }
    for (size_t k = 0; k < Live; k++)
        FREE(slot[k]);
    free(slot);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ----------------------------------------------------------------- strings

static void *strings(void *arg)
{
    uint64_t s = (uintptr_t)arg * 6151 + 1, sum = 0;
    enum { Live = 1000000, Ops = 3000000 };
    long live = Live / nthreads;
    char **slot = malloc((size_t)live * sizeof *slot);
    char buf[16];
    for (long k = 0; k < live; k++) {
        size_t n = 1 + rnd(&s) % 15;
        memset(buf, 'a' + (int)(k % 26), n - 1);
        buf[n - 1] = 0;
        slot[k] = STRDUP(buf);
    }
    for (long i = 0; i < Ops / nthreads; i++) {
        uint64_t r = rnd(&s);
        size_t k = r % (uint64_t)live;
        sum += (unsigned char)slot[k][0];
        FREE(slot[k]);
        size_t n = 1 + (r >> 32) % 15;
        memset(buf, 'a' + (int)(i % 26), n - 1);
        buf[n - 1] = 0;
        slot[k] = STRDUP(buf);
    }
    for (long k = 0; k < live; k++)
        FREE(slot[k]);
    free(slot);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ------------------------------------------------------------------ rptest

static void *rptest(void *arg)
{
    uint64_t s = (uintptr_t)arg * 92821 + 5, sum = 0;
    enum { Live = 50000, Ops = 3000000, Burst = 64 };
    unsigned char **slot = calloc(Live, sizeof *slot);
    for (long i = 0; i < Ops / nthreads;) {
        // A burst: free a run of random live objects, then allocate them
        // again, so allocation and free come in runs as in rpmalloc's test.
        size_t ks[Burst];
        int b = 1 + (int)(rnd(&s) % Burst);
        for (int j = 0; j < b; j++) {
            size_t k = ks[j] = rnd(&s) % Live;
            if (slot[k]) {
                sum += slot[k][0];
                FREE(slot[k]);
                slot[k] = NULL;
            }
        }
        for (int j = 0; j < b; j++, i++) {
            size_t k = ks[j];
            if (slot[k])
                continue;
            size_t n = powerlaw_size(&s);
            slot[k] = MALLOC(n);
            slot[k][0] = (unsigned char)n;
            slot[k][n - 1] = 1;
        }
    }
    for (size_t k = 0; k < Live; k++)
        FREE(slot[k]);
    free(slot);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ------------------------------------------------------------------- cfrac

static void *cfrac(void *arg)
{
    uint64_t s = (uintptr_t)arg * 3571 + 2, sum = 0;
    enum { Depth = 1024, Ops = 10000000 };
    unsigned char **stack = malloc(Depth * sizeof *stack);
    int top = 0;
    for (long i = 0; i < Ops / nthreads; i++) {
        uint64_t r = rnd(&s);
        // Pushes win while the stack is shallow, pops while deep: the
        // depth wanders around 512.
        bool push = (int)(r & 1023) + top < 1024; // top < 1024 <= Depth
        if (push) {
            size_t n = 8 + ((r >> 16) & 7) * 8;
            unsigned char *p = MALLOC(n);
            p[0] = (unsigned char)n;
            p[n - 1] = 1;
            stack[top++] = p;
        } else {
            // Mostly the newest; now and then one deeper (a result kept).
            int k = (r >> 24) % 8 == 0 ? (int)((r >> 32) % (uint64_t)top) : top - 1;
            sum += stack[k][0];
            FREE(stack[k]);
            stack[k] = stack[--top];
        }
    }
    while (top > 0)
        FREE(stack[--top]);
    free(stack);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ---------------------------------------------------------------- espresso

static void *espresso(void *arg)
{
    uint64_t s = (uintptr_t)arg * 2749 + 4, sum = 0;
    enum { Wheel = 1024, PerTick = 64, Ops = 6000000 };
    // wheel[t] holds the objects that die at tick t (mod Wheel).
    unsigned char **wheel = calloc((size_t)Wheel * PerTick, sizeof *wheel);
    int *count = calloc(Wheel, sizeof *count);
    long tick = 0;
    for (long i = 0; i < Ops / nthreads; tick++) {
        int w = (int)(tick % Wheel);
        for (int j = 0; j < count[w]; j++) {
            unsigned char *p = wheel[(size_t)w * PerTick + j];
            sum += p[0];
            FREE(p);
        }
        count[w] = 0;
        for (int j = 0; j < 24; j++, i++) {
            uint64_t r = rnd(&s);
            // Mostly small (8-128 B), some medium (to 1 KiB), a few to 4 KiB.
            size_t n = (r & 7) < 6 ? 8 + (r >> 8) % 121 : (r & 7) == 6 ? 128 + (r >> 8) % 897 : 1024 + (r >> 8) % 3073;
            // Geometric lifetime: most die within a few ticks, some live long.
            int life = 1;
            while (life < Wheel - 1 && (rnd(&s) & 3) != 0)
                life += life < 64 ? 1 : 37;
            int d = (int)((tick + life) % Wheel);
            if (count[d] == PerTick) {
                d = (int)((tick + 1) % Wheel);
                if (count[d] == PerTick)
                    continue;
            }
            unsigned char *p = MALLOC(n);
            p[0] = (unsigned char)n;
            wheel[(size_t)d * PerTick + count[d]++] = p;
        }
    }
    for (int w = 0; w < Wheel; w++)
        for (int j = 0; j < count[w]; j++)
            FREE(wheel[(size_t)w * PerTick + j]);
    free(wheel);
    free(count);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ----------------------------------------------------------------- mstress

enum { MstressTransfer = 1024 };
static void *_Atomic mstress_transfer[MstressTransfer];

static void *mstress(void *arg)
{
    uint64_t s = (uintptr_t)arg * 1303 + 8, sum = 0;
    enum { Live = 20000, Ops = 4000000 };
    unsigned char **slot = calloc(Live, sizeof *slot);
    for (long i = 0; i < Ops / nthreads; i++) {
        uint64_t r = rnd(&s);
        size_t k = r % Live;
        if (slot[k]) {
            if ((r >> 20) % 16 == 0) {
                // Hand it over: whoever takes the transfer slot frees it.
                void *old = atomic_exchange(&mstress_transfer[(r >> 32) % MstressTransfer], slot[k]);
                if (old != NULL) {
                    sum += *(unsigned char *)old;
                    FREE(old);
                }
            } else {
                sum += slot[k][0];
                FREE(slot[k]);
            }
        }
        // Mostly small, 1 in 100 up to 64 KiB, 1 in 10000 up to 1 MiB.
        uint64_t q = rnd(&s);
        size_t n = q % 10000 == 0 ? 65536 + (q >> 16) % (1 << 20) : q % 100 == 0 ? 1024 + (q >> 16) % 65536
                                                                               : 8 + (q >> 16) % 249;
        slot[k] = MALLOC(n);
        slot[k][0] = (unsigned char)n;
        slot[k][n - 1] = 1;
    }
    for (size_t k = 0; k < Live; k++)
        FREE(slot[k]);
    free(slot);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ------------------------------------------------- cache-scratch, -thrash

static void *scratch_objs[16];

static void *cscratch(void *arg)
{
    int t = (int)(uintptr_t)arg - 1;
    enum { Ops = 20000000, Writes = 4 };
    uint64_t sum = 0;
    // The object the main thread allocated next to the others' is freed
    // here: an allocator that hands it back to this thread's mallocs makes
    // the threads write to one cache line.
    FREE(scratch_objs[t]);
    for (long i = 0; i < Ops / nthreads / Writes; i++) {
        volatile unsigned char *p = MALLOC(8);
        for (int w = 0; w < Writes; w++)
            for (int j = 0; j < 8; j++)
                p[j] = (unsigned char)(w + j);
        sum += p[0];
        FREE((void *)p);
    }
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

static void *cthrash(void *arg)
{
    (void)arg;
    enum { Ops = 20000000, Writes = 4 };
    uint64_t sum = 0;
    for (long i = 0; i < Ops / nthreads / Writes; i++) {
        volatile unsigned char *p = MALLOC(8);
        for (int w = 0; w < Writes; w++)
            for (int j = 0; j < 8; j++)
                p[j] = (unsigned char)(w + j);
        sum += p[0];
        FREE((void *)p);
    }
    atomic_fetch_add(&checksum, sum);
    return NULL;
}

// ------------------------------------------------------------------ regrow

static void *regrow(void *arg)
{
    uint64_t s = (uintptr_t)arg * 433 + 6, sum = 0;
    enum { Bufs = 32, Growths = 40000, Max = 1 << 20 };
    unsigned char *buf[Bufs] = { 0 };
    size_t len[Bufs] = { 0 };
    for (long i = 0; i < Growths / nthreads; i++) {
        int k = (int)(rnd(&s) % Bufs);
        size_t n = len[k] == 0 ? 16 : len[k] + len[k] / 2;
        if (n > Max) {
            sum += buf[k][len[k] - 1];
            FREE(buf[k]);
            buf[k] = NULL;
            len[k] = 0;
            continue;
        }
        buf[k] = REALLOC(buf[k], n);
        // Fill what is new, as a buffer being appended to would.
        memset(buf[k] + len[k], 'a' + k, n - len[k]);
        len[k] = n;
    }
    for (int k = 0; k < Bufs; k++)
        FREE(buf[k]);
    atomic_fetch_add(&checksum, sum);
    return NULL;
}


int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s WORKLOAD THREADS (the workloads are listed at the top of %s)\n", argv[0],
                __FILE__);
        return 2;
    }
    const char *w = argv[1];
    nthreads = atoi(argv[2]);
    if (nthreads < 1 || nthreads > 16)
        return 2;
    static const struct {
        const char *name;
        void *(*fn)(void *);
    } table[] = {
        { "churn", churn },       { "rfree", rfree },       { "strings", strings },   { "powerlaw", powerlaw },
        { "rptest", rptest },     { "cfrac", cfrac },       { "espresso", espresso }, { "larson", larson },
        { "mstress", mstress },   { "cscratch", cscratch }, { "cthrash", cthrash },   { "realloc", reallocs },
        { "regrow", regrow },     { "large", large },       { "prodcons", NULL },
    };
    void *(*fn)(void *) = NULL;
    size_t wi = 0;
    while (wi < sizeof table / sizeof table[0] && strcmp(w, table[wi].name) != 0)
        wi++;
    if (wi == sizeof table / sizeof table[0]) {
        fprintf(stderr, "%s: unknown workload %s\n", argv[0], w);
        return 2;
    }
    fn = table[wi].fn;

    double t0 = now_ms();
    pthread_t t[32];
    if (fn == NULL) {
        // nthreads producer/consumer pairs, 4M objects in all.
        static ring rings[16];
        for (int i = 0; i < nthreads; i++) {
            rings[i].n = 4000000 / nthreads;
            pthread_create(&t[2 * i], NULL, producer, &rings[i]);
            pthread_create(&t[2 * i + 1], NULL, consumer, &rings[i]);
        }
        for (int i = 0; i < 2 * nthreads; i++)
            pthread_join(t[i], NULL);
    } else {
        if (fn == larson) {
            pthread_barrier_init(&larson_barrier, NULL, (unsigned)nthreads);
            for (int i = 0; i < nthreads; i++)
                larson_arrays[i] = calloc(LarsonSlots, sizeof(void *));
        }
        if (fn == cscratch)
            for (int i = 0; i < nthreads; i++)
                scratch_objs[i] = MALLOC(8); // side by side, from the main thread
        for (int i = 0; i < nthreads; i++)
            pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)(i + 1));
        for (int i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
        if (fn == mstress)
            for (int i = 0; i < MstressTransfer; i++)
                FREE(atomic_exchange(&mstress_transfer[i], NULL));
        if (fn == larson)
            for (int i = 0; i < nthreads; i++) {
                for (int k = 0; k < LarsonSlots; k++)
                    FREE(larson_arrays[i][k]);
                free(larson_arrays[i]);
            }
    }
    double ms = now_ms() - t0;
    printf("%s %d %.1f %zu %zu %llu\n", w, nthreads, ms, bench_peak_rss_kib(), bench_rss_kib(),
           (unsigned long long)atomic_load(&checksum));
    return 0;
}
