// SPDX-License-Identifier: MIT
//
// Deadlines and cancellation (context.c, and the claimed waits of proc.c
// that every blocking call uses): each _until call fails with ETIMEDOUT
// when its deadline passes first, at once when it has passed already, and
// succeeds when served first; a waiter that gave up owns nothing and
// leaves its object consistent (the validators); the same from plain
// threads. gm_ctx: the tree (cancel reaches descendants, not ancestors; a
// child of a done parent is born done), deadlines, causes, the done
// channel in gm_select, _ctx calls woken by a cancel from a coroutine or a
// thread, freeing rules; gm_errgroup; misuse that must abort naming the
// object. No test asserts a duration: deadlines are short so that the
// tests end soon, and only what happened is checked.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "export_test.h"
#include "testing.h"

#define MS 1000000LL

static void run(void (*fn)(void *), void *arg)
{
    CHECK_EQ(gm_main(fn, arg), 0);
}

// ------------------------------------------------ deadlines in the past

static gm_mutex pm = GM_MUTEX_INIT;
static gm_sema psema = GM_SEMA_INIT(0);
static gm_waitgroup pwg = GM_WAITGROUP_INIT;
static gm_cond pcond = GM_COND_INIT;

static void forever(void *arg)
{
    gm_chan *c = arg;
    long v;
    gm_chan_recv(c, &v);
}

