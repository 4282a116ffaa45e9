// SPDX-License-Identifier: MIT
//
// gzip's container (RFC 1952) for pprof's profiles, which `go tool pprof`
// expects compressed: written with deflate's stored blocks (RFC 1951
// 3.2.4: valid gzip that needs no compressor; a profile is small), read
// with a full inflate, so profiles written by Go or by pprof itself read
// too. And CRC-32, which both directions check.
//
// No library: make test needs C11 and pthreads only, and zlib is not one of
// gomem's dependencies. Memory: the output of inflate grows a pbuf (a
// mapping of its own, not the heap).
#include "gzip.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------- writing

static uint32_t crc32Update(uint32_t crc, const unsigned char *p, size_t n)
{
    static _Atomic uint32_t table[256]; // filled on first use; racing fillers write the same values
    if (atomic_load_explicit(&table[1], memory_order_relaxed) == 0)
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            atomic_store_explicit(&table[i], c, memory_order_relaxed);
        }
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = atomic_load_explicit(&table[(crc ^ p[i]) & 0xff], memory_order_relaxed) ^ (crc >> 8);
    return ~crc;
}

int writeAll(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

// data as a gzip member of stored deflate blocks (RFC 1952, RFC 1951 3.2.4).
int writeGzip(int fd, const pbuf *data)
{
    if (data->oom) {
        errno = ENOMEM;
        return -1;
    }
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    if (writeAll(fd, header, sizeof header) != 0)
        return -1;
    size_t off = 0;
    do {
        size_t n = data->n - off > 65535 ? 65535 : data->n - off;
        unsigned char h[5] = {off + n == data->n, (unsigned char)n, (unsigned char)(n >> 8),
                              (unsigned char)~n, (unsigned char)(~n >> 8)};
        if (writeAll(fd, h, sizeof h) != 0 || writeAll(fd, data->p + off, n) != 0)
            return -1;
        off += n;
    } while (off < data->n);
    unsigned char t[8];
    put32(t, crc32Update(0, data->p, data->n));
    put32(t + 4, (uint32_t)data->n);
    return writeAll(fd, t, sizeof t);
}

// ----------------------------------------------------------------- inflate
// RFC 1951 in full (stored, fixed and dynamic Huffman blocks), decoding
// canonical codes by counting (as zlib's puff.c explains): slow, small,
// and plenty for a profile.

typedef struct inflater {
    const unsigned char *in;
    size_t inLen, inPos;
    uint32_t bitbuf, bitcnt;
    pbuf *out;
    const char *err;
} inflater;

typedef struct huffman {
    short count[16];  // codes of each length
    short symbol[320]; // symbols in canonical order
} huffman;

static uint32_t getBits(inflater *s, uint32_t need)
{
    uint64_t v = s->bitbuf;
    while (s->bitcnt < need) {
        if (s->inPos == s->inLen) {
            s->err = "the compressed data ends early (truncated file)";
            return 0;
        }
        v |= (uint64_t)s->in[s->inPos++] << s->bitcnt;
        s->bitcnt += 8;
    }
    s->bitbuf = (uint32_t)(v >> need);
    s->bitcnt -= need;
    return (uint32_t)(v & ((1ull << need) - 1));
}

// Builds h from n code lengths; false if they over-subscribe.
static bool huffBuild(huffman *h, const short *length, int n)
{
    short offs[16];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++)
        h->count[length[i]]++;
    if (h->count[0] == n)
        return true;
    int left = 1;
    for (int len = 1; len < 16; len++) {
        left <<= 1;
        left -= h->count[len];
        if (left < 0)
            return false;
    }
    offs[1] = 0;
    for (int len = 1; len < 15; len++)
        offs[len + 1] = (short)(offs[len] + h->count[len]);
    for (int i = 0; i < n; i++)
        if (length[i] != 0)
            h->symbol[offs[length[i]]++] = (short)i;
    return true;
}

