// SPDX-License-Identifier: MIT
//
// Threads and processes: a thread that exits gives its caches back, and a
// fork() taken while other threads allocate gives a child whose allocator
// works and whose structures are consistent; a process that never had a
// second thread forks without the handlers taking every lock.
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "export_test.h"
#include "testing.h"

static _Atomic int stop;

static void *churner(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    gm_stack win[32] = { { 0, 0 } };
    mspan *spans[8] = { 0 };
    void *objs[64] = { 0 };
    while (!atomic_load(&stop)) {
        for (int i = 0; i < 8; i++) {
            int o = (int)(test_rand(&rng) % 64);
            gm_free(objs[o]);
            objs[o] = gm_malloc(test_rand(&rng) % 3 == 0 ? test_rand(&rng) % 50000 : test_rand(&rng) % 512);
        }
        int k = (int)(test_rand(&rng) % 32);
        gm_stackfree(win[k]);
        win[k] = gm_stackalloc((size_t)512 << (test_rand(&rng) % 7));
        int j = (int)(test_rand(&rng) % 8);
        if (spans[j] != NULL)
            mheap_free(spans[j]);
        spans[j] = mheap_alloc(1 + test_rand(&rng) % 16, 0);
    }
    for (int k = 0; k < 32; k++)
        gm_stackfree(win[k]);
    for (int j = 0; j < 8; j++)
        if (spans[j] != NULL)
            mheap_free(spans[j]);
    for (int o = 0; o < 64; o++)
        gm_free(objs[o]);
    return NULL;
}

static int child_work(void)
{
    for (int i = 0; i < 2000; i++) {
        gm_stack s = gm_stackalloc((size_t)512 << (i % 8));
        if (s.lo == 0)
            return 1;
        memset((void *)s.lo, i, s.hi - s.lo);
        gm_stackfree(s);
        mspan *sp = mheap_alloc(1 + (uintptr_t)i % 20, 0);
        if (sp == NULL)
            return 2;
        mheap_free(sp);
        void *p = gm_malloc((size_t)i * 13 % 40000);
        if (p == NULL)
            return 6;
        memset(p, 1, (size_t)i * 13 % 40000);
        gm_free(p);
    }
    gm_scavenge();
    if (mcentral_valid() != NULL)
        return 7;
    if (stackpool_valid() != NULL)
        return 3;
    if (mheap_valid() != NULL)
        return 4;
    gm_memstats m;
    return gm_stats(&m) == 0 ? 0 : 5;
}

// Run first, before this process has a second thread: the fork handlers
// then take no lock (mcache.c), and the child still finds the parent's
// objects and a working heap.
TEST(fork_of_a_single_threaded_process_takes_no_locks)
{
    bool single = os_single_threaded();
#if TEST_RSS_MEANINGFUL && defined(__GLIBC__) // (ThreadSanitizer's runtime has threads of its own;
    CHECK(single);                            // other C libraries do not say: false, locks taken)
#endif
    enum { N = 300 };
    static unsigned char *objs[N];
    static size_t sizes[N];
    for (int i = 0; i < N; i++) {
        sizes[i] = i % 3 == 0 ? 5 : i % 3 == 1 ? 200 + (size_t)i : 40000 + (size_t)i * 100;
        objs[i] = gm_malloc(sizes[i]);
        memset(objs[i], i & 0xff, sizes[i]);
    }
    gm_stack st = gm_stackalloc(8192);
    memset((void *)st.lo, 0x77, st.hi - st.lo);
    uint64_t locked = atomic_load(&mcache_forksLocked);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            for (size_t k = 0; k < sizes[i]; k++)
                bad += objs[i][k] != (unsigned char)(i & 0xff);
            gm_free(objs[i]);
        }
        for (uintptr_t a = st.lo; a < st.hi; a++)
            bad += *(unsigned char *)a != 0x77;
        gm_stackfree(st);
        _exit(bad != 0 ? 10 : child_work());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "    child: status 0x%x\n", status);
    CHECK_EQ(atomic_load(&mcache_forksLocked), locked + (single ? 0 : 1));
    for (int i = 0; i < N; i++)
        gm_free(objs[i]);
    gm_stackfree(st);
    CHECK(mheap_valid() == NULL);
    CHECK(mcentral_valid() == NULL);
}

TEST(fork_while_other_threads_allocate)
{
    uint64_t locked = atomic_load(&mcache_forksLocked);
    pthread_t t[2];
    atomic_store(&stop, 0);
    pthread_create(&t[0], NULL, churner, (void *)1);
    pthread_create(&t[1], NULL, churner, (void *)2);
    int ok = 0;
    for (int i = 0; i < 30; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30); // a deadlocked child fails the test instead of hanging it
            _exit(child_work());
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
        else
            fprintf(stderr, "    child %d: status 0x%x\n", i, status);
    }
    atomic_store(&stop, 1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    CHECK_EQ(ok, 30);
    CHECK_EQ(atomic_load(&mcache_forksLocked), locked + 30); // every handler held every lock
    CHECK(stackpool_valid() == NULL);
    CHECK(mheap_valid() == NULL);
    CHECK(mcentral_valid() == NULL);
}

// A fork can stop another thread between a free cache list's new head and
// its count. The child adopts that thread's cache with the count one short
// of the list: it must give the whole list back and find its structures
// consistent (GM_DEBUG=3 checks them after each step).
static pthread_mutex_t parkedMu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t parkedCv = PTHREAD_COND_INITIALIZER;
static int parkedState; // 1: the thread's cache is filled, 2: it may go
static mcache *parkedCache;
static uint8_t parkedClass;

