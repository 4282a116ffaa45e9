// SPDX-License-Identifier: MIT
//
// Sync types (sema.c) beyond gm_mutex and gm_waitgroup (proc_test has
// those): gm_rwmutex (readers share, a writer excludes, a waiting writer
// holds back new readers and its unlock admits them before the next
// writer), gm_once (exactly once, callers wait for fn), gm_cond (signal in
// order, broadcast), gm_sema (units, first come first served), between
// coroutines of one worker in a known order and of several workers under
// load; plain threads blocking in them, among themselves and with
// coroutines; misuse that must abort naming the object; and the validators.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "export_test.h"
#include "testing.h"

// The order events happened in, on one worker.
static int events[64], nevents;
static void event(int e)
{
    if (nevents < 64)
        events[nevents++] = e;
}
static int events_are(const int *want, int n)
{
    if (nevents != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (events[i] != want[i])
            return 0;
    return 1;
}

// ------------------------------------------------------------ rwmutex

static gm_rwmutex rw = GM_RWMUTEX_INIT;

static void rw_reader(void *arg)
{
    int id = (int)(uintptr_t)arg;
    gm_rwmutex_rlock(&rw);
    event(id);
    gm_yield();
    gm_yield();
    event(id + 100); // still holding: others got in meanwhile only if they were readers
    gm_rwmutex_runlock(&rw);
}

static void rw_writer(void *arg)
{
    int id = (int)(uintptr_t)arg;
    gm_rwmutex_lock(&rw);
    event(id);
    gm_yield();
    event(id + 100);
    gm_rwmutex_unlock(&rw);
}

// R1 and R2 read together; W1 comes and waits; R3 comes after W1 and waits
// behind it although only readers hold rw; R1, R2 leave and W1 gets it;
// W2 comes; W1's unlock admits R3 before W2.
static void rw_order_main(void *arg)
{
    (void)arg;
    gm_go(rw_reader, (void *)1);
    gm_go(rw_reader, (void *)2);
    gm_go(rw_writer, (void *)11);
    gm_go(rw_reader, (void *)3);
    gm_go(rw_writer, (void *)12);
}

TEST(rwmutex_writer_holds_back_later_readers)
{
    nevents = 0;
    CHECK_EQ(gm_main(rw_order_main, NULL), 0);
    // R1 R2 in; W1 parks; R3 parks (writer waiting); W2 parks; R1 R2 out;
    // W1 in, out; R3 in (admitted by W1's unlock), out; W2 in, out.
    static const int want[] = { 1, 2, 101, 102, 11, 111, 3, 103, 12, 112 };
    CHECK(events_are(want, (int)(sizeof want / sizeof want[0])));
    if (!events_are(want, (int)(sizeof want / sizeof want[0]))) {
        for (int i = 0; i < nevents; i++)
            fprintf(stderr, " %d", events[i]);
        fputc('\n', stderr);
    }
    CHECK_EQ(rw.readers, 0);
    CHECK_EQ(rw.writer, 0);
}

static void rw_try_main(void *arg)
{
    (void)arg;
    int bad = 0;
    TALLY(bad, gm_rwmutex_tryrlock(&rw) == 1);
    TALLY(bad, gm_rwmutex_tryrlock(&rw) == 1); // readers share
    TALLY(bad, gm_rwmutex_trylock(&rw) == 0);
    gm_rwmutex_runlock(&rw);
    gm_rwmutex_runlock(&rw);
    TALLY(bad, gm_rwmutex_trylock(&rw) == 1);
    TALLY(bad, gm_rwmutex_tryrlock(&rw) == 0);
    TALLY(bad, gm_rwmutex_trylock(&rw) == 0);
    gm_rwmutex_unlock(&rw);
    // A writer waiting: tryrlock fails although only a reader holds rw.
    gm_rwmutex_rlock(&rw);
    gm_go(rw_writer, (void *)21);
    gm_yield(); // the writer parks
    TALLY(bad, gm_rwmutex_tryrlock(&rw) == 0);
    gm_rwmutex_runlock(&rw); // hands over to the writer
    TALLY(bad, rw.writer == 1);
    CHECK_EQ(bad, 0);
}

// A writer that gives up: readers that queued behind it while a reader
// held rw get their read locks at once (they waited for nothing any more),
// and a writer that comes after waits for all of them.
static _Atomic int readersIn;
static void rw_late_reader(void *arg)
{
    (void)arg;
    gm_rwmutex_rlock(&rw); // behind the waiting writer
    atomic_fetch_add(&readersIn, 1);
    event(3);
    gm_rwmutex_runlock(&rw);
}
static void rw_giving_up_writer(void *arg)
{
    (void)arg;
    errno = 0;
    CHECK_EQ(gm_rwmutex_lock_until(&rw, gm_deadline(20 * 1000 * 1000)), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    event(2);
}
static void rw_giveup_main(void *arg)
{
    (void)arg;
    gm_rwmutex_rlock(&rw); // held throughout
    event(1);
    gm_go(rw_giving_up_writer, NULL);
    gm_yield(); // the writer waits
    gm_go(rw_late_reader, NULL);
    gm_go(rw_late_reader, NULL);
    while (atomic_load(&readersIn) < 2)
        gm_sleep(1000 * 1000); // they get in once the writer gives up, this reader still holding
    CHECK_EQ(gm_rwmutex_trylock(&rw), 0);
    gm_rwmutex_runlock(&rw);
    CHECK_EQ(gm_rwmutex_trylock(&rw), 1);
    gm_rwmutex_unlock(&rw);
}

TEST(rwmutex_writer_that_gives_up_lets_readers_in)
{
    nevents = 0;
    atomic_store(&readersIn, 0);
    int procs = gm_set_procs(1);
    CHECK_EQ(gm_main(rw_giveup_main, NULL), 0);
    gm_set_procs(procs);
    static const int want[] = { 1, 2, 3, 3 };
    CHECK(events_are(want, 4));
    CHECK(rw.readers == 0 && rw.writer == 0 && gQueue_empty(&rw.readq) && gQueue_empty(&rw.writeq));
}

TEST(rwmutex_try)
{
    nevents = 0;
    CHECK_EQ(gm_main(rw_try_main, NULL), 0);
    CHECK_EQ(rw.writer, 0);
}

// Several workers: a writer is alone, readers overlap, no update is lost.
static gm_rwmutex xrw = GM_RWMUTEX_INIT;
static _Atomic int xreaders, xwriters, xbad, xmax_readers;
static long xvalue;
static gm_waitgroup xwg = GM_WAITGROUP_INIT;

static void xrw_fn(void *arg)
{
    int id = (int)(uintptr_t)arg;
    for (int i = 0; i < 400; i++) {
        if ((i + id) % 5 == 0) {
            gm_rwmutex_lock(&xrw);
            if (atomic_fetch_add(&xwriters, 1) != 0 || atomic_load(&xreaders) != 0)
                xbad++;
            long v = xvalue;
            if (i % 3 == 0)
                gm_yield();
            xvalue = v + 1;
            atomic_fetch_sub(&xwriters, 1);
            gm_rwmutex_unlock(&xrw);
        } else {
            gm_rwmutex_rlock(&xrw);
            int r = atomic_fetch_add(&xreaders, 1) + 1;
            if (atomic_load(&xwriters) != 0)
                xbad++;
            if (r > atomic_load(&xmax_readers))
                atomic_store(&xmax_readers, r);
            gm_yield();
            atomic_fetch_sub(&xreaders, 1);
            gm_rwmutex_runlock(&xrw);
        }
    }
    gm_waitgroup_done(&xwg);
}

static void xrw_main(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&xwg, 12);
    for (int i = 0; i < 12; i++)
        gm_go(xrw_fn, (void *)(uintptr_t)i);
    gm_waitgroup_wait(&xwg);
}

TEST(rwmutex_between_workers)
{
    gm_set_procs(3);
    CHECK_EQ(gm_main(xrw_main, NULL), 0);
    gm_set_procs(1);
    CHECK_EQ(xbad, 0);
    CHECK_EQ(xvalue, 12 * 400 / 5);
    CHECK(xmax_readers > 1); // readers did share
    CHECK_EQ(xrw.readers, 0);
    CHECK_EQ(xrw.writer, 0);
}

// --------------------------------------------------------------- once

static gm_once once = GM_ONCE_INIT;
static _Atomic int once_runs, once_seen_done, once_returned_early;
static _Atomic int once_state; // 0, 1 while fn runs, 2 after
static gm_waitgroup once_wg = GM_WAITGROUP_INIT;

static void once_fn(void *arg)
{
    atomic_store(&once_state, 1);
    atomic_fetch_add(&once_runs, 1);
    for (int i = 0; i < 5; i++) // others call gm_once_do meanwhile
        gm_sleep(200000);
    *(int *)arg = 42;
    atomic_store(&once_state, 2);
}

static int once_value;

static void once_caller(void *arg)
{
    (void)arg;
    gm_once_do(&once, once_fn, &once_value);
    if (atomic_load(&once_state) != 2 || once_value != 42)
        atomic_fetch_add(&once_returned_early, 1);
    else
        atomic_fetch_add(&once_seen_done, 1);
    gm_waitgroup_done(&once_wg);
}

static void once_main(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&once_wg, 16);
    for (int i = 0; i < 16; i++)
        gm_go(once_caller, NULL);
    gm_waitgroup_wait(&once_wg);
    gm_once_do(&once, once_fn, &once_value); // done: returns at once
}

