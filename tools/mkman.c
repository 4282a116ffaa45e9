// SPDX-License-Identifier: MIT
//
// mkman: generates gomem's man pages (`make man`).
//
//   mkman OUTDIR include/gomem.h docs/options.md tools/gomem_info.c
//
// writes, in man(7) macros:
//   OUTDIR/man3/gomem.3      the overview, gm_version, linking
//   OUTDIR/man3/gm_malloc.3  the heap, the tiny allocator, stacks
//   OUTDIR/man3/gm_stats.3   statistics, the trace, the scavenger, checks
//   OUTDIR/man3/gm_go.3      coroutines, the scheduler, sync types, fd I/O
//   OUTDIR/man3/gm_chan.3    channels, select, gm_after, timers and tickers
//   OUTDIR/man3/gm_ctx.3     deadlines, contexts, error groups
//   OUTDIR/man3/FN.3         ".so man3/PAGE.3" for every other function
//   OUTDIR/man7/gomem.7      the GOMEM_* variables and the build switches
//   OUTDIR/man1/gomem-info.1
// Each page is made from the text kept beside what it describes, so that
// the two cannot drift apart:
//
//  - The API pages, from include/gomem.h. Its head comment opens gomem(3)
//    (the first line, "gomem: ...", is the NAME). A banner comment
//    ("// ------- heap") starts a section; the comment lines right under it
//    introduce the section. pages[] says which page holds each section.
//    Inside a section, a comment directly above declarations (no blank line
//    between) describes them: GM_API functions become one entry (and their
//    prototypes go to SYNOPSIS), types and macros a code block in it.
//    Declarations on consecutive lines share the comment above the first;
//    a trailing "// ..." on a function adds a sentence naming it. A comment
//    followed by a blank line is a paragraph of its own. Comment lines
//    indented past "// " are kept as they are (identities, lists).
//    Preprocessor conditionals and what they hold are left out.
//  - gomem(7), from docs/options.md: its paragraphs, ``` blocks and
//    "## " headings; a table row becomes an entry whose tag is the first
//    column, with a "Column: value" line for each middle one and the last
//    column as its text.
//  - gomem-info(1), from tools/gomem_info.c: the head comment's first line
//    (NAME), its indented command list, its other paragraphs (one that
//    starts "Exit status:" gets that section), and usage()'s text
//    (SYNOPSIS).
//
// Rather than write a page that leaves something out, it fails naming the
// file and line: a GM_API function with no comment above it, a banner no
// page claims, a page section the header lacks, an input not shaped as
// above. tests/man_test.c checks the pages from the other side.
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// Which header sections each man3 page holds, in the page's order.
typedef struct {
    const char *name;        // the page, man3/NAME.3
    const char *summary;     // NAME's text after "\-" (gomem's comes from the header)
    const char *sections[4]; // banner names
} page;

static const page pages[] = {
    {"gomem", NULL, {"version"}},
    {"gm_malloc", "Go's heap allocator, the tiny allocator and Go's stack allocator", {"heap", "tiny", "stacks"}},
    {"gm_stats", "statistics, the event trace, the scavenger and invariant checks", {"statistics, scavenger"}},
    {"gm_go", "goroutine-style coroutines, their scheduler, sync types, sleep and file descriptor I/O",
     {"coroutines", "I/O"}},
    {"gm_chan", "Go's channels, select, and timers: time.After, Timer, Ticker, AfterFunc", {"channels", "timers"}},
    {"gm_ctx", "deadlines and cancellation: contexts, error groups, and the _until and _ctx calls", {"contexts"}},
};
enum { NPAGES = sizeof pages / sizeof pages[0] };

// What every man3 page says under LIBRARY, and gomem(3) under Linking.
static const char libraryText[] =
    "`libgomem` (`pkg-config gomem`, `-lgomem`): the `gm_` API and gomem as the program's `malloc`; "
    "or `libgomem_core` (`pkg-config gomem-core`, `-lgomem_core`): the `gm_` API alone.";
static const char *const linkingText[] = { // "" separates paragraphs; indented lines are commands
    "Two libraries, each static and shared, each with a pkg-config file. `gomem` (`-lgomem`) holds the `gm_` "
    "API and gomem as the program's `malloc`, `free` and the rest of the family, glibc's own allocations and "
    "C++'s `new` included. `gomem-core` (`-lgomem_core`) holds the `gm_` API alone: the program's `malloc` "
    "stays its own. Both need `-pthread`, which pkg-config adds.",
    "",
    "  cc prog.c $(pkg-config --cflags --libs gomem)",
    "  cc -static prog.c $(pkg-config --cflags --libs --static gomem)",
    "  LD_PRELOAD=/usr/local/lib/libgomem.so.0 prog",
    "",
    "A static archive is one object, linked in by any `gm_` call; a program that calls none and links "
    "`libgomem.a` for its `malloc` adds `-Wl,--undefined=malloc`. The shared libraries carry the soname "
    "`libgomem.so.MAJOR` (`libgomem_core.so.MAJOR`).",
};

