// SPDX-License-Identifier: MIT
//
// Go's concurrent prime sieve (the one on go.dev's front page) with gomem's
// coroutines and channels: a generator sends 2, 3, 4, ... down a channel;
// each prime found starts a filter coroutine that passes on the numbers
// its prime does not divide. The nth prime needs n filters, each a parked
// coroutine most of the time: what copied stacks make cheap.
//
//   build/examples/sieve [n] [dedicated [BYTES] | blocks [B]]
//
// prints the nth prime (default 10000). A started copied coroutine moves
// to another worker only with its execution stack, when every coroutine
// bound to it is runnable, which filters parked between numbers never let
// happen: where a filter starts, it stays. Two ways to use a second worker:
// - "dedicated": each filter gets a dedicated stack of BYTES (default
//   16384), and moves to whichever worker is idle or wakes it, so the
//   filters that talk gather on one worker as the chain grows (as Go's
//   goroutines do);
// - "blocks": copied filters, placed by the program (gm_go_options.worker)
//   in runs of B consecutive filters (default 500), one run per worker in
//   turn: a number crosses between workers once per run it passes, and
//   every worker has filters at every length of the chain (a split of the
//   chain into halves leaves the second worker idle until the chain is
//   half built).
//
// Unlike Go, a C program must end its coroutines: when main has its
// primes it raises stop, drains the last channel until the generator sees
// stop and closes its channel, and each filter closes its output when its
// input is closed, so the whole chain unwinds and gm_main returns.
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gomem.h"

static atomic_int stop;

static void generate(void *arg)
{
    gm_chan *out = arg;
    for (long i = 2; !atomic_load_explicit(&stop, memory_order_relaxed); i++)
        gm_chan_send(out, &i);
    gm_chan_close(out);
}

typedef struct filter_args {
    gm_chan *in, *out;
    long prime;
} filter_args;

static void filter(void *arg)
{
    filter_args a = *(filter_args *)arg;
    free(arg);
    long v;
    while (gm_chan_recv(a.in, &v))
        if (v % a.prime != 0)
            gm_chan_send(a.out, &v);
    gm_chan_close(a.out);
    gm_chan_free(a.in); // closed and drained: nobody uses it any more
}

static long want_n, nth_prime;
static const gm_go_options *filter_opts; // NULL: copied stacks, the default
static long block;                       // > 0: copied filters placed in runs of block per worker

static void sieve_main(void *arg)
{
    (void)arg;
    gm_chan *ch = gm_chan_new(sizeof(long), 0);
    if (ch == NULL || gm_go(generate, ch) == NULL) {
        perror("sieve");
        exit(1);
    }
    for (long i = 0; i < want_n; i++) {
        long prime;
        gm_chan_recv(ch, &prime);
        nth_prime = prime;
        filter_args *a = malloc(sizeof *a);
        gm_chan *next = gm_chan_new(sizeof(long), 0);
        if (a == NULL || next == NULL) {
            perror("sieve");
            exit(1);
        }
        *a = (filter_args){ ch, next, prime };
        gm_go_options placed = { .mode = GM_STACK_COPIED, .name = "filter" };
        if (block > 0)
            placed.worker = 1 + (int)((i / block) % gm_set_procs(0)); // (worker 0: let the scheduler choose)
        if (gm_go_opts(filter, a, block > 0 ? &placed : filter_opts) == NULL) {
            perror("sieve: gm_go");
            exit(1);
        }
        ch = next;
    }
    atomic_store(&stop, 1);
    long v;
    while (gm_chan_recv(ch, &v)) // unwinds the chain
        ;
    gm_chan_free(ch);
}

static size_t rss_kib(void)
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

int main(int argc, char **argv)
{
    want_n = argc > 1 ? atol(argv[1]) : 10000;
    static gm_go_options dedicated = { .mode = GM_STACK_DEDICATED, .stack_size = 16384, .name = "filter" };
    if (argc > 2 && strcmp(argv[2], "dedicated") == 0) {
        filter_opts = &dedicated;
        if (argc > 3)
            dedicated.stack_size = (size_t)atol(argv[3]);
    } else if (argc > 2 && strcmp(argv[2], "blocks") == 0) {
        block = argc > 3 ? atol(argv[3]) : 500;
    }
    if (want_n < 1 || (argc > 2 && filter_opts == NULL && block < 1)) {
        fprintf(stderr, "usage: sieve [n >= 1] [dedicated [bytes] | blocks [b >= 1]]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (gm_main(sieve_main, NULL) != 0) {
        perror("sieve: gm_main");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    gm_memstats m;
    gm_stats(&m);
    printf("prime %ld = %ld\n", want_n, nth_prime);
    printf("time %.1f ms, peak RSS %zu KiB, %llu coroutines (workers: %d, filters: %s)\n", ms, rss_kib(),
           (unsigned long long)m.coro_created, gm_set_procs(0),
           filter_opts ? "dedicated" : block > 0 ? "copied, placed in blocks" : "copied");
    return 0;
}
