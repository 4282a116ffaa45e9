// SPDX-License-Identifier: MIT
//
// The event trace (src/trace.c) and gomem-info's reports (tools/report.c):
// a real run's trace holds the events it should, with counts that match the
// work done; the report built from it has its plots (and, where Chromium is
// installed, renders to a non-blank screenshot); bad traces and output
// paths get errors naming them and leave no file behind.
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomem.h"
#include "runtime.h"
#include "testing.h"

static char tmpdir[] = "/tmp/gomem-trace-XXXXXX";
static char out[16384];

// The build directory as commands name it: after the runner, if any
// (test_runner).
static const char *build(void)
{
    static char cmd[512];
    const char *b = getenv("BUILD");
    snprintf(cmd, sizeof cmd, "%s %s", test_runner(), b ? b : "build");
    return cmd;
}

// Runs a shell command, output in out; returns its exit status.
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b != NULL && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b != NULL) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

static int countOf(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

// ------------------------------------------------------------ a traced run

static void deep(int n)
{
    volatile char pad[400];
    pad[0] = (char)n;
    if (n > 0)
        deep(n - 1);
    else
        gm_yield(); // parked 40 frames deep: the saved copy grows
    (void)pad[0];
}

static void grower(void *arg)
{
    (void)arg;
    deep(40);
    gm_yield(); // shallow again: the copy halves
    gm_yield();
    gm_yield();
}

static void spawner(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++)
        gm_go(grower, NULL);
}

static uint64_t evCount[64];
static uint64_t lastRSS, class48Live;

static int readTrace(const char *path)
{
    size_t len;
    char *d = slurp(path, &len);
    if (d == NULL)
        return -1;
    memset(evCount, 0, sizeof evCount);
    int ok = len >= 32 && memcmp(d, "GOMEMTRC", 8) == 0 && (len - 32) % sizeof(traceRecord) == 0;
    uint32_t version;
    memcpy(&version, d + 8, 4);
    ok = ok && version == TraceVersion;
    for (size_t off = 32; ok && off + sizeof(traceRecord) <= len; off += sizeof(traceRecord)) {
        traceRecord r;
        memcpy(&r, d + off, sizeof r);
        if (r.ev >= 64) {
            ok = 0;
            break;
        }
        evCount[r.ev]++;
        if (r.ev == EvSampleRSS)
            lastRSS = r.y;
        if (r.ev == EvClassLive && r.x == 48)
            class48Live = r.y;
    }
    free(d);
    return ok ? 0 : -1;
}

static char tracePath[256];

TEST(trace_records_a_real_run)
{
    snprintf(tracePath, sizeof tracePath, "%s/run.trace", tmpdir);
    CHECK_EQ(gm_trace_start(tracePath), 0);
    void *keep[100];
    for (int i = 0; i < 100; i++)
        keep[i] = gm_malloc(48); // stay live: the class histogram must show them
    for (int i = 0; i < 20000; i++)
        gm_free(gm_malloc(1000 + (size_t)i % 3000));
    void *big = gm_malloc(1 << 20);
    gm_free(big);
    gm_stack s = gm_stackalloc(8192);
    gm_stackfree(s);
    // One worker with one execution stack: every deep park is saved.
    int procs = gm_set_procs(1), stacks = runtime_execstacks;
    runtime_execstacks = 1;
    CHECK_EQ(gm_main(spawner, NULL), 0);
    gm_set_procs(procs);
    runtime_execstacks = stacks;
    gm_scavenge();
    CHECK_EQ(gm_trace_stop(), 0);
    CHECK_EQ(readTrace(tracePath), 0);
    CHECK(evCount[EvSpanAlloc] > 0);
    CHECK(evCount[EvSpanFree] > 0);
    CHECK(evCount[EvStackSpanAlloc] > 0);
    CHECK(evCount[EvScavenge] > 0);
    CHECK_EQ(evCount[EvGoCreate], 11); // spawner and its ten
    CHECK_EQ(evCount[EvGoEnd], 11);
    CHECK(evCount[EvStackGrow] >= 10);
    CHECK(evCount[EvStackShrink] >= 10);
    CHECK(evCount[EvSampleRSS] >= 1);
    CHECK_EQ(evCount[EvSampleSched], 3 * evCount[EvSampleRSS]); // busy, spin, idle at each sample
    CHECK_EQ(evCount[EvSampleSchedEvents], 6 * evCount[EvSampleRSS]); // steals ... lends at each sample
    CHECK(lastRSS > 0);
    CHECK(class48Live >= 100);
    for (int i = 0; i < 100; i++)
        gm_free(keep[i]);
}