static void *cacheFiller(void *arg)
{
    (void)arg;
    void *p[8], *q[8];
    for (int i = 0; i < 8; i++) {
        p[i] = gm_malloc(200);
        q[i] = gm_malloc(24); // a smaller class, whose flush comes first and checks the others
    }
    parkedClass = spanOf((uintptr_t)p[0])->spanclass;
    for (int i = 0; i < 8; i++) {
        gm_free(p[i]); // into this thread's free cache
        gm_free(q[i]);
    }
    pthread_mutex_lock(&parkedMu);
    parkedCache = getmcache();
    parkedState = 1;
    pthread_cond_broadcast(&parkedCv);
    while (parkedState != 2)
        pthread_cond_wait(&parkedCv, &parkedMu);
    pthread_mutex_unlock(&parkedMu);
    return NULL;
}

TEST(fork_adopts_a_cache_stopped_between_head_and_count)
{
    pthread_t t;
    parkedState = 0;
    CHECK_EQ(pthread_create(&t, NULL, cacheFiller, NULL), 0);
    pthread_mutex_lock(&parkedMu);
    while (parkedState != 1)
        pthread_cond_wait(&parkedCv, &parkedMu);
    tcacheBin *b = &parkedCache->bin[parkedClass];
    unsigned n = tcacheCount(b);
    CHECK(n >= 2);
    tcacheSetCount(b, n - 1); // as if stopped between tcachePush's head and its count
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        _exit(child_work());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    tcacheSetCount(b, n);
    parkedState = 2;
    pthread_cond_broadcast(&parkedCv);
    pthread_mutex_unlock(&parkedMu);
    pthread_join(t, NULL);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// Threads that keep running the scheduler's shared parts: each gm_main
// adds and removes a worker (the list of workers' lock), its coroutines'
// descriptors go back to the shared free list (that list's lock) when the
// worker has too many, contexts are made and cancelled (the tree's lock),
// and gm_stats walks the workers. A child forked meanwhile must find every
// one of those locks free.
static gm_ctx *forkRoot;
static void sched_leaf(void *arg)
{
    gm_ctx *c = gm_ctx_with_cancel(arg);
    gm_ctx_cancel(c, 0);
    gm_ctx_free(c);
}
static void sched_round(void *arg)
{
    (void)arg;
    for (int i = 0; i < 300; i++)
        gm_go(sched_leaf, forkRoot);
    gm_memstats m;
    gm_stats(&m);
}
static void *sched_churner(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        gm_main(sched_round, NULL);
    return NULL;
}

TEST(fork_while_other_threads_run_coroutines)
{
    // The sanitizers' runtimes (gcc 12) do not hold their own locks across
    // fork: a child may wait on one of theirs (ASan's allocator, seen in
    // glibc's thread functions; TSan's, seen once in 200 children).
    if (TEST_ASAN || !TEST_RSS_MEANINGFUL) {
        printf("    (skipped under the sanitizers: a child may wait on their runtime's locks, not gomem's)\n");
        return;
    }
    if (test_skip_qemu("qemu-user's own locks are not held across a threaded guest's fork"))
        return;
    forkRoot = gm_ctx_with_cancel(gm_ctx_background());
    pthread_t t[2];
    atomic_store(&stop, 0);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, sched_churner, NULL);
    int ok = 0, n = 200;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30); // a child stuck on a lock fails the test instead of hanging it
            // One worker: no new thread in the child (the sanitizers' own
            // allocators may be locked by a parent thread at the fork).
            gm_set_procs(1);
            _exit(gm_main(sched_round, NULL) == 0 ? 0 : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
        else if (ok + 5 > i) // name the first few
            fprintf(stderr, "    child %d: status 0x%x\n", i, status);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(ok, n);
    gm_ctx_cancel(forkRoot, 0);
    gm_ctx_free(forkRoot);
}

static _Atomic int exit_bad; // threads whose cache held no stacks before they exited

static void *alloc_and_exit(void *arg)
{
    // Leave stacks of every order in this thread's cache, then exit.
    (void)arg;
    for (int o = 0; o < NumStackOrders; o++) {
        gm_stack s = gm_stackalloc(FixedStack << o);
        gm_stackfree(s);
    }
    if (!TALLY(exit_bad, getmcache() != NULL))
        return NULL;
    uintptr_t cached = 0;
    for (int o = 0; o < NumStackOrders; o++)
        cached += atomic_load(&getmcache()->stackcacheBytes[o]);
    TALLY(exit_bad, cached > 0);
    return NULL;
}

TEST(thread_exit_gives_caches_back)
{
    gm_thread_flush();
    gm_memstats before, after;
    gm_stats(&before);
    for (int i = 0; i < 50; i++) {
        pthread_t t;
        pthread_create(&t, NULL, alloc_and_exit, NULL);
        pthread_join(t, NULL);
    }
    CHECK_EQ(exit_bad, 0);
    gm_stats(&after);
    int bad = 0;
    for (int o = 0; o < NumStackOrders; o++) {
        TALLY(bad, after.stack_order[o].cached == before.stack_order[o].cached, "order %d", o);
        TALLY(bad, after.stack_order[o].inuse == before.stack_order[o].inuse, "order %d", o);
        TALLY(bad, after.stack_order[o].nspans == before.stack_order[o].nspans, "order %d", o);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(after.stack_inuse, before.stack_inuse);
    CHECK(stackpool_valid() == NULL);
}

int main(void)
{
    RUN(fork_of_a_single_threaded_process_takes_no_locks); // first: no thread yet
    RUN(fork_while_other_threads_allocate);
    RUN(fork_adopts_a_cache_stopped_between_head_and_count);
    RUN(fork_while_other_threads_run_coroutines);
    RUN(thread_exit_gives_caches_back);
    return test_report();
}
