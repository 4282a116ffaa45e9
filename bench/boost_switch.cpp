// SPDX-License-Identifier: MIT
//
// gomem's yield beside Boost.Context's raw switch (jump_fcontext), the
// reference for a bare context switch (dedicated is meant to stay within
// 1.5x of it, copied within 4x), in one process: each round times Boost's
// loop, then gm_yield between two dedicated coroutines, then between two
// copied ones, so the three see the same machine. On a shared VM a process's speed drifts by up to 1.5x over
// seconds, and it does not drift the same for the three loops (gomem's
// yield runs more instructions than one jump, so it suffers more when the
// core is shared); separate processes compared at different moments gave
// ratios anywhere from 1.0 to 1.9. The ratio is taken per round, then its
// min and median over the rounds are printed.
//
// A gm_yield between two coroutines hands over directly (one swapctx,
// in both modes), so the comparable Boost figure is one jump: its loop
// jumps there and back, two jumps per iteration.
//   build/bench/boost_switch [ROUNDS]
#include <boost/context/detail/fcontext.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "gomem.h"

namespace ctx = boost::context::detail;

static double now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void other(ctx::transfer_t t)
{
    for (;;)
        t = ctx::jump_fcontext(t.fctx, nullptr); // straight back
}

static const long Switches = 2000000;

static void yielder(void *)
{
    long n = Switches / 2; // in a register, as Boost's loop bound
    for (long i = 0; i < n; i++)
        gm_yield();
}

static gm_stack_mode yieldMode;
static void yieldMain(void *)
{
    gm_go_options o = { yieldMode, 16 << 10, nullptr, 0 };
    gm_go_opts(yielder, nullptr, &o);
    gm_go_opts(yielder, nullptr, &o);
}

// ns per gm_yield (one switch) between two coroutines of mode m.
static double gomemYield(gm_stack_mode m)
{
    yieldMode = m;
    double t0 = now_ns();
    gm_main(yieldMain, nullptr);
    return (now_ns() - t0) / Switches;
}

struct Stats {
    double min, median;
};

static Stats stats(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return { v[0], n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2 };
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
    if (rounds < 1)
        rounds = 1;
    std::vector<char> stack(64 << 10);
    ctx::fcontext_t c = ctx::make_fcontext(stack.data() + stack.size(), stack.size(), other);
    std::vector<double> boost, dedicated, copied, rDedicated, rCopied;
    for (int k = 0; k < rounds + 1; k++) {
        double t0 = now_ns();
        for (long i = 0; i < Switches / 2; i++)
            c = ctx::jump_fcontext(c, nullptr).fctx; // there and back: two jumps
        double b = (now_ns() - t0) / Switches;
        double d = gomemYield(GM_STACK_DEDICATED);
        double y = gomemYield(GM_STACK_COPIED);
        if (k == 0)
            continue; // the first round warms up
        boost.push_back(b);
        dedicated.push_back(d);
        copied.push_back(y);
        rDedicated.push_back(d / b);
        rCopied.push_back(y / b);
    }
    std::printf("bench/boost_switch: one Boost.Context jump_fcontext vs one gm_yield between two coroutines (16 KiB "
                "stacks), %ld switches per loop, %d rounds, the three loops interleaved in each round\n",
                Switches, rounds);
    Stats b = stats(boost), d = stats(dedicated), y = stats(copied);
    std::printf("BenchmarkBoostJump-boost\t%ld\t%.2f ns/op\t(min of %d rounds; median %.2f)\n", Switches, b.min, rounds,
                b.median);
    std::printf("BenchmarkYieldDedicated-gomem\t%ld\t%.2f ns/op\t(min of %d rounds; median %.2f)\n", Switches, d.min,
                rounds, d.median);
    std::printf("BenchmarkYieldCopied-gomem\t%ld\t%.2f ns/op\t(min of %d rounds; median %.2f)\n", Switches, y.min,
                rounds, y.median);
    Stats rd = stats(rDedicated), ry = stats(rCopied);
    std::printf("dedicated yield / Boost jump, per round: %.2f (min), %.2f (median)   [target <= 1.5]\n", rd.min,
                rd.median);
    std::printf("copied yield / Boost jump, per round:    %.2f (min), %.2f (median)   [target <= 4]\n", ry.min,
                ry.median);
    return 0;
}
