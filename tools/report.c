// SPDX-License-Identifier: MIT
//
// gomem-info's reports: a trace (GOMEM_TRACE), a statistics file
// (GOMEM_STATS / gm_stats_json) or a benchmark CSV (make bench) turned into
// one self-contained HTML page of inline SVG plots (no script, no network).
//
// Input is checked before anything is written: an unreadable, truncated or
// foreign file is an error naming it. Output goes to a temporary file next
// to the target and is renamed over it only when complete, so a failure
// leaves no partial report behind.
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h" // traceRecord, the event numbers

// ------------------------------------------------------------ helpers

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gomem-info: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static char *readFile(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail("cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL) {
            fclose(f);
            fail("out of memory reading '%s'", path);
            return NULL;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (nb == NULL)
            free(buf);
        buf = nb;
    }
    if (ferror(f)) {
        fail("cannot read '%s': %s", path, strerror(errno));
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static void fmtBytes(char *b, size_t n, double v)
{
    const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;
    while (fabs(v) >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(b, n, v == floor(v) ? "%.0f %s" : "%.1f %s", v, u[i]);
}

static void fmtPlain(char *b, size_t n, double v)
{
    if (fabs(v) >= 1e6)
        snprintf(b, n, "%.1fM", v / 1e6);
    else if (fabs(v) >= 1e4)
        snprintf(b, n, "%.0fk", v / 1e3);
    else
        snprintf(b, n, v == floor(v) ? "%.0f" : "%.2f", v);
}

static void fmtMs(char *b, size_t n, double ns)
{
    if (ns >= 1e9)
        snprintf(b, n, "%.2f s", ns / 1e9);
    else
        snprintf(b, n, "%.1f ms", ns / 1e6);
}

// A round axis maximum at or above v.
static double niceMax(double v);

// For bytes: round in the unit the axis will print (KiB, MiB...).
static double niceMaxBytes(double v)
{
    double unit = 1;
    while (v / unit >= 1024)
        unit *= 1024;
    return niceMax(v / unit) * unit;
}

static double niceMax(double v)
{
    if (v <= 0)
        return 1;
    double p = pow(10, floor(log10(v)));
    const double steps[] = { 1, 2, 2.5, 5, 10 };
    for (int i = 0; i < 5; i++)
        if (steps[i] * p >= v)
            return steps[i] * p;
    return 10 * p;
}

static const char *palette[] = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };

static void htmlEscape(FILE *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", o);
        else if (*s == '>')
            fputs("&gt;", o);
        else if (*s == '&')
            fputs("&amp;", o);
        else if (*s == '"')
            fputs("&quot;", o);
        else
            fputc(*s, o);
    }
}

// ------------------------------------------------------------ charts

typedef struct {
    const char *name;
    const double *x, *y; // x in ns
    size_t n;
} series;

enum { W = 760, H = 300, ML = 80, MR = 20, MT = 36, MB = 44 };

static void chartStart(FILE *o, const char *id, const char *title)
{
    fprintf(o, "<figure><svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\"><title>",
            id, W, H, W, H);
    htmlEscape(o, title);
    fprintf(o, "</title><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
               "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">",
            W, H, ML);
    htmlEscape(o, title);
    fputs("</text>", o);
}

static void yAxis(FILE *o, double ymax, bool bytes)
{
    for (int i = 0; i <= 4; i++) {
        double v = ymax * i / 4;
        int y = H - MB - (int)((H - MT - MB) * i / 4.0);
        char lab[32];
        (bytes ? fmtBytes : fmtPlain)(lab, sizeof lab, v);
        fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>"
                   "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%s</text>",
                ML, y, W - MR, y, ML - 6, y + 4, lab);
    }
}

// Lines over time; x from 0 to the largest x of any series.
static void lineChart(FILE *o, const char *id, const char *title, const series *s, int ns, bool bytes)
{
    double xmax = 1, ymax = 0;
    for (int k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            if (s[k].x[i] > xmax)
                xmax = s[k].x[i];
            if (s[k].y[i] > ymax)
                ymax = s[k].y[i];
        }
    ymax = bytes ? niceMaxBytes(ymax) : niceMax(ymax);
    chartStart(o, id, title);
    yAxis(o, ymax, bytes);
    for (int i = 0; i <= 4; i++) {
        char lab[32];
        fmtMs(lab, sizeof lab, xmax * i / 4);
        fprintf(o, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>",
                ML + (int)((W - ML - MR) * i / 4.0), H - MB + 16, lab);
    }
    fprintf(o, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">time since the trace started</text>",
            (ML + W - MR) / 2, H - 8);
    for (int k = 0; k < ns; k++) {
        if (s[k].n == 0)
            continue;
        fprintf(o, "<polyline class=\"series\" fill=\"none\" stroke-width=\"1.8\" stroke=\"%s\" points=\"",
                palette[k % 10]);
        for (size_t i = 0; i < s[k].n; i++)
            fprintf(o, "%.1f,%.1f ", ML + (W - ML - MR) * s[k].x[i] / xmax,
                    H - MB - (H - MT - MB) * s[k].y[i] / ymax);
        fputs("\"/>", o);
        fprintf(o, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                   "<text x=\"%d\" y=\"%d\" font-size=\"11\">",
                W - MR - 150, MT + 4 + 14 * k, palette[k % 10], W - MR - 136, MT + 13 + 14 * k);
        htmlEscape(o, s[k].name);
        fputs("</text>", o);
    }
    fputs("</svg></figure>\n", o);
}

