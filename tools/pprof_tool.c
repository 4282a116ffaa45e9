// SPDX-License-Identifier: MIT
//
// gomem-info pprof and gomem-info coroutines: read a profile that gomem
// wrote (GOMEM_PROF, gm_prof_dump, gm_prof_write), name its addresses, and
// print the top call sites (heap) or every coroutine with its stack; with
// -o, write the profile again with the names in it.
//
// gomem writes addresses and the mappings they fall in, no names (src/
// pprof.c says why). `go tool pprof` of Go 1.19 names C code only from the
// DWARF its own reader understands, and nothing at all in a binary without
// debug information (Debian's python3), so the names are added here: from
// binutils' addr2line (function, file and line from any DWARF version) when
// it is installed, else from the ELF symbol table of each mapping's file
// (.symtab, or .dynsym in a stripped one: the function only). The copy
// written with -o carries Function and Line records and marks its
// mappings symbolized, so `go tool pprof -top`, `-list` and `-svg` show
// them as they are.
//
// The profile is read whole (pprof_read in src/pprof.c): a missing,
// truncated or foreign file is an error naming what is wrong, and nothing
// is written.
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mprof.h"
#include "report.h"

// ----------------------------------------------------------- ELF symbols

typedef struct elfSym {
    uint64_t value, size;
    const char *name;
} elfSym;

typedef struct elfFile {
    unsigned char *data;
    size_t len;
    Elf64_Phdr *ph;
    int nph;
    elfSym *sym;
    size_t nsym;
} elfFile;

static int cmpSym(const void *a, const void *b)
{
    const elfSym *x = a, *y = b;
    return x->value < y->value ? -1 : x->value > y->value;
}

static unsigned char *readWhole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (nb == NULL)
                free(buf);
            buf = nb;
        }
    }
    if (ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

// An ELF64 file's program headers and function symbols (.symtab, else
// .dynsym); false if it is not one this can read.
static bool elfOpen(const char *path, elfFile *e)
{
    memset(e, 0, sizeof *e);
    e->data = readWhole(path, &e->len);
    if (e->data == NULL || e->len < sizeof(Elf64_Ehdr) || memcmp(e->data, ELFMAG, SELFMAG) != 0 ||
        e->data[EI_CLASS] != ELFCLASS64)
        return false;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)e->data;
    if (eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > e->len ||
        eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > e->len)
        return false;
    e->ph = (Elf64_Phdr *)(e->data + eh->e_phoff);
    e->nph = eh->e_phnum;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(e->data + eh->e_shoff);
    for (int want = SHT_SYMTAB; want != 0; want = want == SHT_SYMTAB ? SHT_DYNSYM : 0) {
        for (int i = 0; i < eh->e_shnum; i++) {
            if (sh[i].sh_type != (unsigned)want || sh[i].sh_link >= eh->e_shnum)
                continue;
            const Elf64_Shdr *strs = &sh[sh[i].sh_link];
            if (sh[i].sh_offset + sh[i].sh_size > e->len || strs->sh_offset + strs->sh_size > e->len)
                continue;
            size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
            const Elf64_Sym *s = (const Elf64_Sym *)(e->data + sh[i].sh_offset);
            elfSym *out = realloc(e->sym, (e->nsym + n) * sizeof *out);
            if (out == NULL)
                return true;
            e->sym = out;
            for (size_t k = 0; k < n; k++)
                if (ELF64_ST_TYPE(s[k].st_info) == STT_FUNC && s[k].st_value != 0 && s[k].st_name < strs->sh_size)
                    e->sym[e->nsym++] = (elfSym){s[k].st_value, s[k].st_size,
                                                 (const char *)e->data + strs->sh_offset + s[k].st_name};
        }
        if (e->nsym != 0)
            break;
    }
    qsort(e->sym, e->nsym, sizeof *e->sym, cmpSym);
    return true;
}

static void elfClose(elfFile *e)
{
    free(e->data);
    free(e->sym);
}

// The link-time address of file offset off (the segment that holds it).
static bool elfVaddr(const elfFile *e, uint64_t off, uint64_t *va)
{
    for (int i = 0; i < e->nph; i++)
        if (e->ph[i].p_type == PT_LOAD && off >= e->ph[i].p_offset && off < e->ph[i].p_offset + e->ph[i].p_filesz) {
            *va = off - e->ph[i].p_offset + e->ph[i].p_vaddr;
            return true;
        }
    return false;
}

