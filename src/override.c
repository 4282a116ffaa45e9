// SPDX-License-Identifier: MIT
//
// The drop-in malloc (no Go counterpart): the C library's allocation entry
// points, exported from libgomem.so (LD_PRELOAD=build/libgomem.so, or -lgomem)
// and from libgomem.a, each a thin wrapper over the gm_ function of the same
// contract in malloc.c. glibc routes its own internal allocations (strdup,
// stdio buffers, the dynamic loader after startup) through these symbols,
// and libstdc++'s operator new/delete call malloc/free, so C++ works too.
//
// Safe from the first call: a thread's cache is created on its first malloc
// (runtime_init reads GOMEM_* with getenv only; no allocation happens on
// the way), free never creates a cache (frees during thread teardown, after
// our key destructor ran, take the remote path), and nothing here calls
// dlsym or anything that could allocate.
//
// Not built into sanitizer builds: ASan and TSan bring their own malloc.
#include "runtime.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GM_NO_OVERRIDE 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GM_NO_OVERRIDE 1
#endif

#ifndef GM_NO_OVERRIDE

#define GM_EXPORT __attribute__((visibility("default")))

// C23's, which this glibc's headers may not declare yet.
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);

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
    const char *v = getenv("GOMEM_STATS");
    if (v != NULL && *v != 0 && strcmp(v, "0") != 0) {
        statsFd = fcntl(2, F_DUPFD_CLOEXEC, 3);
        if (statsFd >= 0)
            atexit(print_stats_at_exit);
    }
}
