// SPDX-License-Identifier: MIT
//
// The scheduler on several workers (proc.c, steal.c, sysmon.c): every
// stack mode under 2, 4 and 8 workers with many switches of every kind,
// frames intact and only movable coroutines moved (copied ones with their
// execution stack); a burst of copied coroutines spreads over the workers;
// a coroutine that never yields does not stop another worker from running
// the stealable ones; and where the workers' time goes
// (gm_memstats.sched_*_ns) adds up.
#include <sys/syscall.h>
#include <time.h>

#include "export_test.h"
#include "testing.h"

// ------------------------------------------------- every mode, 2-8 workers

enum { Copied, Dedicated, Pinned, Checked, NModes };
static const char *modeName[NModes] = { "copied", "dedicated", "pinned", "stackcheck" };

#define NCORO 24
#define NSWITCH 240

static int curMode;
static gm_chan *pingq;               // buffered: sends and receives that park between workers
static gm_chan *neverq;              // nobody sends: a select on it waits for its deadline
static gm_mutex switchMu = GM_MUTEX_INIT; // contended: parks on a sync object
static long muCount;                 // guarded by switchMu
static gm_waitgroup allDone = GM_WAITGROUP_INIT;
static atomic_long framesBad, stayBad, pinBad, moves[NModes];

static void pinChild(void *arg)
{
    atomic_int *shared = arg; // in pinned frames: read and written from any worker
    atomic_fetch_add(&framesBad, atomic_load(shared) != 42);
    atomic_store(shared, 43);
    gm_waitgroup_done(&allDone);
}

// The thread running the caller now. (pthread_self is declared const: a
// compiler may keep its value across a switch that moved the coroutine.)
static __attribute__((noinline)) long threadNow(void)
{
    return syscall(SYS_gettid);
}

static void switcher(void *arg)
{
    volatile unsigned char buf[768];
    volatile unsigned char *self = buf; // a pointer into its own frames, which must stay valid
    atomic_int shared = 42;             // pinned mode: its child reads it and sets 43
    unsigned char v = (unsigned char)(uintptr_t)arg;
    memset((unsigned char *)buf, v, sizeof buf);
    if (curMode == Pinned) {
        gm_waitgroup_add(&allDone, 1);
        gm_g *c = gm_go(pinChild, (void *)&shared); // an address in its frames: pins them
        atomic_fetch_add(&framesBad, c == NULL);
        atomic_fetch_add(&pinBad, !gm_self()->pinned);
    }
    long first = threadNow();
    long bad = 0, moved = 0;
    for (int i = 0; i < NSWITCH; i++) {
        switch (i % 6) {
        case 0:
        case 1: gm_yield(); break;
        case 2: gm_sleep(1000); break;
        case 3: { // a timed wait that a send ends early, or its deadline: its timer entry stays behind
            long x = i, y;
            gm_select_case c[2] = { { pingq, GM_SELECT_SEND, &x, NULL }, { neverq, GM_SELECT_RECV, &y, NULL } };
            if (gm_select_until(c, 2, gm_deadline(2000)) == 0)
                gm_chan_recv(pingq, &x);
            break;
        }
        case 4:
            gm_mutex_lock(&switchMu);
            muCount++;
            gm_yield(); // holds it across a switch: others park on it
            gm_mutex_unlock(&switchMu);
            break;
        default: {
            long x = i;
            gm_chan_send(pingq, &x); // parks when full, wakes a receiver elsewhere
            gm_chan_recv(pingq, &x);
        }
        }
        bad += self != buf || buf[0] != v || buf[sizeof buf / 2] != v || buf[sizeof buf - 1] != v;
        long now = threadNow();
        if (now != first) {
            moved++;
            first = now;
        }
    }
    while (curMode == Pinned && atomic_load(&shared) != 43) // its child has not run yet
        gm_yield();
    atomic_fetch_add(&framesBad, bad);
    atomic_fetch_add(&moves[curMode], moved);
    // Stackcheck frames are addressed at one worker's protected stacks.
    // Copied ones may move, with their execution stack and every g bound to
    // it (the checks above: the frames are where they were, intact).
    if (curMode == Checked)
        atomic_fetch_add(&stayBad, moved);
    gm_waitgroup_done(&allDone);
}