// Bars in groups: ngroups labels, nbars values each (value[g * nbars + b]).
static void barChart(FILE *o, const char *id, const char *title, const char *const *groups, int ngroups,
                     const char *const *bars, int nbars, const double *value, bool bytes)
{
    double ymax = 0;
    for (int i = 0; i < ngroups * nbars; i++)
        if (value[i] > ymax)
            ymax = value[i];
    ymax = bytes ? niceMaxBytes(ymax) : niceMax(ymax);
    chartStart(o, id, title);
    yAxis(o, ymax, bytes);
    double gw = (double)(W - ML - MR) / (ngroups ? ngroups : 1);
    double bw = gw * 0.8 / nbars;
    for (int g = 0; g < ngroups; g++) {
        for (int b = 0; b < nbars; b++) {
            double v = value[g * nbars + b], h = (H - MT - MB) * v / ymax;
            char lab[32];
            (bytes ? fmtBytes : fmtPlain)(lab, sizeof lab, v);
            fprintf(o, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                    ML + g * gw + gw * 0.1 + b * bw, H - MB - h, bw > 1.5 ? bw - 1 : bw, h, palette[b % 10]);
            htmlEscape(o, groups[g]);
            fputs(" ", o);
            htmlEscape(o, bars[b]);
            fprintf(o, ": %s</title></rect>", lab);
        }
        if (ngroups <= 24 || g % (ngroups / 24 + 1) == 0) {
            fprintf(o, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">", ML + g * gw + gw / 2,
                    H - MB + 14);
            htmlEscape(o, groups[g]);
            fputs("</text>", o);
        }
    }
    if (nbars > 1)
        for (int b = 0; b < nbars; b++) {
            fprintf(o, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                       "<text x=\"%d\" y=\"%d\" font-size=\"11\">",
                    W - MR - 150, MT + 4 + 14 * b, palette[b % 10], W - MR - 136, MT + 13 + 14 * b);
            htmlEscape(o, bars[b]);
            fputs("</text>", o);
        }
    fputs("</svg></figure>\n", o);
}

// ------------------------------------------------------------ output

typedef struct {
    const char *path;
    char tmp[4096];
    FILE *f;
} outFile;

static int outOpen(outFile *w, const char *path)
{
    w->path = path;
    if (snprintf(w->tmp, sizeof w->tmp, "%s.tmpXXXXXX", path) >= (int)sizeof w->tmp)
        return fail("cannot write '%s': path too long", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0)
        return fail("cannot write '%s': %s", path, strerror(errno));
    w->f = fdopen(fd, "w");
    if (w->f == NULL) {
        close(fd);
        unlink(w->tmp);
        return fail("cannot write '%s': %s", path, strerror(errno));
    }
    return 0;
}

static int outClose(outFile *w)
{
    bool bad = ferror(w->f) != 0;
    if (fchmod(fileno(w->f), 0644) != 0 || fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        bad = true;
    int err = errno;
    if (fclose(w->f) != 0 && !bad) {
        bad = true;
        err = errno;
    }
    if (!bad && rename(w->tmp, w->path) == 0)
        return 0;
    if (!bad)
        err = errno;
    unlink(w->tmp);
    return fail("cannot write '%s': %s", w->path, strerror(err ? err : EIO));
}

// The heap profile's section (pprof_htmlSection), made before the page so
// that a bad profile fails the report before anything is written.
static FILE *heapHtml;

static void heapEnd(FILE *o)
{
    if (heapHtml == NULL)
        return;
    rewind(heapHtml);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, heapHtml)) > 0)
        fwrite(chunk, 1, n, o);
}

static void pageStart(FILE *o, const char *title, const char *source)
{
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", o);
    htmlEscape(o, title);
    fputs("</title><style>body{font-family:sans-serif;margin:24px;max-width:820px}"
          "figure{margin:12px 0}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right;"
          "border-bottom:1px solid #eee}th{text-align:left}</style></head><body>\n<h1>",
          o);
    htmlEscape(o, title);
    fputs("</h1>\n<p>Source: <code>", o);
    htmlEscape(o, source);
    fputs("</code></p>\n", o);
}

