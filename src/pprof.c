// SPDX-License-Identifier: MIT
//
// pprof's profile format (Go: runtime/pprof's proto.go, protobuf.go and
// protomem.go; the format is github.com/google/pprof's proto/profile.proto):
// writes the heap profile of mprof.c and the coroutine profile, and reads
// a profile back (gomem-info pprof and coroutines, the tests).
//
// Owns: a protobuf encoder and decoder of our own (a few dozen lines each:
// the format needs varints and length-delimited fields only), gzip's
// container with deflate's stored blocks for writing (valid gzip that
// needs no compressor; a profile is small) and a full inflate for reading
// (so that profiles from Go or pprof itself read too), CRC-32, the process's
// mappings with their build ids, and pprof_writeHeap / pprof_writeCoroutines.
// No library: make test needs C11 and pthreads only, and zlib is not one
// of gomem's dependencies.
//
// Symbols. The profile carries addresses and the mappings they fall in
// (file, build id, start, limit, offset: from dl_iterate_phdr), and no
// function names: `go tool pprof` then symbolizes from the binaries
// themselves (addr2line on their DWARF, so static functions and file:line
// work), as it does for any C program's profile. Each address is a return
// address less one, so that it falls in the call's line.
//
// Memory: every buffer is a mapping of its own (os_alloc_meta), never the
// heap, so writing a profile cannot sample or change the heap it describes.
//
// Locks: none of its own; the coroutine walk runs under proc.c's
// (forEachG) and each copied g's stackLock while reading its saved copy.
#include "mprof.h"
#include "runtime2.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

// ---------------------------------------------------------------- buffers

typedef struct pbuf {
    unsigned char *p;
    size_t n, cap;
    bool oom;      // a grow failed: the contents are incomplete
} pbuf;

static bool pbReserve(pbuf *b, size_t more)
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

static void pbFree(pbuf *b)
{
    if (b->p != NULL)
        os_release(b->p, b->cap);
    *b = (pbuf){0};
}

static void pbPut(pbuf *b, const void *d, size_t n)
{
    if (n != 0 && pbReserve(b, n)) {
        memcpy(b->p + b->n, d, n);
        b->n += n;
    }
}

// ------------------------------------------------------- protobuf encoder

enum { WireVarint = 0, WireFixed64 = 1, WireBytes = 2, WireFixed32 = 5 };

static void pbVarint(pbuf *b, uint64_t v)
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
static void pbUint(pbuf *b, int field, uint64_t v)
{
    if (v != 0) {
        pbVarint(b, (uint64_t)field << 3 | WireVarint);
        pbVarint(b, v);
    }
}

static void pbBytes(pbuf *b, int field, const void *d, size_t n)
{
    pbVarint(b, (uint64_t)field << 3 | WireBytes);
    pbVarint(b, n);
    pbPut(b, d, n);
}

// Appends the message built in m as field, and empties m for the next.
static void pbMsg(pbuf *b, int field, pbuf *m)
{
    if (m->oom)
        b->oom = true;
    pbBytes(b, field, m->p, m->n);
    m->n = 0;
}

// ------------------------------------------------------------ string table

// The profile's strings, each once: an open-addressing table of indexes
// into the encoded string_table fields (data).
typedef struct strtab {
    pbuf data;        // the string_table fields, in index order
    pbuf offs;        // uint32 offset of string i's bytes in data, and its length
    pbuf table;       // uint32 slots: index + 1, 0 empty
    uint32_t n, slots;
} strtab;

static uint64_t bytesHash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static void strtabGrow(strtab *t);

static int64_t strIndexLen(strtab *t, const char *s, size_t len)
{
    if (t->n * 2 >= t->slots)
        strtabGrow(t);
    if (t->table.oom || t->offs.oom || t->data.oom)
        return 0;
    uint32_t *slot = (uint32_t *)t->table.p;
    const uint32_t *off = (const uint32_t *)t->offs.p;
    for (uint64_t i = bytesHash(s, len) & (t->slots - 1);; i = (i + 1) & (t->slots - 1)) {
        uint32_t k = slot[i];
        if (k == 0) {
            uint32_t o[2];
            pbVarint(&t->data, 6 << 3 | WireBytes);
            pbVarint(&t->data, len);
            o[0] = (uint32_t)t->data.n;
            o[1] = (uint32_t)len;
            pbPut(&t->data, s, len);
            pbPut(&t->offs, o, sizeof o);
            slot[i] = ++t->n;
            return t->n - 1;
        }
        if (off[2 * (k - 1) + 1] == len && memcmp(t->data.p + off[2 * (k - 1)], s, len) == 0)
            return k - 1;
    }
}

static int64_t strIndex(strtab *t, const char *s)
{
    return strIndexLen(t, s == NULL ? "" : s, s == NULL ? 0 : strlen(s));
}

static void strtabGrow(strtab *t)
{
    uint32_t slots = t->slots ? t->slots * 2 : 1024;
    pbuf nt = {0};
    if (!pbReserve(&nt, slots * sizeof(uint32_t))) {
        t->table.oom = true;
        return;
    }
    memset(nt.p, 0, slots * sizeof(uint32_t)); // fresh mappings are zero; be plain about it
    nt.n = slots * sizeof(uint32_t);
    const uint32_t *off = (const uint32_t *)t->offs.p;
    uint32_t *slot = (uint32_t *)nt.p;
    for (uint32_t k = 1; k <= t->n; k++) {
        uint64_t i = bytesHash((const char *)t->data.p + off[2 * (k - 1)], off[2 * (k - 1) + 1]) & (slots - 1);
        while (slot[i] != 0)
            i = (i + 1) & (slots - 1);
        slot[i] = k;
    }
    pbFree(&t->table);
    t->table = nt;
    t->slots = slots;
}

