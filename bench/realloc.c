// SPDX-License-Identifier: MIT
//
// bench/realloc: chains of large reallocs, pages moved against copied.
//
// Workload (BenchmarkReallocChain): malloc 1 MiB and write it, realloc to
// 2, 4, ... 64 MiB writing each new half (a growing buffer), free. A step
// grows in place when the pages after the object are free (a lone chain
// always does); the others move or copy (both counted per chain). Pair: two
// such buffers grown in turns, each in the other's way.
//   Fresh: the first chain of a new heap (a forked child each time), which
//     grows the heap as it goes: what a program's first big buffer sees,
//     and where realloc moves pages (realloc.c, "When").
//   Warm: chains in a loop, reusing the pages the last one freed: realloc
//     copies into pages the heap keeps (moving would fault them in again).
// Compared: realloc as built ("move"), realloc moving onto any new span
// ("any": reallocMoveAny, the tests' switch, without realloc.c's "When"),
// and realloc copying ("copy": reallocMapLimit = 1, as if the mapping
// bound were reached, so every step copies).
// Reported per chain: wall time, time inside realloc (median), peak
// resident growth (fresh: the child's maxrss, transients included), system
// time of the fresh child (median).
//
//   build/bench/realloc [RUNS] [move|any|copy]   (default 5 runs, all modes)
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "bench.h"
#include "../tests/export_test.h"

enum { Chains = 4, MaxRuns = 64 };

typedef struct {
    double ns, reallocNs;
    size_t peakKiB; // resident growth over the chain
    int inplace;    // steps that grew in place
    int moves;      // steps that moved pages (fresh chains only)
    double sysNs;   // system time of the whole child (fresh chains only)
} chainResult;

// One chain (two when pair: grown in turns, each in the other's way).
static chainResult chain(bool pair)
{
    chainResult r = { 0, 0, 0, 0, 0, 0 };
    size_t rss0 = bench_rss_kib();
    double t0 = bench_now();
    size_t n = 1 << 20;
    int k = pair ? 2 : 1;
    char *p[2];
    for (int i = 0; i < k; i++) {
        p[i] = gm_malloc(n);
        memset(p[i], 1, n);
    }
    for (size_t m = 2 * n; m <= ((size_t)64 << 20); m *= 2) {
        for (int i = 0; i < k; i++) {
            double t = bench_now();
            char *q = gm_realloc(p[i], m);
            r.reallocNs += bench_now() - t;
            r.inplace += q == p[i];
            p[i] = q;
            memset(q + n, 2, m - n);
        }
        n = m;
        size_t rss = bench_rss_kib(); // ~10 us, also timed: the same in both modes
        if (rss > rss0 && rss - rss0 > r.peakKiB)
            r.peakKiB = rss - rss0;
    }
    for (int i = 0; i < k; i++)
        gm_free(p[i]);
    r.ns = bench_now() - t0;
    return r;
}

enum { ModeMove, ModeAny, ModeCopy };
static const char *const modeName[3] = { "move", "any", "copy" };

static void setMode(int mode)
{
    reallocMoveAny = mode == ModeAny;
    reallocMapLimit = mode == ModeCopy ? 1 : 0;
    malloc_recountMappings();
}