TEST(once_runs_fn_once_and_callers_wait_for_it)
{
    gm_set_procs(2);
    CHECK_EQ(gm_main(once_main, NULL), 0);
    gm_set_procs(1);
    CHECK_EQ(once_runs, 1);
    CHECK_EQ(once_seen_done, 16);
    CHECK_EQ(once_returned_early, 0);
    CHECK_EQ(once.done, 2);
    // From a plain thread, on a fresh once: runs it (no wait needed).
    gm_once o2 = GM_ONCE_INIT;
    atomic_store(&once_runs, 0);
    once_value = 0;
    gm_once_do(&o2, once_fn, &once_value); // gm_sleep outside a coroutine sleeps the thread
    gm_once_do(&o2, once_fn, &once_value);
    CHECK_EQ(once_runs, 1);
    CHECK_EQ(once_value, 42);
}

// --------------------------------------------------------------- cond

static gm_mutex cmu = GM_MUTEX_INIT;
static gm_cond cv = GM_COND_INIT;
static int ready_flag, nwoken;

static void cond_waiter(void *arg)
{
    int id = (int)(uintptr_t)arg;
    gm_mutex_lock(&cmu);
    while (ready_flag == 0)
        gm_cond_wait(&cv, &cmu); // returns holding cmu
    ready_flag--; // one unit each
    event(id);
    nwoken++;
    gm_mutex_unlock(&cmu);
}

