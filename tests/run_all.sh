#!/usr/bin/env bash
# Runs every test binary given, sums their "N passed, N failed" lines (counts
# of tests), prints the total alone on the last line and exits non-zero if
# anything failed. A binary that crashes, prints no summary or runs past
# GOMEM_TEST_TIMEOUT seconds (default 600; a deadlock must fail CI, not eat
# its time budget) counts as one failed test; its output is printed, so its
# last "ok" line shows the test it died after. GOMEM_TEST_RUNNER, when set,
# is a command each binary runs under (make test-aarch64: qemu-aarch64).
set -u
limit=${GOMEM_TEST_TIMEOUT:-600}
runner=${GOMEM_TEST_RUNNER:-}
total_pass=0
total_fail=0
for t in "$@"; do
    # shellcheck disable=SC2086 # the runner may carry arguments
    out=$(timeout -k 10 "$limit" $runner "$t" 2>&1)
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        printf '%s\n' "$out"
        echo "TIMEOUT $t: no result after ${limit}s (deadlock?)"
        total_fail=$((total_fail + 1))
        continue
    fi
    summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$summary" ]; then
        printf '%s\n' "$out"
        echo "CRASH $t (exit $rc, no summary)"
        total_fail=$((total_fail + 1))
        continue
    fi
    p=${summary%% passed*}
    f=${summary#*, }; f=${f%% failed}
    if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out"
        [ "$f" -eq 0 ] && f=1
        echo "FAIL $t: $summary (exit $rc)"
    else
        echo "ok   $t: $summary"
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