// ------------------------------------------------------------- utilities

static const char *inFile; // the input being read, for messages
static int inLine;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (inFile != NULL && inLine > 0)
        fprintf(stderr, "mkman: %s:%d: ", inFile, inLine);
    else if (inFile != NULL)
        fprintf(stderr, "mkman: %s: ", inFile);
    else
        fprintf(stderr, "mkman: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL)
        die("out of memory");
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

static int startsWith(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static int isBlank(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == 0;
}

static int isIdent(int c) { return isalnum(c) || c == '_'; }

// A growing list of strings.
typedef struct {
    char **v;
    int n, cap;
} list;

static void add(list *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof l->v[0]);
    }
    l->v[l->n++] = s;
}

// Drops empty lines at both ends.
static void trim(list *l)
{
    while (l->n > 0 && isBlank(l->v[l->n - 1]))
        l->n--;
    int k = 0;
    while (k < l->n && isBlank(l->v[k]))
        k++;
    if (k > 0) {
        memmove(l->v, l->v + k, (size_t)(l->n - k) * sizeof l->v[0]);
        l->n -= k;
    }
}

// The file's lines, without their newlines.
static list readLines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die("cannot read %s: %s", path, strerror(errno));
    list l = {0};
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
            buf[--len] = 0;
        add(&l, xstrndup(buf, (size_t)len));
    }
    free(buf);
    fclose(f);
    return l;
}

// The text of a "//" comment line: what follows "//" and one space.
static char *commentText(const char *line)
{
    line += 2;
    if (*line == ' ')
        line++;
    return xstrdup(line);
}

// ------------------------------------------------------ the header, parsed

typedef struct {
    char *name;  // gm_malloc
    char *proto; // "void *gm_malloc(size_t n);"
    char *note;  // its trailing comment, or NULL
} func;

// A comment and the declarations right under it.
typedef struct {
    list comment; // lines; "" separates paragraphs
    list code;    // types and macros, verbatim
    func *funcs;
    int nfuncs;
    int line;
} item;

typedef struct {
    char *name; // the banner's
    list intro;
    item *items;
    int nitems;
    int line;
    int claimed; // by a page
} section;

static list headComment; // the header's, SPDX line left out
static section *sections;
static int nsections;
static char version[32];
static list allFuncs; // every GM_API function's name, for bold cross-references

static int isBanner(const char *l, char **name)
{
    if (!startsWith(l, "// ---"))
        return 0;
    const char *p = l + 3;
    while (*p == '-')
        p++;
    if (p - l < 13 || *p != ' ' || p[1] == 0)
        return 0;
    *name = xstrdup(p + 1);
    return 1;
}

static item *newItem(section *s, list *comment, int line)
{
    s->items = xrealloc(s->items, (size_t)(s->nitems + 1) * sizeof s->items[0]);
    item *it = &s->items[s->nitems++];
    memset(it, 0, sizeof *it);
    it->comment = *comment;
    trim(&it->comment);
    memset(comment, 0, sizeof *comment);
    it->line = line;
    return it;
}

// Removes every NAME(...) (balanced parentheses) from s.
static void removeCall(char *s, const char *name)
{
    char *p;
    while ((p = strstr(s, name)) != NULL) {
        char *q = p + strlen(name);
        while (*q == ' ')
            q++;
        if (*q != '(')
            die("%s without its arguments", name);
        int depth = 0;
        do {
            if (*q == '(')
                depth++;
            else if (*q == ')')
                depth--;
            else if (*q == 0)
                die("unbalanced parentheses after %s", name);
            q++;
        } while (depth > 0);
        memmove(p, q, strlen(q) + 1);
    }
}

// A GM_API declaration (its lines joined) as a prototype.
static func parseDecl(char *text, char *note)
{
    func f = {0};
    f.note = note;
    removeCall(text, "GM_MALLOC_ATTR");
    removeCall(text, "__attribute__");
    // One space between words; none at the ends, after "(" or before
    // ")", "," and ";".
    char *o = text;
    for (char *p = text; *p; p++) {
        int space = *p == ' ' || *p == '\t';
        if (space && (o == text || o[-1] == ' ' || o[-1] == '('))
            continue;
        if ((*p == ')' || *p == ',' || *p == ';') && o > text && o[-1] == ' ')
            o--;
        *o++ = space ? ' ' : *p;
    }
    while (o > text && o[-1] == ' ')
        o--;
    *o = 0;
    const char *decl = text + strlen("GM_API "), *paren = strchr(text, '(');
    if (!startsWith(text, "GM_API ") || paren == NULL || o <= decl || o[-1] != ';')
        die("cannot read the declaration '%s'", text);
    const char *e = paren;
    while (e > decl && isIdent((unsigned char)e[-1]))
        e--;
    f.name = xstrndup(e, (size_t)(paren - e));
    if (!startsWith(f.name, "gm_"))
        die("GM_API function '%s' is not named gm_...", f.name);
    f.proto = xstrdup(decl);
    return f;
}

