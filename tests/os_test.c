// SPDX-License-Identifier: MIT
//
// Tests of the OS layer alone: the states of a range and fault injection.
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "export_test.h"
#include "testing.h"

TEST(env_fault_injection)
{
    // main() set GOMEM_FAULT_MPROTECT=3 before any gomem call: the third and
    // later commits fail until a test turns injection off.
    char *p = os_reserve(1 << 20, 1 << 20);
    size_t pg = os_physpagesize();
    CHECK(p != NULL);
    CHECK_EQ(os_commit(p, pg), 0);
    CHECK_EQ(os_commit(p + pg, pg), 0);
    errno = 0;
    CHECK_EQ(os_commit(p + 2 * pg, pg), -1);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(os_commit(p + 2 * pg, pg), -1);
    os_fault_set(OS_FAULT_MPROTECT, 0);
    CHECK_EQ(os_commit(p + 2 * pg, pg), 0);
    os_release(p, 1 << 20);
}

TEST(reserve_is_aligned_and_inaccessible_until_commit)
{
    size_t align = (size_t)64 << 20;
    char *p = os_reserve(align, align);
    CHECK(p != NULL);
    CHECK_EQ((uintptr_t)p % align, 0);
    // mincore works on reserved ranges: nothing is resident.
    unsigned char vec[16];
    if (!test_skip_qemu("mincore fails with ENOMEM on a PROT_NONE range there")) {
        CHECK_EQ(mincore(p, 16 * 4096, vec), 0);
        int resident = 0;
        for (int i = 0; i < 16; i++)
            resident += vec[i] & 1;
        CHECK_EQ(resident, 0);
    }
    CHECK_EQ(os_commit(p, 1 << 20), 0);
    memset(p, 0xab, 1 << 20);
    CHECK_EQ((unsigned char)p[12345], 0xab);
    os_release(p, align);
}

TEST(decommit_gives_pages_back_and_reads_zero)
{
    size_t n = 8 << 20;
    char *p = os_reserve(n, 1 << 20);
    CHECK(p != NULL);
    CHECK_EQ(os_commit(p, n), 0);
    size_t before = test_rss_bytes();
    memset(p, 0x5a, n);
    size_t touched = test_rss_bytes();
    CHECK(touched >= before + n / 2);
    CHECK_EQ(os_decommit(p, n), 0);
    size_t after = test_rss_bytes();
    CHECK(after + n / 2 <= touched);
    CHECK_EQ(p[0], 0);
    CHECK_EQ(p[n - 1], 0);
    os_release(p, n);
}

static void touch_guard(void *arg)
{
    volatile char *g = arg;
    g[0] = 1;
}

TEST(guard_page_faults)
{
    char *p = os_reserve(1 << 20, 1 << 20);
    CHECK(p != NULL);
    CHECK_EQ(os_commit(p, 1 << 20), 0);
    CHECK_EQ(os_protect_none(p, os_physpagesize()), 0);
    p[os_physpagesize()] = 1; // the next page is still fine
    CHECK_DEATH(touch_guard, p, "");
    os_release(p, 1 << 20);
}

