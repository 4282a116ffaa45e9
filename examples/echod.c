// SPDX-License-Identifier: MIT
//
// An echo server that a Go programmer would write with context.Context:
// each connection is closed after it has been idle for a while (a read
// deadline per message), and SIGINT or SIGTERM shuts the server down
// cleanly (a cancelled context ends the accept loop and every
// connection's pending read or write, then main waits for the handlers).
// gm_ctx_with_timeout, gm_read_ctx, gm_write_ctx, gm_accept_ctx,
// gm_ctx_cancel with a cause, gm_waitgroup.
//
//   build/examples/echod serve [port] [idle-ms]    until SIGINT or SIGTERM
//   build/examples/echod selftest [idle-ms]        checks itself, exit 0 if right
//
// Defaults: port 7007, 2000 ms idle. selftest serves on a free port and
// forks a client that checks an echo, waits for an idle connection to be
// closed, then sends the server SIGTERM while a connection is open: that
// one must be closed by the shutdown, and the server must exit 0.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomem.h"

#define MS 1000000LL

static int64_t idle_ns;
static int listen_fd, signal_fd;
static gm_ctx *root;                                 // cancelled on SIGINT / SIGTERM
static gm_waitgroup handlers = GM_WAITGROUP_INIT;
static atomic_long served, closed_idle, closed_shutdown;

// One connection: echo until the peer closes, until it has been idle for
// idle_ns, or until the server shuts down. Each message gets a context of
// its own (Go: ctx, cancel := context.WithTimeout(root, idle)): its
// deadline is the idle limit, and root's cancel reaches it.
static void handle(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    for (;;) {
        gm_ctx *msg = gm_ctx_with_timeout(root, idle_ns);
        if (msg == NULL) {
            perror("echod: context");
            break;
        }
        ssize_t n = gm_read_ctx(fd, buf, sizeof buf, msg);
        int err = n < 0 ? errno : 0;
        if (n > 0 && gm_write_ctx(fd, buf, (size_t)n, msg) != n)
            err = errno;
        gm_ctx_free(msg);
        if (n == 0)
            break; // the peer closed
        if (err == ETIMEDOUT) {
            atomic_fetch_add(&closed_idle, 1);
            break;
        }
        if (err == ECANCELED) {
            atomic_fetch_add(&closed_shutdown, 1);
            break;
        }
        if (err != 0)
            break; // the peer reset the connection
    }
    close(fd);
    gm_waitgroup_done(&handlers);
}

// SIGINT and SIGTERM arrive on a signalfd that this coroutine reads: the
// first one cancels root with the signal as its cause. It also ends when
// root is cancelled for another reason.
static void signals(void *arg)
{
    (void)arg;
    struct signalfd_siginfo si;
    if (gm_read_ctx(signal_fd, &si, sizeof si, root) == (ssize_t)sizeof si)
        gm_ctx_cancel(root, (int)si.ssi_signo);
}

static void server(void *arg)
{
    (void)arg;
    gm_go(signals, NULL);
    for (;;) {
        int fd = gm_accept_ctx(listen_fd, NULL, NULL, root);
        if (fd < 0) {
            if (errno != ECANCELED) {
                perror("echod: accept");
                gm_ctx_cancel(root, errno);
            }
            break;
        }
        atomic_fetch_add(&served, 1);
        gm_waitgroup_add(&handlers, 1);
        if (gm_go(handle, (void *)(intptr_t)fd) == NULL) {
            close(fd);
            gm_waitgroup_done(&handlers);
        }
    }
    close(listen_fd);
    gm_waitgroup_wait(&handlers); // every handler saw the cancel and closed its connection
}

// ---------------------------------------------------------------- selftest

static int fail(const char *what)
{
    fprintf(stderr, "echod selftest: %s\n", what);
    return 1;
}

static int dial(const struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr *)a, sizeof *a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

// The client, a plain program in a forked child (blocking calls, no
// coroutines): gm_read_until blocks the thread in poll(2) until its
// deadline.
static int client(const struct sockaddr_in *a)
{
    char buf[16];
    int echo = dial(a), idle = dial(a);
    if (echo < 0 || idle < 0)
        return fail("connect");
    if (write(echo, "hello", 5) != 5 || gm_read_until(echo, buf, sizeof buf, gm_deadline(5000 * MS)) != 5 ||
        memcmp(buf, "hello", 5) != 0)
        return fail("no echo");
    // Done with it: its handler ends at the EOF. Left open, its idle
    // deadline (a round trip after the silent one's) would race the
    // shutdown below, and the counts would depend on which came first.
    close(echo);
    // Silent: the server closes it once idle_ns passed (EOF here), well
    // before this read's own deadline.
    if (gm_read_until(idle, buf, sizeof buf, gm_deadline(20 * idle_ns + 5000 * MS)) != 0)
        return fail("the idle connection was not closed");
    int last = dial(a);
    if (last < 0 || write(last, "bye", 3) != 3 || gm_read_until(last, buf, sizeof buf, gm_deadline(5000 * MS)) != 3)
        return fail("no echo on the last connection");
    kill(getppid(), SIGTERM); // last is open, its handler reading: the shutdown must close it
    if (gm_read_until(last, buf, sizeof buf, gm_deadline(5000 * MS)) != 0)
        return fail("the shutdown did not close the open connection");
    close(idle);
    close(last);
    return 0;
}

int main(int argc, char **argv)
{
    int selftest = argc > 1 && strcmp(argv[1], "selftest") == 0;
    if (argc < 2 || (!selftest && strcmp(argv[1], "serve") != 0)) {
        fprintf(stderr, "usage: echod serve [port] [idle-ms] | echod selftest [idle-ms]\n");
        return 2;
    }
    long port = selftest ? 0 : argc > 2 ? atol(argv[2]) : 7007;
    long idle_ms = argc > 2 + !selftest ? atol(argv[2 + !selftest]) : selftest ? 200 : 2000;
    if (port < 0 || port > 65535 || idle_ms <= 0) {
        fprintf(stderr, "echod: bad port or idle time\n");
        return 2;
    }
    idle_ns = idle_ms * MS;

    // The signals go to the signalfd only: blocked in every thread (the
    // workers gm_main starts inherit the mask).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);

    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (signal_fd < 0 || listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&a, &len) != 0 || listen(listen_fd, 128) != 0) {
        perror("echod: listen");
        return 1;
    }
    printf("echod: listening on 127.0.0.1:%d, closing connections idle for %ld ms\n", ntohs(a.sin_port), idle_ms);
    fflush(stdout);
    pid_t pid = -1;
    if (selftest && (pid = fork()) == 0) {
        close(listen_fd);
        _exit(client(&a));
    }

    root = gm_ctx_with_cancel(gm_ctx_background());
    if (root == NULL || gm_main(server, NULL) != 0) {
        perror("echod");
        return 1;
    }
    int cause = gm_ctx_cause(root);
    printf("echod: shut down by %s: %ld connections, %ld closed idle, %ld closed at shutdown\n",
           cause == SIGINT ? "SIGINT" : cause == SIGTERM ? "SIGTERM" : strerror(cause), (long)served,
           (long)closed_idle, (long)closed_shutdown);
    gm_ctx_free(root);
    if (!selftest)
        return 0;
    int status = 0;
    waitpid(pid, &status, 0);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && cause == SIGTERM && served == 3 &&
             closed_idle >= 1 && closed_shutdown == 1;
    printf("echod: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
