#!/usr/bin/env bash
# The trace's cost. Tracing off: bench/trace_cost.c (malloc/free
# fast path, span alloc/free, yields, coroutine create/end) counted by
# callgrind with the hooks compiled in (and off) and compiled out
# (-DGM_NO_TRACE): instruction counts, which machine noise does not move.
# Tracing on: wall time with GOMEM_TRACE set vs unset, per event recorded.
#   bench/trace.sh [RUNS]      (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
N=${N:-200000}
make -s build/bench/trace_cost
make -s BUILD=build-notrace CFLAGS=-DGM_NO_TRACE build-notrace/bench/trace_cost
echo "bench/trace.sh: $(nproc) CPUs, $(uname -r)"
if command -v valgrind >/dev/null; then
    for b in build build-notrace; do
        GOMEM_PROCS=1 valgrind --tool=callgrind --callgrind-out-file=/tmp/trace_cost.$$.cg "$b/bench/trace_cost" "$N" \
            >/dev/null 2>/tmp/trace_cost.$$.log
        ir=$(grep -o 'refs: *[0-9,]*' /tmp/trace_cost.$$.log | tr -d ', ' | cut -d: -f2)
        echo "$b $ir"
    done | awk -v n="$N" '{ ir[$1] = $2 } END {
        printf "tracing off, instructions (callgrind, N=%s): hooks compiled in %d, compiled out %d: %+.3f%%\n",
               n, ir["build"], ir["build-notrace"], 100 * (ir["build"] / ir["build-notrace"] - 1) }'
    rm -f /tmp/trace_cost.$$.*
else
    echo "valgrind not installed: instruction counts skipped"
fi
trace=/tmp/trace_cost.$$.trace
best() { sort -n | head -1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
: > /tmp/trace_off.$$; : > /tmp/trace_on.$$
for r in $(seq 1 "$RUNS"); do
    for mode in off on; do
        t0=$(date +%s%N)
        if [ $mode = on ]; then GOMEM_PROCS=1 GOMEM_TRACE=$trace build/bench/trace_cost 1000000 >/dev/null
        else GOMEM_PROCS=1 build/bench/trace_cost 1000000 >/dev/null; fi
        echo $(( $(date +%s%N) - t0 )) >> /tmp/trace_$mode.$$
    done
done
events=$(( ($(stat -c %s $trace) - 32) / 24 ))
off=$(best < /tmp/trace_off.$$) on=$(best < /tmp/trace_on.$$)
offm=$(median < /tmp/trace_off.$$) onm=$(median < /tmp/trace_on.$$)
awk -v off="$off" -v on="$on" -v offm="$offm" -v onm="$onm" -v ev="$events" -v runs="$RUNS" 'BEGIN {
    printf "tracing on: %d events; wall min %.1f ms off, %.1f ms on (median %.1f / %.1f, %d runs): %.1f ns per event (min), %.1f (median)\n",
           ev, off / 1e6, on / 1e6, offm / 1e6, onm / 1e6, runs, (on - off) / ev, (onm - offm) / ev }'
rm -f "$trace" /tmp/trace_off.$$ /tmp/trace_on.$$