static void cond_main(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 4; i++)
        gm_go(cond_waiter, (void *)(uintptr_t)i);
    gm_yield(); // all four wait, in order
    gm_mutex_lock(&cmu);
    CHECK(!gm_mutex_trylock(&cmu));
    ready_flag = 1;
    gm_cond_signal(&cv); // wakes 1
    gm_mutex_unlock(&cmu);
    gm_yield();
    gm_mutex_lock(&cmu);
    ready_flag = 1;
    gm_cond_signal(&cv); // wakes 2 (signal without a change first is fine too)
    gm_mutex_unlock(&cmu);
    gm_yield();
    gm_mutex_lock(&cmu);
    ready_flag = 2;
    gm_cond_broadcast(&cv); // wakes 3 and 4
    gm_mutex_unlock(&cmu);
}

TEST(cond_signal_in_order_and_broadcast)
{
    nevents = 0;
    CHECK_EQ(gm_main(cond_main, NULL), 0);
    static const int want[] = { 1, 2, 3, 4 };
    CHECK(events_are(want, 4));
    CHECK_EQ(nwoken, 4);
    CHECK(gQueue_empty(&cv.waiters));
}

// A bounded queue with two conds, producers and consumers on several
// workers: every item arrives once.
#define QCAP 4
static gm_mutex qmu = GM_MUTEX_INIT;
static gm_cond qnotfull = GM_COND_INIT, qnotempty = GM_COND_INIT;
static int q[QCAP], qhead, qlen;
static _Atomic long qsum;
static gm_waitgroup qwg = GM_WAITGROUP_INIT;

static void q_producer(void *arg)
{
    int base = (int)(uintptr_t)arg;
    for (int i = 0; i < 500; i++) {
        gm_mutex_lock(&qmu);
        while (qlen == QCAP)
            gm_cond_wait(&qnotfull, &qmu);
        q[(qhead + qlen++) % QCAP] = base + i;
        gm_cond_signal(&qnotempty);
        gm_mutex_unlock(&qmu);
    }
    gm_waitgroup_done(&qwg);
}

static void q_consumer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 500; i++) {
        gm_mutex_lock(&qmu);
        while (qlen == 0)
            gm_cond_wait(&qnotempty, &qmu);
        int v = q[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
        gm_cond_signal(&qnotfull);
        gm_mutex_unlock(&qmu);
        atomic_fetch_add(&qsum, v);
    }
    gm_waitgroup_done(&qwg);
}

static void q_main(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&qwg, 8);
    for (int i = 0; i < 4; i++) {
        gm_go(q_producer, (void *)(uintptr_t)(i * 1000));
        gm_go(q_consumer, NULL);
    }
    gm_waitgroup_wait(&qwg);
}