static void parseHeader(const char *path)
{
    inFile = path;
    list L = readLines(path);
    int i = 0;
    for (; i < L.n && startsWith(L.v[i], "//"); i++) {
        inLine = i + 1;
        char *t = commentText(L.v[i]);
        if (!startsWith(t, "SPDX-License-Identifier"))
            add(&headComment, t);
    }
    trim(&headComment);
    if (headComment.n == 0 || !startsWith(headComment.v[0], "gomem: "))
        die("the head comment must start \"// gomem: what it is.\"");

    section *sec = NULL;
    item *open = NULL; // the item the next declaration joins (no blank or comment line since)
    list pending = {0}; // comment lines read and not yet attached
    int pendingLine = 0, depth = 0;
    for (; i < L.n; i++) {
        inLine = i + 1;
        char *l = L.v[i], *name;
        int major, minor, patch;
        if (sscanf(l, "#define GM_VERSION_MAJOR %d", &major) == 1)
            snprintf(version + strlen(version), sizeof version - strlen(version), "%d", major);
        else if (sscanf(l, "#define GM_VERSION_MINOR %d", &minor) == 1)
            snprintf(version + strlen(version), sizeof version - strlen(version), ".%d", minor);
        else if (sscanf(l, "#define GM_VERSION_PATCH %d", &patch) == 1)
            snprintf(version + strlen(version), sizeof version - strlen(version), ".%d", patch);
        if (l[0] == '#') {
            const char *d = l + 1;
            while (*d == ' ')
                d++;
            // Conditionals (the include guard and C++ linkage come before
            // the first section, and are not counted).
            if (startsWith(d, "if") || startsWith(d, "endif") || startsWith(d, "el")) {
                if (sec != NULL && startsWith(d, "if"))
                    depth++;
                else if (startsWith(d, "endif") && depth > 0)
                    depth--;
                open = NULL;
                continue;
            }
        }
        if (depth > 0)
            continue;
        if (isBanner(l, &name)) {
            if (pending.n > 0 && sec != NULL)
                newItem(sec, &pending, pendingLine);
            pending.n = 0;
            sections = xrealloc(sections, (size_t)(nsections + 1) * sizeof sections[0]);
            sec = &sections[nsections++];
            memset(sec, 0, sizeof *sec);
            sec->name = name;
            sec->line = i + 1;
            while (i + 1 < L.n && startsWith(L.v[i + 1], "//") && !isBanner(L.v[i + 1], &name))
                add(&sec->intro, commentText(L.v[++i]));
            trim(&sec->intro);
            open = NULL;
            continue;
        }
        if (sec == NULL)
            continue; // before the first banner: includes, GM_API's definition
        if (startsWith(l, "//")) {
            if (pending.n == 0)
                pendingLine = i + 1;
            add(&pending, commentText(l));
            open = NULL;
            continue;
        }
        if (isBlank(l)) {
            if (pending.n > 0)
                newItem(sec, &pending, pendingLine);
            open = NULL;
            continue;
        }
        if (startsWith(l, "GM_API ")) {
            // The declaration, to its ';', and a trailing comment.
            char *text = xstrdup(""), *note = NULL;
            int first = i;
            for (;; i++) {
                if (i == L.n)
                    die("declaration without its ';'");
                char *line = xstrdup(L.v[i]), *c = strstr(line, "//");
                if (c != NULL) {
                    note = commentText(c);
                    *c = 0;
                    if (isBlank(note))
                        note = NULL;
                }
                text = xrealloc(text, strlen(text) + strlen(line) + 2);
                strcat(strcat(text, " "), line);
                if (strchr(line, ';') != NULL)
                    break;
            }
            if (open == NULL)
                open = newItem(sec, &pending, first + 1);
            open->funcs = xrealloc(open->funcs, (size_t)(open->nfuncs + 1) * sizeof open->funcs[0]);
            func f = parseDecl(text, note);
            open->funcs[open->nfuncs++] = f;
            add(&allFuncs, f.name);
            if (open->comment.n == 0)
                die("%s has no comment above it (nor does a declaration on the line before)", f.name);
            continue;
        }
        // A type or a macro, to its end.
        if (open == NULL || open->nfuncs > 0)
            open = newItem(sec, &pending, i + 1);
        int braces = 0;
        for (;; i++) {
            if (i == L.n)
                die("declaration without its end");
            char *line = L.v[i];
            add(&open->code, line);
            char *code = xstrdup(line), *c = strstr(code, "//");
            if (c != NULL)
                *c = 0;
            for (char *p = code; *p; p++)
                braces += (*p == '{') - (*p == '}');
            size_t n = strlen(code);
            while (n > 0 && code[n - 1] == ' ')
                n--;
            if (braces == 0 && ((code[0] == '#' && (n == 0 || code[n - 1] != '\\')) || (n > 0 && code[n - 1] == ';')))
                break;
        }
    }
    if (pending.n > 0 && sec != NULL)
        newItem(sec, &pending, pendingLine);
    inLine = 0;
    if (nsections == 0)
        die("no banner comment (// ------- name) starts a section");
    if (strlen(version) < 5)
        die("GM_VERSION_MAJOR, _MINOR and _PATCH not found");
}