// ------------------------------------------------------------ trace report

typedef struct {
    double *x, *y;
    size_t n, cap;
} vec;

static void push(vec *v, double x, double y)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->x = realloc(v->x, v->cap * sizeof(double));
        v->y = realloc(v->y, v->cap * sizeof(double));
        if (v->x == NULL || v->y == NULL) {
            fail("out of memory");
            exit(1);
        }
    }
    v->x[v->n] = x;
    v->y[v->n++] = y;
}

static int cmpTs(const void *a, const void *b)
{
    const traceRecord *r = a, *s = b;
    return r->ts < s->ts ? -1 : r->ts > s->ts;
}

static bool knownEvent(unsigned ev)
{
    return (ev >= EvSpanAlloc && ev <= EvGoEnd) || (ev >= EvSampleRSS && ev <= EvSampleSchedEvents) || ev == EvClassLive ||
           ev == EvTinyLive || ev == EvClassTotal || ev == EvClock;
}

#define MaxOrders 32

static int traceReport(const char *in, const char *data, size_t len, const char *out)
{
    if (len < 32)
        return fail("'%s' is truncated: %zu bytes, shorter than a trace header", in, len);
    uint32_t version, rsize;
    uint64_t start, pid;
    memcpy(&version, data + 8, 4);
    memcpy(&rsize, data + 12, 4);
    memcpy(&start, data + 16, 8);
    memcpy(&pid, data + 24, 8);
    if (version != TraceVersion || rsize != sizeof(traceRecord))
        return fail("'%s': trace version %u with %u-byte records; this gomem-info reads version %d (%zu-byte)", in,
                    version, rsize, TraceVersion, sizeof(traceRecord));
    size_t body = len - 32;
    if (body % sizeof(traceRecord) != 0)
        return fail("'%s' is truncated: %zu stray bytes after the last whole record (at byte %zu)", in,
                    body % sizeof(traceRecord), 32 + body / sizeof(traceRecord) * sizeof(traceRecord));
    size_t n = body / sizeof(traceRecord);
    traceRecord *r = malloc(n ? n * sizeof *r : 1);
    if (r == NULL)
        return fail("out of memory reading '%s'", in);
    memcpy(r, data + 32, n * sizeof *r);
    size_t bad = 0;
    while (bad < n && knownEvent(r[bad].ev))
        bad++;
    if (bad < n) {
        unsigned ev = r[bad].ev;
        free(r);
        return fail("'%s' is corrupt or not a gomem trace: unknown event %u at byte %zu", in, ev,
                    32 + bad * sizeof(traceRecord));
    }
    qsort(r, n, sizeof *r, cmpTs);
    // Ticks to ns: the last EvClock pairs them (a trace cut short by a
    // crash still has the sampler's earlier ones).
    double nsPerTick = 1;
    for (size_t i = n; i-- > 0;)
        if (r[i].ev == EvClock && r[i].ts > 0) {
            nsPerTick = (double)r[i].y / (double)r[i].ts;
            break;
        }
    for (size_t i = 0; i < n; i++)
        r[i].ts = (uint64_t)((double)r[i].ts * nsPerTick);

    vec rss = { 0 }, halloc = { 0 }, hinuse = { 0 }, hrel = { 0 }, stk = { 0 };
    vec order[MaxOrders] = { { 0 } }, saved[MaxOrders + 1] = { { 0 } }, run = { 0 }, runnable = { 0 }, waiting = { 0 };
    vec grows = { 0 }, shrinks = { 0 };
    vec wk[3] = { { 0 } };        // workers busy, spinning, idle: the average over each sample interval
    vec se[6] = { { 0 } };        // scheduler events so far (EvSampleSchedEvents)
    double wkT[3] = { 0 }, wkY[3] = { 0 }; // the previous sample of each
    unsigned orderSize[MaxOrders] = { 0 }, norders = 0;
    uint64_t count[64] = { 0 };
    double classLive[256] = { 0 }, classTotal[256] = { 0 }, classSize[256] = { 0 }, largeBytes = 0;
    bool haveClasses = false;
    uint64_t tinyBlocks = 0, tinyLive = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)r[i].ts, y = (double)r[i].y;
        unsigned a = r[i].aux;
        count[r[i].ev]++;
        switch (r[i].ev) {
        case EvSampleRSS: push(&rss, t, y); break;
        case EvSampleHeapAlloc: push(&halloc, t, y); break;
        case EvSampleHeapInuse: push(&hinuse, t, y); break;
        case EvSampleHeapReleased: push(&hrel, t, y); break;
        case EvSampleStackInuse: push(&stk, t, y); break;
        case EvSampleStackOrder:
            if (a < MaxOrders) {
                push(&order[a], t, y);
                orderSize[a] = r[i].x << 8;
                if (a + 1 > norders)
                    norders = a + 1;
            }
            break;
        case EvSampleSavedOrder:
            if (a <= MaxOrders)
                push(&saved[a], t, y);
            break;
        case EvSampleCoros:
            push(&run, t, r[i].x);
            push(&runnable, t, (double)(r[i].y & 0xffffffffu));
            push(&waiting, t, (double)(r[i].y >> 32));
            break;
        case EvSampleSched:
            // A total of ns: its slope over the interval is the number of
            // workers in that state, on average.
            if (a < 3) {
                if (wkT[a] > 0 && t > wkT[a] && y >= wkY[a])
                    push(&wk[a], t, (y - wkY[a]) / (t - wkT[a]));
                wkT[a] = t;
                wkY[a] = y;
            }
            break;
        case EvSampleSchedEvents:
            if (a < 6)
                push(&se[a], t, y);
            break;
        case EvStackGrow: push(&grows, t, r[i].x); break;
        case EvStackShrink: push(&shrinks, t, r[i].x); break;
        case EvClassLive:
            haveClasses = true;
            if (a == 0)
                largeBytes = y;
            else {
                classLive[a] = y;
                classSize[a] = r[i].x;
            }
            break;
        case EvClassTotal:
            classTotal[a] = y;
            break;
        case EvTinyLive:
            tinyBlocks = r[i].x;
            tinyLive = r[i].y;
            break;
        }
    }
    outFile w;
    if (outOpen(&w, out) != 0) {
        free(r);
        return 1;
    }
    FILE *o = w.f;
    pageStart(o, "gomem trace report", in);
    char when[64];
    fmtMs(when, sizeof when, n ? (double)r[n - 1].ts : 0);
    fprintf(o, "<p>Process %llu, %zu events over %s.</p>\n", (unsigned long long)pid, n, when);

    series mem[] = { { "RSS", rss.x, rss.y, rss.n },
                     { "heap in use (spans)", hinuse.x, hinuse.y, hinuse.n },
                     { "heap allocated (objects)", halloc.x, halloc.y, halloc.n },
                     { "heap released", hrel.x, hrel.y, hrel.n },
                     { "stacks in use", stk.x, stk.y, stk.n } };
    lineChart(o, "memory", "RSS and heap over time", mem, 5, true);

    series ords[MaxOrders];
    char names[MaxOrders][48];
    for (unsigned k = 0; k < norders; k++) {
        char sz[24];
        fmtBytes(sz, sizeof sz, orderSize[k]);
        snprintf(names[k], sizeof names[k], "order %u (%s)", k, sz);
        ords[k] = (series){ names[k], order[k].x, order[k].y, order[k].n };
    }
    lineChart(o, "stack-orders", "Stacks in use by order over time (gm_stackalloc)", ords, (int)norders, true);

    series sv[MaxOrders + 1];
    char snames[MaxOrders + 1][48];
    int nsv = 0;
    for (unsigned k = 0; k <= norders; k++) {
        bool any = false;
        for (size_t i = 0; i < saved[k].n; i++)
            any |= saved[k].y[i] != 0;
        if (!any)
            continue;
        if (k < norders) {
            char sz[24];
            fmtBytes(sz, sizeof sz, orderSize[k]);
            snprintf(snames[nsv], sizeof snames[nsv], "%s buffers", sz);
        } else
            snprintf(snames[nsv], sizeof snames[nsv], "larger buffers");
        sv[nsv] = (series){ snames[nsv], saved[k].x, saved[k].y, saved[k].n };
        nsv++;
    }
    lineChart(o, "saved-stacks", "Copied-mode saved stacks by buffer size over time", sv, nsv, true);

    series gs[] = { { "stack grows (new size)", grows.x, grows.y, grows.n },
                    { "stack shrinks (new size)", shrinks.x, shrinks.y, shrinks.n } };
    // Events as points: a polyline would join unrelated coroutines.
    double xmax = n ? (double)r[n - 1].ts : 1, ymax = 0;
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < gs[k].n; i++)
            ymax = gs[k].y[i] > ymax ? gs[k].y[i] : ymax;
    ymax = niceMaxBytes(ymax);
    if (xmax <= 0)
        xmax = 1;
    chartStart(o, "grow-shrink", "Saved-stack grow and shrink events");
    yAxis(o, ymax, true);
    for (int k = 0; k < 2; k++) {
        size_t step = gs[k].n > 4000 ? gs[k].n / 4000 : 1; // a few thousand marks are enough to see
        for (size_t i = 0; i < gs[k].n; i += step)
            fprintf(o, "<circle class=\"event\" cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\"/>",
                    ML + (W - ML - MR) * gs[k].x[i] / xmax, H - MB - (H - MT - MB) * gs[k].y[i] / ymax, palette[k]);
        fprintf(o, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" "
                   "font-size=\"11\">%s: %zu</text>",
                W - MR - 200, MT + 4 + 14 * k, palette[k], W - MR - 186, MT + 13 + 14 * k, gs[k].name, gs[k].n);
    }
    fputs("</svg></figure>\n", o);

    series cs[] = { { "running", run.x, run.y, run.n },
                    { "runnable", runnable.x, runnable.y, runnable.n },
                    { "waiting", waiting.x, waiting.y, waiting.n } };
    lineChart(o, "coroutines", "Coroutines by state over time", cs, 3, false);
    series ws[] = { { "busy", wk[0].x, wk[0].y, wk[0].n },
                    { "spinning", wk[1].x, wk[1].y, wk[1].n },
                    { "idle", wk[2].x, wk[2].y, wk[2].n } };
    lineChart(o, "workers", "Scheduler workers busy, spinning and idle (average over each sample)", ws, 3, false);
    series es[] = { { "steals", se[0].x, se[0].y, se[0].n },
                    { "steals of started coroutines", se[1].x, se[1].y, se[1].n },
                    { "long runs (sysmon)", se[2].x, se[2].y, se[2].n },
                    { "sysmon hand-offs", se[3].x, se[3].y, se[3].n },
                    { "ready moves", se[4].x, se[4].y, se[4].n },
                    { "execution stacks lent", se[5].x, se[5].y, se[5].n } };
    lineChart(o, "schedevents", "Scheduler events so far: steals, sysmon, moves, lends", es, 6, false);

    // Size-class histogram: live bytes per class at the end of the trace.
    const char *labels[256];
    char lbuf[256][16];
    double vals[512];
    int nc = 0;
    for (int c = 1; c < 256; c++)
        if (classSize[c] > 0) {
            snprintf(lbuf[nc], sizeof lbuf[nc], "%.0f", classSize[c]);
            labels[nc] = lbuf[nc];
            vals[2 * nc] = classLive[c] * classSize[c];
            vals[2 * nc + 1] = classTotal[c] * classSize[c];
            nc++;
        }
    const char *two[] = { "live at the end", "ever allocated" };
    if (haveClasses)
        barChart(o, "size-classes", "Heap bytes by size class (object size in bytes)", labels, nc, two, 2, vals,
                 true);
    char lb[32];
    fmtBytes(lb, sizeof lb, largeBytes);
    fprintf(o, "<p>Objects over 32 KiB: %s live. Tiny allocator: %llu live objects in %llu blocks.</p>\n", lb,
            (unsigned long long)tinyLive, (unsigned long long)tinyBlocks);

    static const char *evName[64] = {
        [EvSpanAlloc] = "heap span alloc", [EvSpanFree] = "heap span free", [EvStackSpanAlloc] = "stack span alloc",
        [EvStackSpanFree] = "stack span free", [EvScavenge] = "scavenge (span released)",
        [EvStackGrow] = "saved stack grow", [EvStackShrink] = "saved stack shrink", [EvGoCreate] = "coroutine create",
        [EvGoPark] = "coroutine park", [EvGoEnd] = "coroutine end", [EvSampleRSS] = "samples",
    };
    fputs("<h2>Events</h2>\n<table><tr><th>event</th><th>count</th></tr>\n", o);
    for (int e = 0; e < 64; e++)
        if (evName[e] != NULL)
            fprintf(o, "<tr><th>%s</th><td>%llu</td></tr>\n", evName[e], (unsigned long long)count[e]);
    fputs("</table>\n", o);
    heapEnd(o);
    fputs("</body></html>\n", o);
    free(r);
    vec *all[] = { &rss, &halloc, &hinuse, &hrel, &stk, &run, &runnable, &waiting, &grows, &shrinks,
                   &wk[0], &wk[1], &wk[2] };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        free(all[i]->x);
        free(all[i]->y);
    }
    for (int k = 0; k < MaxOrders; k++) {
        free(order[k].x);
        free(order[k].y);
    }
    for (int k = 0; k <= MaxOrders; k++) {
        free(saved[k].x);
        free(saved[k].y);
    }
    for (int k = 0; k < 6; k++) {
        free(se[k].x);
        free(se[k].y);
    }
    return outClose(&w);
}