static const char *elfFunction(const elfFile *e, uint64_t va)
{
    size_t lo = 0, hi = e->nsym;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (e->sym[mid].value <= va)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const elfSym *s = &e->sym[lo - 1];
    return va < s->value + (s->size ? s->size : 1) ? s->name : NULL;
}

// ------------------------------------------------------------- addr2line

// Names n link-time addresses of file with binutils' addr2line: name[i],
// file[i], line[i] (strings owned by *pool). False if addr2line cannot run.
static bool addr2line(const char *path, const uint64_t *va, size_t n, char **name, char **file, int64_t *line,
                      char **pool)
{
    char in[] = "/tmp/gomem-info-a2l-XXXXXX";
    int fd = mkstemp(in);
    if (fd < 0)
        return false;
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "0x%llx\n", (unsigned long long)va[i]);
    fclose(f);
    char outName[] = "/tmp/gomem-info-a2o-XXXXXX";
    int ofd = mkstemp(outName);
    if (ofd < 0) {
        unlink(in);
        return false;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int ifd = open(in, O_RDONLY);
        dup2(ifd, 0);
        dup2(ofd, 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execlp("addr2line", "addr2line", "-a", "-f", "-i", "-C", "-e", path, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    close(ofd);
    unlink(in);
    size_t len;
    char *text = (char *)readWhole(outName, &len);
    unlink(outName);
    if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || text == NULL) {
        free(text);
        return false;
    }
    char *t = realloc(text, len + 1);
    if (t == NULL) {
        free(text);
        return false;
    }
    t[len] = 0;
    *pool = t;
    // Per address: "0x..." then (function, file:line) pairs, innermost
    // inlined first; the first pair is the one kept.
    size_t i = 0;
    bool first = false;
    char *fn = NULL;
    for (char *l = strtok(t, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        if (l[0] == '0' && l[1] == 'x') {
            if (first)
                i++;
            first = true;
            fn = NULL;
            continue;
        }
        if (i >= n)
            break;
        if (fn == NULL) {
            fn = l;
            continue;
        }
        // Without debug information addr2line names the nearest symbol
        // before the address, whatever its size: a static function of a
        // stripped binary would take an exported neighbour's name. Only
        // answers with a source line are taken; the symbol table (sizes
        // checked) names the rest.
        if (name[i] == NULL && strcmp(fn, "??") != 0 && strncmp(l, "??", 2) != 0) {
            name[i] = fn;
            char *colon = strrchr(l, ':');
            if (colon != NULL) {
                *colon = 0;
                line[i] = strtoll(colon + 1, NULL, 10);
            }
            file[i] = l;
        }
        fn = NULL;
    }
    return true;
}

// ------------------------------------------------------------- symbolize

typedef struct names {
    char **name, **file;
    int64_t *line;
    char **pools;
    size_t npools;
    bool addr2line; // whether addr2line named anything (else symbols only)
} names;

static void namesFree(names *nm)
{
    for (size_t i = 0; i < nm->npools; i++)
        free(nm->pools[i]);
    free(nm->pools);
    free(nm->name);
    free(nm->file);
    free(nm->line);
}

// Names every location of p it can.
static int symbolize(const pprofProfile *p, names *nm)
{
    memset(nm, 0, sizeof *nm);
    nm->name = calloc(p->nloc + 1, sizeof *nm->name);
    nm->file = calloc(p->nloc + 1, sizeof *nm->file);
    nm->line = calloc(p->nloc + 1, sizeof *nm->line);
    nm->pools = calloc(2 * p->nmapping + 1, sizeof *nm->pools);
    uint64_t *va = calloc(p->nloc + 1, sizeof *va);
    size_t *idx = calloc(p->nloc + 1, sizeof *idx);
    char **n2 = calloc(p->nloc + 1, sizeof *n2), **f2 = calloc(p->nloc + 1, sizeof *f2);
    int64_t *l2 = calloc(p->nloc + 1, sizeof *l2);
    if (!nm->name || !nm->file || !nm->line || !nm->pools || !va || !idx || !n2 || !f2 || !l2) {
        free(va), free(idx), free(n2), free(f2), free(l2);
        return -1;
    }
    for (uint32_t mi = 0; mi < p->nmapping; mi++) {
        const pprofMapping *m = &p->mapping[mi];
        size_t flen;
        const char *fname = pprof_string(p, m->filename, &flen);
        char path[4096];
        if (flen == 0 || flen >= sizeof path || fname[0] == '[')
            continue;
        memcpy(path, fname, flen);
        path[flen] = 0;
        elfFile e;
        if (!elfOpen(path, &e)) {
            elfClose(&e);
            continue;
        }
        size_t n = 0;
        for (uint32_t j = 0; j < p->nloc; j++)
            if (p->loc[j].mappingId == m->id && p->loc[j].address >= m->start && p->loc[j].address < m->limit &&
                elfVaddr(&e, p->loc[j].address - m->start + m->offset, &va[n]))
                idx[n++] = j;
        if (n != 0) {
            memset(n2, 0, n * sizeof *n2);
            memset(f2, 0, n * sizeof *f2);
            memset(l2, 0, n * sizeof *l2);
            char *pool = NULL;
            if (addr2line(path, va, n, n2, f2, l2, &pool)) {
                nm->pools[nm->npools++] = pool;
                nm->addr2line = true;
            }
            for (size_t k = 0; k < n; k++) {
                size_t j = idx[k];
                if (n2[k] != NULL) {
                    nm->name[j] = n2[k];
                    nm->file[j] = f2[k];
                    nm->line[j] = l2[k];
                } else {
                    const char *s = elfFunction(&e, va[k]);
                    if (s != NULL && (nm->name[j] = strdup(s)) != NULL) {
                        char **np = realloc(nm->pools, (nm->npools + 2 + p->nmapping * 2) * sizeof *np);
                        if (np != NULL) {
                            nm->pools = np;
                            nm->pools[nm->npools++] = nm->name[j];
                        }
                    }
                }
            }
        }
        elfClose(&e);
    }
    free(va), free(idx), free(n2), free(f2), free(l2);
    return 0;
}

// -------------------------------------------------------------- printing

static const char *locName(const pprofProfile *p, const names *nm, uint64_t id, char *buf, size_t len)
{
    const pprofLocation *l = pprof_location(p, id);
    if (l == NULL)
        return "?";
    size_t i = (size_t)(l - p->loc);
    if (nm->name[i] != NULL) {
        const char *f = nm->file[i] ? strrchr(nm->file[i], '/') : NULL;
        f = f ? f + 1 : nm->file[i];
        if (f != NULL && nm->line[i] > 0)
            snprintf(buf, len, "%s %s:%lld", nm->name[i], f, (long long)nm->line[i]);
        else
            snprintf(buf, len, "%s", nm->name[i]);
        return buf;
    }
    for (uint32_t m = 0; m < p->nmapping; m++)
        if (p->mapping[m].id == l->mappingId) {
            size_t flen;
            const char *f = pprof_string(p, p->mapping[m].filename, &flen);
            const char *base = memrchr(f, '/', flen);
            base = base ? base + 1 : f;
            snprintf(buf, len, "%.*s+0x%llx", (int)(flen - (size_t)(base - f)), base,
                     (unsigned long long)(l->address - p->mapping[m].start + p->mapping[m].offset));
            return buf;
        }
    snprintf(buf, len, "0x%llx", (unsigned long long)l->address);
    return buf;
}

static bool isType(const pprofProfile *p, uint32_t i, const char *type)
{
    size_t len;
    const char *s = pprof_string(p, p->sampleType[i], &len);
    return len == strlen(type) && memcmp(s, type, len) == 0;
}

typedef struct site {
    char name[300];
    int64_t flat, cum;
} site;

static int cmpFlat(const void *a, const void *b)
{
    const site *x = a, *y = b;
    return x->flat < y->flat ? 1 : x->flat > y->flat ? -1 : strcmp(x->name, y->name);
}

static void fmtBytes(char *buf, size_t len, int64_t v, bool bytes)
{
    if (!bytes)
        snprintf(buf, len, "%lld", (long long)v);
    else if (v >= (1 << 20))
        snprintf(buf, len, "%.2fMB", (double)v / (1 << 20));
    else if (v >= (1 << 10))
        snprintf(buf, len, "%.2fkB", (double)v / (1 << 10));
    else
        snprintf(buf, len, "%lldB", (long long)v);
}

// The call sites by value vi: each function's own (flat: the innermost
// frame) and its callees' (cum), top n, into out; returns the total.
static int64_t pprof_topSites(const pprofProfile *p, const names *nm, uint32_t vi, site **out, size_t *nout)
{
    site *s = calloc(p->nloc + 1, sizeof *s);
    size_t ns = 0;
    int64_t total = 0;
    char buf[300];
    for (uint32_t i = 0; i < p->nsample && s != NULL; i++) {
        const pprofSample *sm = &p->sample[i];
        int64_t v = sm->value[vi];
        total += v;
        for (uint32_t j = 0; j < sm->nloc; j++) {
            const char *n = locName(p, nm, sm->loc[j], buf, sizeof buf);
            size_t k;
            for (k = 0; k < ns && strcmp(s[k].name, n) != 0; k++)
                ;
            if (k == ns)
                snprintf(s[ns++].name, sizeof s->name, "%s", n);
            bool seen = false; // cum counts a function once per sample (recursion)
            for (uint32_t q = 0; q < j && !seen; q++)
                seen = strcmp(locName(p, nm, sm->loc[q], buf, sizeof buf), s[k].name) == 0;
            if (!seen)
                s[k].cum += v;
            if (j == 0)
                s[k].flat += v;
        }
    }
    if (s != NULL)
        qsort(s, ns, sizeof *s, cmpFlat);
    *out = s;
    *nout = ns;
    return total;
}

static void printTop(FILE *o, const pprofProfile *p, const names *nm, const char *type, int top)
{
    uint32_t vi = 0;
    while (vi < p->nvalue && !isType(p, vi, type))
        vi++;
    if (vi == p->nvalue)
        return;
    size_t ulen;
    const char *unit = pprof_string(p, p->sampleUnit[vi], &ulen);
    bool bytes = ulen == 5 && memcmp(unit, "bytes", 5) == 0;
    site *s;
    size_t ns;
    int64_t total = pprof_topSites(p, nm, vi, &s, &ns);
    char t[32], f[32], c[32];
    fmtBytes(t, sizeof t, total, bytes);
    fprintf(o, "\n%s: %s in all\n%10s %6s %10s %6s  %s\n", type, t, "flat", "flat%", "cum", "cum%", "function");
    for (size_t i = 0; i < ns && (int)i < top; i++) {
        fmtBytes(f, sizeof f, s[i].flat, bytes);
        fmtBytes(c, sizeof c, s[i].cum, bytes);
        fprintf(o, "%10s %5.1f%% %10s %5.1f%%  %s\n", f, total ? 100.0 * (double)s[i].flat / (double)total : 0, c,
                total ? 100.0 * (double)s[i].cum / (double)total : 0, s[i].name);
    }
    free(s);
}

static void printCoroutines(FILE *o, const pprofProfile *p, const names *nm)
{
    fprintf(o, "%u coroutines\n", p->nsample);
    char buf[400];
    for (uint32_t i = 0; i < p->nsample; i++) {
        const pprofSample *sm = &p->sample[i];
        fprintf(o, "\ncoroutine");
        for (uint32_t j = 0; j < sm->nlabel; j++) {
            size_t kl, sl;
            const char *k = pprof_string(p, sm->label[3 * j], &kl);
            const char *s = pprof_string(p, sm->label[3 * j + 1], &sl);
            if (sm->label[3 * j + 1] != 0)
                fprintf(o, " %.*s=\"%.*s\"", (int)kl, k, (int)sl, s);
            else if (kl == 6 && memcmp(k, "waited", 6) == 0)
                fprintf(o, " waited=%.3fs", (double)sm->label[3 * j + 2] / 1e9);
            else
                fprintf(o, " %.*s=%lld", (int)kl, k, (long long)sm->label[3 * j + 2]);
        }
        fprintf(o, "\n");
        for (uint32_t j = 0; j < sm->nloc; j++)
            fprintf(o, "    #%u %s\n", j, locName(p, nm, sm->loc[j], buf, sizeof buf));
    }
}

// ------------------------------------------------------------- commands

static int readProfile(const char *path, pprofProfile *p)
{
    size_t len;
    unsigned char *buf = readWhole(path, &len);
    if (buf == NULL) {
        fprintf(stderr, "gomem-info: %s: %s\n", path, strerror(errno ? errno : EIO));
        return -1;
    }
    char err[200];
    int r = pprof_read(buf, len, p, err, sizeof err);
    free(buf);
    if (r != 0)
        fprintf(stderr, "gomem-info: %s: %s\n", path, err);
    return r;
}

int pprof_main(const char *in, const char *out, bool coroutines)
{
    pprofProfile p;
    if (readProfile(in, &p) != 0)
        return 1;
    names nm;
    if (symbolize(&p, &nm) != 0) {
        fprintf(stderr, "gomem-info: out of memory\n");
        pprof_free(&p);
        return 1;
    }
    int rc = 0;
    bool coro = p.nvalue == 1 && isType(&p, 0, "coroutine");
    if (coroutines && !coro) {
        fprintf(stderr, "gomem-info: %s: not a coroutine profile (gm_prof_write GM_PROF_COROUTINES writes one)\n",
                in);
        rc = 1;
    } else if (out != NULL) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || pprof_writeSymbolized(fd, &p, (const char *const *)nm.name, (const char *const *)nm.file,
                                            nm.line) != 0 || close(fd) != 0 || rename(tmp, out) != 0) {
            fprintf(stderr, "gomem-info: %s: %s\n", out, strerror(errno));
            unlink(tmp);
            rc = 1;
        } else if (!nm.addr2line) {
            fprintf(stderr, "gomem-info: addr2line (binutils) not found or found nothing: functions named from the "
                            "symbol tables, without lines\n");
        }
    } else if (coro) {
        printCoroutines(stdout, &p, &nm);
    } else {
        size_t tl, ul;
        const char *pt = pprof_string(&p, p.periodType, &tl);
        const char *pu = pprof_string(&p, p.periodUnit, &ul);
        printf("%s: %u samples, one every %lld %.*s of %.*s on average\n", in, p.nsample, (long long)p.period,
               (int)ul, pu, (int)tl, pt);
        printTop(stdout, &p, &nm, "inuse_space", 15);
        printTop(stdout, &p, &nm, "alloc_space", 15);
        for (uint32_t i = 0; i < p.nvalue; i++)
            if (!isType(&p, i, "inuse_space") && !isType(&p, i, "alloc_space") && !isType(&p, i, "inuse_objects") &&
                !isType(&p, i, "alloc_objects")) {
                size_t len;
                const char *t = pprof_string(&p, p.sampleType[i], &len);
                char type[100];
                snprintf(type, sizeof type, "%.*s", (int)len, t);
                printTop(stdout, &p, &nm, type, 15);
            }
    }
    namesFree(&nm);
    pprof_free(&p);
    return rc;
}

