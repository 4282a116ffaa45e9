// SPDX-License-Identifier: MIT
//
// An HTTP/1.1 server the way a Go programmer writes one with net/http: one
// coroutine per connection, keep-alive, request limits, an idle timeout,
// and a clean shutdown on SIGINT or SIGTERM. bench/http.sh runs it under
// wrk beside the same server written with Go's net/http (bench/go/httpd.go).
//
//   build/examples/httpd [-i IDLE_MS] PORT [WORKERS]
//
// PORT 0 takes a free port (printed); WORKERS defaults to GOMEM_PROCS, else
// the CPUs; IDLE_MS (default 30000) closes a connection that sent nothing
// for that long, between requests or inside one. Routes, GET only (any
// other method: 405):
//   /       a fixed 1 KiB body
//   /deep   renders 16 nested template sections, each in a 1 KiB buffer of
//           its own frame: about 16 KiB of stack frames deep (printed at
//           start), then answers with the text at the head of a 1 KiB body
//   /sleep  parks on a 1 ms timer (gm_sleep), then answers
//   else    404
//
// The connection's frames stay shallow while it waits: the idle wait is in
// handle(), whose frame holds no buffer, and the read buffer (gm_malloc)
// is freed whenever it holds no unread byte, so a parked connection costs
// its small saved frames (copied stack mode) and no heap. A request is
// parsed from the buffer only once its head is complete; every complete
// request in the buffer is answered, in order, before the next read
// (pipelining); a request's Content-Length body is consumed exactly, so
// bytes past it are the next request. Limits: request line 4 KiB (414),
// head 8 KiB or 64 header lines (431), body 1 MiB (413); a malformed
// request gets 400; an error response closes the connection after
// draining what the client still sends (a reset would lose the response).
//
// Shutdown: the signal cancels root, which ends the accept loop, and
// shuts the read side of every open connection: each closes after the
// request it is serving (answered with Connection: close). Then the
// process prints its counters and whether gm_stats' heap objects, stack
// bytes and saved-stack bytes are back where they were before gm_main
// (tests/httpd_test.c checks that line).
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gomem.h"

#define MS 1000000LL

enum {
    MaxRequestLine = 4096,  // bytes, CRLF included: longer is 414
    MaxHeadBytes = 8192,    // request line and header lines: more is 431
    MaxHeaders = 64,        // header lines: more is 431
    BufSize = 4096,         // the read buffer to start with; grows to hold a head up to MaxHeadBytes
    LingerBytes = 256 << 10,// after an error response, bytes read and dropped before the close
};
#define MaxBody (1L << 20) // Content-Length above this is 413

static int64_t idle_ns = 30000 * MS;
static int listen_fd, signal_fd, nworkers;
static gm_ctx *root; // cancelled on SIGINT / SIGTERM
static atomic_bool stopping;
static gm_waitgroup handlers = GM_WAITGROUP_INIT;
static atomic_long n_conns, n_requests, n_idle, n_errors;
// Which descriptors are open connections, indexed by fd (as many as the
// open-file limit): the shutdown ends their reads (shutdown(SHUT_RD)), so
// a connection waiting between requests closes at once, not at its idle
// deadline (Go's Server.Close closes them too).
static atomic_uchar *conn_open;
static size_t conn_open_len;

// ------------------------------------------------------------- the routes

static char page[1024]; // GET /'s body: 16 lines of 63 letters and a newline

static void fill_page(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = i % 64 == 63 ? '\n' : (char)('a' + (i % 64 + i / 64) % 26);
}

// ------------------------------------------------------------ the protocol

typedef struct {
    int fd;
    char *buf;         // gm_malloc'd while it holds unread bytes, else NULL
    size_t cap;        // bytes at buf
    size_t off, len;   // unread bytes: buf[off, len)
} conn;

typedef struct {
    const char *method, *target; // into the connection's buffer, not terminated
    size_t method_len, target_len;
    int minor;                   // HTTP/1.minor
    int keep_alive;              // 1.1 unless "Connection: close"; 1.0 only with "keep-alive"
    long content_length;
} request;

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Request Entity Too Large";
    case 414: return "Request URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

