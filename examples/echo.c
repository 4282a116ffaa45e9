// SPDX-License-Identifier: MIT
//
// A TCP echo server on 127.0.0.1 with one coroutine per connection, and a
// load generator with one coroutine per client connection: the shape of a
// Go network server, on gomem's coroutines, gm_accept/gm_read/gm_write
// (epoll underneath) and copied stacks.
//
//   build/examples/echo [connections] [seconds] [requests-per-connection]
//
// Defaults: 1000 connections, 2 seconds (from when all are connected), no
// request limit. The server runs
// in this process and the clients in a forked child (each side holds one fd
// per connection, so 10,000 connections fit a 20,000-fd limit). Every
// client sends 32-byte requests and checks each echo until the time or the
// request limit is up. Prints requests/s and each side's peak RSS; exit 0
// when every connection worked and every echo matched.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gomem.h"

static long nconn, max_requests;
static double seconds;
static int listen_fd;
static struct sockaddr_in addr;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmHWM: %zu kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

// ---------------------------------------------------------------- server

static atomic_long served_conns;

static void handle(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512]; // on the coroutine's stack: saved with it while it waits
    ssize_t n;
    while ((n = gm_read(fd, buf, sizeof buf)) > 0)
        if (gm_write(fd, buf, (size_t)n) != n)
            break;
    close(fd);
    atomic_fetch_add(&served_conns, 1);
}

static void acceptor(void *arg)
{
    (void)arg;
    for (long i = 0; i < nconn; i++) {
        int fd = gm_accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            perror("echo: accept");
            exit(1);
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (gm_go(handle, (void *)(intptr_t)fd) == NULL) {
            perror("echo: gm_go");
            exit(1);
        }
    }
    close(listen_fd);
}

// ---------------------------------------------------------------- client

static atomic_long requests, errors, connected;
static _Atomic double start; // when every client had connected
static gm_waitgroup clients = GM_WAITGROUP_INIT;

static void client(void *arg)
{
    long id = (long)(intptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || gm_connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        atomic_fetch_add(&errors, 1);
        if (fd >= 0)
            close(fd);
        gm_waitgroup_done(&clients);
        return;
    }
    atomic_fetch_add(&connected, 1);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Wait until everyone is connected, so the load meets all connections;
    // the measured time starts then.
    while (atomic_load(&connected) + atomic_load(&errors) < nconn)
        gm_sleep(1000000);
    double zero = 0;
    atomic_compare_exchange_strong(&start, &zero, now_s());
    long done = 0;
    char msg[32], back[32];
    double deadline = atomic_load(&start) + seconds;
    while ((max_requests == 0 || done < max_requests) && now_s() < deadline) {
        snprintf(msg, sizeof msg, "%010ld:%020ld", id, done);
        if (gm_write(fd, msg, sizeof msg) != (ssize_t)sizeof msg)
            break;
        size_t have = 0;
        while (have < sizeof back) {
            ssize_t n = gm_read(fd, back + have, sizeof back - have);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        if (have != sizeof back || memcmp(msg, back, sizeof msg) != 0) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        done++;
    }
    atomic_fetch_add(&requests, done);
    close(fd);
    gm_waitgroup_done(&clients);
}

static void clients_main(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&clients, nconn);
    for (long i = 0; i < nconn; i++)
        if (gm_go(client, (void *)(intptr_t)i) == NULL) {
            perror("echo: gm_go");
            exit(1);
        }
    gm_waitgroup_wait(&clients);
}

int main(int argc, char **argv)
{
    nconn = argc > 1 ? atol(argv[1]) : 1000;
    seconds = argc > 2 ? atof(argv[2]) : 2.0;
    max_requests = argc > 3 ? atol(argv[3]) : 0;
    if (nconn < 1 || seconds <= 0 || max_requests < 0) {
        fprintf(stderr, "usage: echo [connections >= 1] [seconds > 0] [requests per connection, 0: no limit]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)nconn + 64 > rl.rlim_cur) {
        fprintf(stderr, "echo: %ld connections need more than the fd limit %llu\n", nconn,
                (unsigned long long)rl.rlim_cur);
        return 2;
    }
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&addr, &len) != 0 || listen(listen_fd, 4096) != 0) {
        perror("echo: listen");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("echo: fork");
        return 1;
    }
    if (pid == 0) { // the load generator
        close(listen_fd);
        if (gm_main(clients_main, NULL) != 0) {
            perror("echo: gm_main");
            _exit(1);
        }
        double dt = now_s() - start;
        printf("clients: %ld connections, %ld requests in %.2f s: %.0f requests/s, %ld errors, peak RSS %zu KiB\n",
               (long)connected, (long)requests, dt, (double)requests / dt, (long)errors, peak_rss_kib());
        fflush(stdout);
        _exit(errors == 0 && connected == nconn && requests > 0 ? 0 : 1);
    }
    size_t rss0 = peak_rss_kib();
    if (gm_main(acceptor, NULL) != 0) {
        perror("echo: gm_main");
        return 1;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    size_t rss = peak_rss_kib();
    gm_memstats m;
    gm_stats(&m);
    printf("server: %ld connections served by as many coroutines on %d workers, peak RSS %zu KiB "
           "(%.0f bytes per connection over the start)\n",
           (long)served_conns, gm_set_procs(0), rss, (double)(rss - rss0) * 1024 / (double)nconn);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && served_conns == nconn;
    printf("echo: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