// ------------------------------------------------------------ stats report

// A minimal JSON walker for gm_stats_json's output: every number gets a
// path such as "heap_alloc", "by_size[3].mallocs", "stack_order[1].inuse".
typedef struct {
    const char *p, *end;
    char path[128];
    int err;
    void (*num)(void *, const char *path, double v);
    void *arg;
} jwalk;

static void jspace(jwalk *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static void jvalue(jwalk *j, int depth);

// After a member or element: true at ',' (another follows), false at close
// (the container ends) or on an error (j->err set).
static bool jmore(jwalk *j, char close)
{
    jspace(j);
    if (!j->err && j->p < j->end && (*j->p == ',' || *j->p == close))
        return *j->p++ == ',';
    j->err = 1;
    return false;
}

static void jstring(jwalk *j, char *out, size_t n)
{
    size_t k = 0;
    if (j->p >= j->end || *j->p != '"') {
        j->err = 1;
        return;
    }
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p == '\\')
            j->p++;
        if (j->p < j->end && k + 1 < n)
            out[k++] = *j->p;
        j->p++;
    }
    if (j->p >= j->end) {
        j->err = 1;
        return;
    }
    j->p++;
    out[k] = 0;
}

static void jvalue(jwalk *j, int depth)
{
    jspace(j);
    if (j->err || j->p >= j->end || depth > 16) {
        j->err = 1;
        return;
    }
    size_t base = strlen(j->path);
    if (*j->p == '{') {
        j->p++;
        jspace(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return;
        }
        for (;;) {
            char key[64];
            jspace(j);
            jstring(j, key, sizeof key);
            jspace(j);
            if (j->err || j->p >= j->end || *j->p != ':') {
                j->err = 1;
                return;
            }
            j->p++;
            snprintf(j->path + base, sizeof j->path - base, "%s%s", base ? "." : "", key);
            jvalue(j, depth + 1);
            j->path[base] = 0;
            if (!jmore(j, '}'))
                return;
        }
    }
    if (*j->p == '[') {
        j->p++;
        jspace(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return;
        }
        for (int i = 0;; i++) {
            snprintf(j->path + base, sizeof j->path - base, "[%d]", i);
            jvalue(j, depth + 1);
            j->path[base] = 0;
            if (!jmore(j, ']'))
                return;
        }
    }
    if (*j->p == '"') {
        char skip[64];
        jstring(j, skip, sizeof skip);
        return;
    }
    char *e;
    double v = strtod(j->p, &e);
    if (e == j->p || e > j->end) {
        if (j->end - j->p >= 4 && (memcmp(j->p, "true", 4) == 0 || memcmp(j->p, "null", 4) == 0)) {
            j->p += 4;
            return;
        }
        j->err = 1;
        return;
    }
    j->p = e;
    j->num(j->arg, j->path, v);
}

