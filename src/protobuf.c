// SPDX-License-Identifier: MIT
//
// Protocol buffers, the little that pprof's profile.proto needs (Go:
// runtime/pprof's protobuf.go writes the same subset): varints and
// length-delimited fields written into growable buffers, and read back
// field by field. Fixed-width fields are skipped on reading, never
// written.
//
// Owns: pbuf, a byte buffer in a mapping of its own (os_alloc_meta), never
// the heap, so encoding a heap profile cannot sample or change the heap it
// describes. A grow that fails sets pbuf.oom and drops later writes; the
// caller checks oom once at the end.
//
// No library: make test needs C11 and pthreads only.
#include "protobuf.h"
#include "os.h"

#include <string.h>

// ---------------------------------------------------------------- buffers

bool pbReserve(pbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->n + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : (size_t)64 << 10;
    while (cap < b->n + more)
        cap *= 2;
    unsigned char *np = os_alloc_meta(cap);
    if (np == NULL) {
        b->oom = true;
        return false;
    }
    if (b->n != 0)
        memcpy(np, b->p, b->n);
    if (b->p != NULL)
        os_release(b->p, b->cap);
    b->p = np;
    b->cap = cap;
    return true;
}

void pbFree(pbuf *b)
{
    if (b->p != NULL)
        os_release(b->p, b->cap);
    *b = (pbuf){0};
}

void pbPut(pbuf *b, const void *d, size_t n)
{
    if (n != 0 && pbReserve(b, n)) {
        memcpy(b->p + b->n, d, n);
        b->n += n;
    }
}

// ------------------------------------------------------- protobuf encoder

void pbVarint(pbuf *b, uint64_t v)
{
    unsigned char t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (unsigned char)v;
    pbPut(b, t, n);
}

// A varint field; zero is the default, so it is left out.
void pbUint(pbuf *b, int field, uint64_t v)
{
    if (v != 0) {
        pbVarint(b, (uint64_t)field << 3 | WireVarint);
        pbVarint(b, v);
    }
}

void pbBytes(pbuf *b, int field, const void *d, size_t n)
{
    pbVarint(b, (uint64_t)field << 3 | WireBytes);
    pbVarint(b, n);
    pbPut(b, d, n);
}

// Appends the message built in m as field, and empties m for the next.
void pbMsg(pbuf *b, int field, pbuf *m)
{
    if (m->oom)
        b->oom = true;
    pbBytes(b, field, m->p, m->n);
    m->n = 0;
}

// ------------------------------------------------------- protobuf decoder

static uint64_t rdVarint(preader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        unsigned char c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

// The next field: its number, its wire type, and its value (varint) or its
// bytes (length-delimited). False at the end or on bad data (r->bad).
bool rdField(preader *r, uint32_t *field, int *wire, uint64_t *v, preader *sub)
{
    if (r->p >= r->end || r->bad)
        return false;
    uint64_t key = rdVarint(r);
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    if (*field == 0)
        r->bad = true;
    switch (*wire) {
    case WireVarint:
        *v = rdVarint(r);
        break;
    case WireFixed64:
    case WireFixed32: {
        size_t n = *wire == WireFixed64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            r->bad = true;
        else
            r->p += n;
        *v = 0;
        break;
    }
    case WireBytes: {
        uint64_t n = rdVarint(r);
        if (n > (uint64_t)(r->end - r->p)) {
            r->bad = true;
            break;
        }
        sub->p = r->p;
        sub->end = r->p + n;
        sub->bad = false;
        r->p += n;
        break;
    }
    default:
        r->bad = true;
    }
    return !r->bad;
}

// Values of a repeated varint field, packed (wire 2) or not (wire 0): into
// out (if not NULL) from index *n on; *n counts them.
void rdRepeated(int wire, uint64_t v, preader *sub, uint64_t *out, uint32_t *n, bool *bad)
{
    if (wire == WireVarint) {
        if (out != NULL)
            out[*n] = v;
        (*n)++;
        return;
    }
    if (wire != WireBytes) {
        *bad = true;
        return;
    }
    while (sub->p < sub->end && !sub->bad) {
        uint64_t x = rdVarint(sub);
        if (out != NULL)
            out[*n] = x;
        (*n)++;
    }
    *bad |= sub->bad;
}
