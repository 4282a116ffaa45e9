// SPDX-License-Identifier: MIT
//
// Channels (chan.c): unbuffered hand-off straight into a parked copied
// coroutine's variable, buffered FIFO order, close, the try variants, Go's
// concurrent prime sieve, plain threads blocking in send, receive and
// select (a thread pool and coroutines handing work both ways), and misuse.
#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#include "export_test.h"
#include "testing.h"

static gm_chan *ping, *pong;
static long rounds_done;

static void ponger(void *arg)
{
    (void)arg;
    long v; // lives in this copied coroutine's stack: senders write it while it is parked
    while (gm_chan_recv(ping, &v)) {
        v++;
        gm_chan_send(pong, &v);
    }
}

static void pinger(void *arg)
{
    long n = (long)(uintptr_t)arg, v = 0;
    for (long i = 0; i < n; i++) {
        gm_chan_send(ping, &v);
        long back;
        gm_chan_recv(pong, &back);
        if (back != v + 1)
            abort();
        v = back;
    }
    rounds_done = v;
    gm_chan_close(ping);
}

static void pingpong_main(void *arg)
{
    gm_go(ponger, NULL);
    gm_go(pinger, arg);
}

TEST(unbuffered_ping_pong_between_copied_coroutines)
{
    ping = gm_chan_new(sizeof(long), 0);
    pong = gm_chan_new(sizeof(long), 0);
    CHECK_EQ(gm_main(pingpong_main, (void *)(uintptr_t)10000), 0);
    CHECK_EQ(rounds_done, 10000);
    gm_chan_free(ping);
    gm_chan_free(pong);
}

static gm_chan *buffered;
static int received[100], nreceived;

static void buf_producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        gm_chan_send(buffered, &i);
    gm_chan_close(buffered);
}

static void buf_consumer(void *arg)
{
    (void)arg;
    int v;
    while (gm_chan_recv(buffered, &v))
        received[nreceived++] = v;
    if (v != 0) // a closed, drained channel gives the zero value
        abort();
}

static void buf_main(void *arg)
{
    (void)arg;
    gm_go(buf_consumer, NULL);
    gm_go(buf_producer, NULL);
}

TEST(buffered_fifo_and_close)
{
    buffered = gm_chan_new(sizeof(int), 7);
    nreceived = 0;
    CHECK_EQ(gm_main(buf_main, NULL), 0);
    CHECK_EQ(nreceived, 100);
    int bad = 0;
    for (int i = 0; i < nreceived; i++)
        TALLY(bad, received[i] == i, "received[%d] is %d", i, received[i]);
    CHECK_EQ(bad, 0);
    gm_chan_free(buffered);
}

static void try_main(void *arg)
{
    (void)arg;
    gm_chan *c = gm_chan_new(sizeof(int), 2);
    int v = 1;
    CHECK_EQ(gm_chan_try_recv(c, &v), 0);
    CHECK_EQ(gm_chan_try_send(c, &v), 1);
    v = 2;
    CHECK_EQ(gm_chan_try_send(c, &v), 1);
    CHECK_EQ(gm_chan_try_send(c, &v), 0); // full
    CHECK_EQ(gm_chan_len(c), 2);
    CHECK_EQ(gm_chan_try_recv(c, &v), 1);
    CHECK_EQ(v, 1);
    gm_chan_close(c);
    CHECK_EQ(gm_chan_try_recv(c, &v), 1); // still buffered
    CHECK_EQ(v, 2);
    CHECK_EQ(gm_chan_try_recv(c, &v), -1); // closed and drained
    CHECK_EQ(v, 0);
    gm_chan_free(c);
}

TEST(try_variants)
{
    CHECK_EQ(gm_main(try_main, NULL), 0);
    errno = 0;
    CHECK(gm_chan_new(0, 1) == NULL);
    CHECK_EQ(errno, EINVAL);
}

// Go's concurrent prime sieve: a chain of filter coroutines.
typedef struct {
    gm_chan *in, *out;
    int prime;
} filter_args;

static void generate(void *arg)
{
    gm_chan *out = arg;
    for (int i = 2;; i++)
        gm_chan_send(out, &i);
}

