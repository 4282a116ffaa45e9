// SPDX-License-Identifier: MIT
//
// The API timers (time.c): gm_timer fires once and can be stopped and
// reset without an allocation or a stale heap entry; no value sent before
// a stop or reset is received after it (Go 1.23); gm_ticker drops the ticks
// a slow receiver misses; gm_after_func starts a coroutine and can be
// prevented; stop and reset from another worker and from a plain thread
// reach the timer's worker, asleep or not; a group's end stops its timers;
// freeing from anywhere; misuse; the heap validator.
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "export_test.h"
#include "testing.h"

#define MS 1000000ull
#define HOUR (3600ull * 1000 * MS)

static uint64_t recv_time(gm_chan *c)
{
    uint64_t v = 0;
    if (!gm_chan_recv(c, &v))
        return 0;
    return v;
}

// -------------------------------------------------------------- gm_timer

static void fires_once_main(void *arg)
{
    (void)arg;
    uint64_t t0 = nanotime();
    gm_timer *t = gm_timer_new(2 * MS);
    CHECK(t != NULL);
    gm_chan *c = gm_timer_chan(t);
    CHECK_EQ(gm_chan_cap(c), 1);
    uint64_t v = recv_time(c);
    CHECK(v >= t0 + 2 * MS);
    gm_sleep(3 * MS);
    CHECK_EQ(gm_chan_try_recv(c, &v), 0); // once
    CHECK_EQ(gm_timer_stop(t), 0);        // it fired and its value was received
    CHECK_EQ(TLS(tworker)->ntimers, 0);
    gm_timer_free(t);
}

TEST(timer_fires_once)
{
    CHECK_EQ(gm_main(fires_once_main, NULL), 0);
}

static void stop_reset_main(void *arg)
{
    (void)arg;
    worker *p = TLS(tworker);
    uint64_t v;
    gm_timer *t = gm_timer_new(HOUR);
    gm_chan *c = gm_timer_chan(t);
    CHECK_EQ(p->ntimers, 1);
    CHECK_EQ(gm_timer_stop(t), 1); // stopped it
    CHECK_EQ(p->ntimers, 0);       // its entry went with it
    CHECK_EQ(gm_timer_stop(t), 0);
    CHECK_EQ(gm_timer_reset(t, 1 * MS), 0); // it was stopped
    CHECK_EQ(p->ntimers, 1);
    CHECK(recv_time(c) != 0);
    CHECK_EQ(p->ntimers, 0);
    CHECK_EQ(gm_timer_reset(t, HOUR), 0); // fired, value received
    CHECK_EQ(gm_timer_stop(t), 1);

    // Sent and not received: a reset takes the value back and counts as
    // stopping a pending timer (Go 1.23), as does a stop.
    CHECK_EQ(gm_timer_reset(t, 0), 0);
    gm_sleep(2 * MS); // fires into the buffer
    CHECK_EQ(gm_chan_len(c), 1);
    CHECK_EQ(gm_timer_reset(t, HOUR), 1);
    CHECK_EQ(gm_chan_len(c), 0);
    CHECK_EQ(gm_timer_reset(t, 0), 1);
    gm_sleep(2 * MS);
    CHECK_EQ(gm_timer_stop(t), 1);
    CHECK_EQ(gm_chan_try_recv(c, &v), 0);

    // Many resets, moving the deadline both ways: one entry, no
    // allocation.
    gm_timer *other = gm_timer_new(HOUR / 2);
    gm_memstats a, b;
    gm_stats(&a);
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        TALLY(bad, gm_timer_reset(t, HOUR + (uint64_t)(i % 7) * MS * 1000) == (i > 0));
        TALLY(bad, p->ntimers == 2);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(gm_timer_stop(t), 1);
    CHECK_EQ(gm_timer_stop(t), 0);
    gm_stats(&b);
    CHECK_EQ(b.mallocs - a.mallocs, 0);
    CHECK(timers_valid(p) == NULL);
    gm_timer_free(other); // pending: freed with its entry
    CHECK_EQ(p->ntimers, 0);
    gm_timer_free(t);
}

TEST(timer_stop_and_reset)
{
    CHECK_EQ(gm_main(stop_reset_main, NULL), 0);
}

