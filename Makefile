# gomem: a plain GNU Makefile. `make run` builds and runs the demo,
# `make test` builds and runs every test. Nothing to install beyond a C11
# compiler (gcc or clang) and pthreads.
#
# Variants build into their own directory so they never mix objects:
#   make test          build/        -O2
#   make test-asan     build-asan/   -fsanitize=address,undefined
#   make test-debug    build-debug/  GM_DEBUG=3 (every invariant checked)

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2 -g
SANITIZE ?=
DEBUG    ?= 0

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# -iquote src: gomem's internal headers are found by #include "..." only, so
# src/malloc.h does not hide the C library's <malloc.h> (override.c uses it).
# -fno-plt: calls into the C library go through GOT entries the dynamic
# linker fills at load time, never through lazily bound PLT slots, whose
# first call runs the resolver on the caller's stack: it saves the vector
# registers there (about 3 KiB with AVX-512), more than a small dedicated
# coroutine stack holds, and its frame can skip that stack's canary.
# -ffunction-sections: a section per function, which tools/hotrename.sh
# can place (and a static link with --gc-sections can drop).
CFLAGS_ALL := -std=c11 $(OPT) $(WARN) -pthread -fPIC -fno-plt -ffunction-sections -fvisibility=hidden \
              -D_GNU_SOURCE -DGM_DEBUG=$(DEBUG) -Iinclude -iquote src $(SANITIZE) $(CFLAGS)
LDFLAGS_ALL := -pthread $(SANITIZE) $(LDFLAGS)

# The target architecture, from the compiler (a cross compiler gives its
# target): only its context switch (src/switch_ARCH.S) and first frame
# (src/sys_ARCH.c) are built.
TARGET := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq ($(filter x86_64-%,$(TARGET)),)
ARCH := amd64
else ifneq ($(filter aarch64-% arm64-%,$(TARGET)),)
ARCH := arm64
else
$(error gomem supports x86-64 (amd64) and AArch64 (arm64) on Linux; $(CC) targets '$(TARGET)')
endif

