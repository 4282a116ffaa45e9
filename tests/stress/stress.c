// SPDX-License-Identifier: MIT
//
// make stress: a multi-threaded soak of every API at once, bounded in time
// (STRESS_SECONDS, default 60). Worker threads churn (each exits after a
// while and a new one takes its place) while they:
//   - malloc / calloc / realloc / aligned_alloc / free objects of random
//     sizes (tiny to large), each filled with a pattern checked at free;
//     a third of the frees happen on another thread (a shared exchange);
//   - gm_stackalloc / gm_stackfree stacks of every order, contents checked;
//   - run a gm_main with producers and consumers over channels and select,
//     checking every value's sum, and a burst of copied coroutines whose
//     execution stacks the second worker may take over, frames checked.
// The main thread forks every few seconds; each child allocates, runs
// coroutines, checks gm_debug_check() and exits 0.
// At the end every object is freed and the statistics must be back to the
// baseline (heap objects, stack bytes in use, coroutines alive) and
// gm_debug_check() must pass. Exit 0 and "N passed, 0 failed" when so.
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gomem.h"

#define Threads 4
#define Exchange 1024

static _Atomic(unsigned char *) exchange[Exchange]; // objects handed to whoever takes them
static atomic_int stop, failures;
static atomic_long ops, threads_started, forks;

static void fail(const char *what)
{
    fprintf(stderr, "stress: %s\n", what);
    atomic_fetch_add(&failures, 1);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// An object: [size_t n][unsigned char tag][pattern...], the pattern from the tag.
static unsigned char *obj_new(uint64_t *r)
{
    uint64_t x = rng_next(r);
    size_t n = (x & 3) == 0 ? 1 + x % 40000 : (x & 3) == 1 ? 1 + x % 2000 : 1 + x % 48;
    n += sizeof(size_t) + 1;
    unsigned char *p;
    switch ((x >> 8) & 3) {
    case 0: p = gm_calloc(1, n); break;
    case 1: p = gm_aligned_alloc(64, n); break;
    default: p = gm_malloc(n); break;
    }
    if (p == NULL) {
        fail("out of memory");
        return NULL;
    }
    memcpy(p, &n, sizeof n);
    unsigned char tag = (unsigned char)(x >> 16);
    p[sizeof n] = tag;
    for (size_t i = sizeof n + 1; i < n; i++)
        p[i] = (unsigned char)(tag + i);
    if ((x >> 24) % 5 == 0) { // grow or shrink it, keeping the contents
        size_t m = 1 + sizeof n + (x >> 32) % 3000;
        unsigned char *q = gm_realloc(p, m);
        if (q == NULL) {
            fail("realloc failed");
            return p;
        }
        for (size_t i = n; i < m; i++)
            q[i] = (unsigned char)(tag + i);
        memcpy(q, &m, sizeof m);
        p = q;
    }
    return p;
}

static void obj_free(unsigned char *p)
{
    size_t n;
    memcpy(&n, p, sizeof n);
    unsigned char tag = p[sizeof n];
    for (size_t i = sizeof n + 1; i < n; i++)
        if (p[i] != (unsigned char)(tag + i)) {
            fail("object contents changed");
            break;
        }
    gm_free(p);
}

// Coroutines: producers send numbers, consumers sum them (some via select);
// and a burst of copied coroutines placed on the first worker that sleep,
// then compute with yields, their frames checked: on two workers their
// execution stacks may be lent to the other one mid-run.
#define Burst 48
typedef struct coro_run {
    gm_chan *c, *quit;
    atomic_long sum;
    gm_waitgroup producers;
    atomic_int burstIntact;
} coro_run;

static void burster(void *arg)
{
    coro_run *cr = arg;
    volatile uint64_t buf[32];
    uint64_t x = (uint64_t)(uintptr_t)&buf; // differs per coroutine, and is where buf stays
    for (int i = 0; i < 32; i++)
        buf[i] = x + (uint64_t)i;
    gm_sleep(200000);
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 2000; i++)
            x = x * 6364136223846793005ull + 1;
        gm_yield();
    }
    int intact = (uint64_t)(uintptr_t)&buf == buf[0];
    for (int i = 1; i < 32; i++)
        intact &= buf[i] == buf[0] + (uint64_t)i;
    atomic_fetch_add(&cr->burstIntact, intact);
}

static void producer(void *arg)
{
    coro_run *cr = arg;
    for (long i = 1; i <= 500; i++) {
        gm_chan_send(cr->c, &i);
        if (i % 100 == 0)
            gm_yield();
    }
    gm_waitgroup_done(&cr->producers);
}

static void consumer(void *arg)
{
    coro_run *cr = arg;
    long v, s = 0;
    int ok = 1;
    for (;;) {
        gm_select_case cs[2] = { { cr->c, GM_SELECT_RECV, &v, &ok }, { cr->quit, GM_SELECT_RECV, &v, NULL } };
        int k = gm_select(cs, 2, 0);
        if (k == 1 || !ok)
            break;
        s += v;
    }
    atomic_fetch_add(&cr->sum, s);
}

static void closer(void *arg)
{
    coro_run *cr = arg;
    gm_waitgroup_wait(&cr->producers);
    gm_chan_close(cr->c);
}

