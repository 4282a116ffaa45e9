#!/usr/bin/env bash
# Coroutines side by side with Go's goroutines (GOMAXPROCS=1) in one run:
# bytes per idle coroutine, create+run, yield switch.  bench/coro.sh [RUNS] [N]
# Installs Debian's golang-go when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
N=${2:-1000000}
if ! command -v go >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go) >/dev/null 2>&1 || true
fi
make -s build/bench/coro
build/bench/coro "$RUNS" "$N"
if command -v go >/dev/null; then
    mkdir -p build/bench/go
    (cd bench/go && GOCACHE=${GOCACHE:-/tmp/gocache} go build -o ../../build/bench/go/coro coro.go)
    GOMAXPROCS=1 build/bench/go/coro "$RUNS" "$N"
else
    echo "go not installed: Go's side skipped"
fi
