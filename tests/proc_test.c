// SPDX-License-Identifier: MIT
//
// Coroutines (proc.c): scheduling order, park/ready, copied stacks that
// survive other coroutines running and grow 2x / shrink under 1/4,
// dedicated stacks, overflow detection in both modes, and misuse.
#include <errno.h>
#include <fenv.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "export_test.h"
#include "testing.h"

static int order[64], norder;

static void rr_worker(void *arg)
{
    int id = (int)(uintptr_t)arg;
    for (int i = 0; i < 3; i++) {
        order[norder++] = id;
        gm_yield();
    }
}

static void spawn3(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 3; i++)
        gm_go(rr_worker, (void *)(uintptr_t)i);
}

TEST(round_robin)
{
    norder = 0;
    CHECK_EQ(gm_main(spawn3, NULL), 0);
    int want[] = { 1, 2, 3, 1, 2, 3, 1, 2, 3 };
    CHECK_EQ(norder, 9);
    int bad = 0;
    for (int i = 0; i < 9; i++)
        TALLY(bad, order[i] == want[i], "turn %d went to %d", i, order[i]);
    CHECK_EQ(bad, 0);
    CHECK(gm_self() == NULL);
}

// The same with dedicated stacks, where gm_yield hands over without the
// loop (the runq's head moves to its tail, or swaps with the yielder when
// alone), and a fourth coroutine created in the second round joins at the
// tail.
static const gm_go_options dedicated16k = { GM_STACK_DEDICATED, 16 << 10, NULL, 0 };

static void worker_dedicated(void *arg)
{
    int id = (int)(uintptr_t)arg;
    for (int i = 0; i < 3; i++) {
        if (id == 1 && i == 1)
            gm_go_opts(worker_dedicated, (void *)(uintptr_t)4, &dedicated16k);
        order[norder++] = id;
        gm_yield();
    }
}

static void spawn3_dedicated(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 3; i++)
        gm_go_opts(worker_dedicated, (void *)(uintptr_t)i, &dedicated16k);
}

TEST(round_robin_dedicated)
{
    norder = 0;
    CHECK_EQ(gm_main(spawn3_dedicated, NULL), 0);
    int want[] = { 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 4, 4 };
    CHECK_EQ(norder, 12);
    int bad = 0;
    for (int i = 0; i < 12; i++)
        TALLY(bad, order[i] == want[i], "turn %d went to %d", i, order[i]);
    CHECK_EQ(bad, 0);
}

// park/ready: a one-slot mailbox.
static gm_g *waiter;
static int mailbox, got[100], ngot;

static void receiver(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        while (mailbox == 0) {
            waiter = gm_self();
            gm_park();
        }
        got[ngot++] = mailbox;
        mailbox = 0;
    }
}

static void sender(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 100; i++) {
        while (mailbox != 0)
            gm_yield();
        mailbox = i;
        if (waiter != NULL) {
            gm_g *w = waiter;
            waiter = NULL;
            gm_ready(w);
        }
        gm_yield();
    }
}

static void mail(void *arg)
{
    (void)arg;
    gm_go(receiver, NULL);
    gm_go(sender, NULL);
}

TEST(park_and_ready)
{
    ngot = 0;
    mailbox = 0;
    CHECK_EQ(gm_main(mail, NULL), 0);
    CHECK_EQ(ngot, 100);
    int bad = 0;
    for (int i = 0; i < ngot; i++)
        TALLY(bad, got[i] == i + 1, "message %d was %d", i, got[i]);
    CHECK_EQ(bad, 0);
}

// Copied stacks: deep frames survive while others run on the same stack.
static long deep(int depth, long seed)
{
    volatile char pad[512];
    for (int i = 0; i < 512; i++)
        pad[i] = (char)(seed + i + depth);
    long r = 0;
    if (depth > 0)
        r = deep(depth - 1, seed);
    else
        gm_yield(); // parked with all these frames live
    for (int i = 0; i < 512; i++)
        if (pad[i] != (char)(seed + i + depth))
            return -1000000;
    return r + depth;
}

static long results[8];

static void deep_worker(void *arg)
{
    int id = (int)(uintptr_t)arg;
    results[id] = deep(20 + id * 10, id * 7); // 10..50 KiB of stack
    for (int i = 0; i < 4; i++)
        gm_yield(); // shallow now: the saved copy shrinks
}

static void deep_spawn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++)
        gm_go(deep_worker, (void *)(uintptr_t)i);
}

TEST(copied_stacks_survive_and_resize)
{
    gm_memstats a, b;
    gm_stats(&a);
    int old = runtime_execstacks;
    runtime_execstacks = 1; // every worker's coroutines share one execution stack: each park is saved
    CHECK_EQ(gm_main(deep_spawn, NULL), 0);
    runtime_execstacks = old;
    gm_stats(&b);
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        int d = 20 + i * 10;
        TALLY(bad, results[i] == (long)d * (d + 1) / 2, "coroutine %d: %ld", i, results[i]);
    }
    CHECK_EQ(bad, 0);
    CHECK(b.coro_stack_grows > a.coro_stack_grows);
    CHECK(b.coro_stack_shrinks > a.coro_stack_shrinks);
    CHECK_EQ(b.coro_created - a.coro_created, 9);
    CHECK_EQ(b.coro_ended - a.coro_ended, 9);
    CHECK_EQ(b.coro_saved_bytes, 0); // every copy went back
}

// gm_yield hands over directly between modes: a dedicated g copies a
// copied g's frames in from its own stack, a copied g swaps frames through
// the scheduler's stack; every frame must survive either way.
static int mixed_failed; // gm_go_opts calls that returned NULL

static void mixed_spawn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++) {
        gm_go_options o = { i % 2 ? GM_STACK_DEDICATED : GM_STACK_COPIED, 128 << 10, NULL, 0 };
        TALLY(mixed_failed, gm_go_opts(deep_worker, (void *)(uintptr_t)i, &o) != NULL, "coroutine %d", i);
    }
}

TEST(yield_between_modes_keeps_frames)
{
    memset(results, 0, sizeof results);
    CHECK_EQ(gm_main(mixed_spawn, NULL), 0);
    CHECK_EQ(mixed_failed, 0);
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        int d = 20 + i * 10;
        TALLY(bad, results[i] == (long)d * (d + 1) / 2, "coroutine %d (%s): %ld", i, i % 2 ? "dedicated" : "copied",
              results[i]);
    }
    CHECK_EQ(bad, 0);
    gm_memstats m;
    gm_stats(&m);
    CHECK_EQ(m.coro_saved_bytes, 0);
}

// Dedicated stacks: pointers into another coroutine's stack are fine.
static int *shared_ptr;

static void owner_fn(void *arg)
{
    (void)arg;
    int local = 42;
    shared_ptr = &local;
    gm_park();
    CHECK_EQ(local, 43);
}

static gm_g *owner_g;

static void reader_fn(void *arg)
{
    (void)arg;
    CHECK_EQ(*shared_ptr, 42);
    (*shared_ptr)++;
    gm_ready(owner_g);
}

static void dedicated_main(void *arg)
{
    (void)arg;
    gm_go_options o = { GM_STACK_DEDICATED, 32 << 10, "owner", 0 };
    owner_g = gm_go_opts(owner_fn, NULL, &o);
    gm_yield();
    gm_go_opts(reader_fn, NULL, &o);
}

TEST(dedicated_stacks)
{
    CHECK_EQ(gm_main(dedicated_main, NULL), 0);
}

static gm_g *idle[TEST_MAX_LIVE_COROS];

