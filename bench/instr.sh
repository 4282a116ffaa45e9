#!/usr/bin/env bash
# Instructions per operation on the hot paths (bench/hotpaths.c), counted by
# valgrind's callgrind: the difference between a run of 2N and one of N
# iterations, over N, so start-up and exit cancel out. Instruction counts do
# not move with the machine's load, so this is the check that a change to a
# hot path did not make it dearer. stack is a gm_stackalloc(2048) +
# gm_stackfree pair, libc2048 the C library's malloc(2048) + free beside
# it.   bench/instr.sh [BUILD]     OPS="malloc calloc" bench/instr.sh: some only
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
make -s BUILD="$build" "$build/bench/hotpaths" >/dev/null
command -v valgrind >/dev/null || { echo "instr.sh: valgrind not installed"; exit 1; }
n=200000
count() { # op iterations -> total instructions
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$build/bench/hotpaths" "$1" "$2" 2>&1 |
        awk '/Collected/ {print $NF}'
}
printf '%-8s %s\n' "op" "instructions/op (callgrind, (I(2N) - I(N)) / N, N = $n)"
for op in ${OPS:-malloc calloc yield chan go godedicated stack libc2048}; do
    a=$(count "$op" "$n")
    b=$(count "$op" $((2 * n)))
    awk -v a="$a" -v b="$b" -v n="$n" -v op="$op" 'BEGIN {printf "%-8s %.1f\n", op, (b - a) / n}'
done