TEST(cond_bounded_queue_between_workers)
{
    gm_set_procs(3);
    CHECK_EQ(gm_main(q_main, NULL), 0);
    gm_set_procs(1);
    long want = 0;
    for (int p = 0; p < 4; p++)
        for (int i = 0; i < 500; i++)
            want += p * 1000 + i;
    CHECK_EQ(qsum, want);
    CHECK_EQ(qlen, 0);
}

// --------------------------------------------------------------- sema

static gm_sema sem = GM_SEMA_INIT(3);

static void sema_taker(void *arg)
{
    long n = (long)(uintptr_t)arg;
    gm_sema_acquire(&sem, n);
    event((int)n);
}

// 3 units. Takes 3; a waiter for 2 queues, then one for 1: the 1 must not
// overtake the 2 (first come, first served) even when 1 unit comes back.
static void sema_order_main(void *arg)
{
    (void)arg;
    int bad = 0;
    gm_sema_acquire(&sem, 3);
    TALLY(bad, sem.count == 0);
    TALLY(bad, gm_sema_tryacquire(&sem, 1) == 0);
    gm_go(sema_taker, (void *)2);
    gm_go(sema_taker, (void *)1);
    gm_yield(); // both park
    TALLY(bad, nevents == 0);
    gm_sema_release(&sem, 1); // 1 free: the 2 waits, so the 1 waits too
    gm_yield();
    TALLY(bad, nevents == 0);
    TALLY(bad, gm_sema_tryacquire(&sem, 1) == 0); // no barging past waiters
    gm_sema_release(&sem, 2); // 3 free: the 2 and then the 1
    gm_yield();
    TALLY(bad, sem.count == 0);
    gm_sema_release(&sem, 3);
    gm_sema_acquire(&sem, 0);
    TALLY(bad, gm_sema_tryacquire(&sem, 3) == 1);
    TALLY(bad, gm_sema_tryacquire(&sem, 0) == 1);
    gm_sema_release(&sem, 3);
    CHECK_EQ(bad, 0);
}

TEST(sema_first_come_first_served)
{
    nevents = 0;
    CHECK_EQ(gm_main(sema_order_main, NULL), 0);
    static const int want[] = { 2, 1 };
    CHECK(events_are(want, 2));
    CHECK_EQ(sem.count, 3);
}

// A semaphore bounding how many coroutines of several workers are inside.
static gm_sema limit = GM_SEMA_INIT(3);
static _Atomic int inside, max_inside;
static gm_waitgroup lwg = GM_WAITGROUP_INIT;

static void limited(void *arg)
{
    long n = 1 + (long)(uintptr_t)arg % 2; // takes 1 or 2 units
    for (int i = 0; i < 200; i++) {
        gm_sema_acquire(&limit, n);
        int in = atomic_fetch_add(&inside, (int)n) + (int)n;
        if (in > atomic_load(&max_inside))
            atomic_store(&max_inside, in);
        gm_yield();
        atomic_fetch_sub(&inside, (int)n);
        gm_sema_release(&limit, n);
    }
    gm_waitgroup_done(&lwg);
}

static void limit_main(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&lwg, 10);
    for (int i = 0; i < 10; i++)
        gm_go(limited, (void *)(uintptr_t)i);
    gm_waitgroup_wait(&lwg);
}

TEST(sema_bounds_concurrency_between_workers)
{
    gm_set_procs(3);
    CHECK_EQ(gm_main(limit_main, NULL), 0);
    gm_set_procs(1);
    CHECK(max_inside <= 3);
    CHECK(max_inside >= 2);
    CHECK_EQ(limit.count, 3);
}

// ------------------------------------------------------------ chan_cap

TEST(chan_cap)
{
    gm_chan *a = gm_chan_new(4, 0), *b = gm_chan_new(8, 17);
    CHECK_EQ(gm_chan_cap(a), 0);
    CHECK_EQ(gm_chan_cap(b), 17);
    CHECK_EQ(gm_chan_cap(NULL), 0);
    uint64_t v = 1;
    CHECK_EQ(gm_chan_try_send(b, &v), 1);
    CHECK_EQ(gm_chan_cap(b), 17);
    CHECK_EQ(gm_chan_len(b), 1);
    gm_chan_free(a);
    gm_chan_free(b);
}

// ------------------------------------------------------- plain threads

// Plain threads block (on a futex) in every sync type, among themselves.
#define NTH 4
static gm_mutex tmu = GM_MUTEX_INIT;
static gm_rwmutex trw = GM_RWMUTEX_INIT;
static gm_sema tsem = GM_SEMA_INIT(2);
static gm_once tonce = GM_ONCE_INIT;
static gm_waitgroup twg = GM_WAITGROUP_INIT;
static long tcounter;
static _Atomic int tin_sem, tmax_sem, tonce_runs, tbad;
static int tonce_value;