// ------------------------------------------------------------- gm_ticker

static void ticker_main(void *arg)
{
    (void)arg;
    gm_ticker *tk = gm_ticker_new(1 * MS);
    CHECK(tk != NULL);
    gm_chan *c = gm_ticker_chan(tk);
    uint64_t last = nanotime();
    int bad = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t v = recv_time(c);
        TALLY(bad, v > last);
        last = v;
    }
    CHECK_EQ(bad, 0);
    // A slow receiver: the channel holds one tick, the others are dropped.
    gm_sleep(20 * MS);
    CHECK_EQ(gm_chan_len(c), 1);
    uint64_t v;
    CHECK_EQ(gm_chan_try_recv(c, &v), 1);
    CHECK_EQ(gm_chan_try_recv(c, &v), 0);
    CHECK_EQ(TLS(tworker)->ntimers, 1); // one entry however many ticks
    // Stopped: nothing more, not even a tick sent before the stop.
    gm_sleep(3 * MS);
    gm_ticker_stop(tk);
    CHECK_EQ(TLS(tworker)->ntimers, 0);
    gm_sleep(3 * MS);
    CHECK_EQ(gm_chan_try_recv(c, &v), 0);
    // Reset: ticks again, at the new period.
    CHECK_EQ(gm_ticker_reset(tk, 2 * MS), 0);
    uint64_t t0 = nanotime();
    CHECK(recv_time(c) >= t0 + 2 * MS);
    errno = 0;
    CHECK_EQ(gm_ticker_reset(tk, 0), -1);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(gm_ticker_new(0) == NULL);
    CHECK_EQ(errno, EINVAL);
    gm_ticker_free(tk);
    CHECK_EQ(TLS(tworker)->ntimers, 0);
}

TEST(ticker_ticks_and_drops_missed_ticks)
{
    CHECK_EQ(gm_main(ticker_main, NULL), 0);
}

// --------------------------------------------------------- gm_after_func

static _Atomic int af_runs;
static gm_g *af_creator;
static _Atomic int af_bad;
static gm_waitgroup af_wg = GM_WAITGROUP_INIT;

static void af_fn(void *arg)
{
    if (gm_self() == NULL || gm_self() == af_creator || arg != &af_runs)
        af_bad++;
    af_runs++;
    gm_waitgroup_done(&af_wg);
}

