#!/usr/bin/env bash
# examples/httpd.c beside the same server in Go's net/http
# (bench/go/httpd.go), both judged by wrk: for each round, connection
# count and route, a fresh gomem server then a fresh Go server (the order
# alternates by round), each under `wrk -t2 -cN -dD --latency`. Per run:
# requests/s, p50 and p99 latency, socket errors and non-2xx answers, the
# server's peak RSS (VmHWM when wrk ends) and its CPU time per request.
# Then, per route and connection
# count, min/median over the rounds and the ratios gomem / Go of the
# medians (requests/s: above 1 is gomem faster; p99 and RSS: below 1 is
# gomem better).
#   bench/http.sh
# Environment: ROUNDS (3), HTTP_DURATION (10s), HTTP_CONNS ("100 1000
# 10000"), HTTP_ROUTES ("/ /deep /sleep"), HTTP_WORKERS (2: the servers'
# workers / GOMAXPROCS), HTTP_IDLE_MS (30000: both servers' idle timeout).
# Installs Debian's wrk and golang-go when missing (as root). wrk and the
# servers share the machine's cores: the ratios are what to read, and on
# a shared machine even they are indicative only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DUR=${HTTP_DURATION:-10s}
CONNS=${HTTP_CONNS:-100 1000 10000}
ROUTES=${HTTP_ROUTES:-/ /deep /sleep}
WORKERS=${HTTP_WORKERS:-2}
IDLE_MS=${HTTP_IDLE_MS:-30000}
if [ "$(id -u)" = 0 ] && { ! command -v wrk >/dev/null || ! command -v go >/dev/null; }; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk golang-go) >/dev/null 2>&1 || true
fi
for tool in wrk go; do
    command -v $tool >/dev/null || { echo "http.sh: needs $tool (apt-get install wrk golang-go)"; exit 1; }
done
# One descriptor per connection on each side; wrk and the servers inherit this.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
max=0
for c in $CONNS; do [ "$c" -gt "$max" ] && max=$c; done
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((max + 100)) ]; then
    echo "http.sh: the open-file limit $(ulimit -n) is below $max connections + 100; raise the hard limit"
    exit 1
fi
make -s build/examples/httpd
mkdir -p build/bench/go
(cd bench/go && GOCACHE=${GOCACHE:-/tmp/gocache} go build -o ../../build/bench/go/httpd httpd.go)

tmp=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# Starts server $1 (gomem | go) on a free port: sets server_pid and port.
start() {
    local bin=build/examples/httpd
    [ "$1" = go ] && bin=build/bench/go/httpd
    : > "$tmp/out"
    "$bin" -i "$IDLE_MS" 0 "$WORKERS" > "$tmp/out" 2>&1 &
    server_pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/out" | head -n 1)
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    echo "http.sh: $1 server did not start: $(cat "$tmp/out")"
    exit 1
}

stop() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

peak_rss_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status"
}

# The server's CPU time so far (user + system), in milliseconds: per request,
# a figure that other load on the machine moves much less than requests/s.
cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / hz }' "/proc/$server_pid/stat"
}

# The two servers must answer each route with the same bytes.
if command -v curl >/dev/null; then
    for s in gomem go; do
        start $s
        for r in / /deep /sleep /nope; do curl -s "http://127.0.0.1:$port$r"; done | md5sum > "$tmp/body.$s"
        stop
    done
    if cmp -s "$tmp/body.gomem" "$tmp/body.go"; then
        echo "bodies: the two servers answer /, /deep, /sleep and /nope with the same bytes"
    else
        echo "http.sh: the servers' bodies differ"
        exit 1
    fi
fi

echo "machine: $(nproc) CPUs, $(uname -r); wrk and both servers share them"
echo "compared: examples/httpd.c (gomem, copied stacks, $WORKERS workers) and bench/go/httpd.go ($(go version | awk '{print $3}'), GOMAXPROCS=$WORKERS)"
echo "runs: $ROUNDS rounds x connections {$CONNS} x routes {$ROUTES} x 2 servers, wrk -t2 -d$DUR each"
results=$tmp/results
: > "$results"
printf '%-6s %-6s %6s %-7s %10s %9s %9s %7s %9s %8s\n' round server conns route req/s p50_ms p99_ms errors rss_kib cpu_us/req
for round in $(seq "$ROUNDS"); do
    order="gomem go"
    [ $((round % 2)) = 0 ] && order="go gomem"
    for c in $CONNS; do
        for r in $ROUTES; do
            for s in $order; do
                start $s
                wrk -t2 -c"$c" -d"$DUR" --timeout 10s --latency "http://127.0.0.1:$port$r" > "$tmp/wrk" 2>&1 || true
                rss=$(peak_rss_kib)
                cpu=$(cpu_ms)
                stop
                awk -v round="$round" -v s="$s" -v c="$c" -v r="$r" -v rss="$rss" -v cpu="$cpu" '
                    function ms(v) {
                        if (v ~ /us$/) return v / 1000
                        if (v ~ /ms$/) return v + 0
                        if (v ~ /m$/) return v * 60000
                        if (v ~ /s$/) return v * 1000
                        return v
                    }
                    /requests in/ { nreq = $1 }
                    /Requests\/sec:/ { rps = $2 }
                    /^ +50%/ { p50 = ms($2) }
                    /^ +99%/ { p99 = ms($2) }
                    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
                    /Non-2xx/ { err += $NF }
                    END { printf "%-6s %-6s %6d %-7s %10.0f %9.2f %9.2f %7d %9d %8.1f\n",
                                 round, s, c, r, rps, p50, p99, err, rss, (nreq > 0 ? cpu * 1000 / nreq : 0) }' \
                    "$tmp/wrk" | tee -a "$results"
            done
        done
    done
