// SPDX-License-Identifier: MIT
//
// Memory statistics (Go: mstats.go): gm_stats, gm_stats_json, and the
// public scavenge entry point.
//
// A snapshot is assembled from three places: mheap_ counters (under
// mheap_.lock), the stack pools (under their locks) and the per-thread
// counters (relaxed loads under allmLock). Each part is consistent on its
// own; across parts the snapshot is exact only when no other thread is
// allocating, which is when the identities in gomem.h are checked by tests.
#include "runtime2.h"
#include "malloc.h"

#include <string.h>

int gm_stats(gm_memstats *out)
{
    if (out == NULL) {
        errno = EINVAL;
        return -1;
    }
    runtime_init();
    memset(out, 0, sizeof *out);
    lock(&mheap_.lock);
    out->heap_inuse = (uint64_t)mheap_.pagesInUse << PageShift;
    out->heap_idle = (uint64_t)mheap_.pagesFree << PageShift;
    out->heap_released = (uint64_t)mheap_.pagesReleased << PageShift;
    out->stack_inuse = (uint64_t)mheap_.pagesManual << PageShift;
    out->nspan_inuse = mheap_.nspanInUse;
    out->nspan_manual = mheap_.nspanManual;
    out->nspan_free = mheap_.nspanFree;
    out->arena_reserved = mheap_.arenaReserved;
    out->scavenged_bytes = mheap_.scavengedBytes;
    out->scavenge_retain = mheap_.scavengeOff ? 0 : mheap_.scavengeRetain;
    unlock(&mheap_.lock);
    out->heap_sys = out->heap_inuse + out->heap_idle;
    out->meta_sys = __atomic_load_n(&persistentSys, __ATOMIC_RELAXED);
    out->sys = out->heap_sys + out->stack_inuse + out->meta_sys;
    out->mmap_calls = os_calls(OS_FAULT_MMAP);
    out->mprotect_calls = os_calls(OS_FAULT_MPROTECT);
    out->madvise_calls = os_calls(OS_FAULT_MADVISE);
    out->mremap_calls = os_calls(OS_FAULT_MREMAP);
    stack_stats(out);
    dedicated_stats(out);
    mcache_sumcounters(out);
    malloc_sumcounters(out);
    mcentral_stats(out);
    for (int i = 0; i < GM_SIZE_CLASSES; i++) {
        out->by_size[i].size = class_to_size[i];
        out->mallocs += out->by_size[i].mallocs;
        out->frees += out->by_size[i].frees;
        if (i > 0)
            out->heap_alloc += (uint64_t)class_to_size[i] * (out->by_size[i].mallocs - out->by_size[i].frees);
    }
    out->heap_alloc += out->large_inuse + out->tiny_block_bytes;
    out->mallocs += out->tiny_allocs;
    out->frees += out->tiny_frees;
    out->heap_objects = out->mallocs - out->frees;
    out->max_tiny_size = gm_get_max_tiny_size();
    proc_stats(out);
    for (uint64_t o = 0; o < out->stack_orders; o++) {
        // stack_stats counted cached stacks as out of the pool; they are not
        // in a caller's hands. (Clamped: other threads may move stacks
        // between the two reads.)
        uint64_t cached = out->stack_order[o].cached;
        out->stack_order[o].inuse = out->stack_order[o].inuse > cached ? out->stack_order[o].inuse - cached : 0;
    }
    return 0;
}