static void after_func_main(void *arg)
{
    (void)arg;
    af_creator = gm_self();
    gm_waitgroup_add(&af_wg, 1);
    gm_timer *a = gm_after_func(1 * MS, af_fn, &af_runs);
    CHECK(a != NULL);
    CHECK(gm_timer_chan(a) == NULL);
    gm_waitgroup_wait(&af_wg);
    CHECK_EQ(af_runs, 1);
    CHECK_EQ(gm_timer_stop(a), 0); // fn has started
    // Stopped before it fires: fn never runs.
    gm_timer *b = gm_after_func(2 * MS, af_fn, &af_runs);
    CHECK_EQ(gm_timer_stop(b), 1);
    gm_sleep(5 * MS);
    CHECK_EQ(af_runs, 1);
    // Reset: armed again.
    gm_waitgroup_add(&af_wg, 1);
    CHECK_EQ(gm_timer_reset(b, 1 * MS), 0);
    gm_waitgroup_wait(&af_wg);
    CHECK_EQ(af_runs, 2);
    gm_timer_free(a);
    gm_timer_free(b);
    errno = 0;
    CHECK(gm_after_func(1, NULL, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
}

TEST(after_func_runs_in_a_new_coroutine)
{
    CHECK_EQ(gm_main(after_func_main, NULL), 0);
    CHECK_EQ(af_bad, 0);
    errno = 0;
    CHECK(gm_timer_new(1) == NULL); // outside a coroutine
    CHECK_EQ(errno, EPERM);
    errno = 0;
    CHECK(gm_ticker_new(1) == NULL);
    CHECK_EQ(errno, EPERM);
    errno = 0;
    CHECK(gm_after_func(1, af_fn, NULL) == NULL);
    CHECK_EQ(errno, EPERM);
}

// ------------------------------------------------- other workers, threads

// A timer of worker 1, whose only coroutine waits on it (the worker
// sleeps), reset and stopped by a coroutine of worker 2.
static gm_chan *xready;      // worker 1 -> worker 2: the timer
static gm_chan *xdone;
static _Atomic int xgot;

static void x_owner(void *arg)
{
    (void)arg;
    gm_timer *t = gm_timer_new(HOUR);
    gm_chan_send(xready, &t);
    CHECK(recv_time(gm_timer_chan(t)) != 0); // the other worker's reset brings it in
    xgot++;
    gm_timer *t2 = gm_timer_new(HOUR);
    gm_chan_send(xready, &t2);
    CHECK(recv_time(gm_timer_chan(t2)) != 0);
    xgot++;
    int one = 1;
    gm_chan_send(xdone, &one);
    gm_timer_free(t);
    gm_timer_free(t2);
}

static void x_other(void *arg)
{
    (void)arg;
    gm_timer *t;
    gm_chan_recv(xready, &t);
    gm_sleep(1 * MS); // the owner parks on the channel, its worker sleeps
    CHECK_EQ(gm_timer_reset(t, 1 * MS), 1);
    gm_chan_recv(xready, &t);
    CHECK_EQ(gm_timer_stop(t), 1);
    CHECK_EQ(gm_timer_stop(t), 0);
    CHECK_EQ(gm_timer_reset(t, 0), 0);
    int one;
    gm_chan_recv(xdone, &one);
}

static void x_main(void *arg)
{
    (void)arg;
    gm_go_options o1 = { GM_STACK_COPIED, 0, "owner", 1 }, o2 = { GM_STACK_COPIED, 0, "other", 2 };
    gm_go_opts(x_owner, NULL, &o1);
    gm_go_opts(x_other, NULL, &o2);
}

TEST(stop_and_reset_from_another_worker)
{
    xready = gm_chan_new(sizeof(gm_timer *), 0);
    xdone = gm_chan_new(sizeof(int), 0);
    gm_set_procs(2);
    CHECK_EQ(gm_main(x_main, NULL), 0);
    gm_set_procs(1);
    CHECK_EQ(xgot, 2);
    gm_chan_free(xready);
    gm_chan_free(xdone);
}

// A plain thread resets and stops a timer while its worker sleeps; after
// the worker's gm_main has ended, a reset from a plain thread fails.
static gm_timer *_Atomic th_timer;
static _Atomic int th_round, th_bad;

static void *th_thread(void *arg)
{
    (void)arg;
    gm_timer *t;
    while ((t = atomic_load(&th_timer)) == NULL)
        usleep(100);
    usleep(2000); // the owner parks on the channel
    if (gm_timer_reset(t, 1 * MS) != 1) // pending on the sleeping worker
        th_bad++;
    while (atomic_load(&th_round) < 1)
        usleep(100);
    usleep(2000);
    if (gm_timer_reset(t, 1 * MS) != 0) // fired: starts again on the worker it ran on
        th_bad++;
    while (atomic_load(&th_round) < 2)
        usleep(100);
    if (gm_timer_stop(t) != 0)
        th_bad++;
    return NULL;
}

// Keeps the group from counting as deadlocked while the owner waits on a
// stopped timer that only the thread will start.
static void th_keeper(void *arg)
{
    (void)arg;
    while (atomic_load(&th_round) < 2)
        gm_sleep(1 * MS);
}

static void th_owner(void *arg)
{
    (void)arg;
    gm_go(th_keeper, NULL);
    gm_timer *t = gm_timer_new(HOUR);
    atomic_store(&th_timer, t);
    CHECK(recv_time(gm_timer_chan(t)) != 0);
    atomic_store(&th_round, 1);
    CHECK(recv_time(gm_timer_chan(t)) != 0);
    atomic_store(&th_round, 2);
}

TEST(stop_and_reset_from_a_plain_thread)
{
    pthread_t th;
    pthread_create(&th, NULL, th_thread, NULL);
    CHECK_EQ(gm_main(th_owner, NULL), 0);
    pthread_join(th, NULL);
    CHECK_EQ(th_bad, 0);
    gm_timer *t = atomic_load(&th_timer);
    errno = 0;
    CHECK_EQ(gm_timer_reset(t, 1 * MS), -1); // its worker is gone
    CHECK_EQ(errno, EPERM);
    CHECK_EQ(gm_timer_stop(t), 0);
    gm_timer_free(t); // from a plain thread
}

// A plain thread starts a stopped timer of a worker whose coroutines only
// yield to each other (gm_yield's hand-over skips the loop while nothing
// is queued for it): the start still reaches the worker.
static gm_timer *_Atomic yt_timer;
static _Atomic int yt_got, yt_bad;

static void *yt_thread(void *arg)
{
    (void)arg;
    gm_timer *t;
    while ((t = atomic_load(&yt_timer)) == NULL)
        usleep(100);
    usleep(2000);
    if (gm_timer_reset(t, 0) != 0)
        yt_bad++;
    return NULL;
}

static void yt_spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&yt_got))
        gm_yield();
}

