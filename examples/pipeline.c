// SPDX-License-Identifier: MIT
//
// A pipeline with fan-out and fan-in (Go blog, "Go Concurrency Patterns:
// Pipelines"): a generator sends 1..n; k worker coroutines each take
// numbers from the shared channel and send back a result; a merger closes
// the results channel when every worker is done (a gm_waitgroup); main sums
// the results and checks the sum against a plain loop.
//
//   build/examples/pipeline [n] [k]     (defaults 200000 and 8)
//
// Exit status 0 when the sums agree. The workers spread over the gm_main
// workers (GOMEM_PROCS), so values cross threads on every channel.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gomem.h"

static long n, k;
static gm_chan *numbers, *results;
static gm_waitgroup workers = GM_WAITGROUP_INIT;

// Some work per item, so the fan-out is worth it.
static uint64_t work(uint64_t x)
{
    uint64_t h = x;
    for (int i = 0; i < 64; i++)
        h = h * 6364136223846793005ull + 1442695040888963407ull;
    return h >> 40;
}

static void generate(void *arg)
{
    (void)arg;
    for (long i = 1; i <= n; i++)
        gm_chan_send(numbers, &i);
    gm_chan_close(numbers);
}

static void worker(void *arg)
{
    (void)arg;
    long x;
    while (gm_chan_recv(numbers, &x)) {
        uint64_t r = work((uint64_t)x);
        gm_chan_send(results, &r);
    }
    gm_waitgroup_done(&workers);
}

static void merger(void *arg)
{
    (void)arg;
    gm_waitgroup_wait(&workers);
    gm_chan_close(results);
}

static uint64_t sum;
static long count;

static void pipeline_main(void *arg)
{
    (void)arg;
    gm_go(generate, NULL);
    gm_waitgroup_add(&workers, k);
    for (long i = 0; i < k; i++)
        gm_go(worker, NULL);
    gm_go(merger, NULL);
    uint64_t r;
    while (gm_chan_recv(results, &r)) {
        sum += r;
        count++;
    }
}

int main(int argc, char **argv)
{
    n = argc > 1 ? atol(argv[1]) : 200000;
    k = argc > 2 ? atol(argv[2]) : 8;
    if (n < 1 || k < 1) {
        fprintf(stderr, "usage: pipeline [n >= 1] [k >= 1]\n");
        return 2;
    }
    numbers = gm_chan_new(sizeof(long), 64);
    results = gm_chan_new(sizeof(uint64_t), 64);
    if (numbers == NULL || results == NULL) {
        perror("pipeline");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (gm_main(pipeline_main, NULL) != 0) {
        perror("pipeline: gm_main");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    uint64_t want = 0;
    for (long i = 1; i <= n; i++)
        want += work((uint64_t)i);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("%ld items through %ld workers on %d threads in %.1f ms: sum %llu (%s)\n", count, k,
           gm_set_procs(0), ms, (unsigned long long)sum, sum == want && count == n ? "correct" : "WRONG");
    gm_chan_free(numbers);
    gm_chan_free(results);
    return sum == want && count == n ? 0 : 1;
}