// The Date header's value, formatted once a second per thread.
static const char *http_date(void)
{
    static _Thread_local time_t last;
    static _Thread_local char text[40];
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return text;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_uint(char *p, unsigned long v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        *p++ = digits[--n];
    return p;
}

// GET /deep: renders a page of Depth nested sections the way a template
// engine does: each section puts its opening tag in a line buffer of its
// own frame, renders the sections inside it after that, closes, and hands
// its text to its parent. Depth frames of about 1 KiB: some 16 KiB of
// stack below the handler (printed at start), for little work (the
// rendered text is about 330 bytes), so the route measures what depth
// costs rather than what a computation costs.
enum { Depth = 16, SectionBuf = 1000 };
_Static_assert(Depth * 24 + 8 < SectionBuf, "a section's text fits its buffer");

// Renders section level and those inside it into out; returns the length.
// *deepest gets the lowest stack address reached.
static size_t render_section(unsigned level, char *out, uintptr_t *deepest)
{
    char buf[SectionBuf];
    if ((uintptr_t)buf < *deepest)
        *deepest = (uintptr_t)buf;
    char *p = PUT(buf, "<div id=s");
    p = put_uint(p, level);
    p = PUT(p, ">\n");
    if (level + 1 < Depth)
        p += render_section(level + 1, p, deepest);
    else
        p = PUT(p, "leaf\n");
    p = PUT(p, "</div>\n");
    size_t n = (size_t)(p - buf);
    memcpy(out, buf, n);
    return n;
}

// /deep's body into body (1 KiB): "depth D bytes N\n", the N bytes of the
// rendered sections, then the rest of /'s page. *depth_bytes (if not NULL)
// gets how deep the frames went below here.
static void deep_body(char *body, size_t *depth_bytes)
{
    char text[SectionBuf];
    uintptr_t deepest = (uintptr_t)text;
    size_t n = render_section(0, text, &deepest);
    char *p = PUT(body, "depth ");
    p = put_uint(p, Depth);
    p = PUT(p, " bytes ");
    p = put_uint(p, n);
    *p++ = '\n';
    p = put(p, text, n);
    size_t head = (size_t)(p - body);
    memcpy(p, page + head, sizeof page - head);
    if (depth_bytes != NULL)
        *depth_bytes = (uintptr_t)text - deepest;
}

// Writes one response, head and body in one write. Returns 0, or -1 when
// the client is gone (or did not read for idle_ns). The head is put
// together by hand: snprintf was 40% of the instructions of a GET /.
static int respond(conn *c, int minor, int status, int keep_alive, const char *body, size_t body_len)
{
    char out[256 + 1024], *p = out;
    p = PUT(p, "HTTP/1.");
    *p++ = (char)('0' + minor);
    *p++ = ' ';
    p = put_uint(p, (unsigned long)status);
    *p++ = ' ';
    const char *why = reason(status);
    p = put(p, why, strlen(why));
    p = PUT(p, "\r\nContent-Length: ");
    p = put_uint(p, body_len);
    p = PUT(p, "\r\nContent-Type: text/plain; charset=utf-8\r\nDate: ");
    p = put(p, http_date(), 29);
    p = PUT(p, "\r\n");
    if (status == 405)
        p = PUT(p, "Allow: GET\r\n");
    if (!keep_alive)
        p = PUT(p, "Connection: close\r\n");
    else if (minor == 0)
        p = PUT(p, "Connection: keep-alive\r\n");
    p = PUT(p, "\r\n");
    size_t head = (size_t)(p - out);
    if (head + body_len <= sizeof out) {
        memcpy(out + head, body, body_len);
        return gm_write_until(c->fd, out, head + body_len, gm_deadline(idle_ns)) == (ssize_t)(head + body_len)
                   ? 0 : -1;
    }
    if (gm_write_until(c->fd, out, head, gm_deadline(idle_ns)) != (ssize_t)head)
        return -1;
    return gm_write_until(c->fd, body, body_len, gm_deadline(idle_ns)) == (ssize_t)body_len ? 0 : -1;
}

static int is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

// Whether the comma-separated list v[0, n) holds token (any case).
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t e = j;
        while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - i == tl && strncasecmp(v + i, tok, tl) == 0)
            return 1;
        i = j;
    }
    return 0;
}