static void yt_main(void *arg)
{
    (void)arg;
    gm_timer *t = gm_timer_new(0);
    recv_time(gm_timer_chan(t)); // fired: stopped, in no heap
    gm_go(yt_spinner, NULL);
    atomic_store(&yt_timer, t);
    uint64_t v, limit = nanotime() + 60ull * 1000 * MS; // a hang fails, instead of running forever
    while (gm_chan_try_recv(gm_timer_chan(t), &v) == 0 && nanotime() < limit)
        gm_yield();
    CHECK(nanotime() < limit);
    atomic_store(&yt_got, 1);
    gm_timer_free(t);
}

TEST(start_from_a_thread_reaches_a_worker_that_only_yields)
{
    pthread_t th;
    pthread_create(&th, NULL, yt_thread, NULL);
    CHECK_EQ(gm_main(yt_main, NULL), 0);
    pthread_join(th, NULL);
    CHECK_EQ(yt_bad, 0);
}

// A group's end stops its pending timers; a coroutine of a later gm_main
// starts them again on its own worker.
static gm_timer *g_timer, *g_func;
static gm_ticker *g_ticker;
static _Atomic int g_runs;
static gm_waitgroup g_wg = GM_WAITGROUP_INIT;

static void g_fn(void *arg)
{
    (void)arg;
    g_runs++;
    gm_waitgroup_done(&g_wg);
}

static void g_first(void *arg)
{
    (void)arg;
    g_timer = gm_timer_new(HOUR);
    g_ticker = gm_ticker_new(HOUR);
    g_func = gm_after_func(HOUR, g_fn, NULL);
}

static void g_second(void *arg)
{
    (void)arg;
    CHECK_EQ(gm_timer_reset(g_timer, 1 * MS), 0);
    CHECK(recv_time(gm_timer_chan(g_timer)) != 0);
    gm_waitgroup_add(&g_wg, 1);
    CHECK_EQ(gm_timer_reset(g_func, 1 * MS), 0);
    gm_waitgroup_wait(&g_wg);
    CHECK_EQ(gm_ticker_reset(g_ticker, 1 * MS), 0);
    CHECK(recv_time(gm_ticker_chan(g_ticker)) != 0);
    gm_ticker_free(g_ticker);
}

TEST(group_end_stops_timers)
{
    CHECK_EQ(gm_main(g_first, NULL), 0);
    CHECK_EQ(gm_timer_stop(g_timer), 0);
    CHECK_EQ(gm_timer_stop(g_func), 0);
    CHECK_EQ(g_runs, 0);
    CHECK_EQ(gm_main(g_second, NULL), 0);
    CHECK_EQ(g_runs, 1);
    gm_timer_free(g_timer);
    gm_timer_free(g_func);
}

// Timers reset, stopped and received by coroutines of three workers at
// random, each other's included; the heaps stay valid and nothing leaks.
#define NT 8
static gm_timer *st[NT];
static gm_waitgroup st_wg = GM_WAITGROUP_INIT;
static _Atomic long st_fired;

static void st_fn(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
    for (int i = 0; i < 400; i++) {
        uint64_t r = test_rand(&seed);
        gm_timer *t = st[r % NT];
        uint64_t v;
        switch ((r >> 8) % 4) {
        case 0: gm_timer_reset(t, (r >> 16) % (2 * MS)); break;
        case 1: gm_timer_stop(t); break;
        case 2:
            if (gm_chan_try_recv(gm_timer_chan(t), &v) == 1)
                st_fired++;
            break;
        default: gm_sleep((r >> 16) % (MS / 4)); break;
        }
        if (i % 50 == 0 && gm_debug_check() != NULL)
            CHECK(gm_debug_check() == NULL);
    }
    gm_waitgroup_done(&st_wg);
}

