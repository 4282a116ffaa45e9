// SPDX-License-Identifier: MIT
//
// pprof's profile format (Go: runtime/pprof's proto.go, protobuf.go and
// protomem.go; the format is github.com/google/pprof's proto/profile.proto):
// writes the heap profile of mprof.c and the coroutine profile, and reads
// a profile back (gomem-info pprof and coroutines, the tests).
//
// Owns: the profile's messages (string table, mappings with their build
// ids, locations, samples) on top of protobuf.c's fields and gzip.c's
// container, the heap and coroutine profiles (pprof_writeHeap,
// pprof_writeCoroutines), and the reader of a profile into arrays
// (pprof_read).
//
// Symbols. The profile carries addresses and the mappings they fall in
// (file, build id, start, limit, offset: from dl_iterate_phdr), and no
// function names: `go tool pprof` then symbolizes from the binaries
// themselves (addr2line on their DWARF, so static functions and file:line
// work), as it does for any C program's profile. Each address is a return
// address less one, so that it falls in the call's line.
//
// Memory: every buffer is a pbuf (a mapping of its own, never the heap), so
// writing a profile cannot sample or change the heap it describes.
//
// Locks: none of its own; the coroutine walk runs under proc.c's
// (forEachG) and each copied g's stackLock while reading its saved copy.
#include "gzip.h"
#include "mprof.h"
#include "protobuf.h"
#include "runtime2.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

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
    // The program comes first: glibc names it "", musl as it was started
    // (maybe a relative path); the kernel's name for it is the one to
    // keep. Later nameless objects (the vDSO) have no file to symbolize.
    if (ms->n == 0 || name == NULL || name[0] == 0) {
        if (ms->n != 0)
            return 0;
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
    uint64_t now;      // nanotimeCoarse(), the clock of g.waitSince
} gwalk;

// The call stack of parked g along its frame pointers: the return address
// its switch saved, then each frame record [fp] = caller's fp, [fp + 8] =
// return address, while fp climbs inside g's frames. A copied g's frames
// are in its saved copy unless it still owns the execution stack: an
// address a of its frames (at [runHi - savedLen, runHi) when it runs) is
// then at stack.lo + (a - (runHi - savedLen)) (gstack.c's saveStack).
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
        s->waitNs = w->now > since ? w->now - since : 0;
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
    const osUnwinder *unw;
} selfUnwind;

static _Unwind_Reason_Code selfFrame(struct _Unwind_Context *ctx, void *arg)
{
    selfUnwind *u = arg;
    uintptr_t pc = u->unw->getIP(ctx);
    if (pc == 0 || u->n == GMaxFrames + 16)
        return _URC_END_OF_STACK;
    u->pc[u->n] = pc;
    u->fn[u->n++] = (uintptr_t)u->unw->getRegionStart(ctx);
    return _URC_NO_REASON;
}

static void selfFrames(gsnap *s)
{
    selfUnwind u;
    u.n = 0;
    u.unw = os_unwinderLoaded(); // gm_prof_write found it, before its locks
    if (u.unw != NULL)
        u.unw->backtrace(selfFrame, &u);
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
    gwalk w = {.self = TLS(tworker) != NULL ? TLS(tworker)->cur : NULL};
    w.now = nanotimeCoarse();
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
