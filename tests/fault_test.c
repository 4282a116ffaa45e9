// SPDX-License-Identifier: MIT
//
// Fault injection at every mmap, mprotect, madvise and mremap call site.
// A workload that uses every API (heap of every size, realloc, aligned
// allocation, stacks, coroutines in both modes and under stackcheck,
// channels, a worker group of two, the scavenger) runs once to count the
// calls of each kind it makes; then, for each kind and each n up to that
// count, it runs again in a child process in which the nth and every later
// call of that kind fails. Each failure must come back as NULL or -1 with
// errno ENOMEM (checked at every call), contents that were written must
// survive, and gm_debug_check() must pass at the end. The one failure with
// no error path (a parked copied coroutine whose stack cannot be saved)
// must abort with gomem's message naming the coroutine; nothing may crash.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomem.h"
#include "os.h"
#include "testing.h"

static int problems; // in the child: checks that failed

#define EXPECT(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "    child: %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #cond, errno);        \
            problems++;                                                                                      \
        }                                                                                                    \
    } while (0)

// NULL must mean ENOMEM; a block must hold what was written to it.
static void *fill(size_t n, int v)
{
    errno = 0;
    unsigned char *p = gm_malloc(n);
    if (p == NULL) {
        EXPECT(errno == ENOMEM);
        return NULL;
    }
    memset(p, v, n);
    return p;
}

static int holds(const unsigned char *p, size_t n, int v)
{
    for (size_t i = 0; i < n; i += 61)
        if (p[i] != (unsigned char)v)
            return 0;
    return p[n - 1] == (unsigned char)v;
}

static long deep(int n)
{
    volatile char pad[256];
    memset((char *)pad, n, sizeof pad);
    long r = n > 0 ? deep(n - 1) : 0;
    if (n == 0)
        gm_yield();
    return r + pad[100];
}

static void copiedFn(void *arg)
{
    long *out = arg;
    *out = deep(60); // ~20 KiB: the saved copy grows past several orders
    gm_yield();
}

static void dedicatedFn(void *arg)
{
    gm_chan *c = arg;
    int v = 7;
    gm_chan_send(c, &v);
}

static long deepResult;

static void mainFn(void *arg)
{
    (void)arg;
    gm_go_options d = { GM_STACK_DEDICATED, 64 << 10, "dedicated", 0 };
    errno = 0;
    gm_chan *c = gm_chan_new(sizeof(int), 0);
    if (c == NULL) {
        EXPECT(errno == ENOMEM);
        return;
    }
    errno = 0;
    gm_g *g = gm_go_opts(dedicatedFn, c, &d);
    if (g == NULL)
        EXPECT(errno == ENOMEM);
    errno = 0;
    gm_g *h = gm_go(copiedFn, &deepResult);
    if (h == NULL)
        EXPECT(errno == ENOMEM);
    if (g != NULL) {
        int v = 0;
        EXPECT(gm_chan_recv(c, &v) == 1 && v == 7);
    }
    gm_yield();
    gm_chan_free(c);
}

