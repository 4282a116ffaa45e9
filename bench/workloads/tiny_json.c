// SPDX-License-Identifier: MIT
//
// The tiny allocator's workload: in C, the kind of JSON benchmark Go's tiny
// allocator is credited on (a smaller heap from packing small pieces).
//   tiny_json gen FILE MB     writes a generated JSON document of about MB MiB
//   tiny_json strings         1M live strings of 1-15 bytes, 10M replaced
//   tiny_json halves          2M strings of 1-14 bytes, every second one
//                             then replaced by a 7-byte string
//   tiny_json parse FILE      parses it into a tree (nodes, key strings,
//                             string values, boxed numbers: every small
//                             piece is its own allocation, as Go's escaping
//                             strings and values are), then frees it
// prints "objects N blocks N heap_peak_kib N maxrss_kib N ms N check N".
// Built against the C library's malloc (peers come in by LD_PRELOAD;
// "blocks" is then unknown and printed as the object count) and with
// -DUSE_GOMEM against gm_malloc / gm_strdup (blocks = heap blocks taken from
// size classes: objects not packed + tiny blocks).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bench.h"

#ifdef USE_GOMEM
#include "gomem.h"
#define MALLOC gm_malloc
#define FREE gm_free
#define STRNDUP gm_strndup
#else
#define MALLOC malloc
#define FREE free
#define STRNDUP strndup
#endif

// The tree mirrors what Go's encoding/json builds for interface{}: an
// object or array is one array of (key, value) slots allocated when it
// closes (Go: a map or slice), every string is its own allocation (Go: the
// string's bytes), every number a boxed 8-byte double (Go: a float64 in an
// interface), booleans and null need none.
enum { JNull, JBool, JNum, JStr, JArr, JObj };
typedef struct value {
    char *key;   // in an object, else NULL
    void *p;     // string, double, or struct container
    int type;
    int b;
} value;
typedef struct container {
    long n;
    value v[];
} container;

static FILE *in;
static long nobjects;

static int peekc(void)
{
    int c;
    while ((c = getc_unlocked(in)) == ' ' || c == '\n' || c == '\t' || c == '\r')
        ;
    if (c != EOF)
        ungetc(c, in);
    return c;
}

static char *parse_string(void)
{
    char buf[4096];
    size_t n = 0;
    getc_unlocked(in); // opening quote
    int c;
    while ((c = getc_unlocked(in)) != '"' && c != EOF)
        if (n < sizeof buf - 1)
            buf[n++] = (char)c;
    nobjects++;
    return STRNDUP(buf, n);
}

static value parse_value(void);

// Children are collected on a stack shared by all levels, then copied into
// one allocation when the container closes. The stack is the C library's
// scratch memory in every build (the same for every allocator measured).
static value *stack;
static long sp, stackcap;

static void push(value v)
{
    if (sp == stackcap) {
        stackcap = stackcap ? stackcap * 2 : 1024;
        stack = realloc(stack, (size_t)stackcap * sizeof *stack);
        if (stack == NULL)
            abort();
    }
    stack[sp++] = v;
}

static value parse_container(int type, int close)
{
    long base = sp;
    getc_unlocked(in);
    if (peekc() != close) {
        for (;;) {
            char *key = NULL;
            if (type == JObj) {
                peekc();
                key = parse_string();
                peekc();
                getc_unlocked(in); // ':'
            }
            value v = parse_value();
            v.key = key;
            push(v);
            int c = peekc();
            getc_unlocked(in);
            if (c != ',')
                break;
        }
    } else {
        getc_unlocked(in);
    }
    long n = sp - base;
    container *c = MALLOC(sizeof *c + (size_t)n * sizeof(value));
    nobjects++;
    c->n = n;
    memcpy(c->v, &stack[base], (size_t)n * sizeof(value));
    sp = base;
    return (value){ NULL, c, type, 0 };
}