static int isFunc(const char *s, size_t n)
{
    for (int i = 0; i < allFuncs.n; i++)
        if (strlen(allFuncs.v[i]) == n && strncmp(allFuncs.v[i], s, n) == 0)
            return 1;
    return 0;
}

// --------------------------------------------------------------- writing

static FILE *out;
static const char *outDir;

static void openPage(const char *name, int sect)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/man%d", outDir, sect);
    if (mkdir(outDir, 0755) != 0 && errno != EEXIST)
        die("cannot create %s: %s", outDir, strerror(errno));
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die("cannot create %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/man%d/%s.%d", outDir, sect, name, sect);
    out = fopen(path, "w");
    if (out == NULL)
        die("cannot write %s: %s", path, strerror(errno));
}

static void closePage(void)
{
    if (ferror(out) || fclose(out) != 0)
        die("writing a page failed");
    out = NULL;
}

// One character of text: \ and - escaped, a character beyond ASCII as
// \[uXXXX] (so that the page is ASCII whatever the reader's locale).
static const char *putChar(const char *s)
{
    unsigned char c = (unsigned char)*s;
    if (c == '\\')
        fputs("\\e", out);
    else if (c == '-')
        fputs("\\-", out);
    else if (c < 0x80)
        fputc(c, out);
    else {
        int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
        unsigned cp = c & (0x3f >> n);
        for (int k = 0; k < n; k++) {
            if (((unsigned char)s[1] & 0xc0) != 0x80)
                die("text is not UTF-8");
            cp = cp << 6 | ((unsigned char)*++s & 0x3f);
        }
        fprintf(out, "\\[u%04X]", cp);
    }
    return s + 1;
}

// A line of running text. `code` and **strong** are bold, as are the names
// of gm_ functions; with md, a [link](target) keeps its text (a document
// named there is one of gomem's docs/).
static void putText(const char *s, int md)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    int code = 0, strong = 0;
    while (*s) {
        if (*s == '`') {
            code = !code;
            fputs(code || strong ? "\\fB" : "\\fR", out);
            s++;
        } else if (code) {
            s = putChar(s);
        } else if (md && s[0] == '*' && s[1] == '*') {
            strong = !strong;
            fputs(strong ? "\\fB" : "\\fR", out);
            s += 2;
        } else if (md && *s == '[' && strstr(s, "](") != NULL && strchr(strstr(s, "]("), ')') != NULL) {
            const char *end = strstr(s, "](");
            if (end - s > 3 && strncmp(end - 3, ".md", 3) == 0)
                fputs("docs/", out);
            for (s++; s < end;)
                s = putChar(s);
            s = strchr(end, ')') + 1;
        } else if ((isalpha((unsigned char)*s) || *s == '_')) {
            const char *e = s;
            while (isIdent((unsigned char)*e))
                e++;
            // A gm_ function, or a man page: name(N).
            int ref = !strong && (isFunc(s, (size_t)(e - s)) ||
                                  (e[0] == '(' && isdigit((unsigned char)e[1]) && e[2] == ')'));
            if (ref)
                fputs("\\fB", out);
            while (s < e)
                s = putChar(s);
            if (ref)
                fputs("\\fR", out);
        } else {
            s = putChar(s);
        }
    }
    if (code || strong)
        fputs("\\fR", out);
    fputc('\n', out);
}

// A line of code, as it is.
static void putCode(const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    while (*s)
        s = putChar(s);
    fputc('\n', out);
}

// Comment lines: paragraphs (started with par after the first), and
// indented lines as a block kept as it is.
static void putComment(const list *c, const char *par)
{
    int needPar = 0;
    for (int i = 0; i < c->n; i++) {
        const char *l = c->v[i];
        if (isBlank(l)) {
            needPar = 1;
            continue;
        }
        if (needPar)
            fprintf(out, "%s\n", par);
        needPar = 0;
        if (l[0] != ' ') {
            putText(l, 0);
            continue;
        }
        int end = i, indent = 1 << 30;
        for (; end < c->n && c->v[end][0] == ' '; end++) {
            int k = 0;
            while (c->v[end][k] == ' ')
                k++;
            if (k < indent)
                indent = k;
        }
        fputs(".RS 4\n.nf\n", out);
        for (; i < end; i++)
            putCode(c->v[i] + indent);
        fputs(".fi\n.RE\n", out);
        i--;
    }
}