TEST(trace_api_errors)
{
    errno = 0;
    CHECK_EQ(gm_trace_stop(), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gm_trace_start(NULL), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gm_trace_start("/nonexistent-dir/x.trace"), -1);
    CHECK_EQ(errno, ENOENT);
    char p[256];
    snprintf(p, sizeof p, "%s/twice.trace", tmpdir);
    CHECK_EQ(gm_trace_start(p), 0);
    CHECK_EQ(gm_trace_start(p), -1);
    CHECK_EQ(errno, EBUSY);
    // A forked child neither writes into the parent's file nor breaks it.
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 1000; i++)
            gm_free(gm_malloc(5000));
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(gm_trace_stop(), 0);
    CHECK_EQ(readTrace(p), 0);
    // Started again, a trace works as the first did.
    CHECK_EQ(gm_trace_start(p), 0);
    gm_free(gm_malloc(100000));
    CHECK_EQ(gm_trace_stop(), 0);
    CHECK_EQ(readTrace(p), 0);
    CHECK(evCount[EvSpanAlloc] >= 1);
}

TEST(trace_from_the_environment)
{
    char p[256];
    snprintf(p, sizeof p, "%s/env.trace", tmpdir);
    CHECK_EQ(sh("GOMEM_TRACE=%s GOMEM_PROCS=2 %s/examples/sieve 300 2>&1", p, build()), 0);
    CHECK_EQ(readTrace(p), 0);
    CHECK(evCount[EvGoCreate] >= 300);
    CHECK_EQ(evCount[EvGoCreate], evCount[EvGoEnd]);
    CHECK(evCount[EvGoPark] > 0);
    // An unwritable trace path: a warning naming it, and the program runs.
    CHECK_EQ(sh("GOMEM_TRACE=/nonexistent-dir/t %s/examples/sieve 10 2>&1", build()), 0);
    CHECK(strstr(out, "GOMEM_TRACE: cannot write '/nonexistent-dir/t'") != NULL);
    CHECK(strstr(out, "prime 10 = 29") != NULL);
    CHECK_EQ(sh("GOMEM_TRACE=%s GOMEM_TRACE_INTERVAL=abc %s/examples/sieve 10 2>&1", p, build()), 0);
    CHECK(strstr(out, "GOMEM_TRACE_INTERVAL='abc'") != NULL);
}

// ------------------------------------------------------------ reports

