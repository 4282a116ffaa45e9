#!/usr/bin/env bash
# make bench: runs the heap benchmarks beside glibc, jemalloc, mimalloc and
# tcmalloc (bench/malloc.sh) and the coroutine benchmarks beside Go and
# Boost.Context (bench/coro.sh), then writes
#   build/bench/results.csv    benchmark,allocator,metric,unit,min,median,runs
#   build/bench/report.html    bar charts per metric (gomem-info bench-report)
#   bench/report.sh [RUNS]     (default 3; BENCH_WORKLOADS narrows malloc.sh)
# Peers missing from the machine are installed when run as root (Debian
# packages), else skipped and said so by the scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
mkdir -p build/bench
make -s build/gomem-info
out=build/bench/results.csv
echo "benchmark,allocator,metric,unit,min,median,runs" > "$out"

# shellcheck disable=SC2086
bench/malloc.sh "$RUNS" ${BENCH_WORKLOADS:-} | tee build/bench/malloc.txt
# malloc.csv: workload,threads,allocator,run,ms,maxrss_kib,rss_after_free_kib
awk -F, 'NR > 1 { k = $1 "/" $2 "t," $3; t[k] = t[k] " " $5; r[k] = r[k] " " $6 * 1024; n[k]++ }
function sorted(s, a,   m, i, j, x) { m = split(s, a, " "); for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
    if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x } return m }
function med(s,   a, m) { m = sorted(s, a); return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
function mn(s,   a) { sorted(s, a); return a[1] }
END { for (k in t) { printf "%s,time,ms,%s,%s,%d\n", k, mn(t[k]), med(t[k]), n[k] }
      for (k in r) { printf "%s,max RSS,bytes,%s,%s,%d\n", k, mn(r[k]), med(r[k]), n[k] } }' \
    build/bench/malloc.csv | sort >> "$out"

# coro.sh prints Go-style lines: "BenchmarkName-P  N  X ns/op  (min of R runs; median M ...)".
bench/coro.sh "$RUNS" 1000000 | tee build/bench/coro.txt
awk '/^Benchmark/ && / ns\/op/ {
        name = $1; who = "gomem"
        if (name ~ /-go$/) who = "Go"; else if (name ~ /-boost$/) who = "Boost.Context"
        sub(/-[A-Za-z0-9]+$/, "", name); sub(/^Benchmark/, "", name)
        if (name == "CoroYield/Gosched") name = "CoroYield/copied"   # Go beside gomem copied yield
        if (name == "BoostJumpPair") name = "CoroYield/dedicated"     # a raw switch pair beside it
        med = ""; runs = ""
        if (match($0, /min of [0-9]+ runs; median [0-9.]+/)) {
            split(substr($0, RSTART, RLENGTH), f, " "); runs = f[3]; med = f[6]
        }
        mn = $3
        if (who == "Boost.Context" && match($0, /one jump [0-9.]+/)) {   # one switch, as one gm_yield
            split(substr($0, RSTART, RLENGTH), f, " "); mn = f[3]; med = med / 2; who = "Boost.Context (one jump)"
        }
        printf "%s,%s,time,ns/op,%s,%s,%s\n", name, who, mn, med, runs
     }
     /idle (coroutines|goroutines), RSS/ && !seenIdle[$0 ~ /Go/]++ {   # the one-worker run
        who = ($0 ~ /Go/) ? "Go" : "gomem"
        for (i = 1; i <= NF; i++) if ($i == "bytes" && $(i + 1) == "per") b = $(i - 1)
        printf "IdleCoroutine,%s,memory,bytes,%s,%s,1\n", who, b, b
     }' build/bench/coro.txt >> "$out"

build/gomem-info bench-report "$out" -o build/bench/report.html
echo
echo "wrote $out and build/bench/report.html ($(($(wc -l < "$out") - 1)) results)"
