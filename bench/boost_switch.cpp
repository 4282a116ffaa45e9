// SPDX-License-Identifier: MIT
//
// Boost.Context's raw switch (jump_fcontext), the reference for gomem's
// yield (issue 8: dedicated within 1.5x, copied within 4x). Two contexts
// hand control back and forth. A gm_yield between two coroutines hands
// over directly (one gm_swapctx, in both modes), so the comparable figure
// is one jump; the pair is printed too.
//   build/bench/boost_switch [RUNS]
#include <boost/context/detail/fcontext.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

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

int main(int argc, char **argv)
{
    int runs = argc > 1 ? std::atoi(argv[1]) : 5;
    const long n = 2000000;
    std::vector<char> stack(64 << 10);
    ctx::fcontext_t c = ctx::make_fcontext(stack.data() + stack.size(), stack.size(), other);
    std::vector<double> r;
    for (int k = 0; k < runs + 1; k++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++)
            c = ctx::jump_fcontext(c, nullptr).fctx; // there and back: two jumps
        double per = (now_ns() - t0) / n;
        if (k > 0) // the first run warms up
            r.push_back(per);
    }
    std::sort(r.begin(), r.end());
    std::printf("BenchmarkBoostJumpPair-boost\t%ld\t%.2f ns/op\t(min of %d runs; median %.2f; one jump %.2f ns)\n", n,
                r[0], runs, r[r.size() / 2], r[0] / 2);
    return 0;
}
