// SPDX-License-Identifier: MIT
//
// examples/httpd.c as a client sees it: the server is started as its own
// process ($BUILD/examples/httpd, as make test builds it; a short idle
// timeout, port 0), and a scripted client of plain blocking sockets checks
// the routes' exact bodies, keep-alive and Connection: close, pipelined
// requests answered in order, a client sending a byte at a time, the
// limits (400, 413, 414, 431, 501, 505), bodies consumed exactly (a body
// longer than its Content-Length is a bad next request), clients that
// disconnect mid-request and mid-response, and many connections that never
// send, closed by the idle timeout. Then SIGTERM: the server must exit 0
// and report gm_stats' heap objects, stack bytes and saved-stack bytes
// back at their values from before it served (it prints them at shutdown:
// the only moment no connection holds anything, so a /stats route could
// never see the baseline). Everything runs on one worker, then on two.
// Last, with an idle timeout of a minute, SIGTERM must close a connection
// waiting between requests and one stopped inside a head at once.
//
// HTTPD_TEST_IDLE_CONNS sets how many silent connections (default 1000;
// 10000 by hand, as bench/http.sh's largest wrk run).
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "testing.h"

enum { Depth = 16, IdleMs = 500 };

static struct sockaddr_in server_addr;
static pid_t server_pid;
static FILE *server_out;
static char page[1024], deep_body[1024];

// The expected bodies, computed here independently of the server's code:
// the page's letters; the nested sections, opened in order and closed in
// reverse, after a line that gives their length.
static void expected_bodies(void)
{
    for (size_t i = 0; i < sizeof page; i++)
        page[i] = i % 64 == 63 ? '\n' : (char)('a' + (i % 64 + i / 64) % 26);
    char text[1024];
    int n = 0;
    for (int d = 0; d < Depth; d++)
        n += snprintf(text + n, sizeof text - (size_t)n, "<div id=s%d>\n", d);
    n += snprintf(text + n, sizeof text - (size_t)n, "leaf\n");
    for (int d = 0; d < Depth; d++)
        n += snprintf(text + n, sizeof text - (size_t)n, "</div>\n");
    int h = snprintf(deep_body, sizeof deep_body, "depth %d bytes %d\n%s", Depth, n, text);
    memcpy(deep_body + h, page + h, sizeof deep_body - (size_t)h);
}

// Starts the server on `workers` workers, closing connections idle for
// idle_ms; 0 if it did not say where it listens.
static int start_server(int workers, int idle_ms)
{
    int p[2];
    if (pipe(p) != 0)
        return 0;
    fflush(NULL);
    server_pid = fork();
    if (server_pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        const char *build = getenv("BUILD");
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "exec %s %s/examples/httpd -i %d 0 %d", test_runner(), build ? build : "build",
                 idle_ms, workers);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    server_out = fdopen(p[0], "r");
    char line[512];
    int port = 0;
    if (server_out == NULL || fgets(line, sizeof line, server_out) == NULL)
        return 0;
    char *at = strstr(line, "127.0.0.1:");
    if (at != NULL)
        port = atoi(at + 10);
    server_addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return port > 0;
}

// A connection with reads that give up after 10 s (a stuck server fails
// the check instead of hanging the test).
static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

// The client's side of a connection: what it has read and not yet parsed.
typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
} client;

typedef struct {
    int status;
    int close;        // the response said Connection: close
    size_t body_len;
    char body[4096];
} response;

