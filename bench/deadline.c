// SPDX-License-Identifier: MIT
//
// Deadlines, cancellation and threads handing work to coroutines; the Go
// peer is bench/go/deadline.go, bench/deadline.sh runs both.
//
//   build/bench/deadline NAME [ITERS]     one run, one line in Go's format
//
//   SelectTimerReset  a consumer parks in a select on an unbuffered channel
//                     and a timer that never fires, reset before each
//                     receive (Go: select on ch and t.C, t.Reset per op);
//                     a producer on the same worker sends. ns per message.
//   SelectUntil       the same loop with gm_select_until (the deadline is
//                     the wait's own: no timer object, no channel)
//   CancelTree        ITERS coroutines (default 100,000) each parked on the
//                     done channel of its own child of one root context;
//                     ns per coroutine from cancelling the root until all
//                     have woken (Go: context.WithCancel, <-ctx.Done())
//   ThreadCoroThread  a plain thread sends on an unbuffered channel, a
//                     coroutine receives and sends back on another, the
//                     thread receives: ns per round trip
//   CondvarPingPong   two plain threads, a mutex and two condition
//                     variables (pthread): ns per round trip, the peer of
//                     the one above
// All on one worker (GOMEM_PROCS=1 unless set), as GOMAXPROCS=1 for Go.
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "gomem.h"

#define HOUR (3600LL * 1000000000LL)

static long iters;
static gm_chan *ch, *back;
static double elapsed;

// ------------------------------------------------------------ select + timer

static void producer(void *arg)
{
    (void)arg;
    for (int64_t i = 0; i < iters; i++)
        gm_chan_send(ch, &i);
}

static void consumer_timer(void *arg)
{
    (void)arg;
    gm_timer *t = gm_timer_new(HOUR);
    int64_t v, fired;
    gm_select_case cs[2] = { { ch, GM_SELECT_RECV, &v, NULL }, { gm_timer_chan(t), GM_SELECT_RECV, &fired, NULL } };
    double t0 = bench_now();
    for (long i = 0; i < iters; i++) {
        gm_timer_reset(t, HOUR);
        if (gm_select(cs, 2, 0) != 0 || v != i)
            abort();
    }
    elapsed = bench_now() - t0;
    gm_timer_free(t);
}

static void consumer_until(void *arg)
{
    (void)arg;
    int64_t v;
    gm_select_case cs[1] = { { ch, GM_SELECT_RECV, &v, NULL } };
    double t0 = bench_now();
    for (long i = 0; i < iters; i++)
        if (gm_select_until(cs, 1, gm_deadline(HOUR)) != 0 || v != i)
            abort();
    elapsed = bench_now() - t0;
}

static void select_main(void *arg)
{
    ch = gm_chan_new(sizeof(int64_t), 0);
    gm_go((void (*)(void *))arg, NULL);
    gm_go(producer, NULL);
}

// ------------------------------------------------------------ cancel a tree

static gm_ctx *root;
static gm_waitgroup parked = GM_WAITGROUP_INIT, woken = GM_WAITGROUP_INIT;

static void leaf(void *arg)
{
    gm_ctx *mine = arg;
    char x;
    gm_waitgroup_done(&parked);
    gm_chan_recv(gm_ctx_done(mine), &x);
    gm_waitgroup_done(&woken);
}

static void tree_main(void *arg)
{
    (void)arg;
    root = gm_ctx_with_cancel(gm_ctx_background());
    gm_ctx **kids = malloc((size_t)iters * sizeof *kids);
    gm_waitgroup_add(&parked, iters);
    gm_waitgroup_add(&woken, iters);
    for (long i = 0; i < iters; i++)
        gm_go(leaf, kids[i] = gm_ctx_with_cancel(root));
    gm_waitgroup_wait(&parked);
    gm_yield(); // the last leaf parks
    double t0 = bench_now();
    gm_ctx_cancel(root, 0);
    gm_waitgroup_wait(&woken);
    elapsed = bench_now() - t0;
    for (long i = 0; i < iters; i++)
        gm_ctx_free(kids[i]);
    gm_ctx_free(root);
    free(kids);
}

// ------------------------------------------------ thread -> coroutine -> thread

static gm_waitgroup thread_ready = GM_WAITGROUP_INIT;

static void relay(void *arg)
{
    (void)arg;
    int64_t v;
    while (gm_chan_recv(ch, &v)) {
        v++;
        gm_chan_send(back, &v);
    }
}

static void *sender_thread(void *arg)
{
    (void)arg;
    gm_waitgroup_done(&thread_ready); // from here it counts as a thread that may wake coroutines
    int64_t v = 0;
    double t0 = bench_now();
    for (long i = 0; i < iters; i++) {
        gm_chan_send(ch, &v); // blocks until the coroutine takes it
        gm_chan_recv(back, &v);
    }
    elapsed = bench_now() - t0;
    if (v != iters)
        abort();
    gm_chan_close(ch);
    return NULL;
}

static void handoff(void)
{
    ch = gm_chan_new(sizeof(int64_t), 0);
    back = gm_chan_new(sizeof(int64_t), 0);
    pthread_t t;
    gm_waitgroup_add(&thread_ready, 1);
    pthread_create(&t, NULL, sender_thread, NULL);
    gm_waitgroup_wait(&thread_ready);
    gm_main(relay, NULL);
    pthread_join(t, NULL);
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ping_cv = PTHREAD_COND_INITIALIZER, pong_cv = PTHREAD_COND_INITIALIZER;
static long turn; // odd: the ponger's move

static void *ponger(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (long i = 0; i < iters; i++) {
        while (turn % 2 == 0)
            pthread_cond_wait(&ping_cv, &mu);
        turn++;
        pthread_cond_signal(&pong_cv);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void condvar(void)
{
    pthread_t t;
    pthread_create(&t, NULL, ponger, NULL);
    double t0 = bench_now();
    pthread_mutex_lock(&mu);
    for (long i = 0; i < iters; i++) {
        turn++;
        pthread_cond_signal(&ping_cv);
        while (turn % 2 == 1)
            pthread_cond_wait(&pong_cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    elapsed = bench_now() - t0;
    pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "";
    bool tree = strcmp(name, "CancelTree") == 0;
    iters = argc > 2 ? atol(argv[2]) : tree ? 100000 : 200000;
    if (getenv("GOMEM_PROCS") == NULL)
        gm_set_procs(1);
    if (strcmp(name, "SelectTimerReset") == 0)
        gm_main(select_main, (void *)consumer_timer);
    else if (strcmp(name, "SelectUntil") == 0)
        gm_main(select_main, (void *)consumer_until);
    else if (tree)
        gm_main(tree_main, NULL);
    else if (strcmp(name, "ThreadCoroThread") == 0)
        handoff();
    else if (strcmp(name, "CondvarPingPong") == 0)
        condvar();
    else {
        fprintf(stderr, "usage: deadline SelectTimerReset|SelectUntil|CancelTree|ThreadCoroThread|"
                        "CondvarPingPong [iterations]\n");
        return 2;
    }
    printf("Benchmark%s-%d\t%10ld\t%10.2f ns/op\n", name, gm_set_procs(0), iters, elapsed / (double)iters);
    return 0;
}
