// SPDX-License-Identifier: MIT
//
// The drop-in malloc (no Go counterpart): the C library's allocation entry
// points, exported from libgomem.so (LD_PRELOAD=build/libgomem.so, or -lgomem)
// and from libgomem.a, each a thin wrapper over the gm_ function of the same
// contract (malloc.c, free.c, realloc.c). glibc routes its own internal allocations (strdup,
// stdio buffers, the dynamic loader after startup) through these symbols,
// and libstdc++'s operator new/delete call malloc/free, so C++ works too.
//
// Safe from the first call: a thread's cache is created on its first malloc
// (runtime_init reads GOMEM_* with os_getenv only; no allocation happens on
// the way), free never creates a cache (frees during thread teardown, after
// our key destructor ran, take the remote path), and nothing here calls
// dlsym or anything that could allocate.
//
// Not built into sanitizer builds: ASan and TSan bring their own malloc.
#include "runtime.h"
#include "mprof.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

// The sanitizers replace malloc themselves (track.h says which runs).
#if defined(GM_ASAN) || defined(GM_TSAN)
#define GM_NO_OVERRIDE 1
#endif

#ifndef GM_NO_OVERRIDE

#define GM_EXPORT __attribute__((visibility("default")))

// C23's, which this glibc's headers may not declare yet.
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);
// glibc's, which musl's headers do not declare (exported all the same).
void *pvalloc(size_t n);

GM_EXPORT void *malloc(size_t n)
{
    return gm_malloc(n);
}

GM_EXPORT void free(void *p)
{
    gm_free(p);
}

GM_EXPORT void *calloc(size_t n, size_t size)
{
    return gm_calloc(n, size);
}

GM_EXPORT void *realloc(void *p, size_t n)
{
    return gm_realloc(p, n);
}

GM_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    return gm_reallocarray(p, n, size);
}

GM_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    return gm_aligned_alloc(align, n);
}

GM_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    return gm_posix_memalign(out, align, n);
}

GM_EXPORT void *memalign(size_t align, size_t n)
{
    return gm_memalign(align, n);
}

static size_t os_page(void)
{
    static size_t page;
    if (page == 0)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

GM_EXPORT void *valloc(size_t n)
{
    return gm_aligned_alloc(os_page(), n);
}

GM_EXPORT void *pvalloc(size_t n)
{
    size_t page = os_page();
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return gm_aligned_alloc(page, n == 0 ? page : (n + page - 1) & ~(page - 1));
}

// The functions above that an allocation passes through: the heap
// profiler cuts them off the stacks it records (mprof.c).
const void *const override_allocFrames[] = {
    (const void *)malloc, (const void *)calloc, (const void *)realloc, (const void *)reallocarray,
    (const void *)aligned_alloc, (const void *)posix_memalign, (const void *)memalign, (const void *)valloc,
    (const void *)pvalloc, NULL,
};

GM_EXPORT size_t malloc_usable_size(void *p)
{
    return gm_malloc_usable_size(p);
}

GM_EXPORT void free_sized(void *p, size_t size)
{
    gm_free_sized(p, size);
}

GM_EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
    gm_free_aligned_sized(p, align, size);
}

#ifdef __GLIBC__
// glibc's extensions that report on or trim the heap. Without them a
// program calling mallinfo2 or malloc_trim under LD_PRELOAD would read or
// trim glibc's idle arena, not the heap its objects live in. The mallinfo
// fields keep glibc's meanings and identities: large objects (over 32 KiB,
// whole pages: what glibc would mmap) are the "mmapped" blocks; the rest of
// the resident heap is the "arena", uordblks of it in use, fordblks free;
// keepcost is what malloc_trim would give back.
// Large objects live: glibc's "mmapped" blocks.
static uint64_t largeObjects(const gm_memstats *m)
{
    return m->by_size[0].mallocs - m->by_size[0].frees;
}

static void heapInfo(struct mallinfo2 *mi)
{
    gm_memstats m;
    gm_stats(&m);
    uint64_t resident = m.heap_sys - m.heap_released;
    uint64_t large = m.large_inuse < resident ? m.large_inuse : resident;
    uint64_t small = m.heap_alloc > large ? m.heap_alloc - large : 0;
    memset(mi, 0, sizeof *mi);
    mi->arena = resident - large;
    mi->uordblks = small < mi->arena ? small : mi->arena;
    mi->fordblks = mi->arena - mi->uordblks;
    mi->ordblks = m.nspan_free;
    mi->hblks = largeObjects(&m);
    mi->hblkhd = large;
    mi->keepcost = m.heap_idle - m.heap_released;
}

