// SPDX-License-Identifier: MIT
//
// The man pages (tools/mkman.c, `make man`), checked from the other side:
// every GM_API function of include/gomem.h has a page (its own, or a ".so"
// link to its group's) whose SYNOPSIS has its prototype and whose
// DESCRIPTION has an entry for it with text; every GOMEM_* variable gomem
// reads (knownOptions in src/runtime1.c, and any "GOMEM_..." string in
// src/*.c) has an entry in gomem(7); and, where groff is installed, every
// page renders without a warning. The functions are found here by a scan of
// the header of its own, not by mkman's parser, so a function mkman skips
// is caught. Each check is also shown to fail on a page that lacks the entry.
#include <dirent.h>

#include "testing.h"

static char mandir[512];

static char *readFile(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    fclose(f);
    return buf;
}

static int isIdent(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

// The names of the GM_API functions in the header text: the word before the
// first '(' of each line that starts "GM_API ".
static int headerFunctions(const char *header, char names[][64], int max)
{
    int n = 0;
    for (const char *l = header; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, "GM_API ", 7) != 0)
            continue;
        const char *paren = strchr(l, '('), *e = paren;
        while (e > l && isIdent((unsigned char)e[-1]))
            e--;
        if (n < max && paren - e < 64) {
            memcpy(names[n], e, (size_t)(paren - e));
            names[n][paren - e] = 0;
            n++;
        }
    }
    return n;
}

// The text of section sh (".SH NAME") of a page, up to the next .SH.
static char *section(const char *page, const char *sh)
{
    char want[64];
    snprintf(want, sizeof want, "\n.SH %s\n", sh);
    const char *s = strstr(page, want);
    if (s == NULL)
        return NULL;
    s += strlen(want);
    const char *e = strstr(s, "\n.SH ");
    size_t n = e ? (size_t)(e - s) + 1 : strlen(s);
    char *out = malloc(n + 1);
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

// Whether text has name followed by '(' and not preceded by a letter.
static int hasCall(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(text, name); p != NULL; p = strstr(p + 1, name))
        if ((p == text || !isIdent((unsigned char)p[-1])) && p[n] == '(')
            return 1;
    return 0;
}

// Whether the DESCRIPTION text has an entry for name: a .TP whose tag line
// holds "\fBname\fR(", then at least one line of text before the next
// entry, subsection or paragraph.
static int hasEntry(const char *desc, const char *name)
{
    char tag[96];
    snprintf(tag, sizeof tag, "\\fB%s\\fR(", name);
    for (const char *p = strstr(desc, ".TP\n"); p != NULL; p = strstr(p + 1, ".TP\n")) {
        const char *line = p + 4, *end = strchr(line, '\n');
        if (end == NULL)
            return 0;
        const char *t = strstr(line, tag);
        if (t == NULL || t > end)
            continue;
        for (line = end + 1; *line && strncmp(line, ".TP", 3) != 0 && strncmp(line, ".SS", 3) != 0 &&
                             strncmp(line, ".PP", 3) != 0;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "")
            if (line[0] != '.' && line[0] != '\n')
                return 1;
        return 0;
    }
    return 0;
}

// Of the header's functions, how many lack a page, a prototype in its
// SYNOPSIS or an entry in its DESCRIPTION (each named on stderr if loud).
// *nfuncs: how many functions the header has.
static int missingFunctions(const char *header, int loud, int *nfuncs)
{
    static char names[256][64];
    int n = headerFunctions(header, names, 256), missing = 0;
    *nfuncs = n;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%.500s/man3/%.63s.3", mandir, names[i]);
        char *page = readFile(path);
        if (page != NULL && strncmp(page, ".so ", 4) == 0) { // a link: man3/gm_malloc.3
            char *nl = strchr(page, '\n');
            if (nl != NULL)
                *nl = 0;
            snprintf(path, sizeof path, "%.500s/%.500s", mandir, page + 4);
            free(page);
            page = readFile(path);
        }
        const char *why = NULL;
        char *synopsis = page ? section(page, "SYNOPSIS") : NULL, *desc = page ? section(page, "DESCRIPTION") : NULL;
        if (page == NULL)
            why = "no page (man3/NAME.3 missing, or its .so target)";
        else if (synopsis == NULL || !hasCall(synopsis, names[i]))
            why = "no prototype in SYNOPSIS";
        else if (desc == NULL || !hasEntry(desc, names[i]))
            why = "no entry in DESCRIPTION";
        if (why != NULL) {
            missing++;
            if (loud)
                fprintf(stderr, "    %s: %s (%s)\n", names[i], why, path);
        }
        free(page);
        free(synopsis);
        free(desc);
    }
    return missing;
}