done

echo "--- per route and connection count: min/median of $ROUNDS rounds; ratios gomem/Go of the medians"
awk '
    { k = $4 " " $3; key[k] = 1; srv[k, $2, ++n[k, $2]] = $0
      rps[k, $2, n[k, $2]] = $5; p50[k, $2, n[k, $2]] = $6; p99[k, $2, n[k, $2]] = $7; rss[k, $2, n[k, $2]] = $9
      cpu[k, $2, n[k, $2]] = $10
      err[k, $2] += $8 }
    function sortv(a, m,   i, j, t) { for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
    function med(a, m) { sortv(a, m); return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
    function mn(a, m) { sortv(a, m); return a[1] }
    function col(arr, k, s, out,   i) { for (i = 1; i <= n[k, s]; i++) out[i] = arr[k, s, i]; return n[k, s] }
    END {
        printf "%-7s %6s | %-21s %-21s %7s | %-17s %-17s %6s | %-9s %-9s %6s | %-26s | %s\n", "route", "conns",
               "gomem req/s min/med", "Go req/s min/med", "ratio", "gomem p99 min/med", "Go p99 min/med", "ratio",
               "gomem RSS", "Go RSS", "ratio", "CPU us/req gomem Go ratio", "errors gomem/Go"
        m = 0
        for (k in key) ks[++m] = k
        # by route as listed, then connections ascending
        for (i = 2; i <= m; i++) for (j = i; j > 1; j--) {
            split(ks[j - 1], x, " "); split(ks[j], y, " ")
            if (x[1] > y[1] || (x[1] == y[1] && x[2] + 0 > y[2] + 0)) { t = ks[j]; ks[j] = ks[j - 1]; ks[j - 1] = t } else break
        }
        for (i = 1; i <= m; i++) {
            k = ks[i]; split(k, kk, " ")
            c1 = col(rps, k, "gomem", a); gmin = mn(a, c1); gmed = med(a, c1)
            c2 = col(rps, k, "go", b); omin = mn(b, c2); omed = med(b, c2)
            col(p99, k, "gomem", a); pgmin = mn(a, c1); pgmed = med(a, c1)
            col(p99, k, "go", b); pomin = mn(b, c2); pomed = med(b, c2)
            col(rss, k, "gomem", a); rg = med(a, c1)
            col(rss, k, "go", b); ro = med(b, c2)
            col(cpu, k, "gomem", a); cg = med(a, c1)
            col(cpu, k, "go", b); co = med(b, c2)
            printf "%-7s %6d | %9.0f / %-9.0f %9.0f / %-9.0f %6.2fx | %7.2f / %-7.2f %7.2f / %-7.2f %5.2fx | %6.1fMB %6.1fMB %5.2fx | %7.1f %7.1f %7.2fx     | %d/%d\n",
                   kk[1], kk[2], gmin, gmed, omin, omed, (omed > 0 ? gmed / omed : 0),
                   pgmin, pgmed, pomin, pomed, (pomed > 0 ? pgmed / pomed : 0),
                   rg / 1024, ro / 1024, (ro > 0 ? rg / ro : 0), cg, co, (co > 0 ? cg / co : 0), err[k, "gomem"], err[k, "go"]
            gm[k] = gmed; gomed[k] = omed
        }
        for (i = 1; i <= m; i++) {
            split(ks[i], kk, " ")
            if (kk[1] == "/deep" && (("/ " kk[2]) in gm) && gm["/ " kk[2]] > 0)
                printf "/deep / (/) at %d connections: gomem %.2f, Go %.2f (median req/s)\n", kk[2],
                       gm[ks[i]] / gm["/ " kk[2]], (gomed["/ " kk[2]] > 0 ? gomed[ks[i]] / gomed["/ " kk[2]] : 0)
        }
    }' "$results"
