// SPDX-License-Identifier: MIT
//
// The drop-in malloc (src/override.c), linked statically from libgomem.a:
// the C library's allocation functions and glibc's own internal allocations
// land in gomem; contracts hold; threads and fork work; a heap bug in the
// program gets a message naming it and SIGABRT. (tests/realworld.sh runs
// real programs under LD_PRELOAD.)
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomem.h"
#include "testing.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_OVERRIDE 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NO_OVERRIDE 1
#endif
#endif

#ifdef NO_OVERRIDE
int main(void)
{
    // The sanitizers bring their own malloc; the drop-in is not built.
    printf("override_test: not built under sanitizers (their malloc wins): no tests\n");
    return test_report();
}
#else

static volatile size_t huge = SIZE_MAX;

#ifndef __GLIBC__
void *pvalloc(size_t n); // glibc's; gomem exports it on musl too, whose headers lack it
#endif

static uint64_t mallocs(void)
{
    gm_memstats m;
    gm_stats(&m);
    return m.mallocs;
}

TEST(libc_allocations_are_gomem)
{
    uint64_t a = mallocs();
    void *p = malloc(100);
    char *s = strdup("glibc's strdup calls our malloc");
    void *volatile q = calloc(10, 10); // volatile: else the compiler drops the pair
    CHECK(mallocs() - a >= 3);
    CHECK(gm_malloc_usable_size(p) >= 100); // gomem knows it: no abort
    CHECK(malloc_usable_size(s) >= strlen(s) + 1);
    free(p);
    free(s);
    free(q);
    FILE *f = fopen("/proc/self/statm", "r"); // stdio buffers: glibc-internal malloc
    CHECK(f != NULL);
    char buf[64];
    CHECK(fgets(buf, sizeof buf, f) != NULL);
    fclose(f);
}

TEST(contracts)
{
    errno = 0;
    CHECK(malloc(huge) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(calloc(huge / 2, 3) == NULL);
    CHECK_EQ(errno, ENOMEM);
    void *p = NULL;
    CHECK_EQ(posix_memalign(&p, 64, 1000), 0);
    CHECK(((uintptr_t)p & 63) == 0);
    free(p);
    CHECK_EQ(posix_memalign(&p, 3, 10), EINVAL);
    long page = sysconf(_SC_PAGESIZE);
    void *v = valloc(10), *pv = pvalloc(10);
    CHECK(((uintptr_t)v & (uintptr_t)(page - 1)) == 0);
    CHECK(((uintptr_t)pv & (uintptr_t)(page - 1)) == 0);
    CHECK(malloc_usable_size(pv) >= (size_t)page);
    free(v);
    free(pv);
    void *al = aligned_alloc(4096, 5000);
    CHECK(((uintptr_t)al & 4095) == 0);
    free(al);
    void *m = memalign(256, 10);
    CHECK(((uintptr_t)m & 255) == 0);
    free(m);
    char *r = realloc(NULL, 10);
    memcpy(r, "123456789", 10);
    r = realloc(r, 100000);
    CHECK(strcmp(r, "123456789") == 0);
    free(r);
    int *arr = reallocarray(NULL, 1000, sizeof(int));
    CHECK(arr != NULL);
    free(arr);
    free(NULL);
}

static void *thread_work(void *arg)
{
    char **out = arg;
    for (int i = 0; i < 10000; i++) {
        char *s = malloc(1 + (size_t)i % 300);
        s[0] = 'x';
        free(s);
    }
    *out = strdup("from a thread");
    return NULL;
}

TEST(threads_and_fork)
{
    pthread_t t[4];
    char *res[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, thread_work, &res[i]);
    // fork while the threads allocate: the child's malloc works.
    pid_t pid = fork();
    if (pid == 0) {
        char *s = malloc(1000);
        memset(s, 1, 1000);
        free(s);
        char *d = strdup("child");
        _exit(d != NULL && strcmp(d, "child") == 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        TALLY(bad, strcmp(res[i], "from a thread") == 0, "thread %d", i);
        free(res[i]); // allocated by a thread that has exited
    }
    CHECK_EQ(bad, 0);
}

static void double_free(void *arg)
{
    (void)arg;
    char *volatile p = malloc(40);
    free(p);
    free(p);
}
static void stack_free(void *arg)
{
    (void)arg;

    char local[16];
    char *volatile bad = local; // the compiler would reject the bug itself
    free(bad);
}
static void interior_free(void *arg)
{
    (void)arg;
    static volatile uintptr_t offset = 16;
    char *p = malloc(100);
    free(p + offset);
}
static void mmap_free(void *arg)
{
    (void)arg;
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    free(m);
}
static void realloc_freed(void *arg)
{
    (void)arg;
    char *p = malloc(200);
    char *volatile same = p; // hides the bug from -Wuse-after-free: it is the point
    free(p);
    p = realloc(same, 300);
    free(p);
}

static int died_by_abort(void (*fn)(void *), const char *want)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        fn(NULL);
        _exit(0);
    }
    close(fds[1]);
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(buf, want) != NULL;
    if (!ok)
        fprintf(stderr, "    status 0x%x, stderr: %s\n", st, buf);
    return ok;
}

