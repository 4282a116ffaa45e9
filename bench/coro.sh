#!/usr/bin/env bash
# Coroutines side by side with Go's goroutines (GOMEM_PROCS=1 / GOMAXPROCS=1)
# and Boost.Context's raw switch, in one run: bytes per idle coroutine,
# create+run, yield switch, ping-pong, stack growth to 1 MiB.
#   bench/coro.sh [RUNS] [N]    RUNS default 5; N idle coroutines (default 1M;
#                               10M need about 5 GB: Go's side then runs 1M)
# Installs Debian's golang-go and libboost-context-dev when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
N=${2:-1000000}
if [ "$(id -u)" = 0 ] && { ! command -v go >/dev/null || [ ! -e /usr/include/boost/context/detail/fcontext.hpp ]; }; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go libboost-context-dev g++) >/dev/null 2>&1 || true
fi
make -s build/bench/coro
echo "machine: $(nproc) CPUs, $(uname -r)"
GOMEM_PROCS=1 build/bench/coro "$RUNS" "$N"
if command -v go >/dev/null; then
    mkdir -p build/bench/go
    (cd bench/go && GOCACHE=${GOCACHE:-/tmp/gocache} go build -o ../../build/bench/go/coro coro.go)
    GON=$N
    if [ "$N" -gt 4000000 ]; then
        # ~2.7 KiB per goroutine: 10M would need ~27 GB (the OOM killer ends it on a 24 GiB machine)
        GON=1000000
        echo "Go: $N goroutines need ~$((N * 2738 / 1000000000)) GB; Go's side runs with $GON"
    fi
    GOMAXPROCS=1 build/bench/go/coro "$RUNS" "$GON" || echo "Go's side failed (exit $?)"
else
    echo "go not installed: Go's side skipped"
fi
if [ -e /usr/include/boost/context/detail/fcontext.hpp ] && command -v g++ >/dev/null; then
    make -s build/libgomem.a
    g++ -O2 -Iinclude -o build/bench/boost_switch bench/boost_switch.cpp build/libgomem.a -lboost_context -pthread
    GOMEM_PROCS=1 build/bench/boost_switch "$((RUNS > 9 ? RUNS : 9))"
else
    echo "Boost.Context not installed: its side skipped"
fi