// Reads one response. Returns 1, or 0 if the connection ended or the
// response is malformed.
static int read_response(client *c, response *r)
{
    for (;;) {
        char *end = c->len > 0 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end != NULL) {
            size_t head = (size_t)(end + 4 - c->buf);
            char save = end[2];
            end[2] = 0;
            r->status = strncmp(c->buf, "HTTP/1.", 7) == 0 ? atoi(c->buf + 9) : 0;
            char *cl = strcasestr(c->buf, "\r\nContent-Length:");
            r->close = strcasestr(c->buf, "\r\nConnection: close") != NULL;
            end[2] = save;
            if (r->status == 0 || cl == NULL)
                return 0;
            r->body_len = (size_t)atol(cl + 17);
            if (r->body_len > sizeof r->body)
                return 0;
            while (c->len < head + r->body_len) {
                ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
                if (n <= 0)
                    return 0;
                c->len += (size_t)n;
            }
            memcpy(r->body, c->buf + head, r->body_len);
            memmove(c->buf, c->buf + head + r->body_len, c->len - head - r->body_len);
            c->len -= head + r->body_len;
            return 1;
        }
        if (c->len == sizeof c->buf)
            return 0;
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n <= 0)
            return 0;
        c->len += (size_t)n;
    }
}

// Whether the server closed the connection (EOF or a reset, nothing more to read).
static int closed_by_server(client *c)
{
    char b[64];
    ssize_t n = c->len == 0 ? recv(c->fd, b, sizeof b, 0) : 1;
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int body_is(const response *r, const char *want, size_t n)
{
    return r->body_len == n && memcmp(r->body, want, n) == 0;
}

static client *new_client(void)
{
    client *c = malloc(sizeof *c);
    c->fd = dial();
    c->len = 0;
    return c;
}

static void end_client(client *c)
{
    close(c->fd);
    free(c);
}

// One request on a connection of its own: the response's status and body.
static int get(const char *req, response *r)
{
    client *c = new_client();
    int ok = c->fd >= 0 && send_str(c->fd, req) == 0 && read_response(c, r);
    end_client(c);
    return ok;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static response r;

TEST(routes)
{
    CHECK(get(GET("/"), &r) && r.status == 200 && body_is(&r, page, sizeof page) && !r.close);
    CHECK(get(GET("/deep"), &r) && r.status == 200 && body_is(&r, deep_body, sizeof deep_body));
    CHECK(get(GET("/deep?x=1"), &r) && r.status == 200 && body_is(&r, deep_body, sizeof deep_body));
    CHECK(get(GET("/sleep"), &r) && r.status == 200 && body_is(&r, "slept 1ms\n", 10));
    CHECK(get(GET("/nope"), &r) && r.status == 404 && body_is(&r, "404 page not found\n", 19));
    CHECK(get("POST / HTTP/1.1\r\nHost: t\r\n\r\n", &r) && r.status == 405);
    CHECK(get("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", &r) && r.status == 405);
}

TEST(keepalive)
{
    client *c = new_client();
    int bad = 0;
    for (int i = 0; i < 20; i++) {
        const char *req = i % 3 == 0 ? GET("/") : i % 3 == 1 ? GET("/deep") : GET("/sleep");
        TALLY(bad, send_str(c->fd, req) == 0 && read_response(c, &r) && r.status == 200 && !r.close, "request %d", i);
    }
    CHECK_EQ(bad, 0);
    CHECK(send_str(c->fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") == 0);
    CHECK(read_response(c, &r) && r.status == 200 && r.close && body_is(&r, page, sizeof page));
    CHECK(closed_by_server(c));
    end_client(c);

    // HTTP/1.0 closes unless it asks for keep-alive.
    c = new_client();
    CHECK(send_str(c->fd, "GET / HTTP/1.0\r\n\r\n") == 0 && read_response(c, &r) && r.status == 200 && r.close);
    CHECK(closed_by_server(c));
    end_client(c);
    c = new_client();
    CHECK(send_str(c->fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0 && read_response(c, &r) &&
          r.status == 200 && !r.close);
    CHECK(send_str(c->fd, "GET /deep HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") == 0 && read_response(c, &r) &&
          body_is(&r, deep_body, sizeof deep_body));
    end_client(c);
}

// Several requests in one write: the responses come back in order, also
// when one handler parks (/sleep) and a later one would be quicker.
TEST(pipelined)
{
    client *c = new_client();
    CHECK(send_str(c->fd, GET("/sleep") GET("/") GET("/nope") GET("/deep") GET("/sleep") GET("/")) == 0);
    int ok = read_response(c, &r) && r.status == 200 && body_is(&r, "slept 1ms\n", 10);
    ok = ok && read_response(c, &r) && r.status == 200 && body_is(&r, page, sizeof page);
    ok = ok && read_response(c, &r) && r.status == 404;
    ok = ok && read_response(c, &r) && r.status == 200 && body_is(&r, deep_body, sizeof deep_body);
    ok = ok && read_response(c, &r) && r.status == 200 && body_is(&r, "slept 1ms\n", 10);
    ok = ok && read_response(c, &r) && r.status == 200 && body_is(&r, page, sizeof page);
    CHECK(ok);
    end_client(c);

    // 300 in one write (more than the server's read buffer holds), read
    // only after all are sent: the server's writes wait for this reader.
    c = new_client();
    char *burst = malloc(300 * sizeof GET("/sleep")), *end = burst;
    for (int i = 0; i < 300; i++)
        end = stpcpy(end, i % 2 ? GET("/deep") : GET("/sleep"));
    CHECK(send_all(c->fd, burst, (size_t)(end - burst)) == 0);
    int bad = 0;
    for (int i = 0; i < 300; i++)
        TALLY(bad, read_response(c, &r) && r.status == 200 &&
                       (i % 2 ? body_is(&r, deep_body, sizeof deep_body) : body_is(&r, "slept 1ms\n", 10)),
              "response %d", i);
    CHECK_EQ(bad, 0);
    free(burst);
    end_client(c);
}

// A byte at a time, with a pause after each: the server reads and parses
// the partial head as often as it comes, and answers once it is whole.
TEST(slow_client)
{
    client *c = new_client();
    const char *req = "GET /deep HTTP/1.1\r\nHost: t\r\nUser-Agent: slow\r\n\r\n";
    int sent = 0;
    for (const char *p = req; *p != 0; p++) {
        sent += send_all(c->fd, p, 1) == 0;
        usleep(2000);
    }
    CHECK_EQ(sent, strlen(req));
    CHECK(read_response(c, &r) && r.status == 200 && body_is(&r, deep_body, sizeof deep_body));
    CHECK(send_str(c->fd, GET("/")) == 0 && read_response(c, &r) && r.status == 200);
    end_client(c);
}

// A bad request gets its status, Connection: close, and the close.
static int rejected(const char *req, size_t n, int status)
{
    client *c = new_client();
    int ok = c->fd >= 0 && send_all(c->fd, req, n) == 0 && read_response(c, &r) && r.status == status && r.close &&
             closed_by_server(c);
    if (!ok)
        fprintf(stderr, "    want %d, got %d for \"%.40s\"\n", status, r.status, req);
    end_client(c);
    return ok;
}

#define REJECTED(req, status) rejected((req), strlen(req), (status))

TEST(malformed)
{
    CHECK(REJECTED("GARBAGE\r\n\r\n", 400));
    CHECK(REJECTED("GET /\r\nHost: t\r\n\r\n", 400));
    CHECK(REJECTED("GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400));
    CHECK(REJECTED("GET nopath HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CHECK(REJECTED("G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CHECK(REJECTED("GET / HTTQ/1.1\r\nHost: t\r\n\r\n", 400));
    CHECK(REJECTED("GET / HTTP/1.1\r\n\r\n", 400)); // no Host
    CHECK(REJECTED("GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n", 400));
    CHECK(REJECTED("GET / HTTP/1.1\r\nHost: t\r\n folded: line\r\n\r\n", 400));
    CHECK(REJECTED("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 12x\r\n\r\n", 400));
    CHECK(REJECTED("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400));
    CHECK(REJECTED("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505));
    CHECK(REJECTED("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501));
}

TEST(limits)
{
    size_t n = 9000;
    char *big = malloc(n + 200);
    // A request line of 5000 bytes: 414, before its end arrives too.
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', 5000);
    CHECK(rejected(big, 5005, 414));
    strcpy(big + 5005, " HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(REJECTED(big, 414));
    // 100 header lines: 431.
    size_t k = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 100; i++)
        k += (size_t)sprintf(big + k, "X-%d: v\r\n", i);
    strcpy(big + k, "\r\n");
    CHECK(REJECTED(big, 431));
    // One header of 9000 bytes: 431.
    k = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(big + k, 'b', n - k);
    strcpy(big + n, "\r\n\r\n");
    CHECK(REJECTED(big, 431));
    // 64 headers and 8 KiB in all are still served.
    k = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 62; i++)
        k += (size_t)sprintf(big + k, "X-%02d: %0100d\r\n", i, i);
    strcpy(big + k, "\r\n");
    CHECK(get(big, &r) && r.status == 200);
    // A body over 1 MiB: 413 without reading it (the server drains what
    // comes for a moment, so the response is not lost to a reset).
    CHECK(REJECTED("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\nsome of it", 413));
    CHECK(REJECTED("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n", 413));
    free(big);
}

// Content-Length bodies are consumed exactly: what follows is the next
// request.
TEST(bodies)
{
    client *c = new_client();
    CHECK(send_str(c->fd, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello" GET("/")) == 0);
    CHECK(read_response(c, &r) && r.status == 405 && !r.close);
    CHECK(read_response(c, &r) && r.status == 200 && body_is(&r, page, sizeof page));
    // A body of 100 KiB, larger than the read buffer, arriving in parts.
    size_t n = 100 << 10;
    char *body = malloc(n);
    memset(body, 'z', n);
    CHECK(send_str(c->fd, "GET /deep HTTP/1.1\r\nHost: t\r\nContent-Length: 102400\r\n\r\n") == 0);
    CHECK(send_all(c->fd, body, n / 2) == 0);
    usleep(10000);
    CHECK(send_all(c->fd, body + n / 2, n - n / 2) == 0);
    CHECK(read_response(c, &r) && r.status == 200 && body_is(&r, deep_body, sizeof deep_body));
    CHECK(send_str(c->fd, GET("/sleep")) == 0 && read_response(c, &r) && r.status == 200);
    free(body);
    end_client(c);

    // A body longer than its Content-Length: the rest is the next request,
    // which is malformed.
    c = new_client();
    CHECK(send_str(c->fd, "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcdefgh\r\n\r\n") == 0);
    CHECK(read_response(c, &r) && r.status == 200 && body_is(&r, page, sizeof page) && !r.close);
    CHECK(read_response(c, &r) && r.status == 400 && r.close);
    CHECK(closed_by_server(c));
    end_client(c);
}

// Clients that go away: in the head, in the body, with responses unread
// (RST: SO_LINGER 0), in the middle of a burst the server is still
// answering. The server goes on serving.
TEST(disconnects)
{
    static const char *partial[] = { "GET /dee", "GET / HTTP/1.1\r\nHost: t\r\nX-A: b",
                                      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789",
                                      GET("/sleep"), GET("/deep") GET("/deep") GET("/sleep") };
    int bad = 0;
    for (int reset = 0; reset < 2; reset++)
        for (size_t i = 0; i < sizeof partial / sizeof *partial; i++) {
            client *c = new_client();
            TALLY(bad, send_str(c->fd, partial[i]) == 0, "send %zu", i);
            if (reset) {
                struct linger l = { 1, 0 };
                setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            }
            end_client(c);
        }
    CHECK_EQ(bad, 0);
    // Mid-response: 3000 requests (3 MiB of responses) in one write, and
    // the reset after the first response was read.
    client *c = new_client();
    size_t one = sizeof GET("/") - 1, n = 3000 * one;
    char *burst = malloc(n);
    for (int i = 0; i < 3000; i++)
        memcpy(burst + (size_t)i * one, GET("/"), one);
    CHECK(send_all(c->fd, burst, n) == 0);
    CHECK(read_response(c, &r) && r.status == 200);
    struct linger l = { 1, 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    end_client(c);
    free(burst);
    CHECK(get(GET("/deep"), &r) && r.status == 200 && body_is(&r, deep_body, sizeof deep_body));
}

// Connections that connect and never send, and one that stops in the
// middle of a head: each is closed once idle for the timeout.
TEST(idle)
{
    const char *env = getenv("HTTPD_TEST_IDLE_CONNS");
    int n = env != NULL ? atoi(env) : 1000;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)n + 64 > rl.rlim_cur)
        n = (int)rl.rlim_cur - 64;
    struct pollfd *fds = calloc((size_t)n + 1, sizeof *fds);
    int bad = 0;
    for (int i = 0; i <= n; i++) {
        fds[i].fd = dial();
        fds[i].events = POLLIN;
        TALLY(bad, fds[i].fd >= 0, "connection %d", i);
    }
    CHECK_EQ(bad, 0);
    CHECK(send_str(fds[n].fd, "GET / HTTP/1.1\r\nHo") == 0);
    // Every one ends (EOF); the test gives up after a minute (far more
    // than the idle timeout: it bounds a hang, it times nothing).
    int open = n + 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (t1 = t0; open > 0 && t1.tv_sec - t0.tv_sec < 60; clock_gettime(CLOCK_MONOTONIC, &t1)) {
        if (poll(fds, (nfds_t)n + 1, 100) < 0)
            break;
        for (int i = 0; i <= n; i++)
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                char b[16];
                TALLY(bad, recv(fds[i].fd, b, sizeof b, 0) <= 0, "connection %d got bytes", i);
                close(fds[i].fd);
                fds[i].fd = -1;
                open--;
            }
    }
    CHECK_EQ(open, 0);
    CHECK_EQ(bad, 0);
    for (int i = 0; i <= n; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    free(fds);
}

// SIGTERM: the server stops accepting, its connections close, and it
// reports its gm_stats back at the baseline.
static void shutdown_server(void)
{
    kill(server_pid, SIGTERM);
    char line[1024], all[4096] = "";
    while (fgets(line, sizeof line, server_out) != NULL)
        if (strlen(all) + strlen(line) < sizeof all)
            strcat(all, line);
    fclose(server_out);
    int status = 0;
    waitpid(server_pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(all, "shut down by SIGTERM") != NULL);
    CHECK(strstr(all, ": at baseline") != NULL);
    const char *stats = strstr(all, "httpd: gm_stats");
    printf("    %s", stats != NULL ? stats : all);
}

// With an idle timeout of a minute, SIGTERM must still close a connection
// waiting between requests, and one in the middle of a head, at once: the
// client's reads give up after 10 s (a bound, not a timing).
TEST(prompt_shutdown)
{
    CHECK(start_server(2, 60000));
    client *idle = new_client(), *partial = new_client();
    CHECK(send_str(idle->fd, GET("/")) == 0 && read_response(idle, &r) && r.status == 200 && !r.close);
    CHECK(send_str(partial->fd, "GET /deep HTTP/1.1\r\n") == 0);
    CHECK(get(GET("/sleep"), &r) && r.status == 200); // both are open and parked by now
    kill(server_pid, SIGTERM);
    CHECK(closed_by_server(idle));
    CHECK(closed_by_server(partial));
    shutdown_server();
    end_client(idle);
    end_client(partial);
}

TEST(one_worker)
{
    CHECK(start_server(1, IdleMs));
}

TEST(two_workers)
{
    CHECK(start_server(2, IdleMs));
}

TEST(shutdown)
{
    shutdown_server();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    expected_bodies();
    RUN(one_worker);
    RUN(routes);
    RUN(keepalive);
    RUN(pipelined);
    RUN(slow_client);
    RUN(malformed);
    RUN(limits);
    RUN(bodies);
    RUN(disconnects);
    RUN(idle);
    RUN(shutdown);
    RUN(two_workers);
    RUN(routes);
    RUN(keepalive);
    RUN(pipelined);
    RUN(slow_client);
    RUN(malformed);
    RUN(limits);
    RUN(bodies);
    RUN(disconnects);
    RUN(idle);
    RUN(shutdown);
    RUN(prompt_shutdown);
    return test_report();
}
