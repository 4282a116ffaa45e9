// SPDX-License-Identifier: MIT
//
// Unbuffered ping-pong round trips (one worker), and channel throughput: one producer and one consumer coroutine over a
// buffered channel (cap 128) of 8-byte values, ns per message; the same
// program as bench/go/chan.go. Run with GOMEM_PROCS=1 (one worker) and 2
// (the consumer placed on the second worker, then, as in Go's program,
// wherever the scheduler puts it; each line says whether the two ran on
// different threads, and, beside them, what moving a cache line between
// two threads costs here).  build/bench/chan [RUNS]
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench.h"
#include "gomem.h"

#define N 2000000

static long count;
static bool placeConsumer = true; // on the second worker (gm_go_options.worker)

static gm_chan *ch, *done;
static pthread_t producer_thread, consumer_thread;

static void consumer(void *arg)
{
    (void)arg;
    consumer_thread = pthread_self();
    int64_t v, s = 0;
    while (gm_chan_recv(ch, &v))
        s += v;
    gm_chan_send(done, &s);
}

static void producer(void *arg)
{
    (void)arg;
    producer_thread = pthread_self();
    for (int64_t i = 0; i < count; i++)
        gm_chan_send(ch, &i);
    gm_chan_close(ch);
}

static void run_main(void *arg)
{
    (void)arg;
    gm_go(producer, NULL);
    // On the second worker when there is one, or where the scheduler puts it
    // (Go's program: there the consumer runs on the producer's P).
    gm_go_options o = { GM_STACK_COPIED, 0, "consumer", placeConsumer ? 2 : 0 };
    gm_go_opts(consumer, NULL, &o);
    int64_t s;
    gm_chan_recv(done, &s);
    if (s != (int64_t)count * (count - 1) / 2)
        abort();
}

static void once(void *arg, long iters)
{
    (void)arg;
    count = iters;
    ch = gm_chan_new(sizeof(int64_t), 128);
    done = gm_chan_new(sizeof(int64_t), 0);
    gm_main(run_main, NULL);
    gm_chan_free(ch);
    gm_chan_free(done);
}

// Unbuffered ping-pong on one worker: a round trip is two hand-offs.
static gm_chan *ping, *pong;

static void ponger(void *arg)
{
    (void)arg;
    long v;
    while (gm_chan_recv(ping, &v)) {
        v++;
        gm_chan_send(pong, &v);
    }
}

static void pinger(void *arg)
{
    (void)arg;
    long v = 0;
    for (long i = 0; i < count; i++) {
        gm_chan_send(ping, &v);
        gm_chan_recv(pong, &v);
    }
    if (v != count)
        abort();
    gm_chan_close(ping);
}

static void pingpong_main(void *arg)
{
    (void)arg;
    gm_go(ponger, NULL);
    gm_go(pinger, NULL);
}

static void pingpong(void *arg, long iters)
{
    (void)arg;
    count = iters;
    ping = gm_chan_new(sizeof(long), 0);
    pong = gm_chan_new(sizeof(long), 0);
    gm_main(pingpong_main, NULL);
    gm_chan_free(ping);
    gm_chan_free(pong);
}

// A cache line handed back and forth between two plain threads (a flag each
// side waits for, then flips): the one-way cost of moving a line between
// the CPUs. A buffered channel's lock and count move at least once a
// message when its two ends run on different CPUs, so this bounds what a
// second worker can gain on a pair that does little else per message.
static _Alignas(64) _Atomic int lineFlag;
enum { LineTrips = 1000000 };

static void *lineBack(void *arg)
{
    (void)arg;
    for (int i = 0; i < LineTrips; i++) {
        while (atomic_load_explicit(&lineFlag, memory_order_acquire) != 1)
            ;
        atomic_store_explicit(&lineFlag, 0, memory_order_release);
    }
    return NULL;
}

static double lineOneWay(void)
{
    pthread_t t;
    atomic_store(&lineFlag, 0);
    if (pthread_create(&t, NULL, lineBack, NULL) != 0)
        return 0;
    double t0 = bench_now();
    for (int i = 0; i < LineTrips; i++) {
        atomic_store_explicit(&lineFlag, 1, memory_order_release);
        while (atomic_load_explicit(&lineFlag, memory_order_acquire) != 0)
            ;
    }
    double ns = (bench_now() - t0) / (2.0 * LineTrips);
    pthread_join(t, NULL);
    return ns;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (gm_set_procs(0) == 1)
        bench_print("ChanPingPong/roundtrip", 1000000, bench_run(pingpong, NULL, 1000000, runs), runs);
    bench_result r = bench_run(once, NULL, N, runs);
    char name[64];
    snprintf(name, sizeof name, "ChanBuffered/procs=%d", gm_set_procs(0));
    bench_print(name, N, r, runs);
    printf("(producer and consumer ran on %s threads)\n",
           pthread_equal(producer_thread, consumer_thread) ? "the same" : "different");
    if (gm_set_procs(0) > 1) {
        placeConsumer = false;
        r = bench_run(once, NULL, N, runs);
        snprintf(name, sizeof name, "ChanBuffered/procs=%d,unplaced", gm_set_procs(0));
        bench_print(name, N, r, runs);
        printf("(the consumer placed by the scheduler, as in Go's program: they ran on %s threads)\n",
               pthread_equal(producer_thread, consumer_thread) ? "the same" : "different");
        double best = 0;
        for (int i = 0; i < runs; i++) {
            double ns = lineOneWay();
            if (best == 0 || ns < best)
                best = ns;
        }
        printf("(a cache line moved between two threads: %.1f ns one way, min of %d runs)\n", best, runs);
    }
    return 0;
}