// The end of the line that starts at p (its '\n' + 1), and its length
// without CRLF or LF; NULL when no '\n' is in [p, end).
static const char *line_end(const char *p, const char *end, size_t *len)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
        return NULL;
    *len = (size_t)(nl - p) - (nl > p && nl[-1] == '\r');
    return nl + 1;
}

// Parses the head at p[0, n). Returns its length once it is complete, 0 when
// more bytes are needed, or minus the status of the error response.
static long parse_head(const char *p, size_t n, request *rq)
{
    const char *end = p + n, *q;
    size_t len;
    if ((q = line_end(p, end, &len)) == NULL)
        return n >= MaxRequestLine ? -414 : 0;
    if ((size_t)(q - p) > MaxRequestLine)
        return -414;
    // METHOD SP target SP HTTP/1.x
    const char *sp1 = memchr(p, ' ', len), *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - p)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1)
        return -400;
    rq->method = p;
    rq->method_len = (size_t)(sp1 - p);
    rq->target = sp1 + 1;
    rq->target_len = (size_t)(sp2 - sp1 - 1);
    for (size_t i = 0; i < rq->method_len; i++)
        if (!is_tchar(p[i]))
            return -400;
    for (size_t i = 0; i < rq->target_len; i++)
        if ((unsigned char)rq->target[i] <= ' ' || rq->target[i] == 0x7f)
            return -400;
    const char *v = sp2 + 1;
    size_t vlen = len - (size_t)(v - p);
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' || v[7] > '9')
        return -400;
    if (v[5] != '1')
        return -505;
    rq->minor = v[7] - '0';
    if (rq->target[0] != '/')
        return -400;
    rq->keep_alive = rq->minor >= 1;
    rq->content_length = 0;
    int nheaders = 0, host = 0, has_length = 0;
    for (p = q;; p = q) {
        if ((q = line_end(p, end, &len)) == NULL)
            return n > MaxHeadBytes ? -431 : 0;
        if ((size_t)(q - (end - n)) > MaxHeadBytes)
            return -431;
        if (len == 0)
            break; // the blank line ends the head
        if (++nheaders > MaxHeaders)
            return -431;
        const char *colon = memchr(p, ':', len);
        if (colon == NULL || colon == p)
            return -400;
        size_t nlen = (size_t)(colon - p);
        for (size_t i = 0; i < nlen; i++)
            if (!is_tchar(p[i]))
                return -400; // also a folded line (leading space), which RFC 9112 rejects
        const char *val = colon + 1, *vend = p + len;
        while (val < vend && (*val == ' ' || *val == '\t'))
            val++;
        while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        size_t valn = (size_t)(vend - val);
        if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            long cl = 0;
            if (valn == 0 || valn > 18)
                return valn > 18 ? -413 : -400;
            for (size_t i = 0; i < valn; i++) {
                if (val[i] < '0' || val[i] > '9')
                    return -400;
                cl = cl * 10 + (val[i] - '0');
            }
            if (has_length && cl != rq->content_length)
                return -400;
            has_length = 1;
            rq->content_length = cl;
        } else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
            if (has_token(val, valn, "close"))
                rq->keep_alive = 0;
            else if (has_token(val, valn, "keep-alive"))
                rq->keep_alive = 1;
        } else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
            return -501; // chunked bodies are not read here
        } else if (nlen == 4 && strncasecmp(p, "Host", 4) == 0) {
            host = 1;
        }
    }
    if (rq->minor >= 1 && !host)
        return -400; // HTTP/1.1 requires Host (Go's net/http says the same)
    if (rq->content_length > MaxBody)
        return -413;
    return (long)(q - (end - n));
}

