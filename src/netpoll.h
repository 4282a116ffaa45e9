// SPDX-License-Identifier: MIT
//
// The poller each worker sleeps in (Go: netpoll.go's interface to
// netpoll_epoll.go): readiness of file descriptors, timeouts, and wake-ups
// from other threads. One implementation per OS: netpoll_epoll.c.
//
// A registration is one-shot: at most one event readies the waiting g, and
// the g disarms it before it can wait again (so an fd is waited on by one
// coroutine of a worker at a time: EEXIST otherwise).
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
// cannot be polled (a regular file: always ready); -1 and errno.
int netpollopen(worker *p, int fd, int events, gm_g *g);
void netpolldisarm(worker *p, int fd);

#pragma GCC visibility pop
#endif
