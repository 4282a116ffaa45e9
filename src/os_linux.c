// SPDX-License-Identifier: MIT
//
// The OS layer on Linux: mmap, mprotect, madvise, mremap, and the futex
// that plain threads sleep on in the sync types. See os.h for the states a
// range moves through. This file only makes system calls and counts them; it
// keeps no state besides the counters and the fault-injection thresholds
// (both atomic, so any thread may call in), and the C unwinder it finds for
// the profilers (os_unwinder).
//
// Go's counterpart is mem_linux.go (sysReserve, sysMap, sysUnused, sysFault),
// and os_linux.go for futexsleep and futexwakeup.
// Unlike Go, os_decommit uses MADV_DONTNEED, not MADV_FREE: RSS then drops at
// once, which is what users watching top expect (Go made the same switch in
// 1.16 with GODEBUG=madvdontneed=1 as the default).
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h> // glibc 2.32 and later
#define GM_HAVE_SINGLE_THREADED 1
#endif

static _Atomic uint64_t os_ncalls[OS_FAULT_NKINDS];   // atomic
static _Atomic uint64_t os_fault_nth[OS_FAULT_NKINDS]; // atomic; 0 = off
static _Atomic int os_fault_env_read;                  // atomic

static void os_fault_read_env(void)
{
    static const char *const names[OS_FAULT_NKINDS] = {
        "GOMEM_FAULT_MMAP", "GOMEM_FAULT_MPROTECT", "GOMEM_FAULT_MADVISE", "GOMEM_FAULT_MREMAP",
    };
    for (int k = 0; k < OS_FAULT_NKINDS; k++) {
        const char *v = os_getenv(names[k]);
        if (v != NULL && *v != 0)
            atomic_store(&os_fault_nth[k], strtoull(v, NULL, 10));
    }
    atomic_store(&os_fault_env_read, 1);
}

