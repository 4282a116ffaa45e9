// SPDX-License-Identifier: MIT
//
// docs/stack-or-heap.md, example 1: value vs pointer semantics.
// A small struct returned by value lives in the caller's frame: no
// allocation, nothing to free. Returned by pointer it must live on the heap,
// and someone must free it. Run: prints what each way cost, in gomem's
// counters.
#include <stdio.h>
#include <string.h>

#include "gomem.h"

typedef struct {
    double x, y;
} point;

// Value semantics: the result is copied into the caller's frame.
static point midpoint(point a, point b)
{
    return (point){ (a.x + b.x) / 2, (a.y + b.y) / 2 };
}

// Pointer semantics: the result outlives this call, so it goes to the heap
// (Go's escape analysis would say "moved to heap: p").
static point *midpoint_new(point a, point b)
{
    point *p = gm_malloc(sizeof *p);
    if (p != NULL)
        *p = midpoint(a, b);
    return p;
}

static unsigned long long mallocs(void)
{
    gm_memstats m;
    gm_stats(&m);
    return (unsigned long long)m.mallocs;
}

int main(void)
{
    point a = { 0, 0 }, b = { 2, 4 };
    unsigned long long m0 = mallocs();
    double sum = 0;
    for (int i = 0; i < 1000; i++)
        sum += midpoint(a, b).y;
    unsigned long long m1 = mallocs();
    for (int i = 0; i < 1000; i++) {
        point *p = midpoint_new(a, b);
        sum += p->y;
        gm_free(p);
    }
    unsigned long long m2 = mallocs();
    printf("by value: %llu heap allocations; by pointer: %llu (sum %.0f)\n", m1 - m0, m2 - m1, sum);
    int good = m1 - m0 == 0 && m2 - m1 == 1000 && sum == 4000;
    printf("%d passed, %d failed\n", good, !good); // for make test's harness
    return !good;
}
