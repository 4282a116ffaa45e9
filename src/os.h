// SPDX-License-Identifier: MIT
//
// The OS layer: the only place gomem talks to the kernel about memory.
//
// A range of address space is in one of four states, and these calls move it
// (Go's mem.go names the same states; mimalloc's prim.h plays the same role):
//
//   none --os_reserve--> reserved --os_commit--> committed (ready)
//   committed --os_decommit--> released  (still readable, reads as zero,
//                                          no longer counted in RSS)
//   released: touching it is allowed and makes it committed again
//   any page  --os_protect_none--> guard (any access faults)
//   committed --os_move_pages--> released, its pages now at another
//                                committed range (no copy)
//   guard     --os_commit--> committed
//   reserved/committed/released --os_release--> none
//
// Every call reports failure to its caller (NULL or -1 with errno set); none
// of them throws. Portable files never call mmap/madvise/mprotect directly.
//
// Fault injection (tests only, but always compiled in since the check is one
// predictable branch on a slow path): the Nth and later calls of a kind fail
// with ENOMEM. Set from the environment at first use
// (GOMEM_FAULT_MMAP=N, GOMEM_FAULT_MPROTECT=N, GOMEM_FAULT_MADVISE=N,
// GOMEM_FAULT_MREMAP=N) or by os_fault_set() from a test. N counts from 1;
// 0 disables.
#ifndef GOMEM_OS_H
#define GOMEM_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unwind.h>
#pragma GCC visibility push(hidden)

enum os_fault_kind { OS_FAULT_MMAP, OS_FAULT_MPROTECT, OS_FAULT_MADVISE, OS_FAULT_MREMAP, OS_FAULT_NKINDS };

// The system page size: 4 KiB on x86-64 Linux; 4, 16 or 64 KiB on arm64
// Linux, where it may be larger than gomem's own 8 KiB page. os_commit,
// os_protect_none, os_guard and os_unguard take whole OS pages (so do
// os_reserve's align and os_move_pages, which refuse other ranges);
// os_decommit takes any range of gomem pages.
size_t os_physpagesize(void);
// Tests: what os_physpagesize returns from now on (0: ask the system again),
// to run the large-page paths on a 4 KiB page machine.
void os_setphyspagesize(size_t n);

// getenv for gomem's own GOMEM_* options: NULL in a set-user-ID or
// set-group-ID program (or one given capabilities), whose environment is the
// unprivileged caller's: GOMEM_TRACE names a file it would write. glibc's
// own tunables are ignored there the same way.
const char *os_getenv(const char *name);

// Reserves nbytes of address space aligned to align (a power of two, at least
// the system page size), inaccessible. NULL and errno=ENOMEM on failure.
void *os_reserve(size_t nbytes, size_t align);

// Makes [p, p+nbytes) readable and writable. 0 on success, -1 and errno.
int os_commit(void *p, size_t nbytes);

// Gives the physical pages of [p, p+nbytes) back to the kernel; the range
// stays mapped and reads as zero afterwards. Where the OS page is larger
// than the range's alignment, only the OS pages wholly inside go back, and
// the bytes of the partial pages at either end are zeroed in place (they
// stay resident). 0 on success, -1 and errno.
int os_decommit(void *p, size_t nbytes);

// Makes [p, p+nbytes) inaccessible (a guard). 0 on success, -1 and errno.
int os_protect_none(void *p, size_t nbytes);

// A guard after a heap object (GOMEM_SECURE) or below a dedicated
// coroutine stack: [p, p+nbytes) faults on any
// access until os_unguard; its contents are lost. Linux 6.13's lightweight
// guard regions (MADV_GUARD_INSTALL: no VMA split, a quarter of an mprotect
// pair's cost) where the kernel has them (probed once: they must make an
// access fail, which qemu-user's do not), else mprotect, up to a quarter
// of vm.max_map_count guards standing (ENOMEM past it, so the program's own
// mappings never run out). Both count and fail as OS_FAULT_MPROTECT. A
// range that is not whole OS pages fails with EINVAL. 0 on success, -1 and
// errno.
int os_guard(void *p, size_t nbytes);
int os_unguard(void *p, size_t nbytes);
// Whether os_guard makes guard regions here (no mapping each: a process may
// hold millions), rather than two mappings each (about 16k guards in all).
// Probes on first use, as os_guard does.
bool os_guard_regions(void);