static value parse_value(void)
{
    int c = peekc();
    if (c == '{')
        return parse_container(JObj, '}');
    if (c == '[')
        return parse_container(JArr, ']');
    if (c == '"')
        return (value){ NULL, parse_string(), JStr, 0 };
    if (c == 't' || c == 'f' || c == 'n') {
        char w[8];
        int n = 0;
        while ((c = getc_unlocked(in)) >= 'a' && c <= 'z' && n < 7)
            w[n++] = (char)c;
        ungetc(c, in);
        return (value){ NULL, NULL, w[0] == 'n' ? JNull : JBool, w[0] == 't' };
    }
    char num[64];
    int n = 0;
    while (((c = getc_unlocked(in)) >= '0' && c <= '9') || c == '.' || c == '-' || c == 'e' || c == '+')
        if (n < 63)
            num[n++] = (char)c;
    ungetc(c, in);
    num[n] = 0;
    double *d = MALLOC(sizeof(double)); // a boxed number, as Go's float64 in an interface
    nobjects++;
    *d = strtod(num, NULL);
    return (value){ NULL, d, JNum, 0 };
}

static uint64_t walk_free(value x)
{
    uint64_t sum = 0;
    if (x.key) {
        sum += (unsigned char)x.key[0];
        FREE(x.key);
    }
    if (x.type == JStr) {
        sum += strlen(x.p);
        FREE(x.p);
    } else if (x.type == JNum) {
        sum += (uint64_t) * (double *)x.p;
        FREE(x.p);
    } else if (x.type == JArr || x.type == JObj) {
        container *c = x.p;
        for (long i = 0; i < c->n; i++)
            sum += walk_free(c->v[i]);
        FREE(c);
    }
    return sum;
}

#ifdef USE_GOMEM
// The most packing could save (run with maxTinySize 0, where an object's
// usable size is its size class): the class bytes of every piece under 16
// bytes minus its own bytes, against the class bytes of all pieces. Peak
// RSS holds at least the heap, so no tiny allocator can cut RSS by more.
static uint64_t boundClass, boundSmallClass, boundSmallExact;

static void tally(void *p, size_t n)
{
    size_t u = gm_malloc_usable_size(p);
    boundClass += u;
    if (n < 16) {
        boundSmallClass += u;
        boundSmallExact += n;
    }
}

static void walk_bound(value x)
{
    if (x.key)
        tally(x.key, strlen(x.key) + 1);
    if (x.type == JStr) {
        tally(x.p, strlen(x.p) + 1);
    } else if (x.type == JNum) {
        tally(x.p, sizeof(double));
    } else if (x.type == JArr || x.type == JObj) {
        container *c = x.p;
        tally(c, sizeof *c + (size_t)c->n * sizeof(value));
        for (long i = 0; i < c->n; i++)
            walk_bound(c->v[i]);
    }
}
#endif

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void word(FILE *f, uint64_t *s, int lo, int hi)
{
    int n = lo + (int)(rnd(s) % (uint64_t)(hi - lo + 1));
    for (int i = 0; i < n; i++)
        fputc('a' + (int)(rnd(s) % 26), f);
}

static void gen(const char *path, long mb)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    static const char *keys[] = { "id", "name", "email", "city", "tags", "score", "active", "ref", "lat", "lon" };
    uint64_t s = 88172645463325252ull;
    fputs("[\n", f);
    for (long rec = 0; ftell(f) < mb << 20; rec++) {
        fprintf(f, "%s{\"%s\": %ld, \"%s\": \"", rec ? ",\n" : "", keys[0], rec, keys[1]);
        word(f, &s, 3, 12);
        fprintf(f, "\", \"%s\": \"", keys[2]);
        word(f, &s, 5, 20);
        fprintf(f, "@x.io\", \"%s\": \"", keys[3]);
        word(f, &s, 4, 10);
        fprintf(f, "\", \"%s\": [", keys[4]);
        int ntags = (int)(rnd(&s) % 5);
        for (int t = 0; t < ntags; t++) {
            fputs(t ? ", \"" : "\"", f);
            word(f, &s, 1, 8);
            fputc('"', f);
        }
        fprintf(f, "], \"%s\": %.2f, \"%s\": %s, \"%s\": \"", keys[5], (double)(rnd(&s) % 10000) / 100,
                keys[6], rnd(&s) & 1 ? "true" : "false", keys[7]);
        word(f, &s, 2, 40);
        fprintf(f, "\", \"%s\": %.4f, \"%s\": %.4f}", keys[8], (double)(rnd(&s) % 1800000) / 10000 - 90,
                keys[9], (double)(rnd(&s) % 3600000) / 10000 - 180);
    }
    fputs("\n]\n", f);
    fclose(f);
}