static void idle_fn(void *arg)
{
    int *count = arg;
    char frame[100];
    memset(frame, 1, sizeof frame);
    gm_park();
    (*count) += frame[50];
}

static void many_main(void *arg)
{
    int n = TEST_MAX_LIVE_COROS;
    for (int i = 0; i < n; i++)
        idle[i] = gm_go(idle_fn, arg);
    gm_yield(); // all run once and park
    gm_memstats m;
    gm_stats(&m);
    // Saved copies: a few hundred bytes each, in buffers of a power of two
    // (x86-64: 224 bytes in 256-byte buffers; arm64: 352 in 512), and this
    // coroutine's own buffer (a few KiB).
    CHECK(m.coro_saved_bytes <= (uint64_t)n * 2 * FixedStack * TEST_FRAME_SCALE + (16 << 10));
    CHECK(m.coro_saved_bytes >= (uint64_t)(n - 1) * 64);
    for (int i = 0; i < n; i++)
        gm_ready(idle[i]);
}

TEST(many_idle_coroutines_cost_their_saved_stack)
{
    int count = 0;
    CHECK_EQ(gm_main(many_main, &count), 0);
    CHECK_EQ(count, TEST_MAX_LIVE_COROS);
}

// gm_sleep: sleepers wake in the order of their deadlines, each after its
// own, and others run meanwhile. (Deadlines, not durations: on a loaded
// machine the sleepers may start far apart.)
static int woke[3], nwoke;
static int64_t wokeDeadline[3];
static bool sleptEnough = true;
static long spins;

static void sleeper_ms(void *arg)
{
    int ms = (int)(uintptr_t)arg;
    int64_t deadline = gm_now() + (int64_t)ms * 1000000;
    gm_sleep((uint64_t)ms * 1000000u);
    sleptEnough &= gm_now() >= deadline;
    wokeDeadline[nwoke] = deadline;
    woke[nwoke++] = ms;
}

static void spinner(void *arg)
{
    (void)arg;
    while (nwoke < 3) {
        spins++;
        gm_yield();
    }
}

static void sleep_main(void *arg)
{
    (void)arg;
    gm_go(sleeper_ms, (void *)(uintptr_t)30);
    gm_go(sleeper_ms, (void *)(uintptr_t)10);
    gm_go(sleeper_ms, (void *)(uintptr_t)20);
    gm_go(spinner, NULL);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void only_sleepers(void *arg)
{
    (void)arg;
    gm_go(sleeper_ms, (void *)(uintptr_t)15);
}

TEST(sleep)
{
    nwoke = 0;
    spins = 0;
    uint64_t t0 = now_ns();
    CHECK_EQ(gm_main(sleep_main, NULL), 0);
    uint64_t dt = now_ns() - t0;
    CHECK_EQ(nwoke, 3);
    CHECK(wokeDeadline[0] <= wokeDeadline[1] && wokeDeadline[1] <= wokeDeadline[2]);
    CHECK(sleptEnough);
    CHECK(dt >= 30000000u);
    CHECK(spins > 10); // the spinner ran while the others slept
    // With nothing runnable, the thread sleeps until the timer (not a deadlock).
    nwoke = 0;
    t0 = now_ns();
    CHECK_EQ(gm_main(only_sleepers, NULL), 0);
    CHECK(now_ns() - t0 >= 15000000u);
    CHECK_EQ(nwoke, 1);
}

// Sync primitives.
static gm_waitgroup wg = GM_WAITGROUP_INIT;
static gm_mutex mu = GM_MUTEX_INIT;
static long counter, inside, max_inside;

static void locked_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        gm_mutex_lock(&mu);
        inside++;
        if (inside > max_inside)
            max_inside = inside;
        long c = counter;
        gm_yield(); // others run, and must wait for the lock
        counter = c + 1;
        inside--;
        gm_mutex_unlock(&mu);
    }
    gm_waitgroup_done(&wg);
}

static void sync_main(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&wg, 5);
    for (int i = 0; i < 5; i++)
        gm_go(locked_worker, NULL);
    gm_waitgroup_wait(&wg);
    CHECK_EQ(counter, 500);
}

TEST(mutex_and_waitgroup)
{
    CHECK_EQ(gm_main(sync_main, NULL), 0);
    CHECK_EQ(counter, 500);
    CHECK_EQ(max_inside, 1);
    CHECK_EQ(wg.count, 0);
    CHECK_EQ(mu.locked, 0);
}

// ----------------------------------------------------------- bad input

static volatile int keep_going = 1;
static int recurse_forever(int n)
{
    volatile char pad[1024]; // under a page (a bigger frame could jump the guard page), yet few frames fill 8 MiB (sanitizers record each)
    pad[0] = (char)n;
    if (!keep_going)
        return 0;
    return recurse_forever(n + 1) + pad[0];
}
static void overflow_fn(void *arg)
{
    (void)arg;
    recurse_forever(0);
}
// 16 KiB, or two OS pages where they are larger (a guard page needs a
// stack of at least two).
static size_t overflowStackSize(void)
{
    return 2 * os_physpagesize() > (16 << 10) ? 2 * os_physpagesize() : 16 << 10;
}
static void overflow_dedicated(void *arg)
{
    (void)arg;
    gm_go_options o = { GM_STACK_DEDICATED, overflowStackSize(), "deep", 0 };
    gm_go_opts(overflow_fn, NULL, &o);
    gm_main(NULL, NULL);
}
static void overflow_copied(void *arg)
{
    (void)arg;
    gm_main(overflow_fn, NULL);
}
static void smash_small(void *arg)
{
    (void)arg;
    volatile char big[3000]; // more than the 2 KiB stack holds: crosses the canary
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = 7;
    gm_yield();
    CHECK(big[0] == 7);
}
static void overflow_canary(void *arg)
{
    (void)arg;
    gm_go_options o = { GM_STACK_DEDICATED, 2048, "small", 0 };
    gm_go_opts(smash_small, NULL, &o);
    gm_main(NULL, NULL);
}
// An overflow that leaves the stack pointer in its stack but writes over
// the canary (a big local array, say): caught at the next switch, gm_yield's
// direct hand-over to another dedicated coroutine included.
static void smash_canary(void *arg)
{
    (void)arg;
    volatile char here = 0;
    uintptr_t lo = (uintptr_t)&here & ~(uintptr_t)2047; // small stacks are aligned to their size
    *(volatile uint64_t *)lo = 0;
    gm_yield();
    _exit(0); // not caught at the yield itself (the end would catch it)
}
static void yield_forever(void *arg)
{
    (void)arg;
    for (;;)
        gm_yield();
}
static void overflow_canary_direct(void *arg)
{
    (void)arg;
    gm_go_options o = { GM_STACK_DEDICATED, 2048, "smasher", 0 };
    gm_go_options other = { GM_STACK_DEDICATED, 2048, "other", 0 };
    gm_go_opts(yield_forever, NULL, &other); // started and runnable when the smasher yields
    gm_go_opts(smash_canary, NULL, &o);
    gm_main(NULL, NULL);
}
static void nothing(void *arg)
{
    (void)arg;
}
static void yield_outside(void *arg)
{
    (void)arg;
    gm_yield();
}
static void yield_outside_with_worker(void *arg)
{
    (void)arg;
    gm_go(nothing, NULL); // the thread has a worker now, and no coroutine runs
    gm_yield();
}
static gm_g *ended;
static void quick(void *arg)
{
    (void)arg;
}
static void ready_after_end_main(void *arg)
{
    (void)arg;
    ended = gm_go(quick, NULL);
    gm_yield(); // quick runs and ends
    gm_ready(ended);
}
static void ready_after_end(void *arg)
{
    (void)arg;
    gm_main(ready_after_end_main, NULL);
}
static void park_outside(void *arg)
{
    (void)arg;
    gm_park();
}
static void sleeper(void *arg)
{
    (void)arg;
    gm_park();
}
static void deadlock(void *arg)
{
    (void)arg;
    gm_main(sleeper, NULL);
}
static void unlock_unlocked(void *arg)
{
    (void)arg;
    gm_mutex m = GM_MUTEX_INIT;
    gm_mutex_unlock(&m);
}
static void wg_negative(void *arg)
{
    (void)arg;
    gm_waitgroup w = GM_WAITGROUP_INIT;
    gm_waitgroup_done(&w);
}