// ------------------------------------------------------------ the report

static void escape(FILE *o, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '&': fputs("&amp;", o); break;
        case '"': fputs("&quot;", o); break;
        default: fputc(*s, o);
        }
}

// The flame graph's tree: a node per distinct path of names from the
// outermost frame, its value the samples' through it.
typedef struct fnode {
    char name[200];
    int64_t value;
    int first, next; // first child, next sibling (indexes; -1 none)
} fnode;

typedef struct ftree {
    fnode *n;
    int len, cap;
} ftree;

static int childOf(ftree *t, int parent, const char *name)
{
    for (int c = t->n[parent].first; c >= 0; c = t->n[c].next)
        if (strcmp(t->n[c].name, name) == 0)
            return c;
    if (t->len == t->cap) {
        int cap = t->cap ? t->cap * 2 : 256;
        fnode *nn = realloc(t->n, (size_t)cap * sizeof *nn);
        if (nn == NULL)
            return -1;
        t->n = nn;
        t->cap = cap;
    }
    int c = t->len++;
    snprintf(t->n[c].name, sizeof t->n[c].name, "%s", name);
    t->n[c].value = 0;
    t->n[c].first = -1;
    t->n[c].next = t->n[parent].first;
    t->n[parent].first = c;
    return c;
}

#define FlameWidth 800.0
#define FlameRow 17

