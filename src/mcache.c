// SPDX-License-Identifier: MIT
//
// Per-thread caches (Go: mcache.go). Go keeps one mcache per P; gomem keeps
// one per thread, created on the thread's first allocation and given back
// when the thread exits (a pthread key destructor) or calls gm_thread_flush.
//
// Owns: the thread's mcache pointer (TLS) and the list of every live mcache
// (allm, for gm_stats).
//
// Invariants: a thread's mcache is touched only by that thread, except its
// counters, which other threads read with relaxed atomic loads. An mcache is
// on allm from creation until its thread's destructor removes it.
//
// Locks: allmLock (rank lockRankAllm) guards allm and mcachealloc. Flushing a cache takes the stack pool locks, which rank
// lower, so it happens before allmLock is taken.
#include "runtime.h"

#include <string.h>

static mutex allmLock = MUTEX_INIT(lockRankAllm);
static mcache *allm;                // guarded by allmLock
// Rounded to a cache line: two threads' caches never share one.
static fixalloc mcachealloc = { .size = (sizeof(mcache) + 63) & ~(size_t)63 }; // guarded by allmLock
// initial-exec: a drop-in malloc must not call into the TLS allocator of the
// dynamic loader to find its own cache.
static __thread mcache *mcache_tls __attribute__((tls_model("initial-exec")));

static pthread_key_t mcacheKey;
static pthread_once_t mcacheKeyOnce = PTHREAD_ONCE_INIT;

static void mcache_destroy(void *arg)
{
    mcache *c = arg;
    stackcache_clear(c);
    lock(&allmLock);
    if (c->allprev != NULL)
        c->allprev->allnext = c->allnext;
    else
        allm = c->allnext;
    if (c->allnext != NULL)
        c->allnext->allprev = c->allprev;
    fixalloc_free(&mcachealloc, c);
    unlock(&allmLock);
    if (mcache_tls == c)
        mcache_tls = NULL;
}

static void mcacheKeyInit(void)
{
    if (pthread_key_create(&mcacheKey, mcache_destroy) != 0)
        throw("pthread_key_create failed: cannot track thread exit");
}

mcache *mcache_peek(void)
{
    return mcache_tls;
}

static GM_COLD mcache *mcache_create(void)
{
    runtime_init();
    pthread_once(&mcacheKeyOnce, mcacheKeyInit);
    lock(&allmLock);
    mcache *c = fixalloc_alloc(&mcachealloc);
    if (c == NULL) {
        unlock(&allmLock);
        errno = ENOMEM;
        return NULL;
    }
    memset(c, 0, sizeof *c);
    c->allnext = allm;
    if (allm != NULL)
        allm->allprev = c;
    allm = c;
    unlock(&allmLock);
    // The destructor runs only for a non-NULL value, and only once per
    // setting: a thread that allocates again from another destructor gets a
    // new cache and a new call.
    pthread_setspecific(mcacheKey, c);
    mcache_tls = c;
    return c;
}

mcache *getmcache(void)
{
    mcache *c = mcache_tls;
    if (GM_LIKELY(c != NULL))
        return c;
    return mcache_create();
}

void mcache_sumcounters(gm_memstats *out)
{
    lock(&allmLock);
    for (mcache *c = allm; c != NULL; c = c->allnext)
        for (int o = 0; o < NumStackOrders; o++)
            out->stack_order[o].cached += atomic_load_explicit(&c->stackcacheBytes[o], memory_order_relaxed);
    unlock(&allmLock);
}

void gm_thread_flush(void)
{
    mcache *c = mcache_tls;
    if (c != NULL)
        stackcache_clear(c);
}

// fork: the child must find every lock free and every structure consistent.
// Take all locks in rank order before fork, release them after.
static void atfork_prepare(void)
{
    // A thread may be half-way through runtime_init when another forks; the
    // child would wait forever for it to finish. Finish it here first.
    runtime_init();
    stack_atfork_prepare();
    lock(&mheap_.lock);
    lock(&allmLock);
    persistent_atfork_prepare();
}

static void atfork_parent(void)
{
    persistent_atfork_parent();
    unlock(&allmLock);
    unlock(&mheap_.lock);
    stack_atfork_parent();
}

static void atfork_child(void)
{
    // Only the forking thread survives. Other threads' caches stay on allm
    // (their stacks are simply kept cached there; their counters still add up).
    persistent_atfork_child();
    lock_reinit_child(&allmLock);
    lock_reinit_child(&mheap_.lock);
    stack_atfork_child();
}

__attribute__((constructor)) static void mcache_register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}
