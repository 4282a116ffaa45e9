// SPDX-License-Identifier: MIT
//
// Coroutines, gomem's side; bench/coro.sh runs Go's side
// (bench/go/coro.go) in the same run, at GOMEM_PROCS=1 and 2 (rows at two
// workers end in /P2). Prints:
//   - bytes per idle coroutine: N coroutines each parked after a shallow
//     call, RSS delta / N (default N = 1,000,000); the same for N parked
//     in gm_chan_recv at their top level (CoroIdleRecv)
//   - create + run to end: ns per coroutine, in one stream (yielding every
//     1,024) and in batches of 100 awaited each time, both stack modes
//   - N coroutines alive at once (dedicated: 16 KiB stacks): ns per
//     coroutine to create them all, let each park, wake and end them
//   - stack growth: a coroutine recursing to 1 MiB and back (see growth())
//   - recursion 40,000 frames of 128 bytes deep in a fresh coroutine, first
//     pass: ns per call
//   - yield switch: ns per switch between two coroutines (copied with a
//     small stack, and dedicated)
//   - ping-pong over unbuffered channels, shallow and with 2, 8 and 32 KiB
//     of frames below each side when it parks, both modes
// Each timing: min/median of RUNS runs.   bench/coro [RUNS] [N]
#include "bench.h"
#include "gomem.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

static long N = 1000000;
static gm_g **gs;

static void idle(void *arg)
{
    volatile char frame[32];
    frame[0] = (char)(uintptr_t)arg;
    gm_park();
    (void)frame[0];
}

// Yields until n coroutines are parked (other workers may have stolen
// some and not run them yet).
static void wait_parked(long n)
{
    gm_memstats m;
    do {
        gm_yield();
        gm_stats(&m);
    } while (m.coro_waiting < (uint64_t)n);
}

