// SPDX-License-Identifier: MIT
//
// gzip's container, written with stored blocks and read with a full
// inflate (gzip.c's head).
#ifndef GOMEM_GZIP_H
#define GOMEM_GZIP_H

#include "protobuf.h"
#pragma GCC visibility push(hidden)

// data as one gzip member to fd: 0, or -1 and errno (ENOMEM when data->oom).
int writeGzip(int fd, const pbuf *data);
// The data of a gzip member into out: NULL, or what is wrong with it.
const char *gunzip(const unsigned char *in, size_t len, pbuf *out);
// All n bytes to fd, through EINTR and short writes: 0, or -1 and errno.
int writeAll(int fd, const void *p, size_t n);

#pragma GCC visibility pop
#endif
