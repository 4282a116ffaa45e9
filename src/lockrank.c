// SPDX-License-Identifier: MIT
//
// Locks and their ranks (Go: lock_futex.go and lockrank.go).
//
// A gomem lock is a pthread mutex plus a rank. The ranks, in the order they
// must be taken, are listed once in runtime.h (enum lockRank). With
// GM_DEBUG >= 1 every thread keeps the stack of ranks it holds and lock()
// throws if a lock is taken out of order, so a deadlock-prone path shows up
// in the first test that takes it, not in the field.
//
// Differences from Go: no futex of our own (glibc's mutex already spins
// briefly and then futex-waits); no static lock-partial-order table, only a
// total order, which is enough for the few locks gomem has.
#include "runtime.h"

#include <sched.h>
#include <string.h>

#if GM_DEBUG >= 1
#define MaxHeldLocks 128 // the fork handler holds every lock: ~80
static __thread enum lockRank heldRanks[MaxHeldLocks] __attribute__((tls_model("initial-exec"))); // owner thread only
static __thread int nheld __attribute__((tls_model("initial-exec")));                          // owner thread only
#endif

void lock(mutex *l)
{
#if GM_DEBUG >= 1
    // Equal ranks are allowed: the per-order stackpool locks share one rank
    // and are only ever nested all together, in order, by the fork handler.
    if (nheld > 0 && heldRanks[nheld - 1] > l->rank)
        throw("lock ordering problem: taking rank %d while holding rank %d",
              (int)l->rank, (int)heldRanks[nheld - 1]);
    if (nheld == MaxHeldLocks)
        throw("too many locks held");
    heldRanks[nheld++] = l->rank;
#endif
    int err = pthread_mutex_lock(&l->m);
    if (err != 0)
        throw("pthread_mutex_lock: %s", strerror(err));
}

void unlock(mutex *l)
{
#if GM_DEBUG >= 1
    if (nheld == 0)
        throw("unlock of unlocked lock (rank %d)", (int)l->rank);
    // Locks are normally released in reverse order; allow any order.
    for (int i = nheld - 1; i >= 0; i--) {
        if (heldRanks[i] == l->rank) {
            memmove(&heldRanks[i], &heldRanks[i + 1], (size_t)(nheld - 1 - i) * sizeof heldRanks[0]);
            nheld--;
            break;
        }
    }
#endif
    int err = pthread_mutex_unlock(&l->m);
    if (err != 0)
        throw("pthread_mutex_unlock: %s", strerror(err));
}

void lock_reinit_child(mutex *l)
{
    // The fork handler took every lock on the forking thread, which is the
    // child's only thread: it still owns them and simply releases them.
    // (Re-initialising a held mutex would leave ThreadSanitizer believing
    // it is still held, and reports every later lock as a double lock.)
    unlock(l);
}

void spin_lock_slow(int *l)
{
    for (int spins = 0;; spins++) {
        if (__atomic_load_n(l, __ATOMIC_RELAXED) == 0 && !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
            return;
        if (spins < 64)
            cpu_relax();
        else
            sched_yield();
    }
}
