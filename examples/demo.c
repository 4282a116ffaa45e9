// SPDX-License-Identifier: MIT
//
// The gomem demo (`make run`): Go's stack allocator, Go's heap allocator and
// goroutine-style coroutines at work in a C program.
//
// Part 1 allocates a crowd of small stacks the way a program with many
// coroutines would, shows where they came from (per-thread cache, shared
// pool, page heap), frees them from another thread, and asks the scavenger
// to give the memory back to the OS, printing RSS at each step.
// Part 2 builds a million small heap objects with gm_malloc (size classes,
// per-thread spans), frees them from another thread (remote frees), and
// shows the counters and RSS following the live heap.
// Part 3 parks 100,000 copied-stack coroutines, 1% of them 200 frames deep,
// and shows their saved stacks doubling to fit, halving once the deep ones
// park shallow again, and going back to the stack allocator when they end.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gomem.h"

static size_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

static void show(const char *step)
{
    gm_memstats m;
    gm_stats(&m);
    printf("\n== %s\n", step);
    printf("   RSS %zu KiB | stack spans %llu KiB | heap idle %llu KiB, released %llu KiB\n", rss_kib(),
           (unsigned long long)m.stack_inuse >> 10, (unsigned long long)m.heap_idle >> 10,
           (unsigned long long)m.heap_released >> 10);
    printf("   %-8s %10s %10s %10s %7s\n", "order", "in use", "cached", "pooled", "spans");
    for (unsigned o = 0; o < m.stack_orders; o++)
        printf("   %-8llu %9lluK %9lluK %9lluK %7llu\n", (unsigned long long)m.stack_order[o].size,
               (unsigned long long)m.stack_order[o].inuse >> 10,
               (unsigned long long)m.stack_order[o].cached >> 10,
               (unsigned long long)m.stack_order[o].pooled >> 10,
               (unsigned long long)m.stack_order[o].nspans);
    printf("   large    %9lluK %9lluK (stackLarge)\n", (unsigned long long)m.stack_large_inuse >> 10,
           (unsigned long long)m.stack_large_cached >> 10);
}

enum { N = 200000 };
static gm_stack stacks[N];

static void *free_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++)
        gm_stackfree(stacks[i]);
    return NULL;
}

// ------------------------------------------------------------ the heap

enum { NObj = 1000000 };
static void *objs[NObj];

static void show_heap(const char *step)
{
    gm_memstats m;
    gm_stats(&m);
    printf("\n== %s\n", step);
    printf("   RSS %zu KiB | heap: objects %llu, %llu KiB allocated in %llu KiB of spans "
           "(%llu KiB idle, %llu KiB released)\n",
           rss_kib(), (unsigned long long)m.heap_objects, (unsigned long long)m.heap_alloc >> 10,
           (unsigned long long)m.heap_inuse >> 10, (unsigned long long)m.heap_idle >> 10,
           (unsigned long long)m.heap_released >> 10);
    printf("   mallocs %llu, frees %llu | mcentral: %llu partial spans, %llu full\n",
           (unsigned long long)m.mallocs, (unsigned long long)m.frees, (unsigned long long)m.nspan_partial,
           (unsigned long long)m.nspan_full);
}

static void *free_objs(void *arg)
{
    (void)arg;
    for (int i = 0; i < NObj; i++)
        gm_free(objs[i]); // each a lock-free remote free: one atomic OR
    return NULL;
}

// ------------------------------------------------------------ coroutines

enum { NCoro = 100000 };
static _Atomic long deepsum;
static gm_chan *release1, *release2;          // closed to wake every parked coroutine
static gm_waitgroup arrived1 = GM_WAITGROUP_INIT, arrived2 = GM_WAITGROUP_INIT;

static long recurse(int depth)
{
    volatile char frame[64]; // a real frame: the stack grows by it
    frame[0] = (char)depth;
    if (depth == 0) {
        int x;
        gm_waitgroup_done(&arrived1);
        gm_chan_recv(release1, &x); // parked deep: its saved stack is large
        return frame[0];
    }
    return recurse(depth - 1) + frame[0];
}

static void coro(void *arg)
{
    int depth = (int)(uintptr_t)arg;
    deepsum += recurse(depth); // parks once, deep or shallow
    int x;
    gm_waitgroup_done(&arrived2);
    gm_chan_recv(release2, &x); // parks again, shallow: the saved copy halves
}