TEST(report_from_a_trace_has_its_plots)
{
    char html[256];
    snprintf(html, sizeof html, "%s/report.html", tmpdir);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), tracePath, html), 0);
    size_t len = 0;
    char *h = slurp(html, &len);
    CHECK(h != NULL);
    if (h == NULL)
        return;
    CHECK(strncmp(h, "<!DOCTYPE html>", 15) == 0);
    CHECK(strstr(h, "</html>") != NULL);
    const char *ids[] = { "memory", "stack-orders", "saved-stacks", "grow-shrink", "coroutines", "workers", "schedevents",
                          "size-classes" };
    int missing = 0;
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char want[64];
        snprintf(want, sizeof want, "<svg id=\"%s\"", ids[i]);
        TALLY(missing, strstr(h, want) != NULL, "no plot %s", ids[i]);
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(countOf(h, "<svg "), countOf(h, "</svg>"));
    CHECK(countOf(h, "<polyline class=\"series\"") >= 5); // RSS, heap, stacks, orders, coroutines
    CHECK(countOf(h, "<circle class=\"event\"") >= 20);   // ten grows and ten shrinks at least
    CHECK(countOf(h, "<rect class=\"bar\"") >= 20);       // a bar per size class
    CHECK(strstr(h, "<script") == NULL && strstr(h, "http://") == strstr(h, "http://www.w3.org"));
    free(h);

    // Rendered: where Chromium is installed, a screenshot that is not blank
    // (a white page compresses to a few KiB of PNG).
    const char *chrome = NULL;
    const char *names[] = { "chromium", "chromium-browser", "google-chrome" };
    for (size_t i = 0; i < 3 && chrome == NULL; i++)
        if (sh("command -v %s >/dev/null 2>&1", names[i]) == 0)
            chrome = names[i];
    if (chrome == NULL) {
        printf("    (no Chromium here: the rendering check is skipped; the structural checks ran)\n");
        return;
    }
    char png[256];
    snprintf(png, sizeof png, "%s/report.png", tmpdir);
    sh("timeout 120 %s --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=860,2200 "
       "--screenshot=%s file://%s >/dev/null 2>&1",
       chrome, png, html);
    struct stat st;
    CHECK(stat(png, &st) == 0);
    CHECK(st.st_size > 40000);
    char *p = slurp(png, &len);
    CHECK(p != NULL && len > 8 && memcmp(p, "\x89PNG", 4) == 0);
    free(p);
}

TEST(report_from_stats)
{
    char js[256], html[256];
    snprintf(js, sizeof js, "%s/stats.json", tmpdir);
    snprintf(html, sizeof html, "%s/stats.html", tmpdir);
    FILE *f = fopen(js, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    void *p = gm_malloc(100);
    CHECK_EQ(gm_stats_json(f), 0);
    gm_free(p);
    fclose(f);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), js, html), 0);
    size_t len;
    char *h = slurp(html, &len);
    CHECK(h != NULL && strstr(h, "<svg id=\"size-classes\"") != NULL && strstr(h, "<svg id=\"stack-orders\"") != NULL);
    CHECK(h != NULL && strstr(h, "<th>heap_alloc</th>") != NULL);
    free(h);
    // As GOMEM_STATS=1 leaves them on a captured stderr: the program's own
    // lines, then "gomem stats:", then the JSON.
    char err[256];
    snprintf(err, sizeof err, "%s/stderr.txt", tmpdir);
    CHECK_EQ(sh("(echo 'a line of the program'; echo 'gomem stats:'; cat %s) > %s", js, err), 0);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), err, html), 0);
    h = slurp(html, &len);
    CHECK(h != NULL && strstr(h, "<th>heap_alloc</th>") != NULL);
    free(h);
}

