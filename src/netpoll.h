// SPDX-License-Identifier: MIT
//
// The poller each worker sleeps in (Go: netpoll.go's interface to
// netpoll_epoll.go): readiness of file descriptors, timeouts, and wake-ups
// from other threads. One implementation per OS: netpoll_epoll.c.
//
// A registration is one-shot: at most one event readies the waiting g, and
// an fd is waited on by one coroutine of a worker at a time (EEXIST
// otherwise). One whose event fired stays in the poller, disarmed by the
// kernel, and the next wait on that fd re-arms it (one system call per
// wait, not an add and a delete); one that did not fire (a deadline, a
// cancel) is removed when its wait ends, so no armed registration outlives
// its wait.
#ifndef GOMEM_NETPOLL_H
#define GOMEM_NETPOLL_H

#include "runtime2.h"
#pragma GCC visibility push(hidden)

// Sets up p's poller (p's thread or before it starts). 0, or -1 and errno.
int netpollinit(worker *p);
void netpollclose(worker *p);
// Waits up to delay ns (< 0: no limit; 0: only looks) for fd events and
// wake-ups, and readies the gs whose fds fired (g->fdEvents says which).
void netpoll(worker *p, int64_t delay);
// Wakes p's thread from netpoll, from any thread (Go: netpollBreak).
void netpollBreak(worker *p);
// Arms a one-shot wait of g for events (GM_FD_*) on fd. 0; 1 when fd
// cannot be polled (a regular file: always ready); -1 and errno (EEXIST:
// another g of p waits on fd). p's thread only.
int netpollopen(worker *p, int fd, int events, gm_g *g);
// Ends the wait netpollopen armed: fired says netpoll delivered its event
// (so the kernel disarmed it). p's thread only.
void netpolldone(worker *p, int fd, bool fired);

#pragma GCC visibility pop
#endif
