#!/usr/bin/env bash
# Coroutines side by side with Go's goroutines and Boost.Context's raw
# switch, in one run: gomem at GOMEM_PROCS=1 then Go at GOMAXPROCS=1, then
# both again at 2; then the ratios gomem / Go of each row's min (rows at two
# workers end in /P2). Rows: bytes per idle coroutine (parked after a
# shallow call; parked at top level), create+run (a stream; batches of
# 100), N alive at once, yield switch, ping-pong (shallow; 2, 8, 32 KiB of
# frames below each side), recursion 40,000 frames deep, stack growth to
# 1 MiB. bench/coro.c's head says what each measures.
#   bench/coro.sh [RUNS] [N]    RUNS default 5; N idle / alive coroutines
#                               (default 1M; 10M need about 5 GB: Go's side
#                               then runs 1M)
# Installs Debian's golang-go and libboost-context-dev when missing (as root).
# Wall times on a shared machine are indicative only.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
N=${2:-1000000}
if [ "$(id -u)" = 0 ] && { ! command -v go >/dev/null || [ ! -e /usr/include/boost/context/detail/fcontext.hpp ]; }; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go libboost-context-dev g++) >/dev/null 2>&1 || true
fi
make -s build/bench/coro
echo "machine: $(nproc) CPUs, $(uname -r)"
GON=$N
if command -v go >/dev/null; then
    mkdir -p build/bench/go
    (cd bench/go && GOCACHE=${GOCACHE:-/tmp/gocache} go build -o ../../build/bench/go/coro coro.go)
    if [ "$N" -gt 4000000 ]; then
        # ~2.7 KiB per goroutine: 10M would need ~27 GB (the OOM killer ends it on a 24 GiB machine)
        GON=1000000
        echo "Go: $N goroutines need ~$((N * 2738 / 1000000000)) GB; Go's side runs with $GON"
    fi
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for procs in 1 2; do
    echo "--- GOMEM_PROCS=$procs / GOMAXPROCS=$procs"
    GOMEM_PROCS=$procs build/bench/coro "$RUNS" "$N" | tee -a "$out"
    if command -v go >/dev/null; then
        GOMAXPROCS=$procs build/bench/go/coro "$RUNS" "$GON" | tee -a "$out" || echo "Go's side failed (exit $?)"
    else
        echo "go not installed: Go's side skipped"
    fi
done
echo "--- gomem / Go, ratio of the mins ($RUNS runs each; alive rows at most 3; B/coroutine rows: bytes)"
awk '/^Benchmark/ {
        name = $1; sub(/^Benchmark/, "", name)
        go = name ~ /-go$/
        sub(/-[A-Za-z0-9]+$/, "", name)
        v = $3
        if (go) { gov[name] = v; next }
        key = name; sub(/\/(copied|dedicated)/, "", key)
        if (key ~ /^CoroYield/) sub(/^CoroYield/, "CoroYield/Gosched", key)
        if (!(name in seen)) { seen[name] = 1; order[++n] = name; gkey[name] = key; mine[name] = v }
     }
     END {
        for (i = 1; i <= n; i++) {
            k = gkey[order[i]]
            if (k in gov && gov[k] > 0)
                printf "%-40s %12.2f %12.2f  %6.2fx\n", order[i], mine[order[i]], gov[k], mine[order[i]] / gov[k]
        }
     }' "$out"
if [ -e /usr/include/boost/context/detail/fcontext.hpp ] && command -v g++ >/dev/null; then
    make -s build/libgomem.a
    g++ -O2 -Iinclude -o build/bench/boost_switch bench/boost_switch.cpp build/libgomem.a -lboost_context -pthread
    GOMEM_PROCS=1 build/bench/boost_switch "$((RUNS > 9 ? RUNS : 9))"
else
    echo "Boost.Context not installed: its side skipped"
fi