typedef struct {
    double bySize[256], mallocs[256], frees[256];
    int nclasses;
    double orderSize[MaxOrders], inuse[MaxOrders], cached[MaxOrders], pooled[MaxOrders];
    int norders;
    int nscalars;
    char scalarName[96][48];
    double scalar[96];
    bool sawHeap;
} statsData;

static void statsNum(void *arg, const char *path, double v)
{
    statsData *s = arg;
    int i;
    char field[32];
    if (sscanf(path, "by_size[%d].%31s", &i, field) == 2 && i >= 0 && i < 256) {
        if (i + 1 > s->nclasses)
            s->nclasses = i + 1;
        if (strcmp(field, "size") == 0)
            s->bySize[i] = v;
        else if (strcmp(field, "mallocs") == 0)
            s->mallocs[i] = v;
        else if (strcmp(field, "frees") == 0)
            s->frees[i] = v;
        return;
    }
    if (sscanf(path, "stack_order[%d].%31s", &i, field) == 2 && i >= 0 && i < MaxOrders) {
        if (i + 1 > s->norders)
            s->norders = i + 1;
        if (strcmp(field, "size") == 0)
            s->orderSize[i] = v;
        else if (strcmp(field, "inuse") == 0)
            s->inuse[i] = v;
        else if (strcmp(field, "cached") == 0)
            s->cached[i] = v;
        else if (strcmp(field, "pooled") == 0)
            s->pooled[i] = v;
        return;
    }
    if (strchr(path, '[') == NULL && strchr(path, '.') == NULL && s->nscalars < 96) {
        if (strcmp(path, "heap_alloc") == 0)
            s->sawHeap = true;
        snprintf(s->scalarName[s->nscalars], 48, "%s", path);
        s->scalar[s->nscalars++] = v;
    }
}