static void modesMain(void *arg)
{
    (void)arg;
    // All placed on the first worker: the others have only what they steal
    // (once their threads are there: on a loaded machine they may start late).
    gm_memstats m;
    do
        gm_stats(&m);
    while (m.sched_workers < (uint64_t)gm_set_procs(0));
    gm_go_options o = { curMode == Dedicated ? GM_STACK_DEDICATED : GM_STACK_COPIED, 16 << 10, NULL, 1 };
    gm_waitgroup_add(&allDone, NCORO);
    for (int i = 0; i < NCORO; i++)
        CHECK(gm_go_opts(switcher, (void *)(uintptr_t)(i + 1), &o) != NULL);
    gm_waitgroup_wait(&allDone);
}

TEST(every_mode_under_many_workers)
{
    int procs = gm_set_procs(0);
    static const int nprocs[] = { 2, 4, 8 };
    gm_memstats a, b;
    gm_stats(&a);
    for (size_t k = 0; k < sizeof nprocs / sizeof nprocs[0]; k++) {
        gm_set_procs(nprocs[k]);
        for (curMode = 0; curMode < NModes; curMode++) {
            debug.stackcheck = curMode == Checked;
            // Copied: two execution stacks per worker, a dozen coroutines
            // bound to each, so that whole stacks are lent between workers
            // in the middle of every kind of switch.
            int stacks = runtime_execstacks;
            if (curMode == Copied)
                runtime_execstacks = 2;
            pingq = gm_chan_new(sizeof(long), 4);
            neverq = gm_chan_new(sizeof(long), 0);
            CHECK_EQ(gm_main(modesMain, NULL), 0);
            gm_chan_free(pingq);
            gm_chan_free(neverq);
            runtime_execstacks = stacks;
        }
    }
    debug.stackcheck = 0;
    gm_set_procs(procs);
    gm_stats(&b);
    CHECK_EQ(atomic_load(&framesBad), 0);
    CHECK_EQ(atomic_load(&stayBad), 0);
    CHECK_EQ(atomic_load(&pinBad), 0);
    CHECK_EQ(muCount, 3L * NModes * NCORO * (NSWITCH / 6)); // every locked increment counted
    CHECK_EQ(b.coro_ended - a.coro_ended, (uint64_t)3 * (NModes * (NCORO + 1) + NCORO)); // (and mains, pin children)
    for (int m = 0; m < NModes; m++)
        printf("    %s: %ld moves between threads\n", modeName[m], atomic_load(&moves[m]));
    CHECK(atomic_load(&moves[Dedicated]) + atomic_load(&moves[Pinned]) > 0); // the movable ones did move
}

// ------------------------------------------ a coroutine that never yields

// It holds its worker; the dedicated coroutines it readies are taken by
// the other worker, which ends them all while it still spins.
static gm_chan *startq;
static atomic_int stuckDone;
static bool stuckTimedOut;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void waiter(void *arg)
{
    (void)arg;
    long x;
    gm_chan_recv(startq, &x); // woken by the close, on the spinning worker
    atomic_fetch_add(&stuckDone, 1);
}

static void neverYields(void *arg)
{
    (void)arg;
    gm_go_options o = { GM_STACK_DEDICATED, 16 << 10, NULL, TLS(tworker)->id + 1 }; // started here
    for (int i = 0; i < 16; i++)
        CHECK(gm_go_opts(waiter, NULL, &o) != NULL);
    gm_memstats m;
    do { // until they have parked
        gm_yield();
        gm_stats(&m);
    } while (m.coro_waiting < 16);
    gm_chan_close(startq);
    // No switch from here: only another worker can run them. The bound
    // only keeps a broken scheduler from hanging the test.
    uint64_t give_up = mono_ns() + 20000000000u;
    while (atomic_load(&stuckDone) < 16 && !(stuckTimedOut = mono_ns() > give_up))
        ;
}

