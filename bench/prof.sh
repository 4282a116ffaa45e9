#!/usr/bin/env bash
# What heap profiling costs: bench/workloads/malloc_work.c (the malloc set
# of bench/malloc.sh) under gm_malloc with profiling off and on at the
# default rate (GOMEM_PROF, 512 KiB), interleaved in each run; prints per
# workload and thread count the min/median wall time and median max RSS of
# RUNS runs and the ratios on/off. Then the trustworthy figure: instructions
# counted by valgrind's callgrind for one run of each workload off and on
# (skipped without valgrind; INSTR=0 skips it).
#
#   bench/prof.sh [RUNS] [WORKLOADS...]      (default 3 runs, all workloads)
#
# Nothing to install but valgrind (apt-get install valgrind), for the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
WORKLOADS=${*:-churn powerlaw prodcons larson realloc large}
THREADS=${THREADS:-1 2}
INSTR=${INSTR:-1}

make -s build/bench/malloc_work_gomem build/gomem-info
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "bench/prof.sh: $(nproc) cores, $RUNS runs each, min/median wall ms and max RSS KiB (median)"
echo "compared: gm_malloc with heap profiling off, and on at the default rate (GOMEM_PROF=file, 512 KiB)"
echo "workloads: $WORKLOADS; threads: $THREADS"
csv=build/bench/prof.csv
echo "workload,threads,mode,run,ms,maxrss_kib" > "$csv"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

run() { # mode workload threads -> "ms maxrss"
    local out
    if [ "$1" = on ]; then
        out=$(GOMEM_PROF="$tmp/p.pb.gz" build/bench/malloc_work_gomem "$2" "$3")
    else
        out=$(build/bench/malloc_work_gomem "$2" "$3")
    fi
    set -- $out
    echo "$3 $4"
}

for w in $WORKLOADS; do
    for t in $THREADS; do
        for r in $(seq 1 "$RUNS"); do
            for m in off on; do # interleaved: machine noise hits both alike
                set -- $(run "$m" "$w" "$t")
                echo "$w,$t,$m,$r,$1,$2" >> "$csv"
            done
        done
        printf '\n%-9s threads=%s\n' "$w" "$t"
        printf '  %-5s %9s %9s %10s\n' mode min_ms med_ms maxrss_KiB
        declare -A med rss
        for m in off on; do
            rows=$(awk -F, -v w="$w" -v t="$t" -v m="$m" '$1==w && $2==t && $3==m' "$csv")
            mn=$(echo "$rows" | cut -d, -f5 | sort -n | head -1)
            med[$m]=$(echo "$rows" | cut -d, -f5 | median)
            rss[$m]=$(echo "$rows" | cut -d, -f6 | median)
            printf '  %-5s %9s %9s %10s\n' "$m" "$mn" "${med[$m]}" "${rss[$m]}"
        done
        awk -v a="${med[on]}" -v b="${med[off]}" -v c="${rss[on]}" -v d="${rss[off]}" \
            'BEGIN {printf "  on/off: time %.3f  rss %.3f (medians)\n", a / b, c / d}'
    done
done
echo "(csv: $csv)"

if [ "$INSTR" = 1 ] && command -v valgrind >/dev/null; then
    echo
    echo "instructions (callgrind, one run, threads=1; not moved by the machine's load):"
    printf '  %-9s %15s %15s %8s\n' workload off on on/off
    for w in $WORKLOADS; do
        i=()
        for m in off on; do
            env=()
            [ "$m" = on ] && env=(GOMEM_PROF="$tmp/p.pb.gz")
            i+=("$(env "${env[@]}" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
                build/bench/malloc_work_gomem "$w" 1 2>&1 | awk '/Collected/ {print $NF}')")
        done
        awk -v w="$w" -v a="${i[0]}" -v b="${i[1]}" 'BEGIN {printf "  %-9s %15d %15d %8.4f\n", w, a, b, b / a}'
    done
fi
