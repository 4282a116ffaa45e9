#!/usr/bin/env bash
# make install as a user does it, judged from outside the tree:
#   1. install into a scratch PREFIX; build a program with
#      `pkg-config --cflags --libs gomem` (shared: it runs and records
#      libgomem.so.MAJOR) and with --static (fully static: gomem's malloc);
#      the same with gomem-core;
#   2. a staged install (DESTDIR) puts every file under DESTDIR/PREFIX, and
#      make uninstall with the same variables leaves no file behind;
#   3. an install where it may not write fails, and uninstall cleans up.
# Step 1 also checks that every man page is installed and that
# `man -M PREFIX/share/man gm_free` shows gm_free's entry.
# Prints a line per check and "N passed, N failed" (tests/run_all.sh's form).
set -u
cd "$(dirname "$0")/.."
build=${BUILD:-build}
command -v pkg-config >/dev/null || { echo "install.sh: pkg-config is needed (apt-get install pkg-config)"; exit 1; }
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { # name command...
    local name=$1; shift
    if "$@" >"$tmp/out" 2>&1; then echo "ok   $name"; pass=$((pass + 1));
    else echo "FAIL $name"; sed 's/^/    /' "$tmp/out" | tail -20; fail=$((fail + 1)); fi
}

cat > "$tmp/prog.c" <<'C'
#include <gomem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static gm_chan *c;
static void child(void *arg) { long v = (long)(intptr_t)arg; gm_chan_send(c, &v); }
static void run(void *arg) {
    (void)arg;
    for (long i = 1; i <= 3; i++) gm_go(child, (void *)(intptr_t)i);
    long sum = 0, v;
    for (int i = 0; i < 3; i++) { gm_chan_recv(c, &v); sum += v; }
    printf("sum %ld\n", sum);
}
int main(void) {
    gm_memstats a, b;
    gm_stats(&a);
    char *volatile s = malloc(3000);
    gm_stats(&b);
    printf("malloc is %s\n", b.heap_alloc > a.heap_alloc ? "gomem's" : "libc's");
    free(s);
    c = gm_chan_new(sizeof(long), 0);
    gm_main(run, NULL);
    gm_chan_free(c);
    printf("%s\n", gm_version());
    return 0;
}
C
prefix=$tmp/prefix
version=$(sed -n 's/^#define GM_VERSION_MAJOR \([0-9]*\)$/\1/p' include/gomem.h)
check "make install PREFIX=..." make -s install PREFIX="$prefix" BUILD="$build"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
for pc in gomem gomem-core; do
    want=$([ $pc = gomem ] && echo "gomem's" || echo "libc's")
    lib=$([ $pc = gomem ] && echo libgomem || echo libgomem_core)
    check "$pc: shared build with pkg-config" sh -c "cc \$(pkg-config --cflags $pc) '$tmp/prog.c' -o '$tmp/shared' \$(pkg-config --libs $pc)"
    check "$pc: the program records $lib.so.$version" sh -c "readelf -d '$tmp/shared' | grep -q 'NEEDED.*\\[$lib.so.$version\\]'"
    check "$pc: it runs, malloc is $want" sh -c "LD_LIBRARY_PATH='$prefix/lib' '$tmp/shared' | tr '\\n' ' ' | grep -q \"malloc is $want sum 6\""
    check "$pc: static build with pkg-config --static" sh -c "cc -static \$(pkg-config --cflags $pc) '$tmp/prog.c' -o '$tmp/static' \$(pkg-config --static --libs $pc)"
    check "$pc: the static program runs, malloc is $want" sh -c "'$tmp/static' | tr '\\n' ' ' | grep -q \"malloc is $want sum 6\""
done
# The man pages: each one mkman wrote is installed, and man finds a
# function's page through its .so link (groff alone where man is absent).
mandir=$prefix/share/man
check "every man page is installed" sh -c "cd '$build/man' && find . -name '*.[137]' | sort > '$tmp/built' && cd '$mandir' && find . -type f | sort | diff '$tmp/built' -"
if command -v man >/dev/null; then
    # (sed drops grotty's overstrike bold)
    check "man -M .../share/man gm_free shows gm_malloc(3)" sh -c "MANWIDTH=80 man -M '$mandir' -P cat gm_free 2>&1 | sed 's/.\x08//g' > '$tmp/page' && grep -q '^GM_MALLOC(3)' '$tmp/page' && grep -q '^ *gm_free()' '$tmp/page'"
    check "man -M .../share/man 7 gomem renders the options" sh -c "MANWIDTH=80 man -M '$mandir' -P cat 7 gomem 2>&1 | sed 's/.\x08//g' | grep -q GOMEM_SCAVENGE"
elif command -v groff >/dev/null; then
    check "gm_free's page renders (groff; man is not installed)" sh -c "cd '$mandir' && groff -man -Tutf8 man3/gm_free.3 | sed 's/.\x08//g' | grep -q 'gm_free()'"
else
    echo "skip man pages render: neither man nor groff is installed"
fi
check "the gdb helper is where gdb auto-loads it" test -f "$prefix/share/gdb/auto-load$prefix/lib/libgomem.so.$(pkg-config --modversion gomem)-gdb.py"

stage=$tmp/stage
check "make install DESTDIR=... PREFIX=/usr" make -s install DESTDIR="$stage" PREFIX=/usr BUILD="$build"
check "a staged install writes under DESTDIR/PREFIX only" sh -c "cd '$stage' && ! find . -type f | grep -v '^./usr/'"
check "the staged gomem.pc names PREFIX, not DESTDIR" grep -qx 'prefix=/usr' "$stage/usr/lib/pkgconfig/gomem.pc"
check "make uninstall leaves no file" sh -c "make -s uninstall DESTDIR='$stage' PREFIX=/usr BUILD='$build' && [ -z \"\$(find '$stage' -type f -o -type l)\" ]"

# A prefix whose lib/ may not be written: the install fails, and uninstall
# leaves no file of it. Run as an unprivileged user (root writes anywhere).
ro=$(mktemp -d)
trap 'chmod -R u+w "$tmp" "$ro"; rm -rf "$tmp" "$ro"' EXIT
mkdir -p "$ro/usr/lib"
chmod 755 "$ro"; chmod 777 "$ro/usr"; chmod 555 "$ro/usr/lib"
as_user=""
if [ "$(id -u)" -eq 0 ]; then
    command -v setpriv >/dev/null && as_user="setpriv --reuid=nobody --regid=nogroup --clear-groups"
fi
if [ "$(id -u)" -eq 0 ] && [ -z "$as_user" ]; then
    echo "FAIL install without write permission: running as root without setpriv to drop privileges"
    fail=$((fail + 1))
else
    check "install without write permission fails" sh -c "! $as_user make -s install DESTDIR='$ro' PREFIX=/usr BUILD='$build'"
    chmod u+w "$ro/usr/lib"
    check "uninstall removes what it wrote" sh -c "make -s uninstall DESTDIR='$ro' PREFIX=/usr BUILD='$build' && [ -z \"\$(find '$ro' -type f -o -type l)\" ]"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