static void filter(void *arg)
{
    filter_args *f = arg;
    int v;
    while (gm_chan_recv(f->in, &v))
        if (v % f->prime != 0)
            gm_chan_send(f->out, &v);
}

static int primes[1000];
static int sieve_fd;

static void sieve(void *arg)
{
    int n = (int)(uintptr_t)arg;
    gm_chan *ch = gm_chan_new(sizeof(int), 0);
    gm_go(generate, ch);
    for (int i = 0; i < n; i++) {
        int prime;
        gm_chan_recv(ch, &prime);
        primes[i] = prime;
        filter_args *f = gm_malloc(sizeof *f); // outlives this iteration: heap
        f->in = ch;
        f->out = gm_chan_new(sizeof(int), 0);
        f->prime = prime;
        gm_go(filter, f);
        ch = f->out;
    }
    // The generator and the filters would run forever, as in Go's example:
    // report and end the (child) process.
    ssize_t w = write(sieve_fd, primes, (size_t)n * sizeof(int));
    _exit(w == (ssize_t)((size_t)n * sizeof(int)) ? 0 : 1);
}

TEST(prime_sieve)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        sieve_fd = fds[1];
        gm_main(sieve, (void *)(uintptr_t)1000);
        _exit(9);
    }
    close(fds[1]);
    static int got[1000];
    size_t have = 0;
    ssize_t r;
    while (have < sizeof got && (r = read(fds[0], (char *)got + have, sizeof got - have)) > 0)
        have += (size_t)r;
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(have, sizeof got);
    int want[] = { 2, 3, 5, 7, 11, 13, 17, 19, 23, 29 }, bad = 0;
    for (int i = 0; i < 10; i++)
        TALLY(bad, got[i] == want[i], "prime %d is %d", i, got[i]);
    CHECK_EQ(bad, 0);
    CHECK_EQ(got[999], 7919); // the 1000th prime
}

// select: fair choice among ready cases, default, waiting on several.
static void select_ready_main(void *arg)
{
    (void)arg;
    gm_chan *a = gm_chan_new(sizeof(int), 1000), *b = gm_chan_new(sizeof(int), 1000);
    int v = 0, hits[2] = { 0, 0 };
    for (int i = 0; i < 1000; i++) {
        gm_chan_send(a, &i);
        gm_chan_send(b, &i);
    }
    for (int i = 0; i < 1000; i++) {
        gm_select_case cs[2] = { { a, GM_SELECT_RECV, &v, NULL }, { b, GM_SELECT_RECV, &v, NULL } };
        hits[gm_select(cs, 2, 0)]++;
    }
    CHECK(hits[0] > 350 && hits[1] > 350); // both ready every time: a fair coin
    gm_select_case none[1] = { { gm_chan_new(sizeof(int), 0), GM_SELECT_RECV, &v, NULL } };
    CHECK_EQ(gm_select(none, 1, 1), -1); // nothing ready: default
    gm_chan_free(none[0].c);
    gm_chan_free(a);
    gm_chan_free(b);
}

static gm_chan *sa, *sb, *quit;
static int sel_got[3], sel_bad;

static void select_waiter(void *arg)
{
    (void)arg;
    for (;;) {
        int v = -1, ok = -1; // in this copied coroutine's stack while it waits
        gm_select_case cs[3] = { { sa, GM_SELECT_RECV, &v, &ok },
                                 { sb, GM_SELECT_RECV, &v, &ok },
                                 { quit, GM_SELECT_RECV, &v, &ok } };
        int i = gm_select(cs, 3, 0);
        if (i == 2) {
            CHECK_EQ(ok, 0); // quit was closed
            return;
        }
        TALLY(sel_bad, ok == 1);
        sel_got[i] += v;
    }
}

static void select_feeder(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 100; i++) {
        gm_chan_send(i % 2 ? sa : sb, &i);
        gm_yield();
    }
    gm_chan_close(quit);
}

static void select_wait_main(void *arg)
{
    (void)arg;
    gm_go(select_waiter, NULL);
    gm_go(select_feeder, NULL);
}

