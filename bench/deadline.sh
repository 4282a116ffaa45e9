#!/usr/bin/env bash
# Deadlines, cancellation and thread/coroutine hand-off, gomem beside Go
# and beside pthreads, in one run.
#   bench/deadline.sh [RUNS] [TREE]
#   - select on an unbuffered channel plus a timer that never fires, the
#     timer reset per message: gomem's gm_timer_reset + gm_select and its
#     gm_select_until, beside Go's t.Reset + select (one worker /
#     GOMAXPROCS=1)
#   - cancelling a tree of TREE (default 100000) parked coroutines, each
#     on its own child context, beside Go's context.WithCancel
#   - thread -> coroutine -> thread round trip through two unbuffered
#     channels, beside a pthread condition-variable ping-pong
# Each line: min and median of RUNS (default 5) runs, the programs run
# interleaved, and the ratio of the medians to the peer's. Installs
# Debian's golang-go when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
TREE=${2:-100000}
if ! command -v go >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go) >/dev/null 2>&1 || true
fi
command -v go >/dev/null || { echo "go not installed: nothing to compare with"; exit 1; }
make -s build/bench/deadline
mkdir -p build/bench/go
(cd bench/go && GOCACHE=${GOCACHE:-/tmp/gocache} go build -o ../../build/bench/go/deadline deadline.go)
echo "machine: $(nproc) CPUs, $(uname -r); $(go version | cut -d' ' -f3); $RUNS runs each, interleaved"

# The ns/op of one run's line.
nsop() { awk '{for (i = 1; i < NF; i++) if ($(i + 1) == "ns/op") print $i}'; }
# min and median of a column of numbers: "MIN MEDIAN"
stats() { sort -g | awk '{v[NR]=$1} END {printf "%s %s\n", v[1], v[int((NR+1)/2)]}'; }

# compare LABEL PEER_LABEL "gomem command..." "peer command..."...: each
# gomem command and the peer command RUNS times, interleaved.
compare() {
    local title=$1 peer=$2
    shift 2
    local n=$# i
    for i in $(seq "$n"); do : > "/tmp/deadline.$$.$i"; done
    for _ in $(seq "$RUNS"); do
        i=0
        for cmd in "$@"; do
            i=$((i + 1))
            eval "$cmd" | nsop >> "/tmp/deadline.$$.$i"
        done
    done
    echo "== $title"
    read -r pmin pmed < <(stats < "/tmp/deadline.$$.$n")
    i=0
    for cmd in "$@"; do
        i=$((i + 1))
        read -r min med < <(stats < "/tmp/deadline.$$.$i")
        printf '  %-58s ns/op min %10.1f median %10.1f' "$cmd" "$min" "$med"
        if [ "$i" -lt "$n" ]; then
            awk -v a="$med" -v b="$pmed" -v p="$peer" 'BEGIN {printf "  (%.2fx %s)\n", a / b, p}'
        else
            printf '  (the peer)\n'
        fi
    done
    rm -f /tmp/deadline.$$.*
}

compare "select + timer reset per message, one worker" "Go" \
    "GOMEM_PROCS=1 build/bench/deadline SelectTimerReset" \
    "GOMEM_PROCS=1 build/bench/deadline SelectUntil" \
    "GOMAXPROCS=1 build/bench/go/deadline SelectTimerReset"
compare "cancel a tree of $TREE parked coroutines (ns per coroutine), one worker" "Go" \
    "GOMEM_PROCS=1 build/bench/deadline CancelTree $TREE" \
    "GOMAXPROCS=1 build/bench/go/deadline CancelTree $TREE"
compare "thread -> coroutine -> thread round trip, unbuffered channels" "pthread condvar" \
    "GOMEM_PROCS=1 build/bench/deadline ThreadCoroThread" \
    "build/bench/deadline CondvarPingPong"
