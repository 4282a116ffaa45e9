#!/usr/bin/env bash
# Segmented stacks' hot split beside gomem's doubling (bench/splitstack.c):
# the same loop of calls to a 1 KiB-frame leaf, in a gomem coroutine
# (copied: its saved copy doubled once to fit, then stays; dedicated) and
# under gcc's -fsplit-stack (libgcc's segments) where the leaf fits and where
# every call crosses a segment's edge, with and without libgcc's signal
# blocking around each switch. Runs the two programs interleaved, RUNS
# rounds; then instructions per call from callgrind ((I(2N) - I(N)) / N),
# the figure to quote on a shared machine (wall times are indicative; the
# sigprocmask calls cost nothing in instructions, everything in time).
#   bench/splitstack.sh [RUNS] [CALLS]     defaults 5, 1000000
# Installs valgrind when missing (as root). x86-64 only (gcc's split stacks
# and the segment limit's place in the thread control block).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
CALLS=${2:-1000000}
if [ "$(uname -m)" != x86_64 ]; then
    echo "splitstack.sh: x86-64 only"; exit 0
fi
if [ "$(id -u)" = 0 ] && ! command -v valgrind >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind) >/dev/null 2>&1 || true
fi
make -s build/bench/splitstack
seg=build/bench/splitstack-segmented
if ! gcc -O2 -fsplit-stack -DSEGMENTED -Ibench -o "$seg" bench/splitstack.c 2>/dev/null; then
    echo "splitstack.sh: this gcc cannot build -fsplit-stack: the segmented side is skipped"
    build/bench/splitstack "$CALLS" "$RUNS"
    exit 0
fi
echo "machine: $(nproc) CPUs, $(uname -r); $(gcc --version | head -1)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$RUNS"); do
    build/bench/splitstack "$CALLS" 1 >> "$out"
    "$seg" "$CALLS" 1 >> "$out"
done
echo "--- wall time per call, $RUNS interleaved rounds (indicative: a shared machine)"
awk '/^BenchmarkSplitLoop/ { v = $1; sub(/^BenchmarkSplitLoop\//, "", v); t[v] = t[v] " " $3; note[v] = "" }
     /the saved copy doubled/ { match($0, /the saved copy doubled [0-9]+ times at the first park, [0-9]+ at the next/)
                                note[v] = substr($0, RSTART, RLENGTH) }
     END {
        n = split("copied dedicated fits edge edge-nosigmask", order, " ")
        for (i = 1; i <= n; i++) {
            v = order[i]; if (!(v in t)) continue
            k = split(substr(t[v], 2), a, " "); for (x = 1; x <= k; x++) for (y = x + 1; y <= k; y++) if (a[y] < a[x]) { s = a[x]; a[x] = a[y]; a[y] = s }
            mn[v] = a[1]; md[v] = a[int((k + 1) / 2)]
            printf "%-16s min %10.2f ns  median %10.2f ns  (%d runs)  %s\n", v, mn[v], md[v], k, note[v]
        }
        if ("copied" in mn && mn["copied"] > 0)
            for (i = 3; i <= n; i++) printf "  %s / gomem copied: %.1fx (min), %.1fx (median)\n", order[i], mn[order[i]] / mn["copied"], md[order[i]] / md["copied"]
     }' "$out"
if ! command -v valgrind >/dev/null; then
    echo "valgrind not installed: no instruction counts"; exit 0
fi
n=$((CALLS / 10))
count() { # program variant calls -> instructions
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$3" 0 "$2" 2>&1 | awk '/Collected/ {print $NF}'
}
echo "--- instructions per call (callgrind, (I(2N) - I(N)) / N, N = $n)"
for v in copied dedicated; do
    a=$(count build/bench/splitstack "$v" "$n"); b=$(count build/bench/splitstack "$v" $((2 * n)))
    awk -v a="$a" -v b="$b" -v n="$n" -v v="$v" 'BEGIN {printf "%-16s %.1f\n", "gomem " v, (b - a) / n}'
done
for v in fits edge edge-nosigmask; do
    a=$(count "$seg" "$v" "$n"); b=$(count "$seg" "$v" $((2 * n)))
    awk -v a="$a" -v b="$b" -v n="$n" -v v="$v" 'BEGIN {printf "%-16s %.1f\n", "segmented " v, (b - a) / n}'
done