static void tonce_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&tonce_runs, 1);
    usleep(5000); // the others wait meanwhile
    tonce_value = 7;
}

static void *sync_thread(void *arg)
{
    (void)arg;
    gm_once_do(&tonce, tonce_fn, NULL);
    if (tonce_value != 7)
        tbad++;
    for (int i = 0; i < 2000; i++) {
        gm_mutex_lock(&tmu);
        long c = tcounter;
        if (i % 64 == 0)
            sched_yield();
        tcounter = c + 1;
        gm_mutex_unlock(&tmu);
        if (i % 8 == 0) {
            gm_rwmutex_lock(&trw);
            tcounter += 0;
            gm_rwmutex_unlock(&trw);
        } else {
            gm_rwmutex_rlock(&trw);
            gm_rwmutex_runlock(&trw);
        }
        gm_sema_acquire(&tsem, 1);
        int in = atomic_fetch_add(&tin_sem, 1) + 1;
        if (in > atomic_load(&tmax_sem))
            atomic_store(&tmax_sem, in);
        if (i % 32 == 0)
            sched_yield();
        atomic_fetch_sub(&tin_sem, 1);
        gm_sema_release(&tsem, 1);
    }
    gm_waitgroup_done(&twg);
    return NULL;
}

TEST(plain_threads_block_in_sync_types)
{
    pthread_t th[NTH];
    gm_waitgroup_add(&twg, NTH);
    for (int i = 0; i < NTH; i++)
        pthread_create(&th[i], NULL, sync_thread, NULL);
    gm_waitgroup_wait(&twg); // blocks this thread until all are done
    CHECK_EQ(tcounter, NTH * 2000);
    CHECK(tmax_sem <= 2);
    CHECK_EQ(tonce_runs, 1);
    CHECK_EQ(tbad, 0);
    for (int i = 0; i < NTH; i++)
        pthread_join(th[i], NULL);
    CHECK(gQueue_empty(&tmu.waiters));
    CHECK_EQ(tmu.locked, 0);
}

// A pool of plain threads and coroutines on two workers handing work both
// ways: coroutines queue jobs for the threads (a mutex and a cond the
// threads wait on), threads queue results for the coroutines (a cond the
// coroutines wait on) and take a semaphore the coroutines release; both
// sides update one counter under one mutex; the threads start when a
// coroutine's waitgroup says so and join the coroutines at the end. No
// keeper coroutine: the pool threads count as able to wake coroutines, so
// the idle workers are not a deadlock.
#define POOL 3
#define PRODUCERS 4
#define JOBS 300 // per producer
static gm_mutex jmu = GM_MUTEX_INIT;
static gm_cond jcond = GM_COND_INIT, rcond = GM_COND_INIT;
static long jobs[64], results[64];
static int njobs, nresults, jobs_closed;
static gm_waitgroup start_wg = GM_WAITGROUP_INIT;
static gm_sema credits = GM_SEMA_INIT(0);
static gm_mutex shared_mu = GM_MUTEX_INIT;
static long shared_counter;
static _Atomic long result_sum, consumed;
static gm_g *producers[PRODUCERS];
static uint64_t producer_ids[PRODUCERS];
static gm_g *_Atomic consumer_g;
static uint64_t consumer_id;

static gm_waitgroup ready_wg = GM_WAITGROUP_INIT;

static void *pool_thread(void *arg)
{
    (void)arg;
    gm_waitgroup_done(&ready_wg); // from its first call on, the thread counts as one that may wake coroutines
    gm_waitgroup_wait(&start_wg); // a coroutine starts the pool
    for (;;) {
        gm_mutex_lock(&jmu);
        while (njobs == 0 && !jobs_closed)
            gm_cond_wait(&jcond, &jmu);
        if (njobs == 0) {
            gm_mutex_unlock(&jmu);
            break;
        }
        long job = jobs[--njobs];
        gm_mutex_unlock(&jmu);
        gm_sema_acquire(&credits, 1); // released by the coroutines, one per job
        gm_mutex_lock(&shared_mu);
        shared_counter++;
        gm_mutex_unlock(&shared_mu);
        gm_mutex_lock(&jmu);
        while (nresults == 64)
            gm_cond_wait(&jcond, &jmu); // the consumer makes room
        results[nresults++] = job * 2;
        gm_cond_broadcast(&rcond);
        gm_mutex_unlock(&jmu);
    }
    for (int i = 0; i < PRODUCERS; i++)
        gm_join(producers[i], producer_ids[i]);
    gm_g *c;
    while ((c = atomic_load(&consumer_g)) == NULL)
        usleep(100);
    gm_join(c, consumer_id);
    return NULL;
}

