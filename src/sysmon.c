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
// execution stacks wait for it. With GOMEM_DEBUG=sched it names the
// coroutine and how long it has run.
//
// Owns the thread and the per-worker fields marked "sysmon's" in struct
// worker, which only this thread touches, under allWorkersLock (through
// forEachRunningWorker). The thread starts with the first group of more
// than one worker and sleeps on a futex while no such group runs; a forked
// child starts its own when it needs one.
#include "runtime2.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define LongRun ((uint64_t)10000000)  // ns: Go's forcePreemptNS
#define SysmonPeriod ((long)2000000)  // ns between looks: a stall is seen within LongRun + 2 ms

static _Atomic uint32_t sysmonGroups; // running groups of more than one worker (the futex word)
static _Atomic bool sysmonStarted;
static int sysmonLock;                // spin lock: starting the thread
static _Atomic uint64_t statLongRuns, statHandoffs;

static void look(worker *p, void *arg)
{
    uint64_t now = *(const uint64_t *)arg;
    uint64_t tick = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
    gm_g *g = __atomic_load_n(&p->cur, __ATOMIC_RELAXED);
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

static void *sysmonMain(void *unused)
{
    (void)unused;
    for (;;) {
        uint32_t n = atomic_load_explicit(&sysmonGroups, memory_order_acquire);
        if (n == 0) {
            os_futexsleep((uint32_t *)&sysmonGroups, 0, -1);
            continue;
        }
        struct timespec ts = { 0, SysmonPeriod };
        nanosleep(&ts, NULL);
        uint64_t now = nanotime();
        forEachRunningWorker(look, &now);
    }
    return NULL;
}

void sysmonGroupStart(void)
{
    if (!atomic_load_explicit(&sysmonStarted, memory_order_acquire)) {
        spin_lock(&sysmonLock);
        if (!atomic_load_explicit(&sysmonStarted, memory_order_relaxed)) {
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            pthread_attr_setstacksize(&attr, 64 << 10);
            // Without it, long runs go unnoticed; nothing else depends on it.
            if (pthread_create(&t, &attr, sysmonMain, NULL) == 0)
                atomic_store_explicit(&sysmonStarted, true, memory_order_release);
            pthread_attr_destroy(&attr);
        }
        spin_unlock(&sysmonLock);
    }
    if (atomic_fetch_add_explicit(&sysmonGroups, 1, memory_order_acq_rel) == 0)
        os_futexwakeup((uint32_t *)&sysmonGroups, 1);
}

void sysmonGroupEnd(void)
{
    atomic_fetch_sub_explicit(&sysmonGroups, 1, memory_order_acq_rel);
}

// The child of a fork has no sysmon thread, and no running group.
void sysmon_atfork_child(void)
{
    atomic_store(&sysmonStarted, false);
    atomic_store(&sysmonGroups, 0);
    sysmonLock = 0;
}

void sysmon_stats(gm_memstats *out)
{
    out->sched_long_runs = atomic_load_explicit(&statLongRuns, memory_order_relaxed);
    out->sched_handoffs = atomic_load_explicit(&statHandoffs, memory_order_relaxed);
}
