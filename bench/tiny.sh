#!/usr/bin/env bash
# The tiny allocator, side by side in one run:
#  1. Go's JSON claim for the tiny allocator, in C: parse a generated JSON
#     document (MB MiB, default 200) into a tree whose strings and boxed
#     numbers are separate allocations; heap blocks taken, peak heap and max
#     RSS with gomem's maxTinySize 0, 8, 16, 32, beside glibc, jemalloc and
#     mimalloc;
#  2. many short strings (1-15 B, 1M live, 10M replaced), and 2M of them
#     with every second one replaced by a 7-byte string (holes refilled):
#     max RSS, through gm_strndup and through the drop-in malloc
#     (libgomem.so by LD_PRELOAD, malloc-tiny0 / malloc-tiny16);
#  3. the cost: tiny malloc+free pair vs the 16-byte class pair (bench/stack
#     style, gomem only) is in build/bench/tinypair.
#   bench/tiny.sh [RUNS] [MB]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
MB=${2:-200}
LIBDIR=/usr/lib/x86_64-linux-gnu
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null &&
   { [ ! -e $LIBDIR/libjemalloc.so.2 ] || [ ! -e $LIBDIR/libmimalloc.so.2 ]; }; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 libmimalloc2.0) >/dev/null 2>&1 || true
fi
make -s lib build/bench/tiny_json_libc build/bench/tiny_json_gomem
doc=build/bench/tiny_doc_${MB}m.json
[ -e "$doc" ] || build/bench/tiny_json_libc gen "$doc" "$MB"

configs=("gomem-tiny0" "gomem-tiny8" "gomem-tiny16" "gomem-tiny32" "glibc")
[ -e $LIBDIR/libjemalloc.so.2 ] && configs+=(jemalloc)
[ -e $LIBDIR/libmimalloc.so.2 ] && configs+=(mimalloc)

run() { # config mode args...
    local c=$1; shift
    case $c in
    gomem-tiny*) GOMEM_MAXTINY=${c#gomem-tiny} build/bench/tiny_json_gomem "$@" ;;
    malloc-tiny*) GOMEM_MAXTINY=${c#malloc-tiny} LD_PRELOAD=$PWD/build/libgomem.so build/bench/tiny_json_libc "$@" ;;
    glibc) build/bench/tiny_json_libc "$@" ;;
    jemalloc) LD_PRELOAD=$LIBDIR/libjemalloc.so.2 build/bench/tiny_json_libc "$@" ;;
    mimalloc) LD_PRELOAD=$LIBDIR/libmimalloc.so.2 build/bench/tiny_json_libc "$@" ;;
    esac
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for mode in parse strings halves; do
    case $mode in
    parse) echo "== JSON tree: $(du -m "$doc" | cut -f1) MiB document, $RUNS runs, medians (blocks: heap blocks from size classes; peers: objects)" ;;
    strings) echo "== short strings: 1M live, 10M replaced, $RUNS runs, medians" ;;
    halves) echo "== short strings, holes refilled: 2M live, every second replaced by 7 B, $RUNS runs, medians" ;;
    esac
    declare -A out=()
    for r in $(seq 1 "$RUNS"); do
        for c in "${configs[@]}" $([ $mode = parse ] || echo malloc-tiny0 malloc-tiny16); do
            if [ $mode = parse ]; then line=$(run "$c" parse "$doc"); else line=$(run "$c" $mode); fi
            out[$c]+="$line"$'\n'
        done
    done
    printf '  %-13s %10s %10s %12s %11s %7s %9s %10s\n' config objects blocks heap_KiB maxrss_KiB ms blocks/0 rss/tiny0
    base_blocks= base_rss=
    for c in "${configs[@]}" $([ $mode = parse ] || echo malloc-tiny0 malloc-tiny16); do
        col() { printf '%s' "${out[$c]}" | awk -v k="$1" 'NF {for (i=1;i<NF;i++) if ($i==k) print $(i+1)}' | median; }
        objs=$(col objects) blocks=$(col blocks) heap=$(col heap_peak_kib) rss=$(col maxrss_kib) ms=$(col ms)
        [ "$c" = gomem-tiny0 ] && base_blocks=$blocks base_rss=$rss
        rb=$(awk -v a="$blocks" -v b="$base_blocks" 'BEGIN{ if (b>0 && a>0) printf "%.2f", a/b; else print "-" }')
        rr=$(awk -v a="$rss" -v b="$base_rss" 'BEGIN{ printf "%.2f", a/b }')
        printf '  %-13s %10s %10s %12s %11s %7s %9s %10s\n' "$c" "$objs" "$blocks" "$heap" "$rss" "$ms" "$rb" "$rr"
    done
    if [ $mode = parse ]; then
        bound=$(printf '%s' "${out[gomem-tiny0]}" | awk 'NF {for (i=1;i<NF;i++) if ($i=="packing_bound_pct") print $(i+1)}' | median)
        bkib=$(printf '%s' "${out[gomem-tiny0]}" | awk 'NF {for (i=1;i<NF;i++) if ($i=="packing_bound_kib") print $(i+1)}' | median)
        echo "  bound: perfect packing of every piece under 16 bytes would save at most ${bound}% of the heap (${bkib} KiB)"
        echo "  (tiny0's size-class bytes of those pieces minus their own bytes, over all class bytes; RSS >= heap)"
        heapOf() { printf '%s' "${out[$1]}" | awk 'NF {for (i=1;i<NF;i++) if ($i=="heap_peak_kib") print $(i+1)}' | median; }
        h0=$(heapOf gomem-tiny0) h16=$(heapOf gomem-tiny16)
        awk -v a="$h0" -v b="$h16" -v k="$bkib" 'BEGIN {printf "  gomem-tiny16 (the default) saves %d KiB of heap: %.1f%% of the bound\n", a - b, 100 * (a - b) / k}'
    fi
    unset out
done