static void producer(void *arg)
{
    long base = (long)(uintptr_t)arg * 100000;
    for (long i = 0; i < JOBS; i++) {
        gm_mutex_lock(&jmu);
        while (njobs == 64)
            gm_cond_wait(&rcond, &jmu); // a thread takes one
        jobs[njobs++] = base + i;
        gm_cond_broadcast(&jcond);
        gm_mutex_unlock(&jmu);
        gm_sema_release(&credits, 1);
        gm_mutex_lock(&shared_mu);
        shared_counter++;
        gm_mutex_unlock(&shared_mu);
    }
}

static void consumer(void *arg)
{
    (void)arg;
    while (atomic_load(&consumed) < PRODUCERS * JOBS) {
        gm_mutex_lock(&jmu);
        while (nresults == 0)
            gm_cond_wait(&rcond, &jmu); // a thread's result wakes it
        long r = results[--nresults];
        gm_cond_broadcast(&jcond); // room for results
        gm_mutex_unlock(&jmu);
        atomic_fetch_add(&result_sum, r);
        atomic_fetch_add(&consumed, 1);
    }
    gm_mutex_lock(&jmu);
    jobs_closed = 1;
    gm_cond_broadcast(&jcond);
    gm_mutex_unlock(&jmu);
}

static void pool_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < PRODUCERS; i++)
        producers[i] = gm_go_id(producer, (void *)(uintptr_t)i, NULL, &producer_ids[i]);
    gm_g *c = gm_go_id(consumer, NULL, NULL, &consumer_id);
    atomic_store(&consumer_g, c);
    gm_waitgroup_done(&start_wg); // the threads, asleep in the waitgroup, start
}

TEST(thread_pool_and_coroutines_exchange_work)
{
    pthread_t th[POOL];
    gm_waitgroup_add(&start_wg, 1);
    gm_waitgroup_add(&ready_wg, POOL);
    for (int i = 0; i < POOL; i++)
        pthread_create(&th[i], NULL, pool_thread, NULL);
    gm_waitgroup_wait(&ready_wg);
    gm_set_procs(2);
    CHECK_EQ(gm_main(pool_main, NULL), 0);
    gm_set_procs(1);
    for (int i = 0; i < POOL; i++)
        pthread_join(th[i], NULL);
    long want = 0;
    for (long p = 0; p < PRODUCERS; p++)
        for (long i = 0; i < JOBS; i++)
            want += (p * 100000 + i) * 2;
    CHECK_EQ(result_sum, want);
    CHECK_EQ(shared_counter, 2 * PRODUCERS * JOBS);
    CHECK_EQ(credits.count, 0);
    CHECK_EQ(njobs, 0);
    CHECK_EQ(nresults, 0);
}

// -------------------------------------------------------------- misuse

static void rw_runlock_unlocked(void *arg)
{
    (void)arg;
    gm_rwmutex r = GM_RWMUTEX_INIT;
    gm_rwmutex_runlock(&r);
}
static void rw_unlock_unlocked(void *arg)
{
    (void)arg;
    gm_rwmutex r = GM_RWMUTEX_INIT;
    gm_rwmutex_unlock(&r);
}
static void rw_unlock_read_locked(void *arg)
{
    (void)arg;
    gm_rwmutex r = GM_RWMUTEX_INIT;
    gm_rwmutex_rlock(&r);
    gm_rwmutex_unlock(&r); // held by a reader, not a writer
}
static void rw_runlock_write_locked(void *arg)
{
    (void)arg;
    gm_rwmutex r = GM_RWMUTEX_INIT;
    gm_rwmutex_lock(&r);
    gm_rwmutex_runlock(&r);
}
static void cond_wait_unlocked_fn(void *arg)
{
    (void)arg;
    gm_mutex m = GM_MUTEX_INIT;
    gm_cond c = GM_COND_INIT;
    gm_cond_wait(&c, &m);
}
static void cond_wait_unlocked(void *arg)
{
    gm_main(cond_wait_unlocked_fn, arg);
}
static gm_cond two_cond = GM_COND_INIT;
static gm_mutex two_a = GM_MUTEX_INIT, two_b = GM_MUTEX_INIT;
static void two_waiter(void *arg)
{
    gm_mutex *m = arg;
    gm_mutex_lock(m);
    gm_cond_wait(&two_cond, m);
}
static void cond_two_mutexes_fn(void *arg)
{
    (void)arg;
    gm_go(two_waiter, &two_a);
    gm_yield();
    two_waiter(&two_b);
}
static void cond_two_mutexes(void *arg)
{
    gm_main(cond_two_mutexes_fn, arg);
}
static void sema_negative_release(void *arg)
{
    (void)arg;
    gm_sema s = GM_SEMA_INIT(0);
    gm_sema_release(&s, -1);
}
static void sema_negative_acquire(void *arg)
{
    (void)arg;
    gm_sema s = GM_SEMA_INIT(5);
    gm_sema_acquire(&s, -2);
}
static void sema_negative_count(void *arg)
{
    (void)arg;
    gm_sema s = GM_SEMA_INIT(-1);
    gm_sema_tryacquire(&s, 1);
}
static void sema_overflow(void *arg)
{
    (void)arg;
    gm_sema s = GM_SEMA_INIT(1);
    gm_sema_release(&s, __LONG_MAX__);
}
static void once_null(void *arg)
{
    (void)arg;
    gm_once o = GM_ONCE_INIT;
    gm_once_do(&o, NULL, NULL);
}

