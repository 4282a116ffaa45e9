// SPDX-License-Identifier: MIT
//
// Process-wide settings and error reporting (Go: runtime1.go's
// parsedebugvars, and panic.go's throw).
//
// Owns: the debug/verbose knobs read once from GOMEM_* environment
// variables, throw() and callerError(), gm_version(). runtime_init() is
// idempotent and lock-free after the first call; it may run on any thread
// and before main (a drop-in malloc is called from the dynamic loader), so it
// reads the environment with os_getenv only and never allocates.
//
// Options (docs/options.md has each one's meaning and default):
//   GOMEM_VERBOSE=1          print a line for each caller error (ENOMEM, EINVAL)
//   GOMEM_DEBUG=a,b          stacks: log coroutine stack grow/shrink;
//                            stackcheck: check the parked-stack contract;
//                            sched: name coroutines that hold a worker long
//   GOMEM_SCAVENGE=off|N     dirty pages the scavenger keeps (bytes, k/m/g)
//   GOMEM_SCAVENGE_DELAY=ms  how long freed pages wait before they go back
//   GOMEM_PROCS=N            workers of gm_main (default: the CPUs)
//   GOMEM_MAXSTACK=N         a copied coroutine's deepest stack (default 8m)
//   GOMEM_EXECSTACKS=N       execution stacks per worker for copied coroutines (default 8)
//   GOMEM_SECURE=1           hardened heap (malloc.c)
//   GOMEM_ALIGN16=1          gm_malloc results 16-byte aligned, as glibc's
//   GOMEM_MAXTINY=0|8|16|32  the tiny allocator's block size (0: off)
// Read elsewhere: GOMEM_TRACE and GOMEM_TRACE_INTERVAL (trace.c's
// constructor), GOMEM_PROF and GOMEM_PROF_RATE (mprof.c's), GOMEM_STATS (override.c), GOMEM_FAULT_* (os_linux.c, for
// tests). A malformed value gets a warning naming it and the default is
// kept, except GOMEM_FAULT_*, a test knob read with strtoull; so does a
// GOMEM_* name that is none of these (GOMEM_TEST_* is the tests' own). In set-user-ID
// and set-group-ID programs every GOMEM_* is ignored (os_getenv).
#include "runtime.h"
#include "malloc.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

debugVars debug;
int runtime_procs; // GOMEM_PROCS, 0 if unset
size_t runtime_maxstack = DefaultMaxStack;
int runtime_execstacks = DefaultExecStacks;
bool runtime_secure; // GOMEM_SECURE=1
static _Atomic int runtime_inited; // 0 never, 1 in progress, 2 done

