// SPDX-License-Identifier: MIT
//
// The gomem demo (`make run`): Go's stack allocator at work in a C program.
//
// It allocates a crowd of small stacks the way a program with many
// coroutines would, shows where they came from (per-thread cache, shared
// pool, page heap), frees them from another thread, and asks the scavenger
// to give the memory back to the OS, printing RSS at each step.
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

int main(void)
{
    printf("gomem %s: Go's stack allocator for C\n", gm_version());
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
    return 0;
}
