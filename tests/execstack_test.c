// SPDX-License-Identifier: MIT
//
// Copied mode's execution stacks (gstack.c's head): a working set of
// coroutines switches without saving frames at any depth, a coroutine
// beyond it has its frames saved and restored intact, an address handed to
// another coroutine pins its frames, and the misuses are named.
#include <string.h>
#include <sys/resource.h>

#include "export_test.h"
#include "testing.h"

// Frames of about kib KiB below a coroutine that then takes turns with
// another through a channel; the pattern in them must survive.
static long deepThen(int kib, long seed, void (*then)(void *), void *arg)
{
    volatile char pad[1000];
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = (char)(seed + (long)i);
    long r = 0;
    if (kib > 1)
        r = deepThen(kib - 1, seed + 1, then, arg);
    else
        then(arg);
    for (size_t i = 0; i < sizeof pad; i++)
        if (pad[i] != (char)(seed + (long)i))
            return -1000000;
    return r + 1;
}

typedef struct pp {
    gm_chan *in, *out;
    int rounds;
    long result;
} pp;

static void pingRounds(void *arg)
{
    pp *x = arg;
    for (int i = 0; i < x->rounds; i++) {
        int v = i;
        gm_chan_send(x->out, &v);
        CHECK(gm_chan_recv(x->in, &v) == 1 && v == i + 1);
    }
}

static void pongRounds(void *arg)
{
    pp *x = arg;
    for (int i = 0; i < x->rounds; i++) {
        int v;
        CHECK(gm_chan_recv(x->in, &v) == 1 && v == i);
        v++;
        gm_chan_send(x->out, &v);
    }
}

static void pinger(void *arg)
{
    pp *x = arg;
    x->result = deepThen(16, 3, pingRounds, x);
}

static void ponger(void *arg)
{
    pp *x = arg;
    x->result = deepThen(16, 5, pongRounds, x);
}

static pp ping, pong;

static void pingpongMain(void *arg)
{
    (void)arg;
    gm_chan *a = gm_chan_new(sizeof(int), 0), *b = gm_chan_new(sizeof(int), 0);
    ping = (pp){ .in = b, .out = a, .rounds = 1000 };
    pong = (pp){ .in = a, .out = b, .rounds = 1000 };
    gm_g *g1 = gm_go(pinger, &ping), *g2 = gm_go(ponger, &pong);
    uint64_t id1 = gm_id(g1), id2 = gm_id(g2);
    gm_join(g1, id1);
    gm_join(g2, id2);
    gm_chan_free(a);
    gm_chan_free(b);
}

// Two coroutines with 16 KiB of frames each take turns 1,000 times: with
// their own execution stacks no frame is saved; sharing one, every turn
// saves and restores them, and they survive.
TEST(working_set_switches_without_copying)
{
    int procs = gm_set_procs(1), stacks = runtime_execstacks;
    gm_memstats a, b, c;
    gm_stats(&a);
    CHECK_EQ(gm_main(pingpongMain, NULL), 0);
    gm_stats(&b);
    CHECK_EQ(ping.result, 16);
    CHECK_EQ(pong.result, 16);
    CHECK(b.coro_frame_saves - a.coro_frame_saves < 10); // the main coroutine's joins may share
    runtime_execstacks = 1;
    CHECK_EQ(gm_main(pingpongMain, NULL), 0);
    runtime_execstacks = stacks;
    gm_stats(&c);
    CHECK_EQ(ping.result, 16);
    CHECK_EQ(pong.result, 16);
    CHECK(c.coro_frame_saves - b.coro_frame_saves >= 2000);
    CHECK(c.coro_stack_grows > b.coro_stack_grows); // the saved copies doubled to hold 16 KiB
    gm_set_procs(procs);
}

// The natural Go-style program: a parent's local waitgroup and counter,
// passed by address to children, while far more coroutines than execution
// stacks run and park.
typedef struct shared {
    gm_waitgroup *wg;
    gm_mutex *mu;
    long *sum;
    int n;
} shared;

static void child(void *arg)
{
    shared *s = arg;
    for (int i = 0; i < 3; i++)
        gm_yield(); // others take the execution stacks meanwhile
    gm_mutex_lock(s->mu);
    *s->sum += s->n;
    gm_mutex_unlock(s->mu);
    gm_waitgroup_done(s->wg);
}

static void childOfLocal(void *arg)
{
    gm_waitgroup *wg = arg; // the parent's local, by gm_go's argument
    for (int i = 0; i < 3; i++)
        gm_yield();
    gm_waitgroup_done(wg);
}

static long parentSums[4];

