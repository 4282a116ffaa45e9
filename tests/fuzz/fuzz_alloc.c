// SPDX-License-Identifier: MIT
//
// libFuzzer harness (make fuzz): random sequences of heap, stack,
// coroutine and channel operations (send, receive, select with and without
// default, park/ready) against a shadow model that checks contents, sizes
// and alignment, then checks every structure (mheap, mcentral, stack pools)
// and that the counters return to where they started.
//
// Input: a stream of 4-byte ops {op, slot, a, b}. 64 slots hold a pointer,
// its requested size, how it was allocated and the byte it was filled with.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

enum { Slots = 64 };
typedef struct {
    unsigned char *p;
    size_t n;
    unsigned char fill;
    int kind; // 0 empty, 1 heap, 2 stack
    gm_stack st;
} slot;

static slot slots[Slots];

static void die(const char *what, int i)
{
    fprintf(stderr, "fuzz: %s (slot %d, size %zu)\n", what, i, slots[i].n);
    abort();
}

static void check(int i)
{
    slot *s = &slots[i];
    if (s->kind == 1) {
        for (size_t k = 0; k < s->n; k++)
            if (s->p[k] != s->fill)
                die("heap contents changed", i);
        if (gm_malloc_usable_size(s->p) < s->n)
            die("usable size below the request", i);
    } else if (s->kind == 2) {
        unsigned char *lo = (unsigned char *)s->st.lo;
        if (lo[0] != s->fill || lo[s->st.hi - s->st.lo - 1] != s->fill)
            die("stack contents changed", i);
    }
}

static void release(int i)
{
    slot *s = &slots[i];
    check(i);
    if (s->kind == 1)
        gm_free(s->p);
    else if (s->kind == 2)
        gm_stackfree(s->st);
    memset(s, 0, sizeof *s);
}

static size_t size_of(uint8_t a, uint8_t b)
{
    switch (a >> 6) {
    case 0: return a & 31;                           // tiny and small
    case 1: return ((size_t)(a & 63) << 4) + b % 16; // up to 1 KiB
    case 2: return ((size_t)(a & 63) << 9) + b;      // up to 32 KiB
    default: return ((size_t)(a & 15) << 14) + (size_t)b * 64 + 1; // large
    }
}

static _Atomic int coro_sum; // coroutines may run on several workers
static void coro_fn(void *arg)
{
    volatile unsigned char frame[200];
    unsigned v = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 200; i++)
        frame[i] = (unsigned char)(v + i);
    gm_yield();
    for (int i = 0; i < 200; i++)
        if (frame[i] != (unsigned char)(v + i))
            abort();
    coro_sum += (int)v;
}
static void coro_main(void *arg)
{
    int n = (int)(uintptr_t)arg;
    for (int i = 0; i < n; i++) {
        gm_go_options o = { i % 3 == 0 ? GM_STACK_DEDICATED : GM_STACK_COPIED, 8192, NULL, 0 };
        gm_go_opts(coro_fn, (void *)(uintptr_t)i, &o);
    }
}

// Channels: nprod producers send their values over a channel of capacity
// cap (0: unbuffered) to one consumer that sums them, with a select whose
// default case polls a second, never-ready channel; one coroutine parks
// and is readied by the consumer. Elements are 1 to 64 bytes.
typedef struct {
    gm_chan *c, *never;
    int nprod, per;
    size_t esize;
    long sum;
    gm_g *parked;
    int woke;
} chanrun;

static void chan_producer(void *arg)
{
    chanrun *r = arg;
    unsigned char e[64];
    for (int i = 0; i < r->per; i++) {
        memset(e, 0, sizeof e);
        e[0] = (unsigned char)(i + 1);
        e[r->esize - 1] ^= 0x5a; // the last byte travels too
        gm_chan_send(r->c, e);
    }
}

static void chan_parker(void *arg)
{
    chanrun *r = arg;
    r->parked = gm_self();
    gm_park();
    r->woke = 1;
}

static void chan_consumer(void *arg)
{
    chanrun *r = arg;
    unsigned char e[64], x[64];
    for (int got = 0; got < r->nprod * r->per;) {
        gm_select_case cases[2] = { { r->c, GM_SELECT_RECV, e, NULL }, { r->never, GM_SELECT_RECV, x, NULL } };
        int k = gm_select(cases, 2, got % 3 == 0); // sometimes poll, sometimes block
        if (k == -1) {
            gm_yield();
            continue;
        }
        if (k != 0)
            abort(); // the never-ready channel was chosen
        if (r->esize == 1) {
            r->sum += e[0] ^ 0x5a;
        } else {
            if (e[r->esize - 1] != 0x5a)
                abort(); // the last byte did not arrive intact
            r->sum += e[0];
        }
        got++;
    }
    while (r->parked == NULL)
        gm_yield();
    gm_ready(r->parked);
}

