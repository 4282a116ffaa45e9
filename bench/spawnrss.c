// SPDX-License-Identifier: MIT
//
// Runs a command and writes, to the file named first, the peak resident
// set of its largest process (it and the descendants it waited for: wait4's
// rusage), the CPU time of them all in seconds, and their minor page faults:
//
//   build/bench/spawnrss OUTFILE CMD [ARGS...]     exits with CMD's status
//
// SPAWNRSS_PRELOAD, if set, becomes CMD's LD_PRELOAD (this program runs
// with none: its size is what CMD's peak starts from).
//
// For tests/realworld.sh's timings, which run programs from python3. A
// child's ru_maxrss starts at the peak of the process image it was forked
// from, carried across exec, so everything python3 starts reads at least
// python3's 14 MB. What this small program starts carries its own size
// (about 1 MB) instead.
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: spawnrss OUTFILE CMD [ARGS...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("spawnrss: fork");
        return 127;
    }
    if (pid == 0) {
        const char *preload = getenv("SPAWNRSS_PRELOAD");
        if (preload != NULL && *preload != 0)
            setenv("LD_PRELOAD", preload, 1);
        execvp(argv[2], argv + 2);
        perror("spawnrss: exec");
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) {
        perror("spawnrss: wait4");
        return 127;
    }
    FILE *f = fopen(argv[1], "w");
    if (f == NULL) {
        perror(argv[1]);
        return 127;
    }
    fprintf(f, "%ld %.3f %ld\n", ru.ru_maxrss,
            (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
            ru.ru_minflt);
    fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
