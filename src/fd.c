// SPDX-License-Identifier: MIT
//
// File descriptors that park the coroutine instead of blocking the thread
// (Go: internal/poll's fd_unix.go over netpoll): gm_wait_fd, gm_read,
// gm_write, gm_accept, gm_connect. Outside a coroutine each blocks the
// thread in poll(2), so the same code runs on a plain thread.
//
// A wait arms a one-shot registration in the worker's poller (netpoll.h)
// and parks with the timeout as a timer (goparkTimed); whichever fires
// first readies the g, the other finds a stale wait sequence.
//
// Differs from Go: Go keeps every fd registered (edge-triggered) for its
// lifetime; here a registration lasts one wait, so gomem never needs to
// know when the program closes an fd.
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

int gm_wait_fd(int fd, int events, int64_t timeout_ns)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((events & ~(GM_FD_READ | GM_FD_WRITE)) != 0 || events == 0) {
        errno = EINVAL;
        return -1;
    }
    worker *p = tworker;
    gm_g *g = p != NULL ? p->cur : NULL;
    if (g == NULL || timeout_ns == 0)
        return pollNow(fd, events, timeout_ns);
    int r = netpollopen(p, fd, events, g);
    if (r != 0)
        return r > 0 ? events : -1;
    g->fdEvents = 0;
    p->nfdwait++;
    atomic_fetch_add_explicit(&p->grp->nfdwait, 1, memory_order_relaxed);
    goparkTimed(g, "IO wait", timeout_ns);
    p = g->p;
    p->nfdwait--;
    atomic_fetch_sub_explicit(&p->grp->nfdwait, 1, memory_order_relaxed);
    netpolldisarm(p, fd);
    return g->fdEvents & events;
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

ssize_t gm_read(int fd, void *buf, size_t n)
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
        if (errno != EINTR && gm_wait_fd(fd, GM_FD_READ, -1) < 0)
            return -1;
    }
}

ssize_t gm_write(int fd, const void *buf, size_t n)
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
        if (errno != EINTR && gm_wait_fd(fd, GM_FD_WRITE, -1) < 0)
            return done > 0 ? (ssize_t)done : -1;
    }
    return (ssize_t)done;
}

int gm_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (setNonblock(fd) < 0)
        return -1;
    for (;;) {
        int c = accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED))
            return c;
        if (errno == EAGAIN && gm_wait_fd(fd, GM_FD_READ, -1) < 0)
            return -1;
    }
}

int gm_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (setNonblock(fd) < 0)
        return -1;
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    if (gm_wait_fd(fd, GM_FD_WRITE, -1) < 0)
        return -1;
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