static void putCodeBlock(const list *code, const char *par)
{
    fprintf(out, "%s\n.RS 4\n.nf\n", par);
    for (int i = 0; i < code->n; i++)
        putCode(code->v[i]);
    fputs(".fi\n.RE\n", out);
}

static void putHeading(const char *macro, const char *name, int sect)
{
    fputs(macro, out);
    fputc(' ', out);
    for (const char *p = name; *p; p++) {
        if (*p == '-')
            fputs("\\-", out);
        else
            fputc(toupper((unsigned char)*p), out);
    }
    if (sect > 0) // names must not break: no hyphenation, ragged right
        fprintf(out, " %d \"\" \"gomem %s\" \"gomem manual\"\n.nh\n.ad l", sect, version);
    fputc('\n', out);
}

// A line of SYNOPSIS being built: .BI's arguments, bold and italic in turn.
typedef struct {
    char text[512];
    int nargs, italic; // arguments so far; the font of the last
    size_t col;        // its width
} protoLine;

static void protoAdd(protoLine *pl, int italic, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (pl->nargs == 0 || italic != pl->italic) {
        strcat(pl->text, pl->nargs ? "\" \"" : "\"");
        pl->italic = italic;
        pl->nargs++;
    }
    size_t len = strlen(pl->text);
    if (len + n + 2 >= sizeof pl->text)
        die("prototype too long");
    memcpy(pl->text + len, s, n);
    pl->text[len + n] = 0;
    pl->col += n;
}

static void protoFlush(protoLine *pl)
{
    fprintf(out, ".%s %s\"\n", pl->nargs > 1 ? "BI" : "B", pl->text);
    memset(pl, 0, sizeof *pl);
}

// A prototype in SYNOPSIS: bold, the parameter names italic, wrapped after
// a comma past 64 columns, under the opening parenthesis.
static void putProto(const char *proto)
{
    const char *open = strchr(proto, '(');
    size_t prefix = (size_t)(open - proto) + 1;
    protoLine pl = {0};
    protoAdd(&pl, 0, proto, prefix);
    for (const char *p = open + 1; *p;) {
        // A parameter, to the next ',' or the closing ')' at depth 0.
        const char *q = p;
        for (int depth = 0; *q && !(depth == 0 && (*q == ',' || *q == ')')); q++)
            depth += (*q == '(') - (*q == ')');
        const char *end = *q == ',' ? q + 1 : q + strlen(q); // with its "," or ");"
        if (pl.col + (size_t)(end - p) > 64 && pl.col > prefix) {
            protoFlush(&pl);
            protoAdd(&pl, 0, "                                                  ", prefix < 50 ? prefix : 50);
        } else if (p > open + 1) {
            protoAdd(&pl, 0, " ", 1);
        }
        // Its name: after "(*" in a function pointer, else the last word
        // (none in "void").
        const char *fp = strstr(p, "(*"), *n0, *n1;
        if (fp != NULL && fp < q) {
            for (n0 = n1 = fp + 2; isIdent((unsigned char)*n1); n1++)
                ;
        } else {
            for (n1 = q; n1 > p && n1[-1] == ' '; n1--)
                ;
            for (n0 = n1; n0 > p && isIdent((unsigned char)n0[-1]); n0--)
                ;
            if (n0 == p)
                n0 = n1 = q;
        }
        protoAdd(&pl, 0, p, (size_t)(n0 - p));
        protoAdd(&pl, 1, n0, (size_t)(n1 - n0));
        protoAdd(&pl, 0, n1, (size_t)(end - n1));
        p = *end == ' ' ? end + 1 : end;
    }
    protoFlush(&pl);
}

static section *findSection(const char *name)
{
    for (int i = 0; i < nsections; i++)
        if (strcmp(sections[i].name, name) == 0)
            return &sections[i];
    return NULL;
}

static void putItem(const item *it)
{
    if (it->nfuncs == 0) {
        if (it->comment.n > 0) {
            fputs(".PP\n", out);
            putComment(&it->comment, ".PP");
        }
        if (it->code.n > 0)
            putCodeBlock(&it->code, ".PP");
        return;
    }
    fputs(".TP\n", out);
    for (int k = 0; k < it->nfuncs; k++)
        fprintf(out, "%s\\fB%s\\fR()", k ? ", " : "", it->funcs[k].name);
    fputc('\n', out);
    // "malloc: ..." above gm_malloc reads "Like malloc(3): ...".
    list c = it->comment;
    const char *name = it->funcs[0].name + 3;
    size_t n = strlen(name);
    if (c.n > 0 && strncmp(c.v[0], name, n) == 0 && c.v[0][n] == ':') {
        c.v = xrealloc(NULL, (size_t)c.n * sizeof c.v[0]);
        memcpy(c.v, it->comment.v, (size_t)c.n * sizeof c.v[0]);
        char *l = xrealloc(NULL, strlen(it->comment.v[0]) + 16);
        sprintf(l, "Like %s(3)%s", name, it->comment.v[0] + n);
        c.v[0] = l;
    }
    putComment(&c, ".IP");
    for (int k = 0; k < it->nfuncs; k++) {
        const char *note = it->funcs[k].note;
        if (note == NULL)
            continue;
        char *l = xrealloc(NULL, strlen(note) + strlen(it->funcs[k].name) + 8);
        sprintf(l, "%s(): %s%s", it->funcs[k].name, note, note[strlen(note) - 1] == '.' ? "" : ".");
        putText(l, 0);
    }
    if (it->code.n > 0)
        putCodeBlock(&it->code, ".IP");
}

