// SPDX-License-Identifier: MIT
//
// Central free lists (Go: mcentral.go): the type and entry points of
// mcentral.c, whose head states the lists' invariants and the full-list
// handshake. runtime.h includes this header.
#include "runtime.h" // first, outside the guard: runtime.h includes this header in turn
#ifndef GOMEM_MCENTRAL_H
#define GOMEM_MCENTRAL_H
#pragma GCC visibility push(hidden)

// Central lists of one size class (Go: mcentral.go). A span on a list is
// owned by the list's lock; a cached span is not on any list.
typedef struct mcentral {
    mutex lock;
    mSpanList partial;   // spans with a free slot, or with objects on xfree; guarded by lock
    mSpanList full;      // spans with no free slot and XfreeNotify set; guarded by lock
    uintptr_t npartial;  // guarded by lock
    uintptr_t nfull;     // guarded by lock
} __attribute__((aligned(64))) mcentral;

extern mcentral mcentrals[NumSpanClasses];

// A span of class spc with a free slot, owned by the caller; NULL + ENOMEM.
mspan *mcentral_cacheSpan(uint8_t spc);
// Gives back a span the caller owns: to mheap when empty, else to partial,
// or to full when no slot is free. Never fails.
void mcentral_uncacheSpan(mspan *s);
// A remote free found XfreeNotify: moves s from full to partial.
void mcentral_notify(mspan *s);
// A remote free may have emptied s, a span of class spc of at most
// EmptyWatchMax objects on a partial list: frees it to mheap if it is, and is still on
// that list, empty ("Empty spans"); true if it did. s may have been reused
// meanwhile: it is not read unless found on the list.
bool mcentral_freeIfEmpty(mspan *s, uint8_t spc);
// Frees empty spans of partial lists, up to budget spans looked at (all
// when budget is 0); returns the spans freed.
uintptr_t mcentral_reclaim(uintptr_t budget);
const char *mcentral_valid(void);
void mcentral_atfork_prepare(void);
void mcentral_atfork_parent(void);
void mcentral_atfork_child(void);
void mcentral_stats(gm_memstats *out);

// A span is worth caching when at least 1/RoomyFraction of its slots are
// free: every refill then pays for nelems/RoomyFraction allocations. Spans
// with less room wait in mcentral's partial list until remote frees give
// them more (at most that fraction of each span idles meanwhile). 16, not
// 8: under random churn spans settle just under the line, and with 8 the
// heap grew by new spans while 1/8 of every old one idled (1M short strings
// replaced at random: 6% less RSS; +1.7% instructions on bench powerlaw).
#define RoomyFraction 16
static inline bool spanRoomy(uintptr_t nfree, uintptr_t nelems)
{
    return nfree * RoomyFraction >= nelems;
}

#pragma GCC visibility pop
#endif
