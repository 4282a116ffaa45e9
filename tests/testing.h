// SPDX-License-Identifier: MIT
//
// The test harness: named tests, a line per test ("ok   name" or "FAIL
// name"), "N passed, N failed" over tests at the end, a non-zero exit on
// failure. Every tests/*_test.c includes it and nothing else is needed (no
// test dependency to install).
//
//   TEST(name) { CHECK(cond); CHECK_EQ(a, b); ... }
//   int main(void) { RUN(name); ...; return test_report(); }
//
// A check that fails prints file:line and the expression to stderr and fails
// its test; the test goes on so one run shows every broken check. A loop
// adds up its failures and checks once (TALLY(bad, cond) in the loop, then
// CHECK_EQ(bad, 0)): the count is of behaviours tried, not of bytes
// compared. Checks may run on other threads, or in coroutines on several
// workers while the test's RUN waits in gm_main: the counters are atomic.
// Death tests (expect_death) run a function in a forked child and check
// that it dies with the expected text on stderr.
#ifndef GOMEM_TESTING_H
#define GOMEM_TESTING_H

#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic int test_passed, test_failed; // tests
static _Atomic int test_checks_failed;        // checks failed since the running test began
static const char *test_current = "(outside any test)";

#define TEST(name) static void test_##name(void)
#define RUN(name) do { test_end(); test_current = #name; test_##name(); test_end(); } while (0)

#define CHECK(cond) (test_true((cond) != 0) ? 1 : test_fail(1, __FILE__, __LINE__, #cond, " "))
#define CHECK_EQ(a, b) do { \
    unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
    if (a_ != b_) \
        test_fail(1, __FILE__, __LINE__, #a " == " #b, " got %llu (0x%llx), want %llu (0x%llx)", a_, a_, b_, b_); \
} while (0)
#define CHECK_STR(a, b) do { \
    const char *a_ = (a), *b_ = (b); \
    if (strcmp(a_, b_) != 0) \
        test_fail(1, __FILE__, __LINE__, #a " == " #b, " got \"%s\", want \"%s\"", a_, b_); \
} while (0)

// A check inside a loop: TALLY(bad, cond) adds a failure of cond to bad (an
// integer; _Atomic when threads share it) and fails the test, printing only
// the first failure, with an optional printf-style note such as the index
// (evaluated after cond, when it fails). CHECK_EQ(bad, 0) after the loop
// reports how many. The value is cond's.
#define TALLY(bad, cond, ...) \
    (test_true((cond) != 0) ? 1 \
                            : test_fail((bad)++ == 0, __FILE__, __LINE__, #cond " (the loop's first failure)", \
                                        " " __VA_ARGS__))

// A call, so that a check of a constant is no "statement with no effect".
static inline int test_true(int ok)
{
    return ok;
}

// A failed check: fails the running test and, if print, says where, what
// and (fmt after its leading space, if any) the details. Returns 0.
__attribute__((unused, format(printf, 5, 6))) static int test_fail(int print, const char *file, int line,
                                                                   const char *expr, const char *fmt, ...)
{
    test_checks_failed++;
    if (print)
        fprintf(stderr, "FAIL %s: %s:%d: %s\n", test_current, file, line, expr);
    if (print && fmt[1] != 0) {
        va_list ap;
        va_start(ap, fmt);
        fputs("   ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    return 0;
}

// Ends the running test: a line for it, or for failed checks made outside
// any test. stdout is flushed so a crash keeps the lines before it.
__attribute__((unused)) static void test_end(void)
{
    int bad = atomic_exchange(&test_checks_failed, 0);
    if (bad == 0 && strcmp(test_current, "(outside any test)") == 0)
        return;
    printf("%s %s\n", bad == 0 ? "ok  " : "FAIL", test_current);
    fflush(stdout);
    if (bad == 0)
        test_passed++;
    else
        test_failed++;
    test_current = "(outside any test)";
}

// Runs fn(arg) in a child. Passes when the child dies (by a signal, or by
// exiting non-zero) and its stderr contains want_text.
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
    (expect_death((fn), (arg), (text)) ? 1 : test_fail(1, __FILE__, __LINE__, "dies with \"" text "\"", " "))

// The command that starts another binary of the build, "" when they run
// directly: make test-aarch64 runs each under qemu-user, with its command
// in GOMEM_TEST_RUNNER (tests/run_all.sh uses it the same way).
__attribute__((unused)) static const char *test_runner(void)
{
    const char *r = getenv("GOMEM_TEST_RUNNER");
    return r != NULL ? r : "";
}

// Replaces this process with this test binary run again with arg (the
// tests' helper modes), through test_runner() when there is one, with envp
// as the environment (NULL: this one's). Returns only on failure.
__attribute__((unused)) static void test_exec_self(const char *arg, char *const envp[])
{
    extern char **environ;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return;
    self[n] = 0;
    char *env0[] = { NULL };
    char *const *env = envp != NULL ? envp : environ != NULL ? environ : env0;
    const char *runner = test_runner();
    if (*runner == 0) {
        char *argv[] = { self, (char *)arg, NULL };
        execve(self, argv, env);
    } else { // one word, the emulator: qemu-aarch64, which needs its own settings
        char *argv[] = { (char *)runner, self, (char *)arg, NULL };
        size_t nenv = 1, k = 0;
        for (char *const *e = env; *e != NULL; e++)
            nenv++;
        for (char **e = environ; envp != NULL && e != NULL && *e != NULL; e++)
            nenv++;
        char **withEmu = malloc(nenv * sizeof *withEmu); // every variable: make's environment is long
        if (withEmu == NULL)
            return;
        for (char *const *e = env; *e != NULL; e++)
            withEmu[k++] = *e;
        for (char **e = environ; envp != NULL && e != NULL && *e != NULL; e++)
            if (strncmp(*e, "QEMU_", 5) == 0 || strncmp(*e, "PATH=", 5) == 0)
                withEmu[k++] = *e;
        withEmu[k] = NULL;
        execvpe(runner, argv, withEmu);
        free(withEmu);
    }
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
    test_end(); // failed checks after the last test
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed != 0;
}

#endif