static void park_all(void *arg)
{
    size_t *rss = arg;
    for (long i = 0; i < N; i++)
        gs[i] = gm_go(idle, (void *)(uintptr_t)i);
    // Readying one that has not parked yet is an error.
    wait_parked(N);
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
// iters round trips between the two coroutines main starts.
static void pingpong_with(void (*main)(void *), long iters)
{
    pingc = gm_chan_new(sizeof(long), 0);
    pongc = gm_chan_new(sizeof(long), 0);
    pp_iters = iters;
    gm_main(main, NULL);
    gm_chan_free(pingc);
    gm_chan_free(pongc);
}
static void pingpong(void *arg, long iters)
{
    (void)arg;
    pingpong_with(pp_main, iters);
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

// Create + run + exit in batches of 100: each batch is awaited before the
// next is made, so the stacks of one batch are there for the next (Go's
// side: a WaitGroup per batch).
static _Atomic long batch_ended;
static long batch_iters;
static gm_stack_mode batch_mode;
static void batch_nop(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&batch_ended, 1, memory_order_relaxed);
}
static void batch_main(void *arg)
{
    (void)arg;
    gm_go_options o = { batch_mode, 0, NULL, 0 };
    atomic_store(&batch_ended, 0);
    for (long i = 0; i < batch_iters; i += 100) {
        for (int k = 0; k < 100; k++)
            if (gm_go_opts(batch_nop, NULL, &o) == NULL) {
                perror("gm_go_opts");
                exit(1);
            }
        while (atomic_load_explicit(&batch_ended, memory_order_relaxed) < i + 100)
            gm_yield();
    }
}
static void create_batches(void *arg, long iters)
{
    batch_mode = (gm_stack_mode)(uintptr_t)arg;
    batch_iters = iters;
    gm_main(batch_main, NULL);
}

// N coroutines alive at once: each parks in gm_chan_recv at its top level;
// once all have parked the channel is closed and they end. alive_rss gets
// the RSS with all of them parked (KiB) on the first call.
static gm_chan *alive_ch;
static long alive_n;
static gm_stack_mode alive_mode;
static size_t alive_rss;
static void alive_fn(void *arg)
{
    (void)arg;
    char v;
    gm_chan_recv(alive_ch, &v);
}
static void alive_main(void *arg)
{
    (void)arg;
    gm_go_options o = { alive_mode, 16 << 10, NULL, 0 };
    for (long i = 0; i < alive_n; i++)
        if (gm_go_opts(alive_fn, NULL, &o) == NULL) {
            fprintf(stderr, "bench/coro: coroutine %ld of %ld: %s\n", i + 1, alive_n, strerror(errno));
            exit(1);
        }
    wait_parked(alive_n);
    if (alive_rss == 0)
        alive_rss = bench_rss_kib();
    gm_chan_close(alive_ch);
}
static void alive(void *arg, long iters)
{
    alive_mode = (gm_stack_mode)(uintptr_t)arg;
    alive_n = iters;
    alive_ch = gm_chan_new(1, 0);
    gm_main(alive_main, NULL);
    gm_chan_free(alive_ch);
}

// Recursion 40,000 frames deep, 128 bytes of locals each, in a fresh
// coroutine: the first pass, where Go's stack doubles from 2 KiB to 8 MiB
// by copystack. ns per call. Dedicated: an 8 MiB stack.
#define RecDepth 40000
static gm_stack_mode rec_mode;
static long rec_trips;
static volatile long rec_sink;
static __attribute__((noinline)) long rec128(long d)
{
    volatile char pad[128];
    pad[0] = (char)d;
    long r = d > 1 ? rec128(d - 1) : 0;
    return r + pad[0];
}
static void rec_fn(void *arg)
{
    (void)arg;
    rec_sink = rec128(RecDepth);
}
static void rec_main(void *arg)
{
    (void)arg;
    gm_go_options o = { rec_mode, 8 << 20, "rec", 0 };
    for (long t = 0; t < rec_trips; t++) {
        uint64_t id;
        gm_g *g = gm_go_id(rec_fn, NULL, &o, &id);
        if (g == NULL) {
            perror("gm_go_id");
            exit(1);
        }
        gm_join(g, id);
    }
}
static void recursion(void *arg, long iters)
{
    rec_mode = (gm_stack_mode)(uintptr_t)arg;
    rec_trips = (iters + RecDepth - 1) / RecDepth;
    gm_main(rec_main, NULL);
}

// Ping-pong with frames below: each side calls down until about `below`
// bytes of frames lie under it, then runs its loop there, so every park
// leaves that much stack below the parked coroutine.
static size_t deep_below;
static gm_stack_mode deep_mode;
static __attribute__((noinline)) void with_frames(uintptr_t top, void (*fn)(void *))
{
    volatile char pad[200];
    pad[0] = 1;
    if (top - (uintptr_t)__builtin_frame_address(0) < deep_below)
        with_frames(top, fn);
    else
        fn(NULL);
    pad[0]++;
}
static void deep_ponger(void *arg)
{
    (void)arg;
    with_frames((uintptr_t)__builtin_frame_address(0), ponger);
}
static void deep_pinger(void *arg)
{
    (void)arg;
    with_frames((uintptr_t)__builtin_frame_address(0), pinger);
}
static void deep_pp_main(void *arg)
{
    (void)arg;
    gm_go_options o = { deep_mode, 0, NULL, 0 };
    gm_go_opts(deep_ponger, NULL, &o);
    gm_go_opts(deep_pinger, NULL, &o);
}
static void deep_pingpong(void *arg, long iters)
{
    deep_below = (size_t)(uintptr_t)arg;
    pingpong_with(deep_pp_main, iters);
}

// Idle at the top level: N coroutines each parked in gm_chan_recv straight
// from their function; RSS delta / N.
static void idle_recv(void *arg)
{
    char v;
    gm_chan_recv((gm_chan *)arg, &v);
}
static void idle_recv_main(void *arg)
{
    size_t *rss = arg;
    gm_chan *ch = gm_chan_new(1, 0);
    for (long i = 0; i < N; i++)
        gm_go(idle_recv, ch);
    wait_parked(N);
    rss[1] = bench_rss_kib();
    gm_chan_close(ch); // left allocated: its coroutines are still waking
}

static char procSuffix[16]; // "" at one worker, "/P2" at two
static const char *name(const char *base)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s%s", base, procSuffix);
    return buf;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (argc > 2)
        N = atol(argv[2]);
    const char *procs = getenv("GOMEM_PROCS");
    if (procs != NULL && atoi(procs) > 1)
        snprintf(procSuffix, sizeof procSuffix, "/P%d", atoi(procs));
    printf("bench/coro (gomem): GOMEM_PROCS=%s\n", procs ? procs : "(unset: one per CPU)");
    size_t rss[2];
    // In a child of its own, first: the descriptors that the idle row below
    // leaves for reuse would hide this row's.
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        rss[0] = bench_rss_kib();
        gm_main(idle_recv_main, rss);
        printf("Benchmark%s\t%ld\t%.0f B/coroutine\t(RSS %zu -> %zu KiB; parked in gm_chan_recv at top level)\n",
               name("CoroIdleRecv/copied"), N, (double)(rss[1] - rss[0]) * 1024 / (double)N, rss[0], rss[1]);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    gs = calloc((size_t)N, sizeof *gs);
    rss[0] = bench_rss_kib();
    gm_main(park_all, rss);
    printf("bench/coro (gomem): %ld idle coroutines, RSS %zu -> %zu KiB: %.0f bytes per coroutine\n", N, rss[0],
           rss[1], (double)(rss[1] - rss[0]) * 1024 / (double)N);
    bench_result r = bench_run(create_run, NULL, 1000000, runs);
    bench_print(name("CoroCreateRun"), 1000000, r, runs);
    r = bench_run(create_batches, (void *)(uintptr_t)GM_STACK_COPIED, 1000000, runs);
    bench_print(name("CoroCreateRun/batch100/copied"), 1000000, r, runs);
    r = bench_run(create_batches, (void *)(uintptr_t)GM_STACK_DEDICATED, 1000000, runs);
    bench_print(name("CoroCreateRun/batch100/dedicated"), 1000000, r, runs);
    // N alive at once: the first pass (fresh stacks: page faults, and for
    // dedicated ones a guard each) and the next runs (up to the caches'
    // bounds, stacks kept from the pass before), at most 3.
    for (int mode = GM_STACK_COPIED; mode <= GM_STACK_DEDICATED; mode++) {
        int aruns = runs > 3 ? 3 : runs;
        size_t before = bench_rss_kib();
        alive_rss = 0;
        double t0 = bench_now();
        alive((void *)(uintptr_t)mode, N);
        double first = (bench_now() - t0) / (double)N;
        double t[3];
        for (int i = 0; i < aruns; i++) {
            t0 = bench_now();
            alive((void *)(uintptr_t)mode, N);
            t[i] = (bench_now() - t0) / (double)N;
        }
        qsort(t, (size_t)aruns, sizeof t[0], bench_cmp_double);
        printf("Benchmark%s\t%ld\t%.2f ns/op\t(min of %d runs; median %.2f; first pass %.2f; %ld alive at once%s; "
               "RSS %.0f B/coroutine)\n",
               name(mode == GM_STACK_COPIED ? "CoroAlive/copied" : "CoroAlive/dedicated"), N, t[0], aruns,
               t[aruns / 2], first, N, mode == GM_STACK_DEDICATED ? ", 16 KiB stacks" : "",
               (double)(alive_rss - before) * 1024 / (double)N);
    }
    r = bench_run(yield_run, (void *)(uintptr_t)GM_STACK_COPIED, 2000000, runs);
    bench_print(name("CoroYield/copied"), 2000000, r, runs);
    r = bench_run(yield_run, (void *)(uintptr_t)GM_STACK_DEDICATED, 2000000, runs);
    bench_print(name("CoroYield/dedicated"), 2000000, r, runs);
    r = bench_run(pingpong, NULL, 1000000, runs);
    bench_print(name("ChanPingPong/roundtrip"), 1000000, r, runs);
    static const char *const depthNames[2][3] = {
        { "ChanPingPong/frames2K/copied", "ChanPingPong/frames8K/copied", "ChanPingPong/frames32K/copied" },
        { "ChanPingPong/frames2K/dedicated", "ChanPingPong/frames8K/dedicated", "ChanPingPong/frames32K/dedicated" },
    };
    for (int mode = GM_STACK_COPIED; mode <= GM_STACK_DEDICATED; mode++) {
        deep_mode = (gm_stack_mode)mode;
        for (int d = 0; d < 3; d++) {
            r = bench_run(deep_pingpong, (void *)(uintptr_t)((size_t)2048 << (2 * d)), 300000, runs);
            bench_print(name(depthNames[mode][d]), 300000, r, runs);
        }
    }
    r = bench_run(recursion, (void *)(uintptr_t)GM_STACK_COPIED, 20 * RecDepth, runs);
    bench_print(name("Recursion40k/copied"), 20 * RecDepth, r, runs);
    r = bench_run(recursion, (void *)(uintptr_t)GM_STACK_DEDICATED, 20 * RecDepth, runs);
    bench_print(name("Recursion40k/dedicated"), 20 * RecDepth, r, runs);
    gm_memstats a, b;
    gm_stats(&a);
    growth(NULL, 1);
    gm_stats(&b);
    r = bench_run(growth, NULL, 50, runs);
    printf("Benchmark%s-%ld\t50\t%.0f ns/op\t(min of %d runs; median %.0f; per trip %llu grow and "
           "%llu shrink steps of the saved copy: %.0f ns per step)\n",
           name("StackGrowth1MiB"), sysconf(_SC_NPROCESSORS_ONLN), r.min, runs, r.median,
           (unsigned long long)(b.coro_stack_grows - a.coro_stack_grows),
           (unsigned long long)(b.coro_stack_shrinks - a.coro_stack_shrinks),
           r.min / (double)(b.coro_stack_grows - a.coro_stack_grows + b.coro_stack_shrinks - a.coro_stack_shrinks));
    r = bench_run(growth, (void *)1, 50, runs);
    printf("Benchmark%s-%ld\t50\t%.0f ns/op\t(min of %d runs; median %.0f; a 2 MiB dedicated "
           "stack: nothing copied)\n",
           name("StackGrowth1MiB/dedicated"), sysconf(_SC_NPROCESSORS_ONLN), r.min, runs, r.median);
    return 0;
}