// Writes a whole line to stderr without allocating.
static void write_line(const char *prefix, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", prefix);
    int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    if (m > 0)
        n += (size_t)m < sizeof buf - n - 1 ? (size_t)m : sizeof buf - n - 2;
    buf[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(2, buf + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void throw(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line("gomem: ", fmt, ap);
    va_end(ap);
    abort();
}

void callerError(const char *fmt, ...)
{
    if (!debug.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    write_line("gomem: ", fmt, ap);
    va_end(ap);
}

void runtime_warning(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line("gomem: warning: ", fmt, ap);
    va_end(ap);
}

int parse_bytes(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return -1;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != 0 || (shift != 0 && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static void parse_debug(const char *v)
{
    while (v != NULL && *v) {
        const char *comma = strchr(v, ',');
        size_t len = comma ? (size_t)(comma - v) : strlen(v);
        if (len == 6 && strncmp(v, "stacks", 6) == 0)
            debug.stacks = 1;
        else if (len == 10 && strncmp(v, "stackcheck", 10) == 0)
            debug.stackcheck = 1;
        else if (len == 5 && strncmp(v, "sched", 5) == 0)
            debug.sched = 1;
        else if (len != 0)
            runtime_warning("GOMEM_DEBUG: unknown setting '%.*s' ignored", (int)len, v);
        v = comma ? comma + 1 : NULL;
    }
}

// Every GOMEM_* the runtime reads; GOMEM_TEST_* belongs to gomem's tests.
static const char *const knownOptions[] = {
    "VERBOSE", "DEBUG", "SCAVENGE", "SCAVENGE_DELAY", "PROCS", "SECURE", "ALIGN16", "MAXTINY",
    "MAXSTACK", "EXECSTACKS", "TRACE", "TRACE_INTERVAL", "STATS", "PROF", "PROF_RATE", "FAULT_MMAP", "FAULT_MPROTECT",
    "FAULT_MADVISE", "FAULT_MREMAP",
};

// A GOMEM_* variable gomem does not know is most likely a typo (GOMEM_STAT
// for GOMEM_STATS) that would otherwise go unnoticed: one warning naming it
// and the known ones, as jemalloc warns about a bad MALLOC_CONF entry.
static void warnUnknownOptions(void)
{
    extern char **environ;
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "GOMEM_", 6) != 0 || strncmp(*e, "GOMEM_TEST_", 11) == 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
        char name[64];
        if (len >= sizeof name)
            len = sizeof name - 1;
        memcpy(name, *e, len);
        name[len] = 0;
        if (os_getenv(name) == NULL) // a set-user-ID program: every GOMEM_* is ignored
            return;
        bool known = false;
        for (size_t i = 0; i < sizeof knownOptions / sizeof knownOptions[0]; i++)
            known |= strcmp(knownOptions[i], name + 6) == 0;
        if (known)
            continue;
        char list[512];
        size_t n = 0;
        for (size_t i = 0; i < sizeof knownOptions / sizeof knownOptions[0] && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%sGOMEM_%s", i ? ", " : "", knownOptions[i]);
        runtime_warning("unknown environment variable %s ignored (known: %s)", name, list);
    }
}

void runtime_init(void)
{
    if (GM_LIKELY(atomic_load_explicit(&runtime_inited, memory_order_acquire) == 2))
        return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&runtime_inited, &expected, 1)) {
        // Another thread is reading the environment; it takes microseconds.
        while (atomic_load_explicit(&runtime_inited, memory_order_acquire) != 2)
            sched_yield();
        return;
    }
    const char *v = os_getenv("GOMEM_VERBOSE");
    if (v != NULL && *v != 0 && strcmp(v, "0") != 0)
        debug.verbose = 1;
    parse_debug(os_getenv("GOMEM_DEBUG"));

    // The scavenger's budget; mheap_ is not locked yet (nothing used it).
    mheap_.scavengeRetain = (uint64_t)8 << 20;
    mheap_.scavengeDelayMs = 500;
    v = os_getenv("GOMEM_SCAVENGE_DELAY");
    if (v != NULL && *v != 0) {
        char *end;
        unsigned long ms = strtoul(v, &end, 10);
        if (*end == 0 && ms <= 3600000)
            mheap_.scavengeDelayMs = (uint32_t)ms;
        else
            runtime_warning("GOMEM_SCAVENGE_DELAY='%s' is not a number of milliseconds; using 500", v);
    }
    v = os_getenv("GOMEM_SCAVENGE");
    if (v != NULL && *v != 0) {
        uint64_t n;
        if (strcmp(v, "off") == 0)
            mheap_.scavengeOff = true;
        else if (parse_bytes(v, &n) == 0)
            mheap_.scavengeRetain = n;
        else
            runtime_warning("GOMEM_SCAVENGE='%s' is not 'off' or a size like 64m; using 8m", v);
    }
    // The double-free mark of free stacks needs a secret no program data is
    // likely to equal: mix ASLR-randomised addresses, the time and the pid.
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)(uintptr_t)&ts ^ ((uint64_t)(uintptr_t)&debug << 17) ^
                    (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 40;
    seed ^= seed >> 31;
    seed *= 0xBF58476D1CE4E5B9ull;
    seed ^= seed >> 29;
    stackFreeMarkInit((uintptr_t)seed);
    v = os_getenv("GOMEM_SECURE");
    if (v != NULL && *v != 0) {
        if (strcmp(v, "1") == 0) {
            runtime_secure = true;
            if (os_physpagesize() > PageSize)
                runtime_warning("GOMEM_SECURE: the OS page (%zu KiB) is larger than gomem's (%lu KiB): "
                                "large objects get no guard page", os_physpagesize() >> 10,
                                (unsigned long)(PageSize >> 10));
        } else if (strcmp(v, "0") != 0) {
            runtime_warning("GOMEM_SECURE='%s' is not 0 or 1; using 0", v);
        }
    }
    v = os_getenv("GOMEM_ALIGN16");
    if (v != NULL && *v != 0 && strcmp(v, "0") != 0)
        malloc_setAlign16();
    malloc_init();
    nanotime_init();
    v = os_getenv("GOMEM_MAXTINY");
    if (v != NULL && *v != 0) {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*end != 0 || gm_set_max_tiny_size(n) != 0)
            runtime_warning("GOMEM_MAXTINY='%s' is not 0, 8, 16 or 32; using 16", v);
    }
    v = os_getenv("GOMEM_PROCS");
    if (v != NULL && *v != 0) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end == 0 && n >= 1 && n <= 1024)
            runtime_procs = (int)n;
        else
            runtime_warning("GOMEM_PROCS='%s' is not a number of workers from 1 to 1024; using the CPUs", v);
    }
    v = os_getenv("GOMEM_MAXSTACK");
    if (v != NULL && *v != 0) {
        uint64_t n;
        if (parse_bytes(v, &n) == 0 && n >= (64 << 10) && n <= MaxMaxStack)
            runtime_maxstack = ((size_t)n + 65535) & ~(size_t)65535; // whole pages of every size
        else
            runtime_warning("GOMEM_MAXSTACK='%s' is not a size from 64k to 1g; using 8m", v);
    }
    v = os_getenv("GOMEM_EXECSTACKS");
    if (v != NULL && *v != 0) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end == 0 && n >= 1 && n <= MaxExecStacks)
            runtime_execstacks = (int)n;
        else
            runtime_warning("GOMEM_EXECSTACKS='%s' is not a number from 1 to %d; using %d", v, MaxExecStacks,
                            DefaultExecStacks);
    }
    warnUnknownOptions();
    atomic_store_explicit(&runtime_inited, 2, memory_order_release);
}

const char *gm_version(void)
{
#define GM_STR2(x) #x
#define GM_STR(x) GM_STR2(x)
    return GM_STR(GM_VERSION_MAJOR) "." GM_STR(GM_VERSION_MINOR) "." GM_STR(GM_VERSION_PATCH)
        " FixedStack=" GM_STR(GM_FIXED_STACK) " orders=" GM_STR(GM_STACK_ORDERS)
        " debug=" GM_STR(GM_DEBUG);
}
