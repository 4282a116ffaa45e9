// SPDX-License-Identifier: MIT
//
// Go's concurrent prime sieve (the one on go.dev's front page) with gomem's
// coroutines and channels: a generator sends 2, 3, 4, ... down a channel;
// each prime found starts a filter coroutine that passes on the numbers
// its prime does not divide. The nth prime needs n filters, each a parked
// coroutine most of the time: what copied stacks make cheap.
//
//   build/examples/sieve [n] [dedicated [BYTES]]
//
// prints the nth prime (default 10000). With "dedicated" each filter gets a
// dedicated stack of BYTES (default 16384): a started copied coroutine
// moves only with its execution stack, when every coroutine bound to it is
// runnable, which a filter parked between numbers never lets happen; a
// dedicated one moves to whichever worker is idle, which is what the chain
// needs to use a second worker.
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
        if (gm_go_opts(filter, a, filter_opts) == NULL) {
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
    }
    if (want_n < 1 || (argc > 2 && filter_opts == NULL)) {
        fprintf(stderr, "usage: sieve [n >= 1] [dedicated [bytes]]\n");
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
           (unsigned long long)m.coro_created, gm_set_procs(0), filter_opts ? "dedicated" : "copied");
    return 0;
}
