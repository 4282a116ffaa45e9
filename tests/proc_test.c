// SPDX-License-Identifier: MIT
//
// Coroutines (proc.c): scheduling order, park/ready, copied stacks that
// survive other coroutines running and grow 2x / shrink under 1/4,
// dedicated stacks, overflow detection in both modes, and misuse.
#include <sys/wait.h>
#include <time.h>

#include "export_test.h"
#include "testing.h"

static int order[64], norder;

static void worker(void *arg)
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
        gm_go(worker, (void *)(uintptr_t)i);
}

TEST(round_robin)
{
    norder = 0;
    CHECK_EQ(gm_main(spawn3, NULL), 0);
    int want[] = { 1, 2, 3, 1, 2, 3, 1, 2, 3 };
    CHECK_EQ(norder, 9);
    for (int i = 0; i < 9; i++)
        CHECK_EQ(order[i], want[i]);
    CHECK(gm_self() == NULL);
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
    for (int i = 0; i < ngot; i++)
        CHECK_EQ(got[i], i + 1);
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
    CHECK_EQ(gm_main(deep_spawn, NULL), 0);
    gm_stats(&b);
    for (int i = 0; i < 8; i++) {
        int d = 20 + i * 10;
        CHECK_EQ(results[i], (long)d * (d + 1) / 2);
    }
    CHECK(b.coro_stack_grows > a.coro_stack_grows);
    CHECK(b.coro_stack_shrinks > a.coro_stack_shrinks);
    CHECK_EQ(b.coro_created - a.coro_created, 9);
    CHECK_EQ(b.coro_ended - a.coro_ended, 9);
    CHECK_EQ(b.coro_saved_bytes, 0); // every copy went back
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
    gm_go_options o = { GM_STACK_DEDICATED, 32 << 10, "owner" };
    owner_g = gm_go_opts(owner_fn, NULL, &o);
    gm_yield();
    gm_go_opts(reader_fn, NULL, &o);
}

TEST(dedicated_stacks)
{
    CHECK_EQ(gm_main(dedicated_main, NULL), 0);
}

static gm_g *idle[20000];

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
    int n = 20000;
    for (int i = 0; i < n; i++)
        idle[i] = gm_go(idle_fn, arg);
    gm_yield(); // all run once and park
    gm_memstats m;
    gm_stats(&m);
    // Saved copies: a few hundred bytes each, rounded to FixedStack.
    CHECK(m.coro_saved_bytes <= (uint64_t)n * FixedStack * TEST_FRAME_SCALE);
    CHECK(m.coro_saved_bytes >= (uint64_t)(n - 1) * 64);
    for (int i = 0; i < n; i++)
        gm_ready(idle[i]);
}

TEST(many_idle_coroutines_cost_their_saved_stack)
{
    int count = 0;
    CHECK_EQ(gm_main(many_main, &count), 0);
    CHECK_EQ(count, 20000);
}

// gm_sleep: sleepers wake in time order, and others run meanwhile.
static int woke[3], nwoke;
static long spins;

static void sleeper_ms(void *arg)
{
    int ms = (int)(uintptr_t)arg;
    gm_sleep((uint64_t)ms * 1000000u);
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
    CHECK_EQ(woke[0], 10);
    CHECK_EQ(woke[1], 20);
    CHECK_EQ(woke[2], 30);
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
    volatile char pad[256];
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
static void overflow_dedicated(void *arg)
{
    (void)arg;
    gm_go_options o = { GM_STACK_DEDICATED, 16 << 10, "deep" };
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
    gm_go_options o = { GM_STACK_DEDICATED, 2048, "small" };
    gm_go_opts(smash_small, NULL, &o);
    gm_main(NULL, NULL);
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
    CHECK_DEATH(overflow_dedicated, NULL, "\"deep\" (dedicated stack, 16384 bytes)");
    CHECK_DEATH(overflow_copied, NULL, "stack overflow in coroutine");
    CHECK_DEATH(overflow_canary, NULL, "canary");
    CHECK_DEATH(ready_after_end, NULL, "has ended");
    CHECK_DEATH(park_outside, NULL, "outside a coroutine");
    CHECK_DEATH(deadlock, NULL, "all coroutines are asleep - deadlock!");
    CHECK_DEATH(unlock_unlocked, NULL, "unlock of unlocked mutex");
    CHECK_DEATH(wg_negative, NULL, "negative counter");
}

int main(void)
{
    RUN(round_robin);
    RUN(park_and_ready);
    RUN(copied_stacks_survive_and_resize);
    RUN(dedicated_stacks);
    RUN(many_idle_coroutines_cost_their_saved_stack);
    RUN(sleep);
    RUN(mutex_and_waitgroup);
    RUN(misuse_is_caught);
    return test_report();
}