// chain(pair) in a forked child, on a heap that has not grown yet.
static chainResult freshChain(bool pair, int mode)
{
    chainResult r = { 0, 0, 0, 0, 0, 0 };
    int fd[2];
    if (pipe(fd) != 0)
        return r;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setMode(mode);
        gm_memstats a, b;
        gm_stats(&a);
        r = chain(pair);
        gm_stats(&b);
        r.moves = (int)(b.realloc_moves - a.realloc_moves);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        r.peakKiB = (size_t)ru.ru_maxrss; // the true peak, between samples too
        r.sysNs = (double)ru.ru_stime.tv_sec * 1e9 + (double)ru.ru_stime.tv_usec * 1e3;
        ssize_t w = write(fd[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    if (read(fd[0], &r, sizeof r) != (ssize_t)sizeof r)
        r.ns = 0;
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return r;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bench_result one(const char *name, bool fresh, bool pair, int mode, int runs)
{
    double ns[MaxRuns], rns[MaxRuns], sys[MaxRuns];
    size_t peak = 0;
    int inplace = 0, n = 0;
    uint64_t moves = 0;
    gm_memstats a, b;
    if (!fresh) {
        setMode(mode);
        chain(pair); // warm-up: the heap grows to its size
    }
    gm_stats(&a);
    for (int r = 0; r < runs; r++) {
        double sum = 0, rsum = 0;
        int k = fresh ? 1 : Chains;
        for (int i = 0; i < k; i++, n++) {
            chainResult c = fresh ? freshChain(pair, mode) : chain(pair);
            sum += c.ns;
            rsum += c.reallocNs;
            sys[r] = c.sysNs;
            if (c.peakKiB > peak)
                peak = c.peakKiB;
            inplace += c.inplace;
            moves += (uint64_t)c.moves;
        }
        ns[r] = sum / k;
        rns[r] = rsum / k;
    }
    gm_stats(&b);
    if (!fresh)
        moves = b.realloc_moves - a.realloc_moves;
    double rmed = median(rns, runs), smed = fresh ? median(sys, runs) : 0;
    bench_result res = { 0, median(ns, runs) };
    res.min = ns[0]; // sorted by median()
    printf("Benchmark%s-%ld\t%10d\t%10.0f ns/op\t(min of %d runs; median %.0f)\t%.0f realloc-ns/op\t"
           "%zu peak-rss-KiB\t%.1f moves/op\t%.1f in-place/op\t%.0f sys-ns/op\n",
           name, sysconf(_SC_NPROCESSORS_ONLN), n / runs, res.min, runs, res.median, rmed, peak,
           (double)moves / n, (double)inplace / n, smed);
    return res;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    const char *only = argc > 2 ? argv[2] : NULL;
    if (runs < 1 || runs > MaxRuns)
        runs = 5;
    printf("bench/realloc: malloc 1 MiB, realloc doubling to 64 MiB writing each new half, free; %d chains per "
           "run, %d runs, min/median of the runs' means\n", Chains, runs);
    printf("compared: realloc as built (move), moving onto any new span (any), copying (copy); fresh: first "
           "chain of a forked child\n");
    static const char *const names[4] = { "Fresh", "PairFresh", "Warm", "PairWarm" };
    bench_result res[3][4];
    char name[64];
    // Fresh chains first, forked from this process before its heap grows;
    // then the warm ones in this process.
    for (int i = 0; i < 4; i++)
        for (int mode = 0; mode < 3; mode++) {
            if (only != NULL && strcmp(only, modeName[mode]) != 0)
                continue;
            snprintf(name, sizeof name, "ReallocChain%s/%s", names[i], modeName[mode]);
            res[mode][i] = one(name, i < 2, i % 2 == 1, mode, runs);
        }
    for (int i = 0; only == NULL && i < 4; i++)
        printf("ratio to move, %s: copy %.2fx, any %.2fx (min); copy %.2fx, any %.2fx (median)\n", names[i],
               res[ModeCopy][i].min / res[ModeMove][i].min, res[ModeAny][i].min / res[ModeMove][i].min,
               res[ModeCopy][i].median / res[ModeMove][i].median, res[ModeAny][i].median / res[ModeMove][i].median);
    gm_memstats st;
    gm_stats(&st);
    printf("this process (warm chains): realloc_moves %llu, realloc_moved_bytes %llu, mremap_calls %llu\n",
           (unsigned long long)st.realloc_moves, (unsigned long long)st.realloc_moved_bytes,
           (unsigned long long)st.mremap_calls);
    return 0;
}