TEST(heap_bugs_get_a_message_and_sigabrt)
{
    CHECK(died_by_abort(double_free, "double free"));
    CHECK(died_by_abort(stack_free, "not allocated by gomem"));
    CHECK(died_by_abort(interior_free, "not the start of an object"));
    CHECK(died_by_abort(mmap_free, "not allocated by gomem"));
    CHECK(died_by_abort(realloc_freed, "realloc("));
}

#ifdef __GLIBC__
// glibc's mallinfo2, mallinfo, malloc_trim, malloc_stats and malloc_info
// report and trim gomem's heap, not glibc's idle one. (Not on other C
// libraries, which have none of them: override.c does not export them.)
TEST(glibc_heap_extensions)
{
    gm_scavenge(); // nothing free and resident to start with
    struct mallinfo2 a = mallinfo2();
    CHECK_EQ(a.keepcost, 0);
    CHECK_EQ(a.arena, a.uordblks + a.fordblks);

    enum { NSMALL = 2000, NLARGE = 40, LARGE = 96 << 10 }; // whole pages, kept when freed (under 256 KiB)
    static char *small[NSMALL], *large[NLARGE];
    for (int i = 0; i < NSMALL; i++)
        memset(small[i] = malloc(1000), 1, 1000);
    for (int i = 0; i < NLARGE; i++)
        memset(large[i] = malloc(LARGE), 2, LARGE);
    struct mallinfo2 b = mallinfo2();
    CHECK(b.uordblks >= a.uordblks + NSMALL * 1000);
    CHECK_EQ(b.hblks, a.hblks + NLARGE);
    CHECK_EQ(b.hblkhd, a.hblkhd + NLARGE * (size_t)LARGE);
    CHECK_EQ(b.arena, b.uordblks + b.fordblks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo old = mallinfo(); // the int version: the same figures while they fit
#pragma GCC diagnostic pop
    CHECK_EQ((size_t)old.uordblks, b.uordblks);
    CHECK_EQ((size_t)old.hblkhd, b.hblkhd);

    for (int i = 0; i < NSMALL; i++)
        free(small[i]);
    for (int i = 0; i < NLARGE; i++)
        free(large[i]);
    gm_thread_flush(); // the spans this thread caches go back to the heap
    struct mallinfo2 c = mallinfo2();
    CHECK_EQ(c.hblks, a.hblks);
    CHECK(c.uordblks < b.uordblks - NSMALL * 900);
    CHECK(c.keepcost >= NLARGE * (size_t)LARGE); // free pages still resident
    CHECK_EQ(malloc_trim(0), 1);
    struct mallinfo2 d = mallinfo2();
    CHECK_EQ(d.keepcost, 0);
    CHECK(d.arena < c.arena);
    CHECK_EQ(malloc_trim(0), 0); // nothing left to give back

    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK_EQ(malloc_info(0, f), 0);
    errno = 0;
    CHECK_EQ(malloc_info(1, f), -1);
    CHECK_EQ(errno, EINVAL);
    int saved = dup(2);
    CHECK(dup2(fileno(f), 2) == 2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[1024];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    CHECK(strstr(buf, "<malloc version=\"1\" allocator=\"gomem") != NULL);
    CHECK(strstr(buf, "</malloc>") != NULL);
    CHECK(strstr(buf, "in use bytes") != NULL);
}
#endif

// A program that only allocates, with libgomem.so preloaded, has a part of
// the library's text resident, not all of it: the functions it runs sit
// together (src/libgomem_hot.ld), and the kernel maps text around a fault
// in 64 KiB windows. Spread out, they had all 152 KiB resident.
TEST(a_malloc_only_program_keeps_little_of_the_library_text_resident)
{
    if (test_skip_qemu("qemu-user would preload the library into itself"))
        return;
    if (GM_DEBUG != 0) { // its validators run from the malloc path, from all over the library
        printf("    (skipped: a GM_DEBUG build's malloc path reaches all of the library)\n");
        return;
    }
    const char *b = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[512], line[128] = "";
    snprintf(cmd, sizeof cmd, "LD_PRELOAD=$PWD/%s/libgomem.so %s/hottext --text-rss", b, b);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    char *got = fgets(line, sizeof line, f);
    CHECK_EQ(pclose(f), 0);
    unsigned long rss = 0, size = 0;
    CHECK(got != NULL && sscanf(line, "%lu %lu", &rss, &size) == 2);
    printf("    %lu of %lu KiB of libgomem's text resident\n", rss, size);
    CHECK(size > 0 && rss * 2 <= size);
}

int main(void)
{
    RUN(libc_allocations_are_gomem);
    RUN(contracts);
#ifdef __GLIBC__
    RUN(glibc_heap_extensions);
#endif
    RUN(threads_and_fork);
    RUN(heap_bugs_get_a_message_and_sigabrt);
    RUN(a_malloc_only_program_keeps_little_of_the_library_text_resident);
    return test_report();
}
#endif