// Counts one call of kind and says whether it must fail.
static int os_fault(enum os_fault_kind kind)
{
    if (!atomic_load_explicit(&os_fault_env_read, memory_order_acquire))
        os_fault_read_env();
    uint64_t n = atomic_fetch_add_explicit(&os_ncalls[kind], 1, memory_order_relaxed) + 1;
    uint64_t nth = atomic_load_explicit(&os_fault_nth[kind], memory_order_relaxed);
    if (nth != 0 && n >= nth) {
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

uint32_t os_coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

bool os_single_threaded(void)
{
#ifdef GM_HAVE_SINGLE_THREADED
    return __libc_single_threaded != 0;
#else
    return false;
#endif
}

void os_fault_set(enum os_fault_kind kind, uint64_t nth)
{
    if (!atomic_load(&os_fault_env_read))
        os_fault_read_env();
    // Count from now: "the nth call after this one".
    uint64_t base = nth ? atomic_load(&os_ncalls[kind]) : 0;
    atomic_store(&os_fault_nth[kind], nth ? base + nth : 0);
}

uint64_t os_calls(enum os_fault_kind kind)
{
    return atomic_load_explicit(&os_ncalls[kind], memory_order_relaxed);
}

const char *os_getenv(const char *name)
{
    // AT_SECURE: the kernel's word that this exec raised privileges.
    if (getauxval(AT_SECURE) != 0)
        return NULL;
    return getenv(name);
}

static _Atomic size_t physPageSize; // atomic; 0 until first asked

size_t os_physpagesize(void)
{
    size_t n = atomic_load_explicit(&physPageSize, memory_order_relaxed);
    if (n == 0) {
        long v = sysconf(_SC_PAGESIZE);
        n = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&physPageSize, n, memory_order_relaxed);
    }
    return n;
}

void os_setphyspagesize(size_t n)
{
    atomic_store_explicit(&physPageSize, n, memory_order_relaxed);
}

void *os_reserve(size_t nbytes, size_t align)
{
    if (os_fault(OS_FAULT_MMAP))
        return NULL;
    if (nbytes + align < nbytes) {
        errno = ENOMEM;
        return NULL;
    }
    // Over-reserve by align, then trim both ends so the result is aligned.
    size_t want = nbytes + align;
    char *p = mmap(NULL, want, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t base = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = base - (uintptr_t)p;
    size_t tail = want - head - nbytes;
    if (head != 0)
        munmap(p, head);
    if (tail != 0)
        munmap((char *)base + nbytes, tail);
    return (void *)base;
}

// Whether [p, p+nbytes) is whole OS pages: what mprotect and madvise's
// guards need (they would round the length up and cover a neighbour).
static bool wholePages(const void *p, size_t nbytes)
{
    return (((uintptr_t)p | nbytes) & (os_physpagesize() - 1)) == 0;
}

int os_commit(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MPROTECT))
        return -1;
    if (!wholePages(p, nbytes)) {
        errno = EINVAL;
        return -1;
    }
    if (mprotect(p, nbytes, PROT_READ | PROT_WRITE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

// Zeroes [lo, hi) where it is not zero already: a page never written (or
// released) is only read, so it is not made resident. Not checked by
// AddressSanitizer: the heap poisons a span before releasing it.
__attribute__((no_sanitize("address"))) static void zeroIfNot(uintptr_t lo, uintptr_t hi)
{
    for (; lo < hi && (lo & 7) != 0; lo++)
        if (*(unsigned char *)lo != 0)
            *(unsigned char *)lo = 0;
    for (; lo + 8 <= hi; lo += 8)
        if (*(uint64_t *)lo != 0)
            *(uint64_t *)lo = 0;
    for (; lo < hi; lo++)
        if (*(unsigned char *)lo != 0)
            *(unsigned char *)lo = 0;
}

int os_decommit(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MADVISE))
        return -1;
    // madvise takes whole OS pages, and rounds the length up: on a 16 or
    // 64 KiB page kernel it would discard the rest of the last page, which
    // may belong to a span in use. The pages wholly inside go back; the
    // bytes of partial pages at either end are zeroed in place.
    size_t page = os_physpagesize();
    uintptr_t lo = (uintptr_t)p, hi = lo + nbytes;
    uintptr_t inLo = (lo + page - 1) & ~(uintptr_t)(page - 1), inHi = hi & ~(uintptr_t)(page - 1);
    if (inLo < inHi && madvise((void *)inLo, inHi - inLo, MADV_DONTNEED) != 0)
        return -1;
    if (inLo >= inHi) {
        zeroIfNot(lo, hi);
    } else {
        zeroIfNot(lo, inLo);
        zeroIfNot(inHi, hi);
    }
    return 0;
}


int os_protect_none(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MPROTECT))
        return -1;
    if (!wholePages(p, nbytes)) {
        errno = EINVAL;
        return -1;
    }
    if (mprotect(p, nbytes, PROT_NONE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
// vm.max_map_count, or the kernel's default where it cannot be read.
static long maxMapCount(void)
{
    char buf[32];
    long max = 65530; // DEFAULT_MAX_MAP_COUNT
    int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t k = read(fd, buf, sizeof buf - 1);
        if (k > 0) {
            buf[k] = 0;
            long v = strtol(buf, NULL, 10);
            if (v > 0)
                max = v;
        }
        close(fd);
    }
    return max;
}

// 0 not known yet, 1 no guard regions (an older kernel), 2 they work.
static _Atomic int guardRegions;
// Without guard regions: the mprotect guards standing, and how many may
// (a quarter of vm.max_map_count: each costs two mappings, so half of
// them stay the program's).
static atomic_long guardsMapped, guardBudget;

// Whether MADV_GUARD_INSTALL really guards: a kernel that lacks it refuses
// it (EINVAL), but qemu-user (7.2) returns success for advice it does not
// know and installs nothing. A write(2) from a guarded page fails with
// EFAULT; from an unguarded one it succeeds.
static int probeGuardRegions(void)
{
    size_t page = os_physpagesize();
    int works = 0, fds[2];
    char *m = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED && madvise(m, page, MADV_GUARD_INSTALL) == 0 && pipe2(fds, O_CLOEXEC) == 0) {
        works = write(fds[1], m, 1) < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    }
    if (m != MAP_FAILED)
        munmap(m, page);
    return works ? 2 : 1;
}

