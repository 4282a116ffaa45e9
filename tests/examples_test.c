// SPDX-License-Identifier: MIT
//
// The programs in examples/ run and check their own results (exit 0 only
// when correct); this runs each with small arguments on one and on two
// workers and checks the exit status and the line that shows the answer.
// Paths are under $BUILD (default build), as make test builds them.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testing.h"

static char out[8192];

// Runs a shell command; returns its exit status (-1 if it did not exit).
static int run(const char *procs, const char *cmd)
{
    const char *build = getenv("BUILD");
    char line[512];
    snprintf(line, sizeof line, "GOMEM_PROCS=%s %s %s/examples/%s 2>&1", procs, test_runner(), build ? build : "build",
             cmd);
    FILE *f = popen(line, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int st = pclose(f);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "    %s exited %d: %s\n", line, WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The sieve's work grows with the square of its argument; under
// ThreadSanitizer (every switch a fiber switch, every channel operation
// instrumented) the 1000th prime takes 45 s on one worker, so that build
// asks for the 300th.
#if defined(__SANITIZE_THREAD__)
#define GM_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GM_TEST_TSAN 1
#endif
#endif
#ifdef GM_TEST_TSAN
#define SIEVE_N "300"
#define SIEVE_PRIME "prime 300 = 1987"
#else
#define SIEVE_N "1000"
#define SIEVE_PRIME "prime 1000 = 7919"
#endif

TEST(sieve)
{
    CHECK_EQ(run("1", "sieve " SIEVE_N), 0);
    CHECK(strstr(out, SIEVE_PRIME) != NULL);
    CHECK_EQ(run("2", "sieve " SIEVE_N), 0);
    CHECK(strstr(out, SIEVE_PRIME) != NULL);
    CHECK_EQ(run("2", "sieve " SIEVE_N " dedicated"), 0); // filters that move between the workers
    CHECK(strstr(out, SIEVE_PRIME) != NULL && strstr(out, "filters: dedicated") != NULL);
    CHECK_EQ(run("2", "sieve " SIEVE_N " blocks 7"), 0); // copied filters placed on both workers
    CHECK(strstr(out, SIEVE_PRIME) != NULL && strstr(out, "placed in blocks") != NULL);
    CHECK_EQ(run("1", "sieve 10 blocks 0"), 2); // usage
    CHECK_EQ(run("1", "sieve 1"), 0);
    CHECK(strstr(out, "prime 1 = 2") != NULL);
    CHECK_EQ(run("1", "sieve 0"), 2); // usage
}

TEST(pipeline)
{
    CHECK_EQ(run("1", "pipeline 20000 4"), 0);
    CHECK(strstr(out, "(correct)") != NULL);
    CHECK_EQ(run("2", "pipeline 20000 8"), 0);
    CHECK(strstr(out, "(correct)") != NULL);
}

TEST(echo)
{
    CHECK_EQ(run("1", "echo 50 0.3 200"), 0);
    CHECK(strstr(out, "50 connections") != NULL && strstr(out, "echo: ok") != NULL);
    CHECK_EQ(run("2", "echo 300 0.5"), 0);
    CHECK(strstr(out, "0 errors") != NULL && strstr(out, "echo: ok") != NULL);
}

// Deadlines and cancellation: an idle connection closed at its deadline,
// and SIGTERM shutting the server down through its context while a
// connection is open (the example checks all of it and exits 0).
TEST(echod)
{
    CHECK_EQ(run("1", "echod selftest 100"), 0);
    CHECK(strstr(out, "shut down by SIGTERM: 3 connections") != NULL && strstr(out, "echod: ok") != NULL);
    CHECK_EQ(run("2", "echod selftest"), 0);
    CHECK(strstr(out, "echod: ok") != NULL);
    CHECK_EQ(run("1", "echod"), 2); // usage
}

int main(void)
{
    RUN(sieve);
    RUN(pipeline);
    RUN(echo);
    RUN(echod);
    return test_report();
}