static int workload(void)
{
    problems = 0;
    // The heap: tiny, small, a span's worth, large, huge.
    static const size_t sizes[] = { 5, 24, 100, 1000, 5000, 40000, 300000, 4 << 20, 64 << 20 };
    void *keep[sizeof sizes / sizeof *sizes];
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        keep[i] = fill(sizes[i], (int)i + 1);
    errno = 0;
    unsigned char *z = gm_calloc(100000, 3);
    if (z == NULL)
        EXPECT(errno == ENOMEM);
    else
        EXPECT(z[0] == 0 && z[299999] == 0);
    // realloc: on failure the old block stays, whole.
    unsigned char *r = fill(64, 0x5a);
    for (size_t n = 128; r != NULL && n <= (8u << 20); n *= 4) {
        errno = 0;
        unsigned char *q = gm_realloc(r, n);
        if (q == NULL) {
            EXPECT(errno == ENOMEM);
            EXPECT(holds(r, 64, 0x5a));
            break;
        }
        r = q;
        EXPECT(holds(r, 64, 0x5a));
        memset(r, 0x5a, n);
    }
    // Large reallocs that cannot grow in place (the next object follows
    // each), to a size the heap must grow for: their pages move (mremap),
    // or are copied when that fails.
    unsigned char *mv[3];
    for (int i = 0; i < 3; i++)
        mv[i] = fill(2 << 20, 0x30 + i);
    for (int i = 0; i < 2; i++) {
        if (mv[i] == NULL)
            continue;
        errno = 0;
        unsigned char *q = gm_realloc(mv[i], 48 << 20);
        if (q == NULL) {
            EXPECT(errno == ENOMEM);
            EXPECT(holds(mv[i], 2 << 20, 0x30 + i));
            continue;
        }
        EXPECT(holds(q, 2 << 20, 0x30 + i));
        q[(48 << 20) - 1] = 1; // the new pages are writable
        mv[i] = q;
    }
    for (int i = 0; i < 3; i++)
        gm_free(mv[i]);
    errno = 0;
    void *a = gm_aligned_alloc(1 << 16, 200000);
    if (a == NULL)
        EXPECT(errno == ENOMEM);
    else
        EXPECT(((uintptr_t)a & 0xffff) == 0);
    // Stacks of every kind of size.
    gm_stack st[3];
    static const size_t ss[] = { 512, 16 << 10, 2 << 20 };
    for (int i = 0; i < 3; i++) {
        errno = 0;
        st[i] = gm_stackalloc(ss[i]);
        if (st[i].lo == 0)
            EXPECT(errno == ENOMEM);
        else
            memset((void *)st[i].lo, i, ss[i]);
    }
    // Coroutines: copied (its saved stack grows), dedicated (guard page),
    // a channel; once on one worker, once on two.
    for (int procs = 1; procs <= 2; procs++) {
        gm_set_procs(procs);
        errno = 0;
        if (gm_main(mainFn, NULL) != 0)
            EXPECT(errno == ENOMEM);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (keep[i] != NULL) {
            EXPECT(holds(keep[i], sizes[i], (int)i + 1));
            gm_free(keep[i]);
        }
    for (int i = 0; i < 3; i++)
        if (st[i].lo != 0)
            gm_stackfree(st[i]);
    gm_free(z);
    gm_free(r);
    gm_free(a);
    gm_scavenge(); // madvise: failures leave pages resident, nothing else
    const char *bad = gm_debug_check();
    if (bad != NULL) {
        fprintf(stderr, "    child: gm_debug_check: %s\n", bad);
        problems++;
    }
    return problems;
}

// ------------------------------------------------------------ the sweep

enum outcome { OK, REPORTED_ABORT, BROKEN };

#define NKINDS 4

// realloc never moves pages in secure mode (guarded objects) nor under ASan
// (whose shadow would not move): no mremap kind to sweep there.
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifndef ASAN_BUILD
#define ASAN_BUILD 0
#endif
static const char *kindName[NKINDS] = { "mmap", "mprotect", "madvise", "mremap" };

// Runs the workload in a child with the nth call of kind failing (n 0: no
// fault); stores the child's call counts in calls[] when asked.
static enum outcome runChild(int kind, uint64_t n, uint64_t calls[NKINDS], char *why, size_t whylen)
{
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0)
        return BROKEN;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(out[0]);
        close(err[0]);
        dup2(err[1], 2);
        alarm(60);
        if (n != 0)
            os_fault_set((enum os_fault_kind)kind, n);
        int bad = workload();
        uint64_t c[NKINDS] = { os_calls(OS_FAULT_MMAP), os_calls(OS_FAULT_MPROTECT), os_calls(OS_FAULT_MADVISE),
                               os_calls(OS_FAULT_MREMAP) };
        if (write(out[1], c, sizeof c) != (ssize_t)sizeof c)
            bad++;
        _exit(bad ? 3 : 0);
    }
    close(out[1]);
    close(err[1]);
    uint64_t c[NKINDS] = { 0 };
    ssize_t got = read(out[0], c, sizeof c);
    char msg[4096];
    size_t len = 0;
    ssize_t k;
    while ((k = read(err[0], msg + len, sizeof msg - 1 - len)) > 0)
        len += (size_t)k;
    msg[len] = 0;
    close(out[0]);
    close(err[0]);
    int status;
    waitpid(pid, &status, 0);
    if (calls != NULL && got == (ssize_t)sizeof c)
        memcpy(calls, c, sizeof c);
    snprintf(why, whylen, "%s", msg);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return OK;
    // The one failure without an error path: a clear abort naming it.
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(msg, "gomem: out of memory") != NULL &&
        strstr(msg, "coroutine") != NULL)
        return REPORTED_ABORT;
    return BROKEN;
}