// SEE ALSO: every page but self.
static void putSeeAlso(const char *self, int sect)
{
    fputs(".SH SEE ALSO\n", out);
    int first = 1;
    for (int i = 0; i < NPAGES + 2; i++) {
        const char *name = i < NPAGES ? pages[i].name : i == NPAGES ? "gomem" : "gomem-info";
        int n = i < NPAGES ? 3 : i == NPAGES ? 7 : 1;
        if (n == sect && strcmp(name, self) == 0)
            continue;
        fputs(first ? ".BR " : ",\n.BR ", out);
        for (const char *c = name; *c;)
            c = putChar(c);
        fprintf(out, " (%d)", n);
        first = 0;
    }
    fputs("\n", out);
}

static void putNameLine(const page *p)
{
    fputs(".SH NAME\n", out);
    int first = 1;
    if (strcmp(p->name, "gomem") == 0) {
        fputs("gomem", out);
        first = 0;
    }
    for (int s = 0; s < 4 && p->sections[s]; s++) {
        section *sec = findSection(p->sections[s]);
        for (int i = 0; i < sec->nitems; i++)
            for (int k = 0; k < sec->items[i].nfuncs; k++) {
                fprintf(out, "%s%s", first ? "" : ", ", sec->items[i].funcs[k].name);
                first = 0;
            }
    }
    fputs(" \\- ", out);
    if (p->summary != NULL) {
        putText(p->summary, 0);
    } else {
        char *s = xstrdup(headComment.v[0] + strlen("gomem: "));
        if (s[0] != 0 && s[strlen(s) - 1] == '.')
            s[strlen(s) - 1] = 0;
        putText(s, 0);
    }
}

static void capitalised(char *dst, size_t size, const char *s)
{
    snprintf(dst, size, "%s", s);
    dst[0] = (char)toupper((unsigned char)dst[0]);
}

static void writeApiPage(const page *p)
{
    openPage(p->name, 3);
    int overview = strcmp(p->name, "gomem") == 0;
    putHeading(".TH", p->name, 3);
    putNameLine(p);
    fputs(".SH LIBRARY\n", out);
    putText(libraryText, 0);
    if (!overview)
        fputs("See\n.BR gomem (3).\n", out);
    fputs(".SH SYNOPSIS\n.nf\n.B #include <gomem.h>\n", out);
    for (int s = 0; s < 4 && p->sections[s]; s++) {
        section *sec = findSection(p->sections[s]);
        fputs(".PP\n", out);
        for (int i = 0; i < sec->nitems; i++)
            for (int k = 0; k < sec->items[i].nfuncs; k++)
                putProto(sec->items[i].funcs[k].proto);
    }
    if (overview) {
        fputs(".PP\n", out);
        putCode("cc prog.c $(pkg-config --cflags --libs gomem)");
        putCode("cc prog.c $(pkg-config --cflags --libs gomem-core)");
    }
    fputs(".fi\n.SH DESCRIPTION\n", out);
    if (overview) {
        list rest = headComment;
        rest.v++, rest.n--;
        trim(&rest);
        putComment(&rest, ".PP");
        fputs(".PP\nThe pages:\n", out);
        for (int i = 1; i < NPAGES; i++) {
            char summary[256];
            capitalised(summary, sizeof summary, pages[i].summary);
            fprintf(out, ".TP\n.BR %s (3)\n", pages[i].name);
            putText(summary, 0);
            fputs("(", out);
            for (int s = 0; s < 4 && pages[i].sections[s]; s++)
                fprintf(out, "%s%s", s ? "; " : "", pages[i].sections[s]);
            fputs(").\n", out);
        }
        fputs(".TP\n.BR gomem (7)\nThe \\fBGOMEM_*\\fR environment variables and the build switches.\n", out);
        fputs(".TP\n.BR gomem\\-info (1)\nThe size classes, statistics, version, and reports of traces.\n", out);
    }
    for (int s = 0; s < 4 && p->sections[s]; s++) {
        section *sec = findSection(p->sections[s]);
        char title[128];
        capitalised(title, sizeof title, sec->name);
        fprintf(out, ".SS %s\n", title);
        if (sec->intro.n > 0) {
            putComment(&sec->intro, ".PP");
        }
        for (int i = 0; i < sec->nitems; i++)
            putItem(&sec->items[i]);
    }
    if (overview) {
        list linking = {(char **)linkingText, sizeof linkingText / sizeof linkingText[0], 0};
        fputs(".SS Linking\n", out);
        putComment(&linking, ".PP");
    }
    putSeeAlso(p->name, 3);
    closePage();

    // A page per function, pointing at this one.
    for (int s = 0; s < 4 && p->sections[s]; s++) {
        section *sec = findSection(p->sections[s]);
        for (int i = 0; i < sec->nitems; i++)
            for (int k = 0; k < sec->items[i].nfuncs; k++) {
                const char *f = sec->items[i].funcs[k].name;
                if (strcmp(f, p->name) == 0)
                    continue;
                openPage(f, 3);
                fprintf(out, ".so man3/%s.3\n", p->name);
                closePage();
            }
    }
}

