#!/usr/bin/env bash
# tools/gomem-gdb.py against a live program: gm-coroutines lists the parked
# coroutines with their wait reasons, gm-bt shows a parked dedicated
# coroutine's frames, a copied one's while they are on its execution stack
# (and under GOMEM_DEBUG=stackcheck, always).
# Skipped (exit 0, says so) where gdb is absent.  tests/gdb/run.sh BUILD
set -u
build=${1:-build}
command -v gdb >/dev/null || { echo "test-gdb: gdb not installed, skipped"; exit 0; }
cd "$(dirname "$0")/../.."
fail=0
run() { gdb -q -batch -ex "source tools/gomem-gdb.py" -ex "break stop_here" -ex run "$@" "$build/tests/gdb_target" 2>&1; }
# One execution stack: the running copied coroutine owns it, so the parked
# copied one's frames are in its saved copy.
out=$(GOMEM_EXECSTACKS=1 run -ex gm-coroutines -ex "gm-bt 2" -ex "gm-bt 3")
for want in 'coroutine 2 "sleeper" \[park\] dedicated' 'coroutine 3 "napper" \[sleep\] copied' \
            'in sleeper' 'parked_here' 'its frames are in its saved copy'; do
    printf '%s\n' "$out" | grep -q "$want" || { echo "test-gdb: missing '$want' in:"; printf '%s\n' "$out"; fail=1; }
done
out=$(GOMEM_DEBUG=stackcheck run -ex "gm-bt 3")
printf '%s\n' "$out" | grep -q 'in copied' || { echo "test-gdb: stackcheck backtrace missing:"; printf '%s\n' "$out"; fail=1; }
# Several (the default): its frames are still on its own execution stack.
out=$(run -ex "gm-bt 3")
printf '%s\n' "$out" | grep -q 'in copied' || { echo "test-gdb: backtrace on an execution stack missing:"; printf '%s\n' "$out"; fail=1; }
[ $fail -eq 0 ] && echo "test-gdb: gm-coroutines and gm-bt work"
exit $fail