TEST(select)
{
    CHECK_EQ(gm_main(select_ready_main, NULL), 0);
    sa = gm_chan_new(sizeof(int), 0);
    sb = gm_chan_new(sizeof(int), 0);
    quit = gm_chan_new(sizeof(int), 0);
    CHECK_EQ(gm_main(select_wait_main, NULL), 0);
    CHECK_EQ(sel_bad, 0);
    CHECK_EQ(sel_got[0], 2500); // 1 + 3 + ... + 99
    CHECK_EQ(sel_got[1], 2550); // 2 + 4 + ... + 100
    gm_chan_free(sa);
    gm_chan_free(sb);
    gm_chan_free(quit);
}

// ------------------------------------------------------- several workers

typedef struct msg {
    long value;
    pthread_t from;
} msg;

static gm_chan *work, *done_ch;
static _Atomic long cross_thread, total_got, sum_got, all_got;
static gm_waitgroup producers_wg = GM_WAITGROUP_INIT;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void producer(void *arg)
{
    long id = (long)(uintptr_t)arg;
    uint64_t end = now_ns() + 300000; // some work first, so idle workers steal
    while (now_ns() < end)
        ;
    for (long i = 0; i < 2000; i++) {
        msg m = { id * 1000000 + i, pthread_self() }; // sent from this (copied) stack
        gm_chan_send(work, &m);
    }
    gm_waitgroup_done(&producers_wg);
}

static void consumer(void *arg)
{
    (void)arg;
    msg m; // received into this stack, maybe while it is saved
    long n = 0, sum = 0, cross = 0;
    while (gm_chan_recv(work, &m)) {
        n++;
        sum += m.value;
        cross += !pthread_equal(m.from, pthread_self());
    }
    atomic_fetch_add(&total_got, n);
    atomic_fetch_add(&sum_got, sum);
    atomic_fetch_add(&cross_thread, cross);
    gm_chan_send(done_ch, &n);
}

static void closer(void *arg)
{
    (void)arg;
    gm_waitgroup_wait(&producers_wg);
    gm_chan_close(work);
}

static void fan_main(void *arg)
{
    long cap = (long)(uintptr_t)arg;
    work = gm_chan_new(sizeof(msg), (size_t)cap);
    done_ch = gm_chan_new(sizeof(long), 0);
    gm_waitgroup_add(&producers_wg, 16);
    for (long i = 0; i < 4; i++)
        gm_go(consumer, NULL);
    for (long i = 0; i < 16; i++) {
        // Spread over the workers: values cross from one worker's stacks
        // to another's whether or not an idle worker steals in time (a
        // debug build under load once ran all of them on one worker).
        gm_go_options o = { GM_STACK_COPIED, 0, "producer", (int)(i % 4) + 1 };
        gm_go_opts(producer, (void *)(uintptr_t)i, &o);
    }
    gm_go(closer, NULL);
    long n, all = 0;
    for (int i = 0; i < 4; i++) {
        gm_chan_recv(done_ch, &n);
        all += n;
    }
    all_got = all;
    gm_chan_free(work);
    gm_chan_free(done_ch);
}

TEST(channels_between_workers)
{
    gm_set_procs(4);
    long want = 0;
    for (long id = 0; id < 16; id++)
        for (long i = 0; i < 2000; i++)
            want += id * 1000000 + i;
    int bad = 0;
    for (long cap = 0; cap <= 8; cap += 8) { // unbuffered, then buffered
        total_got = sum_got = cross_thread = all_got = 0;
        int rc = gm_main(fan_main, (void *)(uintptr_t)cap);
        // Every value arrived once, and values did go from one worker's
        // stack to another's.
        if (!TALLY(bad, rc == 0 && all_got == 32000 && total_got == 32000 && sum_got == want && cross_thread > 0))
            fprintf(stderr, "    capacity %ld: gm_main %d, %ld and %ld received, sum %ld, %ld across threads\n", cap, rc,
                    (long)all_got, (long)total_got, (long)sum_got, (long)cross_thread);
    }
    CHECK_EQ(bad, 0);
    gm_set_procs(1);
}

// Placed on two workers for sure: every hand-off crosses threads, into a
// parked copied coroutine's stack variable on the other worker.
static pthread_t ping_thread, pong_thread;

