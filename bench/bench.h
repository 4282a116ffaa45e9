// SPDX-License-Identifier: MIT
//
// Shared helpers for bench/*.c: a clock, repeated runs with min/median, and
// Go's benchmark line format ("BenchmarkName-P  iterations  ns/op  extra"),
// so that Go's tools (benchstat) read gomem's results beside Go's own.
// Benchmarks print what they compared and never assert.
#ifndef GOMEM_BENCH_H
#define GOMEM_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double min, median;
} bench_result;

// Runs fn(arg, iters) `runs` times; returns min and median ns per iteration.
static inline bench_result bench_run(void (*fn)(void *, long), void *arg, long iters, int runs)
{
    double t[64];
    if (runs > 64)
        runs = 64;
    fn(arg, iters / 10 + 1); // warm up
    for (int r = 0; r < runs; r++) {
        double t0 = bench_now();
        fn(arg, iters);
        t[r] = (bench_now() - t0) / (double)iters;
    }
    qsort(t, (size_t)runs, sizeof t[0], bench_cmp_double);
    bench_result res = { t[0], runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2 };
    return res;
}

static inline void bench_print(const char *name, long iters, bench_result r, int runs)
{
    printf("Benchmark%s-%ld\t%10ld\t%10.2f ns/op\t(min of %d runs; median %.2f)\n", name,
           sysconf(_SC_NPROCESSORS_ONLN), iters, r.min, runs, r.median);
}

static inline size_t bench_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

// This process's peak resident set since it was exec'd (VmHWM), in KiB.
// Not getrusage's ru_maxrss: Linux keeps the peak of the process image an
// exec replaced, so a program started from a shell or from python3 reads
// at least that shell's or interpreter's size (1.6 MB from bash, 14 MB
// from python3), whatever its own peak.
static inline size_t bench_peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmHWM: %zu kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

#endif