TEST(misuse_is_caught)
{
    CHECK_DEATH(overflow_dedicated, NULL, "stack overflow in coroutine");
    char deepText[64];
    snprintf(deepText, sizeof deepText, "\"deep\" (dedicated stack, %zu bytes)", overflowStackSize());
    if (!expect_death(overflow_dedicated, NULL, deepText))
        test_fail(1, __FILE__, __LINE__, "dies naming the stack", " want \"%s\"", deepText);
    CHECK_DEATH(overflow_copied, NULL, "stack overflow in coroutine");
    CHECK_DEATH(overflow_copied, NULL, "copied coroutines may grow to GOMEM_MAXSTACK");
    CHECK_DEATH(overflow_dedicated, NULL, "a dedicated stack does not grow: its size is gm_go_options.stack_size");
    CHECK_DEATH(overflow_canary, NULL, "canary");
    CHECK_DEATH(overflow_canary_direct, NULL, "stack overflow (canary overwritten): coroutine");
    CHECK_DEATH(overflow_canary_direct, NULL, "\"smasher\"");
    CHECK_DEATH(yield_outside, NULL, "gm_yield called outside a coroutine");
    CHECK_DEATH(yield_outside_with_worker, NULL, "gm_yield called outside a coroutine");
    CHECK_DEATH(ready_after_end, NULL, "has ended");
    CHECK_DEATH(park_outside, NULL, "outside a coroutine");
    CHECK_DEATH(deadlock, NULL, "all coroutines are asleep - deadlock!");
    CHECK_DEATH(unlock_unlocked, NULL, "unlock of unlocked mutex");
    CHECK_DEATH(wg_negative, NULL, "negative counter");
}

// ------------------------------------------------------- several workers

static _Atomic int ran_on[8];  // coroutines that started on worker thread i
static pthread_t threads[8];
static _Atomic int nthreads;
static _Atomic int moved;      // a started coroutine seen on another thread
static gm_waitgroup spread_wg = GM_WAITGROUP_INIT;

static int thread_index(void)
{
    pthread_t me = pthread_self();
    static int lk;
    spin_lock(&lk);
    int n = atomic_load(&nthreads), i;
    for (i = 0; i < n; i++)
        if (pthread_equal(threads[i], me))
            break;
    if (i == n && n < 8) {
        threads[n] = me;
        atomic_store(&nthreads, n + 1);
    }
    spin_unlock(&lk);
    return i;
}

static void busy_us(int us)
{
    uint64_t end = now_ns() + (uint64_t)us * 1000u;
    while (now_ns() < end)
        ;
}

static void spread_fn(void *arg)
{
    (void)arg;
    pthread_t me = pthread_self();
    atomic_fetch_add(&ran_on[thread_index()], 1);
    for (int i = 0; i < 5; i++) {
        busy_us(200);
        gm_yield();
        if (!pthread_equal(pthread_self(), me))
            atomic_fetch_add(&moved, 1);
    }
    gm_waitgroup_done(&spread_wg);
}

static void spread_main(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&spread_wg, 64);
    for (int i = 0; i < 64; i++)
        gm_go(spread_fn, NULL);
    gm_waitgroup_wait(&spread_wg);
}

TEST(idle_workers_steal_unstarted_coroutines)
{
    CHECK_EQ(gm_set_procs(4), 1);
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(gm_main(spread_main, NULL), 0);
    gm_stats(&b);
    int total = 0, used = 0;
    for (int i = 0; i < 8; i++) {
        total += ran_on[i];
        used += ran_on[i] > 0;
    }
    CHECK_EQ(total, 64);
    CHECK(used >= 2);       // the work spread over threads
    // A started copied coroutine moves only with its execution stack (lent
    // to an idle worker with every coroutine bound to it, all runnable).
    CHECK(moved == 0 || b.sched_stack_lends > a.sched_stack_lends);
    CHECK_EQ(b.coro_ended - a.coro_ended, 65);
    CHECK_EQ(b.coro_saved_bytes, 0);
    gm_set_procs(1);
}

// Started coroutines on stacks of their own move to an idle worker (Go's
// runqsteal); copied ones only with their execution stack, when a worker
// lends it. Sixteen of each start on worker 1 and
// park; then each gets a CPU-bound job from there. On a loaded machine (or
// under an emulator) the idle worker may not wake in time: rounds repeat,
// up to 50, until a dedicated one has moved.
static gm_chan *jobs;
static _Atomic int movedDedicated, movedCopied;
static gm_waitgroup jobsWg = GM_WAITGROUP_INIT;

static void jobRunner(void *arg)
{
    bool dedicated = arg != NULL;
    worker *start = TLS(tworker);
    int job;
    CHECK(gm_chan_recv(jobs, &job) == 1);
    busy_us(2000);
    if (TLS(tworker) != start)
        atomic_fetch_add(dedicated ? &movedDedicated : &movedCopied, 1);
    gm_waitgroup_done(&jobsWg);
}

static void jobsMain(void *arg)
{
    (void)arg;
    jobs = gm_chan_new(sizeof(int), 0);
    gm_go_options ded = { GM_STACK_DEDICATED, 16 << 10, NULL, 1 }, cop = { GM_STACK_COPIED, 0, NULL, 1 };
    for (int round = 0; round < 50 && atomic_load(&movedDedicated) == 0; round++) {
        gm_waitgroup_add(&jobsWg, 32);
        for (int i = 0; i < 16; i++) {
            CHECK(gm_go_opts(jobRunner, (void *)1, &ded) != NULL);
            CHECK(gm_go_opts(jobRunner, NULL, &cop) != NULL);
        }
        gm_yield(); // they start and park here, on worker 1
        for (int i = 0; i < 32; i++)
            gm_chan_send(jobs, &i);
        gm_waitgroup_wait(&jobsWg);
    }
    gm_chan_free(jobs);
}

TEST(started_coroutines_on_their_own_stacks_are_stolen)
{
    int procs = gm_set_procs(2);
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(gm_main(jobsMain, NULL), 0);
    gm_stats(&b);
    gm_set_procs(procs);
    CHECK(atomic_load(&movedDedicated) > 0);
    CHECK(atomic_load(&movedCopied) == 0 || b.sched_stack_lends > a.sched_stack_lends);
    CHECK(b.sched_steals_started - a.sched_steals_started > 0);
    CHECK(b.sched_steals >= b.sched_steals_started);
}

// A yielding movable coroutine becomes stealable only once its context is
// saved: another worker taking it mid-switch would run on the same stack as
// the thread still leaving it. Each of 64 dedicated coroutines yields 2,000
// times between two workers, checking its frame each time.
// On a loaded machine the idle worker may not run for a while: they go on
// yielding (up to a million times each) until one of them has moved.
static atomic_long yieldsIntact, yieldsDone;
static _Atomic bool yieldMoved;
static void yieldChecker(void *arg)
{
    volatile unsigned char buf[512];
    unsigned char v = (unsigned char)(uintptr_t)arg;
    memset((unsigned char *)buf, v, sizeof buf);
    worker *start = TLS(tworker);
    long ok = 0, i = 0;
    for (; i < 2000 || (!atomic_load(&yieldMoved) && i < 1000000); i++) {
        gm_yield();
        ok += buf[0] == v && buf[sizeof buf - 1] == v;
        if (TLS(tworker) != start)
            atomic_store(&yieldMoved, true);
    }
    atomic_fetch_add(&yieldsIntact, ok);
    atomic_fetch_add(&yieldsDone, i);
}

