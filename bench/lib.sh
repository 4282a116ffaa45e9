#!/usr/bin/env bash
# Helpers shared by the scripts that run gomem beside Go (sourced, from the
# tree's top directory):
#   need_go            installs Debian's golang-go when missing (as root);
#                      fails with a message when there is still no go
#   go_bench NAME...   builds bench/go/NAME.go into build/bench/go/NAME
#   stats              min and median of a column of numbers on stdin:
#                      "min MIN median MEDIAN"
need_go() {
    if ! command -v go >/dev/null && [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go) >/dev/null 2>&1 || true
    fi
    command -v go >/dev/null || { echo "go not installed: nothing to compare with"; exit 1; }
}

go_bench() {
    mkdir -p build/bench/go
    local p
    for p in "$@"; do
        (cd bench/go && GOCACHE=${GOCACHE:-/tmp/gocache} go build -o "../../build/bench/go/$p" "$p.go")
    done
}

stats() { sort -g | awk '{v[NR]=$1} END {printf "min %s median %s", v[1], v[int((NR+1)/2)]}'; }
