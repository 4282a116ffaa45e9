// SPDX-License-Identifier: MIT
//
// Allocator workloads for bench/malloc.sh. Built twice: against the C
// library's malloc (and so, under LD_PRELOAD, jemalloc, mimalloc or
// tcmalloc) and with -DUSE_GOMEM against gm_malloc. One run of one workload:
//   malloc_work WORKLOAD THREADS
// prints one line: "workload threads ms maxrss_kib rss_after_free_kib check".
// Workloads: churn (8-128 B, large live set), powerlaw (sizes up
// to 64 KiB, power-law), prodcons (producer/consumer, every free remote),
// larson (server pattern: objects outlive their thread's round and are freed
// by another thread), realloc (strings grown piece by piece), large (64 KiB
// to 4 MiB, then RSS after everything is freed).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef USE_GOMEM
#include "gomem.h"
#define MALLOC gm_malloc
#define FREE gm_free
#define REALLOC gm_realloc
#else
#define MALLOC malloc
#define FREE free
#define REALLOC realloc
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

static size_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (size_t)sysconf(_SC_PAGESIZE) / 1024;
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
    enum { Live = 32, Ops = 20000 };
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

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s churn|powerlaw|prodcons|larson|realloc|large THREADS\n", argv[0]);
        return 2;
    }
    const char *w = argv[1];
    nthreads = atoi(argv[2]);
    if (nthreads < 1 || nthreads > 16)
        return 2;
    void *(*fn)(void *) = NULL;
    if (!strcmp(w, "churn"))
        fn = churn;
    else if (!strcmp(w, "powerlaw"))
        fn = powerlaw;
    else if (!strcmp(w, "larson"))
        fn = larson;
    else if (!strcmp(w, "realloc"))
        fn = reallocs;
    else if (!strcmp(w, "large"))
        fn = large;
    else if (strcmp(w, "prodcons") != 0)
        return 2;

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
        for (int i = 0; i < nthreads; i++)
            pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)(i + 1));
        for (int i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
        if (fn == larson)
            for (int i = 0; i < nthreads; i++) {
                for (int k = 0; k < LarsonSlots; k++)
                    FREE(larson_arrays[i][k]);
                free(larson_arrays[i]);
            }
    }
    double ms = now_ms() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s %d %.1f %ld %zu %llu\n", w, nthreads, ms, ru.ru_maxrss, rss_kib(),
           (unsigned long long)atomic_load(&checksum));
    return 0;
}