TEST(fault_set_counts_from_now)
{
    uint64_t calls = os_calls(OS_FAULT_MMAP);
    os_fault_set(OS_FAULT_MMAP, 2);
    void *a = os_alloc_meta(4096);
    CHECK(a != NULL);
    errno = 0;
    CHECK(os_alloc_meta(4096) == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK(os_reserve(1 << 20, 1 << 20) == NULL);
    os_fault_set(OS_FAULT_MMAP, 0);
    void *b = os_reserve(1 << 20, 1 << 20);
    CHECK(b != NULL);
    CHECK_EQ(os_calls(OS_FAULT_MMAP), calls + 4);
    os_release(a, 4096);
    os_release(b, 1 << 20);
    // madvise faults too.
    char *p = os_reserve(1 << 20, 1 << 20);
    CHECK_EQ(os_commit(p, 1 << 20), 0);
    os_fault_set(OS_FAULT_MADVISE, 1);
    CHECK_EQ(os_decommit(p, 1 << 20), -1);
    os_fault_set(OS_FAULT_MADVISE, 0);
    CHECK_EQ(os_decommit(p, 1 << 20), 0);
    os_release(p, 1 << 20);
}

TEST(move_pages_moves_without_copying_and_empties_the_source)
{
    size_t n = 4 << 20;
    char *p = os_reserve(4 * n, 1 << 20);
    CHECK(p != NULL);
    CHECK_EQ(os_commit(p, 4 * n), 0);
    char *from = p, *to = p + 2 * n;
    test_fill(from, n, 7);
    memset(to, 0x11, n); // resident destination: replaced
    size_t before = test_rss_bytes();
    uint64_t calls = os_calls(OS_FAULT_MREMAP);
    int r = os_move_pages(from, to, n), err = errno;
    // One system call; none where the first call found that a moved-from
    // range cannot be released (qemu-user): ENOSYS at once.
    uint64_t made = r != 0 && err == ENOSYS ? 0 : 1;
    CHECK_EQ(os_calls(OS_FAULT_MREMAP), calls + made);
    if (r != 0 && (err == EINVAL || err == ENOSYS)) { // the first refusal, then every call
        fprintf(stderr, "    (no MREMAP_DONTUNMAP here: not checked)\n");
        CHECK_EQ(os_move_pages(from, to, n), -1);
        CHECK_EQ(errno, ENOSYS);
        CHECK_EQ(os_calls(OS_FAULT_MREMAP), calls + made); // no second system call
        os_release(p, 4 * n);
        return;
    }
    CHECK_EQ(r, 0);
    CHECK(test_pattern_ok(to, n, 7));
    // The destination's old pages went away and nothing was copied: RSS
    // did not grow by n (a copy into fresh pages would have).
    CHECK(test_rss_bytes() < before + n / 2);
    // The source stays mapped, empty: zeros, writable.
    size_t zeros = 0;
    for (size_t i = 0; i < n; i += 4096)
        zeros += from[i] == 0;
    CHECK_EQ(zeros, n / 4096);
    from[0] = 1;
    // An injected failure: the source untouched, the destination mapped
    // again (contents lost) and writable.
    test_fill(from, n, 9);
    os_fault_set(OS_FAULT_MREMAP, 1);
    errno = 0;
    CHECK_EQ(os_move_pages(from, to, n), -1);
    CHECK_EQ(errno, ENOMEM);
    os_fault_set(OS_FAULT_MREMAP, 0);
    CHECK(test_pattern_ok(from, n, 9));
    memset(to, 0x22, n);
    CHECK_EQ((unsigned char)to[n - 1], 0x22);
    os_release(p, 4 * n);
}

TEST(reserve_overflow_fails_cleanly)
{
    errno = 0;
    CHECK(os_reserve(SIZE_MAX - 4096, 1 << 20) == NULL);
    CHECK_EQ(errno, ENOMEM);
}

// The helper mode (os_test --print-env): what this process reads of the
// options, on one line.
static _Noreturn void printEnv(void)
{
    gm_free(gm_malloc(1)); // the first malloc reads the options
    const char *v = os_getenv("GOMEM_TEST_PROBE");
    printf("secure=%d probe=%s maxtiny=%zu\n", getauxval(AT_SECURE) != 0, v != NULL ? v : "(none)",
           gm_get_max_tiny_size());
    fflush(stdout);
    _exit(0); // no exit handlers: LeakSanitizer's fails in a set-user-ID process (not dumpable)
}

// Runs exe --print-env with GOMEM_TEST_PROBE and GOMEM_MAXTINY set; its line in out.
static int runPrintEnv(const char *exe, char *out, size_t n)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        char *argv[] = {(char *)exe, "--print-env", NULL};
        char *envp[] = {"GOMEM_TEST_PROBE=on", "GOMEM_MAXTINY=0", NULL};
        execve(exe, argv, envp);
        _exit(127);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], out, n - 1);
    out[got > 0 ? got : 0] = 0;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

// A set-user-ID program must not take options from whoever runs it. Root
// makes a copy of this test owned by nobody, set-user-ID, and runs it: the
// kernel marks that exec AT_SECURE and every GOMEM_* option is ignored.
TEST(options_are_ignored_in_set_user_id_programs)
{
    if (test_skip_qemu("the kernel execs the emulator, not this binary: no exec of /proc/self/exe, no AT_SECURE"))
        return;
    char out[256];
    CHECK_EQ(runPrintEnv("/proc/self/exe", out, sizeof out), 0);
    CHECK_STR(out, "secure=0 probe=on maxtiny=0\n");
    if (geteuid() != 0) {
        printf("    (not root: cannot make a set-user-ID copy; only the plain run checked)\n");
        return;
    }
    char self[PATH_MAX], copy[PATH_MAX + 16];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(len > 0);
    self[len > 0 ? len : 0] = 0;
    snprintf(copy, sizeof copy, "%s.suid", self); // beside the test: build/, not a nosuid /tmp
    int in = open(self, O_RDONLY), outfd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0700);
    CHECK(in >= 0 && outfd >= 0);
    char buf[1 << 16];
    ssize_t r;
    int copied = 1;
    while ((r = read(in, buf, sizeof buf)) > 0)
        copied &= write(outfd, buf, (size_t)r) == r;
    CHECK(r == 0 && copied); // one check, whatever the binary's size
    close(in);
    close(outfd);
    if (chown(copy, 65534, 65534) != 0) { // e.g. a user namespace with no such user
        printf("    (cannot give the copy to nobody here: %s; only the plain run checked)\n", strerror(errno));
        unlink(copy);
        return;
    }
    CHECK_EQ(chmod(copy, 04755), 0); // after chown, which clears the bit
    CHECK_EQ(runPrintEnv(copy, out, sizeof out), 0);
    unlink(copy);
    if (strncmp(out, "secure=0", 8) == 0) {
        // A nosuid mount or a user namespace: the exec did not raise privileges.
        printf("    (the set-user-ID copy ran without AT_SECURE here: %s)\n", out);
        CHECK_STR(out, "secure=0 probe=on maxtiny=0\n");
        return;
    }
    CHECK_STR(out, "secure=1 probe=(none) maxtiny=16\n");
}

