// SPDX-License-Identifier: MIT
//
// File descriptors that park the coroutine instead of blocking the thread
// (Go: internal/poll's fd_unix.go over netpoll): gm_wait_fd, gm_read,
// gm_write, gm_accept, gm_connect. Outside a coroutine each blocks the
// thread in poll(2), so the same code runs on a plain thread.
//
// A wait arms a one-shot registration in the worker's poller (netpoll.h)
// and parks in a claimed wait (runtime2.h) with its deadline as a timer
// and, for the _ctx calls, on its context's list: whichever of the event,
// the timer and the cancel claims the wait first readies the g. Each call
// has _until and _ctx variants; a plain thread's poll(2) gets the
// deadline as its timeout (a cancel reaches it only through that).
//
// Differs from Go: Go keeps every fd registered (edge-triggered) for its
// lifetime; here a registration is armed for one wait and stays, disarmed,
// only after its event fired (netpoll.h), so gomem never needs to know
// when the program closes an fd: the kernel drops the registration with
// the file, and a number reused for another file is registered anew.
#include "netpoll.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static int pollNow(int fd, int events, int64_t timeout)
{
    struct pollfd pfd = { fd, (short)(((events & GM_FD_READ) ? POLLIN : 0) | ((events & GM_FD_WRITE) ? POLLOUT : 0)), 0 };
    int ms = timeout < 0 ? -1 : (int)((timeout + 999999) / 1000000);
    int n;
    while ((n = poll(&pfd, 1, ms)) < 0 && errno == EINTR)
        ;
    if (n <= 0)
        return n;
    if (pfd.revents & POLLNVAL) {
        errno = EBADF;
        return -1;
    }
    int got = 0;
    if (pfd.revents & (POLLERR | POLLHUP))
        got = events;
    if (pfd.revents & POLLIN)
        got |= GM_FD_READ;
    if (pfd.revents & POLLOUT)
        got |= GM_FD_WRITE;
    return got & events;
}

// Waits for events on fd until deadline or ctx is done (NULL: none).
// Returns the ready events, or -1 and errno: EBADF, EINVAL, EEXIST, or
// ETIMEDOUT / ctx's error when the wait ended that way (a deadline already
// past, or a ctx already done, still reports an fd that is ready now). A
// plain thread polls; a cancel does not reach it before its deadline.
static int waitFd(int fd, int events, int64_t deadline, gm_ctx *ctx)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((events & ~(GM_FD_READ | GM_FD_WRITE)) != 0 || events == 0) {
        errno = EINVAL;
        return -1;
    }
    int err = waitExpired(deadline, ctx);
    if (err != 0) {
        int r = pollNow(fd, events, 0);
        if (r == 0)
            errno = err;
        return r == 0 ? -1 : r;
    }
    worker *p = TLS(tworker);
    gm_g *g = p != NULL ? p->cur : NULL;
    if (g == NULL) {
        int64_t left = deadline == NoDeadline ? -1 : deadline - (int64_t)nanotime();
        int r = pollNow(fd, events, left < 0 && deadline != NoDeadline ? 0 : left);
        if (r == 0)
            errno = ETIMEDOUT;
        return r == 0 ? -1 : r;
    }
    beginWait(g);
    int r = netpollopen(p, fd, events, g);
    if (r != 0) {
        atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed);
        return r > 0 ? events : -1;
    }
    g->fdEvents = 0;
    g->localWait = true; // the fd is armed in p's poller: disarmed there after the wait
    p->nfdwait++;
    atomic_fetch_add_explicit(&p->grp->nfdwait, 1, memory_order_relaxed);
    int why = parkWait(g, "IO wait", NULL, NULL, deadline, ctx);
    atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed);
    p = g->p;
    p->nfdwait--;
    atomic_fetch_sub_explicit(&p->grp->nfdwait, 1, memory_order_release); // (as time.c's ntimers)
    netpolldone(p, fd, g->fdEvents != 0); // netpoll runs on this thread only: it cannot fire now
    g->localWait = false;
    if (why == WaitServed)
        return g->fdEvents & events;
    errno = waitErrno(why, ctx);
    return -1;
}

static int64_t deadlineIn(int64_t timeout_ns)
{
    int64_t now = (int64_t)nanotime();
    return timeout_ns > NoDeadline - now ? NoDeadline : now + timeout_ns;
}

int gm_wait_fd(int fd, int events, int64_t timeout_ns)
{
    if (timeout_ns == 0 && fd >= 0 && events != 0 && (events & ~(GM_FD_READ | GM_FD_WRITE)) == 0)
        return pollNow(fd, events, 0);
    int r = waitFd(fd, events, timeout_ns < 0 ? NoDeadline : deadlineIn(timeout_ns), NULL);
    return r < 0 && errno == ETIMEDOUT ? 0 : r;
}