static int statsReport(const char *in, const char *data, size_t len, const char *out)
{
    statsData *s = calloc(1, sizeof *s);
    if (s == NULL)
        return fail("out of memory");
    jwalk j = { data, data + len, "", 0, statsNum, s };
    jvalue(&j, 0);
    jspace(&j);
    if (j.err || j.p != j.end || !s->sawHeap || s->nclasses == 0) {
        free(s);
        return fail("'%s' is not gomem statistics (gm_stats_json output)%s at byte %zu", in,
                    j.err || j.p != j.end ? ": malformed or truncated JSON" : ": fields missing", (size_t)(j.p - data));
    }
    outFile w;
    if (outOpen(&w, out) != 0) {
        free(s);
        return 1;
    }
    FILE *o = w.f;
    pageStart(o, "gomem statistics report", in);
    const char *labels[256];
    char lbuf[256][16];
    double vals[512];
    int nc = 0;
    for (int c = 1; c < s->nclasses; c++) {
        snprintf(lbuf[nc], sizeof lbuf[nc], "%.0f", s->bySize[c]);
        labels[nc] = lbuf[nc];
        vals[2 * nc] = (s->mallocs[c] - s->frees[c]) * s->bySize[c];
        vals[2 * nc + 1] = s->mallocs[c] * s->bySize[c];
        nc++;
    }
    const char *two[] = { "live bytes", "bytes ever allocated" };
    barChart(o, "size-classes", "Heap bytes by size class (object size in bytes)", labels, nc, two, 2, vals, true);
    const char *olab[MaxOrders];
    char obuf[MaxOrders][24];
    double ov[3 * MaxOrders];
    for (int k = 0; k < s->norders; k++) {
        fmtBytes(obuf[k], sizeof obuf[k], s->orderSize[k]);
        olab[k] = obuf[k];
        ov[3 * k] = s->inuse[k];
        ov[3 * k + 1] = s->cached[k];
        ov[3 * k + 2] = s->pooled[k];
    }
    const char *three[] = { "in use", "cached (threads)", "pooled (free)" };
    barChart(o, "stack-orders", "Stacks by order (gm_stackalloc)", olab, s->norders, three, 3, ov, true);
    fputs("<h2>All figures</h2>\n<table>\n", o);
    for (int i = 0; i < s->nscalars; i++) {
        char b[32];
        fmtPlain(b, sizeof b, s->scalar[i]);
        fprintf(o, "<tr><th>%s</th><td>%.0f</td><td>%s</td></tr>\n", s->scalarName[i], s->scalar[i], b);
    }
    fputs("</table>\n", o);
    heapEnd(o);
    fputs("</body></html>\n", o);
    free(s);
    return outClose(&w);
}

