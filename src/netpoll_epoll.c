// SPDX-License-Identifier: MIT
//
// The poller on Linux (Go: netpoll_epoll.go): one epoll instance and one
// eventfd per worker. The eventfd is registered with a NULL data pointer:
// netpollBreak writes it so a worker asleep in epoll_wait returns; every
// other registration carries the g that waits (one-shot, netpoll.h).
//
// Differs from Go: Go has one epoll instance per process and returns a
// list of ready gs; here each worker polls its own (a started g stays on
// its worker) and readies them itself.
#include "netpoll.h"

#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int netpollinit(worker *p)
{
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (p->epfd >= 0 && p->wakefd >= 0 && epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) == 0)
        return 0;
    int err = errno;
    netpollclose(p);
    errno = err;
    return -1;
}

void netpollclose(worker *p)
{
    if (p->epfd >= 0)
        close(p->epfd);
    if (p->wakefd >= 0)
        close(p->wakefd);
    p->epfd = p->wakefd = -1;
    gm_free(p->fdreg);
    p->fdreg = NULL;
    p->nfdreg = 0;
}

void netpollBreak(worker *p)
{
    uint64_t one = 1;
    if (write(p->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        throw("waking a worker: %s", strerror(errno));
}

static uint32_t toEpoll(int events)
{
    return ((events & GM_FD_READ) ? EPOLLIN | EPOLLRDHUP : 0u) | ((events & GM_FD_WRITE) ? EPOLLOUT : 0u);
}

// p->fdreg[fd]: what epfd holds for fd. RegNone may also be a stale
// RegIdle's file closed since (the kernel dropped it): then the MOD finds
// nothing (ENOENT) and the wait adds the fd afresh. An fd at or past
// nfdreg (the table could not grow) is added and deleted per wait.
enum { RegNone, RegIdle, RegArmed }; // RegIdle: fired, disarmed by the kernel

// Makes fd a valid index of p->fdreg, if memory allows.
static bool fdregGrow(worker *p, int fd)
{
    size_t n = p->nfdreg < 64 ? 64 : p->nfdreg;
    while (n <= (size_t)fd)
        n *= 2;
    unsigned char *t = gm_realloc(p->fdreg, n);
    if (t == NULL)
        return false;
    memset(t + p->nfdreg, RegNone, n - p->nfdreg);
    p->fdreg = t;
    p->nfdreg = n;
    return true;
}

int netpollopen(worker *p, int fd, int events, gm_g *g)
{
    struct epoll_event ev = { .events = toEpoll(events) | EPOLLONESHOT, .data.ptr = g };
    bool tracked = (size_t)fd < p->nfdreg || fdregGrow(p, fd);
    if (tracked && p->fdreg[fd] == RegArmed) {
        errno = EEXIST;
        return -1;
    }
    if (tracked && p->fdreg[fd] == RegIdle) {
        if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) {
            p->fdreg[fd] = RegArmed;
            return 0;
        }
        p->fdreg[fd] = RegNone; // ENOENT: closed since, the number maybe reused
    }
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
        if (tracked)
            p->fdreg[fd] = RegArmed;
        return 0;
    }
    return errno == EPERM ? 1 : -1; // EPERM: a regular file, always ready (as poll says)
}

void netpolldone(worker *p, int fd, bool fired)
{
    if ((size_t)fd < p->nfdreg && fired) {
        p->fdreg[fd] = RegIdle;
        return;
    }
    if ((size_t)fd < p->nfdreg)
        p->fdreg[fd] = RegNone;
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void netpoll(worker *p, int64_t delay)
{
    struct epoll_event evs[64];
    int n;
#ifdef SYS_epoll_pwait2
    // Nanosecond timeouts (Linux 5.11); older kernels and valgrind refuse it once.
    static _Atomic bool noPwait2;
    if (RUNNING_ON_VALGRIND) // valgrind 3.19 does not know it and warns each time
        atomic_store_explicit(&noPwait2, true, memory_order_relaxed);
    struct timespec ts = { (time_t)(delay / 1000000000), (long)(delay % 1000000000) };
    n = -1;
    if (!atomic_load_explicit(&noPwait2, memory_order_relaxed)) {
        n = (int)syscall(SYS_epoll_pwait2, p->epfd, evs, 64, delay < 0 ? NULL : &ts, NULL, 0);
        if (n < 0 && errno == ENOSYS)
            atomic_store_explicit(&noPwait2, true, memory_order_relaxed);
    }
    if (n < 0 && atomic_load_explicit(&noPwait2, memory_order_relaxed))
#endif
        n = epoll_wait(p->epfd, evs, 64, delay < 0 ? -1 : (int)((delay + 999999) / 1000000));
    for (int i = 0; i < n; i++) {
        gm_g *g = evs[i].data.ptr;
        if (g == NULL) {
            uint64_t v;
            if (read(p->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
                throw("reading a worker's eventfd: %s", strerror(errno));
            continue;
        }
        uint32_t e = evs[i].events;
        int got = 0;
        if (e & (EPOLLERR | EPOLLHUP))
            got = GM_FD_READ | GM_FD_WRITE;
        if (e & (EPOLLIN | EPOLLRDHUP))
            got |= GM_FD_READ;
        if (e & EPOLLOUT)
            got |= GM_FD_WRITE;
        g->fdEvents = got;
        readyIfWaiting(g, atomic_load_explicit(&g->waitSeq, memory_order_relaxed), WaitServed);
    }
}