int gm_wait_fd_until(int fd, int events, int64_t deadline_ns)
{
    return waitFd(fd, events, deadline_ns, NULL);
}

int gm_wait_fd_ctx(int fd, int events, gm_ctx *ctx)
{
    return waitFd(fd, events, ctxDeadline(mustCtx(ctx, "gm_wait_fd_ctx"), NoDeadline), ctx);
}

static int setNonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

static ssize_t fdRead(int fd, void *buf, size_t n, int64_t deadline, gm_ctx *ctx)
{
    // Sockets: MSG_DONTWAIT needs no mode change and no extra syscall.
    for (bool sock = true;;) {
        ssize_t r = sock ? recv(fd, buf, n, MSG_DONTWAIT) : read(fd, buf, n);
        if (r < 0 && sock && errno == ENOTSOCK) {
            if (setNonblock(fd) < 0)
                return -1;
            sock = false;
            continue;
        }
        if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return r;
        if (errno != EINTR && waitFd(fd, GM_FD_READ, deadline, ctx) < 0)
            return -1;
    }
}

static ssize_t fdWrite(int fd, const void *buf, size_t n, int64_t deadline, gm_ctx *ctx)
{
    size_t done = 0;
    bool sock = true;
    while (done < n) {
        ssize_t r = sock ? send(fd, (const char *)buf + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL)
                         : write(fd, (const char *)buf + done, n - done);
        if (r < 0 && sock && errno == ENOTSOCK) {
            if (setNonblock(fd) < 0)
                return -1;
            sock = false;
            continue;
        }
        if (r >= 0) {
            done += (size_t)r;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return done > 0 ? (ssize_t)done : -1;
        if (errno != EINTR && waitFd(fd, GM_FD_WRITE, deadline, ctx) < 0)
            return done > 0 ? (ssize_t)done : -1; // errno stays: a short count says why
    }
    return (ssize_t)done;
}

static int fdAccept(int fd, struct sockaddr *addr, socklen_t *len, int64_t deadline, gm_ctx *ctx)
{
    if (setNonblock(fd) < 0)
        return -1;
    for (;;) {
        int c = accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED))
            return c;
        if (errno == EAGAIN && waitFd(fd, GM_FD_READ, deadline, ctx) < 0)
            return -1;
    }
}

static int fdConnect(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline, gm_ctx *ctx)
{
    if (setNonblock(fd) < 0)
        return -1;
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    if (waitFd(fd, GM_FD_WRITE, deadline, ctx) < 0)
        return -1; // still connecting: the caller closes fd
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

ssize_t gm_read(int fd, void *buf, size_t n)
{
    return fdRead(fd, buf, n, NoDeadline, NULL);
}

ssize_t gm_read_until(int fd, void *buf, size_t n, int64_t deadline_ns)
{
    return fdRead(fd, buf, n, deadline_ns, NULL);
}

ssize_t gm_read_ctx(int fd, void *buf, size_t n, gm_ctx *ctx)
{
    return fdRead(fd, buf, n, ctxDeadline(mustCtx(ctx, "gm_read_ctx"), NoDeadline), ctx);
}

ssize_t gm_write(int fd, const void *buf, size_t n)
{
    return fdWrite(fd, buf, n, NoDeadline, NULL);
}

ssize_t gm_write_until(int fd, const void *buf, size_t n, int64_t deadline_ns)
{
    return fdWrite(fd, buf, n, deadline_ns, NULL);
}

ssize_t gm_write_ctx(int fd, const void *buf, size_t n, gm_ctx *ctx)
{
    return fdWrite(fd, buf, n, ctxDeadline(mustCtx(ctx, "gm_write_ctx"), NoDeadline), ctx);
}

int gm_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return fdAccept(fd, addr, len, NoDeadline, NULL);
}

int gm_accept_until(int fd, struct sockaddr *addr, socklen_t *len, int64_t deadline_ns)
{
    return fdAccept(fd, addr, len, deadline_ns, NULL);
}

int gm_accept_ctx(int fd, struct sockaddr *addr, socklen_t *len, gm_ctx *ctx)
{
    return fdAccept(fd, addr, len, ctxDeadline(mustCtx(ctx, "gm_accept_ctx"), NoDeadline), ctx);
}

int gm_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    return fdConnect(fd, addr, len, NoDeadline, NULL);
}

int gm_connect_until(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline_ns)
{
    return fdConnect(fd, addr, len, deadline_ns, NULL);
}

int gm_connect_ctx(int fd, const struct sockaddr *addr, socklen_t len, gm_ctx *ctx)
{
    return fdConnect(fd, addr, len, ctxDeadline(mustCtx(ctx, "gm_connect_ctx"), NoDeadline), ctx);
}