static void writeApiPages(void)
{
    for (int i = 0; i < NPAGES; i++)
        for (int s = 0; s < 4 && pages[i].sections[s]; s++) {
            section *sec = findSection(pages[i].sections[s]);
            if (sec == NULL)
                die("page %s(3) holds the section '%s', which has no banner", pages[i].name, pages[i].sections[s]);
            sec->claimed = 1;
        }
    for (int i = 0; i < nsections; i++)
        if (!sections[i].claimed) {
            inLine = sections[i].line;
            die("no page holds the section '%s': add it to pages[] in tools/mkman.c", sections[i].name);
        }
    for (int i = 0; i < NPAGES; i++)
        writeApiPage(&pages[i]);
}

// --------------------------------------------------------------- gomem(7)

// The cells of a markdown table row, trimmed ('|' inside `code` kept).
static list cells(const char *row)
{
    list c = {0};
    const char *p = row;
    if (*p == '|')
        p++;
    while (*p) {
        const char *q = p;
        int code = 0;
        while (*q && (code || *q != '|')) {
            code ^= *q == '`';
            q++;
        }
        while (*p == ' ')
            p++;
        const char *e = q;
        while (e > p && e[-1] == ' ')
            e--;
        add(&c, xstrndup(p, (size_t)(e - p)));
        p = *q ? q + 1 : q;
    }
    return c;
}

static void writeOptionsPage(const char *path)
{
    inFile = path;
    list L = readLines(path);
    openPage("gomem", 7);
    putHeading(".TH", "gomem", 7);
    fputs(".SH NAME\ngomem \\- gomem's environment variables and build switches\n.SH DESCRIPTION\n", out);
    int i = 0, paragraph = 0, headings = 0;
    if (L.n == 0 || !startsWith(L.v[0], "# "))
        die("the first line must be the title (# ...)");
    for (i = 1; i < L.n; i++) {
        inLine = i + 1;
        const char *l = L.v[i];
        if (isBlank(l)) {
            paragraph = 0;
        } else if (startsWith(l, "## ")) {
            putHeading(".SH", l + 3, 0);
            paragraph = 0;
            headings++;
        } else if (startsWith(l, "#")) {
            die("only # and ## headings are understood");
        } else if (startsWith(l, "```")) {
            fputs(".PP\n.RS 4\n.nf\n", out);
            for (i++; i < L.n && !startsWith(L.v[i], "```"); i++)
                putCode(L.v[i]);
            if (i == L.n)
                die("``` block not closed");
            fputs(".fi\n.RE\n", out);
            paragraph = 0;
        } else if (l[0] == '|') {
            list head = cells(l);
            if (i + 1 == L.n || !startsWith(L.v[i + 1], "|---") || head.n < 2)
                die("a table needs a header row and a |---| row");
            for (i += 2; i < L.n && L.v[i][0] == '|'; i++) {
                inLine = i + 1;
                list row = cells(L.v[i]);
                if (row.n != head.n)
                    die("%d cells in a table of %d columns", row.n, head.n);
                fputs(".TP\n", out);
                putText(row.v[0], 1);
                for (int k = 1; k < row.n - 1; k++) {
                    char label[64];
                    capitalised(label, sizeof label, head.v[k]);
                    fprintf(out, "%s%s: ", k > 1 ? ".br\n" : "", label);
                    putText(row.v[k], 1);
                }
                fputs(".IP\n", out);
                putText(row.v[row.n - 1], 1);
            }
            i--;
            paragraph = 0;
        } else {
            if (!paragraph)
                fputs(".PP\n", out);
            paragraph = 1;
            putText(l, 1);
        }
    }
    inLine = 0;
    if (headings == 0)
        die("no ## section");
    putSeeAlso("gomem", 7);
    closePage();
}

