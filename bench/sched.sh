#!/usr/bin/env bash
# The scheduler on several workers, gomem beside Go (bench/sched.c,
# bench/go/sched.go): a parallel fib, a parallel merge sort of 10M ints and
# an uneven burst (1,000 coroutines woken on one worker, ~1 ms of work
# each), at GOMEM_PROCS=1 then GOMAXPROCS=1, then both at 2. Prints each
# row, then each side's speed-up from 1 to 2 workers (the P1 min over the
# P2 min) and gomem / Go at each.
#   bench/sched.sh [RUNS]       RUNS default 3
#   bench/sched.sh costs [N]    create + run + exit in batches of 100 (N
#       coroutines, default 200,000) at 1 and 2 workers: instructions per
#       coroutine summed over every thread (callgrind, (I(2N) - I(N)) / N;
#       callgrind runs one thread at a time, so a spinning worker's share is
#       not what it is on the machine), the wake-up path's system calls per
#       coroutine (strace -f -c), then CPU time of all threads per coroutine
# Wall times on a shared machine are indicative only; the counts are not.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
make -s build/bench/sched
if [ "${1:-}" = costs ]; then
    N=${2:-200000}
    command -v valgrind >/dev/null || { echo "sched.sh costs: valgrind not installed"; exit 1; }
    command -v strace >/dev/null || { echo "sched.sh costs: strace not installed"; exit 1; }
    count() { # procs n -> instructions, all threads
        GOMEM_PROCS=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null build/bench/sched batch "$2" 2>&1 |
            awk '/Collected/ {print $NF}'
    }
    echo "create + run + exit, batches of 100, copied mode; $N coroutines (callgrind: 2N minus N)"
    for procs in 1 2; do
        a=$(count "$procs" "$N")
        b=$(count "$procs" $((2 * N)))
        awk -v a="$a" -v b="$b" -v n="$N" -v p="$procs" 'BEGIN {printf "procs=%d instructions/coroutine %.1f\n", p, (b - a) / n}'
        GOMEM_PROCS=$procs strace -f -c -o /tmp/sched_strace.$$ build/bench/sched batch "$N" >/dev/null
        # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall. The
        # wake-up path's calls (eventfd write, epoll wait, read), futexes, and all.
        awk -v n="$N" -v p="$procs" '$1 ~ /^[0-9.]+$/ && $NF ~ /^(write|read|epoll_pwait2|epoll_wait|futex|total)$/ {
                printf "procs=%d %-14s %9d calls  %.4f/coroutine\n", p, $NF, $4, $4 / n
            }' /tmp/sched_strace.$$
        GOMEM_PROCS=$procs build/bench/sched batch "$N"
    done
    rm -f /tmp/sched_strace.$$
    exit 0
fi
RUNS=${1:-3}
need_go
go_bench sched
echo "machine: $(nproc) CPUs, $(uname -r); $(go version | cut -d' ' -f3); $RUNS runs each"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for procs in 1 2; do
    echo "--- GOMEM_PROCS=$procs / GOMAXPROCS=$procs"
    GOMEM_PROCS=$procs build/bench/sched "$RUNS" | tee -a "$out"
    GOMAXPROCS=$procs build/bench/go/sched "$RUNS" | tee -a "$out"
done
awk '/^Benchmark/ {
        name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
        p2 = sub(/\/P2$/, "", name)
        if (!(name in seen)) { seen[name] = 1; order[++n] = name }
        if (p2) t2[name] = $3; else t1[name] = $3
     }
     END {
        printf "--- speed-up from 1 to 2 workers (min at 1 / min at 2; ms)\n"
        for (i = 1; i <= n; i++) {
            k = order[i]
            if (t1[k] > 0 && t2[k] > 0)
                printf "%-28s %10.1f %10.1f  %5.2fx\n", k, t1[k] / 1e6, t2[k] / 1e6, t1[k] / t2[k]
        }
        printf "--- gomem / Go (ratio of the mins) at 1 and 2 workers\n"
        for (i = 1; i <= n; i++) {
            k = order[i]
            if (k ~ /\/go$/) continue
            g = k; sub(/\/.*/, "", g); g = g "/go"
            if (g in t1 && t1[g] > 0 && t2[g] > 0 && t1[k] > 0 && t2[k] > 0)
                printf "%-28s P1 %5.2fx   P2 %5.2fx\n", k, t1[k] / t1[g], t2[k] / t2[g]
        }
     }' "$out"