// Draws node i and its children at (x, depth), width proportional to value.
static int flameDraw(FILE *o, const ftree *t, int i, double x, int depth, double scale, int64_t total)
{
    const fnode *n = &t->n[i];
    double w = (double)n->value * scale;
    int deepest = depth;
    if (w < 1.0 || depth > 60)
        return depth - 1;
    if (depth >= 0) {
        unsigned h = 0;
        for (const char *c = n->name; *c; c++)
            h = h * 31 + (unsigned char)*c;
        fputs("<g><title>", o);
        escape(o, n->name);
        fprintf(o, " (%.1f%%)</title><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"hsl(%u,70%%,%u%%)\"/>",
                100.0 * (double)n->value / (double)total, x, depth * FlameRow, w, FlameRow - 1, 10 + h % 40,
                62 + (h >> 8) % 16);
        if (w > 40) {
            fprintf(o, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\">", x + 3,
                    depth * FlameRow + 12);
            char shown[200];
            int fit = (int)(w / 6.5);
            snprintf(shown, sizeof shown, "%.*s", fit < 199 ? fit : 199, n->name);
            escape(o, shown);
            fputs("</text>", o);
        }
        fputs("</g>\n", o);
    }
    for (int c = n->first; c >= 0; c = t->n[c].next) {
        int d = flameDraw(o, t, c, x, depth + 1, scale, total);
        if (d > deepest)
            deepest = d;
        x += (double)t->n[c].value * scale;
    }
    return deepest;
}