// A deadline already past: the call tries without waiting. It fails with
// ETIMEDOUT when it would wait, succeeds when it need not.
static void past_main(void *arg)
{
    (void)arg;
    int64_t past = gm_now() - 1;
    gm_chan *c = gm_chan_new(sizeof(long), 1);
    long v = 5;
    errno = 0;
    CHECK_EQ(gm_chan_recv_until(c, &v, past), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    CHECK_EQ(gm_chan_send_until(c, &v, past), 0); // room in the buffer: sent
    errno = 0;
    CHECK_EQ(gm_chan_send_until(c, &v, past), -1); // full
    CHECK_EQ(errno, ETIMEDOUT);
    v = 0;
    CHECK_EQ(gm_chan_recv_until(c, &v, past), 1);
    CHECK_EQ(v, 5);
    gm_select_case cs[1] = { { c, GM_SELECT_RECV, &v, NULL } };
    errno = 0;
    CHECK_EQ(gm_select_until(cs, 1, past), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    errno = 0;
    CHECK_EQ(gm_select_until(NULL, 0, past), -1); // no cases: only the deadline ends it
    CHECK_EQ(errno, ETIMEDOUT);

    gm_mutex_lock(&pm);
    errno = 0;
    CHECK_EQ(gm_mutex_lock_until(&pm, past), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    errno = 0;
    CHECK_EQ(gm_cond_wait_until(&pcond, &pm, past), -1); // never released m
    CHECK_EQ(errno, ETIMEDOUT);
    CHECK_EQ(gm_mutex_trylock(&pm), 0);
    gm_mutex_unlock(&pm);
    CHECK_EQ(gm_mutex_lock_until(&pm, past), 0); // free: taken
    gm_mutex_unlock(&pm);

    static gm_rwmutex prw = GM_RWMUTEX_INIT;
    CHECK_EQ(gm_rwmutex_rlock_until(&prw, past), 0); // free: read-locked
    errno = 0;
    CHECK_EQ(gm_rwmutex_lock_until(&prw, past), -1); // a reader holds it
    CHECK_EQ(errno, ETIMEDOUT);
    gm_rwmutex_runlock(&prw);
    CHECK_EQ(gm_rwmutex_lock_until(&prw, past), 0);
    errno = 0;
    CHECK_EQ(gm_rwmutex_rlock_until(&prw, past), -1); // the writer holds it
    CHECK_EQ(errno, ETIMEDOUT);
    gm_rwmutex_unlock(&prw);

    CHECK_EQ(gm_sema_acquire_until(&psema, 1, past), -1);
    gm_sema_release(&psema, 1);
    CHECK_EQ(gm_sema_acquire_until(&psema, 1, past), 0);
    CHECK_EQ(gm_waitgroup_wait_until(&pwg, past), 0); // count 0
    gm_waitgroup_add(&pwg, 1);
    CHECK_EQ(gm_waitgroup_wait_until(&pwg, past), -1);
    gm_waitgroup_done(&pwg);

    uint64_t id;
    gm_g *g = gm_go_id(forever, c, NULL, &id);
    CHECK_EQ(gm_join_until(g, id, past), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    v = 1;
    gm_chan_send(c, &v);
    gm_join(g, id);
    CHECK_EQ(gm_join_until(g, id, past), 0); // ended: at once

    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    char b[4];
    errno = 0;
    CHECK_EQ(gm_read_until(fds[0], b, sizeof b, past), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    CHECK_EQ(gm_wait_fd_until(fds[0], GM_FD_READ, past), -1);
    CHECK_EQ(gm_wait_fd_until(fds[1], GM_FD_WRITE, past), GM_FD_WRITE); // ready now: reported
    CHECK_EQ(gm_write_until(fds[1], "ab", 2, past), 2);
    CHECK_EQ(gm_read_until(fds[0], b, sizeof b, past), 2);
    close(fds[0]);
    close(fds[1]);
    gm_chan_free(c);
}

TEST(deadline_in_the_past_returns_at_once)
{
    run(past_main, NULL);
}

// ------------------------------------------------ deadlines that pass

static gm_mutex tm = GM_MUTEX_INIT;
static gm_sema tsema = GM_SEMA_INIT(0);
static gm_cond tcond = GM_COND_INIT;
static gm_waitgroup twg = GM_WAITGROUP_INIT;
static int expired;

static void expect_timeout(int r, int line)
{
    if (r == -1 && errno == ETIMEDOUT)
        expired++;
    else
        fprintf(stderr, "    line %d: got %d, errno %d\n", line, r, errno);
}
#define EXPIRES(call) expect_timeout((call), __LINE__)

// Each call waits and its deadline ends it: the objects are left as they
// were, with no waiter (their validators run under GM_DEBUG=3 too).
static void expiry_main(void *arg)
{
    (void)arg;
    gm_chan *c = gm_chan_new(sizeof(long), 0);
    long v = 1;
    expired = 0;
    EXPIRES(gm_chan_recv_until(c, &v, gm_deadline(MS)));
    EXPIRES(gm_chan_send_until(c, &v, gm_deadline(MS)));
    gm_select_case cs[2] = { { c, GM_SELECT_RECV, &v, NULL }, { c, GM_SELECT_SEND, &v, NULL } };
    EXPIRES(gm_select_until(cs, 2, gm_deadline(MS)));
    CHECK(c->recvq.first == NULL && c->sendq.first == NULL);

    gm_mutex_lock(&tm);
    EXPIRES(gm_mutex_lock_until(&tm, gm_deadline(MS)));
    EXPIRES(gm_cond_wait_until(&tcond, &tm, gm_deadline(MS)));
    CHECK_EQ(gm_mutex_trylock(&tm), 0); // held again after the wait
    gm_mutex_unlock(&tm);
    CHECK_EQ(gm_mutex_trylock(&tm), 1); // no waiter left to hand it to
    gm_mutex_unlock(&tm);
    CHECK(gQueue_empty(&tm.waiters) && gQueue_empty(&tcond.waiters));

    static gm_rwmutex trw = GM_RWMUTEX_INIT;
    gm_rwmutex_rlock(&trw);
    EXPIRES(gm_rwmutex_lock_until(&trw, gm_deadline(MS)));
    CHECK_EQ(gm_rwmutex_tryrlock(&trw), 1); // no writer waits any more
    gm_rwmutex_runlock(&trw);
    gm_rwmutex_runlock(&trw);
    gm_rwmutex_lock(&trw);
    EXPIRES(gm_rwmutex_rlock_until(&trw, gm_deadline(MS)));
    gm_rwmutex_unlock(&trw);
    CHECK_EQ(gm_rwmutex_trylock(&trw), 1); // nobody left to hand it to
    gm_rwmutex_unlock(&trw);
    CHECK(gQueue_empty(&trw.readq) && gQueue_empty(&trw.writeq));

    EXPIRES(gm_sema_acquire_until(&tsema, 2, gm_deadline(MS)));
    CHECK_EQ(tsema.count, 0);
    gm_waitgroup_add(&twg, 1);
    EXPIRES(gm_waitgroup_wait_until(&twg, gm_deadline(MS)));
    gm_waitgroup_done(&twg);

    uint64_t id;
    gm_g *g = gm_go_id(forever, c, NULL, &id);
    EXPIRES(gm_join_until(g, id, gm_deadline(MS)));
    gm_chan_send(c, &v);
    CHECK_EQ(gm_join_until(g, id, gm_deadline(1000 * MS)), 0);

    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    char b[4];
    EXPIRES(gm_read_until(fds[0], b, sizeof b, gm_deadline(MS)));
    EXPIRES(gm_wait_fd_until(fds[0], GM_FD_READ, gm_deadline(MS)));
    CHECK_EQ(gm_wait_fd(fds[0], GM_FD_READ, MS), 0); // the old call: 0 on timeout
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 4), 0);
    EXPIRES(gm_accept_until(l, NULL, NULL, gm_deadline(MS)));
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(gm_connect_until(s, (struct sockaddr *)&a, len, gm_deadline(1000 * MS)), 0);
    int acc = gm_accept_until(l, NULL, NULL, gm_deadline(1000 * MS));
    CHECK(acc >= 0);
    // A write that fills the socket's buffers stops at its deadline with a
    // short count.
    static char big[32 << 20];
    ssize_t w = gm_write_until(s, big, sizeof big, gm_deadline(MS));
    CHECK(w > 0 && w < (ssize_t)sizeof big);
    CHECK_EQ(errno, ETIMEDOUT);
    close(acc);
    close(s);
    close(l);
    close(fds[0]);
    close(fds[1]);
    CHECK_EQ(expired, 13);
    gm_chan_free(c);
}

TEST(deadline_ends_every_wait)
{
    run(expiry_main, NULL);
}

// Served before the deadline: the call succeeds, and the deadline's timer
// entry is gone (the worker's heap holds nothing when the wait is over).
static gm_chan *served_c;

static void served_sender(void *arg)
{
    (void)arg;
    long v = 42;
    gm_chan_send(served_c, &v);
}

static void served_main(void *arg)
{
    (void)arg;
    served_c = gm_chan_new(sizeof(long), 0);
    gm_go(served_sender, NULL);
    long v = 0;
    CHECK_EQ(gm_chan_recv_until(served_c, &v, gm_deadline(3600 * 1000 * MS)), 1);
    CHECK_EQ(v, 42);
    CHECK_EQ(TLS(tworker)->ntimers, 0);
    gm_chan_free(served_c);
}

TEST(served_before_the_deadline)
{
    run(served_main, NULL);
}

// A waiter that gave up must not hold back the ones behind it: a sema
// waiter for 5 units times out, and the one behind it wanting 1 is served
// by the units already there.
static gm_sema hsema = GM_SEMA_INIT(0);
static int small_got;

static void big_waiter(void *arg)
{
    (void)arg;
    EXPIRES(gm_sema_acquire_until(&hsema, 5, gm_deadline(2 * MS)));
}

static void small_waiter(void *arg)
{
    (void)arg;
    gm_sema_acquire(&hsema, 1);
    small_got = 1;
}

static void holdback_main(void *arg)
{
    (void)arg;
    expired = 0;
    gm_go(big_waiter, NULL);
    gm_yield(); // big waits first
    gm_go(small_waiter, NULL);
    gm_yield();
    gm_sema_release(&hsema, 1); // not enough for the head: small waits behind it
    CHECK_EQ(small_got, 0);
}

TEST(a_waiter_that_gives_up_unblocks_the_next)
{
    small_got = 0;
    run(holdback_main, NULL);
    CHECK_EQ(small_got, 1);
    CHECK_EQ(expired, 1);
    CHECK_EQ(hsema.count, 0);
}

// Many receivers with short deadlines race senders on two workers: every
// value sent is received exactly once (none lost to a receiver that gave
// up, none twice).
#define RACERS 8
#define RACE_VALUES 4000
static gm_chan *race_c;
static _Atomic long race_sum, race_got, race_timeouts;
static _Atomic int race_senders_left;

static void race_receiver(void *arg)
{
    (void)arg;
    long v;
    for (;;) {
        int r = gm_chan_recv_until(race_c, &v, gm_deadline(20000));
        if (r == 0)
            return; // closed and drained
        if (r < 0) {
            race_timeouts++;
            continue;
        }
        race_sum += v;
        race_got++;
    }
}

static void race_sender(void *arg)
{
    long first = (long)(uintptr_t)arg;
    for (long v = first; v < RACE_VALUES; v += 2) {
        gm_chan_send(race_c, &v);
        if (v % 64 == 0)
            gm_sleep(30000); // let receivers time out now and then
    }
    if (--race_senders_left == 0)
        gm_chan_close(race_c);
}

static void race_main(void *arg)
{
    (void)arg;
    race_c = gm_chan_new(sizeof(long), 0);
    race_senders_left = 2;
    for (int i = 0; i < RACERS; i++) {
        gm_go_options o = { .worker = 1 + i % 2 };
        gm_go_opts(race_receiver, NULL, &o);
    }
    gm_go_options o1 = { .worker = 1 }, o2 = { .worker = 2 };
    gm_go_opts(race_sender, (void *)0, &o1);
    gm_go_opts(race_sender, (void *)1, &o2);
}

TEST(deadlines_race_senders_without_losing_values)
{
    int procs = gm_set_procs(2);
    run(race_main, NULL);
    gm_set_procs(procs);
    CHECK_EQ(race_got, RACE_VALUES);
    CHECK_EQ(race_sum, (long)RACE_VALUES * (RACE_VALUES - 1) / 2);
    gm_chan_free(race_c);
}

// Plain threads: their deadline is the futex's timeout.
static void *thread_expiry(void *arg)
{
    (void)arg;
    gm_chan *c = gm_chan_new(sizeof(long), 0);
    long v;
    EXPIRES(gm_chan_recv_until(c, &v, gm_deadline(MS)));
    EXPIRES(gm_chan_send_until(c, &v, gm_deadline(MS)));
    gm_select_case cs[1] = { { c, GM_SELECT_RECV, &v, NULL } };
    EXPIRES(gm_select_until(cs, 1, gm_deadline(MS)));
    gm_mutex_lock(&tm);
    EXPIRES(gm_cond_wait_until(&tcond, &tm, gm_deadline(MS)));
    gm_mutex_unlock(&tm);
    EXPIRES(gm_sema_acquire_until(&tsema, 1, gm_deadline(MS)));
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    char b[4];
    EXPIRES(gm_read_until(fds[0], b, sizeof b, gm_deadline(MS)));
    close(fds[0]);
    close(fds[1]);
    gm_chan_free(c);
    return NULL;
}

static void *thread_holds_mutex(void *arg)
{
    (void)arg;
    EXPIRES(gm_mutex_lock_until(&tm, gm_deadline(MS))); // the test's thread holds it
    return NULL;
}

TEST(deadlines_on_plain_threads)
{
    expired = 0;
    pthread_t t;
    pthread_create(&t, NULL, thread_expiry, NULL);
    pthread_join(t, NULL);
    gm_mutex_lock(&tm);
    pthread_create(&t, NULL, thread_holds_mutex, NULL);
    pthread_join(t, NULL);
    gm_mutex_unlock(&tm);
    CHECK_EQ(expired, 7);
    CHECK(gQueue_empty(&tm.waiters));
}

// ------------------------------------------------------------- contexts

TEST(background)
{
    gm_ctx *bg = gm_ctx_background();
    CHECK(bg != NULL);
    CHECK_EQ(gm_ctx_err(bg), 0);
    CHECK_EQ(gm_ctx_cause(bg), 0);
    CHECK(gm_ctx_done(bg) == NULL);
    CHECK_EQ(gm_ctx_deadline(bg), GM_NO_DEADLINE);
    gm_ctx_free(bg); // no-op
    gm_ctx_free(NULL);
    CHECK_EQ(gm_ctx_err(bg), 0);
}

TEST(cancel_reaches_descendants_only)
{
    gm_ctx *root = gm_ctx_with_cancel(gm_ctx_background());
    gm_ctx *a = gm_ctx_with_cancel(root), *b = gm_ctx_with_cancel(root);
    gm_ctx *a1 = gm_ctx_with_cancel(a), *a2 = gm_ctx_with_cancel(a), *a11 = gm_ctx_with_cancel(a1);
    gm_ctx_cancel(a, 77);
    CHECK_EQ(gm_ctx_err(a), ECANCELED);
    CHECK_EQ(gm_ctx_cause(a), 77);
    CHECK_EQ(gm_ctx_err(a1), ECANCELED);
    CHECK_EQ(gm_ctx_cause(a11), 77); // the cause travels down
    CHECK_EQ(gm_ctx_err(a2), ECANCELED);
    CHECK_EQ(gm_ctx_err(root), 0);
    CHECK_EQ(gm_ctx_err(b), 0);
    char x;
    CHECK_EQ(gm_chan_try_recv(gm_ctx_done(a11), &x), -1); // closed
    CHECK_EQ(gm_chan_try_recv(gm_ctx_done(b), &x), 0);
    gm_ctx_cancel(a, 5); // done already: unchanged
    CHECK_EQ(gm_ctx_cause(a), 77);
    gm_ctx *late = gm_ctx_with_cancel(a1); // a child of a done parent is born done
    CHECK_EQ(gm_ctx_err(late), ECANCELED);
    CHECK_EQ(gm_ctx_cause(late), 77);
    gm_ctx_cancel(root, 0);
    CHECK_EQ(gm_ctx_err(b), ECANCELED);
    CHECK_EQ(gm_ctx_cause(b), ECANCELED); // cause 0: ECANCELED
    // Freeing a parent first leaves its children as roots, done.
    gm_ctx_free(root);
    CHECK_EQ(gm_ctx_err(a), ECANCELED);
    CHECK(a->parent == NULL && b->parent == NULL);
    gm_ctx_free(a1);
    gm_ctx_free(a);
    gm_ctx_free(late);
    gm_ctx_free(a11);
    gm_ctx_free(a2);
    gm_ctx_free(b);
}

// A deep chain: the cancel walks it without recursion.
TEST(cancel_a_deep_chain)
{
    enum { Depth = 100000 };
    gm_ctx **chain = malloc(Depth * sizeof *chain);
    chain[0] = gm_ctx_with_cancel(gm_ctx_background());
    for (int i = 1; i < Depth; i++)
        chain[i] = gm_ctx_with_cancel(chain[i - 1]);
    gm_ctx_cancel(chain[0], 9);
    CHECK_EQ(gm_ctx_cause(chain[Depth - 1]), 9);
    for (int i = Depth - 1; i >= 0; i--)
        gm_ctx_free(chain[i]);
    free(chain);
}

static void deadline_main(void *arg)
{
    (void)arg;
    gm_ctx *bg = gm_ctx_background();
    gm_ctx *past = gm_ctx_with_deadline(bg, gm_now() - 1);
    CHECK_EQ(gm_ctx_err(past), ETIMEDOUT);
    CHECK_EQ(gm_ctx_cause(past), ETIMEDOUT);
    gm_ctx *soon = gm_ctx_with_timeout(bg, MS);
    gm_ctx *child = gm_ctx_with_timeout(soon, 3600 * 1000 * MS); // later than its parent's: the parent's
    CHECK_EQ(gm_ctx_deadline(child), gm_ctx_deadline(soon));
    char x;
    CHECK_EQ(gm_chan_recv(gm_ctx_done(child), &x), 0); // closed when soon's deadline passed
    CHECK_EQ(gm_ctx_err(soon), ETIMEDOUT);
    CHECK_EQ(gm_ctx_err(child), ETIMEDOUT);
    // A wait with a context that has a deadline fails with ETIMEDOUT.
    gm_ctx *d = gm_ctx_with_timeout(bg, MS);
    gm_chan *c = gm_chan_new(1, 0);
    errno = 0;
    CHECK_EQ(gm_chan_recv_ctx(c, &x, d), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    // One freed before its deadline: its timer goes with it.
    gm_ctx *far = gm_ctx_with_timeout(bg, 3600 * 1000 * MS);
    gm_ctx_free(far);
    gm_ctx_free(d);
    gm_ctx_free(child);
    gm_ctx_free(soon);
    gm_ctx_free(past);
    gm_chan_free(c);
}

TEST(deadlines_of_contexts)
{
    run(deadline_main, NULL);
    errno = 0;
    CHECK(gm_ctx_with_timeout(gm_ctx_background(), MS) == NULL); // a plain thread: no worker for the timer
    CHECK_EQ(errno, EPERM);
    gm_ctx *c = gm_ctx_with_timeout(gm_ctx_background(), -1); // past: done, no timer needed
    CHECK_EQ(gm_ctx_err(c), ETIMEDOUT);
    gm_ctx_free(c);
}

// Every _ctx call, parked, wakes with ECANCELED when another coroutine
// cancels the context; and a context already done fails them at once.
static gm_ctx *wctx;
static gm_chan *wc, *wcs;
static gm_mutex wm = GM_MUTEX_INIT, wm2 = GM_MUTEX_INIT;
static gm_cond wcond = GM_COND_INIT;
static gm_sema wsema = GM_SEMA_INIT(0);
static gm_waitgroup wwg = GM_WAITGROUP_INIT;
static int wfds[2];
static gm_g *wjoin_g;
static uint64_t wjoin_id;
static _Atomic int cancelled;

static void expect_cancel(int r, int line)
{
    if (r == -1 && errno == ECANCELED)
        cancelled++;
    else
        fprintf(stderr, "    line %d: got %d, errno %d\n", line, r, errno);
}
#define CANCELLED(call) expect_cancel((call), __LINE__)

static void w_recv(void *a)
{
    (void)a;
    long v;
    CANCELLED(gm_chan_recv_ctx(wc, &v, wctx));
}
static void w_send(void *a)
{
    (void)a;
    long v = 1;
    CANCELLED(gm_chan_send_ctx(wcs, &v, wctx));
}
static void w_select(void *a)
{
    (void)a;
    long v;
    gm_select_case cs[1] = { { wc, GM_SELECT_RECV, &v, NULL } };
    CANCELLED(gm_select_ctx(cs, 1, wctx));
}
static void w_done_case(void *a)
{
    (void)a;
    long v;
    char x;
    int ok = 1;
    gm_select_case cs[2] = { { wc, GM_SELECT_RECV, &v, NULL }, { gm_ctx_done(wctx), GM_SELECT_RECV, &x, &ok } };
    if (gm_select(cs, 2, 0) == 1 && !ok) // Go's case <-ctx.Done()
        cancelled++;
}
static void w_mutex(void *a)
{
    (void)a;
    CANCELLED(gm_mutex_lock_ctx(&wm, wctx));
}
static void w_cond(void *a)
{
    (void)a;
    gm_mutex_lock(&wm2);
    CANCELLED(gm_cond_wait_ctx(&wcond, &wm2, wctx)); // wm2 is held again after
    gm_mutex_unlock(&wm2);
}
static gm_rwmutex wrw = GM_RWMUTEX_INIT, wrw2 = GM_RWMUTEX_INIT;
static void w_rwread(void *a)
{
    (void)a;
    CANCELLED(gm_rwmutex_rlock_ctx(&wrw, wctx)); // cancel_main holds the write lock
}
static void w_rwwrite(void *a)
{
    (void)a;
    CANCELLED(gm_rwmutex_lock_ctx(&wrw2, wctx)); // cancel_main holds a read lock
}
static void w_sema(void *a)
{
    (void)a;
    CANCELLED(gm_sema_acquire_ctx(&wsema, 1, wctx));
}
static void w_wg(void *a)
{
    (void)a;
    CANCELLED(gm_waitgroup_wait_ctx(&wwg, wctx));
}
static void w_join(void *a)
{
    (void)a;
    CANCELLED(gm_join_ctx(wjoin_g, wjoin_id, wctx));
}
static void w_read(void *a)
{
    (void)a;
    char b[4];
    CANCELLED((int)gm_read_ctx(wfds[0], b, sizeof b, wctx));
}
static void w_forever(void *a)
{
    (void)a;
    long v;
    gm_chan *never = gm_chan_new(sizeof v, 0);
    gm_chan_recv_ctx(never, &v, wctx);
    gm_chan_free(never);
}
// A plain thread blocked in a _ctx call wakes too.
static void *w_thread(void *a)
{
    (void)a;
    gm_chan *c = gm_chan_new(1, 0);
    char x;
    gm_waitgroup_done(&wwg); // counted as a thread that may wake coroutines
    CANCELLED(gm_chan_recv_ctx(c, &x, wctx));
    CANCELLED(gm_sema_acquire_ctx(&wsema, 1, wctx)); // done already: at once, no units
    gm_chan_free(c);
    return NULL;
}

static pthread_t wthread;

static void cancel_main(void *arg)
{
    (void)arg;
    wjoin_g = gm_go_id(w_forever, NULL, NULL, &wjoin_id);
    gm_mutex_lock(&wm); // w_mutex waits for it
    gm_rwmutex_lock(&wrw);
    gm_rwmutex_rlock(&wrw2);
    void (*fns[])(void *) = { w_recv, w_send, w_select, w_done_case, w_mutex, w_sema, w_wg, w_join, w_read,
                              w_rwread, w_rwwrite };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        gm_go(fns[i], NULL);
    gm_go(w_cond, NULL);
    for (int i = 0; i < 20; i++)
        gm_yield(); // every one parks
    gm_ctx_cancel(wctx, 0); // wakes them all, w_forever too
    gm_mutex_unlock(&wm);   // no waiter left: w_mutex gave up
    CHECK_EQ(gm_mutex_trylock(&wm), 1);
    gm_mutex_unlock(&wm);
    gm_rwmutex_unlock(&wrw);
    gm_rwmutex_runlock(&wrw2);
    CHECK(gm_rwmutex_trylock(&wrw) == 1 && gm_rwmutex_trylock(&wrw2) == 1); // no waiter left on either
    gm_rwmutex_unlock(&wrw);
    gm_rwmutex_unlock(&wrw2);
}

TEST(cancel_wakes_every_ctx_call)
{
    cancelled = 0;
    wctx = gm_ctx_with_cancel(gm_ctx_background());
    wc = gm_chan_new(sizeof(long), 0);  // only receivers
    wcs = gm_chan_new(sizeof(long), 0); // only a sender
    CHECK_EQ(pipe(wfds), 0);
    // The thread first: from its first call it counts as one that may wake
    // coroutines, so gm_main reports no deadlock while it lives.
    gm_waitgroup_add(&wwg, 1);
    pthread_create(&wthread, NULL, w_thread, NULL);
    gm_waitgroup_wait(&wwg);
    gm_waitgroup_add(&wwg, 1); // w_wg waits for a count never reached
    run(cancel_main, NULL);
    pthread_join(wthread, NULL);
    CHECK_EQ(cancelled, 14);
    gm_waitgroup_add(&wwg, -1);
    gm_ctx_free(wctx);
    gm_chan_free(wc);
    gm_chan_free(wcs);
    close(wfds[0]);
    close(wfds[1]);
}

// Cancelling a tree of coroutines: each waits on its own child context's
// done channel; one cancel of the root wakes them all.
#define TREE 2000
static gm_ctx *troot;
static _Atomic int tree_woken;

static void tree_leaf(void *arg)
{
    gm_ctx *mine = arg;
    char x;
    if (gm_chan_recv(gm_ctx_done(mine), &x) == 0 && gm_ctx_err(mine) == ECANCELED)
        tree_woken++;
    gm_ctx_free(mine);
}

static void tree_main(void *arg)
{
    (void)arg;
    troot = gm_ctx_with_cancel(gm_ctx_background());
    gm_ctx *mid[10];
    for (int i = 0; i < 10; i++)
        mid[i] = gm_ctx_with_cancel(troot);
    for (int i = 0; i < TREE; i++)
        gm_go(tree_leaf, gm_ctx_with_cancel(mid[i % 10]));
    gm_yield();
    gm_ctx_cancel(troot, 0);
    gm_sleep(MS);
    for (int i = 0; i < 10; i++)
        gm_ctx_free(mid[i]);
}

TEST(cancel_a_tree_of_parked_coroutines)
{
    int procs = gm_set_procs(2);
    tree_woken = 0;
    run(tree_main, NULL);
    gm_set_procs(procs);
    CHECK_EQ(tree_woken, TREE);
    gm_ctx_free(troot);
}

// ------------------------------------------------------------- errgroup

static _Atomic int eg_saw_cancel;

static int eg_ok(gm_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 0;
}

static int eg_fail(gm_ctx *ctx, void *arg)
{
    (void)ctx;
    gm_sleep(MS);
    return (int)(uintptr_t)arg;
}

static int eg_waits(gm_ctx *ctx, void *arg)
{
    (void)arg;
    char x;
    gm_chan_recv(gm_ctx_done(ctx), &x); // until the first error
    if (gm_ctx_cause(ctx) == 42)
        eg_saw_cancel++;
    return 7; // not the first: not reported
}

static void errgroup_main(void *arg)
{
    (void)arg;
    gm_errgroup *eg = gm_errgroup_new(gm_ctx_background());
    for (int i = 0; i < 5; i++)
        CHECK_EQ(gm_errgroup_go(eg, eg_ok, NULL), 0);
    CHECK_EQ(gm_errgroup_wait(eg), 0);
    CHECK_EQ(gm_ctx_err(gm_errgroup_ctx(eg)), ECANCELED); // Wait ends the group's context
    gm_errgroup_free(eg);

    eg = gm_errgroup_new(gm_ctx_background());
    for (int i = 0; i < 3; i++)
        gm_errgroup_go(eg, eg_waits, NULL);
    gm_errgroup_go(eg, eg_fail, (void *)42);
    errno = 0;
    CHECK_EQ(gm_errgroup_go(eg, NULL, NULL), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gm_errgroup_wait(eg), 42);
    CHECK_EQ(eg_saw_cancel, 3);
    CHECK_EQ(gm_ctx_cause(gm_errgroup_ctx(eg)), 42);
    gm_errgroup_free(eg);
    gm_errgroup_free(NULL);
}

TEST(errgroup_first_error_cancels_the_rest)
{
    run(errgroup_main, NULL);
}

// ---------------------------------------------------------------- misuse

static void cancel_background(void *a)
{
    (void)a;
    gm_ctx_cancel(gm_ctx_background(), 0);
}
static void null_parent(void *a)
{
    (void)a;
    gm_ctx_with_cancel(NULL);
}
// AddressSanitizer reports a use of freed memory itself, before gomem's
// check could: that test is left to the other builds.
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
static void use_after_free(void *a)
{
    (void)a;
    gm_ctx *c = gm_ctx_with_cancel(gm_ctx_background());
    gm_ctx_free(c);
    gm_ctx_err(c); // the memory is still gomem's: the check sees it is no context now
}
#endif
static void close_done(void *a)
{
    (void)a;
    gm_chan_close(gm_ctx_done(gm_ctx_with_cancel(gm_ctx_background())));
}
static void free_done(void *a)
{
    (void)a;
    gm_chan_free(gm_ctx_done(gm_ctx_with_cancel(gm_ctx_background())));
}
static void null_ctx_call(void *a)
{
    (void)a;
    gm_mutex m = GM_MUTEX_INIT;
    gm_mutex_lock_ctx(&m, NULL);
}
static void null_group(void *a)
{
    (void)a;
    gm_errgroup_wait(NULL);
}
static void cond_until_unlocked(void *a)
{
    (void)a;
    gm_cond c = GM_COND_INIT;
    gm_mutex m = GM_MUTEX_INIT;
    gm_cond_wait_until(&c, &m, gm_deadline(MS));
}
static void negative_sema_until(void *a)
{
    (void)a;
    gm_sema s = GM_SEMA_INIT(0);
    gm_sema_acquire_until(&s, -1, gm_deadline(MS));
}
static void free_running_group_main(void *a)
{
    (void)a;
    gm_errgroup *eg = gm_errgroup_new(gm_ctx_background());
    gm_errgroup_go(eg, eg_fail, (void *)1);
    gm_errgroup_free(eg);
}
static void free_running_group(void *a)
{
    gm_main(free_running_group_main, a);
}

TEST(misuse_is_caught)
{
    CHECK_DEATH(cancel_background, NULL, "gm_ctx_cancel of the background context");
    CHECK_DEATH(null_parent, NULL, "gm_ctx_with_cancel: NULL context");
#ifndef TEST_ASAN
    CHECK_DEATH(use_after_free, NULL, "gm_ctx_err: context 0x");
    CHECK_DEATH(use_after_free, NULL, "is freed");
#endif
    CHECK_DEATH(close_done, NULL, "a context's done channel");
    CHECK_DEATH(free_done, NULL, "gm_chan_free of channel 0x");
    CHECK_DEATH(null_ctx_call, NULL, "gm_mutex_lock_ctx: NULL context");
    CHECK_DEATH(free_running_group, NULL, "gm_errgroup_free of group 0x");
    CHECK_DEATH(null_group, NULL, "gm_errgroup_wait(NULL)");
    CHECK_DEATH(cond_until_unlocked, NULL, "gm_cond_wait_until on cond 0x");
    CHECK_DEATH(negative_sema_until, NULL, "gm_sema_acquire_until on sema 0x");
}

int main(void)
{
    gm_set_procs(1);
    RUN(deadline_in_the_past_returns_at_once);
    RUN(deadline_ends_every_wait);
    RUN(served_before_the_deadline);
    RUN(a_waiter_that_gives_up_unblocks_the_next);
    RUN(deadlines_race_senders_without_losing_values);
    RUN(deadlines_on_plain_threads);
    RUN(background);
    RUN(cancel_reaches_descendants_only);
    RUN(cancel_a_deep_chain);
    RUN(deadlines_of_contexts);
    RUN(cancel_wakes_every_ctx_call);
    RUN(cancel_a_tree_of_parked_coroutines);
    RUN(errgroup_first_error_cancels_the_rest);
    RUN(misuse_is_caught);
    return test_report();
}