static void strtabFree(strtab *t)
{
    pbFree(&t->data);
    pbFree(&t->offs);
    pbFree(&t->table);
}

// ------------------------------------------------------------------- gzip

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

static int writeAll(int fd, const void *p, size_t n)
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
static int writeGzip(int fd, const pbuf *data)
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

// --------------------------------------------------------------- mappings

#define MaxMappings 512

typedef struct mapping {
    uintptr_t start, limit, offset;
    char file[256];
    char buildId[41]; // hex
} mapping;

typedef struct mappings {
    mapping m[MaxMappings];
    int n;
} mappings;

static void buildIdOf(const struct dl_phdr_info *info, char *out)
{
    out[0] = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + 12 <= end) {
            uint32_t namesz, descsz, type;
            memcpy(&namesz, p, 4);
            memcpy(&descsz, p + 4, 4);
            memcpy(&type, p + 8, 4);
            const unsigned char *name = p + 12, *desc = name + ((namesz + 3) & ~3u);
            if (desc + descsz > end)
                break;
            if (type == 3 /* NT_GNU_BUILD_ID */ && namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                size_t n = descsz > 20 ? 20 : descsz;
                for (size_t k = 0; k < n; k++)
                    snprintf(out + 2 * k, 3, "%02x", desc[k]);
                return;
            }
            p = desc + ((descsz + 3) & ~3u);
        }
    }
}

static int addMapping(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    mappings *ms = arg;
    const char *name = info->dlpi_name;
    char exe[256];
    if (name == NULL || name[0] == 0) {
        if (ms->n != 0)
            return 0; // only the program itself has no name
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[k > 0 ? k : 0] = 0;
        name = exe;
    }
    char id[41];
    buildIdOf(info, id);
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum && ms->n < MaxMappings; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        mapping *m = &ms->m[ms->n++];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        m->start = lo & ~(page - 1);
        m->limit = (lo + ph->p_memsz + page - 1) & ~(page - 1);
        m->offset = ph->p_offset & ~(page - 1);
        snprintf(m->file, sizeof m->file, "%s", name);
        memcpy(m->buildId, id, sizeof id);
    }
    return 0;
}

// The executable mappings, the program's first (pprof's main binary).
static mappings *readMappings(void)
{
    mappings *ms = os_alloc_meta(sizeof *ms);
    if (ms != NULL) {
        ms->n = 0;
        dl_iterate_phdr(addMapping, ms);
    }
    return ms;
}

static uint64_t mappingOf(const mappings *ms, uintptr_t pc)
{
    for (int i = 0; ms != NULL && i < ms->n; i++)
        if (pc >= ms->m[i].start && pc < ms->m[i].limit)
            return (uint64_t)i + 1;
    return 0;
}

static void writeMappings(pbuf *out, pbuf *m, strtab *st, const mappings *ms)
{
    for (int i = 0; ms != NULL && i < ms->n; i++) {
        pbUint(m, 1, (uint64_t)i + 1);
        pbUint(m, 2, ms->m[i].start);
        pbUint(m, 3, ms->m[i].limit);
        pbUint(m, 4, ms->m[i].offset);
        pbUint(m, 5, (uint64_t)strIndex(st, ms->m[i].file));
        pbUint(m, 6, (uint64_t)strIndex(st, ms->m[i].buildId));
        pbMsg(out, 3, m);
    }
}

// ------------------------------------------------------------- locations

// Return addresses to location ids: an open-addressing table, and the
// addresses in id order.
typedef struct locs {
    pbuf table;       // uintptr_t pc, uint64 id pairs; id 0 empty
    pbuf byId;        // uintptr_t pcs, id i at [i - 1]
    uint64_t n, slots;
} locs;

static bool locsInit(locs *l, uint64_t maxPcs)
{
    l->slots = 64;
    while (l->slots < 2 * maxPcs + 2)
        l->slots *= 2;
    if (!pbReserve(&l->table, l->slots * 16))
        return false;
    memset(l->table.p, 0, l->slots * 16);
    l->table.n = l->slots * 16;
    return true;
}

static uint64_t locId(locs *l, uintptr_t pc)
{
    uint64_t *t = (uint64_t *)l->table.p;
    for (uint64_t i = (pc * 0x9E3779B97F4A7C15ull >> 17) & (l->slots - 1);; i = (i + 1) & (l->slots - 1)) {
        if (t[2 * i + 1] == 0) {
            t[2 * i] = pc;
            t[2 * i + 1] = ++l->n;
            pbPut(&l->byId, &pc, sizeof pc);
            return l->n;
        }
        if (t[2 * i] == pc)
            return t[2 * i + 1];
    }
}

static void writeLocations(pbuf *out, pbuf *m, const locs *l, const mappings *ms)
{
    const uintptr_t *pcs = (const uintptr_t *)l->byId.p;
    for (uint64_t id = 1; id <= l->n && !l->byId.oom; id++) {
        uintptr_t addr = pcs[id - 1] - 1; // in the call, not after it
        pbUint(m, 1, id);
        pbUint(m, 2, mappingOf(ms, addr));
        pbUint(m, 3, addr);
        pbMsg(out, 4, m);
    }
}