int pprof_htmlSection(FILE *o, const char *path)
{
    pprofProfile p;
    if (readProfile(path, &p) != 0)
        return 1;
    names nm;
    uint32_t vi = 0;
    while (vi < p.nvalue && !isType(&p, vi, "inuse_space"))
        vi++;
    if (vi == p.nvalue || symbolize(&p, &nm) != 0) {
        fprintf(stderr, "gomem-info: %s: not a heap profile (no inuse_space)\n", path);
        pprof_free(&p);
        return 1;
    }
    site *s;
    size_t ns;
    int64_t total = pprof_topSites(&p, &nm, vi, &s, &ns);
    char b1[32], b2[32];
    fmtBytes(b1, sizeof b1, total, true);
    fputs("<h2>Heap in use by call site</h2>\n<p>From the heap profile <code>", o);
    escape(o, path);
    fprintf(o, "</code>: %s in use (estimated from %u sampled stacks, one sample every %lld bytes on average). "
               "<i>flat</i>: allocated by the function itself; <i>cum</i>: by it and the functions it calls.</p>\n",
            b1, p.nsample, (long long)p.period);
    fputs("<table><tr><th>flat</th><th>flat%</th><th>cum</th><th>cum%</th><th>function</th></tr>\n", o);
    for (size_t i = 0; i < ns && i < 20; i++) {
        fmtBytes(b1, sizeof b1, s[i].flat, true);
        fmtBytes(b2, sizeof b2, s[i].cum, true);
        fprintf(o, "<tr><td>%s</td><td>%.1f%%</td><td>%s</td><td>%.1f%%</td><th>", b1,
                total ? 100.0 * (double)s[i].flat / (double)total : 0, b2,
                total ? 100.0 * (double)s[i].cum / (double)total : 0);
        escape(o, s[i].name);
        fputs("</th></tr>\n", o);
    }
    fputs("</table>\n", o);
    free(s);
    // The flame graph, outermost frame on top (an icicle).
    ftree t = {0};
    int root = -1;
    if (total > 0 && (t.n = calloc(256, sizeof *t.n)) != NULL) {
        t.cap = 256;
        t.len = 1;
        snprintf(t.n[0].name, sizeof t.n[0].name, "all");
        t.n[0].first = t.n[0].next = -1;
        root = 0;
        char buf[300];
        for (uint32_t i = 0; i < p.nsample; i++) {
            const pprofSample *sm = &p.sample[i];
            int64_t v = sm->value[vi];
            if (v <= 0)
                continue;
            int at = 0;
            t.n[0].value += v;
            for (uint32_t j = sm->nloc; j-- > 0 && at >= 0;) {
                at = childOf(&t, at, locName(&p, &nm, sm->loc[j], buf, sizeof buf));
                if (at >= 0)
                    t.n[at].value += v;
            }
        }
    }
    if (root == 0 && t.n[0].value > 0) {
        fputs("<h3>Flame graph of the bytes in use</h3>\n<p>Each bar is a function, as wide as the bytes in use "
              "allocated through it; callers above callees. Hover for the name.</p>\n",
              o);
        // Drawn into a temporary file first: the depth sizes the picture.
        FILE *tmp = tmpfile();
        int depth = tmp != NULL ? flameDraw(tmp, &t, 0, 0, 0, FlameWidth / (double)t.n[0].value, t.n[0].value) : -1;
        if (tmp != NULL) {
            fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%d\" font-family=\"monospace\">\n",
                    FlameWidth, (depth + 1) * FlameRow);
            rewind(tmp);
            char chunk[4096];
            size_t n;
            while ((n = fread(chunk, 1, sizeof chunk, tmp)) > 0)
                fwrite(chunk, 1, n, o);
            fclose(tmp);
            fputs("</svg>\n", o);
        }
    }
    free(t.n);
    namesFree(&nm);
    pprof_free(&p);
    return 0;
}