static void yieldersMain(void *arg)
{
    (void)arg;
    // All placed on the first worker (not stealable before they start):
    // the other has only the started ones it steals, so they must move.
    // Once it is there: on a loaded machine its thread may start after
    // they are all done.
    gm_memstats m;
    do
        gm_stats(&m);
    while (m.sched_workers < 2);
    gm_go_options ded = { GM_STACK_DEDICATED, 16 << 10, NULL, 1 };
    for (int i = 0; i < 64; i++)
        CHECK(gm_go_opts(yieldChecker, (void *)(uintptr_t)(i + 1), &ded) != NULL);
}

TEST(yielding_coroutines_move_between_workers_intact)
{
    int procs = gm_set_procs(2);
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(gm_main(yieldersMain, NULL), 0);
    gm_stats(&b);
    gm_set_procs(procs);
    CHECK_EQ(atomic_load(&yieldsIntact), atomic_load(&yieldsDone));
    CHECK(b.sched_steals_started > a.sched_steals_started); // they did move
}

// A pair of dedicated coroutines placed on two workers that talk over
// channels: a coroutine readied by one of another worker moves to the
// waker's (Go's ready), so they end up passing messages on one worker
// (no wake-up of another thread per message), the values intact.
static gm_chan *pairA, *pairB;
static _Atomic long pairSame, pairBad, pairWaiting;
static void pairPonger(void *arg)
{
    (void)arg;
    long v;
    while (gm_chan_recv(pairA, &v)) {
        worker *w = TLS(tworker);
        gm_chan_send(pairB, &w);
    }
}

static void pairPinger(void *arg)
{
    (void)arg;
    long same = 0, bad = 0;
    for (long i = 0; i < 2000 || (same == 0 && i < 1000000); i++) {
        worker *mine = TLS(tworker), *theirs = NULL;
        gm_chan_send(pairA, &i);
        gm_chan_recv(pairB, &theirs);
        same += theirs == mine && TLS(tworker) == mine;
        bad += theirs == NULL;
    }
    atomic_store(&pairSame, same);
    atomic_store(&pairBad, bad);
    // The ponger parked, counted once (not also by the worker it left).
    gm_memstats m;
    gm_stats(&m);
    for (int k = 0; k < 100000 && m.coro_waiting != 1; k++) {
        gm_yield();
        gm_stats(&m);
    }
    atomic_store(&pairWaiting, (long)m.coro_waiting);
    gm_chan_close(pairA);
}

static void pairMain(void *arg)
{
    (void)arg;
    gm_memstats m;
    do
        gm_stats(&m);
    while (m.sched_workers < 2);
    gm_go_options o = { GM_STACK_DEDICATED, 16 << 10, NULL, 1 };
    CHECK(gm_go_opts(pairPonger, NULL, &o) != NULL);
    o.worker = 2;
    CHECK(gm_go_opts(pairPinger, NULL, &o) != NULL);
}

TEST(a_dedicated_pair_on_two_workers_comes_together)
{
    int procs = gm_set_procs(2);
    pairA = gm_chan_new(sizeof(long), 0);
    pairB = gm_chan_new(sizeof(worker *), 0);
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(gm_main(pairMain, NULL), 0);
    gm_stats(&b);
    gm_set_procs(procs);
    CHECK(b.sched_ready_moves > a.sched_ready_moves);
    CHECK(atomic_load(&pairSame) > 0);
    CHECK_EQ(atomic_load(&pairBad), 0);
    CHECK_EQ(atomic_load(&pairWaiting), 1);
    gm_chan_free(pairA);
    gm_chan_free(pairB);
}

// A crowd woken at once by a coroutine of another worker (a close, a
// waitgroup's broadcast) stays where it parked: only a g readied alone
// follows its waker. 32 dedicated coroutines placed on worker 2 park on a
// channel, 32 more on a waitgroup; main, on worker 1, wakes each crowd,
// then one lone waiter, which moves. Every waiter reports what it got.
#define CrowdN 32
static gm_chan *crowdCh, *loneCh;
static gm_waitgroup crowdGate = GM_WAITGROUP_INIT;
static _Atomic long crowdWoken, crowdBad;

static void crowdRecv(void *arg)
{
    (void)arg;
    char v = 1;
    atomic_fetch_add(&crowdBad, gm_chan_recv(crowdCh, &v) != 0 || v != 0); // closed: 0, v zeroed
    atomic_fetch_add(&crowdWoken, 1);
}

static void crowdWait(void *arg)
{
    (void)arg;
    gm_waitgroup_wait(&crowdGate);
    atomic_fetch_add(&crowdWoken, 1);
}

static void loneRecv(void *arg)
{
    (void)arg;
    char v;
    atomic_fetch_add(&crowdBad, gm_chan_recv(loneCh, &v) != 0);
    atomic_fetch_add(&crowdWoken, 1);
}

static uint64_t crowdMoves[4];

// Yields until at least n coroutines are parked; returns the move count
// (a ready counts its move in the waker's call, so after a close or a
// done returns, its moves are in).
static uint64_t movesOnceParked(uint64_t n)
{
    gm_memstats m;
    for (gm_stats(&m); m.coro_waiting < n; gm_stats(&m))
        gm_yield();
    return m.sched_ready_moves;
}

static void crowdMain(void *arg)
{
    (void)arg;
    gm_memstats m;
    do
        gm_stats(&m);
    while (m.sched_workers < 2);
    gm_go_options o = { GM_STACK_DEDICATED, 16 << 10, NULL, 2 };
    gm_waitgroup_add(&crowdGate, 1);
    for (int i = 0; i < CrowdN; i++) {
        CHECK(gm_go_opts(crowdRecv, NULL, &o) != NULL);
        CHECK(gm_go_opts(crowdWait, NULL, &o) != NULL);
    }
    CHECK(gm_go_opts(loneRecv, NULL, &o) != NULL);
    crowdMoves[0] = movesOnceParked(2 * CrowdN + 1);
    gm_chan_close(crowdCh);
    crowdMoves[1] = movesOnceParked(CrowdN + 1);
    gm_waitgroup_done(&crowdGate);
    crowdMoves[2] = movesOnceParked(1);
    gm_chan_close(loneCh);
    while (atomic_load(&crowdWoken) < 2 * CrowdN + 1)
        gm_yield();
    gm_stats(&m);
    crowdMoves[3] = m.sched_ready_moves;
}

TEST(a_crowd_woken_at_once_stays_on_its_worker)
{
    int procs = gm_set_procs(2);
    crowdCh = gm_chan_new(1, 0);
    loneCh = gm_chan_new(1, 0);
    CHECK_EQ(gm_main(crowdMain, NULL), 0);
    gm_set_procs(procs);
    CHECK_EQ(atomic_load(&crowdWoken), 2 * CrowdN + 1);
    CHECK_EQ(atomic_load(&crowdBad), 0);
    CHECK_EQ(crowdMoves[1], crowdMoves[0]); // the close's crowd
    CHECK_EQ(crowdMoves[2], crowdMoves[1]); // the waitgroup's
    CHECK_EQ(crowdMoves[3], crowdMoves[2] + 1); // the lone waiter followed main
    gm_chan_free(crowdCh);
    gm_chan_free(loneCh);
}