// Many short strings (1-15 bytes, 1M live) replaced at random 10M times.
static int strings(void)
{
    enum { Live = 1000000, Ops = 10000000 };
    char **slot = calloc(Live, sizeof *slot);
    uint64_t s = 12345, sum = 0;
    char buf[16];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < Live + Ops; i++) {
        long k = i < Live ? i : (long)(rnd(&s) % Live);
        if (slot[k]) {
            sum += (unsigned char)slot[k][0];
            FREE(slot[k]);
        }
        size_t n = 1 + rnd(&s) % 14;
        memset(buf, 'a' + (int)(n % 26), n);
        slot[k] = STRNDUP(buf, n);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (long k = 0; k < Live; k++)
        FREE(slot[k]);
    printf("objects %d blocks 0 heap_peak_kib 0 maxrss_kib %zu ms %.0f check %llu\n", Live + Ops, bench_peak_rss_kib(),
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
           (unsigned long long)sum);
    return 0;
}

// Short strings whose holes are refilled: 2M strings of 1-14 B, then every
// second one freed and replaced by a 7-byte string. Packed blocks keep a
// hole until every piece in them is freed, so this is where a tiny
// allocator could cost memory instead of saving it.
static int halves(void)
{
    enum { Live = 2000000 };
    char **slot = calloc(Live, sizeof *slot);
    uint64_t s = 54321, sum = 0;
    char buf[16];
    for (long k = 0; k < Live; k++) {
        size_t n = 1 + rnd(&s) % 14;
        memset(buf, 'a' + (int)(n % 26), n);
        slot[k] = STRNDUP(buf, n);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < Live; k += 2) {
        sum += (unsigned char)slot[k][0];
        FREE(slot[k]);
        slot[k] = STRNDUP("seven..", 7);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (long k = 0; k < Live; k++)
        FREE(slot[k]);
    free(slot);
    printf("objects %d blocks 0 heap_peak_kib 0 maxrss_kib %zu ms %.0f check %llu\n", Live + Live / 2, bench_peak_rss_kib(),
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
           (unsigned long long)sum);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "strings") == 0)
        return strings();
    if (argc == 2 && strcmp(argv[1], "halves") == 0)
        return halves();
    if (argc == 4 && strcmp(argv[1], "gen") == 0) {
        gen(argv[2], atol(argv[3]));
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "parse") != 0) {
        fprintf(stderr, "usage: %s gen FILE MB | parse FILE | strings | halves\n", argv[0]);
        return 2;
    }
    in = fopen(argv[2], "r");
    if (in == NULL) {
        perror(argv[2]);
        return 1;
    }
    static char buf[1 << 20];
    setvbuf(in, buf, _IOFBF, sizeof buf);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    value root = parse_value();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long blocks = nobjects, heap_peak = 0;
    char bound[96] = "";
#ifdef USE_GOMEM
    gm_memstats m;
    gm_stats(&m);
    blocks = (long)(m.heap_objects - (m.tiny_allocs - m.tiny_frees) + m.tiny_blocks);
    heap_peak = (long)(m.heap_alloc >> 10);
    if (gm_get_max_tiny_size() == 0) { // not timed
        walk_bound(root);
        snprintf(bound, sizeof bound, " packing_bound_pct %.2f packing_bound_kib %llu",
                 100.0 * (double)(boundSmallClass - boundSmallExact) / (double)boundClass,
                 (unsigned long long)((boundSmallClass - boundSmallExact) >> 10));
    }
#endif
    struct timespec t2, t3;
    clock_gettime(CLOCK_MONOTONIC, &t2);
    uint64_t check = walk_free(root);
    clock_gettime(CLOCK_MONOTONIC, &t3);
    // parse + free, without the bound's walk
    t1.tv_sec += t3.tv_sec - t2.tv_sec;
    t1.tv_nsec += t3.tv_nsec - t2.tv_nsec;
    fclose(in);
    printf("objects %ld blocks %ld heap_peak_kib %ld maxrss_kib %zu ms %.0f check %llu%s\n", nobjects, blocks,
           heap_peak, bench_peak_rss_kib(),
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
           (unsigned long long)check, bound);
    return 0;
}