static void show_coro(const char *step)
{
    gm_memstats m;
    gm_stats(&m);
    printf("\n== %s\n", step);
    printf("   RSS %zu KiB | coroutines started %llu, ended %llu | saved stacks: %llu KiB of buffers, %llu KiB "
           "of stack spans (%llu doublings, %llu halvings)\n",
           rss_kib(), (unsigned long long)m.coro_created, (unsigned long long)m.coro_ended,
           (unsigned long long)m.coro_saved_bytes >> 10, (unsigned long long)m.stack_inuse >> 10,
           (unsigned long long)m.coro_stack_grows, (unsigned long long)m.coro_stack_shrinks);
}

static void coro_main(void *arg)
{
    (void)arg;
    release1 = gm_chan_new(sizeof(int), 0);
    release2 = gm_chan_new(sizeof(int), 0);
    gm_waitgroup_add(&arrived1, NCoro);
    gm_waitgroup_add(&arrived2, NCoro);
    for (int i = 0; i < NCoro; i++) // spread over the workers by stealing
        gm_go(coro, (void *)(uintptr_t)(i % 100 == 0 ? 200 : 2)); // 1% deep
    gm_waitgroup_wait(&arrived1); // every coroutine is at its deepest point
    gm_yield();
    show_coro("100,000 coroutines parked: 99% shallow (a few hundred bytes saved), 1% 200 frames deep");
    gm_chan_close(release1); // they return from the recursion and park again, shallow
    gm_waitgroup_wait(&arrived2);
    gm_yield();
    show_coro("all parked again after returning: the deep ones' copies halved");
    gm_chan_close(release2);
}

static int coro_demo(void)
{
    printf("\n\n--- goroutine-style coroutines (copied stacks: saved at 2x growth, halved under 1/4) ---\n");
    show_coro("start");
    if (gm_main(coro_main, NULL) != 0) {
        perror("gm_main");
        return 1;
    }
    gm_chan_free(release1);
    gm_chan_free(release2);
    show_coro("all ended: every saved stack went back to the stack allocator");
    gm_scavenge();
    show_coro("after gm_scavenge");
    return 0;
}

static int heap_demo(void)
{
    printf("\n\n--- Go's heap allocator: gm_malloc / gm_free ---\n");
    show_heap("start");
    unsigned seed = 7;
    for (int i = 0; i < NObj; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 16 + (seed >> 16) % 113; // small nodes, like a parsed document
        objs[i] = gm_malloc(n);
        if (objs[i] == NULL) {
            perror("gm_malloc");
            return 1;
        }
        memset(objs[i], 1, n);
    }
    show_heap("after 1,000,000 gm_malloc of 16..128 bytes (one span per size class per thread)");
    gm_memstats m;
    gm_stats(&m);
    printf("   by size class (bytes: objects):");
    for (int c = 1, shown = 0; c < GM_SIZE_CLASSES && shown < 8; c++)
        if (m.by_size[c].mallocs != m.by_size[c].frees) {
            printf(" %llu: %llu", (unsigned long long)m.by_size[c].size,
                   (unsigned long long)(m.by_size[c].mallocs - m.by_size[c].frees));
            shown++;
        }
    printf(" ...\n");
    pthread_t t;
    pthread_create(&t, NULL, free_objs, NULL);
    pthread_join(t, NULL);
    show_heap("after another thread freed them all (remote frees)");
    size_t released = gm_scavenge();
    printf("\ngm_scavenge: empty spans back to the page heap, %zu KiB released to the OS\n", released >> 10);
    show_heap("after gm_scavenge");
    return coro_demo();
}

int main(void)
{
    printf("gomem %s: Go's stack and heap allocators for C\n", gm_version());
    show("start");

    // Sizes like the saved stacks of idle coroutines: mostly small, a few deep.
    unsigned seed = 1;
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 16) % 100;
        size_t n = r < 70 ? 300 : r < 90 ? 1500 : r < 99 ? 6000 : 100000;
        stacks[i] = gm_stackalloc(n);
        if (stacks[i].lo == 0) {
            perror("gm_stackalloc");
            return 1;
        }
        memset((void *)stacks[i].lo, 0x42, 64); // touch it, as a coroutine would
        total += stacks[i].hi - stacks[i].lo;
    }
    printf("\nallocated %d stacks, %zu KiB in all (sizes rounded up to an order)\n", N, total >> 10);
    show("after gm_stackalloc x200000 (cache -> stackpool -> mheap)");

    pthread_t t;
    pthread_create(&t, NULL, free_all, NULL);
    pthread_join(t, NULL);
    show("after another thread freed them all and exited (its cache went back)");

    size_t released = gm_scavenge();
    printf("\ngm_scavenge released %zu KiB to the OS\n", released >> 10);
    show("after gm_scavenge");
    return heap_demo();
}