// A page of the heap profile alone.
static int heapReport(const char *in, const char *out)
{
    outFile w;
    if (outOpen(&w, out) != 0)
        return 1;
    pageStart(w.f, "gomem heap profile", in);
    heapEnd(w.f);
    fputs("</body></html>\n", w.f);
    return outClose(&w);
}

int report_main(const char *in, const char *out, const char *heap)
{
    {
        // A heap profile: given with -heap, or as the file itself (gzip).
        FILE *f = fopen(in, "rb");
        bool gz = f != NULL && fgetc(f) == 0x1f && fgetc(f) == 0x8b;
        if (f != NULL)
            fclose(f);
        const char *prof = heap != NULL ? heap : gz ? in : NULL;
        if (prof != NULL) {
            heapHtml = tmpfile();
            if (heapHtml == NULL)
                return fail("cannot make a temporary file: %s", strerror(errno));
            if (pprof_htmlSection(heapHtml, prof) != 0)
                return 1;
            if (prof == in)
                return heapReport(in, out);
        }
    }
    size_t len;
    char *data = readFile(in, &len);
    if (data == NULL)
        return 1;
    int rc;
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r'))
        i++;
    // GOMEM_STATS=1 writes a line "gomem stats:" before the JSON, on a
    // stderr that may hold the program's own lines too: start after it.
    const char *mark = "gomem stats:\n";
    char *at = i < len && data[i] != '{' ? memmem(data, len, mark, strlen(mark)) : NULL;
    if (at != NULL) {
        i = (size_t)(at - data) + strlen(mark);
        while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r'))
            i++;
    }
    if (len >= 8 && memcmp(data, "GOMEMTRC", 8) == 0)
        rc = traceReport(in, data, len, out);
    else if (i < len && data[i] == '{')
        rc = statsReport(in, data + i, len - i, out);
    else if (len == 0)
        rc = fail("'%s' is empty: not a gomem trace or statistics file", in);
    else
        rc = fail("'%s' is not a gomem trace (no GOMEMTRC header) or statistics file (JSON)", in);
    free(data);
    return rc;
}

// ------------------------------------------------------------ bench report

// CSV written by bench/report.sh: benchmark,allocator,metric,unit,min,median,runs
typedef struct {
    char bench[64], alloc[32], metric[32], unit[16];
    double min, median;
    int runs;
} benchRow;