static int guardKind(void)
{
    int g = atomic_load_explicit(&guardRegions, memory_order_acquire);
    if (g == 0) {
        atomic_store_explicit(&guardBudget, maxMapCount() / 4, memory_order_relaxed);
        g = probeGuardRegions();
        atomic_store_explicit(&guardRegions, g, memory_order_release); // after the budget
    }
    return g;
}

bool os_guard_regions(void)
{
    return guardKind() == 2;
}

int os_guard(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MPROTECT))
        return -1;
    if (!wholePages(p, nbytes)) {
        errno = EINVAL;
        return -1;
    }
    if (guardKind() == 2) {
        if (madvise(p, nbytes, MADV_GUARD_INSTALL) == 0)
            return 0;
        errno = ENOMEM;
        return -1;
    }
    // Each mprotect guard splits a mapping in three: past the budget the
    // caller falls back (the canary) before the mappings run out for
    // everyone else.
    long budget = atomic_load_explicit(&guardBudget, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&guardsMapped, 1, memory_order_relaxed) >= budget ||
        mprotect(p, nbytes, PROT_NONE) != 0) {
        atomic_fetch_sub_explicit(&guardsMapped, 1, memory_order_relaxed);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int os_unguard(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MPROTECT))
        return -1;
    if (!wholePages(p, nbytes)) {
        errno = EINVAL;
        return -1;
    }
    // os_guard chose one kind for the process: MADV_GUARD_REMOVE where
    // guard regions work (harmless on a page without one), else mprotect.
    if (atomic_load_explicit(&guardRegions, memory_order_relaxed) == 2 && madvise(p, nbytes, MADV_GUARD_REMOVE) == 0)
        return 0;
    if (mprotect(p, nbytes, PROT_READ | PROT_WRITE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (atomic_load_explicit(&guardRegions, memory_order_relaxed) != 2) // an mprotect guard it counted
        atomic_fetch_sub_explicit(&guardsMapped, 1, memory_order_relaxed);
    return 0;
}

// The kernel refused MREMAP_DONTUNMAP once (before 5.7), or a release of
// the range it leaves behind does not read as zero (probeMoveRelease).
static _Atomic int noMoveDontunmap;
static _Atomic int moveProbed;

// A range MREMAP_DONTUNMAP left behind must still be released by
// MADV_DONTNEED (os_decommit), as the heap releases it again once reused:
// under qemu-user (7.2) such a range loses its anonymous-memory mark, and
// a later MADV_DONTNEED over it succeeds without doing anything, so pages
// counted as zero would keep old data (calloc would hand it out). Tried
// once, on two fresh pages; false where it does not hold.
static bool probeMoveRelease(void)
{
    size_t page = os_physpagesize();
    bool ok = false;
    char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return true; // nothing learnt; the real move will tell
    m[0] = 1;
    if (mremap(m, page, page, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, m + page) != MAP_FAILED) {
        *(volatile char *)m = 2;
        ok = madvise(m, page, MADV_DONTNEED) == 0 && *(volatile char *)m == 0;
    } else {
        ok = true; // refused: the real call gets the same answer and handles it
    }
    munmap(m, 2 * page);
    return ok;
}

int os_move_pages(void *from, void *to, size_t nbytes)
{
    if (!atomic_load_explicit(&moveProbed, memory_order_acquire)) {
        if (!probeMoveRelease())
            atomic_store_explicit(&noMoveDontunmap, 1, memory_order_relaxed);
        atomic_store_explicit(&moveProbed, 1, memory_order_release);
    }
    if (atomic_load_explicit(&noMoveDontunmap, memory_order_relaxed)) {
        errno = ENOSYS;
        return -1;
    }
    // mremap moves whole OS pages: on a 16 or 64 KiB page kernel a range
    // of gomem pages may not be (to is left as it was).
    if (!wholePages(from, nbytes) || !wholePages(to, 0)) {
        errno = EINVAL;
        return -1;
    }
    void *r;
    if (os_fault(OS_FAULT_MREMAP)) {
        // Fail as a kernel may: MREMAP_FIXED unmaps the destination first,
        // and a later check (a source spanning two mappings before 6.17,
        // RLIMIT_AS, vm.max_map_count) fails after that.
        munmap(to, nbytes);
        r = MAP_FAILED;
    } else {
        r = mremap(from, nbytes, nbytes, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
        if (r != MAP_FAILED)
            return 0;
        if (errno == EINVAL) // unknown flag: refused before anything was unmapped
            atomic_store_explicit(&noMoveDontunmap, 1, memory_order_relaxed);
    }
    int err = errno;
    // The destination's contents do not matter: map it afresh, whatever
    // state the failure left it in (a fresh mapping may also merge with its
    // neighbours). Counts and fails as OS_FAULT_MMAP.
    if (os_fault(OS_FAULT_MMAP) ||
        mmap(to, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) ==
            MAP_FAILED) {
        errno = ENOMEM;
        return -2;
    }
    errno = err;
    return -1;
}

long os_count_mappings(long *max)
{
    char buf[4096];
    ssize_t k;
    *max = maxMapCount();
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long n = 0;
    while ((k = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < k; i++)
            n += buf[i] == '\n';
    close(fd);
    return k < 0 ? -1 : n;
}

void os_release(void *p, size_t nbytes)
{
    munmap(p, nbytes);
}

void *os_alloc_meta(size_t nbytes)
{
    if (os_fault(OS_FAULT_MMAP))
        return NULL;
    void *p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

uint64_t os_rss(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    unsigned long long size = 0, rss = 0;
    if (sscanf(buf, "%llu %llu", &size, &rss) != 2)
        return 0;
    return rss * (uint64_t)os_physpagesize();
}

// The futex operations (linux/futex.h, which musl-gcc's include path does
// not reach): FUTEX_WAIT 0 and FUTEX_WAKE 1, private to this process (128).
#define FutexWaitPrivate (0 | 128)
#define FutexWakePrivate (1 | 128)

void os_futexsleep(uint32_t *addr, uint32_t val, int64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) }; // relative
    // EAGAIN, EINTR, ETIMEDOUT: the caller checks
    syscall(SYS_futex, addr, FutexWaitPrivate, val, ns < 0 ? NULL : &ts, NULL, 0);
}

void os_futexwakeup(uint32_t *addr, int n)
{
    syscall(SYS_futex, addr, FutexWakePrivate, n, NULL, NULL, 0);
}

// ----------------------------------------------------------------- fork

#ifdef __GLIBC__
// glibc's pthread_atfork is a wrapper that every caller links in from
// libc_nonshared.a, and the link puts it at the end of the library's text,
// away from the start-up path that calls it (tools/hottext.sh: each 64 KiB
// of text touched is resident). This is all it does.
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
extern void *__dso_handle;
#endif

int os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
#ifdef __GLIBC__
    return __register_atfork(prepare, parent, child, __dso_handle);
#else
    return pthread_atfork(prepare, parent, child);
#endif
}

// --------------------------------------------------------------- unwinder
// libgcc's unwinder, which only the profilers use (mprof.c says why it and
// not frame pointers). With glibc the shared libraries find it when a
// profile starts rather than link it: as a dependency of libgomem.so,
// libgcc_s would cost every process that loads gomem about 90 KiB of
// resident memory and its load at start, profiling or not. Weak references find it
// when the program brings it itself (a C++ program); otherwise dlopen
// loads it. The installed archives (GM_ARCHIVE: the Makefile) and musl's
// links, which take libgcc_eh statically, reference it plainly.
#if defined(__GLIBC__) && !defined(GM_ARCHIVE)
#include <dlfcn.h>
extern _Unwind_Reason_Code _Unwind_Backtrace(_Unwind_Trace_Fn, void *) __attribute__((weak));
extern _Unwind_Ptr _Unwind_GetIP(struct _Unwind_Context *) __attribute__((weak));
extern _Unwind_Ptr _Unwind_GetRegionStart(struct _Unwind_Context *) __attribute__((weak));
#endif

static osUnwinder unwinder;         // written once, before unwinderState becomes 2
static _Atomic int unwinderState;   // 0: not looked for; 1: being looked for; 2: unwinder is final

static void unwinderFind(osUnwinder *u)
{
    *u = (osUnwinder){ _Unwind_Backtrace, _Unwind_GetIP, _Unwind_GetRegionStart };
#if defined(__GLIBC__) && !defined(GM_ARCHIVE)
    if (u->backtrace == NULL || u->getIP == NULL || u->getRegionStart == NULL) {
        void *h = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
        void *b = h ? dlsym(h, "_Unwind_Backtrace") : NULL, *ip = h ? dlsym(h, "_Unwind_GetIP") : NULL,
             *rs = h ? dlsym(h, "_Unwind_GetRegionStart") : NULL;
        // POSIX's way from dlsym's object pointer to a function pointer.
        memcpy(&u->backtrace, &b, sizeof b);
        memcpy(&u->getIP, &ip, sizeof ip);
        memcpy(&u->getRegionStart, &rs, sizeof rs);
    }
#endif
}

const osUnwinder *os_unwinder(void)
{
    int st = 0;
    if (atomic_compare_exchange_strong_explicit(&unwinderState, &st, 1, memory_order_acquire,
                                                memory_order_acquire)) {
        osUnwinder u;
        unwinderFind(&u);
        if (u.backtrace != NULL && u.getIP != NULL && u.getRegionStart != NULL)
            unwinder = u;
        atomic_store_explicit(&unwinderState, 2, memory_order_release);
    } else {
        while (atomic_load_explicit(&unwinderState, memory_order_acquire) != 2)
            sched_yield(); // another thread is loading it: a one-time wait
    }
    return unwinder.backtrace != NULL ? &unwinder : NULL;
}

const osUnwinder *os_unwinderLoaded(void)
{
    if (atomic_load_explicit(&unwinderState, memory_order_acquire) != 2)
        return NULL;
    return unwinder.backtrace != NULL ? &unwinder : NULL;
}

#if !defined(__GLIBC__)
// musl: the host's libgcc_eh (built for glibc 2.35+), whose unwinder the
// heap profiler uses, finds a pc's unwind tables with glibc's
// _dl_find_object, and aborts when none is found for its own frame. This
// one answers as glibc's does, from dl_iterate_phdr (which musl has): the
// loaded object holding pc, its mapping's bounds and its PT_GNU_EH_FRAME
// segment (.eh_frame_hdr). The struct is glibc's on x86-64 and AArch64
// (neither has the dbase or count fields). Default visibility: the
// installed archives localize hidden symbols, and libgcc_eh is linked
// after them.
#include <link.h>

struct dl_find_object {
    unsigned long long dlfo_flags;
    void *dlfo_map_start, *dlfo_map_end;
    void *dlfo_link_map;
    void *dlfo_eh_frame;
    unsigned long long dlfo_reserved[7];
};

typedef struct {
    uintptr_t pc;
    struct dl_find_object *out;
} findObject;

static int findObjectIn(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    findObject *f = arg;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    void *eh = NULL;
    bool holds = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD) {
            lo = start < lo ? start : lo;
            hi = start + ph->p_memsz > hi ? start + ph->p_memsz : hi;
            holds |= f->pc >= start && f->pc - start < ph->p_memsz;
        } else if (ph->p_type == PT_GNU_EH_FRAME) {
            eh = (void *)start;
        }
    }
    if (!holds)
        return 0;
    memset(f->out, 0, sizeof *f->out);
    f->out->dlfo_map_start = (void *)lo;
    f->out->dlfo_map_end = (void *)hi;
    f->out->dlfo_eh_frame = eh;
    return 1;
}

int _dl_find_object(void *pc, struct dl_find_object *result);
__attribute__((visibility("default"))) int _dl_find_object(void *pc, struct dl_find_object *result)
{
    findObject f = { (uintptr_t)pc, result };
    result->dlfo_eh_frame = NULL;
    return dl_iterate_phdr(findObjectIn, &f) == 1 && result->dlfo_eh_frame != NULL ? 0 : -1;
}
#endif