// sysmon notices a coroutine that runs 50 ms without switching while its
// group has another worker, counts it, and names it with GOMEM_DEBUG=sched.
// On a loaded machine the sysmon thread may not run during the first 50
// ms: the run goes on (up to 10 s) until it has been seen.
static void longRun(void *arg)
{
    uint64_t before = *(const uint64_t *)arg, end = now_ns() + 10000000000u;
    busy_us(50000);
    gm_memstats m;
    for (gm_stats(&m); m.sched_long_runs == before && now_ns() < end; gm_stats(&m))
        busy_us(5000);
}

TEST(sysmon_names_a_long_run)
{
    char path[] = "/tmp/gomem-sysmon-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    int procs = gm_set_procs(2);
    debug.sched = 1;
    gm_memstats a, b;
    gm_stats(&a);
    int rc = gm_main(longRun, &a.sched_long_runs);
    gm_stats(&b);
    debug.sched = 0;
    gm_set_procs(procs);
    dup2(saved, 2);
    close(saved);
    CHECK_EQ(rc, 0);
    char buf[4096] = { 0 };
    CHECK(pread(fd, buf, sizeof buf - 1, 0) > 0);
    close(fd);
    unlink(path);
    CHECK(strstr(buf, "gomem: sched: coroutine ") != NULL && strstr(buf, "without switching") != NULL);
    CHECK(b.sched_long_runs - a.sched_long_runs >= 1);
}

// gm_mutex and gm_waitgroup between workers: no lost update, one holder.
static gm_mutex xmu = GM_MUTEX_INIT;
static long xcounter;
static _Atomic int xinside, xmax_inside;
static gm_waitgroup xwg = GM_WAITGROUP_INIT;

static void xlocked(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        gm_mutex_lock(&xmu);
        int in = atomic_fetch_add(&xinside, 1) + 1;
        if (in > atomic_load(&xmax_inside))
            atomic_store(&xmax_inside, in);
        long c = xcounter;
        if (i % 16 == 0)
            gm_yield();
        xcounter = c + 1;
        atomic_fetch_sub(&xinside, 1);
        gm_mutex_unlock(&xmu);
    }
    gm_waitgroup_done(&xwg);
}

static void xmain(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&xwg, 8);
    for (int i = 0; i < 8; i++)
        gm_go(xlocked, NULL);
    gm_waitgroup_wait(&xwg);
}

TEST(mutex_between_workers)
{
    gm_set_procs(2);
    CHECK_EQ(gm_main(xmain, NULL), 0);
    CHECK_EQ(xcounter, 16000);
    CHECK_EQ(xmax_inside, 1);
    CHECK_EQ(xmu.locked, 0);
    gm_set_procs(1);
}

// gm_ready from a plain thread: the parked coroutine runs again on its own
// worker (a sleeper keeps the group from counting as deadlocked).
static gm_g *_Atomic ext_waiter;
static _Atomic int ext_done;

static void *ext_thread(void *arg)
{
    (void)arg;
    gm_g *g;
    while ((g = atomic_load(&ext_waiter)) == NULL)
        usleep(100);
    usleep(2000);
    gm_ready(g);
    return NULL;
}

static void ext_parker(void *arg)
{
    (void)arg;
    pthread_t me = pthread_self();
    atomic_store(&ext_waiter, gm_self());
    gm_park();
    CHECK(pthread_equal(me, pthread_self()));
    atomic_store(&ext_done, 1);
}

static void ext_keeper(void *arg)
{
    (void)arg;
    while (!atomic_load(&ext_done))
        gm_sleep(1000000);
}

static void ext_main(void *arg)
{
    (void)arg;
    gm_go(ext_parker, NULL);
    gm_go(ext_keeper, NULL);
}

TEST(ready_from_another_thread)
{
    gm_set_procs(2);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, ext_thread, NULL), 0);
    CHECK_EQ(gm_main(ext_main, NULL), 0);
    pthread_join(t, NULL);
    CHECK_EQ(ext_done, 1);
    gm_set_procs(1);
}

// Each coroutine keeps its own floating-point control state (MXCSR's
// control bits and the x87 control word are part of the switched context).
static int fe_a_ok, fe_b_ok;

static void fe_a(void *arg)
{
    (void)arg;
    fesetround(FE_DOWNWARD);
    gm_yield();
    volatile double x = 1.0, y = 10.0; // 0.1 rounded to nearest is above 1/10, rounded down below
    fe_a_ok = fegetround() == FE_DOWNWARD && x / y < 0.1;
    fesetround(FE_TONEAREST);
}

static void fe_b(void *arg)
{
    (void)arg;
    fe_b_ok = fegetround() == FE_TONEAREST; // a's setting did not leak here
    fesetround(FE_UPWARD);
    gm_yield();
    fe_b_ok = fe_b_ok && fegetround() == FE_UPWARD;
    fesetround(FE_TONEAREST);
}

static void fe_main(void *arg)
{
    gm_go_options o = { (gm_stack_mode)(uintptr_t)arg, 0, NULL, 0 };
    gm_go_opts(fe_a, NULL, &o);
    gm_go_opts(fe_b, NULL, &o);
}

TEST(floating_point_state_is_per_coroutine)
{
    int bad = 0;
    for (uintptr_t mode = 0; mode <= 1; mode++) { // copied, then dedicated stacks
        fe_a_ok = fe_b_ok = 0;
        TALLY(bad, gm_main(fe_main, (void *)mode) == 0, "mode %d", (int)mode);
        TALLY(bad, fe_a_ok, "mode %d", (int)mode);
        TALLY(bad, fe_b_ok, "mode %d", (int)mode);
        TALLY(bad, fegetround() == FE_TONEAREST, "mode %d", (int)mode);
    }
    CHECK_EQ(bad, 0);
}

// The sticky exception flags are the thread's: raised by one coroutine,
// seen by the next one to run on the thread (a switch that reloaded them
// per coroutine cost tens of nanoseconds on some CPUs: switch_amd64.S).
static int fe_flag_seen;

static void fe_flag_tester(void *arg)
{
    (void)arg;
    feclearexcept(FE_ALL_EXCEPT);
    gm_yield(); // the raiser runs
    fe_flag_seen = fetestexcept(FE_INEXACT) != 0;
    feclearexcept(FE_ALL_EXCEPT);
}

static void fe_flag_raiser(void *arg)
{
    (void)arg;
    volatile double x = 1.0, y = 3.0;
    volatile double q = x / y; // inexact
    (void)q;
}

static void fe_flag_main(void *arg)
{
    gm_go_options o = { (gm_stack_mode)(uintptr_t)arg, 0, NULL, 0 };
    gm_go_opts(fe_flag_tester, NULL, &o);
    gm_go_opts(fe_flag_raiser, NULL, &o);
}

TEST(floating_point_exception_flags_are_the_threads)
{
    gm_set_procs(1); // both on one thread
    int bad = 0;
    for (uintptr_t mode = 0; mode <= 1; mode++) {
        fe_flag_seen = 0;
        TALLY(bad, gm_main(fe_flag_main, (void *)mode) == 0, "mode %d", (int)mode);
        TALLY(bad, fe_flag_seen, "mode %d: the flag raised by the other coroutine is not seen", (int)mode);
    }
    CHECK_EQ(bad, 0);
}

#if defined(__x86_64__)
// Only one of the two control words differs between two coroutines:
// MXCSR (flush-to-zero) in one, the x87 precision in the other. The
// switch compares the pair first, then each alone.
static unsigned short fe_cw(void)
{
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}