GM_EXPORT struct mallinfo2 mallinfo2(void)
{
    struct mallinfo2 mi;
    heapInfo(&mi);
    return mi;
}

static int clampInt(size_t v)
{
    return v > INT_MAX ? INT_MAX : (int)v; // glibc wraps; a saturated figure misleads less
}

GM_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 w;
    heapInfo(&w);
    struct mallinfo mi = {
        .arena = clampInt(w.arena), .ordblks = clampInt(w.ordblks), .smblks = clampInt(w.smblks),
        .hblks = clampInt(w.hblks), .hblkhd = clampInt(w.hblkhd), .usmblks = clampInt(w.usmblks),
        .fsmblks = clampInt(w.fsmblks), .uordblks = clampInt(w.uordblks), .fordblks = clampInt(w.fordblks),
        .keepcost = clampInt(w.keepcost),
    };
    return mi;
}

// glibc keeps pad bytes at the top of its heap; gomem's free pages have no
// top, so all of them go back (the calling thread's cached spans first).
// 1 if any memory went back, as glibc.
GM_EXPORT int malloc_trim(size_t pad)
{
    (void)pad;
    return gm_scavenge() > 0;
}

// glibc's layout of the summary on stderr, with gomem's figures.
GM_EXPORT void malloc_stats(void)
{
    gm_memstats m;
    gm_stats(&m);
    fprintf(stderr,
            "gomem %s\n"
            "system bytes     = %10llu (resident or committed)\n"
            "in use bytes     = %10llu\n"
            "heap objects     = %10llu\n"
            "free bytes       = %10llu (released to the OS: %llu)\n"
            "large objects    = %10llu (%llu bytes)\n",
            gm_version(), (unsigned long long)(m.sys - m.heap_released), (unsigned long long)m.heap_alloc,
            (unsigned long long)m.heap_objects, (unsigned long long)m.heap_idle,
            (unsigned long long)m.heap_released, (unsigned long long)largeObjects(&m),
            (unsigned long long)m.large_inuse);
}

// glibc's XML, with the totals tools read (no per-size lists, no peak:
// gomem does not keep one); options must be 0, as glibc's.
GM_EXPORT int malloc_info(int options, FILE *f)
{
    if (options != 0 || f == NULL) {
        errno = EINVAL;
        return -1;
    }
    gm_memstats m;
    gm_stats(&m);
    fprintf(f,
            "<malloc version=\"1\" allocator=\"gomem %s\">\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
            "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n"
            "<system type=\"current\" size=\"%llu\"/>\n"
            "<aspace type=\"total\" size=\"%llu\"/>\n"
            "</malloc>\n",
            gm_version(), (unsigned long long)m.nspan_free, (unsigned long long)(m.heap_idle - m.heap_released),
            (unsigned long long)largeObjects(&m), (unsigned long long)m.large_inuse,
            (unsigned long long)(m.sys - m.heap_released),
            (unsigned long long)m.arena_reserved);
    return ferror(f) ? -1 : 0;
}

#endif // __GLIBC__

// mallopt is not replaced: glibc's tunes its own, idle, allocator and
// returns 1, as under jemalloc or mimalloc; gomem's knobs are GOMEM_*.
// glibc's __libc_malloc & co. are left alone: they stay glibc's own
// allocator (bench/stack compares against it through them).

#endif // GM_NO_OVERRIDE

// GOMEM_STATS=1: statistics as JSON on stderr at exit. Written to a copy
// of fd 2 taken at start: programs (coreutils) close stderr in their own
// exit handlers, which run before ours.
static int statsFd = -1;

static void print_stats_at_exit(void)
{
    FILE *f = fdopen(statsFd, "w");
    if (f == NULL)
        return;
    fputs("gomem stats:\n", f);
    gm_stats_json(f);
    fclose(f);
}

__attribute__((constructor)) static void override_init(void)
{
    const char *v = os_getenv("GOMEM_STATS");
    if (v != NULL && *v != 0 && strcmp(v, "0") != 0) {
        statsFd = fcntl(2, F_DUPFD_CLOEXEC, 3);
        if (statsFd >= 0)
            atexit(print_stats_at_exit);
    }
}
