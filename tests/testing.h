// SPDX-License-Identifier: MIT
//
// The test harness: named checks, a count, "N passed, N failed" at the end,
// a non-zero exit on failure. Every tests/*_test.c includes it and nothing
// else is needed (no test dependency to install).
//
//   TEST(name) { CHECK(cond); CHECK_EQ(a, b); ... }
//   int main(void) { RUN(name); ...; return test_report(); }
//
// A check that fails prints file:line and the expression and counts one
// failure; the test goes on so one run shows every broken check. Death tests
// (expect_death) run a function in a forked child and check that it aborts
// with a message containing the expected text on stderr.
#ifndef GOMEM_TESTING_H
#define GOMEM_TESTING_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic int test_passed, test_failed; // checks run in coroutines on several workers
static const char *test_current = "?";

#define CHECK(cond) test_check((cond) != 0, __FILE__, __LINE__, #cond)
#define CHECK_EQ(a, b) do { \
    unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
    if (!test_check(a_ == b_, __FILE__, __LINE__, #a " == " #b)) \
        fprintf(stderr, "    got %llu (0x%llx), want %llu (0x%llx)\n", a_, a_, b_, b_); \
} while (0)

#define CHECK_STR(a, b) do { \
    const char *a_ = (a), *b_ = (b); \
    if (!test_check(strcmp(a_, b_) == 0, __FILE__, __LINE__, #a " == " #b)) \
        fprintf(stderr, "    got \"%s\", want \"%s\"\n", a_, b_); \
} while (0)

#define TEST(name) static void test_##name(void)
#define RUN(name) do { test_current = #name; test_##name(); } while (0)

__attribute__((unused)) static int test_check(int ok, const char *file, int line, const char *expr)
{
    if (ok) {
        test_passed++;
        return 1;
    }
    test_failed++;
    fprintf(stderr, "FAIL %s: %s:%d: %s\n", test_current, file, line, expr);
    return 0;
}

// Runs fn(arg) in a child. Passes when the child dies by SIGABRT (or exits
// non-zero when want_signal is 0) and its stderr contains want_text.
__attribute__((unused)) static int expect_death(void (*fn)(void *), void *arg, const char *want_text)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], 2);
        alarm(120); // a child that hangs instead of dying fails, by SIGALRM, without the text
        fn(arg);
        _exit(0); // surviving is the failure
    }
    close(pipefd[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = 0;
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int died = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
    int matched = strstr(buf, want_text) != NULL;
    if (!died || !matched)
        fprintf(stderr, "    child %s; stderr was: %s\n", died ? "died" : "survived", buf);
    return died && matched;
}

#define CHECK_DEATH(fn, arg, text) \
    test_check(expect_death((fn), (arg), (text)), __FILE__, __LINE__, "dies with \"" text "\"")

// The command that starts another binary of the build, "" when they run
// directly: make test-aarch64 runs each under qemu-user, with its command
// in GOMEM_TEST_RUNNER (tests/run_all.sh uses it the same way).
__attribute__((unused)) static const char *test_runner(void)
{
    const char *r = getenv("GOMEM_TEST_RUNNER");
    return r != NULL ? r : "";
}

// Whether the tests run under qemu-user (GOMEM_TEST_QEMU=1, set by make
// test-aarch64).
__attribute__((unused)) static int test_under_qemu(void)
{
    const char *q = getenv("GOMEM_TEST_QEMU");
    return q != NULL && strcmp(q, "1") == 0;
}

// Under qemu-user: prints why a check cannot run there and returns 1; 0
// elsewhere.
__attribute__((unused)) static int test_skip_qemu(const char *why)
{
    if (!test_under_qemu())
        return 0;
    printf("    (skipped under qemu-user: %s)\n", why);
    return 1;
}

__attribute__((unused)) static int test_report(void)
{
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed != 0;
}

#endif