TEST(a_coroutine_that_never_yields_does_not_stop_the_others)
{
    int procs = gm_set_procs(2);
    startq = gm_chan_new(sizeof(long), 0);
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(gm_main(neverYields, NULL), 0);
    gm_stats(&b);
    gm_chan_free(startq);
    gm_set_procs(procs);
    CHECK(!stuckTimedOut);
    CHECK_EQ(atomic_load(&stuckDone), 16);
    CHECK(b.sched_steals_started - a.sched_steals_started >= 1);
}

// --------------------------------------- a burst of copied coroutines

// Copied coroutines started on one worker park, then all wake at once to
// compute, yielding now and then: the idle worker takes execution stacks
// with their coroutines from the busy one (gm_memstats.sched_stack_lends),
// and each coroutine that moved finds its frames where it left them,
// intact.
#define NBURST 64
static gm_chan *burstGo;
static gm_waitgroup burstDone = GM_WAITGROUP_INIT;
static atomic_long burstBad, burstMoved;

static void burstJob(void *arg)
{
    unsigned long seed = (uintptr_t)arg;
    volatile unsigned long acc[64];
    volatile unsigned long *self = acc; // an address in its own frames, kept across the move
    for (int i = 0; i < 64; i++)
        acc[i] = seed * (unsigned long)(i + 1);
    long before = threadNow(), x;
    gm_chan_recv(burstGo, &x); // parked on the worker it started on, until the close
    long after = threadNow();
    for (int r = 0; r < 20000; r++) { // some milliseconds: long enough for the idle worker to ask
        acc[r & 63] = acc[r & 63] * 6364136223846793005ul + 1442695040888963407ul;
        if (r % 2000 == 1999) // switches that may skip the loop: the ask reaches it by a note
            gm_yield();
    }
    unsigned long want[64];
    for (int i = 0; i < 64; i++)
        want[i] = seed * (unsigned long)(i + 1);
    for (int r = 0; r < 20000; r++)
        want[r & 63] = want[r & 63] * 6364136223846793005ul + 1442695040888963407ul;
    long bad = self != acc;
    for (int i = 0; i < 64; i++)
        bad += acc[i] != want[i];
    atomic_fetch_add(&burstBad, bad);
    atomic_fetch_add(&burstMoved, after != before || threadNow() != before);
    gm_waitgroup_done(&burstDone);
}

static void burstMain(void *arg)
{
    (void)arg;
    gm_memstats m;
    do // the other worker's thread is there
        gm_stats(&m);
    while (m.sched_workers < 2);
    gm_go_options o = { GM_STACK_COPIED, 0, NULL, TLS(tworker)->id + 1 }; // placed here: not stolen new
    gm_waitgroup_add(&burstDone, NBURST);
    for (int i = 0; i < NBURST; i++)
        CHECK(gm_go_opts(burstJob, (void *)(uintptr_t)(i + 1), &o) != NULL);
    do { // until they have parked
        gm_yield();
        gm_stats(&m);
    } while (m.coro_waiting < NBURST);
    gm_chan_close(burstGo);
    gm_waitgroup_wait(&burstDone);
}