static void placed_ponger(void *arg)
{
    (void)arg;
    pong_thread = pthread_self();
    long v;
    while (gm_chan_recv(ping, &v)) {
        v++;
        gm_chan_send(pong, &v);
    }
}

static void placed_pinger(void *arg)
{
    ping_thread = pthread_self();
    pinger(arg);
}

static void placed_main(void *arg)
{
    gm_go_options a = { GM_STACK_COPIED, 0, "pinger", 1 }, b = { GM_STACK_COPIED, 0, "ponger", 2 };
    gm_go_opts(placed_ponger, NULL, &b);
    gm_go_opts(placed_pinger, arg, &a);
}

TEST(ping_pong_between_two_workers)
{
    gm_set_procs(2);
    ping = gm_chan_new(sizeof(long), 0);
    pong = gm_chan_new(sizeof(long), 0);
    rounds_done = 0;
    CHECK_EQ(gm_main(placed_main, (void *)(uintptr_t)20000), 0);
    CHECK_EQ(rounds_done, 20000);
    CHECK(!pthread_equal(ping_thread, pong_thread));
    gm_chan_free(ping);
    gm_chan_free(pong);
    gm_set_procs(1);
}

// gm_after in select: a timeout; a timer freed before it fires.
static void after_main(void *arg)
{
    (void)arg;
    gm_chan *never = gm_chan_new(sizeof(int), 0);
    uint64_t t0 = now_ns(), fired = 0;
    gm_chan *t = gm_after(5000000);
    CHECK(t != NULL);
    int v;
    gm_select_case cs[2] = { { never, GM_SELECT_RECV, &v, NULL }, { t, GM_SELECT_RECV, &fired, NULL } };
    CHECK_EQ(gm_select(cs, 2, 0), 1);
    CHECK(now_ns() - t0 >= 5000000u);
    CHECK(fired >= t0 + 5000000u);
    gm_chan_free(t);
    // Freed before it fires: the timer frees it (ASan/LSan would see a leak or a use after free).
    gm_chan *early = gm_after(1000000);
    gm_chan_free(early);
    gm_sleep(3000000);
    // A zero delay is ready at the next scheduling round.
    gm_chan *zero = gm_after(0);
    gm_chan_recv(zero, &fired);
    CHECK(fired >= t0);
    gm_chan_free(zero);
    // A timer still pending when gm_main ends is dropped with its group.
    gm_chan *late = gm_after(3600000000000ull);
    gm_chan_free(late);
    gm_chan_free(never);
}

TEST(after_and_timeouts)
{
    CHECK_EQ(gm_main(after_main, NULL), 0);
    errno = 0;
    CHECK(gm_after(1000) == NULL); // outside a coroutine
    CHECK_EQ(errno, EPERM);
}

// ----------------------------------------------------------- bad input

static void send_closed_main(void *arg)
{
    (void)arg;
    gm_chan *c = gm_chan_new(sizeof(int), 1);
    int v = 1;
    gm_chan_close(c);
    gm_chan_send(c, &v);
}
static void send_closed(void *arg)
{
    gm_main(send_closed_main, arg);
}
static void close_closed(void *arg)
{
    (void)arg;
    gm_chan *c = gm_chan_new(sizeof(int), 1);
    gm_chan_close(c);
    gm_chan_close(c);
}
static void close_null(void *arg)
{
    (void)arg;
    gm_chan_close(NULL);
}
static gm_chan *lonely;
static void lonely_recv(void *arg)
{
    (void)arg;
    int v;
    gm_chan_recv(lonely, &v);
}
static void deadlock(void *arg)
{
    (void)arg;
    lonely = gm_chan_new(sizeof(int), 0);
    gm_main(lonely_recv, NULL);
}
static void free_with_waiter_main(void *arg)
{
    (void)arg;
    lonely = gm_chan_new(sizeof(int), 0);
    gm_go(lonely_recv, NULL);
    gm_yield();
    gm_chan_free(lonely);
}
static void free_with_waiter(void *arg)
{
    gm_main(free_with_waiter_main, arg);
}

// A NULL elem drops the value on every receive path: from the buffer,
// from a parked sender (unbuffered and buffer full), into a parked
// receiver, on close, and in a select case.
static gm_chan *dropCh;
static void dropSender(void *arg)
{
    long v = (long)(uintptr_t)arg;
    gm_chan_send(dropCh, &v);
}