# mheap.c last: its 32 MiB arena index then ends .bss, and the small
# variables of the files after it share the pages already touched instead of
# a page of their own past the index (two page faults in every process).
LIB_SRCS := $(filter-out src/mheap.c src/sys_%.c,$(wildcard src/*.c)) src/sys_$(ARCH).c src/mheap.c
LIB_ASMS := $(wildcard src/*_$(ARCH).S)
LIB_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) \
            $(patsubst src/%.S,$(BUILD)/obj/%.o,$(LIB_ASMS))
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/*_test.c))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
# docs/stack-or-heap.md's runnable examples: built and run by make test.
DOC_TESTS := $(BUILD)/docs/value_or_pointer $(BUILD)/docs/parked_stack
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
HEADERS  := include/gomem.h $(wildcard src/*.h)

.PHONY: all lib man run test install uninstall test-install test-aarch64 test-musl test-asan test-tsan test-debug test-valgrind test-gdb stress test-realworld fuzz check-escape bench gen clean
all: lib $(BUILD)/gomem-info $(EXAMPLES) man

lib: $(BUILD)/libgomem.a $(BUILD)/libgomem.so $(BUILD)/libgomem_core.a $(BUILD)/libgomem_core.so

# The target's objcopy (a cross compiler's is its triplet's): the archives'
# hidden symbols made local, and tools/hotrename.sh, which places the malloc
# path's functions together.
OBJCOPY ?= $(if $(filter $(shell uname -m)-%,$(TARGET)),objcopy,$(TARGET)-objcopy)

$(BUILD)/obj/%.o: src/%.c $(HEADERS) src/hottext.list
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@
	@sh tools/hotrename.sh $(OBJCOPY) $@

$(BUILD)/obj/%.o: src/%.S
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The version, read from include/gomem.h so that the two cannot disagree.
version_part = $(shell sed -n 's/^\#define GM_VERSION_$(1) \([0-9]*\)$$/\1/p' include/gomem.h)
SOMAJOR := $(call version_part,MAJOR)
VERSION := $(SOMAJOR).$(call version_part,MINOR).$(call version_part,PATCH)

# Two products, each as a static and a shared library:
#   libgomem       the gm_ API, and the drop-in malloc (src/override.c)
#   libgomem_core  the gm_ API alone: the program's malloc stays its own
# A static archive is one object, partially linked, whose internal (hidden)
# symbols are made local: it exports gm_* and the malloc family only, so a
# program may define lock, debug or throw of its own. Being one object, any
# gm_ call links all of it; a program that calls no gm_ function and should
# still get gomem's malloc links with -Wl,--undefined=malloc (docs/malloc.md).
# The installed archives take os_linux.c built with GM_ARCHIVE: plain
# references to libgcc's unwinder, which a static link takes from libgcc_eh,
# where the shared libraries look for it when a profile starts
# (src/os_linux.c, "unwinder").
CORE_OBJS := $(filter-out $(BUILD)/obj/override.o,$(LIB_OBJS))
ARCHIVE_OBJS := $(patsubst $(BUILD)/obj/os_linux.o,$(BUILD)/obj/os_linux_archive.o,$(LIB_OBJS))
ARCHIVE_CORE_OBJS := $(filter-out $(BUILD)/obj/override.o,$(ARCHIVE_OBJS))
$(BUILD)/obj/os_linux_archive.o: src/os_linux.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DGM_ARCHIVE -c $< -o $@
	@sh tools/hotrename.sh $(OBJCOPY) $@
$(BUILD)/gomem.o: $(ARCHIVE_OBJS)
	$(CC) -r -nostdlib -o $@.tmp $^ && $(OBJCOPY) --localize-hidden $@.tmp $@ && rm -f $@.tmp
$(BUILD)/gomem_core.o: $(ARCHIVE_CORE_OBJS)
	$(CC) -r -nostdlib -o $@.tmp $^ && $(OBJCOPY) --localize-hidden $@.tmp $@ && rm -f $@.tmp
$(BUILD)/libgomem.a: $(BUILD)/gomem.o
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/libgomem_core.a: $(BUILD)/gomem_core.o
	@rm -f $@
	ar rcs $@ $^

# What tests, tools, examples and benchmarks link: the core objects as they
# are, internal symbols included (tests reach them through
# tests/export_test.h), and the program's malloc left alone unless it asks
# for gomem's.
CORE := $(BUILD)/libgomem_internal.a
$(CORE): $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

# -Bsymbolic-functions: malloc calls gm_malloc (and every gm_ function its
# callee) directly, not through the PLT and a lazy binding at first call.
# The soname carries the major version: a program records libgomem.so.N.
$(BUILD)/libgomem.so: $(LIB_OBJS)
	$(CC) -shared -Wl,-Bsymbolic-functions -Wl,-soname,libgomem.so.$(SOMAJOR) -o $@ $^ $(LDFLAGS_ALL)
$(BUILD)/libgomem_core.so: $(CORE_OBJS)
	$(CC) -shared -Wl,-Bsymbolic-functions -Wl,-soname,libgomem_core.so.$(SOMAJOR) -o $@ $^ $(LDFLAGS_ALL)

# Tests, tools, examples and benchmarks link the static library, so they can
# reach internal (hidden) symbols through tests/export_test.h.
$(BUILD)/tests/%: tests/%.c tests/testing.h $(CORE) $(HEADERS) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< -o $@ $(CORE) $(LDFLAGS_ALL) -lm

# The profiler's test runs gomem-info and a program under LD_PRELOAD.
$(BUILD)/tests/prof_test: $(BUILD)/gomem-info $(BUILD)/libgomem.so

# The drop-in test links the full archive: malloc itself is gomem's.
# -fno-builtin: clang may otherwise drop a malloc whose result is only
# compared with NULL, or a free it can see is wrong.
# It also runs tools/hottext.c, built without gomem, under LD_PRELOAD
# (-fno-builtin: else gcc drops a malloc and free pair whose memory is unused).
$(BUILD)/tests/override_test: tests/override_test.c tests/testing.h $(BUILD)/libgomem.a $(HEADERS) \
                              $(BUILD)/hottext $(BUILD)/libgomem.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fno-builtin $< -o $@ $(BUILD)/libgomem.a $(LDFLAGS_ALL)
$(BUILD)/hottext: tools/hottext.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fno-builtin $< -o $@ $(LDFLAGS_ALL)

# A program that defines names gomem uses inside, linked like a user's:
# against the installed archives (internal symbols local), the full one and
# the core one.
$(BUILD)/tests/link_test: tests/link_test.c tests/testing.h $(BUILD)/libgomem.a include/gomem.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fno-builtin $< -o $@ $(BUILD)/libgomem.a $(LDFLAGS_ALL)
$(BUILD)/tests/link_core_test: tests/link_test.c tests/testing.h $(BUILD)/libgomem_core.a include/gomem.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fno-builtin -DLINK_CORE $< -o $@ $(BUILD)/libgomem_core.a $(LDFLAGS_ALL)

# The same test, linked fully static: libgomem.a replaces libc.a's malloc.
# (Not with sanitizers, which cannot link static.)
STATIC_TESTS := $(BUILD)/tests/link_core_test
ifeq ($(SANITIZE),)
STATIC_TESTS += $(BUILD)/tests/override_static_test
endif
$(BUILD)/tests/override_static_test: tests/override_test.c tests/testing.h $(BUILD)/libgomem.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fno-builtin -static $< -o $@ $(BUILD)/libgomem.a $(LDFLAGS_ALL)

$(BUILD)/examples/%: examples/%.c $(CORE) include/gomem.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< -o $@ $(CORE) $(LDFLAGS_ALL)

$(BUILD)/bench/%: bench/%.c $(CORE) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< -o $@ $(CORE) $(LDFLAGS_ALL) -lm

# bench/workloads/malloc_work.c, built against the C library's malloc (peers
# come in through LD_PRELOAD) and against gm_malloc; bench/malloc.sh runs them.
MALLOC_WORK := $(BUILD)/bench/malloc_work_libc $(BUILD)/bench/malloc_work_gomem \
               $(BUILD)/bench/tiny_json_libc $(BUILD)/bench/tiny_json_gomem
$(BUILD)/bench/tiny_json_libc: bench/workloads/tiny_json.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< -o $@ $(LDFLAGS_ALL)
$(BUILD)/bench/tiny_json_gomem: bench/workloads/tiny_json.c $(CORE) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DUSE_GOMEM $< -o $@ $(CORE) $(LDFLAGS_ALL)
$(BUILD)/bench/malloc_work_libc: bench/workloads/malloc_work.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< -o $@ $(LDFLAGS_ALL)
$(BUILD)/bench/malloc_work_gomem: bench/workloads/malloc_work.c $(CORE) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DUSE_GOMEM $< -o $@ $(CORE) $(LDFLAGS_ALL)

$(BUILD)/gomem-info: tools/gomem_info.c tools/report.c tools/pprof_tool.c tools/report.h $(CORE) $(HEADERS)
	$(CC) $(CFLAGS_ALL) -iquote tools tools/gomem_info.c tools/report.c tools/pprof_tool.c -o $@ $(CORE) $(LDFLAGS_ALL) -lm

$(BUILD)/mksizeclasses: tools/mksizeclasses.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror $< -o $@

# The man pages, made from the text they describe (tools/mkman.c): the API
# pages from include/gomem.h's comments, gomem(7) from docs/options.md,
# gomem-info(1) from tools/gomem_info.c. Generated, never committed: the
# directory is made afresh, so a page for a function since removed goes.
# mkman runs on the build machine: the host's compiler, also when CC
# cross-compiles (make test-aarch64).
HOSTCC ?= cc
$(BUILD)/mkman: tools/mkman.c
	@mkdir -p $(dir $@)
	$(HOSTCC) -std=c11 -O2 -Wall -Wextra -Werror $< -o $@
MAN_SOURCES := include/gomem.h docs/options.md tools/gomem_info.c
man: $(BUILD)/man/stamp
$(BUILD)/man/stamp: $(BUILD)/mkman $(MAN_SOURCES)
	@rm -rf $(BUILD)/man
	$(BUILD)/mkman $(BUILD)/man $(MAN_SOURCES)
	@touch $@

# src/sizeclasses.h is generated and committed; `make gen` rebuilds it and a
# test checks that the committed file is what the generator prints.
gen: $(BUILD)/mksizeclasses
	$(BUILD)/mksizeclasses > src/sizeclasses.h

run: $(BUILD)/examples/demo
	$(BUILD)/examples/demo

test: $(TESTS) $(STATIC_TESTS) $(DOC_TESTS) $(BUILD)/gomem-info $(BUILD)/mksizeclasses $(EXAMPLES) man
	@BUILD=$(BUILD) ./tests/run_all.sh $(TESTS) $(STATIC_TESTS) $(DOC_TESTS)

$(BUILD)/docs/%: docs/examples/%.c $(CORE) include/gomem.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< -o $@ $(CORE) $(LDFLAGS_ALL)

# The escape warnings docs/stack-or-heap.md recommends: gomem's own sources
# are clean under them (and gcc's -fanalyzer), and they do report the three
# escapes in docs/examples/bad_escape.c.
ESCAPE_WARN := -Wreturn-local-addr -Wdangling-pointer=2
check-escape:
	@for f in $(LIB_SRCS); do \
	    gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -iquote src $(ESCAPE_WARN) -fanalyzer -Werror -c $$f -o /dev/null || exit 1; \
	done
	@n=$$(gcc -std=c11 -O2 $(ESCAPE_WARN) -c docs/examples/bad_escape.c -o /dev/null 2>&1 | \
	      grep -cE 'Wreturn-local-addr|Wdangling-pointer'); \
	 if [ "$$n" -lt 3 ]; then echo "check-escape: expected 3 escape warnings on bad_escape.c, got $$n"; exit 1; fi
	@echo "check-escape: src/*.c clean under $(ESCAPE_WARN) -fanalyzer; bad_escape.c's 3 escapes reported"

test-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all" test

# ThreadSanitizer. Its deadlock detector tracks at most 64 held locks; the
# fork handler holds every gomem lock (~80), and gomem checks its own lock
# order (lockrank.c), so that detector is off.
test-tsan:
	TSAN_OPTIONS="detect_deadlocks=0 $$TSAN_OPTIONS" $(MAKE) BUILD=build-tsan OPT="-O1 -g" \
	    SANITIZE="-fsanitize=thread" test

test-debug:
	$(MAKE) BUILD=build-debug DEBUG=3 test

# AArch64 on an x86-64 machine: the whole suite cross-compiled and run
# under qemu-user (docs/ports.md). Each test binary runs as
# `qemu-aarch64 BINARY` (GOMEM_TEST_RUNNER; the tests that start other
# binaries use it too), the dynamic loader and libc from the cross
# compiler's sysroot (QEMU_LD_PREFIX). GOMEM_TEST_QEMU=1 skips, with the
# reason printed, the few checks qemu-user cannot do. The suite runs twice:
# with 4 KiB pages, then with qemu reporting 64 KiB pages (QEMU_PAGESIZE:
# gomem takes the large-page paths; qemu still maps 4 KiB pages, so the
# kernel's alignment rules are not enforced). Then the yield and malloc
# micro-benchmarks once, as a smoke test. Per binary, QEMU_TIMEOUT seconds.
AARCH64_CC ?= aarch64-linux-gnu-gcc
AARCH64_OBJCOPY ?= aarch64-linux-gnu-objcopy
QEMU_AARCH64 ?= qemu-aarch64
AARCH64_SYSROOT ?= /usr/aarch64-linux-gnu
QEMU_TIMEOUT ?= 1200
QEMU_ENV = QEMU_LD_PREFIX=$(AARCH64_SYSROOT) GOMEM_TEST_RUNNER="$(QEMU_AARCH64)" GOMEM_TEST_QEMU=1 \
           GOMEM_TEST_TIMEOUT=$(QEMU_TIMEOUT)
test-aarch64:
	@command -v $(AARCH64_CC) >/dev/null && command -v $(QEMU_AARCH64) >/dev/null || \
	    { echo "test-aarch64: needs $(AARCH64_CC) and $(QEMU_AARCH64) (apt-get install gcc-aarch64-linux-gnu qemu-user)"; exit 1; }
	$(QEMU_ENV) $(MAKE) BUILD=build-aarch64 CC=$(AARCH64_CC) OBJCOPY=$(AARCH64_OBJCOPY) test build-aarch64/bench/hotpaths
	@echo "== the same under qemu with 64 KiB pages"
	$(QEMU_ENV) QEMU_PAGESIZE=65536 $(MAKE) BUILD=build-aarch64 CC=$(AARCH64_CC) OBJCOPY=$(AARCH64_OBJCOPY) test
	@echo "== bench/hotpaths under $(QEMU_AARCH64): emulated wall time per op, NOT comparable to x86-64 numbers"
	@for w in "yield 200000" "malloc 2000000"; do \
	    set -- $$w; t0=$$(date +%s%N); \
	    QEMU_LD_PREFIX=$(AARCH64_SYSROOT) $(QEMU_AARCH64) build-aarch64/bench/hotpaths $$1 0 || exit 1; \
	    t1=$$(date +%s%N); \
	    QEMU_LD_PREFIX=$(AARCH64_SYSROOT) $(QEMU_AARCH64) build-aarch64/bench/hotpaths $$1 $$2 || exit 1; \
	    t2=$$(date +%s%N); \
	    echo "BenchmarkHotpath/$$1/qemu-aarch64 $$2 $$(( (t2 - t1 - (t1 - t0)) / $$2 )) ns/op (emulated)"; \
	done

# musl: make test built with musl-gcc (build-musl/, dynamically linked
# against musl, and override_static_test fully static). musl-gcc builds C
# only and no sanitizers; docs/ports.md says what differs from glibc. Its
# links do not add the .eh_frame_hdr the profiler's unwinder looks for:
# --eh-frame-hdr asks for it.
test-musl:
	@command -v musl-gcc >/dev/null || { echo "test-musl: needs musl-gcc (apt-get install musl-tools)"; exit 1; }
	$(MAKE) BUILD=build-musl CC=musl-gcc LDFLAGS="$(LDFLAGS) -Wl,--eh-frame-hdr" test

# A multi-threaded soak of every API with thread churn and forks, bounded
# by STRESS_SECONDS (default 60); stats must return to the baseline.
STRESS_SECONDS ?= 60
$(BUILD)/tests/stress: tests/stress/stress.c $(CORE) include/gomem.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< -o $@ $(CORE) $(LDFLAGS_ALL)
stress: $(BUILD)/tests/stress
	STRESS_SECONDS=$(STRESS_SECONDS) $(BUILD)/tests/stress

# tools/gomem-gdb.py (gm-coroutines, gm-bt) against a live program.
$(BUILD)/tests/gdb_target: tests/gdb/target.c $(CORE) include/gomem.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -O0 $< -o $@ $(CORE) $(LDFLAGS_ALL)
test-gdb: $(BUILD)/tests/gdb_target
	@tests/gdb/run.sh $(BUILD)

# The coroutine examples and the demo under valgrind's memcheck: every
# stack a coroutine runs on is registered (VALGRIND_STACK_REGISTER), so a
# switch is not a wild stack write. Skipped where valgrind is absent.
VALGRIND_RUNS := "examples/sieve 300" "examples/pipeline 3000 4" "examples/echo 20 0.5 50"
test-valgrind: $(BUILD)/examples/sieve $(BUILD)/examples/pipeline $(BUILD)/examples/echo
	@if ! command -v valgrind >/dev/null; then echo "test-valgrind: valgrind not installed, skipped"; exit 0; fi; \
	for r in $(VALGRIND_RUNS); do \
	    for procs in 1 2; do \
	        GOMEM_PROCS=$$procs valgrind -q --error-exitcode=9 $(BUILD)/$$r > /dev/null || { echo "test-valgrind: $$r (procs $$procs) failed"; exit 1; }; \
	    done; \
	done; echo "test-valgrind: sieve, pipeline and echo clean under memcheck on 1 and 2 workers"

# libFuzzer (clang): random heap, stack and coroutine operations against a
# shadow model (tests/fuzz/fuzz_alloc.c), seeded from tests/fuzz/corpus.
FUZZ_SECONDS ?= 60
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang OPT="-O1 -g" \
	    SANITIZE="-fsanitize=address,undefined -fsanitize=fuzzer-no-link" build-fuzz/libgomem_internal.a
	clang -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -iquote src \
	    tests/fuzz/fuzz_alloc.c build-fuzz/libgomem_internal.a -pthread -o build-fuzz/fuzz_alloc
	mkdir -p build-fuzz/corpus && cp tests/fuzz/corpus/* build-fuzz/corpus/
	build-fuzz/fuzz_alloc -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 build-fuzz/corpus

# Runs the benchmarks beside the peers: build/bench/results.csv and
# build/bench/report.html (bench/report.sh; BENCH_RUNS, default 3).
bench: $(BENCHES) $(MALLOC_WORK) $(BUILD)/gomem-info
	@bench/report.sh $(or $(BENCH_RUNS),3)

# Real programs under LD_PRELOAD=build/libgomem.so, outputs compared with
# runs without it (tests/realworld.sh).
test-realworld: $(BUILD)/libgomem.so
	@BUILD=$(BUILD) ./tests/realworld.sh

# ------------------------------------------------------------------ install
#
# make install PREFIX=/usr/local DESTDIR=/staging (and make uninstall with
# the same variables): the header, both libraries (static, and shared as
# libX.so.VERSION with the links libX.so.MAJOR and libX.so), their
# pkg-config files (gomem, gomem-core), gomem-info, the gdb helper under
# gdb's auto-load name for the shared library, and the man pages (a page per
# GM_API function: most are ".so" links to their group's page). Every path it writes
# is in INSTALLED, which uninstall removes, so a failed install leaves
# nothing uninstall cannot take away.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(DATADIR)/man
# What mkman writes: its pages, and man3/FN.3 for every GM_API function
# (tests/install.sh checks that the two lists agree).
LPAREN := (
MAN_FUNCS := $(shell sed -n 's/^GM_API [^$(LPAREN)]*[ *]\(gm_[a-z0-9_]*\)[$(LPAREN)].*/\1/p' include/gomem.h)
MAN_PAGES := man1/gomem-info.1 man7/gomem.7 \
    $(sort $(patsubst %,man3/%.3,gomem gm_malloc gm_stats gm_go gm_chan gm_ctx $(MAN_FUNCS)))

GDBAUTOLOAD := $(DATADIR)/gdb/auto-load$(LIBDIR)
D := $(DESTDIR)
INSTALLED := $(INCLUDEDIR)/gomem.h $(BINDIR)/gomem-info \
    $(foreach l,gomem gomem_core,$(LIBDIR)/lib$(l).a $(LIBDIR)/lib$(l).so.$(VERSION) \
        $(LIBDIR)/lib$(l).so.$(SOMAJOR) $(LIBDIR)/lib$(l).so) \
    $(PKGCONFIGDIR)/gomem.pc $(PKGCONFIGDIR)/gomem-core.pc \
    $(DATADIR)/gomem/gomem-gdb.py $(GDBAUTOLOAD)/libgomem.so.$(VERSION)-gdb.py \
    $(GDBAUTOLOAD)/libgomem_core.so.$(VERSION)-gdb.py \
    $(addprefix $(MANDIR)/,$(MAN_PAGES))

# A pkg-config file: $(1) the name, $(2) the library, $(3) what it is.
define pcfile
prefix=$(PREFIX)
libdir=$(LIBDIR)
includedir=$(INCLUDEDIR)

Name: $(1)
Description: $(3)
Version: $(VERSION)
Cflags: -I$${includedir}
Libs: -L$${libdir} -l$(2)
Libs.private: -pthread
endef
export PC_GOMEM = $(call pcfile,gomem,gomem,Go's runtime memory system for C: heap and drop-in malloc; stacks; coroutines; channels)
export PC_GOMEM_CORE = $(call pcfile,gomem-core,gomem_core,Go's runtime memory system for C: the gm_ API; malloc stays the program's)

install: lib $(BUILD)/gomem-info man
	install -d $(D)$(INCLUDEDIR) $(D)$(LIBDIR) $(D)$(BINDIR) $(D)$(PKGCONFIGDIR) $(D)$(DATADIR)/gomem $(D)$(GDBAUTOLOAD) \
	    $(D)$(MANDIR)/man1 $(D)$(MANDIR)/man3 $(D)$(MANDIR)/man7
	install -m 644 include/gomem.h $(D)$(INCLUDEDIR)/gomem.h
	install -m 755 $(BUILD)/gomem-info $(D)$(BINDIR)/gomem-info
	for l in gomem gomem_core; do \
	    install -m 644 $(BUILD)/lib$$l.a $(D)$(LIBDIR)/lib$$l.a && \
	    install -m 755 $(BUILD)/lib$$l.so $(D)$(LIBDIR)/lib$$l.so.$(VERSION) && \
	    ln -sf lib$$l.so.$(VERSION) $(D)$(LIBDIR)/lib$$l.so.$(SOMAJOR) && \
	    ln -sf lib$$l.so.$(SOMAJOR) $(D)$(LIBDIR)/lib$$l.so && \
	    install -m 644 tools/gomem-gdb.py $(D)$(GDBAUTOLOAD)/lib$$l.so.$(VERSION)-gdb.py || exit 1; \
	done
	printf '%s\n' "$$PC_GOMEM" > $(D)$(PKGCONFIGDIR)/gomem.pc
	printf '%s\n' "$$PC_GOMEM_CORE" > $(D)$(PKGCONFIGDIR)/gomem-core.pc
	install -m 644 tools/gomem-gdb.py $(D)$(DATADIR)/gomem/gomem-gdb.py
	for p in $(MAN_PAGES); do install -m 644 $(BUILD)/man/$$p $(D)$(MANDIR)/$$p || exit 1; done

uninstall:
	rm -f $(addprefix $(D),$(INSTALLED))
	-rmdir $(D)$(DATADIR)/gomem $(D)$(GDBAUTOLOAD) 2>/dev/null

# Installs into a scratch prefix and builds a program outside the tree with
# pkg-config (shared, and static), then checks a staged DESTDIR install and
# that uninstall removes every file (tests/install.sh; needs pkg-config).
test-install: lib $(BUILD)/gomem-info man
	@BUILD=$(BUILD) tests/install.sh

clean:
	rm -rf build build-asan build-tsan build-debug build-clang build-fuzz build-aarch64 build-musl