// Reads more bytes into c's buffer (allocating or growing it), waiting at
// most idle_ns. Returns the count, 0 at EOF, -1 on error or timeout.
static ssize_t fill(conn *c)
{
    if (c->buf == NULL) {
        if ((c->buf = gm_malloc(BufSize)) == NULL)
            return -1;
        c->cap = BufSize;
        c->off = c->len = 0;
    } else if (c->off > 0) { // the unread part to the front
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == c->cap) { // a head that does not fit yet
        size_t cap = c->cap * 2 > MaxHeadBytes + 1024 ? MaxHeadBytes + 1024 : c->cap * 2;
        char *b = cap > c->cap ? gm_realloc(c->buf, cap) : NULL;
        if (b == NULL)
            return -1;
        c->buf = b;
        c->cap = cap;
    }
    ssize_t n = gm_read_until(c->fd, c->buf + c->len, c->cap - c->len, gm_deadline(idle_ns));
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

// Gives the buffer back when nothing in it is unread.
static void release(conn *c)
{
    if (c->buf != NULL && c->off == c->len) {
        gm_free(c->buf);
        c->buf = NULL;
        c->off = c->len = c->cap = 0;
    }
}

// Reads and drops up to remaining bytes of a body. Returns 0, or -1 if the
// client closed or stalled first.
static int skip_body(conn *c, long remaining)
{
    for (;;) {
        size_t have = c->len - c->off, take = have < (size_t)remaining ? have : (size_t)remaining;
        c->off += take;
        remaining -= (long)take;
        if (remaining == 0)
            return 0;
        c->off = c->len = 0; // all of it was body
        if (fill(c) <= 0)
            return -1;
    }
}

// After an error response: no more responses, so the write side closes;
// what the client still sends is read and dropped for a moment, so that
// the close does not reset the connection before the client read the
// response (as Go's closeWriteAndWait).
static void linger(conn *c)
{
    char sink[512];
    shutdown(c->fd, SHUT_WR);
    int64_t until = gm_deadline(idle_ns < 500 * MS ? idle_ns : 500 * MS);
    for (long got = 0; got < LingerBytes;) {
        ssize_t n = gm_read_until(c->fd, sink, sizeof sink, until);
        if (n <= 0)
            break;
        got += n;
    }
}

static int route_root(conn *c, const request *rq, int keep_alive)
{
    return respond(c, rq->minor, 200, keep_alive, page, sizeof page);
}

static int route_deep(conn *c, const request *rq, int keep_alive)
{
    char body[sizeof page];
    deep_body(body, NULL);
    return respond(c, rq->minor, 200, keep_alive, body, sizeof body);
}

static int route_sleep(conn *c, const request *rq, int keep_alive)
{
    gm_sleep(1 * MS);
    static const char body[] = "slept 1ms\n";
    return respond(c, rq->minor, 200, keep_alive, body, sizeof body - 1);
}

static int path_is(const request *rq, const char *path)
{
    size_t n = rq->target_len, pl = strlen(path);
    const char *query = memchr(rq->target, '?', n);
    if (query != NULL)
        n = (size_t)(query - rq->target);
    return n == pl && memcmp(rq->target, path, n) == 0;
}

// Answers one parsed request (its head already consumed, its body not).
// Returns 1 to go on with the connection, 0 to close it.
static int serve(conn *c, const request *rq)
{
    int (*route)(conn *, const request *, int) = NULL;
    int status = 0;
    if (rq->method_len != 3 || memcmp(rq->method, "GET", 3) != 0)
        status = 405;
    else if (path_is(rq, "/"))
        route = route_root;
    else if (path_is(rq, "/deep"))
        route = route_deep;
    else if (path_is(rq, "/sleep"))
        route = route_sleep;
    else
        status = 404;
    // The head's text is read; the body goes before the handler runs, so
    // that the buffer can be freed while the handler waits.
    int keep_alive = rq->keep_alive && !atomic_load_explicit(&stopping, memory_order_relaxed);
    if (rq->content_length > 0 && skip_body(c, rq->content_length) != 0)
        return 0;
    release(c);
    atomic_fetch_add_explicit(&n_requests, 1, memory_order_relaxed);
    int r;
    if (route != NULL) {
        r = route(c, rq, keep_alive);
    } else {
        const char *body = status == 404 ? "404 page not found\n" : "method not allowed\n";
        r = respond(c, rq->minor, status, keep_alive, body, strlen(body));
    }
    return r == 0 && keep_alive;
}

// One connection: wait (shallow frames, no buffer) until the client sends,
// then answer every complete request it sent, then wait again.
static void handle(void *arg)
{
    conn c = { .fd = (int)(intptr_t)arg };
    for (;;) {
        if (c.buf == NULL) {
            int r = gm_wait_fd_until(c.fd, GM_FD_READ, gm_deadline(idle_ns));
            if (r < 0) {
                if (errno == ETIMEDOUT)
                    atomic_fetch_add_explicit(&n_idle, 1, memory_order_relaxed);
                break;
            }
        }
        ssize_t n = fill(&c);
        if (n <= 0) {
            if (n < 0 && errno == ETIMEDOUT)
                atomic_fetch_add_explicit(&n_idle, 1, memory_order_relaxed);
            break; // EOF, a reset, or a request left unfinished for idle_ns
        }
        int open = 1;
        while (open && c.buf != NULL && c.off < c.len) {
            request rq;
            long h = parse_head(c.buf + c.off, c.len - c.off, &rq);
            if (h == 0)
                break; // incomplete: read more
            if (h < 0) {
                atomic_fetch_add_explicit(&n_errors, 1, memory_order_relaxed);
                char body[64];
                int bn = snprintf(body, sizeof body, "%s\n", reason((int)-h));
                if (respond(&c, 1, (int)-h, 0, body, (size_t)bn) == 0)
                    linger(&c);
                open = 0;
                break;
            }
            c.off += (size_t)h; // rq points into the buffer: it stays until serve releases it
            open = serve(&c, &rq);
        }
        if (!open)
            break;
    }
    if (c.buf != NULL)
        gm_free(c.buf);
    if ((size_t)c.fd < conn_open_len)
        atomic_store(&conn_open[c.fd], 0);
    close(c.fd);
    gm_waitgroup_done(&handlers);
}

// ---------------------------------------------------------- the server

// SIGINT and SIGTERM arrive on a signalfd: the first cancels root.
static void signals(void *arg)
{
    (void)arg;
    struct signalfd_siginfo si;
    if (gm_read_ctx(signal_fd, &si, sizeof si, root) == (ssize_t)sizeof si) {
        atomic_store(&stopping, 1);
        gm_ctx_cancel(root, (int)si.ssi_signo);
        // A request being served still gets its response (Connection:
        // close); the next read of every connection sees the end.
        for (size_t fd = 0; fd < conn_open_len; fd++)
            if (atomic_load(&conn_open[fd]))
                shutdown((int)fd, SHUT_RD);
    }
}

// Accepts until root is cancelled; the connections go round-robin to the
// workers, where they stay (their coroutines are placed: copied stacks do
// not move).
static void server(void *arg)
{
    (void)arg;
    gm_go(signals, NULL);
    gm_go_options opts = { .name = "httpd conn" };
    for (unsigned long i = 0;; i++) {
        int fd = gm_accept_ctx(listen_fd, NULL, NULL, root);
        if (fd < 0) {
            if (errno == ECANCELED)
                break;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                gm_sleep(10 * MS); // out of descriptors: Go's accept loop also backs off
                continue;
            }
            perror("httpd: accept");
            gm_ctx_cancel(root, errno);
            break;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // as Go's net package does
        atomic_fetch_add_explicit(&n_conns, 1, memory_order_relaxed);
        if ((size_t)fd < conn_open_len)
            atomic_store(&conn_open[fd], 1);
        if (atomic_load(&stopping)) // accepted as the shutdown's scan ran: it may have missed this one
            shutdown(fd, SHUT_RD);
        gm_waitgroup_add(&handlers, 1);
        opts.worker = (int)(i % (unsigned long)nworkers) + 1;
        if (gm_go_opts(handle, (void *)(intptr_t)fd, &opts) == NULL) {
            close(fd);
            gm_waitgroup_done(&handlers);
        }
    }
    close(listen_fd);
    gm_waitgroup_wait(&handlers);
}

// What must be back at its value from before gm_main once every
// connection is closed.
typedef struct {
    uint64_t heap_objects, heap_alloc, stack_bytes, saved_bytes, alive;
} footprint;

static footprint measure(void)
{
    gm_memstats m;
    gm_stats(&m);
    footprint f = { m.heap_objects, m.heap_alloc, m.stack_large_inuse, m.coro_saved_bytes,
                    m.coro_created - m.coro_ended };
    for (uint64_t o = 0; o < m.stack_orders; o++)
        f.stack_bytes += m.stack_order[o].inuse;
    return f;
}

int main(int argc, char **argv)
{
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "-i") == 0) {
        long ms = atol(argv[a + 1]);
        if (ms <= 0) {
            fprintf(stderr, "httpd: -i wants a positive number of milliseconds\n");
            return 2;
        }
        idle_ns = ms * MS;
        a += 2;
    }
    if (a >= argc || argc > a + 2) {
        fprintf(stderr, "usage: httpd [-i IDLE_MS] PORT [WORKERS]\n");
        return 2;
    }
    long port = atol(argv[a]), workers = a + 1 < argc ? atol(argv[a + 1]) : 0;
    if (port < 0 || port > 65535 || workers < 0 || workers > 1024) {
        fprintf(stderr, "httpd: bad port or worker count\n");
        return 2;
    }
    if (workers > 0)
        gm_set_procs((int)workers);
    nworkers = gm_set_procs(0);

    struct rlimit rl; // one descriptor per connection: as many as allowed
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    conn_open_len = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 24) ? rl.rlim_cur : 1u << 24;
    conn_open = calloc(conn_open_len, sizeof *conn_open);
    if (conn_open == NULL)
        conn_open_len = 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL); // the workers inherit the mask: the signals go to the signalfd only
    signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (signal_fd < 0 || listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&sa, &len) != 0 || listen(listen_fd, 4096) != 0) {
        perror("httpd: listen");
        return 1;
    }

    fill_page(page, sizeof page);
    size_t depth_bytes;
    char body[sizeof page];
    deep_body(body, &depth_bytes);
    printf("httpd: listening on 127.0.0.1:%d, %d workers, idle timeout %lld ms; /deep: %d sections, "
           "%zu bytes of stack frames\n",
           ntohs(sa.sin_port), nworkers, (long long)(idle_ns / MS), Depth, depth_bytes);
    fflush(stdout);

    footprint before = measure();
    root = gm_ctx_with_cancel(gm_ctx_background());
    if (root == NULL || gm_main(server, NULL) != 0) {
        perror("httpd");
        return 1;
    }
    int cause = gm_ctx_cause(root);
    gm_ctx_free(root);
    footprint after = measure();
    int same = before.heap_objects == after.heap_objects && before.heap_alloc == after.heap_alloc &&
               before.stack_bytes == after.stack_bytes && before.saved_bytes == after.saved_bytes &&
               after.alive == 0;
    printf("httpd: shut down by %s: %ld connections, %ld requests, %ld closed idle, %ld bad requests\n",
           cause == SIGINT ? "SIGINT" : cause == SIGTERM ? "SIGTERM" : strerror(cause), (long)n_conns,
           (long)n_requests, (long)n_idle, (long)n_errors);
    printf("httpd: gm_stats heap objects %llu -> %llu, heap bytes %llu -> %llu, stack bytes %llu -> %llu, "
           "saved-stack bytes %llu -> %llu, coroutines alive %llu: %s\n",
           (unsigned long long)before.heap_objects, (unsigned long long)after.heap_objects,
           (unsigned long long)before.heap_alloc, (unsigned long long)after.heap_alloc,
           (unsigned long long)before.stack_bytes, (unsigned long long)after.stack_bytes,
           (unsigned long long)before.saved_bytes, (unsigned long long)after.saved_bytes,
           (unsigned long long)after.alive, same ? "at baseline" : "NOT at baseline");
    free(conn_open);
    return cause == SIGINT || cause == SIGTERM ? 0 : 1;
}