static void fe_set_cw(unsigned short cw)
{
    __asm__ volatile("fldcw %0" : : "m"(cw));
}

static unsigned fe_def_csr;
static unsigned short fe_def_cw;

static void fe_csr_only(void *arg)
{
    (void)arg;
    _mm_setcsr(fe_def_csr | 0x8000);
    gm_yield();
    fe_a_ok = _mm_getcsr() == (fe_def_csr | 0x8000) && fe_cw() == fe_def_cw;
    _mm_setcsr(fe_def_csr);
}

static void fe_cw_only(void *arg)
{
    (void)arg;
    fe_b_ok = _mm_getcsr() == fe_def_csr && fe_cw() == fe_def_cw;
    fe_set_cw((unsigned short)(fe_def_cw & ~0x0100)); // 53-bit precision
    gm_yield();
    fe_b_ok = fe_b_ok && fe_cw() == (fe_def_cw & ~0x0100) && _mm_getcsr() == fe_def_csr;
    fe_set_cw(fe_def_cw);
}

static void fe_one_main(void *arg)
{
    gm_go_options o = { (gm_stack_mode)(uintptr_t)arg, 0, NULL, 0 };
    gm_go_opts(fe_csr_only, NULL, &o);
    gm_go_opts(fe_cw_only, NULL, &o);
}

TEST(floating_point_control_words_switch_separately)
{
    fe_def_csr = _mm_getcsr();
    fe_def_cw = fe_cw();
    int bad = 0;
    for (uintptr_t mode = 0; mode <= 1; mode++) { // copied, then dedicated stacks
        fe_a_ok = fe_b_ok = 0;
        TALLY(bad, gm_main(fe_one_main, (void *)mode) == 0, "mode %d", (int)mode);
        TALLY(bad, fe_a_ok, "mode %d", (int)mode);
        TALLY(bad, fe_b_ok, "mode %d", (int)mode);
        TALLY(bad, _mm_getcsr() == fe_def_csr, "mode %d: MXCSR %#x", (int)mode, _mm_getcsr());
        TALLY(bad, fe_cw() == fe_def_cw, "mode %d: x87 control word %#x", (int)mode, fe_cw());
    }
    CHECK_EQ(bad, 0);
}
#endif

// Counts by state add up while coroutines run, park and sleep.
static gm_g *st_parked[3];
static gm_chan *st_never;

static void st_park(void *arg)
{
    st_parked[(uintptr_t)arg] = gm_self();
    gm_park();
}

static void st_recv(void *arg)
{
    (void)arg;
    int v;
    gm_chan_recv(st_never, &v);
}

static void st_sleep(void *arg)
{
    (void)arg;
    gm_sleep(20000000);
}

static void st_main(void *arg)
{
    (void)arg;
    st_never = gm_chan_new(sizeof(int), 0);
    for (uintptr_t i = 0; i < 3; i++)
        gm_go(st_park, (void *)i);
    gm_go(st_recv, NULL);
    gm_go(st_sleep, NULL);
    gm_go(quick, NULL); // never runs before the check: we do not yield to it
    gm_yield();         // the others run and park; quick ends
    gm_go(quick, NULL);
    gm_memstats m;
    gm_stats(&m);
    CHECK_EQ(m.coro_running, 1);   // this one
    CHECK_EQ(m.coro_waiting, 5);   // 3 parked, 1 receiving, 1 sleeping
    CHECK_EQ(m.coro_runnable, 1);  // the second quick
    for (int i = 0; i < 3; i++)
        gm_ready(st_parked[i]);
    gm_chan_close(st_never);
    gm_stats(&m);
    CHECK_EQ(m.coro_waiting, 1);   // only the sleeper; the readied ones are queued
    CHECK_EQ(m.coro_runnable, 5);
}

TEST(counts_by_state)
{
    gm_memstats m;
    CHECK_EQ(gm_main(st_main, NULL), 0);
    gm_chan_free(st_never);
    gm_stats(&m);
    CHECK_EQ(m.coro_running + m.coro_runnable + m.coro_waiting, 0);
    CHECK_EQ(m.coro_saved_bytes, 0);
    uint64_t sum = 0;
    for (uint64_t o = 0; o <= m.stack_orders; o++)
        sum += m.coro_saved_by_order[o];
    CHECK_EQ(sum, 0);
}

// Saved-stack bytes by order add up to the total while coroutines are parked.
static void by_order_main(void *arg)
{
    (void)arg;
    static int count;
    gm_g *gs8[8];
    gm_go(deep_worker, (void *)(uintptr_t)3); // 50 frames deep: a large saved copy
    for (int i = 0; i < 8; i++)
        gs8[i] = gm_go(idle_fn, &count);
    gm_yield();
    gm_memstats m;
    gm_stats(&m);
    uint64_t sum = 0;
    int orders_used = 0;
    for (uint64_t o = 0; o <= m.stack_orders; o++) {
        sum += m.coro_saved_by_order[o];
        orders_used += m.coro_saved_by_order[o] != 0;
    }
    CHECK_EQ(sum, m.coro_saved_bytes);
    CHECK(orders_used >= 2);
    for (int i = 0; i < 8; i++)
        gm_ready(gs8[i]);
}

// A yield from a signal handler running on the alternate signal stack.
static void on_usr1(int sig)
{
    (void)sig;
    gm_yield();
}

static void yield_in_handler_fn(void *arg)
{
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK; // gomem gave each worker an alternate signal stack
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
}

static void yield_in_handler(void *arg)
{
    (void)arg;
    gm_main(yield_in_handler_fn, NULL);
}

// gm_go without memory for a dedicated stack: NULL and ENOMEM.
static void enomem_main(void *arg)
{
    (void)arg;
    os_fault_set(OS_FAULT_MMAP, 1); // the next map or commit fails
    os_fault_set(OS_FAULT_MPROTECT, 1);
    gm_go_options o = { GM_STACK_DEDICATED, (size_t)256 << 20, "huge", 0 };
    errno = 0;
    CHECK(gm_go_opts(quick, NULL, &o) == NULL);
    CHECK_EQ(errno, ENOMEM);
    os_fault_set(OS_FAULT_MMAP, 0);
    os_fault_set(OS_FAULT_MPROTECT, 0);
    CHECK(gm_go_opts(quick, NULL, &o) != NULL); // and works again after
}

static void procs_bad(void *arg)
{
    (void)arg;
    CHECK_EQ(gm_set_procs(-1), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gm_set_procs(5000), -1);
}

static void stuck_recv(void *arg)
{
    gm_chan *c = arg;
    int v;
    gm_chan_recv(c, &v);
}

static void deadlock2_main(void *arg)
{
    (void)arg;
    gm_chan *c = gm_chan_new(sizeof(int), 0);
    gm_go_options o = { GM_STACK_COPIED, 0, "stuck", 0 };
    gm_go_opts(stuck_recv, c, &o);
    gm_mutex_lock(&xmu);
    gm_mutex_lock(&xmu); // parks for good
}

static void deadlock_two_workers(void *arg)
{
    (void)arg;
    gm_set_procs(2);
    gm_main(deadlock2_main, NULL);
}

TEST(deadlock_report_lists_coroutines)
{
    procs_bad(NULL);
    CHECK_DEATH(yield_in_handler, NULL, "gm_yield called from a signal handler");
    CHECK_EQ(gm_main(enomem_main, NULL), 0);
    CHECK_EQ(gm_main(by_order_main, NULL), 0);
    CHECK_DEATH(deadlock_two_workers, NULL, "all coroutines are asleep - deadlock!");
    CHECK_DEATH(deadlock_two_workers, NULL, "\"stuck\" [chan receive]");
    CHECK_DEATH(deadlock_two_workers, NULL, "[mutex]");
}