static void sweep(const char *label)
{
    uint64_t calls[NKINDS] = { 0 };
    char why[4096];
    CHECK_EQ(runChild(0, 0, calls, why, sizeof why), OK);
    int bad = 0; // kinds not reached, or whose failures broke the workload
    for (int kind = 0; kind < NKINDS; kind++) {
        int ok = 0, aborted = 0, broken = 0;
        // The workload reaches every kind.
        if (kind == OS_FAULT_MREMAP && (ASAN_BUILD || strstr(label, "secure") != NULL ||
                                        test_skip_qemu("realloc moves no pages there (os_move_pages)"))) {
            TALLY(bad, calls[kind] == 0, "%s%s made %llu calls", label, kindName[kind], (unsigned long long)calls[kind]);
            continue;
        }
        TALLY(bad, calls[kind] > 0, "%s%s", label, kindName[kind]);
        for (uint64_t n = 1; n <= calls[kind]; n++) {
            enum outcome o = runChild(kind, n, NULL, why, sizeof why);
            if (o == OK)
                ok++;
            else if (o == REPORTED_ABORT)
                aborted++;
            else {
                broken++;
                fprintf(stderr, "    %s call %llu failing broke the workload: %s\n", kindName[kind],
                        (unsigned long long)n, why);
            }
        }
        printf("    %s%s: %llu calls, each made to fail in turn (with every later one): %d handled, "
               "%d clean aborts, %d broken\n",
               label, kindName[kind], (unsigned long long)calls[kind], ok, aborted, broken);
        TALLY(bad, broken == 0 && ok > 0, "%s%s", label, kindName[kind]);
    }
    CHECK_EQ(bad, 0);
}

TEST(every_call_site_can_fail)
{
    sweep("");
}

// The sweep sweepIn starts in a fresh copy of this program.
TEST(every_call_site_can_fail_in_this_process)
{
    sweep(getenv("GOMEM_TEST_FAULT_SWEEP"));
}

// Under GOMEM_DEBUG=stackcheck every copied coroutine has its own mapping,
// protected and unprotected at each switch; under GOMEM_SECURE=1 large
// objects have guard pages: more call sites. Settings are read once per
// process (the first fork reads them), so each sweep runs in a fresh copy
// of this program.
static void sweepIn(const char *env, const char *label, int nkinds)
{
    char self[1024], cmd[1400], line[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0);
    if (n <= 0)
        return;
    self[n] = 0;
    snprintf(cmd, sizeof cmd, "GOMEM_TEST_FAULT_SWEEP='%s' %s %s '%s' 2>&1", label, env, test_runner(), self);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    int sawSweep = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        int passed, failed;
        if (strncmp(line, "ok   ", 5) != 0 && sscanf(line, "%d passed, %d failed", &passed, &failed) != 2)
            fputs(line, stdout); // the sweep's lines and what went wrong, not the child's test lines
        sawSweep += strstr(line, label) != NULL && strstr(line, " calls") != NULL;
    }
    int st = pclose(f);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(sawSweep, nkinds);
}

TEST(every_call_site_can_fail_under_stackcheck)
{
    sweepIn("GOMEM_DEBUG=stackcheck", "stackcheck, ", NKINDS - (ASAN_BUILD || test_under_qemu())); // no moves there
}

TEST(every_call_site_can_fail_in_secure_mode)
{
    sweepIn("GOMEM_SECURE=1", "secure, ", NKINDS - 1); // guarded objects are never moved
}

int main(void)
{
    if (getenv("GOMEM_TEST_FAULT_SWEEP") != NULL) {
        RUN(every_call_site_can_fail_in_this_process);
        return test_report();
    }
    RUN(every_call_site_can_fail);
    RUN(every_call_site_can_fail_under_stackcheck);
    RUN(every_call_site_can_fail_in_secure_mode);
    return test_report();
}