TEST(bench_report)
{
    char csv[256], html[256];
    snprintf(csv, sizeof csv, "%s/bench.csv", tmpdir);
    snprintf(html, sizeof html, "%s/bench.html", tmpdir);
    FILE *f = fopen(csv, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    fputs("benchmark,allocator,metric,unit,min,median,runs\n"
          "heap,glibc,time,s,1.5,1.6,3\nheap,gomem,time,s,0.7,0.8,3\n"
          "heap,glibc,rss,bytes,1000000,1000000,3\nheap,gomem,rss,bytes,900000,910000,3\n",
          f);
    fclose(f);
    CHECK_EQ(sh("%s/gomem-info bench-report %s -o %s 2>&1", build(), csv, html), 0);
    size_t len;
    char *h = slurp(html, &len);
    CHECK(h != NULL && countOf(h, "<rect class=\"bar\"") == 4 && countOf(h, "<svg ") == 2);
    free(h);
    CHECK_EQ(sh("%s/gomem-info bench-report %s -o %s 2>&1", build(), tracePath, html), 1);
    CHECK(strstr(out, "is not a gomem benchmark CSV") != NULL);
}

// ------------------------------------------------------------ bad input

static int filesIn(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    sh("%s", cmd);
    return atoi(out);
}

TEST(report_bad_input)
{
    char p[256], html[256];
    snprintf(html, sizeof html, "%s/bad.html", tmpdir);
    // Missing file.
    CHECK_EQ(sh("%s/gomem-info report %s/missing.trace -o %s 2>&1", build(), tmpdir, html), 1);
    CHECK(strstr(out, "cannot open") != NULL && strstr(out, "missing.trace") != NULL);
    // Truncated in the middle of a record.
    size_t len;
    char *d = slurp(tracePath, &len);
    CHECK(d != NULL && len > 100);
    if (d == NULL)
        return;
    snprintf(p, sizeof p, "%s/cut.trace", tmpdir);
    FILE *f = fopen(p, "wb");
    fwrite(d, 1, len - 7, f);
    fclose(f);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), p, html), 1);
    CHECK(strstr(out, "cut.trace' is truncated") != NULL);
    f = fopen(p, "wb");
    fwrite(d, 1, 20, f); // inside the header
    fclose(f);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), p, html), 1);
    CHECK(strstr(out, "is truncated") != NULL);
    // A corrupt record.
    d[32 + 24 * 3 + 8] = (char)200;
    f = fopen(p, "wb");
    fwrite(d, 1, len, f);
    fclose(f);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), p, html), 1);
    CHECK(strstr(out, "unknown event 200") != NULL);
    // Another version.
    d[32 + 24 * 3 + 8] = 1;
    d[8] = 9;
    f = fopen(p, "wb");
    fwrite(d, 1, len, f);
    fclose(f);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), p, html), 1);
    CHECK(strstr(out, "trace version 9") != NULL);
    free(d);
    // Foreign files: a program, text, broken JSON, empty.
    CHECK_EQ(sh("%s/gomem-info report /bin/sh -o %s 2>&1", build(), html), 1);
    CHECK(strstr(out, "'/bin/sh' is not a gomem trace") != NULL);
    snprintf(p, sizeof p, "%s/broken.json", tmpdir);
    f = fopen(p, "w");
    fputs("{\"heap_alloc\": 1, \"by_size\": [", f);
    fclose(f);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), p, html), 1);
    CHECK(strstr(out, "broken.json' is not gomem statistics") != NULL);
    snprintf(p, sizeof p, "%s/empty", tmpdir);
    f = fopen(p, "w");
    fclose(f);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), p, html), 1);
    CHECK(strstr(out, "is empty") != NULL);
    // None of that left an output file.
    CHECK(access(html, F_OK) != 0);

    // Unwritable output: a missing directory, a directory whose "parent" is
    // a file, a directory in the way. No partial file, no temporary left.
    int before = filesIn(tmpdir);
    CHECK_EQ(sh("%s/gomem-info report %s -o /nonexistent-dir/r.html 2>&1", build(), tracePath), 1);
    CHECK(strstr(out, "cannot write '/nonexistent-dir/r.html'") != NULL);
    CHECK_EQ(sh("%s/gomem-info report %s -o %s/empty/r.html 2>&1", build(), tracePath, tmpdir), 1);
    CHECK(strstr(out, "cannot write") != NULL);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/adir", tmpdir);
    mkdir(dir, 0755);
    before++;
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), tracePath, dir), 1);
    CHECK(strstr(out, "cannot write") != NULL);
    CHECK_EQ(filesIn(tmpdir), before);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(trace_records_a_real_run);
    RUN(trace_api_errors);
    RUN(trace_from_the_environment);
    RUN(report_from_a_trace_has_its_plots);
    RUN(report_from_stats);
    RUN(bench_report);
    RUN(report_bad_input);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_report();
}