TEST(a_burst_of_copied_coroutines_spreads_with_its_execution_stacks)
{
    int procs = gm_set_procs(2);
    gm_memstats a, b;
    gm_stats(&a);
    // Lending needs the other worker idle and asking when the burst wakes:
    // on a loaded machine a round may pass without it.
    int rounds = 0;
    do {
        burstGo = gm_chan_new(sizeof(long), 0);
        CHECK_EQ(gm_main(burstMain, NULL), 0);
        gm_chan_free(burstGo);
        gm_stats(&b);
    } while (++rounds < 20 && (b.sched_stack_lends == a.sched_stack_lends || atomic_load(&burstMoved) == 0));
    gm_set_procs(procs);
    printf("    %d rounds, %llu stacks lent, %ld coroutines moved\n", rounds,
           (unsigned long long)(b.sched_stack_lends - a.sched_stack_lends), atomic_load(&burstMoved));
    CHECK_EQ(atomic_load(&burstBad), 0);
    CHECK(b.sched_stack_lends > a.sched_stack_lends);
    CHECK(atomic_load(&burstMoved) > 0);
    CHECK(b.sched_steals_started - a.sched_steals_started >= (uint64_t)atomic_load(&burstMoved));
}

// ------------------------------------------------------- the workers' time

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t burnt;
static gm_memstats inside;

// Burns 20 ms of its thread's CPU without switching, then reads the stats
// while the group still runs.
static void burner(void *arg)
{
    (void)arg;
    do // the other worker's thread is there (on a loaded machine it may start late)
        gm_stats(&inside);
    while (inside.sched_workers < 2);
    uint64_t t0 = thread_cpu_ns();
    while (thread_cpu_ns() - t0 < 20000000u)
        ;
    burnt = thread_cpu_ns() - t0;
    gm_stats(&inside);
}

TEST(worker_time_adds_up)
{
    int procs = gm_set_procs(2);
    gm_memstats a, b;
    gm_stats(&a);
    CHECK_EQ(a.sched_workers, 0); // no gm_main runs
    CHECK_EQ(gm_main(burner, NULL), 0);
    gm_stats(&b);
    gm_set_procs(procs);
    // While it ran: this group's two workers, one of them busy at least as
    // long as the coroutine's CPU time, the other with nothing to run.
    CHECK_EQ(inside.sched_workers, 2);
    uint64_t maxBusy = 0, waited = 0, ids = 0;
    for (int i = 0; i < 2; i++) {
        maxBusy = inside.sched_worker[i].busy_ns > maxBusy ? inside.sched_worker[i].busy_ns : maxBusy;
        waited += inside.sched_worker[i].spin_ns + inside.sched_worker[i].idle_ns;
        ids |= 1u << inside.sched_worker[i].worker;
    }
    CHECK_EQ(ids, 3); // workers 0 and 1
    CHECK(maxBusy >= burnt);
    CHECK(waited > 0);
    // Snapshots add up: a worker's three times are its time in gm_main,
    // which only grows; the totals keep an ended worker's.
    uint64_t before = a.sched_busy_ns + a.sched_spin_ns + a.sched_idle_ns;
    uint64_t during = inside.sched_busy_ns + inside.sched_spin_ns + inside.sched_idle_ns;
    uint64_t after = b.sched_busy_ns + b.sched_spin_ns + b.sched_idle_ns;
    CHECK(before <= during && during <= after);
    uint64_t sum = 0;
    for (int i = 0; i < 2; i++)
        sum += inside.sched_worker[i].busy_ns + inside.sched_worker[i].spin_ns + inside.sched_worker[i].idle_ns;
    CHECK_EQ(during - before, sum); // only this group ran meanwhile
    CHECK(b.sched_busy_ns - a.sched_busy_ns >= burnt);
    CHECK(b.sched_spin_ns + b.sched_idle_ns > a.sched_spin_ns + a.sched_idle_ns);
    CHECK_EQ(b.sched_workers, 0);
}

int main(void)
{
    RUN(worker_time_adds_up);
    RUN(a_coroutine_that_never_yields_does_not_stop_the_others);
    RUN(every_mode_under_many_workers);
    RUN(a_burst_of_copied_coroutines_spreads_with_its_execution_stacks);
    return test_report();
}
