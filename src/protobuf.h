// SPDX-License-Identifier: MIT
//
// Protocol buffers' varint and length-delimited fields, written into and
// read from byte buffers (protobuf.c's head).
#ifndef GOMEM_PROTOBUF_H
#define GOMEM_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#pragma GCC visibility push(hidden)

// A growable byte buffer in a mapping of its own. {0} is empty.
typedef struct pbuf {
    unsigned char *p;
    size_t n, cap;
    bool oom; // a grow failed: the contents are incomplete
} pbuf;

// Room for more bytes; false (and oom set) when the mapping cannot grow.
bool pbReserve(pbuf *b, size_t more);
void pbFree(pbuf *b);
void pbPut(pbuf *b, const void *d, size_t n);

enum { WireVarint = 0, WireFixed64 = 1, WireBytes = 2, WireFixed32 = 5 };

void pbVarint(pbuf *b, uint64_t v);
// A varint field; zero is the default, so it is left out.
void pbUint(pbuf *b, int field, uint64_t v);
void pbBytes(pbuf *b, int field, const void *d, size_t n);
// Appends the message built in m as field, and empties m for the next.
void pbMsg(pbuf *b, int field, pbuf *m);

// Reading: the bytes left of a message; bad once anything did not parse.
typedef struct preader {
    const unsigned char *p, *end;
    bool bad;
} preader;

// The next field: its number, its wire type, and its value (varint) or its
// bytes in sub (length-delimited). False at the end or on bad data (r->bad).
bool rdField(preader *r, uint32_t *field, int *wire, uint64_t *v, preader *sub);
// Values of a repeated varint field, packed (wire 2) or not (wire 0): into
// out (if not NULL) from index *n on; *n counts them.
void rdRepeated(int wire, uint64_t v, preader *sub, uint64_t *out, uint32_t *n, bool *bad);

#pragma GCC visibility pop
#endif