// A coroutine waits for a mutex that a plain thread holds and never
// releases: no deadlock report while the thread lives (it might unlock),
// one once it has exited.
static gm_mutex held = GM_MUTEX_INIT;
static _Atomic int held_taken;
static void *holder(void *arg)
{
    (void)arg;
    gm_mutex_lock(&held);
    atomic_store(&held_taken, 1);
    usleep(20000); // the coroutine parks on the mutex meanwhile
    return NULL;   // exits holding it
}
static void held_waiter(void *arg)
{
    (void)arg;
    gm_mutex_lock(&held);
}
static void thread_holder_exits(void *arg)
{
    (void)arg;
    pthread_t th;
    pthread_create(&th, NULL, holder, NULL);
    while (!atomic_load(&held_taken))
        usleep(100);
    gm_main(held_waiter, NULL);
}

TEST(misuse_is_caught)
{
    CHECK_DEATH(thread_holder_exits, NULL, "all coroutines are asleep - deadlock!");
    CHECK_DEATH(rw_runlock_unlocked, NULL, "gm_rwmutex_runlock of unlocked rwmutex 0x");
    CHECK_DEATH(rw_unlock_unlocked, NULL, "gm_rwmutex_unlock of unlocked rwmutex 0x");
    CHECK_DEATH(rw_unlock_read_locked, NULL, "gm_rwmutex_unlock of unlocked rwmutex");
    CHECK_DEATH(rw_runlock_write_locked, NULL, "gm_rwmutex_runlock of unlocked rwmutex");
    CHECK_DEATH(cond_wait_unlocked, NULL, "gm_cond_wait on cond 0x");
    CHECK_DEATH(cond_wait_unlocked, NULL, "is not locked");
    CHECK_DEATH(cond_two_mutexes, NULL, "its waiters hold mutex 0x");
    CHECK_DEATH(sema_negative_release, NULL, "gm_sema_release on sema 0x");
    CHECK_DEATH(sema_negative_release, NULL, "negative count -1");
    CHECK_DEATH(sema_negative_acquire, NULL, "gm_sema_acquire on sema 0x");
    CHECK_DEATH(sema_negative_count, NULL, "negative count -1 in the semaphore");
    CHECK_DEATH(sema_overflow, NULL, "the count overflows");
    CHECK_DEATH(once_null, NULL, "NULL function");
}

// ---------------------------------------------------------- validators

// The *_valid functions hold while coroutines wait, and name each broken
// invariant (GM_DEBUG=3 runs them after every wake).
static gm_rwmutex vrw = GM_RWMUTEX_INIT;
static gm_sema vsem = GM_SEMA_INIT(0);
static gm_once vonce = GM_ONCE_INIT;
static gm_cond vcond = GM_COND_INIT;
static gm_mutex vmu = GM_MUTEX_INIT;
static gm_waitgroup vwg = GM_WAITGROUP_INIT;

static void v_reader(void *arg)
{
    (void)arg;
    gm_rwmutex_rlock(&vrw);
    gm_rwmutex_runlock(&vrw);
}
static void v_acquirer(void *arg)
{
    (void)arg;
    gm_sema_acquire(&vsem, 2);
}
static void v_once_fn(void *arg)
{
    (void)arg;
    gm_yield();
    gm_yield();
}
static void v_once_caller(void *arg)
{
    (void)arg;
    gm_once_do(&vonce, v_once_fn, NULL);
}
static void v_cond_waiter(void *arg)
{
    (void)arg;
    gm_mutex_lock(&vmu);
    gm_cond_wait(&vcond, &vmu);
    gm_mutex_unlock(&vmu);
}