int gm_stats_json(FILE *f)
{
    gm_memstats s;
    if (f == NULL) {
        errno = EINVAL;
        return -1;
    }
    gm_stats(&s);
    fprintf(f, "{\n");
#define F(name) fprintf(f, "  \"%s\": %llu,\n", #name, (unsigned long long)s.name)
    F(sys); F(heap_sys); F(heap_inuse); F(heap_idle); F(heap_released);
    F(stack_inuse); F(meta_sys); F(arena_reserved);
    F(nspan_inuse); F(nspan_manual); F(nspan_free);
    F(mmap_calls); F(mprotect_calls); F(madvise_calls); F(mremap_calls);
    F(scavenged_bytes); F(scavenge_retain);
    F(stack_fixed); F(stack_orders);
    F(stack_large_inuse); F(stack_large_cached);
    F(heap_alloc); F(heap_objects); F(mallocs); F(frees); F(large_inuse);
    F(realloc_moves); F(realloc_moved_bytes);
    F(nspan_partial); F(nspan_full);
    F(coro_created); F(coro_ended); F(coro_stack_grows); F(coro_stack_shrinks); F(coro_saved_bytes);
    F(coro_running); F(coro_runnable); F(coro_waiting); F(coro_exec_stacks); F(coro_frame_saves); F(coro_pins);
    F(sched_steals); F(sched_steals_started); F(sched_long_runs); F(sched_handoffs); F(sched_ready_moves);
    F(sched_stack_lends);
    F(dedicated_cached); F(dedicated_guards); F(dedicated_canaries);
    F(sched_busy_ns); F(sched_spin_ns); F(sched_idle_ns); F(sched_workers);
    F(max_tiny_size); F(tiny_allocs); F(tiny_frees); F(tiny_blocks); F(tiny_block_bytes); F(tiny_unpacked_bytes); F(tiny_hole_allocs);
#undef F
    fprintf(f, "  \"by_size\": [");
    for (int i = 0; i < GM_SIZE_CLASSES; i++)
        fprintf(f, "%s\n    {\"size\": %llu, \"mallocs\": %llu, \"frees\": %llu}", i ? "," : "",
                (unsigned long long)s.by_size[i].size, (unsigned long long)s.by_size[i].mallocs,
                (unsigned long long)s.by_size[i].frees);
    fprintf(f, "\n  ],\n");
    fprintf(f, "  \"stack_order\": [");
    for (uint64_t o = 0; o < s.stack_orders; o++)
        fprintf(f, "%s\n    {\"size\": %llu, \"inuse\": %llu, \"cached\": %llu, \"pooled\": %llu, \"nspans\": %llu}",
                o ? "," : "", (unsigned long long)s.stack_order[o].size,
                (unsigned long long)s.stack_order[o].inuse, (unsigned long long)s.stack_order[o].cached,
                (unsigned long long)s.stack_order[o].pooled, (unsigned long long)s.stack_order[o].nspans);
    fprintf(f, "\n  ],\n");
    fprintf(f, "  \"sched_worker\": [");
    for (uint64_t w = 0; w < s.sched_workers && w < GM_STATS_WORKERS; w++)
        fprintf(f, "%s\n    {\"worker\": %llu, \"busy_ns\": %llu, \"spin_ns\": %llu, \"idle_ns\": %llu}", w ? "," : "",
                (unsigned long long)s.sched_worker[w].worker, (unsigned long long)s.sched_worker[w].busy_ns,
                (unsigned long long)s.sched_worker[w].spin_ns, (unsigned long long)s.sched_worker[w].idle_ns);
    fprintf(f, "\n  ],\n");
    fprintf(f, "  \"coro_saved_by_order\": [");
    for (uint64_t o = 0; o <= s.stack_orders; o++)
        fprintf(f, "%s%llu", o ? ", " : "", (unsigned long long)s.coro_saved_by_order[o]);
    fprintf(f, "]\n}\n");
    return ferror(f) ? -1 : 0;
}

const char *gm_debug_check(void)
{
    runtime_init();
    const char *bad = mheap_valid();
    if (bad == NULL)
        bad = mcentral_valid();
    if (bad == NULL)
        bad = stackpool_valid();
    if (bad == NULL)
        bad = guardcache_valid();
    if (bad == NULL)
        bad = dedicated_valid(TLS(mcache_tls));
    if (bad == NULL && TLS(mcache_tls) != NULL)
        bad = mcache_valid(TLS(mcache_tls));
    if (bad == NULL && TLS(tworker) != NULL)
        bad = worker_valid(TLS(tworker));
    return bad;
}

size_t gm_scavenge(void)
{
    gm_thread_flush();
    malloc_flushGuardCache();
    stack_flushDedicated();
    stack_releaseExecCache();
    mcentral_reclaim(0);
    stackLarge_releaseAll();
    return mheap_scavenge(0);
}
