// SPDX-License-Identifier: MIT
//
// sysmon (Go: sysmon in proc.go): a background thread that watches the
// workers of every running group of more than one worker, and finds one
// whose coroutine has run for more than LongRun without switching — a CPU
// loop, or a plain blocking system call. Scheduling is cooperative: nothing
// can take the worker back from such a coroutine (C cannot be preempted
// safely at an arbitrary instruction, so no signal is sent into user code).
// What sysmon can do is Go's handoffp within that limit: it wakes an idle
// worker, which steals the stuck worker's stealable runnable gs (newq: new
// ones, and movable started ones); copied gs bound to the stuck worker's
// execution stacks wait for it (only its own loop can lend a stack). And
// while a worker sleeps wanting an execution stack, sysmon puts the ask
// (a note on the inbox) to each busy worker every period (steal.c). With
// GOMEM_DEBUG=sched it names the coroutine and how long it has run.
//
// Each period it also gives the scavenger's budget its background half for
// cached dedicated stacks (stack_scavengeDedicated; dedicated.c): a program
// whose coroutines all ended and that frees nothing more still gets old
// cached stacks released, while its group runs.
//
// Owns the thread and the per-worker fields marked "sysmon's" in struct
// worker, which only this thread touches, under allWorkersLock (through
// forEachRunningWorker). The thread starts with the first group of more
// than one worker and is joined when the last one ends; a forked child
// starts its own when it needs one.
#include "runtime2.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define LongRun ((uint64_t)10000000)  // ns: Go's forcePreemptNS
#define SysmonPeriod ((long)2000000)  // ns between looks: a stall is seen within LongRun + 2 ms

static int sysmonLock;                // spin lock: sysmonGroups, sysmonGen, sysmonThread
static long sysmonGroups;             // running groups of more than one worker; sysmonLock
static _Atomic uint64_t sysmonGen;    // the running thread's generation; a new value stops it
static pthread_t sysmonThread;        // sysmonLock
static bool sysmonRunning;            // sysmonLock
static _Atomic uint64_t statLongRuns, statHandoffs;

static void look(worker *p, void *arg)
{
    uint64_t now = *(const uint64_t *)arg;
    uint64_t tick = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
    gm_g *g = __atomic_load_n(&p->cur, __ATOMIC_RELAXED);
    if (g != NULL && stackWanted(p)) // another worker sleeps and could take an execution stack of p's
        postLendNote(p);
    if (g == NULL || tick != p->smTick) { // switched (or idle) since the last look
        p->smTick = tick;
        p->smSince = now;
        p->smReported = false;
        return;
    }
    if (now - p->smSince < LongRun)
        return;
    if (!p->smReported) {
        p->smReported = true;
        atomic_fetch_add_explicit(&statLongRuns, 1, memory_order_relaxed);
        if (debug.sched) // the descriptor is never freed: its id is readable even if it just ended
            fprintf(stderr,
                    "gomem: sched: coroutine %llu has run for %llu ms on worker %d without switching "
                    "(a CPU loop or a blocking system call holds the worker; scheduling is cooperative)\n",
                    (unsigned long long)atomic_load_explicit(&g->id, memory_order_relaxed),
                    (unsigned long long)((now - p->smSince) / 1000000), p->id);
    }
    if (!gQueue_empty(&p->newq) && wakep(p))
        atomic_fetch_add_explicit(&statHandoffs, 1, memory_order_relaxed);
}

static void *sysmonMain(void *arg)
{
    uint64_t gen = (uint64_t)(uintptr_t)arg;
    while (atomic_load_explicit(&sysmonGen, memory_order_acquire) == gen) {
        struct timespec ts = { 0, SysmonPeriod };
        nanosleep(&ts, NULL);
        uint64_t now = nanotime();
        forEachRunningWorker(look, &now);
        stack_scavengeDedicated(true); // the background half of its budget (usually a load)
    }
    return NULL;
}

void sysmonGroupStart(void)
{
    spin_lock(&sysmonLock);
    if (sysmonGroups++ == 0 && !sysmonRunning) {
        uint64_t gen = atomic_fetch_add_explicit(&sysmonGen, 1, memory_order_acq_rel) + 1;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 64 << 10);
        // Without it, long runs go unnoticed; nothing else depends on it.
        sysmonRunning = pthread_create(&sysmonThread, &attr, sysmonMain, (void *)(uintptr_t)gen) == 0;
        pthread_attr_destroy(&attr);
    }
    spin_unlock(&sysmonLock);
}

// The last group's end stops and joins the thread: a program between
// gm_main calls has no thread of gomem's (fork stays simple).
void sysmonGroupEnd(void)
{
    pthread_t t;
    bool join = false;
    spin_lock(&sysmonLock);
    if (--sysmonGroups == 0 && sysmonRunning) {
        atomic_fetch_add_explicit(&sysmonGen, 1, memory_order_acq_rel);
        t = sysmonThread;
        sysmonRunning = false;
        join = true;
    }
    spin_unlock(&sysmonLock);
    if (join)
        pthread_join(t, NULL);
}

// The child of a fork has no sysmon thread, and no running group.
void sysmon_atfork_child(void)
{
    sysmonLock = 0;
    sysmonGroups = 0;
    sysmonRunning = false;
    atomic_fetch_add(&sysmonGen, 1);
}

void sysmon_stats(gm_memstats *out)
{
    out->sched_long_runs = atomic_load_explicit(&statLongRuns, memory_order_relaxed);
    out->sched_handoffs = atomic_load_explicit(&statHandoffs, memory_order_relaxed);
}