static void parent(void *arg)
{
    int id = (int)(uintptr_t)arg;
    gm_waitgroup wg = GM_WAITGROUP_INIT;
    gm_mutex mu = GM_MUTEX_INIT;
    long sum = 0;
    shared s[20];
    gm_waitgroup_add(&wg, 40);
    for (int i = 0; i < 20; i++) {
        gm_go(childOfLocal, &wg); // pins this parent's frames
        s[i] = (shared){ &wg, &mu, &sum, i };
        gm_go(child, &s[i]);
    }
    gm_waitgroup_wait(&wg);
    parentSums[id] = sum;
}

static uint64_t execStacksAfter;

static void parentsMain(void *arg)
{
    (void)arg;
    gm_g *g[4];
    uint64_t id[4];
    for (int i = 0; i < 4; i++)
        g[i] = gm_go_id(parent, (void *)(uintptr_t)i, NULL, &id[i]);
    for (int i = 0; i < 4; i++)
        gm_join(g[i], id[i]);
    // gm_join returns once a parent's function returned; its worker gives
    // the pinned stack back a moment later (freeG). A leak never settles.
    uint64_t limit = (uint64_t)gm_set_procs(0) * (uint64_t)runtime_execstacks;
    gm_memstats m;
    for (int i = 0; i < 1000; i++) {
        gm_stats(&m);
        if (m.coro_exec_stacks <= limit)
            break;
        gm_sleep(1000000);
    }
    execStacksAfter = m.coro_exec_stacks;
}

TEST(locals_handed_to_children_stay_in_place)
{
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(gm_main(parentsMain, NULL), 0);
    gm_stats(&b);
    int bad = 0;
    for (int i = 0; i < 4; i++)
        TALLY(bad, parentSums[i] == 190, "parent %d summed %ld", i, parentSums[i]);
    CHECK_EQ(bad, 0);
    CHECK(b.coro_pins - a.coro_pins >= 4);
    CHECK(b.coro_frame_saves > a.coro_frame_saves); // 164 coroutines on 8 stacks a worker
    // The pinned stacks went back: each worker holds at most its limit.
    CHECK(execStacksAfter <= (uint64_t)gm_set_procs(0) * (uint64_t)runtime_execstacks);
    CHECK_EQ(b.coro_saved_bytes, 0);
    VALID();
}

// A pointer to a local sent on a channel of pointers pins the sender too.
static void readsPointer(void *arg)
{
    gm_chan *c = arg;
    long *p;
    CHECK(gm_chan_recv(c, &p) == 1);
    for (int i = 0; i < 20; i++)
        gm_yield();
    *p = 42;
    gm_chan_send(c, &p);
}

static void crowd(void *arg)
{
    volatile char pad[2000];
    memset((void *)pad, 1, sizeof pad);
    for (int i = 0; i < 10; i++)
        gm_yield();
    (void)arg;
}

static long sentResult;

static void sendsLocal(void *arg)
{
    (void)arg;
    gm_chan *c = gm_chan_new(sizeof(long *), 0);
    gm_go(readsPointer, c);
    for (int i = 0; i < 30; i++)
        gm_go(crowd, NULL);
    long local = 0, *p = &local;
    gm_chan_send(c, &p);
    CHECK(gm_chan_recv(c, &p) == 1);
    sentResult = local;
    gm_chan_free(c);
}

TEST(pointer_sent_on_a_channel_pins_the_sender)
{
    int procs = gm_set_procs(1);
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(gm_main(sendsLocal, NULL), 0);
    gm_stats(&b);
    gm_set_procs(procs);
    CHECK_EQ(sentResult, 42);
    CHECK_EQ(b.coro_pins - a.coro_pins, 1);
}

// gm_after_func's argument is read later by the function's coroutine: an
// address in the caller's frames pins them, as gm_go's does.
static void bumpLocal(void *arg)
{
    ++*(long *)arg;
}

static long afterResult;
static void afterFuncLocal(void *arg)
{
    (void)arg;
    for (int i = 0; i < 30; i++)
        gm_go(crowd, NULL);
    long local = 41;
    gm_timer *t = gm_after_func(1000000, bumpLocal, &local);
    CHECK(t != NULL);
    gm_sleep(20000000); // the crowd runs and ends meanwhile, the timer fires
    afterResult = local;
    gm_timer_free(t);
}

TEST(after_func_argument_pins_the_caller)
{
    int procs = gm_set_procs(1);
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(gm_main(afterFuncLocal, NULL), 0);
    gm_stats(&b);
    gm_set_procs(procs);
    CHECK_EQ(afterResult, 42);
    CHECK_EQ(b.coro_pins - a.coro_pins, 1);
}

// Misuse: an address in a coroutine's frames handed to a child while other
// coroutines share its execution stack cannot be kept in place.
static void parks(void *arg)
{
    gm_chan *c = arg;
    int v;
    gm_chan_recv(c, &v);
}