// ------------------------------------------------- GOMEM_DEBUG=stackcheck

static int *_Atomic parked_local;

static void sc_owner(void *arg)
{
    (void)arg;
    int local = 5;
    atomic_store(&parked_local, &local);
    gm_park(); // its stack is PROT_NONE now
}

static void sc_intruder(void *arg)
{
    (void)arg;
    while (atomic_load(&parked_local) == NULL)
        gm_yield();
    *atomic_load(&parked_local) = 7; // breaks the parked-stack contract
}

static void sc_main(void *arg)
{
    (void)arg;
    gm_go_options o = { GM_STACK_COPIED, 0, "owner", 0 };
    gm_go_opts(sc_owner, NULL, &o);
    gm_go_options i = { GM_STACK_COPIED, 0, "intruder", 0 };
    gm_go_opts(sc_intruder, NULL, &i);
}

static void stackcheck_violation(void *arg)
{
    (void)arg;
    debug.stackcheck = 1; // as GOMEM_DEBUG=stackcheck at start
    gm_main(sc_main, NULL);
}

// Legal use under stackcheck: channels copy into parked stacks (through
// the runtime), deep recursion, many switches, two workers.
static gm_chan *sc_ping, *sc_pong;

static void sc_ponger(void *arg)
{
    (void)arg;
    long v;
    while (gm_chan_recv(sc_ping, &v)) {
        v += 2;
        gm_chan_send(sc_pong, &v);
    }
}

static long sc_deep(int n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    if (n == 0) {
        gm_yield();
        return pad[0];
    }
    return sc_deep(n - 1) + pad[0];
}

static long sc_result;

static void sc_pinger(void *arg)
{
    (void)arg;
    long v = 0;
    for (int i = 0; i < 1000; i++) {
        gm_chan_send(sc_ping, &v);
        if (i % 2) { // select parks with its lock set in its (protected) frame
            gm_select_case cs[1] = { { sc_pong, GM_SELECT_RECV, &v, NULL } };
            gm_select(cs, 1, 0);
        } else {
            gm_chan_recv(sc_pong, &v);
        }
    }
    gm_chan_close(sc_ping);
    sc_result = v + sc_deep(100); // 50 KiB deep on its own stack
}

static gm_chan *sc_late;
static long sc_late_got;

static void sc_selector(void *arg)
{
    (void)arg;
    long v = 0;
    gm_select_case cs[1] = { { sc_late, GM_SELECT_RECV, &v, NULL } };
    gm_select(cs, 1, 0); // parks: its lock set is in this (soon protected) frame
    sc_late_got = v;
}

static void sc_late_sender(void *arg)
{
    (void)arg;
    long v = 99;
    gm_sleep(2000000);
    gm_chan_send(sc_late, &v);
}

static void sc_legal_main(void *arg)
{
    (void)arg;
    gm_go(sc_selector, NULL);
    gm_go(sc_late_sender, NULL);
    gm_go_options a = { GM_STACK_COPIED, 0, "pinger", 1 }, b = { GM_STACK_COPIED, 0, "ponger", 2 };
    gm_go_opts(sc_ponger, NULL, &b);
    gm_go_opts(sc_pinger, NULL, &a);
}

TEST(stackcheck)
{
    CHECK_DEATH(stackcheck_violation, NULL, "stackcheck: coroutine");
    CHECK_DEATH(stackcheck_violation, NULL, "\"intruder\"");
    CHECK_DEATH(stackcheck_violation, NULL, "in the stack of coroutine");
    CHECK_DEATH(stackcheck_violation, NULL, "\"owner\" (copied, stackcheck stack");
    debug.stackcheck = 1;
    gm_set_procs(2);
    sc_ping = gm_chan_new(sizeof(long), 0);
    sc_pong = gm_chan_new(sizeof(long), 0);
    sc_late = gm_chan_new(sizeof(long), 0);
    CHECK_EQ(gm_main(sc_legal_main, NULL), 0);
    CHECK_EQ(sc_result, 2000 + 5050); // 1000 round trips of +2, and 0 + 1 + ... + 100
    CHECK_EQ(sc_late_got, 99);
    gm_chan_free(sc_late);
    gm_chan_free(sc_ping);
    gm_chan_free(sc_pong);
    debug.stackcheck = 0;
    gm_set_procs(1);
}

// ------------------------------------------------------------------- join

// gm_join: while the coroutine runs (several joiners), after it ended, and
// on a descriptor since reused by a coroutine that is still parked.
static int jn_done, jn_after[3];
static gm_g *jn_g;
static uint64_t jn_id;

static void jn_worker(void *arg)
{
    (void)arg;
    CHECK_EQ(gm_id(gm_self()), jn_id); // gm_go_id stored it before this ran
    gm_sleep(2000000);
    gm_yield();
    jn_done = 1;
}

static void jn_joiner(void *arg)
{
    int i = (int)(uintptr_t)arg;
    gm_join(jn_g, jn_id);
    jn_after[i] = jn_done; // 1: woke only after the end
}

static gm_chan *jn_hold;
static void jn_parked(void *arg)
{
    (void)arg;
    int v;
    gm_chan_recv(jn_hold, &v);
}

static void join_main(void *arg)
{
    (void)arg;
    jn_g = gm_go_id(jn_worker, NULL, NULL, &jn_id);
    CHECK(jn_g != NULL && jn_id != 0);
    for (int i = 0; i < 3; i++)
        gm_go(jn_joiner, (void *)(uintptr_t)i);
    gm_join(jn_g, jn_id);
    CHECK_EQ(jn_done, 1);
    gm_join(jn_g, jn_id); // ended: at once
    gm_yield();           // the other joiners finish

    // Reuse: park coroutines until one gets the ended one's descriptor;
    // joining the old id must not wait for the new coroutine.
    gm_g *old = jn_g;
    uint64_t old_id = jn_id;
    jn_hold = gm_chan_new(sizeof(int), 0);
    int n = 0;
    gm_g *g;
    uint64_t id;
    do {
        g = gm_go_id(jn_parked, NULL, NULL, &id);
        n++;
        gm_yield(); // it parks
    } while (g != old && n < 10000);
    CHECK(g == old);
    CHECK(id != old_id);
    CHECK_EQ(gm_id(old), id);
    gm_join(old, old_id); // returns at once: the new coroutine stays parked
    CHECK_EQ(gstatus(old), Gwaiting);
    for (int i = 0; i < n; i++)
        gm_chan_send(jn_hold, &i);
    gm_join(old, id); // the new one, now ending
    CHECK(gstatus(old) == Gdead);
    jn_id = id;
    gm_chan_free(jn_hold);
}

// Between workers: each of many coroutines joins one started before it,
// which may run (and end) on any worker; some end before they are joined.
#define JN 200
static gm_g *jx_g[JN];
static uint64_t jx_id[JN];
static _Atomic int jx_ended[JN], jx_bad;
static gm_waitgroup jx_wg = GM_WAITGROUP_INIT;

static void jx_fn(void *arg)
{
    int i = (int)(uintptr_t)arg;
    if (i % 3 == 0)
        gm_sleep((uint64_t)(i % 7) * 100000);
    if (i > 0) {
        int k = (i * 7919) % i; // an earlier one
        gm_join(jx_g[k], jx_id[k]);
        if (!atomic_load(&jx_ended[k]))
            jx_bad++;
    }
    atomic_store(&jx_ended[i], 1);
    gm_waitgroup_done(&jx_wg);
}

