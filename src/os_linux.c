// SPDX-License-Identifier: MIT
//
// The OS layer on Linux: mmap, mprotect, madvise, mremap, and the futex
// that plain threads sleep on in the sync types. See os.h for the states a
// range moves through. This file only makes system calls and counts them; it
// keeps no state besides the counters and the fault-injection thresholds
// (both atomic, so any thread may call in).
//
// Go's counterpart is mem_linux.go (sysReserve, sysMap, sysUnused, sysFault),
// and os_linux.go for futexsleep and futexwakeup.
// Unlike Go, os_decommit uses MADV_DONTNEED, not MADV_FREE: RSS then drops at
// once, which is what users watching top expect (Go made the same switch in
// 1.16 with GODEBUG=madvdontneed=1 as the default).
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <linux/futex.h>
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

size_t os_physpagesize(void)
{
    static _Atomic size_t cached; // atomic; 0 until first asked
    size_t n = atomic_load_explicit(&cached, memory_order_relaxed);
    if (n == 0) {
        long v = sysconf(_SC_PAGESIZE);
        n = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&cached, n, memory_order_relaxed);
    }
    return n;
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

int os_commit(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MPROTECT))
        return -1;
    if (mprotect(p, nbytes, PROT_READ | PROT_WRITE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int os_decommit(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MADVISE))
        return -1;
    return madvise(p, nbytes, MADV_DONTNEED);
}

int os_protect_none(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MPROTECT))
        return -1;
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
static _Atomic int noGuardRegions; // the kernel refused MADV_GUARD_INSTALL once

int os_guard(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MPROTECT))
        return -1;
    if (!atomic_load_explicit(&noGuardRegions, memory_order_relaxed)) {
        if (madvise(p, nbytes, MADV_GUARD_INSTALL) == 0)
            return 0;
        if (errno != EINVAL) {
            errno = ENOMEM;
            return -1;
        }
        atomic_store_explicit(&noGuardRegions, 1, memory_order_relaxed); // older kernel
    }
    if (mprotect(p, nbytes, PROT_NONE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int os_unguard(void *p, size_t nbytes)
{
    if (os_fault(OS_FAULT_MPROTECT))
        return -1;
    // Either kind may be there: MADV_GUARD_REMOVE is harmless on a page
    // without a guard region, and mprotect opens one guarded by mprotect.
    if (!atomic_load_explicit(&noGuardRegions, memory_order_relaxed) && madvise(p, nbytes, MADV_GUARD_REMOVE) == 0)
        return 0;
    if (mprotect(p, nbytes, PROT_READ | PROT_WRITE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static _Atomic int noMoveDontunmap; // the kernel refused MREMAP_DONTUNMAP once (before 5.7)

int os_move_pages(void *from, void *to, size_t nbytes)
{
    if (atomic_load_explicit(&noMoveDontunmap, memory_order_relaxed)) {
        errno = ENOSYS;
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
    *max = 65530; // DEFAULT_MAX_MAP_COUNT
    int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        k = read(fd, buf, sizeof buf - 1);
        if (k > 0) {
            buf[k] = 0;
            long v = strtol(buf, NULL, 10);
            if (v > 0)
                *max = v;
        }
        close(fd);
    }
    fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
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

void os_futexsleep(uint32_t *addr, uint32_t val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0); // EAGAIN, EINTR: the caller checks
}

void os_futexwakeup(uint32_t *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