// Elements of every size from 1 to 40 bytes arrive whole, through the
// buffer and handed to a parked receiver (elements of 8 to 16 bytes are
// copied as two 8-byte moves that may overlap).
enum { SizesMax = 40, SizesEach = 20 };
static gm_chan *sizesCh;
static size_t sizesN;

static void sizesSender(void *arg)
{
    (void)arg;
    unsigned char v[SizesMax];
    for (int k = 0; k < SizesEach; k++) {
        for (size_t i = 0; i < sizesN; i++)
            v[i] = (unsigned char)(k * 31 + i * 7 + sizesN);
        gm_chan_send(sizesCh, v);
        if (k % 3 == 0)
            gm_yield(); // the receiver sometimes waits parked, sometimes finds the buffer
    }
}

static void sizes_main(void *arg)
{
    size_t *bad = arg;
    for (size_t n = 1; n <= SizesMax; n++)
        for (size_t cap = 0; cap <= 4; cap += 4) {
            sizesN = n;
            sizesCh = gm_chan_new(n, cap);
            gm_go(sizesSender, NULL);
            unsigned char got[SizesMax + 8];
            for (int k = 0; k < SizesEach; k++) {
                memset(got, 0xee, sizeof got);
                gm_chan_recv(sizesCh, got);
                for (size_t i = 0; i < n; i++)
                    TALLY(*bad, got[i] == (unsigned char)(k * 31 + i * 7 + n), "size %zu cap %zu byte %zu", n,
                          cap, i);
                TALLY(*bad, got[n] == 0xee, "size %zu cap %zu: a byte past the element written", n, cap);
            }
            gm_chan_free(sizesCh);
        }
}

TEST(elements_of_every_size_arrive_whole)
{
    size_t bad = 0;
    CHECK_EQ(gm_main(sizes_main, &bad), 0);
    CHECK_EQ(bad, 0);
}

static void drop_main(void *arg)
{
    (void)arg;
    long v = 7, got = 0;
    gm_chan *b = gm_chan_new(sizeof v, 1);
    gm_chan_send(b, &v);
    CHECK_EQ(gm_chan_recv(b, NULL), 1); // from the buffer
    gm_chan_send(b, &v);
    dropCh = b;
    gm_go(dropSender, (void *)8);
    gm_yield(); // the sender parks on the full buffer
    CHECK_EQ(gm_chan_recv(b, NULL), 1); // the oldest dropped, the sender's 8 joins
    CHECK_EQ(gm_chan_recv(b, &got), 1);
    CHECK_EQ(got, 8);
    gm_chan *u = gm_chan_new(sizeof v, 0);
    dropCh = u;
    gm_go(dropSender, (void *)9);
    gm_yield(); // parked sender, unbuffered
    CHECK_EQ(gm_chan_recv(u, NULL), 1);
    gm_select_case sc = { u, GM_SELECT_RECV, NULL, NULL };
    gm_go(dropSender, (void *)10);
    CHECK_EQ(gm_select(&sc, 1, 0), 0);
    gm_chan_close(u);
    CHECK_EQ(gm_chan_recv(u, NULL), 0); // closed and drained
    int ok = 1;
    sc.ok = &ok;
    CHECK_EQ(gm_select(&sc, 1, 0), 0);
    CHECK_EQ(ok, 0);
    CHECK_EQ(gm_chan_try_recv(b, NULL), 0);
    gm_chan_free(b);
    gm_chan_free(u);
}

TEST(receive_into_null_drops_the_value)
{
    CHECK_EQ(gm_main(drop_main, NULL), 0);
}