// A GOMEM_* name gomem does not read (a typo) gets one warning naming it
// and the known ones; known names and the tests' GOMEM_TEST_* get none.
TEST(unknown_options_are_named)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        dup2(open("/dev/null", O_WRONLY), 1);
        char *envp[] = {"GOMEM_STAT=1", "GOMEM_SCAVENGE=off", "GOMEM_TEST_ANYTHING=1", "GOMEM_MAXTINY=16", NULL};
        test_exec_self("--print-env", envp);
        _exit(127);
    }
    close(fds[1]);
    char err[2048];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof err - 1 && (got = read(fds[0], err + len, sizeof err - 1 - len)) > 0)
        len += (size_t)got;
    err[len] = 0;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(err, "unknown environment variable GOMEM_STAT ignored (known: GOMEM_VERBOSE,") != NULL);
    CHECK(strstr(err, "GOMEM_STATS,") != NULL);
    CHECK(strstr(err, "GOMEM_SCAVENGE ignored") == NULL && strstr(err, "GOMEM_TEST_ANYTHING") == NULL &&
          strstr(err, "GOMEM_MAXTINY ignored") == NULL);
    CHECK(strchr(err, '\n') == strrchr(err, '\n')); // one line
}

// On a kernel whose page is 16 or 64 KiB (arm64), a range of gomem's 8 KiB
// pages may cover part of an OS page: it is released by whole OS pages and
// zeroed in place at the ends, never rounded out over a neighbour; guards,
// commits and moves of part of a page are refused. Run here with the page
// size forced (the real pages are 4 KiB, so madvise accepts every range
// os_decommit makes).
TEST(large_os_pages_are_never_rounded_over_a_neighbour)
{
    for (size_t page = 16 << 10; page <= 64 << 10; page *= 4) {
        if (page < (size_t)sysconf(_SC_PAGESIZE))
            continue; // the kernel's pages are larger still
        os_setphyspagesize(page);
        size_t n = 16 * page;
        unsigned char *p = os_reserve(n, page);
        CHECK(p != NULL && (uintptr_t)p % page == 0);
        if (p == NULL)
            break;
        CHECK_EQ(os_commit(p, n), 0);
        memset(p, 0x5a, n);
        // One gomem page inside the second OS page: zeroed, nothing else.
        CHECK_EQ(os_decommit(p + page + 8192, 8192), 0);
        // From the last gomem page of the 4th OS page through the first of
        // the 6th: the 5th goes back whole, the ends are zeroed.
        CHECK_EQ(os_decommit(p + 5 * page - 8192, page + 16384), 0);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            int zero = (i >= page + 8192 && i < page + 16384) || (i >= 5 * page - 8192 && i < 6 * page + 8192);
            bad += p[i] != (zero ? 0 : 0x5a);
        }
        CHECK_EQ(bad, 0);
        errno = 0;
        CHECK_EQ(os_guard(p + 8192, 8192), -1);
        CHECK_EQ(errno, EINVAL);
        errno = 0;
        CHECK_EQ(os_protect_none(p + page, 8192), -1);
        CHECK_EQ(errno, EINVAL);
        errno = 0;
        CHECK_EQ(os_commit(p + 8192, page), -1);
        CHECK_EQ(errno, EINVAL);
        errno = 0;
        CHECK_EQ(os_move_pages(p + 8192, p + 8 * page, page), -1);
        CHECK(errno == EINVAL || errno == ENOSYS); // ENOSYS: no moves at all here
        CHECK_EQ(p[8 * page], 0x5a);
        p[n - 1] = 1; // all of it still writable
        os_release(p, n);
    }
    os_setphyspagesize(0);
    CHECK_EQ(os_physpagesize(), (size_t)sysconf(_SC_PAGESIZE));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-env") == 0)
        printEnv();
    setenv("GOMEM_FAULT_MPROTECT", "3", 1);
    RUN(env_fault_injection);
    RUN(reserve_is_aligned_and_inaccessible_until_commit);
    RUN(decommit_gives_pages_back_and_reads_zero);
    RUN(guard_page_faults);
    RUN(fault_set_counts_from_now);
    RUN(move_pages_moves_without_copying_and_empties_the_source);
    RUN(reserve_overflow_fails_cleanly);
    RUN(large_os_pages_are_never_rounded_over_a_neighbour);
    RUN(options_are_ignored_in_set_user_id_programs);
    RUN(unknown_options_are_named);
    return test_report();
}
