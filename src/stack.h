// SPDX-License-Identifier: MIT
//
// The stack allocator's settings and entry points (Go: stack.go's
// constants and stackalloc's helpers); stack.c's head tells how stacks are
// allocated and how each coroutine mode uses them. runtime.h includes this
// header where its constants are, since mcache.h sizes its stack cache by
// NumStackOrders.
#include "runtime.h" // first, outside the guard: runtime.h includes this header in turn
#ifndef GOMEM_STACK_H
#define GOMEM_STACK_H
#pragma GCC visibility push(hidden)

// Stacks (stack.c). FixedStack and the order count are build-time settings:
// gomem's copied-mode coroutines save stacks of about a hundred bytes when
// parked shallow, so the default minimum is 256 B, not Go's 2 KiB, with
// three more orders so that stacks up to 16 KiB still come from the
// per-thread caches (an idle coroutine: 256 B saved + its descriptor, a
// 208-byte gm_g in a 208-byte size class). A smaller FixedStack wastes less
// per idle coroutine; each extra order costs one more cache list and pool
// list per thread/process and nothing per stack.
#ifndef GM_FIXED_STACK
#define GM_FIXED_STACK 256
#endif
#ifndef GM_STACK_ORDERS
#define GM_STACK_ORDERS 7
#endif
#define FixedStack ((uintptr_t)GM_FIXED_STACK)
#define NumStackOrders GM_STACK_ORDERS
#ifndef GM_STACK_CACHE_SIZE
#define GM_STACK_CACHE_SIZE (32 << 10)
#endif
#define StackCacheSize ((uintptr_t)GM_STACK_CACHE_SIZE)
#define StackSpanPages (StackCacheSize / PageSize)

_Static_assert((FixedStack & (FixedStack - 1)) == 0, "FixedStack must be a power of two");
_Static_assert(FixedStack >= 256, "FixedStack below 256 B makes stack spans too dense");
_Static_assert((FixedStack << (NumStackOrders - 1)) < StackCacheSize,
               "the largest stack order must be smaller than StackCacheSize");
_Static_assert(NumStackOrders <= GM_STACK_ORDERS_MAX, "raise GM_STACK_ORDERS_MAX");
_Static_assert(StackCacheSize % PageSize == 0, "stack spans are whole pages");
_Static_assert((StackCacheSize & (StackCacheSize - 1)) == 0, "StackCacheSize must be a power of two (stacks align to their size)");
_Static_assert((FixedStack << NumStackOrders) >= PageSize, "large stacks must be whole pages");

// floor(log2(x)), x > 0.
static inline uintptr_t log2ptr(uintptr_t x)
{
    return 63u - (uintptr_t)__builtin_clzll(x);
}

// What gm_stackalloc(n) hands out: n rounded up to a power of two, at
// least FixedStack. n is at most MaxSpanPages pages.
static inline uintptr_t stackRoundSize(size_t n)
{
    return n <= FixedStack ? FixedStack : (uintptr_t)1 << (log2ptr(n - 1) + 1);
}

struct mcache;
// stack.c's entry points besides gm_stackalloc/gm_stackfree, for mcache.c,
// mstats.c and fork.
void stackcache_clear(struct mcache *c);
void stackFreeMarkInit(uintptr_t seed);
// A per-process secret mixed with salt (set by runtime_init).
uintptr_t runtime_secret(uintptr_t salt);
void stack_stats(gm_memstats *out);
void stackLarge_releaseAll(void);
const char *stackpool_valid(void);
void stack_atfork_prepare(void);
void stack_atfork_parent(void);
void stack_atfork_child(void);
// Dedicated coroutine stacks kept with their guard (dedicated.c): gm_scavenge
// releases the process-wide list; stack_scavengeDedicated releases the
// stacks that list holds past the scavenger's budget and delay (any
// thread, no lock held; sysmon calls it with background true: fewer per
// call); gm_stats adds its bytes and counters; gm_debug_check validates it
// and the calling thread's lists (c may be NULL). dedicatedSpill moves c's
// own lists to the process-wide one until c holds at most keep bytes (0: a
// thread's caches given back). dedicated_releasedBytes: the stacks
// released with their guards kept (no memory, address space only),
// waiting for reuse.
void stack_flushDedicated(void);
uintptr_t dedicated_releasedBytes(void);
void stack_scavengeDedicated(bool background);
void dedicatedSpill(struct mcache *c, uintptr_t keep);
void dedicated_atfork_prepare(void);
void dedicated_atfork_parent(void);
void dedicated_atfork_child(void);
void dedicated_stats(gm_memstats *out);
const char *dedicated_valid(struct mcache *c);
// The execution stacks that ended workers left for the next ones
// (gstack.c), unmapped: gm_scavenge.
void stack_releaseExecCache(void);
// gstack.c's spin locks around fork (mcache.c's handlers; the child
// releases them as the parent does).
void gstack_atfork_prepare(void);
void gstack_atfork_parent(void);

#pragma GCC visibility pop
#endif
