// SPDX-License-Identifier: MIT
//
// Coroutines, gomem's side; bench/coro.sh runs Go's side
// (bench/go/coro.go) in the same run. Prints:
//   - bytes per idle coroutine: N coroutines each parked after a shallow
//     call, RSS delta / N (default N = 1,000,000)
//   - create + run to end: ns per coroutine
//   - stack growth: a coroutine recursing to 1 MiB and back (see growth())
//   - yield switch: ns per switch between two coroutines (copied with a
//     small stack, and dedicated)
// Each timing: min/median of RUNS runs.   bench/coro [RUNS] [N]
#include "bench.h"
#include "gomem.h"

#include <stdint.h>
#include <string.h>

static long N = 1000000;
static gm_g **gs;

static void idle(void *arg)
{
    volatile char frame[32];
    frame[0] = (char)(uintptr_t)arg;
    gm_park();
    (void)frame[0];
}

static void park_all(void *arg)
{
    size_t *rss = arg;
    for (long i = 0; i < N; i++)
        gs[i] = gm_go(idle, (void *)(uintptr_t)i);
    // Other workers steal some: wait until every one has parked (readying
    // one that has not is an error).
    gm_memstats m;
    do {
        gm_yield();
        gm_stats(&m);
    } while (m.coro_waiting < (uint64_t)N);
    rss[1] = bench_rss_kib();
    for (long i = 0; i < N; i++)
        gm_ready(gs[i]);
}

static void nop(void *arg)
{
    (void)arg;
}

static long create_iters;
static void create_main(void *arg)
{
    (void)arg;
    for (long i = 0; i < create_iters; i++) {
        gm_go(nop, NULL);
        if ((i & 1023) == 1023)
            gm_yield(); // let the batch run and end
    }
}

static void create_run(void *arg, long iters)
{
    (void)arg;
    create_iters = iters;
    gm_main(create_main, NULL);
}

static long yield_iters;
static void yielder(void *arg)
{
    (void)arg;
    long n = yield_iters / 2; // in a register, as bench/boost_switch.cpp's loop bound
    for (long i = 0; i < n; i++)
        gm_yield();
}

static gm_stack_mode yield_mode;
static void yield_main(void *arg)
{
    (void)arg;
    gm_go_options o = { yield_mode, 16 << 10, NULL, 0 };
    gm_go_opts(yielder, NULL, &o);
    gm_go_opts(yielder, NULL, &o);
}

static void yield_run(void *arg, long iters)
{
    yield_mode = (gm_stack_mode)(uintptr_t)arg;
    yield_iters = iters;
    gm_main(yield_main, NULL);
}

static gm_chan *pingc, *pongc;
static long pp_iters;
static void ponger(void *arg)
{
    (void)arg;
    long v;
    while (gm_chan_recv(pingc, &v))
        gm_chan_send(pongc, &v);
}
static void pinger(void *arg)
{
    (void)arg;
    long v = 0;
    for (long i = 0; i < pp_iters; i++) {
        gm_chan_send(pingc, &v);
        gm_chan_recv(pongc, &v);
    }
    gm_chan_close(pingc);
}
static void pp_main(void *arg)
{
    (void)arg;
    gm_go(ponger, NULL);
    gm_go(pinger, NULL);
}
static void pingpong(void *arg, long iters)
{
    (void)arg;
    pingc = gm_chan_new(sizeof(long), 0);
    pongc = gm_chan_new(sizeof(long), 0);
    pp_iters = iters;
    gm_main(pp_main, NULL);
    gm_chan_free(pingc);
    gm_chan_free(pongc);
}

// Stack growth: a coroutine recurses to 1 MiB (1 KiB frames) and back,
// yielding every 64 frames both ways to a partner, so each yield saves its
// stack: the saved copy doubles from 256 B to 1 MiB on the way down and
// halves on the way up. One trip per fresh coroutine; Go's bench does the
// same with runtime.Gosched (its stack doubles by copystack instead).
static volatile int grow_done;
static long deep_rec(int depth)
{
    volatile char pad[1000];
    pad[0] = (char)depth;
    if (depth % 64 == 0)
        gm_yield();
    long r = depth < 1024 ? deep_rec(depth + 1) : 0;
    if (depth % 64 == 0)
        gm_yield();
    return r + pad[0];
}
static void grower(void *arg)
{
    (void)arg;
    deep_rec(1);
    grow_done = 1;
}
static void partner(void *arg)
{
    (void)arg;
    while (!grow_done)
        gm_yield();
}
static void grow_main(void *arg)
{
    grow_done = 0;
    gm_go_options o = { arg != NULL ? GM_STACK_DEDICATED : GM_STACK_COPIED, 2 << 20, "grower", 0 };
    gm_go_opts(grower, NULL, &o);
    gm_go(partner, NULL);
}
static void growth(void *arg, long iters)
{
    for (long i = 0; i < iters; i++)
        gm_main(grow_main, arg);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (argc > 2)
        N = atol(argv[2]);
    gs = calloc((size_t)N, sizeof *gs);
    size_t rss[2];
    rss[0] = bench_rss_kib();
    gm_main(park_all, rss);
    printf("bench/coro (gomem): %ld idle coroutines, RSS %zu -> %zu KiB: %.0f bytes per coroutine\n", N, rss[0],
           rss[1], (double)(rss[1] - rss[0]) * 1024 / (double)N);
    bench_result r = bench_run(create_run, NULL, 1000000, runs);
    bench_print("CoroCreateRun", 1000000, r, runs);
    r = bench_run(yield_run, (void *)(uintptr_t)GM_STACK_COPIED, 2000000, runs);
    bench_print("CoroYield/copied", 2000000, r, runs);
    r = bench_run(yield_run, (void *)(uintptr_t)GM_STACK_DEDICATED, 2000000, runs);
    bench_print("CoroYield/dedicated", 2000000, r, runs);
    r = bench_run(pingpong, NULL, 1000000, runs);
    bench_print("ChanPingPong/roundtrip", 1000000, r, runs);
    gm_memstats a, b;
    gm_stats(&a);
    growth(NULL, 1);
    gm_stats(&b);
    r = bench_run(growth, NULL, 50, runs);
    printf("BenchmarkStackGrowth1MiB-%ld\t50\t%.0f ns/op\t(min of %d runs; median %.0f; per trip %llu grow and "
           "%llu shrink steps of the saved copy: %.0f ns per step)\n",
           sysconf(_SC_NPROCESSORS_ONLN), r.min, runs, r.median,
           (unsigned long long)(b.coro_stack_grows - a.coro_stack_grows),
           (unsigned long long)(b.coro_stack_shrinks - a.coro_stack_shrinks),
           r.min / (double)(b.coro_stack_grows - a.coro_stack_grows + b.coro_stack_shrinks - a.coro_stack_shrinks));
    r = bench_run(growth, (void *)1, 50, runs);
    printf("BenchmarkStackGrowth1MiB/dedicated-%ld\t50\t%.0f ns/op\t(min of %d runs; median %.0f; a 2 MiB dedicated "
           "stack: nothing copied)\n",
           sysconf(_SC_NPROCESSORS_ONLN), r.min, runs, r.median);
    return 0;
}
