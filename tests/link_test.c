// SPDX-License-Identifier: MIT
//
// Linking like a user: this program defines names gomem uses inside (lock,
// debug, throw, netpoll, ...) and links the installed static archives, whose
// internal symbols are local, so nothing clashes. Built twice: against
// libgomem.a, whose malloc is gomem's, and (-DLINK_CORE) against
// libgomem_core.a, which leaves the C library's malloc in place.
#include <stdlib.h>
#include <string.h>

#include "gomem.h"
#include "testing.h"

// Names of gomem's internals, defined again by the program.
int debug = 7;
int trace_on = 1;
int runtime_procs = 3;
int checkedGs;
void lock(void);
void unlock(void);
void throw(const char *what);
void runtime_init(void);
long parse_bytes(void);
void netpoll(void);
void *os_reserve(void);
void lock(void)
{
    debug++;
}
void unlock(void)
{
    debug--;
}
void throw(const char *what)
{
    (void)what;
    abort();
}
void runtime_init(void)
{
    trace_on = 2;
}
long parse_bytes(void)
{
    return 42;
}
void netpoll(void)
{
}
void *os_reserve(void)
{
    return NULL;
}

static gm_chan *results;
static void square(void *arg)
{
    long v = (long)(intptr_t)arg * (long)(intptr_t)arg;
    gm_chan_send(results, &v);
}
static void squares(void *arg)
{
    (void)arg;
    for (long i = 1; i <= 10; i++)
        gm_go(square, (void *)(intptr_t)i);
    long sum = 0, v;
    for (int i = 0; i < 10; i++) {
        gm_chan_recv(results, &v);
        sum += v;
    }
    *(long *)gm_malloc(sizeof sum) = sum; // kept: counted below
    CHECK_EQ(sum, 385);
}

TEST(program_names_and_gomem_coexist)
{
    lock();
    unlock();
    runtime_init();
    CHECK_EQ(debug, 7);
    CHECK_EQ(trace_on, 2);
    CHECK_EQ(parse_bytes(), 42);
    results = gm_chan_new(sizeof(long), 0);
    CHECK_EQ(gm_main(squares, NULL), 0);
    gm_chan_free(results);
    char *s = gm_strdup("gomem");
    CHECK_STR(s, "gomem");
    gm_free(s);
}

// The sanitizers bring their own malloc, and gomem's drop-in is left out of
// a sanitizer build.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_MALLOC 1
#endif
#endif
#if defined(LINK_CORE) || defined(SANITIZER_MALLOC)
#define GOMEM_MALLOC 0
#else
#define GOMEM_MALLOC 1
#endif

// malloc is gomem's with libgomem.a and the C library's with
// libgomem_core.a: gomem's heap counts the object or it does not.
TEST(malloc_is_whose_the_archive_says)
{
    gm_memstats before, after;
    gm_stats(&before);
    void *volatile p = malloc(1000);
    gm_stats(&after);
    if (GOMEM_MALLOC)
        CHECK(after.heap_alloc >= before.heap_alloc + 1000);
    else
        CHECK_EQ(after.heap_alloc, before.heap_alloc);
    free(p);
}

int main(void)
{
    RUN(program_names_and_gomem_coexist);
    RUN(malloc_is_whose_the_archive_says);
    return test_report();
}