static void coro_main(void *arg)
{
    coro_run *cr = arg;
    gm_waitgroup_add(&cr->producers, 4);
    for (int i = 0; i < 4; i++)
        gm_go(producer, cr);
    for (int i = 0; i < 3; i++)
        gm_go(consumer, cr);
    gm_go(closer, cr);
    gm_go_options first = { GM_STACK_COPIED, 0, "burst", 1 };
    for (int i = 0; i < Burst; i++)
        if (gm_go_opts(burster, cr, &first) == NULL)
            fail("gm_go_opts failed");
}

static void coro_round(void)
{
    coro_run cr = { gm_chan_new(sizeof(long), 8), gm_chan_new(sizeof(long), 0), 0, GM_WAITGROUP_INIT, 0 };
    if (gm_main(coro_main, &cr) != 0)
        fail("gm_main failed");
    if (atomic_load(&cr.sum) != 4 * 500 * 501 / 2)
        fail("coroutines lost or duplicated a value");
    if (atomic_load(&cr.burstIntact) != Burst)
        fail("a burst coroutine's frames changed (or it did not run)");
    gm_chan_free(cr.c);
    gm_chan_free(cr.quit);
}

static void *worker(void *arg)
{
    uint64_t r = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    unsigned char *mine[256] = { 0 };
    for (long it = 0; it < 20000 && !atomic_load(&stop); it++) {
        uint64_t x = rng_next(&r);
        int slot = (int)(x % 256);
        if (mine[slot] != NULL) {
            if ((x >> 8) % 3 == 0) { // hand it to another thread
                unsigned char *old = atomic_exchange(&exchange[(x >> 16) % Exchange], mine[slot]);
                if (old != NULL)
                    obj_free(old); // someone else's: a remote free
            } else {
                obj_free(mine[slot]);
            }
            mine[slot] = NULL;
        } else {
            mine[slot] = obj_new(&r);
        }
        if (it % 64 == 0) {
            size_t n = (size_t)256 << (x >> 40) % 9;
            gm_stack s = gm_stackalloc(n);
            if (s.lo == 0) {
                fail("gm_stackalloc failed");
            } else {
                memset((void *)s.lo, 0x5a, n);
                if (((unsigned char *)s.lo)[n - 1] != 0x5a)
                    fail("stack contents");
                gm_stackfree(s);
            }
        }
        if (it % 5000 == 4999)
            coro_round();
        atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
    }
    for (int i = 0; i < 256; i++)
        if (mine[i] != NULL)
            obj_free(mine[i]);
    return NULL; // the thread exits: its caches go back
}

static void child(void)
{
    alarm(60); // a child stuck on a lock another thread held at the fork fails the run instead of hanging it
    gm_set_procs(1); // no new threads in a child of a threaded parent (ThreadSanitizer refuses them)
    uint64_t r = 42;
    unsigned char *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = obj_new(&r);
    coro_round();
    for (int i = 0; i < 100; i++)
        if (p[i] != NULL)
            obj_free(p[i]);
    const char *bad = gm_debug_check();
    if (bad != NULL) {
        fprintf(stderr, "stress child: gm_debug_check: %s\n", bad);
        _exit(1);
    }
    _exit(atomic_load(&failures) == 0 ? 0 : 1);
}

int main(void)
{
    const char *secs = getenv("STRESS_SECONDS");
    double limit = secs != NULL ? atof(secs) : 60;
    gm_set_procs(2);
    gm_memstats base, end;
    gm_thread_flush();
    gm_stats(&base);
    pthread_t t[Threads];
    uintptr_t seed = 1;
    for (int i = 0; i < Threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)seed++);
    time_t start = time(NULL), last_fork = start;
    while (difftime(time(NULL), start) < limit) {
        for (int i = 0; i < Threads; i++) { // churn: a finished thread is replaced
            if (pthread_tryjoin_np(t[i], NULL) == 0) {
                pthread_create(&t[i], NULL, worker, (void *)seed++);
                atomic_fetch_add(&threads_started, 1);
            }
        }
        if (difftime(time(NULL), last_fork) >= 3) { // fork while the others run
            last_fork = time(NULL);
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0)
                child();
            int st = 0;
            if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail("forked child failed");
            atomic_fetch_add(&forks, 1);
        }
        usleep(20000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < Threads; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < Exchange; i++) {
        unsigned char *p = atomic_exchange(&exchange[i], NULL);
        if (p != NULL)
            obj_free(p);
    }
    gm_thread_flush();
    gm_scavenge();
    gm_stats(&end);
    if (end.heap_objects != base.heap_objects)
        fail("heap objects did not return to the baseline (a leak)");
    if (end.stack_inuse > base.stack_inuse)
        fail("stack spans did not return to the baseline");
    if (end.coro_created != end.coro_ended || end.coro_saved_bytes != 0)
        fail("coroutines left alive or saved stacks kept");
    const char *bad = gm_debug_check();
    if (bad != NULL) {
        fprintf(stderr, "stress: gm_debug_check: %s\n", bad);
        fail("consistency check");
    }
    printf("stress: %.0f s, %ld operations, %ld thread replacements, %ld forks, %llu coroutines; "
           "heap objects %llu -> %llu, stack bytes %llu -> %llu\n",
           limit, (long)ops, (long)threads_started, (long)forks, (unsigned long long)end.coro_created,
           (unsigned long long)base.heap_objects, (unsigned long long)end.heap_objects,
           (unsigned long long)base.stack_inuse, (unsigned long long)end.stack_inuse);
    int f = atomic_load(&failures);
    printf("%d passed, %d failed\n", f == 0 ? 1 : 0, f);
    return f != 0;
}