// ---------------------------------------------------------- gomem-info(1)

// A command line: the command and its words bold, a word in capitals (a
// file to name) italic, "|" as it is.
static void putCommand(const char *s)
{
    while (*s) {
        const char *e = s;
        while (*e && *e != ' ')
            e++;
        const char *font = *s == '|' ? NULL : isupper((unsigned char)*s) ? "\\fI" : "\\fB";
        if (font)
            fputs(font, out);
        while (s < e)
            s = putChar(s);
        if (font)
            fputs("\\fR", out);
        while (*s == ' ')
            fputc(*s++, out);
    }
    fputc('\n', out);
}

static void writeInfoPage(const char *path)
{
    inFile = path;
    list L = readLines(path);
    list head = {0}, usage = {0};
    int i = 0;
    for (; i < L.n && startsWith(L.v[i], "//"); i++) {
        char *t = commentText(L.v[i]);
        if (!startsWith(t, "SPDX-License-Identifier"))
            add(&head, t);
    }
    trim(&head);
    if (head.n == 0 || !startsWith(head.v[0], "gomem-info: "))
        die("the head comment must start \"// gomem-info: what it does.\"");
    // usage(): the string literals from "usage: " to the ");".
    char text[4096] = "";
    for (; i < L.n && strstr(L.v[i], "\"usage: ") == NULL; i++)
        ;
    for (; i < L.n; i++) {
        for (const char *p = strchr(L.v[i], '"'); p != NULL; p = strchr(p + 1, '"')) {
            for (p++; *p && *p != '"'; p++) {
                size_t n = strlen(text);
                if (n + 2 >= sizeof text)
                    die("usage text too long");
                if (*p == '\\') {
                    p++;
                    text[n] = *p == 'n' ? '\n' : *p;
                } else {
                    text[n] = *p;
                }
                text[n + 1] = 0;
            }
        }
        if (strstr(L.v[i], ");") != NULL)
            break;
    }
    if (!startsWith(text, "usage: "))
        die("no usage text (\"usage: ...\") found");
    for (char *l = strtok(text + strlen("usage: "), "\n"); l != NULL; l = strtok(NULL, "\n")) {
        while (*l == ' ')
            l++;
        add(&usage, l);
    }

    openPage("gomem-info", 1);
    putHeading(".TH", "gomem-info", 1);
    fputs(".SH NAME\ngomem\\-info \\- ", out);
    char *summary = xstrdup(head.v[0] + strlen("gomem-info: "));
    if (summary[0] != 0 && summary[strlen(summary) - 1] == '.')
        summary[strlen(summary) - 1] = 0;
    putText(summary, 0);
    fputs(".SH SYNOPSIS\n.nf\n", out);
    for (int k = 0; k < usage.n; k++)
        putCommand(usage.v[k]);
    fputs(".fi\n.SH DESCRIPTION\n", out);
    // The head comment: the command list (indented lines) and paragraphs.
    list exitStatus = {0}, para = {0};
    int commands = 0;
    for (int k = 1; k <= head.n; k++) {
        const char *l = k < head.n ? head.v[k] : "";
        if ((isBlank(l) || l[0] == ' ') && para.n > 0) { // a paragraph ends
            if (startsWith(para.v[0], "Exit status:")) {
                para.v[0] += strlen("Exit status:");
                while (*para.v[0] == ' ')
                    para.v[0]++;
                exitStatus = para;
            } else {
                fputs(".PP\n", out);
                putComment(&para, ".PP");
            }
            memset(&para, 0, sizeof para);
        }
        if (isBlank(l))
            continue;
        if (l[0] != ' ') {
            add(&para, xstrdup(l));
            continue;
        }
        while (*l == ' ')
            l++;
        if (startsWith(l, "gomem-info ")) { // a command, and what it does after two spaces
            const char *gap = strstr(l, "  ");
            fputs(".TP\n", out);
            putCommand(xstrndup(l, gap ? (size_t)(gap - l) : strlen(l)));
            commands++;
            if (gap == NULL)
                continue;
            for (l = gap; *l == ' '; l++)
                ;
        } else if (commands == 0) {
            die("an indented line in the head comment that is not a gomem-info command");
        }
        putText(l, 0);
    }
    if (commands == 0)
        die("the head comment lists no command (\"//   gomem-info CMD   what it does\")");
    if (exitStatus.n > 0) {
        fputs(".SH EXIT STATUS\n", out);
        putComment(&exitStatus, ".PP");
    }
    putSeeAlso("gomem-info", 1);
    closePage();
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: mkman OUTDIR include/gomem.h docs/options.md tools/gomem_info.c\n");
        return 2;
    }
    outDir = argv[1];
    parseHeader(argv[2]);
    inFile = argv[2];
    inLine = 0;
    writeApiPages();
    writeOptionsPage(argv[3]);
    writeInfoPage(argv[4]);
    return 0;
}