static int huffDecode(inflater *s, const huffman *h)
{
    int code = 0, first = 0, index = 0;
    for (int len = 1; len < 16; len++) {
        code |= (int)getBits(s, 1);
        if (s->err != NULL)
            return -1;
        int count = h->count[len];
        if (code - count < first)
            return h->symbol[index + (code - first)];
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    s->err = "a bad Huffman code in the compressed data";
    return -1;
}

static bool inflateCodes(inflater *s, const huffman *lencode, const huffman *distcode)
{
    static const short lbase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                    35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const short lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static const short dbase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                    257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static const short dext[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
                                   7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    for (;;) {
        int sym = huffDecode(s, lencode);
        if (sym < 0)
            return false;
        if (sym < 256) {
            unsigned char c = (unsigned char)sym;
            pbPut(s->out, &c, 1);
        } else if (sym == 256) {
            return true;
        } else {
            sym -= 257;
            if (sym >= 29) {
                s->err = "a bad length code in the compressed data";
                return false;
            }
            size_t len = (size_t)lbase[sym] + getBits(s, (uint32_t)lext[sym]);
            int d = huffDecode(s, distcode);
            if (d < 0 || d >= 30) {
                s->err = s->err ? s->err : "a bad distance code in the compressed data";
                return false;
            }
            size_t dist = (size_t)dbase[d] + getBits(s, (uint32_t)dext[d]);
            if (s->err != NULL)
                return false;
            if (dist > s->out->n) {
                s->err = "a distance past the start of the data";
                return false;
            }
            if (!pbReserve(s->out, len))
                return false;
            for (size_t i = 0; i < len; i++, s->out->n++)
                s->out->p[s->out->n] = s->out->p[s->out->n - dist];
        }
        if (s->out->oom) {
            s->err = "out of memory";
            return false;
        }
    }
}

static bool inflateDynamic(inflater *s)
{
    static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    short lengths[320];
    huffman lencode, distcode;
    int nlen = (int)getBits(s, 5) + 257, ndist = (int)getBits(s, 5) + 1, ncode = (int)getBits(s, 4) + 4;
    if (s->err != NULL || nlen > 286 || ndist > 30) {
        s->err = s->err ? s->err : "bad block header in the compressed data";
        return false;
    }
    int i;
    for (i = 0; i < ncode; i++)
        lengths[order[i]] = (short)getBits(s, 3);
    for (; i < 19; i++)
        lengths[order[i]] = 0;
    if (s->err != NULL || !huffBuild(&lencode, lengths, 19)) {
        s->err = s->err ? s->err : "bad code lengths in the compressed data";
        return false;
    }
    for (i = 0; i < nlen + ndist;) {
        int sym = huffDecode(s, &lencode);
        if (sym < 0)
            return false;
        if (sym < 16) {
            lengths[i++] = (short)sym;
            continue;
        }
        short len = 0;
        int rep;
        if (sym == 16) {
            if (i == 0) {
                s->err = "a repeat with nothing before it in the compressed data";
                return false;
            }
            len = lengths[i - 1];
            rep = 3 + (int)getBits(s, 2);
        } else if (sym == 17) {
            rep = 3 + (int)getBits(s, 3);
        } else {
            rep = 11 + (int)getBits(s, 7);
        }
        if (s->err != NULL || i + rep > nlen + ndist) {
            s->err = s->err ? s->err : "too many code lengths in the compressed data";
            return false;
        }
        while (rep--)
            lengths[i++] = len;
    }
    if (!huffBuild(&lencode, lengths, nlen) || !huffBuild(&distcode, lengths + nlen, ndist)) {
        s->err = "bad code lengths in the compressed data";
        return false;
    }
    return inflateCodes(s, &lencode, &distcode);
}

static bool inflateFixed(inflater *s)
{
    short lengths[320];
    huffman lencode, distcode;
    int i = 0;
    for (; i < 144; i++)
        lengths[i] = 8;
    for (; i < 256; i++)
        lengths[i] = 9;
    for (; i < 280; i++)
        lengths[i] = 7;
    for (; i < 288; i++)
        lengths[i] = 8;
    huffBuild(&lencode, lengths, 288);
    for (i = 0; i < 30; i++)
        lengths[i] = 5;
    huffBuild(&distcode, lengths, 30);
    return inflateCodes(s, &lencode, &distcode);
}

static bool inflateAll(inflater *s)
{
    for (;;) {
        uint32_t last = getBits(s, 1), type = getBits(s, 2);
        if (s->err != NULL)
            return false;
        bool ok;
        if (type == 0) {
            s->bitbuf = 0;
            s->bitcnt = 0;
            if (s->inLen - s->inPos < 4) {
                s->err = "the compressed data ends early (truncated file)";
                return false;
            }
            size_t len = s->in[s->inPos] | (size_t)s->in[s->inPos + 1] << 8;
            size_t nlen = s->in[s->inPos + 2] | (size_t)s->in[s->inPos + 3] << 8;
            s->inPos += 4;
            if (len != (~nlen & 0xffff)) {
                s->err = "a stored block's length check fails";
                return false;
            }
            if (s->inLen - s->inPos < len) {
                s->err = "the compressed data ends early (truncated file)";
                return false;
            }
            pbPut(s->out, s->in + s->inPos, len);
            s->inPos += len;
            ok = !s->out->oom;
        } else if (type == 1) {
            ok = inflateFixed(s);
        } else if (type == 2) {
            ok = inflateDynamic(s);
        } else {
            s->err = "a block of unknown type in the compressed data";
            return false;
        }
        if (!ok)
            return false;
        if (last)
            return true;
    }
}

// The data of a gzip member (RFC 1952) into out; NULL, or what is wrong.
const char *gunzip(const unsigned char *in, size_t len, pbuf *out)
{
    if (len < 18)
        return "too short for a gzip file (truncated?)";
    if (in[2] != 8)
        return "gzip with an unknown compression method";
    unsigned flags = in[3];
    size_t pos = 10;
    if (flags & 4) { // FEXTRA
        if (pos + 2 > len)
            return "the gzip header ends early";
        pos += 2 + (in[pos] | (size_t)in[pos + 1] << 8);
    }
    for (unsigned f = 8; f <= 16; f <<= 1) // FNAME, FCOMMENT
        if (flags & f) {
            while (pos < len && in[pos] != 0)
                pos++;
            pos++;
        }
    if (flags & 2)
        pos += 2;
    if (pos >= len)
        return "the gzip header ends early";
    inflater s = {.in = in, .inLen = len, .inPos = pos, .out = out};
    if (!inflateAll(&s))
        return s.err != NULL ? s.err : "out of memory";
    if (len - s.inPos < 8)
        return "the gzip file ends before its checksum (truncated file)";
    const unsigned char *t = in + s.inPos;
    uint32_t crc = t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    uint32_t size = t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
    if (size != (uint32_t)out->n || crc != crc32Update(0, out->p, out->n))
        return "the gzip checksum does not match the data (a damaged file)";
    return NULL;
}
