#!/usr/bin/env bash
# Runs bench/workloads/malloc_work.c (its head lists the workloads: the
# classic shapes of the allocator literature) under glibc, jemalloc,
# mimalloc, tcmalloc and gomem, every one through LD_PRELOAD on the same
# binary (gomem: build/libgomem.so, the drop-in malloc; gomem-secure: the
# same with GOMEM_SECURE=1), interleaved within each round, and prints per
# workload and thread count the min/median wall time and the median max
# RSS of RUNS rounds, the ratios to glibc and to mimalloc, and geometric
# means over every row.
#
#   bench/malloc.sh [RUNS] [WORKLOADS...]      (default 3 runs, all workloads)
#   THREADS="1 2" (default) chooses the thread counts.
#
# Installs the peers from Debian packages when missing and run as root
# (libjemalloc2, libmimalloc2.0, libtcmalloc-minimal4); a peer that is not
# there is skipped and said so. Writes build/bench/malloc.csv as well.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
WORKLOADS=${*:-churn rfree strings powerlaw rptest cfrac espresso prodcons larson mstress cscratch cthrash realloc regrow large}
THREADS=${THREADS:-1 2}
LIBDIR=/usr/lib/x86_64-linux-gnu

need=()
[ -e $LIBDIR/libjemalloc.so.2 ] || need+=(libjemalloc2)
[ -e $LIBDIR/libmimalloc.so.2 ] || need+=(libmimalloc2.0)
[ -e $LIBDIR/libtcmalloc_minimal.so.4 ] || need+=(libtcmalloc-minimal4)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]}" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 ||
        echo "install failed; missing peers are skipped" >&2
fi

make -s lib build/bench/malloc_work_libc

allocs=(glibc)
declare -A preload=([glibc]="")
for pair in jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    name=${pair%%:*} lib=$LIBDIR/${pair#*:}
    if [ -e "$lib" ]; then allocs+=("$name"); preload[$name]=$lib; else echo "skipping $name: $lib missing" >&2; fi
done
allocs+=(gomem gomem-secure)
preload[gomem]=$PWD/build/libgomem.so
preload[gomem-secure]=$PWD/build/libgomem.so

echo "bench/malloc.sh: $(nproc) cores, $RUNS runs each, min/median wall ms and max RSS KiB (median)"
echo "compared: ${allocs[*]}; workloads: $WORKLOADS; threads: $THREADS"
csv=build/bench/malloc.csv
echo "workload,threads,allocator,run,ms,maxrss_kib,rss_after_free_kib" > "$csv"

# median of numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A tmin tmed rss
for w in $WORKLOADS; do
    for t in $THREADS; do
        for r in $(seq 1 "$RUNS"); do
            # Interleave allocators within each run so that machine noise
            # hits them alike.
            for a in "${allocs[@]}"; do
                env=(LD_PRELOAD=${preload[$a]})
                [ "$a" = gomem-secure ] && env+=(GOMEM_SECURE=1) # the hardened mode's cost
                out=$(env "${env[@]}" build/bench/malloc_work_libc "$w" "$t") ||
                    { echo "bench/malloc.sh: $w with $t threads under $a failed (status $?)" >&2; exit 1; }
                set -- $out
                echo "$w,$t,$a,$r,$3,$4,$5" >> "$csv"
            done
        done
        printf '\n%-9s threads=%s\n' "$w" "$t"
        printf '  %-12s %9s %9s %10s %10s %8s %9s\n' allocator min_ms med_ms maxrss_KiB after_KiB t/glibc t/mimalloc
        declare -A after
        for a in "${allocs[@]}"; do # every median first: each row's ratios need mimalloc's
            rows=$(awk -F, -v w="$w" -v t="$t" -v a="$a" '$1==w && $2==t && $3==a' "$csv")
            tmin[$a]=$(echo "$rows" | cut -d, -f5 | sort -n | head -1)
            tmed[$a]=$(echo "$rows" | cut -d, -f5 | median)
            rss[$a]=$(echo "$rows" | cut -d, -f6 | median)
            after[$a]=$(echo "$rows" | cut -d, -f7 | median)
        done
        for a in "${allocs[@]}"; do
            printf '  %-12s %9s %9s %10s %10s' "$a" "${tmin[$a]}" "${tmed[$a]}" "${rss[$a]}" "${after[$a]}"
            g=${tmed[glibc]} m=${tmed[mimalloc]:-}
            printf ' %8s' "$(awk -v x="${tmed[$a]}" -v y="$g" 'BEGIN{printf "%.2f", x/y}')"
            [ -n "$m" ] && printf ' %9s' "$(awk -v x="${tmed[$a]}" -v y="$m" 'BEGIN{printf "%.2f", x/y}')"
            echo
        done
    done
done

echo
echo "geomean over all workloads and thread counts (median times, max RSS):"
awk -F, 'NR>1 {k=$1","$2","$3; t[k]=t[k]" "$5; r[k]=r[k]" "$6; al[$3]=1; wk[$1","$2]=1}
function med(s,   n,a,i,j,x) { n=split(s,a," "); for(i=1;i<=n;i++) for(j=i+1;j<=n;j++) if(a[j]<a[i]){x=a[i];a[i]=a[j];a[j]=x}
    return (n%2)? a[(n+1)/2] : (a[n/2]+a[n/2+1])/2 }
END {
    for (a in al) { lt=0; lr=0; n=0
        for (w in wk) { k=w","a; kg=w",glibc"; km=w",mimalloc"
            lt+=log(med(t[k])/med(t[kg])); lr+=log(med(r[k])/med(r[kg]))
            n++ }
        gt[a]=exp(lt/n); gr[a]=exp(lr/n) }
    for (a in al) {
        line = sprintf("  %-12s time/glibc %.2f  rss/glibc %.2f", a, gt[a], gr[a])
        if ("mimalloc" in gt)
            line = line sprintf("  time/mimalloc %.2f  rss/mimalloc %.2f", gt[a] / gt["mimalloc"], gr[a] / gr["mimalloc"])
        print line
    }
    if ("gomem-secure" in gt)
        printf "  ~ hardened mode cost, gomem-secure / gomem: time %.3f  rss %.3f (geomean)\n",
               gt["gomem-secure"] / gt["gomem"], gr["gomem-secure"] / gr["gomem"]
}' "$csv" | sort
echo "(csv: $csv)"
