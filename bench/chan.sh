#!/usr/bin/env bash
# Channels, the prime sieve and a TCP echo server, gomem beside Go in one
# run (the channel figures of docs/performance.md).
#   bench/chan.sh [RUNS] [ECHO_CONNECTIONS] [ECHO_SECONDS]
#   - unbuffered ping-pong round trip, one worker (GOMEM_PROCS=1 / GOMAXPROCS=1)
#   - buffered channel (cap 128) throughput, 1 producer / 1 consumer, on one
#     worker and on two (gomem places the consumer on the second worker)
#   - Go's concurrent prime sieve to the 10,000th prime: time and peak RSS,
#     gomem's filters copied (the default: placed by the scheduler, and placed
#     by the program in blocks of 500 per worker) and dedicated (which move
#     to the second worker)
#   - echo server with ECHO_CONNECTIONS (default 10000) connections on
#     127.0.0.1 for ECHO_SECONDS (default 3): requests/s, server peak RSS
# Each line: min and median of RUNS (default 3) runs, gomem and Go
# interleaved. Installs Debian's golang-go when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
CONNS=${2:-10000}
SECS=${3:-3}
. bench/lib.sh
need_go
make -s build/bench/chan build/examples/sieve build/examples/echo
go_bench chan sieve echo
echo "machine: $(nproc) CPUs, $(uname -r); $(go version | cut -d' ' -f3)"

echo "== channel micro-benchmarks ($RUNS runs each, inside each program)"
for procs in 1 2; do
    GOMEM_PROCS=$procs build/bench/chan "$RUNS"
    GOMAXPROCS=$procs build/bench/go/chan "$RUNS"
done

echo "== prime sieve, 10,000th prime ($RUNS runs, interleaved): gomem's filters copied (the default; and placed in blocks of 500 per worker) and dedicated (16 KiB)"
for procs in 1 2; do
    for v in g gb gd go; do : > /tmp/sieve_$v.$$; : > /tmp/sieve_${v}r.$$; done
    for r in $(seq "$RUNS"); do
        for v in g gb gd go; do
            case $v in
            g) GOMEM_PROCS=$procs build/examples/sieve 10000 > /tmp/out.$$ ;;
            gb) GOMEM_PROCS=$procs build/examples/sieve 10000 blocks > /tmp/out.$$ ;;
            gd) GOMEM_PROCS=$procs build/examples/sieve 10000 dedicated > /tmp/out.$$ ;;
            go) GOMAXPROCS=$procs build/bench/go/sieve 10000 > /tmp/out.$$ ;;
            esac
            grep -q "prime 10000 = 104729" /tmp/out.$$ || { cat /tmp/out.$$; exit 1; }
            sed -n 's/^time \([0-9.]*\) ms, peak RSS \([0-9]*\) KiB.*/\1 \2/p' /tmp/out.$$ |
                { read -r t m; echo "$t" >> /tmp/sieve_$v.$$; echo "$m" >> /tmp/sieve_${v}r.$$; }
        done
    done
    echo "procs=$procs gomem copied:    time ms $(stats < /tmp/sieve_g.$$), peak RSS KiB $(stats < /tmp/sieve_gr.$$)"
    echo "procs=$procs gomem blocks:    time ms $(stats < /tmp/sieve_gb.$$), peak RSS KiB $(stats < /tmp/sieve_gbr.$$)"
    echo "procs=$procs gomem dedicated: time ms $(stats < /tmp/sieve_gd.$$), peak RSS KiB $(stats < /tmp/sieve_gdr.$$)"
    echo "procs=$procs go:              time ms $(stats < /tmp/sieve_go.$$), peak RSS KiB $(stats < /tmp/sieve_gor.$$)"
done

echo "== echo server, $CONNS connections on 127.0.0.1, ${SECS}s ($RUNS runs, interleaved; default workers/GOMAXPROCS)"
: > /tmp/echo_g.$$; : > /tmp/echo_go.$$; : > /tmp/echo_gr.$$; : > /tmp/echo_gor.$$
for r in $(seq "$RUNS"); do
    build/examples/echo "$CONNS" "$SECS" > /tmp/out.$$ || { cat /tmp/out.$$; exit 1; }
    sed -n 's/.* \([0-9]*\) requests\/s.*/\1/p' /tmp/out.$$ >> /tmp/echo_g.$$
    sed -n 's/^server: .*peak RSS \([0-9]*\) KiB.*/\1/p' /tmp/out.$$ >> /tmp/echo_gr.$$
    build/bench/go/echo "$CONNS" "$SECS" > /tmp/out.$$ || { cat /tmp/out.$$; exit 1; }
    sed -n 's/.* \([0-9]*\) requests\/s.*/\1/p' /tmp/out.$$ >> /tmp/echo_go.$$
    sed -n 's/^server: .*peak RSS \([0-9]*\) KiB.*/\1/p' /tmp/out.$$ >> /tmp/echo_gor.$$
done
echo "gomem: requests/s $(stats < /tmp/echo_g.$$), server peak RSS KiB $(stats < /tmp/echo_gr.$$)"
echo "go:    requests/s $(stats < /tmp/echo_go.$$), server peak RSS KiB $(stats < /tmp/echo_gor.$$)"
rm -f /tmp/*.$$