static void validators_main(void *arg)
{
    (void)arg;
    gm_rwmutex_lock(&vrw);
    gm_go(v_reader, NULL);
    gm_go(v_acquirer, NULL);
    gm_go(v_once_caller, NULL); // runs fn, which yields
    gm_go(v_once_caller, NULL); // waits for it
    gm_go(v_cond_waiter, NULL);
    gm_yield(); // the reader, the acquirer, the cond waiter and the second once caller park
    CHECK(rwmutex_valid(&vrw) == NULL);
    CHECK(sema_valid(&vsem) == NULL);
    CHECK(once_valid(&vonce) == NULL);
    CHECK(cond_valid(&vcond) == NULL);
    CHECK(!gQueue_empty(&vrw.readq));
    CHECK(!gQueue_empty(&vsem.waiters));
    CHECK(!gQueue_empty(&vcond.waiters));
    const char *bad;

    vrw.writer = 0; // a reader waits with no writer holding or waiting
    bad = rwmutex_valid(&vrw);
    CHECK(bad != NULL && strstr(bad, "readers wait") != NULL);
    vrw.writer = 1;
    vrw.readers = 1; // a reader beside the writer
    bad = rwmutex_valid(&vrw);
    CHECK(bad != NULL && strstr(bad, "readers held with a writer") != NULL);
    vrw.readers = 0;
    gm_g *w = vrw.readq.head;
    setstatus(w, Grunnable); // a queued waiter that is not parked
    bad = rwmutex_valid(&vrw);
    CHECK(bad != NULL && strstr(bad, "not parked") != NULL);
    setstatus(w, Gwaiting);
    gm_g *tail = vrw.readq.tail;
    vrw.readq.tail = NULL;
    bad = rwmutex_valid(&vrw);
    CHECK(bad != NULL && strstr(bad, "tail") != NULL);
    vrw.readq.tail = tail;
    CHECK(rwmutex_valid(&vrw) == NULL);

    vsem.count = 2; // the first waiter (wants 2) could be served
    bad = sema_valid(&vsem);
    CHECK(bad != NULL && strstr(bad, "could be served") != NULL);
    vsem.count = -1;
    bad = sema_valid(&vsem);
    CHECK(bad != NULL && strstr(bad, "negative") != NULL);
    vsem.count = 0;

    vonce.done = 2; // done, and someone still waits
    bad = once_valid(&vonce);
    CHECK(bad != NULL && strstr(bad, "waiters") != NULL);
    vonce.done = 1;

    gm_mutex *m = vcond.m;
    vcond.m = NULL;
    bad = cond_valid(&vcond);
    CHECK(bad != NULL && strstr(bad, "without a mutex") != NULL);
    vcond.m = m;

    gm_mutex um = GM_MUTEX_INIT;
    um.waiters = vcond.waiters; // parked waiters on an unlocked mutex
    bad = mutex_valid(&um);
    CHECK(bad != NULL && strstr(bad, "unlocked") != NULL);
    gm_waitgroup uw = GM_WAITGROUP_INIT;
    uw.waiters = vcond.waiters;
    bad = waitgroup_valid(&uw);
    CHECK(bad != NULL && strstr(bad, "zero counter") != NULL);
    uw.count = -1;
    CHECK(waitgroup_valid(&uw) != NULL);
    CHECK(waitgroup_valid(&vwg) == NULL);

    gm_rwmutex_unlock(&vrw);
    gm_sema_release(&vsem, 2);
    gm_mutex_lock(&vmu);
    gm_cond_signal(&vcond);
    gm_mutex_unlock(&vmu);
}

TEST(validators_name_broken_invariants)
{
    CHECK_EQ(gm_main(validators_main, NULL), 0);
    CHECK(rwmutex_valid(&vrw) == NULL);
    CHECK(sema_valid(&vsem) == NULL);
    CHECK_EQ(vonce.done, 2);
    CHECK(once_valid(&vonce) == NULL);
}

int main(void)
{
    gm_set_procs(1); // the order tests need one worker
    RUN(rwmutex_writer_holds_back_later_readers);
    RUN(rwmutex_try);
    RUN(rwmutex_writer_that_gives_up_lets_readers_in);
    RUN(rwmutex_between_workers);
    RUN(once_runs_fn_once_and_callers_wait_for_it);
    RUN(cond_signal_in_order_and_broadcast);
    RUN(cond_bounded_queue_between_workers);
    RUN(sema_first_come_first_served);
    RUN(sema_bounds_concurrency_between_workers);
    RUN(chan_cap);
    RUN(plain_threads_block_in_sync_types);
    RUN(thread_pool_and_coroutines_exchange_work);
    RUN(misuse_is_caught);
    RUN(validators_name_broken_invariants);
    return test_report();
}