static void locsFree(locs *l)
{
    pbFree(&l->table);
    pbFree(&l->byId);
}

// A ValueType message (type, unit) as field.
static void valueType(pbuf *out, pbuf *m, strtab *st, int field, const char *type, const char *unit)
{
    pbUint(m, 1, (uint64_t)strIndex(st, type));
    pbUint(m, 2, (uint64_t)strIndex(st, unit));
    pbMsg(out, field, m);
}

static int64_t realtimeNs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// The rest of a profile (strings, period, time) after its messages, then
// the whole gzip-compressed into fd.
static int finish(int fd, pbuf *out, pbuf *m, strtab *st, const char *ptype, const char *punit, int64_t period,
                  int64_t defaultType)
{
    valueType(out, m, st, 11, ptype, punit);
    pbUint(out, 12, (uint64_t)period);
    pbUint(out, 9, (uint64_t)realtimeNs());
    pbUint(out, 14, (uint64_t)defaultType);
    pbPut(out, st->data.p, st->data.n);
    if (st->data.oom || st->offs.oom || st->table.oom || m->oom)
        out->oom = true;
    return writeGzip(fd, out);
}

// ------------------------------------------------------------------ heap

// e^x for x <= 0, without libm: 2^k e^r with r in [0, ln 2), r's series.
static double expNeg(double x)
{
    if (x < -700)
        return 0;
    int k = (int)(x / 0.6931471805599453) - 1;
    double r = x - k * 0.6931471805599453, term = 1, sum = 1;
    for (int i = 1; i < 20; i++) {
        term *= r / i;
        sum += term;
    }
    for (; k < 0; k++)
        sum *= 0.5;
    return sum;
}

// Go's scaleHeapSample: count sampled objects of bytes in all, sampled
// each with probability 1 - e^(-size/rate), estimate the objects and bytes
// they stand for.
static void scaleHeapSample(uint64_t count, uint64_t bytes, uint64_t rate, int64_t *c, int64_t *b)
{
    if (count == 0 || bytes == 0) {
        *c = *b = 0;
        return;
    }
    if (rate <= 1) {
        *c = (int64_t)count;
        *b = (int64_t)bytes;
        return;
    }
    double avg = (double)bytes / (double)count;
    double scale = 1 / (1 - expNeg(-avg / (double)rate));
    *c = (int64_t)((double)count * scale);
    *b = (int64_t)((double)bytes * scale);
}

// gomem's own frames that a sample might still show (the unwinder keeps
// one it could not tell): pprof drops them, with their callees, once it
// has named them.
#define DropFrames                                                                                           \
    "(gm_malloc|gm_calloc|gm_realloc|gm_reallocarray|gm_aligned_alloc|gm_memalign|gm_posix_memalign|"        \
    "gm_malloc_bytes|gm_strdup|gm_strndup|malloc|calloc|realloc|reallocarray|aligned_alloc|posix_memalign|"  \
    "memalign|valloc|pvalloc|mallocSlow|mallocSmall|mallocLarge|mallocLargeTry|alignedAlloc|tinyAllocSlow|"  \
    "mProf_.*|reallocMove|reallocNewLarge)(\\..*)?"