static void nop(void *arg)
{
    (void)arg;
}

static void sharedParent(void *arg)
{
    gm_chan *c = arg;
    int local = 0;
    gm_go(nop, &local); // dies: parks' frames belong at this stack too
    gm_chan_close(c);
}

static void sharedMain(void *arg)
{
    (void)arg;
    gm_chan *c = gm_chan_new(sizeof(int), 0);
    gm_go(parks, c);
    gm_go(sharedParent, c);
}

static void sharedChild(void *arg)
{
    (void)arg;
    runtime_execstacks = 1;
    gm_set_procs(1);
    gm_main(sharedMain, NULL);
}

// Misuse: parking on a mutex that lives in another coroutine's frames,
// which gomem was not told about (a global, not gm_go's argument).
static gm_mutex *hidden;

static void locksHidden(void *arg)
{
    (void)arg;
    gm_mutex_lock(hidden); // held by owner: parks, and dies naming it
}

static void owner(void *arg)
{
    (void)arg;
    gm_mutex mu = GM_MUTEX_INIT;
    gm_mutex_lock(&mu);
    hidden = &mu;
    gm_go(locksHidden, NULL);
    gm_sleep(1000000); // parked: its frames may move
    gm_mutex_unlock(&mu);
}

static void hiddenChild(void *arg)
{
    (void)arg;
    gm_set_procs(1);
    gm_main(owner, NULL);
}

TEST(frames_that_move_are_named)
{
    CHECK_DEATH(sharedChild, NULL, "whose execution stack 1 other coroutines share");
    CHECK_DEATH(hiddenChild, NULL, "is in the frames of another copied coroutine's execution stack");
}

// The validator names an execution stack whose count of bound or parked
// coroutines is wrong, and one both lent to its worker and in its slots.
static void validatorMain(void *arg)
{
    (void)arg;
    worker *p = TLS(tworker);
    gm_g *g = gm_self();
    CHECK(worker_valid(p) == NULL);
    g->exec->nbound++;
    const char *bad = worker_valid(p);
    CHECK(bad != NULL && strstr(bad, "nbound") != NULL);
    g->exec->nbound--;
    g->exec->nparked++; // would let the stack be lent while a g of it waits
    bad = worker_valid(p);
    CHECK(bad != NULL && strstr(bad, "nparked") != NULL);
    g->exec->nparked--;
    p->lentq = g->exec; // lent to p and still in its slots
    bad = worker_valid(p);
    CHECK(bad != NULL && strstr(bad, "lent") != NULL);
    p->lentq = NULL;
    CHECK(worker_valid(p) == NULL);
}

TEST(validator_names_a_broken_execution_stack)
{
    CHECK_EQ(gm_main(validatorMain, NULL), 0);
}

// A group's execution stacks outlive it: the next gm_main's worker runs
// on the one the last left, with the pages its frames reached still there
// (no fault); gm_scavenge unmaps them.
static long deepResult;
static void noop(void *arg)
{
    (void)arg;
}
static void goesDeep(void *arg)
{
    (void)arg;
    deepResult = deepThen(256, 7, noop, NULL); // 256 KiB of frames
}

static long minorFaults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

TEST(execution_stacks_outlive_their_group)
{
    int procs = gm_set_procs(1);
    long f0 = minorFaults();
    CHECK_EQ(gm_main(goesDeep, NULL), 0);
    long f1 = minorFaults();
    CHECK_EQ(deepResult, 256);
    CHECK_EQ(gm_main(goesDeep, NULL), 0);
    long f2 = minorFaults();
    CHECK_EQ(deepResult, 256);
    gm_scavenge();
    long f3 = minorFaults();
    CHECK_EQ(gm_main(goesDeep, NULL), 0);
    long f4 = minorFaults();
    CHECK_EQ(deepResult, 256);
    // The 64 pages of frames: faulted by the first group (the stack was
    // new) and the one after gm_scavenge, not by the second.
    if (!TEST_ASAN) { // its shadow faults too
        CHECK(f2 - f1 + 32 < f1 - f0);
        CHECK(f2 - f1 + 32 < f4 - f3);
    }
    gm_set_procs(procs);
    VALID();
}

int main(void)
{
    RUN(working_set_switches_without_copying);
    RUN(execution_stacks_outlive_their_group);
    RUN(locals_handed_to_children_stay_in_place);
    RUN(pointer_sent_on_a_channel_pins_the_sender);
    RUN(after_func_argument_pins_the_caller);
    RUN(frames_that_move_are_named);
    RUN(validator_names_a_broken_execution_stack);
    return test_report();
}