static void st_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < NT; i++)
        st[i] = gm_timer_new(HOUR);
    gm_waitgroup_add(&st_wg, NT);
    for (int i = 0; i < NT; i++)
        gm_go(st_fn, (void *)(uintptr_t)i);
    gm_waitgroup_wait(&st_wg);
    for (int i = 0; i < NT; i++)
        gm_timer_free(st[i]); // some pending, some on other workers
}

TEST(timers_shared_between_workers)
{
    gm_set_procs(3);
    CHECK_EQ(gm_main(st_main, NULL), 0);
    gm_set_procs(1);
    CHECK(st_fired > 0);
}

// ---------------------------------------------------------------- misuse

static void free_timer_chan_main(void *arg)
{
    (void)arg;
    gm_timer *t = gm_timer_new(HOUR);
    gm_chan_free(gm_timer_chan(t));
}
static void free_timer_chan(void *arg)
{
    gm_main(free_timer_chan_main, arg);
}
static void close_timer_chan_main(void *arg)
{
    (void)arg;
    gm_ticker *tk = gm_ticker_new(HOUR);
    gm_chan_close(gm_ticker_chan(tk));
}
static void close_timer_chan(void *arg)
{
    gm_main(close_timer_chan_main, arg);
}
static gm_timer *waited;
static void waiter(void *arg)
{
    (void)arg;
    recv_time(gm_timer_chan(waited));
}
static void free_waited_main(void *arg)
{
    (void)arg;
    waited = gm_timer_new(HOUR);
    gm_go(waiter, NULL);
    gm_yield();
    gm_timer_free(waited);
}
static void free_waited(void *arg)
{
    gm_main(free_waited_main, arg);
}
// A stopped timer is no longer pending: the deadlock is reported at once,
// not when its old deadline (an hour away) passes.
static void stopped_deadlock_main(void *arg)
{
    (void)arg;
    gm_timer *t = gm_timer_new(HOUR);
    gm_timer_stop(t);
    gm_park();
}
static void stopped_deadlock(void *arg)
{
    gm_main(stopped_deadlock_main, arg);
}

static void stop_null(void *arg)
{
    gm_timer_stop(arg);
}
static void ticker_reset_null(void *arg)
{
    gm_ticker_reset(arg, 1000);
}

TEST(misuse_is_caught)
{
    CHECK_DEATH(stop_null, NULL, "gm_timer_stop(NULL)");
    CHECK_DEATH(ticker_reset_null, NULL, "gm_ticker_reset(NULL)");
    CHECK_DEATH(free_timer_chan, NULL, "a timer's (gm_timer_free or gm_ticker_free frees it)");
    CHECK_DEATH(close_timer_chan, NULL, "close of channel 0x");
    CHECK_DEATH(close_timer_chan, NULL, "a timer's");
    CHECK_DEATH(free_waited, NULL, "free of timer 0x");
    CHECK_DEATH(free_waited, NULL, "wait on its channel");
    CHECK_DEATH(stopped_deadlock, NULL, "all coroutines are asleep - deadlock!");
}

// ------------------------------------------------------ no timer starves

// Two coroutines that park on each other hand the worker straight over
// (no trip through the scheduler's loop) while no timer is due; a timer
// that falls due meanwhile must still fire (a third coroutine's sleep, a
// select's timer). The ping-pong stops when both have fired: a worker
// that only handed over would go on forever, and the bound fails it.
static _Atomic int firedBoth;
static gm_chan *pingc, *pongc;

static void sleeper(void *arg)
{
    (void)arg;
    gm_sleep(2 * MS);
    atomic_fetch_add(&firedBoth, 1);
}

