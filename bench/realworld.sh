#!/usr/bin/env bash
# Real programs (the ones tests/realworld.sh checks) timed under glibc,
# jemalloc, mimalloc, tcmalloc and gomem (LD_PRELOAD), side by side:
# wall time and max RSS, min/median of RUNS rounds (default 3; each round
# runs every allocator in turn), ratios to glibc per round, and geometric
# means; also the ratio of CPU time (user + system of all the program's
# processes), steadier than wall time on a shared machine; the ratio of
# page faults (all processes; they hardly vary between runs); and a 95%
# bootstrap interval of each geomean (how far chance alone moves it).
#          bench/realworld.sh [RUNS]
# Instructions instead (callgrind, every process of each program summed; one
# run each, as they do not vary; glibc and gomem, all peers with
# BENCH_PEERS=1; BENCH_ONLY="perl gcc" for some programs; ~30 min for all):
#          bench/realworld.sh --instr
set -euo pipefail
cd "$(dirname "$0")/.."
INSTR=""
if [ "${1:-}" = --instr ]; then INSTR=1; shift; fi
RUNS=${1:-3}
LIBDIR=/usr/lib/x86_64-linux-gnu
need=()
[ -e $LIBDIR/libjemalloc.so.2 ] || need+=(libjemalloc2)
[ -e $LIBDIR/libmimalloc.so.2 ] || need+=(libmimalloc2.0)
[ -e $LIBDIR/libtcmalloc_minimal.so.4 ] || need+=(libtcmalloc-minimal4)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 || true
fi
make -s lib
allocs="glibc="
if [ -n "$INSTR" ]; then
    command -v valgrind >/dev/null || { echo "bench/realworld.sh --instr needs valgrind (apt-get install valgrind)"; exit 1; }
    [ -n "${BENCH_PEERS:-}" ] || LIBDIR=/nonexistent
fi
for pair in jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    [ -e "$LIBDIR/${pair#*:}" ] && allocs="$allocs ${pair%%:*}=$LIBDIR/${pair#*:}"
done
allocs="$allocs gomem=$PWD/build/libgomem.so"
names=$(for spec in $allocs; do printf '%s ' "${spec%%=*}"; done)
mkdir -p build/bench
if [ -n "$INSTR" ]; then
    csv=build/bench/realworld_instr.csv
    : > "$csv"
    echo "bench/realworld.sh --instr: instructions (callgrind, all processes of a program), one run each; allocators: $names"
    printf '  %-12s %-9s %14s %8s\n' program allocator instructions i/glibc
    BENCH_INSTR=1 BENCH_ALLOCS="$allocs" BENCH_CSV=$PWD/$csv ./tests/realworld.sh | grep -v "passed, .* failed\|skipped" || true
    echo
    echo "geomean over programs of the instruction ratios to glibc:"
    awk -F, '$2 == "glibc" { g[$1] = $3 } { v[$1, $2] = $3; a[$2] = 1; p[$1] = 1 }
    END { for (x in a) { l = 0; n = 0; for (q in p) if (g[q] > 0 && v[q, x] > 0) { l += log(v[q, x] / g[q]); n++ }
              if (n) printf "  %-9s %.3f (%d programs)\n", x, exp(l / n), n } }' "$csv" | sort
    exit 0
fi
csv=build/bench/realworld.csv
: > "$csv"
: > "$csv.rounds"
echo "bench/realworld.sh: $(nproc) cores, $RUNS runs each; allocators: $names"
printf '  %-12s %-9s %8s %8s %10s %8s %8s %8s %8s\n' program allocator min_s med_s maxrss_KiB t/glibc rss/glibc cpu/glibc flt/glibc
make -s build/bench/spawnrss
BENCH_SPAWN=$PWD/build/bench/spawnrss BENCH_RUNS=$RUNS BENCH_ALLOCS="$allocs" BENCH_CSV=$PWD/$csv ./tests/realworld.sh | grep -v "passed, .* failed\|skipped" || true
echo
echo "geomean over programs of the per-round ratios to glibc (median of the rounds):"
awk -F, '{ lt[$2]+=log($5); lr[$2]+=log($6); lc[$2]+=log($7); lf[$2]+=log($8); n[$2]++ }
END { for (x in n) printf "  %-9s time %.3f  rss %.3f  cpu %.3f  faults %.3f\n", x, exp(lt[x]/n[x]), exp(lr[x]/n[x]), exp(lc[x]/n[x]), exp(lf[x]/n[x]) }' "$csv" | sort
# How far those geomeans could move by chance: each program's rounds are
# resampled (with replacement) 2000 times and the geomean of the medians
# taken again; the middle 95% of the results is printed. An interval that
# straddles 1.000 says this run cannot tell the allocator from glibc.
echo
[ "$RUNS" -ge 3 ] || { echo "(no interval: it needs 3 rounds or more)"; exit 0; }
echo "95% interval of each geomean (bootstrap over rounds, 2000 resamples):"
python3 - "$csv.rounds" <<'PY'
import collections, csv, math, random, sys
random.seed(1)
rounds = collections.defaultdict(lambda: collections.defaultdict(list))  # allocator -> program -> ratios
for name, alloc, _, *ratios in csv.reader(open(sys.argv[1])):  # time, rss, cpu, faults
    rounds[alloc][name].append([float(x) for x in ratios])
def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
for alloc in sorted(rounds):
    if alloc == "glibc":
        continue
    progs = rounds[alloc]
    out = []
    for m, label in enumerate(("time", "rss", "cpu", "faults")):
        g = sorted(math.exp(sum(math.log(median([random.choice(v)[m] for _ in v])) for v in progs.values()) / len(progs))
                   for _ in range(2000))
        out.append("%s %.3f..%.3f" % (label, g[50], g[1949]))
    print("  %-9s %s" % (alloc, "  ".join(out)))
PY