int bench_report_main(const char *in, const char *out)
{
    size_t len;
    char *data = readFile(in, &len);
    if (data == NULL)
        return 1;
    size_t cap = 64, n = 0;
    benchRow *rows = malloc(cap * sizeof *rows);
    int line = 0;
    char *save = NULL;
    for (char *l = strtok_r(data, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        line++;
        if (line == 1) {
            if (strncmp(l, "benchmark,allocator,metric,unit,min,median,runs", 47) != 0) {
                free(rows);
                free(data);
                return fail("'%s' is not a gomem benchmark CSV (header 'benchmark,allocator,metric,unit,min,median,"
                            "runs' expected)",
                            in);
            }
            continue;
        }
        if (n == cap) {
            cap *= 2;
            benchRow *nr = realloc(rows, cap * sizeof *rows);
            if (nr == NULL)
                break;
            rows = nr;
        }
        benchRow *r = &rows[n];
        if (sscanf(l, "%63[^,],%31[^,],%31[^,],%15[^,],%lf,%lf,%d", r->bench, r->alloc, r->metric, r->unit, &r->min,
                   &r->median, &r->runs) != 7) {
            free(rows);
            free(data);
            return fail("'%s' line %d is malformed: '%s'", in, line, l);
        }
        n++;
    }
    if (n == 0) {
        free(rows);
        free(data);
        return fail("'%s' has no results", in);
    }
    outFile w;
    if (outOpen(&w, out) != 0) {
        free(rows);
        free(data);
        return 1;
    }
    FILE *o = w.f;
    pageStart(o, "gomem benchmarks beside the peers", in);
    fputs("<p>Each bar is the minimum over the runs (the median is in the table below). Lower is better.</p>\n", o);
    // One chart per (metric), benchmarks as groups, allocators as bars.
    char metrics[16][48];
    int nm = 0;
    for (size_t i = 0; i < n; i++) {
        char key[48];
        snprintf(key, sizeof key, "%s (%s)", rows[i].metric, rows[i].unit);
        int k = 0;
        while (k < nm && strcmp(metrics[k], key) != 0)
            k++;
        if (k == nm && nm < 16)
            snprintf(metrics[nm++], sizeof metrics[0], "%s", key);
    }
    for (int m = 0; m < nm; m++) {
        const char *groups[64], *bars[16];
        int ng = 0, nb = 0;
        double vals[64 * 16] = { 0 };
        for (size_t i = 0; i < n; i++) {
            char key[48];
            snprintf(key, sizeof key, "%s (%s)", rows[i].metric, rows[i].unit);
            if (strcmp(key, metrics[m]) != 0)
                continue;
            int g = 0, b = 0;
            while (g < ng && strcmp(groups[g], rows[i].bench) != 0)
                g++;
            if (g == ng && ng < 64)
                groups[ng++] = rows[i].bench;
            while (b < nb && strcmp(bars[b], rows[i].alloc) != 0)
                b++;
            if (b == nb && nb < 16)
                bars[nb++] = rows[i].alloc;
            if (g < 64 && b < 16)
                vals[g * 16 + b] = rows[i].min;
        }
        double packed[64 * 16], lo = 0, hi = 0;
        for (int g = 0; g < ng; g++)
            for (int b = 0; b < nb; b++) {
                double v = packed[g * nb + b] = vals[g * 16 + b];
                if (v > 0 && (lo == 0 || v < lo))
                    lo = v;
                hi = v > hi ? v : hi;
            }
        bool bytes = strstr(metrics[m], "(bytes)") != NULL;
        if (hi > 50 * lo) { // scales too far apart for one axis: a chart per benchmark
            for (int g = 0; g < ng; g++) {
                char id[32], title[1024];
                snprintf(id, sizeof id, "metric-%d-%d", m, g);
                snprintf(title, sizeof title, "%s: %s", groups[g], metrics[m]);
                barChart(o, id, title, &groups[g], 1, bars, nb, &packed[g * nb], bytes);
            }
        } else {
            char id[32];
            snprintf(id, sizeof id, "metric-%d", m);
            barChart(o, id, metrics[m], groups, ng, bars, nb, packed, bytes);
        }
    }
    fputs("<h2>All results</h2>\n<table><tr><th>benchmark</th><th>allocator</th><th>metric</th><th>min</th>"
          "<th>median</th><th>runs</th></tr>\n",
          o);
    for (size_t i = 0; i < n; i++) {
        fputs("<tr><th>", o);
        htmlEscape(o, rows[i].bench);
        fputs("</th><td>", o);
        htmlEscape(o, rows[i].alloc);
        fputs("</td><td>", o);
        htmlEscape(o, rows[i].metric);
        fprintf(o, " (%s)</td><td>%g</td><td>%g</td><td>%d</td></tr>\n", rows[i].unit, rows[i].min, rows[i].median,
                rows[i].runs);
    }
    fputs("</table>\n</body></html>\n", o);
    free(rows);
    free(data);
    return outClose(&w);
}