// The GOMEM_* variables gomem reads: the strings of knownOptions in
// src/runtime1.c (prefixed), and every "GOMEM_NAME..." string literal in
// src/*.c, less the tests' own GOMEM_TEST_*.
static int knownVariables(char names[][64], int max)
{
    int n = 0;
    char *src = readFile("src/runtime1.c");
    char *k = src ? strstr(src, "knownOptions[] = {") : NULL;
    if (k != NULL) {
        char *end = strstr(k, "};");
        for (char *q = strchr(k, '"'); q != NULL && q < end && n < max; q = strchr(q + 1, '"')) {
            char *e = strchr(q + 1, '"');
            snprintf(names[n++], 64, "GOMEM_%.*s", (int)(e - q - 1), q + 1);
            q = e;
        }
    }
    free(src);
    DIR *d = opendir("src");
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 3 || strcmp(de->d_name + len - 2, ".c") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "src/%s", de->d_name);
        char *text = readFile(path);
        for (char *q = text ? strstr(text, "\"GOMEM_") : NULL; q != NULL; q = strstr(q + 1, "\"GOMEM_")) {
            char name[64];
            int m = 0;
            for (char *p = q + 1; isIdent((unsigned char)*p) && m < 63; p++)
                name[m++] = *p;
            name[m] = 0;
            if (name[m - 1] == '_' || strncmp(name, "GOMEM_TEST_", 11) == 0)
                continue; // a prefix ("GOMEM_") or the tests' own
            int seen = 0;
            for (int i = 0; i < n; i++)
                seen |= strcmp(names[i], name) == 0;
            if (!seen && n < max)
                snprintf(names[n++], 64, "%s", name);
        }
        free(text);
    }
    if (d != NULL)
        closedir(d);
    return n;
}

// Of the variables, how many have no entry (a .TP whose tag holds
// "\fBNAME\fR") in the gomem(7) text.
static int missingVariables(const char *page, char names[][64], int n, int loud)
{
    int missing = 0;
    for (int i = 0; i < n; i++) {
        char tag[96];
        snprintf(tag, sizeof tag, "\\fB%.63s\\fR", names[i]);
        int found = 0;
        for (const char *p = strstr(page, ".TP\n"); p != NULL && !found; p = strstr(p + 1, ".TP\n")) {
            const char *t = strstr(p + 4, tag), *end = strchr(p + 4, '\n');
            found = t != NULL && end != NULL && t < end;
        }
        if (!found) {
            missing++;
            if (loud)
                fprintf(stderr, "    %s: no entry in gomem(7)\n", names[i]);
        }
    }
    return missing;
}

TEST(every_function_has_an_entry)
{
    char *header = readFile("include/gomem.h");
    CHECK(header != NULL);
    if (header == NULL)
        return;
    int n;
    CHECK_EQ(missingFunctions(header, 1, &n), 0);
    CHECK(n >= 50); // the scan found the functions
    free(header);
}

// A function the pages lack is reported: the header with one more.
TEST(a_function_without_an_entry_is_caught)
{
    char *header = readFile("include/gomem.h");
    CHECK(header != NULL);
    if (header == NULL)
        return;
    char *more = malloc(strlen(header) + 100);
    sprintf(more, "%sGM_API void gm_undocumented(void);\n", header);
    int n, m, base = missingFunctions(header, 0, &m);
    CHECK_EQ(missingFunctions(more, 0, &n), base + 1);
    CHECK_EQ(n, m + 1);
    // ... and one whose entry has no text, or whose prototype is another's.
    CHECK(!hasEntry(".TP\n\\fBgm_free\\fR()\n.TP\n\\fBgm_calloc\\fR()\ntext\n", "gm_free"));
    CHECK(hasEntry(".TP\n\\fBgm_free\\fR()\ntext\n", "gm_free"));
    CHECK(!hasCall(".BI \"void gm_free_sized(void *\" p );\n", "gm_free"));
    free(more);
    free(header);
}