static void join_workers_main(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&jx_wg, JN);
    for (int i = 0; i < JN; i++) {
        // jx_g[i] and jx_id[i] are read by later coroutines only, which
        // start after this store (gm_go publishes them)
        uint64_t id;
        gm_g *g = gm_go_id(jx_fn, (void *)(uintptr_t)i, NULL, &id);
        jx_g[i] = g;
        jx_id[i] = id;
        if (i % 10 == 0)
            gm_yield();
    }
    gm_waitgroup_wait(&jx_wg);
}

// A join racing with the end: the coroutine runs on the other worker and
// ends while the joiner checks and queues itself (a lost wake-up would
// leave the joiner parked: a deadlock report).
static void jr_quick(void *arg)
{
    (void)arg;
}
static void join_race_main(void *arg)
{
    (void)arg;
    gm_go_options other = { GM_STACK_COPIED, 0, "quick", 2 };
    for (int i = 0; i < 3000; i++) {
        uint64_t id;
        gm_g *g = gm_go_id(jr_quick, NULL, &other, &id);
        if (i % 3 == 0)
            gm_yield();
        gm_join(g, id);
    }
}

TEST(join)
{
    CHECK_EQ(gm_main(join_main, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(jn_after[i], 1);
    gm_join(jn_g, jn_id); // after gm_main: the descriptor is still readable, its last coroutine ended
    CHECK_EQ(gm_id(jn_g), jn_id);
    CHECK_EQ(gstatus(jn_g), Gdead);
    gm_set_procs(3);
    CHECK_EQ(gm_main(join_workers_main, NULL), 0);
    gm_go_options first = { GM_STACK_COPIED, 0, "joiner", 1 };
    gm_go_opts(join_race_main, NULL, &first);
    CHECK_EQ(gm_main(NULL, NULL), 0);
    gm_set_procs(1);
    CHECK_EQ(jx_bad, 0);
}

static void join_self_main(void *arg)
{
    (void)arg;
    gm_join(gm_self(), gm_id(gm_self()));
}
static void join_self(void *arg)
{
    gm_main(join_self_main, arg);
}
static void join_null(void *arg)
{
    (void)arg;
    gm_join(NULL, 1);
}

TEST(join_misuse)
{
    CHECK_DEATH(join_self, NULL, "gm_join: a coroutine joins itself: coroutine");
    CHECK_DEATH(join_null, NULL, "gm_join(NULL)");
}

// worker_valid and timers_valid (GM_DEBUG=3 runs them in every scheduling
// round) hold while coroutines queue and sleep, and name a broken queue or
// timer heap.
static void vq_sleeper(void *arg)
{
    gm_sleep((uint64_t)(uintptr_t)arg);
}
static void vq_nop(void *arg)
{
    (void)arg;
}
static void validator_main(void *arg)
{
    (void)arg;
    worker *p = TLS(tworker);
    // Sleepers of 100 and 200 s, woken early at the end: no timer may fire
    // while the heap is checked, however slow the build.
    gm_g *s1 = gm_go(vq_sleeper, (void *)(uintptr_t)100000000000ull);
    gm_g *s2 = gm_go(vq_sleeper, (void *)(uintptr_t)200000000000ull);
    gm_yield(); // both park on their timers
    gm_go(vq_nop, NULL);
    gm_go(vq_nop, NULL); // two runnable, not started
    CHECK(worker_valid(p) == NULL);
    CHECK(gm_debug_check() == NULL);
    CHECK_EQ(p->ntimers, 2);
    gm_g *g = p->runq.head;
    setstatus(g, Gwaiting); // a parked g on the run queue
    const char *bad = worker_valid(p);
    CHECK(bad != NULL && strstr(bad, "runq") != NULL);
    setstatus(g, Grunnable);
    p->nnew++; // a count that disagrees with newq
    CHECK(worker_valid(p) != NULL);
    p->nnew--;
    p->nsudog++; // a count that disagrees with the free sudogs
    bad = worker_valid(p);
    CHECK(bad != NULL && strstr(bad, "sudogs") != NULL);
    p->nsudog--;
    timer t = p->timers[0]; // the later deadline at the root
    p->timers[0] = p->timers[1];
    p->timers[1] = t;
    bad = timers_valid(p);
    CHECK(bad != NULL && strstr(bad, "heap order") != NULL);
    CHECK(worker_valid(p) != NULL);
    p->timers[1] = p->timers[0];
    p->timers[0] = t;
    CHECK(worker_valid(p) == NULL);
    gm_ready(s1);
    gm_ready(s2);
}

TEST(validators_name_broken_queues_and_timers)
{
    CHECK_EQ(gm_main(validator_main, NULL), 0);
}

// GOMEM_MAXSTACK sets how deep a copied coroutine may go: 12 MiB of frames
// overflow the default 8 MiB and fit in 16 MiB (a child process each, the
// setting being read once per process).
static volatile long maxstack_sum;
static __attribute__((noinline)) long go_deep(long n)
{
    // Under a page, so the overflow lands on the guard page; indexed by n so
    // that no compiler keeps only the bytes it sees touched.
    volatile char frame[1000];
    frame[n % sizeof frame] = (char)n;
    if (n == 0)
        return 0;
    long r = go_deep(n - 1); // used after the call: no compiler may turn the recursion into a loop
    return r + frame[n % sizeof frame];
}
static void deep12(void *arg)
{
    (void)arg;
    maxstack_sum = go_deep((12 << 20) / 1000);
}
static void maxstack_child(void *arg)
{
    setenv("GOMEM_MAXSTACK", (const char *)arg, 1);
    test_exec_self("--deep12", NULL);
    _exit(127);
}
TEST(maxstack_sets_how_deep_copied_coroutines_go)
{
    CHECK_DEATH(maxstack_child, "8m", "copied coroutines may grow to GOMEM_MAXSTACK");
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        maxstack_child("16m");
    }
    close(fds[1]);
    char out[64] = { 0 };
    CHECK(read(fds[0], out, sizeof out - 1) > 0);
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_STR(out, "deep12 done\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--deep12") == 0) { // maxstack_sets_how_deep_copied_coroutines_go's child
        gm_set_procs(1);
        gm_main(deep12, NULL);
        printf("deep12 done\n");
        return 0;
    }
    gm_set_procs(1); // the first tests check one worker's exact order
    RUN(round_robin);
    RUN(round_robin_dedicated);
    RUN(park_and_ready);
    RUN(copied_stacks_survive_and_resize);
    RUN(yield_between_modes_keeps_frames);
    RUN(dedicated_stacks);
    RUN(many_idle_coroutines_cost_their_saved_stack);
    RUN(sleep);
    RUN(mutex_and_waitgroup);
    RUN(misuse_is_caught);
    RUN(idle_workers_steal_unstarted_coroutines);
    RUN(started_coroutines_on_their_own_stacks_are_stolen);
    RUN(sysmon_names_a_long_run);
    RUN(mutex_between_workers);
    RUN(yielding_coroutines_move_between_workers_intact);
    RUN(a_dedicated_pair_on_two_workers_comes_together);
    RUN(a_crowd_woken_at_once_stays_on_its_worker);
    RUN(ready_from_another_thread);
    RUN(deadlock_report_lists_coroutines);
    RUN(stackcheck);
    RUN(counts_by_state);
    RUN(floating_point_state_is_per_coroutine);
    RUN(floating_point_exception_flags_are_the_threads);
#if defined(__x86_64__)
    RUN(floating_point_control_words_switch_separately);
#endif
    RUN(validators_name_broken_queues_and_timers);
    RUN(maxstack_sets_how_deep_copied_coroutines_go);
    RUN(join);
    RUN(join_misuse);
    return test_report();
}
