#!/usr/bin/env bash
# Real programs (the ones tests/realworld.sh checks) timed under glibc,
# jemalloc, mimalloc, tcmalloc and gomem (LD_PRELOAD), side by side:
# wall time and max RSS, min/median of RUNS runs (default 3), ratios to
# glibc, and geometric means.   bench/realworld.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
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
for pair in jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    [ -e "$LIBDIR/${pair#*:}" ] && allocs="$allocs ${pair%%:*}=$LIBDIR/${pair#*:}"
done
allocs="$allocs gomem=$PWD/build/libgomem.so"
csv=build/bench/realworld.csv
mkdir -p build/bench
: > "$csv"
echo "bench/realworld.sh: $(nproc) cores, $RUNS runs each; allocators: ${allocs//=*([^ ])/}"
printf '  %-12s %-9s %8s %8s %10s %8s %8s\n' program allocator min_s med_s maxrss_KiB t/glibc rss/glibc
BENCH_RUNS=$RUNS BENCH_ALLOCS="$allocs" BENCH_CSV=$PWD/$csv ./tests/realworld.sh | grep -v "passed, .* failed\|skipped" || true
echo
echo "geomean over programs (median time, median max RSS), ratio to glibc:"
awk -F, '{t[$1","$2]=$3; r[$1","$2]=$4; p[$1]=1; a[$2]=1}
END { for (x in a) { lt=0; lr=0; n=0
        for (q in p) if ((q",glibc") in t && (q","x) in t) { lt+=log(t[q","x]/t[q",glibc"]); lr+=log(r[q","x]/r[q",glibc"]); n++ }
        printf "  %-9s time %.2f  rss %.2f\n", x, exp(lt/n), exp(lr/n) } }' "$csv" | sort
