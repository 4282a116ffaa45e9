#!/usr/bin/env bash
# Real programs under the drop-in malloc: each runs once with the C
# library's malloc and once with LD_PRELOAD=build/libgomem.so (and
# GOMEM_STATS=1), and their outputs must be identical. The stats printed at
# exit must add up. Ends with "N passed, N failed" like every test.
# Programs missing from the machine are reported and counted as skipped.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LIB=$PWD/$BUILD/libgomem.so
[ -e "$LIB" ] || { echo "$LIB missing: make lib first"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0 skip=0

# With BENCH_RUNS set (bench/realworld.sh), each program is instead timed
# under every allocator in BENCH_ALLOCS ("name=preload-path" words; gomem's
# is this build's libgomem.so): wall seconds and max RSS of the largest
# process, CPU time (user + system, all processes: what the program
# itself spent, less moved by other tenants of a shared machine than wall
# time) and page faults (all processes; nearly the same every run: what a
# program of many short processes pays for an allocator's fixed cost).
# Each of the BENCH_RUNS rounds runs every allocator once, in turn, so a
# machine that slows down for a while slows all of them; the ratios to
# glibc are taken per round (then their median), besides min and median
# times. Every round's ratios also go to BENCH_CSV.rounds (appended).
# BENCH_SPAWN (bench/realworld.sh sets it) names build/bench/spawnrss,
# which starts each program: python3's own 14 MB would otherwise be the
# floor of every peak RSS measured here.
bench_one() { # NAME CMD...
    local name=$1; shift
    declare -A t r c f
    local allocs=() spec a
    for spec in $BENCH_ALLOCS; do allocs+=("$spec"); done
    for k in $(seq 1 "$BENCH_RUNS"); do
        for spec in "${allocs[@]}"; do
            local lib=${spec#*=} m
            a=${spec%%=*}
            rm -rf "$work/$name-b"; mkdir -p "$work/$name-b"
            m=$(cd "$work/$name-b" && PRELOAD=$lib python3 -c '
import os, resource, subprocess, sys, tempfile, time
env = dict(os.environ)
spawn = env.get("BENCH_SPAWN")
argv = sys.argv[1:]
if spawn: # the peak RSS from a small parent (bench/spawnrss.c says why)
    env["SPAWNRSS_PRELOAD"] = env.get("PRELOAD", "")
    out = tempfile.NamedTemporaryFile(delete=False).name
    argv = [spawn, out] + argv
elif env.get("PRELOAD"):
    env["LD_PRELOAD"] = env["PRELOAD"]
t = time.monotonic()
subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t = time.monotonic() - t
if spawn:
    rss, cpu, flt = open(out).read().split()
    os.unlink(out)
    print("%.3f %s %s %s" % (t, rss, cpu, flt))
else:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("%.3f %d %.3f %d" % (t, r.ru_maxrss, r.ru_utime + r.ru_stime, r.ru_minflt))
' "$@")
            read -r t[$a,$k] r[$a,$k] c[$a,$k] f[$a,$k] <<< "$m"
        done
    done
    med() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
    ratio() { awk -v x="$1" -v y="$2" 'BEGIN{printf "%.4f", (y > 0 ? x/y : 1)}'; } # 1 when glibc measured none
    for spec in "${allocs[@]}"; do
        a=${spec%%=*}
        local ts=() rs=() tr=() rr=() cr=() fr=() tmin tm rm trm rrm crm frm
        for k in $(seq 1 "$BENCH_RUNS"); do
            ts+=("${t[$a,$k]}"); rs+=("${r[$a,$k]}")
            tr+=("$(ratio "${t[$a,$k]}" "${t[glibc,$k]}")")
            rr+=("$(ratio "${r[$a,$k]}" "${r[glibc,$k]}")")
            cr+=("$(ratio "${c[$a,$k]}" "${c[glibc,$k]}")")
            fr+=("$(ratio "${f[$a,$k]}" "${f[glibc,$k]}")")
        done
        tmin=$(printf '%s\n' "${ts[@]}" | sort -g | head -1)
        tm=$(printf '%s\n' "${ts[@]}" | med)
        rm=$(printf '%s\n' "${rs[@]}" | med)
        trm=$(printf '%s\n' "${tr[@]}" | med)
        rrm=$(printf '%s\n' "${rr[@]}" | med)
        crm=$(printf '%s\n' "${cr[@]}" | med)
        frm=$(printf '%s\n' "${fr[@]}" | med)
        printf '  %-12s %-9s %8s %8s %10s %8.2f %8.2f %8.2f %8.3f\n' "$name" "$a" "$tmin" "$tm" "$rm" "$trm" "$rrm" "$crm" "$frm"
        echo "$name,$a,$tm,$rm,$trm,$rrm,$crm,$frm" >> "$BENCH_CSV"
        for k in $(seq 1 "$BENCH_RUNS"); do # every round's ratios, for bench/realworld.sh's intervals
            echo "$name,$a,$k,${tr[k-1]},${rr[k-1]},${cr[k-1]},${fr[k-1]}" >> "$BENCH_CSV.rounds"
        done
    done
}

# With BENCH_INSTR set (bench/realworld.sh --instr), each program instead
# runs once under callgrind per allocator, children traced, and the
# instructions of all its processes are summed: counts that do not move
# with this machine's noise (they miss cache misses and page-fault time).
# The allocators run two at a time. BENCH_ONLY="perl gcc" picks programs.
instr_one() { # NAME CMD...
    local name=$1; shift
    local spec a lib d n
    for spec in $BENCH_ALLOCS; do
        a=${spec%%=*} lib=${spec#*=} d=$work/$name-cg-$a
        rm -rf "$d"; mkdir -p "$d/out"
        (cd "$d" && LD_PRELOAD=$lib valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$d/out/cg.%p" \
            "$@" > /dev/null 2> "$d/valgrind.err") &
        [ "$(jobs -rp | wc -l)" -lt 2 ] || wait -n || true
    done
    wait
    for spec in $BENCH_ALLOCS; do
        a=${spec%%=*}
        n=$(awk '/Collected :/ {s += $NF} END {printf "%.0f", s}' "$work/$name-cg-$a/valgrind.err")
        echo "$name,$a,$n" >> "$BENCH_CSV"
    done
    awk -F, -v p="$name" '$1 == p { if ($2 == "glibc") g = $3; n[++k] = $2; v[k] = $3 }
        END { for (i = 1; i <= k; i++) printf "  %-12s %-9s %14.0f %8.3f\n", p, n[i], v[i], g ? v[i] / g : 0 }' "$BENCH_CSV"
}

# run NAME CMD...: CMD writes its result on stdout, run from $work/NAME-{ref,gm}
run() {
    local name=$1; shift
    if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $name "* ]]; then return; fi
    if [ -n "${BENCH_INSTR:-}" ]; then instr_one "$name" "$@"; return; fi
    if [ -n "${BENCH_RUNS:-}" ]; then bench_one "$name" "$@"; return; fi
    for mode in ref gm; do
        rm -rf "$work/$name-$mode"; mkdir -p "$work/$name-$mode"
        if [ $mode = ref ]; then
            (cd "$work/$name-$mode" && "$@") > "$work/$name.$mode.out" 2> "$work/$name.$mode.err"
        else
            (cd "$work/$name-$mode" && GOMEM_STATS=1 LD_PRELOAD=$LIB "$@") > "$work/$name.$mode.out" 2> "$work/$name.$mode.err"
        fi
        echo $? > "$work/$name.$mode.rc"
    done
    local why=""
    cmp -s "$work/$name.ref.out" "$work/$name.gm.out" || why="output differs"
    [ "$(cat "$work/$name.ref.rc")" = "$(cat "$work/$name.gm.rc")" ] || why="$why exit $(cat "$work/$name.ref.rc") vs $(cat "$work/$name.gm.rc")"
    grep -q '^  "mallocs"' "$work/$name.gm.err" || why="$why no stats at exit"
    if ! awk '/^  "mallocs":/ {gsub(/[^0-9]/,"",$2); m=$2} /^  "frees":/ {gsub(/[^0-9]/,"",$2); f=$2}
              /^  "heap_objects":/ {gsub(/[^0-9]/,"",$2); o=$2}
              END {exit !(m != "" && m - f == o)}' "$work/$name.gm.err"; then
        why="$why stats do not add up (mallocs - frees != heap_objects)"
    fi
    if grep -q "^gomem: " "$work/$name.gm.err"; then why="$why gomem reported: $(grep -m1 '^gomem: ' "$work/$name.gm.err")"; fi
    if [ -z "$why" ]; then
        local m; m=$(grep -m1 '^  "mallocs"' "$work/$name.gm.err" | tr -dc 0-9)
        echo "ok   $name ($(wc -c < "$work/$name.ref.out") bytes of output identical; $m mallocs in gomem)"
        pass=$((pass + 1))
    else
        echo "FAIL $name:$why"; tail -3 "$work/$name.gm.err"
        fail=$((fail + 1))
    fi
}
have() { command -v "$1" >/dev/null 2>&1 || { echo "skip $2: $1 not installed"; skip=$((skip + 1)); return 1; }; }

# Input data: 8 MiB of varied text.
python3 - > "$work/data.txt" <<'PY' 2>/dev/null || awk 'BEGIN{for(i=0;i<300000;i++) print i, i*i%9973, "line", i%97}' > "$work/data.txt"
import random
random.seed(7)
words = ["gopher", "stack", "heap", "span", "arena", "tiny", "cache", "central", "page", "scavenge"]
for i in range(300000):
    print(i, " ".join(random.choice(words) for _ in range(random.randint(1, 8))), random.random())
PY

if have python3 python; then
    cat > "$work/py.py" <<'PY'
import json, collections, re
d = collections.Counter()
rows = []
for line in open("../data.txt"):
    parts = line.split()
    for w in parts[1:-1]:
        d[w] += 1
    rows.append({"id": int(parts[0]), "words": parts[1:-1], "x": parts[-1]})
s = json.dumps(rows[:50000])
back = json.loads(s)
print(len(s), len(back), sorted(d.items())[:5])
print(sum(len(r["words"]) for r in back), len(re.findall(r"heap \w+", open("../data.txt").read())))
PY
    # The interpreter itself: a python3 on PATH may be a wrapper script
    # (pyenv's shim runs some 40 bash processes first), which would time
    # bash under each allocator instead of python.
    py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
    run python "${py:-python3}" ../py.py
fi
if have perl perl; then
    run perl perl -e 'my %c; while (<>) { my @f = split; $c{$_}++ for @f[1..$#f-1]; push @l, join("-", reverse @f) } print join(",", map {"$_=$c{$_}"} sort keys %c), "\n", scalar(@l), " ", length(join("", @l)), "\n"' ../data.txt
fi
if have xz xz; then
    run xz bash -c 'xz -T2 -2 -c ../data.txt > d.xz && xz -d -c d.xz | md5sum && wc -c < d.xz'
fi
if have zstd zstd; then
    run zstd bash -c 'zstd -q -T2 -12 -c ../data.txt > d.zst && zstd -q -d -c d.zst | md5sum && wc -c < d.zst'
fi
if have sqlite3 sqlite3; then
    run sqlite3 bash -c 'sqlite3 t.db "create table t(id integer primary key, w text, x real);" &&
        awk "{print \$1\"|\"\$2\"|\"\$NF}" ../data.txt > rows.psv &&
        sqlite3 t.db ".mode list" ".import rows.psv t" "create index iw on t(w);" \
            "select w, count(*), round(avg(x), 6) from t group by w order by w;" \
            "select count(*) from t a join t b on a.id = b.id + 1 where a.w = b.w;"'
fi
if have git git; then
    run git bash -c 'export GIT_AUTHOR_NAME=g GIT_AUTHOR_EMAIL=g@x GIT_COMMITTER_NAME=g GIT_COMMITTER_EMAIL=g@x \
        GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z" HOME=$PWD;
        git init -q -b main r && cd r && for i in $(seq 1 30); do head -c $((i * 20000)) ../../data.txt > f$((i % 7)).txt; git add -A; git commit -q -m "c$i"; done &&
        git log --format="%H %s" | head -3 && git gc -q && git count-objects -v | grep -v size && git diff HEAD~5 --stat | tail -1'
fi
if have gcc gcc; then
    run gcc gcc -O2 -S -o - -I"$PWD/include" -I"$PWD/src" -D_GNU_SOURCE "$PWD/src/mheap.c"
fi
if have g++ g++; then
    cat > "$work/mt.cpp" <<'CPP'
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
int main() {
    std::map<std::string, long> total;
    std::mutex mu;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++)
        ts.emplace_back([&, t] {
            std::map<std::string, long> local;
            for (int i = 0; i < 200000; i++) {
                std::string k = "key" + std::to_string((i * 7 + t) % 5000);
                local[k] += i;
                std::vector<int> v(i % 50, t);
                local[k] += (long)v.size();
            }
            std::lock_guard<std::mutex> g(mu);
            for (auto &kv : local) total[kv.first] += kv.second;
        });
    for (auto &th : ts) th.join();
    long sum = 0;
    for (auto &kv : total) sum += kv.second;
    std::cout << total.size() << " " << sum << "\n";
}
CPP
    if g++ -O2 -pthread -o "$work/mt" "$work/mt.cpp"; then
        run cxx_threads "$work/mt"
    else
        echo "FAIL cxx_threads: could not compile"; fail=$((fail + 1))
    fi
fi
echo "($skip skipped)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
