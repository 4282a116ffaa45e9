// SPDX-License-Identifier: MIT
//
// What gomem tells the tools that watch memory and stacks: AddressSanitizer,
// ThreadSanitizer and valgrind's memcheck (as mimalloc's track.h). Every
// hook is an inline function or macro defined here once, empty when the
// tool is absent, so the code that calls it has no #if of its own and the
// fast paths compile to the same instructions in a plain build.
//
//   ASan   poisoning: a heap span's free slots, the bytes of an object in a
//          thread's free cache past its two link words, free pages, so a
//          use after free inside gomem's heap is reported as ASan reports
//          one in its own. Fibers: every coroutine switch is announced
//          (__sanitizer_start/finish_switch_fiber). The execution stack's
//          shadow is cleared when another coroutine's frames are copied in
//          (their redzones are not re-poisoned: a known loss of checking).
//   TSan   each coroutine is a fiber of its own (its shadow call stack and
//          clock); without the switch calls TSan sees one thread's calls and
//          returns interleaved from many stacks and its call stack overflows.
//   memcheck  every stack a coroutine runs on is registered, so a jump of
//          the stack pointer between them is a switch, not a wild write.
//          The requests cost a few instructions when not under valgrind;
//          without <valgrind/valgrind.h> (valgrind-dev absent) they compile
//          away.
//
// TrackFibers is true when a sanitizer must see every switch: gm_yield then
// always goes through the scheduler's loop, where the hooks are called.
#ifndef GOMEM_TRACK_H
#define GOMEM_TRACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define GM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GM_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define GM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GM_TSAN 1
#endif
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define GM_VALGRIND 1
#endif
#endif
#ifndef GM_VALGRIND
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_STACK_REGISTER(lo, hi) ((void)(lo), (void)(hi), 0u)
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#define VALGRIND_MAKE_MEM_UNDEFINED(p, n) ((void)(p), (void)(n))
#endif

// ------------------------------------------------------------ AddressSanitizer

#ifdef GM_ASAN
void __asan_poison_memory_region(const volatile void *addr, size_t size);
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
int __asan_address_is_poisoned(const volatile void *addr);
void *__asan_region_is_poisoned(void *beg, size_t size);
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#define ASAN_POISON(p, n) __asan_poison_memory_region((const void *)(p), (n))
#define ASAN_UNPOISON(p, n) __asan_unpoison_memory_region((const void *)(p), (n))
#define ASAN_IS_POISONED(p) __asan_address_is_poisoned((const void *)(p))
#define ASAN_BUILD 1 // a constant for a plain if: no #if on a fast path
// Unpoisons [p, p+n) if any of it is poisoned: writing a clean shadow would
// make its pages resident (stacks that come and go would keep 1/8 of their
// bytes in RSS after a scavenge).
#define ASAN_UNPOISON_IF(p, n)                                                                               \
    do {                                                                                                     \
        if (__asan_region_is_poisoned((void *)(p), (n)) != NULL)                                             \
            __asan_unpoison_memory_region((const void *)(p), (n));                                           \
    } while (0)
#define track_switchStart(fake_save, bottom, size) __sanitizer_start_switch_fiber((fake_save), (bottom), (size))
#define track_switchFinish(fake) __sanitizer_finish_switch_fiber((fake), NULL, NULL)
// Saved stacks hold their frames' redzones: copied by code ASan does not
// check (switch_<arch>.S).
void copystackbytes(void *dst, const void *src, size_t n);
#define copyStack copystackbytes
// A stack whose frames will be overwritten by another coroutine's: clears
// the shadow of its top n bytes (and 64 KiB below, where returned frames'
// redzones were unpoisoned on return).
// The calling thread's own stack, for the switches back to it.
static inline void track_threadStack(const void **lo, size_t *size)
{
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *l;
        pthread_attr_getstack(&attr, &l, size);
        *lo = l;
        pthread_attr_destroy(&attr);
    }
}
static inline void track_stackReused(char *top, size_t n, size_t size)
{
    n += 64 << 10;
    if (n > size)
        n = size;
    __asan_unpoison_memory_region(top - n, n);
}
#else
#define ASAN_POISON(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#define ASAN_IS_POISONED(p) ((void)(p), 0)
#define ASAN_BUILD 0
#define ASAN_UNPOISON_IF(p, n) ((void)(p), (void)(n))
#define track_switchStart(fake_save, bottom, size) ((void)(fake_save), (void)(bottom), (void)(size))
#define track_switchFinish(fake) ((void)(fake))
// memcpy's vector loop: rep movsb's start-up cost dominates copies of a few
// hundred bytes (a parked coroutine saves about 200).
#define copyStack memcpy
#define track_threadStack(lo, size) ((void)(lo), (void)(size))
static inline void track_stackReused(char *top, size_t n, size_t size)
{
    (void)top, (void)n, (void)size;
}
#endif

// ----------------------------------------------------------- ThreadSanitizer

#ifdef GM_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#define track_threadFiber() __tsan_get_current_fiber()
// Switches to *fiber, creating it on first use.
static inline void track_toFiber(void **fiber)
{
    if (*fiber == NULL)
        *fiber = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(*fiber, 0);
}
static inline void track_fiberDestroy(void **fiber)
{
    if (*fiber != NULL)
        __tsan_destroy_fiber(*fiber);
    *fiber = NULL;
}
#else
#define track_threadFiber() ((void *)0)
#define track_toFiber(fiber) ((void)(fiber))
#define track_fiberDestroy(fiber) ((void)(fiber))
#endif

#if defined(GM_ASAN) || defined(GM_TSAN)
#define TrackFibers true
#else
#define TrackFibers false
#endif

#endif