// Moves the pages of committed [from, from+nbytes) to committed [to,
// to+nbytes) (page-aligned, not overlapping) without copying them: the
// kernel moves the page-table entries (Linux 5.7+'s mremap with
// MREMAP_DONTUNMAP; glibc's realloc moves its mmapped chunks the same way).
// Afterwards to holds what from held, and from is released: still mapped,
// reads as zero. 0 on success. On failure from is untouched and:
//   -1 and errno: to is committed again, its old contents lost (the kernel
//      may unmap the destination before it fails: it is mapped again);
//   -2 and errno: to could not be mapped again and may be a hole: nothing
//      may touch it again.
// EINVAL once (a kernel without MREMAP_DONTUNMAP) and every later call fails
// at once with ENOSYS, making no system call; so does every call where the
// first one found that MADV_DONTNEED does not zero a range moved away from
// (qemu-user). from, to and nbytes not whole OS pages: -1 and EINVAL, to
// untouched. Counts and fails (injected: as
// a kernel may, after unmapping to) as OS_FAULT_MREMAP; mapping to again
// counts and fails as OS_FAULT_MMAP.
int os_move_pages(void *from, void *to, size_t nbytes);

// The number of mappings (VMAs) this process has now, from
// /proc/self/maps, and in *max the most the kernel allows one
// (vm.max_map_count; 65530 if unreadable). -1 if /proc cannot be read.
// About 0.5 us per mapping.
long os_count_mappings(long *max);

// Unmaps [p, p+nbytes). Used only to undo a reservation gomem could not use.
void os_release(void *p, size_t nbytes);

// Maps nbytes of fresh readable, writable, zeroed memory anywhere (for
// gomem's own metadata). NULL and errno=ENOMEM on failure.
void *os_alloc_meta(size_t nbytes);

// The process's resident set in bytes, 0 if unknown; never allocates.
uint64_t os_rss(void);

// A coarse monotonic clock in milliseconds (a few ms resolution, no syscall).
uint32_t os_coarse_ms(void);

// True only while the process has never had a second thread (the C
// library's own flag; false where it has none).
bool os_single_threaded(void);

// pthread_atfork: handlers run around fork (NULL: none). 0, or an errno.
int os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

// A thread's sleep on a word (Go: futexsleep, futexwakeup): sleeps while
// *addr == val, or until woken, or for at most ns nanoseconds (ns < 0: no
// limit); it may return early for no reason, so the caller checks again
// (and reads the clock). Wakes up to n threads asleep on addr (a wake of
// an address nobody sleeps on is harmless).
void os_futexsleep(uint32_t *addr, uint32_t val, int64_t ns);
void os_futexwakeup(uint32_t *addr, int n);

// The C unwinder (libgcc's), which only the profilers use. os_unwinder
// finds it the first time (with glibc it may dlopen libgcc_s, which may
// call malloc: call it outside gomem's locks and allocation paths);
// os_unwinderLoaded answers without looking. NULL when there is none.
typedef struct osUnwinder {
    _Unwind_Reason_Code (*backtrace)(_Unwind_Trace_Fn, void *);
    _Unwind_Ptr (*getIP)(struct _Unwind_Context *);
    _Unwind_Ptr (*getRegionStart)(struct _Unwind_Context *);
} osUnwinder;
const osUnwinder *os_unwinder(void);
const osUnwinder *os_unwinderLoaded(void);

// Tests: make the nth and later calls of kind fail (0 turns it off) and read
// how many calls of each kind were made.
void os_fault_set(enum os_fault_kind kind, uint64_t nth);
uint64_t os_calls(enum os_fault_kind kind);

#pragma GCC visibility pop
#endif
