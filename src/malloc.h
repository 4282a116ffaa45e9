// SPDX-License-Identifier: MIT
//
// What the malloc files share (malloc.c, free.c, realloc.c, tiny.c,
// mbitmap.c, guardcache.c), and their entry points for the rest of the
// runtime. The story is the overview at the top of malloc.c.
#ifndef GOMEM_MALLOC_H
#define GOMEM_MALLOC_H

#include "runtime.h"

// ------------------------------------------------------- for the runtime

void malloc_init(void);                       // from runtime_init, before any mcache
void malloc_setAlign16(void);                 // GOMEM_ALIGN16, before malloc_init
// GOMEM_SECURE's cache of freed guarded large objects (malloc.c).
void malloc_flushGuardCache(void);
void malloc_atfork_prepare(void);
void malloc_atfork_parent(void);
// malloc.c's process-wide counters: frees by threads without an mcache,
// realloc's page moves.
void malloc_sumcounters(gm_memstats *out);

// Moves every object in c's free cache back to its span (malloc.c).
void tcache_flushAll(mcache *c);
// Retires c's current tiny block (thread exit, flush) (malloc.c).
void tiny_release(mcache *c);
uintptr_t tcache_newKey(mcache *c);

// Tests only (tests/export_test.h declares the knobs it goes with): realloc
// counts the process's mappings again at its next move.
void malloc_recountMappings(void);

#endif