static void ponger(void *arg)
{
    (void)arg;
    gm_timer *t = gm_timer_new(3 * MS);
    int64_t v, fired;
    gm_select_case cs[2] = { { pongc, GM_SELECT_RECV, &v, NULL }, { gm_timer_chan(t), GM_SELECT_RECV, &fired, NULL } };
    for (;;) {
        int r = gm_select(cs, 2, 0);
        if (r == 1) {
            atomic_fetch_add(&firedBoth, 1);
            continue;
        }
        if (v < 0)
            break;
        gm_chan_send(pingc, &v);
    }
    gm_timer_free(t);
}

static void pinger(void *arg)
{
    (void)arg;
    uint64_t t0 = nanotime();
    int64_t i = 0, v;
    while (atomic_load(&firedBoth) < 2 && nanotime() - t0 < 10000 * MS) {
        gm_chan_send(pongc, &i);
        gm_chan_recv(pingc, &v);
        i++;
    }
    CHECK_EQ(atomic_load(&firedBoth), 2);
    CHECK(i > 0);
    i = -1;
    gm_chan_send(pongc, &i);
}

static void starve_main(void *arg)
{
    (void)arg;
    pingc = gm_chan_new(sizeof(int64_t), 0);
    pongc = gm_chan_new(sizeof(int64_t), 0);
    gm_go(sleeper, NULL);
    gm_go(ponger, NULL);
    gm_go(pinger, NULL);
}

TEST(timers_fire_while_coroutines_hand_the_worker_over)
{
    CHECK_EQ(gm_main(starve_main, NULL), 0);
    gm_chan_free(pingc);
    gm_chan_free(pongc);
}

// ------------------------------------------------------------- validator

static void validator_main(void *arg)
{
    (void)arg;
    worker *p = TLS(tworker);
    gm_timer *a = gm_timer_new(HOUR), *b = gm_timer_new(2 * HOUR);
    gm_sleep(1); // a timed wait's entry beside them, gone when it fires
    gm_chan *c = gm_after(3 * HOUR);
    CHECK(timers_valid(p) == NULL);
    CHECK_EQ(p->ntimers, 3);
    size_t i = a->i;
    a->i = b->i; // an index that is not its entry's
    const char *bad = timers_valid(p);
    CHECK(bad != NULL && strstr(bad, "not where the timer says") != NULL);
    a->i = i;
    a->when -= 1; // the timer due before its entry (after it is a lazy reset: allowed)
    bad = timers_valid(p);
    CHECK(bad != NULL && strstr(bad, "not due when the timer is") != NULL);
    a->when += 2;
    CHECK(timers_valid(p) == NULL);
    a->when -= 1;
    CHECK(timers_valid(p) == NULL);
    // A value in a's channel that a does not know it sent: a reset would
    // skip the drain and leave it there.
    uint64_t v = 1;
    CHECK_EQ(gm_chan_try_send(gm_timer_chan(a), &v), 1);
    bad = timers_valid(p);
    CHECK(bad != NULL && strstr(bad, "does not know it sent") != NULL);
    a->sent = true;
    CHECK(timers_valid(p) == NULL);
    CHECK_EQ(gm_timer_reset(a, HOUR), 1); // taken back
    CHECK_EQ(gm_chan_len(gm_timer_chan(a)), 0);
    CHECK(!a->sent);
    p->timerq = b; // queued for p, with no note on its inbox
    bad = worker_valid(p);
    CHECK(bad != NULL && strstr(bad, "no note") != NULL);
    p->timerq = NULL;
    CHECK(gm_debug_check() == NULL);
    gm_timer_free(a);
    gm_timer_free(b);
    gm_chan_free(c);
}

TEST(validator_names_a_broken_timer_entry)
{
    CHECK_EQ(gm_main(validator_main, NULL), 0);
}

int main(void)
{
    gm_set_procs(1);
    RUN(timer_fires_once);
    RUN(timer_stop_and_reset);
    RUN(ticker_ticks_and_drops_missed_ticks);
    RUN(after_func_runs_in_a_new_coroutine);
    RUN(stop_and_reset_from_another_worker);
    RUN(stop_and_reset_from_a_plain_thread);
    RUN(start_from_a_thread_reaches_a_worker_that_only_yields);
    RUN(group_end_stops_timers);
    RUN(timers_shared_between_workers);
    RUN(misuse_is_caught);
    RUN(timers_fire_while_coroutines_hand_the_worker_over);
    RUN(validator_names_a_broken_timer_entry);
    return test_report();
}