// A receiver parked at top level keeps little: gm_chan_recv's wait is a
// tail call and the park is inlined into it, so between the coroutine's
// function and the switch there is one frame. With gcc on x86-64 its
// saved copy (240 bytes) fits the smallest buffer; elsewhere frames
// differ (arm64 saves more registers, sanitizers and debug checks grow
// them), and the bound is the next buffer.
static gm_chan *parkCh;
static void parkedReceiver(void *arg)
{
    (void)arg;
    char v;
    gm_chan_recv(parkCh, &v);
}
static void parked_main(void *arg)
{
    (void)arg;
    enum { N = 1000 };
    parkCh = gm_chan_new(1, 0);
    for (int i = 0; i < N; i++)
        gm_go(parkedReceiver, NULL);
    gm_yield(); // each runs and parks; all but a few (those on their own execution stacks) are saved
    gm_memstats m;
    gm_stats(&m);
#if defined(__x86_64__) && !defined(__clang__) && TEST_FRAME_SCALE == 1 && GM_DEBUG == 0
    CHECK(m.coro_saved_by_order[0] >= (uint64_t)(N - 16) * FixedStack && m.coro_saved_by_order[1] == 0);
#else
    CHECK(m.coro_saved_by_order[0] + m.coro_saved_by_order[1] >= (uint64_t)(N - 16) * FixedStack);
#endif
    gm_chan_close(parkCh);
    gm_yield();
    gm_chan_free(parkCh);
}

TEST(parked_receiver_keeps_a_small_saved_copy)
{
    int procs = gm_set_procs(1);
    CHECK_EQ(gm_main(parked_main, NULL), 0);
    gm_set_procs(procs);
}

TEST(misuse)
{
    CHECK_DEATH(send_closed, NULL, "send on closed channel");
    CHECK_DEATH(close_closed, NULL, "close of closed channel");
    CHECK_DEATH(close_null, NULL, "close on a NULL channel");
    CHECK_DEATH(deadlock, NULL, "all coroutines are asleep - deadlock!");
    CHECK_DEATH(free_with_waiter, NULL, "while coroutines wait on it");
}

// chan_valid states the file head's invariants; it holds in every state a
// channel goes through and names a broken one.
TEST(validator_names_broken_invariants)
{
    gm_chan *c = gm_chan_new(sizeof(long), 2);
    long v = 1;
    CHECK(chan_valid(c) == NULL);
    CHECK_EQ(gm_chan_try_send(c, &v), 1);
    CHECK(chan_valid(c) == NULL);
    c->count = 3; // more elements than room
    CHECK(chan_valid(c) != NULL);
    c->count = 1;
    sudog fake = { 0 };
    c->recvq.first = c->recvq.last = &fake; // a receiver waiting beside a buffered element
    const char *bad = chan_valid(c);
    CHECK(bad != NULL && strstr(bad, "receivers wait") != NULL);
    c->recvq.first = c->recvq.last = NULL;
    gm_chan_close(c);
    CHECK(chan_valid(c) == NULL);
    CHECK_EQ(gm_chan_try_recv(c, &v), 1);
    CHECK_EQ(gm_chan_try_recv(c, &v), -1);
    CHECK(chan_valid(c) == NULL);
    gm_chan_free(c);
}

// ------------------------------------------------------- plain threads

// A pool of plain threads and coroutines on two workers, through
// unbuffered channels both ways: coroutines send jobs, which the threads
// receive (blocking: the thread sleeps until a coroutine's send hands the
// value over); the threads send results back, which a coroutine receives
// (a thread blocks in send until the coroutine takes it). The threads
// select on the jobs and a quit channel, so one close stops them all.
#define POOL 3
#define JOBS 2000
static gm_chan *jobs, *results, *quit;
static gm_waitgroup pool_ready = GM_WAITGROUP_INIT;
static _Atomic long thread_jobs;

static void *pool_thread(void *arg)
{
    (void)arg;
    gm_waitgroup_done(&pool_ready); // counts this thread as one that may wake coroutines
    for (;;) {
        long job, q;
        int ok = 1;
        gm_select_case cs[2] = { { jobs, GM_SELECT_RECV, &job, &ok }, { quit, GM_SELECT_RECV, &q, NULL } };
        int i = gm_select(cs, 2, 0); // blocks the thread
        if (i == 1 || !ok)
            return NULL;
        long r = job * 2;
        thread_jobs++;
        gm_chan_send(results, &r); // blocks until a coroutine takes it
    }
}

static void job_sender(void *arg)
{
    long first = (long)(uintptr_t)arg;
    for (long j = first; j < JOBS; j += 2)
        gm_chan_send(jobs, &j); // parks until a thread takes it
}