static void chan_main(void *arg)
{
    chanrun *r = arg;
    // The parker and the consumer share worker 0: the parker publishes
    // itself and parks with no switch in between, so the consumer cannot
    // ready it before it has parked (on two workers it could: gm_ready of a
    // coroutine not parked yet is an error, and the fuzzer found the race).
    gm_go_options pin = { GM_STACK_COPIED, 0, NULL, 1 };
    gm_go_opts(chan_parker, r, &pin);
    for (int i = 0; i < r->nprod; i++)
        gm_go(chan_producer, r);
    gm_go_opts(chan_consumer, r, &pin);
}

static int run_channels(uint8_t a, uint8_t b)
{
    chanrun r = { 0 };
    r.esize = 1 + b % 64;
    r.nprod = 1 + a % 4;
    r.per = 1 + (a >> 2) % 16;
    r.c = gm_chan_new(r.esize, (size_t)(b >> 6)); // capacity 0..3
    r.never = gm_chan_new(r.esize, 0);
    if (r.c == NULL || r.never == NULL || gm_main(chan_main, &r) != 0)
        return 0;
    gm_chan_free(r.c);
    gm_chan_free(r.never);
    long want = (long)r.nprod * r.per * (r.per + 1) / 2;
    return r.sum == want && r.woke;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gm_memstats base;
    static int inited;
    if (!inited) {
        gm_thread_flush();
        gm_stats(&base);
        inited = 1;
    }
    for (size_t off = 0; off + 4 <= size; off += 4) {
        uint8_t op = data[off], a = data[off + 2], b = data[off + 3];
        int i = data[off + 1] % Slots;
        slot *s = &slots[i];
        switch (op % 10) {
        case 0: case 1: case 2: { // malloc / calloc / bytes
            release(i);
            size_t n = size_of(a, b);
            unsigned char *p = op % 10 == 0 ? gm_malloc(n) : op % 10 == 1 ? gm_calloc(1, n) : gm_malloc_bytes(n);
            if (p == NULL)
                die("allocation failed", i);
            if (op % 10 == 1)
                for (size_t k = 0; k < n; k++)
                    if (p[k] != 0)
                        die("calloc memory not zero", i);
            size_t align = 1;
            while (align * 2 <= n && align < 16)
                align *= 2;
            if (op % 10 != 2 && ((uintptr_t)p & (align - 1)) != 0)
                die("malloc alignment", i);
            *s = (slot){ p, n, (unsigned char)(b | 1), 1, { 0, 0 } };
            memset(p, s->fill, n);
            break;
        }
        case 3: { // realloc
            if (s->kind != 1)
                break;
            check(i);
            size_t n = size_of(a, b);
            unsigned char *p = gm_realloc(s->p, n == 0 ? 1 : n);
            if (p == NULL)
                die("realloc failed", i);
            size_t keep = s->n < n ? s->n : n;
            for (size_t k = 0; k < keep; k++)
                if (p[k] != s->fill)
                    die("realloc lost contents", i);
            s->p = p;
            s->n = n == 0 ? 1 : n;
            memset(p, s->fill, s->n);
            break;
        }
        case 4: { // aligned
            release(i);
            size_t align = (size_t)1 << (a % 14);
            size_t n = size_of(b, a);
            unsigned char *p = gm_aligned_alloc(align, n);
            if (p == NULL || ((uintptr_t)p & (align - 1)) != 0)
                die("aligned_alloc", i);
            *s = (slot){ p, n, (unsigned char)(a | 1), 1, { 0, 0 } };
            memset(p, s->fill, n);
            break;
        }
        case 5: case 6:
            release(i);
            break;
        case 7: { // stack
            release(i);
            gm_stack st = gm_stackalloc((size_t)512 << (a % 9));
            if (st.lo == 0)
                die("stackalloc failed", i);
            *s = (slot){ NULL, 0, (unsigned char)(b | 1), 2, st };
            ((unsigned char *)st.lo)[0] = s->fill;
            ((unsigned char *)st.lo)[st.hi - st.lo - 1] = s->fill;
            break;
        }
        case 8: // the tiny allocator's setting
            gm_set_max_tiny_size((size_t[]){ 0, 8, 16, 32 }[a % 4]);
            break;
        case 9: { // coroutines (odd b: over channels)
            if (b & 1) {
                if (!run_channels(a, b))
                    die("channels", i);
                break;
            }
            coro_sum = 0;
            int n = 1 + a % 16;
            if (gm_main(coro_main, (void *)(uintptr_t)n) != 0 || coro_sum != n * (n - 1) / 2)
                die("coroutines", i);
            break;
        }
        }
    }
    for (int i = 0; i < Slots; i++)
        release(i);
    gm_set_max_tiny_size(16);
    gm_thread_flush();
    const char *bad = gm_debug_check();
    if (bad != NULL) {
        fprintf(stderr, "fuzz: %s\n", bad);
        abort();
    }
    gm_memstats m;
    gm_stats(&m);
    if (m.heap_objects != base.heap_objects || m.heap_alloc != base.heap_alloc) {
        fprintf(stderr, "fuzz: counters do not return: objects %llu -> %llu, bytes %llu -> %llu\n",
                (unsigned long long)base.heap_objects, (unsigned long long)m.heap_objects,
                (unsigned long long)base.heap_alloc, (unsigned long long)m.heap_alloc);
        abort();
    }
    return 0;
}
