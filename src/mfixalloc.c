// SPDX-License-Identifier: MIT
//
// Metadata allocators (Go: mfixalloc.go, and persistentalloc in malloc.go).
//
// persistentalloc: bump allocation of metadata that lives forever (arena
// descriptors, arena index tables, fixalloc chunks). Chunks of
// PersistentChunk bytes come from os_alloc_meta; a request larger than a
// quarter chunk gets its own mapping. Guarded by persistentLock, a leaf lock
// that any other lock may be held around.
//
// fixalloc: a free list of fixed-size objects (mspan, mcache) carved from
// persistentalloc chunks. Not locked itself: each fixalloc is guarded by its
// owner's lock (mheap_.spanalloc by mheap_.lock).
//
// Invariants: persistentChunkLeft <= PersistentChunk.
#include "runtime.h"

#include <string.h>

#define PersistentChunk ((size_t)256 << 10)
#define FixallocChunk ((size_t)16 << 10)

static mutex persistentLock = MUTEX_INIT(lockRankPersistent);
static char *persistentChunk;     // guarded by persistentLock
static size_t persistentChunkLeft; // guarded by persistentLock
uint64_t persistentSys;            // written under persistentLock with atomic stores; read by gm_stats

void *persistentalloc(size_t nbytes, size_t align)
{
    if (align == 0)
        align = 8;
    if (nbytes >= PersistentChunk / 4) {
        size_t rounded = (nbytes + os_physpagesize() - 1) & ~(os_physpagesize() - 1);
        void *p = os_alloc_meta(rounded);
        if (p != NULL) {
            lock(&persistentLock);
            __atomic_store_n(&persistentSys, persistentSys + rounded, __ATOMIC_RELAXED);
            unlock(&persistentLock);
        }
        return p;
    }
    lock(&persistentLock);
    uintptr_t cur = (uintptr_t)persistentChunk;
    uintptr_t aligned = (cur + align - 1) & ~(uintptr_t)(align - 1);
    if (persistentChunk == NULL || aligned - cur + nbytes > persistentChunkLeft) {
        char *chunk = os_alloc_meta(PersistentChunk);
        if (chunk == NULL) {
            unlock(&persistentLock);
            return NULL;
        }
        __atomic_store_n(&persistentSys, persistentSys + PersistentChunk, __ATOMIC_RELAXED);
        persistentChunk = chunk;
        persistentChunkLeft = PersistentChunk;
        cur = aligned = (uintptr_t)chunk;
    }
    persistentChunkLeft -= aligned - cur + nbytes;
    persistentChunk = (char *)(aligned + nbytes);
    unlock(&persistentLock);
    return (void *)aligned;
}

void *fixalloc_alloc(fixalloc *f)
{
    if (f->list != NULL) {
        gclink *v = f->list;
        f->list = v->next;
        memset(v, 0, f->size);
        return v;
    }
    if (f->nchunk < f->size) {
        char *chunk = persistentalloc(FixallocChunk, 64);
        if (chunk == NULL)
            return NULL;
        f->chunk = chunk;
        f->nchunk = FixallocChunk;
    }
    void *v = f->chunk;
    f->chunk += f->size;
    f->nchunk -= f->size;
    return v;
}

void fixalloc_free(fixalloc *f, void *p)
{
    gclink *v = p;
    v->next = f->list;
    f->list = v;
}

// fork: persistentLock is a leaf, so it is taken last and released first.
void persistent_atfork_prepare(void)
{
    lock(&persistentLock);
}

void persistent_atfork_parent(void)
{
    unlock(&persistentLock);
}

void persistent_atfork_child(void)
{
    lock_reinit_child(&persistentLock);
}