static long results_sum;

static void result_taker(void *arg)
{
    (void)arg;
    long r;
    for (int k = 0; k < JOBS; k++) {
        gm_chan_recv(results, &r);
        results_sum += r;
    }
    gm_chan_close(quit); // every thread, asleep in its select, wakes and leaves
}

static void pool_main(void *arg)
{
    (void)arg;
    gm_go_options o1 = { .worker = 1 }, o2 = { .worker = 2 };
    gm_go_opts(job_sender, (void *)0, &o1);
    gm_go_opts(job_sender, (void *)1, &o2);
    gm_go_opts(result_taker, NULL, &o2);
}

TEST(thread_pool_and_coroutines_through_channels)
{
    jobs = gm_chan_new(sizeof(long), 0);
    results = gm_chan_new(sizeof(long), 0);
    quit = gm_chan_new(1, 0);
    gm_waitgroup_add(&pool_ready, POOL);
    pthread_t th[POOL];
    for (int i = 0; i < POOL; i++)
        pthread_create(&th[i], NULL, pool_thread, NULL);
    gm_waitgroup_wait(&pool_ready);
    int procs = gm_set_procs(2);
    results_sum = 0;
    CHECK_EQ(gm_main(pool_main, NULL), 0);
    gm_set_procs(procs);
    for (int i = 0; i < POOL; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(thread_jobs, JOBS);
    CHECK_EQ(results_sum, (long)JOBS * (JOBS - 1)); // 2 * sum of 0..JOBS-1
    gm_chan_free(jobs);
    gm_chan_free(results);
    gm_chan_free(quit);
}

// Threads among themselves, no coroutine at all: an unbuffered ping-pong
// between two plain threads, and a buffered channel that fills up (the
// sender blocks) and is closed under a blocked receiver.
static gm_chan *tping, *tpong;

static void *thread_ponger(void *arg)
{
    (void)arg;
    long v;
    while (gm_chan_recv(tping, &v)) {
        v++;
        gm_chan_send(tpong, &v);
    }
    return NULL;
}

static void *thread_closer(void *arg)
{
    gm_chan *c = arg;
    struct timespec ts = { 0, 2000000 };
    nanosleep(&ts, NULL); // likely after the receiver blocked (either order passes)
    gm_chan_close(c);
    return NULL;
}

TEST(plain_threads_block_among_themselves)
{
    tping = gm_chan_new(sizeof(long), 0);
    tpong = gm_chan_new(sizeof(long), 0);
    pthread_t t;
    pthread_create(&t, NULL, thread_ponger, NULL);
    long v = 0;
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        gm_chan_send(tping, &v);
        long before = v;
        TALLY(bad, gm_chan_recv(tpong, &v) == 1 && v == before + 1, "round %d", i);
    }
    gm_chan_close(tping);
    pthread_join(t, NULL);
    CHECK_EQ(bad, 0);
    CHECK_EQ(v, 1000);

    gm_chan *c = gm_chan_new(sizeof(long), 1);
    pthread_create(&t, NULL, thread_closer, c);
    long x = 7;
    CHECK_EQ(gm_chan_recv(c, &x), 0); // closed while (or before) this thread waited
    CHECK_EQ(x, 0);
    pthread_join(t, NULL);
    gm_chan_free(c);
    gm_chan_free(tping);
    gm_chan_free(tpong);
}

int main(void)
{
    gm_set_procs(1); // the first tests check one worker's exact order
    RUN(unbuffered_ping_pong_between_copied_coroutines);
    RUN(buffered_fifo_and_close);
    RUN(try_variants);
    RUN(prime_sieve);
    RUN(select);
    RUN(channels_between_workers);
    RUN(ping_pong_between_two_workers);
    RUN(after_and_timeouts);
    RUN(misuse);
    RUN(receive_into_null_drops_the_value);
    RUN(elements_of_every_size_arrive_whole);
    RUN(parked_receiver_keeps_a_small_saved_copy);
    RUN(validator_names_broken_invariants);
    RUN(thread_pool_and_coroutines_through_channels);
    RUN(plain_threads_block_among_themselves);
    return test_report();
}