// mkman itself refuses a function with no comment above it.
TEST(mkman_refuses_an_undocumented_function)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char *header = readFile("include/gomem.h");
    CHECK(header != NULL);
    if (header == NULL)
        return;
    char dir[] = "/tmp/man_test.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[600], cmd[2048];
    snprintf(path, sizeof path, "%s/gomem.h", dir);
    // After gm_chan_len, a blank line and a declaration with no comment.
    const char *at = strstr(header, "GM_API size_t gm_chan_len");
    CHECK(at != NULL);
    at = at ? strchr(at, '\n') + 1 : header;
    FILE *f = fopen(path, "w");
    fprintf(f, "%.*s\nGM_API void gm_undocumented(void);\n%s", (int)(at - header), header, at);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/mkman %s/out %s docs/options.md tools/gomem_info.c 2>&1", build, dir, path);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    int status = pclose(p);
    CHECK(status != 0);
    CHECK(strstr(out, "gm_undocumented has no comment") != NULL);
    if (strstr(out, "gm_undocumented") == NULL)
        fprintf(stderr, "    mkman said: %s\n", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    free(header);
}

TEST(every_variable_is_in_gomem_7)
{
    static char names[64][64];
    int n = knownVariables(names, 64);
    CHECK(n >= 15); // knownOptions was found
    char path[600];
    snprintf(path, sizeof path, "%s/man7/gomem.7", mandir);
    char *page = readFile(path);
    CHECK(page != NULL);
    if (page == NULL)
        return;
    CHECK_EQ(missingVariables(page, names, n, 1), 0);
    // A page without GOMEM_PROCS's entry is caught.
    char *tag = strstr(page, "\\fBGOMEM_PROCS\\fR");
    CHECK(tag != NULL);
    if (tag != NULL)
        memcpy(tag + 3, "XXXXX", 5);
    CHECK_EQ(missingVariables(page, names, n, 0), 1);
    free(page);
}

// Each page through groff with every warning on; the .so links are read
// from the man directory, as man(1) does.
TEST(pages_render_without_warnings)
{
    if (system("command -v groff >/dev/null 2>&1") != 0) {
        printf("man_test: groff is not installed: the pages' content is checked, their rendering is not\n");
        return;
    }
    const char *sub[] = {"man1", "man3", "man7"};
    int bad = 0, pages = 0;
    for (int s = 0; s < 3; s++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", mandir, sub[s]);
        DIR *d = opendir(path);
        CHECK(d != NULL);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char cmd[1400], out[2048] = "";
            snprintf(cmd, sizeof cmd, "cd '%s' && groff -man -Tutf8 -ww -z '%s/%s' 2>&1", mandir, sub[s], de->d_name);
            FILE *p = popen(cmd, "r");
            size_t len = fread(out, 1, sizeof out - 1, p);
            out[len] = 0;
            int status = pclose(p);
            pages++;
            TALLY(bad, len == 0 && status == 0, "%s/%s: %s", sub[s], de->d_name, out);
        }
        if (d != NULL)
            closedir(d);
    }
    CHECK_EQ(bad, 0);
    CHECK(pages >= 50);
    // A page with an unknown macro is reported.
    char out[512] = "";
    FILE *p = popen("printf '.TH X 3\\n.SH NAME\\nx\\n.BOGUS\\n' | groff -man -Tutf8 -ww -z 2>&1", "r");
    size_t len = fread(out, 1, sizeof out - 1, p);
    pclose(p);
    CHECK(len > 0);
}

int main(void)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(mandir, sizeof mandir, "%s/man", build);
    RUN(every_function_has_an_entry);
    RUN(a_function_without_an_entry_is_caught);
    RUN(mkman_refuses_an_undocumented_function);
    RUN(every_variable_is_in_gomem_7);
    RUN(pages_render_without_warnings);
    return test_report();
}