int pprof_writeHeap(int fd, uint64_t rate)
{
    pbuf out = {0}, m = {0}, ids = {0}, vals = {0};
    strtab st = {0};
    locs l = {0};
    strIndex(&st, "");
    static const char *const types[4][2] = {
        {"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
    for (int i = 0; i < 4; i++)
        valueType(&out, &m, &st, 1, types[i][0], types[i][1]);
    uint64_t frames = 0;
    for (mbucket *b = mProf_buckets(); b != NULL; b = b->allnext)
        frames += b->nstk;
    mappings *ms = readMappings();
    int r = -1;
    if (ms == NULL || !locsInit(&l, frames)) {
        errno = ENOMEM;
        goto done;
    }
    for (mbucket *b = mProf_buckets(); b != NULL; b = b->allnext) {
        // Frees first: a free never comes before its allocation.
        uint64_t frees = atomic_load_explicit(&b->frees, memory_order_acquire);
        uint64_t allocs = atomic_load_explicit(&b->allocs, memory_order_acquire);
        if (allocs == 0)
            continue;
        if (frees > allocs)
            frees = allocs;
        int64_t v[4];
        scaleHeapSample(allocs, allocs * b->size, b->rate, &v[0], &v[1]);
        scaleHeapSample(allocs - frees, (allocs - frees) * b->size, b->rate, &v[2], &v[3]);
        for (uint32_t i = 0; i < b->nstk; i++)
            pbVarint(&ids, locId(&l, b->stk[i]));
        for (int i = 0; i < 4; i++)
            pbVarint(&vals, (uint64_t)v[i]);
        pbMsg(&m, 1, &ids);
        pbMsg(&m, 2, &vals);
        pbMsg(&out, 2, &m);
    }
    writeMappings(&out, &m, &st, ms);
    writeLocations(&out, &m, &l, ms);
    pbUint(&out, 7, (uint64_t)strIndex(&st, DropFrames));
    if (l.table.oom || l.byId.oom || ids.oom || vals.oom)
        out.oom = true;
    r = finish(fd, &out, &m, &st, "space", "bytes", (int64_t)(rate ? rate : 1), strIndex(&st, "inuse_space"));
done:
    if (ms != NULL)
        os_release(ms, sizeof *ms);
    locsFree(&l);
    strtabFree(&st);
    pbFree(&out);
    pbFree(&m);
    pbFree(&ids);
    pbFree(&vals);
    return r;
}

// ------------------------------------------------------------ coroutines

#define GMaxFrames 32

// One coroutine, as the walk found it.
typedef struct gsnap {
    uint64_t id;
    const char *name, *reason;
    int status;
    bool copied, started, self;
    uint64_t waitNs;
    size_t stackBytes, stackUsed;
    uint32_t npc;
    uintptr_t pc[GMaxFrames];
} gsnap;

typedef struct gwalk {
    pbuf snaps;
    gm_g *self;
    uint64_t now;      // cputicks()
    double nsPerTick;
} gwalk;

// cputicks() to ns: measured once over 2 ms.
static double nsPerTick(void)
{
    static _Atomic double cached;
    double r = atomic_load_explicit(&cached, memory_order_relaxed);
    if (r != 0)
        return r;
    uint64_t t0 = cputicks(), n0 = nanotime(), n1;
    while ((n1 = nanotime()) - n0 < 2000000)
        ;
    uint64_t t1 = cputicks();
    r = t1 > t0 ? (double)(n1 - n0) / (double)(t1 - t0) : 1;
    atomic_store_explicit(&cached, r, memory_order_relaxed);
    return r;
}

// The call stack of parked g along its frame pointers: the return address
// its switch saved, then each frame record [fp] = caller's fp, [fp + 8] =
// return address, while fp climbs inside g's frames. A copied g's frames
// are in its saved copy unless it still owns the execution stack: an
// address a of its frames (at [runHi - savedLen, runHi) when it runs) is
// then at stack.lo + (a - (runHi - savedLen)) (stack.c's saveStack).
static void parkedFrames(gm_g *g, gsnap *s)
{
    bool copied = g->mode == GM_STACK_COPIED;
    if (copied)
        spin_lock(&g->stackLock);
    uintptr_t sp = (uintptr_t)g->sp, lo = sp, hi, delta = 0;
    if (!copied) {
        hi = g->stack.hi;
    } else if (g->checked && g->protected) {
        hi = lo; // its own mapping is PROT_NONE while parked: nothing to read
    } else if (g->onExec || g->checked) {
        hi = g->runHi;
    } else {
        hi = g->runHi;
        lo = hi - g->savedLen;
        delta = g->stack.lo - lo;
    }
    if (sp >= lo && sp + gosavedframeBytes <= hi) {
        uintptr_t fp, pc;
        gosavedframe((const uintptr_t *)(sp + delta), &fp, &pc);
        s->pc[s->npc++] = pc;
        while (s->npc < GMaxFrames && fp >= sp && fp % sizeof(uintptr_t) == 0 && fp + 16 <= hi) {
            uintptr_t next = *(const uintptr_t *)(fp + delta), ret = *(const uintptr_t *)(fp + 8 + delta);
            if (ret < 4096)
                break;
            s->pc[s->npc++] = ret;
            if (next <= fp)
                break;
            fp = next;
        }
    }
    if (copied)
        spin_unlock(&g->stackLock);
}

static void snapG(gm_g *g, worker *p, void *arg)
{
    (void)p;
    gwalk *w = arg;
    int st = gstatus(g);
    if (st == Gdead || st == Gidle || !pbReserve(&w->snaps, sizeof(gsnap)))
        return;
    gsnap *s = (gsnap *)(w->snaps.p + w->snaps.n);
    w->snaps.n += sizeof(gsnap);
    memset(s, 0, sizeof *s);
    s->id = atomic_load_explicit(&g->id, memory_order_relaxed);
    s->name = g->name;
    s->status = st;
    s->started = g->started;
    s->copied = g->mode == GM_STACK_COPIED;
    s->self = g == w->self;
    if (st == Gwaiting) {
        s->reason = g->waitReason;
        uint64_t since = g->waitSince;
        s->waitNs = w->now > since ? (uint64_t)((double)(w->now - since) * w->nsPerTick) : 0;
    }
    s->stackBytes = g->stack.hi - g->stack.lo;
    if (s->copied)
        s->stackUsed = g->onExec ? 0 : g->savedLen;
    else if (st != Grunning && g->started)
        s->stackUsed = g->stack.hi - (uintptr_t)g->sp;
    if (g->started && st != Grunning && !s->self)
        parkedFrames(g, s);
}

// The caller's own stack (libgcc's unwinder), above gm_prof_write: past
// this file's pprof_writeCoroutines, mprof.c's writeFile (never inlined)
// and gm_prof_write, unless that tail-called writeFile.
typedef struct selfUnwind {
    uintptr_t pc[GMaxFrames + 16];
    uintptr_t fn[GMaxFrames + 16];
    int n;
} selfUnwind;

static _Unwind_Reason_Code selfFrame(struct _Unwind_Context *ctx, void *arg)
{
    selfUnwind *u = arg;
    uintptr_t pc = _Unwind_GetIP(ctx);
    if (pc == 0 || u->n == GMaxFrames + 16)
        return _URC_END_OF_STACK;
    u->pc[u->n] = pc;
    u->fn[u->n++] = (uintptr_t)_Unwind_GetRegionStart(ctx);
    return _URC_NO_REASON;
}

static void selfFrames(gsnap *s)
{
    selfUnwind u;
    u.n = 0;
    _Unwind_Backtrace(selfFrame, &u);
    int first = 0;
    for (int i = 0; i < u.n; i++)
        if (u.fn[i] == (uintptr_t)pprof_writeCoroutines)
            first = i + 2;
    if (first < u.n && u.fn[first] == (uintptr_t)gm_prof_write)
        first++;
    for (int i = first; i < u.n && s->npc < GMaxFrames; i++)
        s->pc[s->npc++] = u.pc[i];
}

static const char *stateName(const gsnap *s)
{
    switch (s->status) {
    case Grunnable: return s->started ? "runnable" : "runnable (not started)";
    case Grunning: return "running";
    case Gwaiting: return s->reason != NULL ? s->reason : "waiting";
    default: return "?";
    }
}

void pprof_symbolize(uintptr_t pc, char *buf, size_t len)
{
    Dl_info info;
    if (dladdr((void *)pc, &info) == 0 || info.dli_fname == NULL) {
        snprintf(buf, len, "0x%lx", (unsigned long)pc);
        return;
    }
    const char *file = strrchr(info.dli_fname, '/');
    file = file != NULL ? file + 1 : info.dli_fname;
    if (info.dli_sname != NULL)
        snprintf(buf, len, "%s+0x%lx (%s)", info.dli_sname, (unsigned long)(pc - (uintptr_t)info.dli_saddr), file);
    else
        snprintf(buf, len, "%s+0x%lx", file, (unsigned long)(pc - (uintptr_t)info.dli_fbase));
}

static int writeText(int fd, const gsnap *gs, size_t n)
{
    char line[600];
    int k = snprintf(line, sizeof line, "%zu coroutines\n", n);
    if (writeAll(fd, line, (size_t)k) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const gsnap *s = &gs[i];
        char waited[64] = "";
        if (s->status == Gwaiting)
            snprintf(waited, sizeof waited, ", %.3f s", (double)s->waitNs / 1e9);
        k = snprintf(line, sizeof line, "\ncoroutine %llu%s%s%s [%s%s]%s: %s stack, %zu of %zu bytes used\n",
                     (unsigned long long)s->id, s->name ? " \"" : "", s->name ? s->name : "", s->name ? "\"" : "",
                     stateName(s), waited, s->self ? " (the caller)" : "", s->copied ? "copied" : "dedicated",
                     s->stackUsed, s->stackBytes);
        if (writeAll(fd, line, (size_t)k) != 0)
            return -1;
        for (uint32_t j = 0; j < s->npc; j++) {
            char sym[400];
            pprof_symbolize(s->pc[j] - 1, sym, sizeof sym);
            k = snprintf(line, sizeof line, "    #%u 0x%lx %s\n", j, (unsigned long)(s->pc[j] - 1), sym);
            if (writeAll(fd, line, (size_t)k) != 0)
                return -1;
        }
    }
    return 0;
}

static void label(pbuf *out, pbuf *m, strtab *st, const char *key, const char *str, int64_t num, const char *unit)
{
    pbUint(m, 1, (uint64_t)strIndex(st, key));
    if (str != NULL)
        pbUint(m, 2, (uint64_t)strIndex(st, str));
    else
        pbUint(m, 3, (uint64_t)num);
    if (unit != NULL)
        pbUint(m, 4, (uint64_t)strIndex(st, unit));
    pbMsg(out, 3, m);
}

static int writeCoroutinesProto(int fd, const gsnap *gs, size_t n)
{
    pbuf out = {0}, m = {0}, sm = {0}, lm = {0}, ids = {0};
    strtab st = {0};
    locs l = {0};
    strIndex(&st, "");
    valueType(&out, &m, &st, 1, "coroutine", "count");
    mappings *ms = readMappings();
    int r = -1;
    if (ms == NULL || !locsInit(&l, n * GMaxFrames)) {
        errno = ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const gsnap *s = &gs[i];
        for (uint32_t j = 0; j < s->npc; j++)
            pbVarint(&ids, locId(&l, s->pc[j]));
        pbMsg(&sm, 1, &ids);
        pbVarint(&ids, 1);
        pbMsg(&sm, 2, &ids);
        label(&sm, &lm, &st, "id", NULL, (int64_t)s->id, NULL);
        if (s->name != NULL)
            label(&sm, &lm, &st, "name", s->name, 0, NULL);
        label(&sm, &lm, &st, "state", stateName(s), 0, NULL);
        label(&sm, &lm, &st, "mode", s->copied ? "copied" : "dedicated", 0, NULL);
        if (s->status == Gwaiting)
            label(&sm, &lm, &st, "waited", NULL, (int64_t)s->waitNs, "nanoseconds");
        label(&sm, &lm, &st, "stack bytes", NULL, (int64_t)s->stackBytes, "bytes");
        label(&sm, &lm, &st, "stack used", NULL, (int64_t)s->stackUsed, "bytes");
        pbMsg(&out, 2, &sm);
    }
    writeMappings(&out, &m, &st, ms);
    writeLocations(&out, &m, &l, ms);
    if (l.table.oom || l.byId.oom || ids.oom || sm.oom || lm.oom)
        out.oom = true;
    r = finish(fd, &out, &m, &st, "coroutine", "count", 1, strIndex(&st, "coroutine"));
done:
    if (ms != NULL)
        os_release(ms, sizeof *ms);
    locsFree(&l);
    strtabFree(&st);
    pbFree(&out);
    pbFree(&m);
    pbFree(&sm);
    pbFree(&lm);
    pbFree(&ids);
    return r;
}

int pprof_writeCoroutines(int fd, bool text)
{
    gwalk w = {.self = tworker != NULL ? tworker->cur : NULL, .nsPerTick = nsPerTick()};
    w.now = cputicks();
    forEachG(snapG, &w);
    gsnap *gs = (gsnap *)w.snaps.p;
    size_t n = w.snaps.n / sizeof(gsnap);
    for (size_t i = 0; i < n; i++)
        if (gs[i].self)
            selfFrames(&gs[i]);
    int r;
    if (w.snaps.oom) {
        errno = ENOMEM;
        r = -1;
    } else {
        r = text ? writeText(fd, gs, n) : writeCoroutinesProto(fd, gs, n);
    }
    pbFree(&w.snaps);
    return r;
}

// ================================================================ reading

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
static const char *gunzip(const unsigned char *in, size_t len, pbuf *out)
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

// ------------------------------------------------------- protobuf decoder

typedef struct preader {
    const unsigned char *p, *end;
    bool bad;
} preader;

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
static bool rdField(preader *r, uint32_t *field, int *wire, uint64_t *v, preader *sub)
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
static void rdRepeated(int wire, uint64_t v, preader *sub, uint64_t *out, uint32_t *n, bool *bad)
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

// Counts (fill == false) or fills the profile's arrays from the encoded
// message in r.
static bool decodeProfile(preader r, pprofProfile *p, bool fill, uint64_t *nlocs, uint64_t *nvals,
                          uint64_t *nlabels, uint64_t *locArena, int64_t *valArena, int64_t *labelArena)
{
    uint32_t field;
    int wire;
    uint64_t v;
    preader sub;
    uint64_t li = 0, vi = 0, lbi = 0;
    p->nvalue = p->nsample = p->nloc = p->nmapping = p->nfunction = p->nstring = 0;
    while (rdField(&r, &field, &wire, &v, &sub)) {
        if (field >= 1 && field <= 6 && wire != WireBytes)
            return false;
        preader m = sub;
        uint32_t f2;
        int w2;
        uint64_t v2;
        preader s2;
        switch (field) {
        case 1: case 11: { // ValueType
            int64_t type = 0, unit = 0;
            while (rdField(&m, &f2, &w2, &v2, &s2))
                if (f2 == 1) type = (int64_t)v2;
                else if (f2 == 2) unit = (int64_t)v2;
            if (m.bad)
                return false;
            if (field == 11) {
                p->periodType = type;
                p->periodUnit = unit;
            } else {
                if (fill) {
                    p->sampleType[p->nvalue] = type;
                    p->sampleUnit[p->nvalue] = unit;
                }
                p->nvalue++;
            }
            break;
        }
        case 2: { // Sample
            pprofSample *s = fill ? &p->sample[p->nsample] : NULL;
            uint32_t nl = 0, nv = 0, nlb = 0;
            uint64_t *lo = fill ? locArena + li : NULL;
            uint64_t *vo = fill ? (uint64_t *)(valArena + vi) : NULL;
            while (rdField(&m, &f2, &w2, &v2, &s2)) {
                bool bad = false;
                if (f2 == 1)
                    rdRepeated(w2, v2, &s2, lo, &nl, &bad);
                else if (f2 == 2)
                    rdRepeated(w2, v2, &s2, vo, &nv, &bad);
                else if (f2 == 3) {
                    if (w2 != WireBytes)
                        return false;
                    int64_t key = 0, str = 0, num = 0;
                    uint32_t f3;
                    int w3;
                    uint64_t v3;
                    preader s3;
                    while (rdField(&s2, &f3, &w3, &v3, &s3))
                        if (f3 == 1) key = (int64_t)v3;
                        else if (f3 == 2) str = (int64_t)v3;
                        else if (f3 == 3) num = (int64_t)v3;
                    if (s2.bad)
                        return false;
                    if (fill) {
                        labelArena[3 * (lbi + nlb)] = key;
                        labelArena[3 * (lbi + nlb) + 1] = str;
                        labelArena[3 * (lbi + nlb) + 2] = num;
                    }
                    nlb++;
                }
                if (bad)
                    return false;
            }
            if (m.bad)
                return false;
            if (fill) {
                s->nloc = nl;
                s->loc = lo;
                s->nval = nv;
                s->value = (int64_t *)vo;
                s->nlabel = nlb;
                s->label = labelArena + 3 * lbi;
            }
            li += nl;
            vi += nv;
            lbi += nlb;
            p->nsample++;
            break;
        }
        case 3: { // Mapping
            pprofMapping mp = {0};
            while (rdField(&m, &f2, &w2, &v2, &s2))
                switch (f2) {
                case 1: mp.id = v2; break;
                case 2: mp.start = v2; break;
                case 3: mp.limit = v2; break;
                case 4: mp.offset = v2; break;
                case 5: mp.filename = (int64_t)v2; break;
                }
            if (m.bad)
                return false;
            if (fill)
                p->mapping[p->nmapping] = mp;
            p->nmapping++;
            break;
        }
        case 4: { // Location
            pprofLocation lc = {0};
            bool haveLine = false;
            while (rdField(&m, &f2, &w2, &v2, &s2))
                switch (f2) {
                case 1: lc.id = v2; break;
                case 2: lc.mappingId = v2; break;
                case 3: lc.address = v2; break;
                case 4:
                    if (w2 != WireBytes)
                        return false;
                    if (!haveLine) { // the first line: the innermost inlined function
                        uint32_t f3;
                        int w3;
                        uint64_t v3;
                        preader s3;
                        while (rdField(&s2, &f3, &w3, &v3, &s3))
                            if (f3 == 1) lc.function = (int64_t)v3;
                            else if (f3 == 2) lc.line = (int64_t)v3;
                        if (s2.bad)
                            return false;
                        haveLine = true;
                    }
                    break;
                }
            if (m.bad)
                return false;
            if (fill)
                p->loc[p->nloc] = lc;
            p->nloc++;
            break;
        }
        case 5: { // Function
            pprofFunction fn = {0};
            while (rdField(&m, &f2, &w2, &v2, &s2))
                if (f2 == 1) fn.id = v2;
                else if (f2 == 2) fn.name = (int64_t)v2;
                else if (f2 == 4) fn.filename = (int64_t)v2;
            if (m.bad)
                return false;
            if (fill)
                p->function[p->nfunction] = fn;
            p->nfunction++;
            break;
        }
        case 6:
            if (fill) {
                p->string[p->nstring] = (const char *)sub.p;
                p->stringLen[p->nstring] = (uint32_t)(sub.end - sub.p);
            }
            p->nstring++;
            break;
        case 7: p->dropFrames = (int64_t)v; break;
        case 9: p->nanos = (int64_t)v; break;
        case 12: p->period = (int64_t)v; break;
        case 14: p->defaultSampleType = (int64_t)v; break;
        }
    }
    *nlocs = li;
    *nvals = vi;
    *nlabels = lbi;
    return !r.bad;
}

void pprof_free(pprofProfile *p)
{
    if (p->mem != NULL)
        os_release(p->mem, p->memLen);
    if (p->raw != NULL)
        os_release(p->raw, p->rawLen);
    memset(p, 0, sizeof *p);
}

static int readError(pprofProfile *p, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    pprof_free(p);
    return -1;
}

int pprof_read(const unsigned char *buf, size_t len, pprofProfile *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    pbuf raw = {0};
    if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        const char *e = gunzip(buf, len, &raw);
        if (e != NULL || raw.oom) {
            pbFree(&raw);
            return readError(p, err, errlen, e != NULL ? e : "out of memory");
        }
    } else {
        pbPut(&raw, buf, len);
        if (raw.oom)
            return readError(p, err, errlen, "out of memory");
    }
    p->raw = raw.p;
    p->rawLen = raw.cap;
    preader r = {raw.p, raw.p + raw.n, false};
    uint64_t nlocs, nvals, nlabels;
    if (raw.n == 0 || !decodeProfile(r, p, false, &nlocs, &nvals, &nlabels, NULL, NULL, NULL))
        return readError(p, err, errlen, "not a pprof profile (its protobuf fields do not parse)");
    if (p->nstring == 0 || p->nvalue == 0)
        return readError(p, err, errlen, "not a pprof profile (no sample types or no string table)");
    size_t need = p->nvalue * 2 * sizeof(int64_t) + p->nsample * sizeof(pprofSample) +
                  p->nloc * sizeof(pprofLocation) + p->nmapping * sizeof(pprofMapping) +
                  p->nfunction * sizeof(pprofFunction) + p->nstring * (sizeof(char *) + sizeof(uint32_t)) +
                  nlocs * sizeof(uint64_t) + nvals * sizeof(int64_t) + nlabels * 3 * sizeof(int64_t) + 64;
    unsigned char *mem = os_alloc_meta(need);
    if (mem == NULL)
        return readError(p, err, errlen, "out of memory");
    p->mem = mem;
    p->memLen = need;
    unsigned char *q = mem;
#define CARVE(ptr, n) (ptr = (void *)q, q += ((n) * sizeof *(ptr) + 7) & ~(size_t)7)
    CARVE(p->sampleType, p->nvalue);
    CARVE(p->sampleUnit, p->nvalue);
    CARVE(p->sample, p->nsample);
    CARVE(p->loc, p->nloc);
    CARVE(p->mapping, p->nmapping);
    CARVE(p->function, p->nfunction);
    CARVE(p->string, p->nstring);
    CARVE(p->stringLen, p->nstring);
    uint64_t *locArena;
    int64_t *valArena, *labelArena;
    CARVE(locArena, nlocs);
    CARVE(valArena, nvals);
    CARVE(labelArena, nlabels * 3);
#undef CARVE
    decodeProfile(r, p, true, &nlocs, &nvals, &nlabels, locArena, valArena, labelArena);
    if (p->stringLen[0] != 0)
        return readError(p, err, errlen, "not a pprof profile (its first string is not empty)");
    for (uint32_t i = 0; i < p->nsample; i++)
        if (p->sample[i].nval != p->nvalue)
            return readError(p, err, errlen, "a damaged profile (a sample's values do not match its sample types)");
    for (uint32_t i = 0; i < p->nvalue; i++)
        if ((uint64_t)p->sampleType[i] >= p->nstring || (uint64_t)p->sampleUnit[i] >= p->nstring)
            return readError(p, err, errlen, "a damaged profile (a sample type names no string)");
    return 0;
}

const pprofLocation *pprof_location(const pprofProfile *p, uint64_t id)
{
    if (id >= 1 && id <= p->nloc && p->loc[id - 1].id == id)
        return &p->loc[id - 1];
    for (uint32_t i = 0; i < p->nloc; i++)
        if (p->loc[i].id == id)
            return &p->loc[i];
    return NULL;
}

const char *pprof_string(const pprofProfile *p, int64_t i, size_t *len)
{
    if (i < 0 || (uint64_t)i >= p->nstring) {
        *len = 0;
        return "";
    }
    *len = p->stringLen[i];
    return p->string[i];
}

// ============================================================ rewriting

// Writes p again into fd (gzip-compressed), each location i given the
// function name[i] (NULL: none), source file[i] and line[i]; mappings
// whose locations all have names are marked symbolized, so pprof does not
// try again. Functions are shared by (name, file).
int pprof_writeSymbolized(int fd, const pprofProfile *p, const char *const *name, const char *const *file,
                          const int64_t *line)
{
    pbuf out = {0}, m = {0}, sub = {0}, ids = {0}, fnames = {0};
    strtab st = {0}, fkeys = {0};
    strIndex(&st, "");
    size_t len;
    const char *s;
#define STR(i) (s = pprof_string(p, (i), &len), strIndexLen(&st, s, len))
    for (uint32_t i = 0; i < p->nvalue; i++) {
        pbUint(&m, 1, (uint64_t)STR(p->sampleType[i]));
        pbUint(&m, 2, (uint64_t)STR(p->sampleUnit[i]));
        pbMsg(&out, 1, &m);
    }
    for (uint32_t i = 0; i < p->nsample; i++) {
        const pprofSample *sm = &p->sample[i];
        for (uint32_t j = 0; j < sm->nloc; j++)
            pbVarint(&ids, sm->loc[j]);
        pbMsg(&m, 1, &ids);
        for (uint32_t j = 0; j < sm->nval; j++)
            pbVarint(&ids, (uint64_t)sm->value[j]);
        pbMsg(&m, 2, &ids);
        for (uint32_t j = 0; j < sm->nlabel; j++) {
            pbUint(&sub, 1, (uint64_t)STR(sm->label[3 * j]));
            pbUint(&sub, 2, (uint64_t)STR(sm->label[3 * j + 1]));
            pbUint(&sub, 3, (uint64_t)sm->label[3 * j + 2]);
            pbMsg(&m, 3, &sub);
        }
        pbMsg(&out, 2, &m);
    }
    for (uint32_t i = 0; i < p->nmapping; i++) {
        const pprofMapping *mp = &p->mapping[i];
        bool named = true;
        for (uint32_t j = 0; j < p->nloc; j++)
            if (p->loc[j].mappingId == mp->id && name[j] == NULL)
                named = false;
        pbUint(&m, 1, mp->id);
        pbUint(&m, 2, mp->start);
        pbUint(&m, 3, mp->limit);
        pbUint(&m, 4, mp->offset);
        pbUint(&m, 5, (uint64_t)STR(mp->filename));
        pbUint(&m, 7, named);
        pbUint(&m, 8, named);
        pbUint(&m, 9, named);
        pbMsg(&out, 3, &m);
    }
    // Functions: one per (name, file), ids in order of first use.
    for (uint32_t j = 0; j < p->nloc; j++) {
        const pprofLocation *lc = &p->loc[j];
        pbUint(&m, 1, lc->id);
        pbUint(&m, 2, lc->mappingId);
        pbUint(&m, 3, lc->address);
        if (name[j] != NULL) {
            char key[1024];
            int k = snprintf(key, sizeof key, "%s%c%s", name[j], 0, file[j] ? file[j] : "");
            uint32_t before = fkeys.n;
            int64_t fid = strIndexLen(&fkeys, key, (size_t)k < sizeof key ? (size_t)k : sizeof key - 1) + 1;
            if (fkeys.n != before) {
                pbUint(&sub, 1, (uint64_t)fid);
                pbUint(&sub, 2, (uint64_t)strIndex(&st, name[j]));
                pbUint(&sub, 3, (uint64_t)strIndex(&st, name[j]));
                pbUint(&sub, 4, (uint64_t)strIndex(&st, file[j]));
                pbMsg(&fnames, 5, &sub);
            }
            pbUint(&sub, 1, (uint64_t)fid);
            pbUint(&sub, 2, (uint64_t)(line[j] > 0 ? line[j] : 0));
            pbMsg(&m, 4, &sub);
        }
        pbMsg(&out, 4, &m);
    }
    pbPut(&out, fnames.p, fnames.n);
    if (fnames.oom || fkeys.data.oom || fkeys.table.oom || fkeys.offs.oom || ids.oom || sub.oom)
        out.oom = true;
    if (p->dropFrames != 0)
        pbUint(&out, 7, (uint64_t)STR(p->dropFrames));
    pbUint(&m, 1, (uint64_t)STR(p->periodType));
    pbUint(&m, 2, (uint64_t)STR(p->periodUnit));
    pbMsg(&out, 11, &m);
    pbUint(&out, 12, (uint64_t)p->period);
    pbUint(&out, 9, (uint64_t)p->nanos);
    if (p->defaultSampleType != 0)
        pbUint(&out, 14, (uint64_t)STR(p->defaultSampleType));
#undef STR
    pbPut(&out, st.data.p, st.data.n);
    if (st.data.oom || st.offs.oom || st.table.oom || m.oom)
        out.oom = true;
    int r = writeGzip(fd, &out);
    strtabFree(&st);
    strtabFree(&fkeys);
    pbFree(&out);
    pbFree(&m);
    pbFree(&sub);
    pbFree(&ids);
    pbFree(&fnames);
    return r;
}
