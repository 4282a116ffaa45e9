// SPDX-License-Identifier: MIT
//
// The heap profiler (src/mprof.c), the pprof format (src/pprof.c) and
// gomem-info pprof / coroutines (tools/pprof_tool.c): sampling accuracy by
// call site, the file's format read back, bad paths and files, fork,
// exiting threads, the coroutine profile, and a real program under
// LD_PRELOAD.
#include "export_test.h"
#include "mprof.h"

#include <fcntl.h>
#include <fenv.h>
#include <pthread.h>
#include <sys/stat.h>

#include "testing.h"

static char dir[] = "/tmp/gomem-prof-XXXXXX";
static char out[65536];

static const char *build(void)
{
    static char cmd[512];
    const char *b = getenv("BUILD");
    snprintf(cmd, sizeof cmd, "%s %s", test_runner(), b ? b : "build");
    return cmd;
}

static const char *buildDir(void)
{
    const char *b = getenv("BUILD");
    return b ? b : "build";
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *path(const char *name)
{
    static char p[8][512];
    static int k;
    char *r = p[k++ % 8];
    snprintf(r, sizeof p[0], "%s/%s", dir, name);
    return r;
}

// Reads profile file into *p; false (and a message) if it does not parse.
static bool readProf(const char *file, pprofProfile *p)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL)
        return false;
    static unsigned char buf[8 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char err[200];
    if (pprof_read(buf, n, p, err, sizeof err) != 0) {
        fprintf(stderr, "    %s: %s\n", file, err);
        return false;
    }
    return true;
}

static int valueIndex(const pprofProfile *p, const char *type)
{
    for (uint32_t i = 0; i < p->nvalue; i++) {
        size_t len;
        const char *s = pprof_string(p, p->sampleType[i], &len);
        if (len == strlen(type) && memcmp(s, type, len) == 0)
            return (int)i;
    }
    return -1;
}

// Which of fns (function starts) holds address a: the nearest start at or
// below it, within 4 KiB; -1 if none.
static int whichFunction(uint64_t a, const uintptr_t *fns, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (fns[i] <= a && a - fns[i] < 4096 && (best < 0 || fns[i] > fns[best]))
            best = i;
    return best;
}

// ------------------------------------------------------------ accuracy

static void *volatile sinkA, *volatile sinkB;

static GM_NOINLINE void *siteA(size_t n)
{
    void *p = gm_malloc(n);
    sinkA = p;
    return p;
}

static GM_NOINLINE void *siteB(size_t n)
{
    void *p = gm_malloc(n);
    sinkB = (char *)p + 1;
    return p;
}

static void *volatile sinkC, *volatile sinkD;

static GM_NOINLINE void *siteC(size_t n)
{
    void *p = gm_malloc(n);
    sinkC = (char *)p + 2;
    return p;
}

static GM_NOINLINE void *siteD(size_t n)
{
    void *p = gm_malloc(n);
    sinkD = (char *)p + 3;
    return p;
}

// 70% of the bytes from siteA, 30% from siteB, each of mixed sizes; then
// half of siteA's objects freed. The in-use and allocated views must each
// give both sites their share within 5 points. Run with sizes of every
// kind (tiny, small classes, large objects, most sampled with probability
// near 1 at this rate) and with small objects only, a few percent of which
// are sampled: there the shares rest on the scaling.
static void checkShares(void *(*fa)(size_t), const size_t *sizesA, int nA, void *(*fb)(size_t),
                        const size_t *sizesB, int nB, size_t rate, const char *name)
{
    enum { N = 200000 };
    static void *a[N], *b[N];
    const char *file = path(name);
    CHECK_EQ(gm_prof_start(file, rate), 0);
    double bytesA = 0, bytesB = 0, liveA = 0, liveB = 0;
    uint64_t seed = 88172645463325252ull;
    size_t na = 0, nb = 0;
    while (bytesA + bytesB < 48.0 * (1 << 20)) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        // Keep A at 70% of the bytes asked for so far.
        if (bytesA < 0.7 * (bytesA + bytesB) && na < N) {
            size_t n = sizesA[seed % (unsigned)nA] + (seed >> 40) % 8;
            a[na] = fa(n);
            bytesA += (double)gm_malloc_usable_size(a[na++]);
        } else if (nb < N) {
            size_t n = sizesB[seed % (unsigned)nB] + (seed >> 40) % 8;
            b[nb] = fb(n);
            bytesB += (double)gm_malloc_usable_size(b[nb++]);
        } else {
            break;
        }
    }
    liveB = bytesB;
    for (size_t i = 0; i < na; i++) {
        if (i % 2 == 0)
            gm_free(a[i]);
        else
            liveA += (double)gm_malloc_usable_size(a[i]);
    }
    CHECK_EQ(gm_prof_stop(), 0);
    pprofProfile p;
    if (CHECK(readProf(file, &p))) {
        int inuse = valueIndex(&p, "inuse_space"), alloc = valueIndex(&p, "alloc_space");
        CHECK(inuse >= 0 && alloc >= 0);
        // Every site of this file is a candidate: the one whose start is
        // nearest below an address holds it.
        uintptr_t fns[4] = {(uintptr_t)fa, (uintptr_t)fb, (uintptr_t)(fa == siteA ? siteC : siteA),
                            (uintptr_t)(fb == siteB ? siteD : siteB)};
        double in[2] = {0, 0}, al[2] = {0, 0};
        uint32_t stacks = 0;
        for (uint32_t i = 0; inuse >= 0 && alloc >= 0 && i < p.nsample; i++) {
            const pprofSample *s = &p.sample[i];
            const pprofLocation *l = s->nloc ? pprof_location(&p, s->loc[0]) : NULL;
            int w = l ? whichFunction(l->address, fns, 4) : -1;
            if (w < 0 || w > 1)
                continue;
            stacks++;
            in[w] += (double)s->value[inuse];
            al[w] += (double)s->value[alloc];
        }
        double wantIn = 100 * liveA / (liveA + liveB), wantAl = 100 * bytesA / (bytesA + bytesB);
        double gotIn = 100 * in[0] / (in[0] + in[1]), gotAl = 100 * al[0] / (al[0] + al[1]);
        printf("    %s, rate %zu: siteA's share in use %.1f%% (true %.1f%%), allocated %.1f%% (true %.1f%%)\n", name,
               rate, gotIn, wantIn, gotAl, wantAl);
        CHECK(stacks >= 4); // (site, size class) records: most of them sampled
        CHECK(gotIn > wantIn - 5 && gotIn < wantIn + 5);
        CHECK(gotAl > wantAl - 5 && gotAl < wantAl + 5);
        // Unbiased totals too: the estimate of all bytes allocated at the
        // two sites within 10% of the truth.
        double tot = al[0] + al[1], truth = bytesA + bytesB;
        CHECK(tot > 0.9 * truth && tot < 1.1 * truth);
        pprof_free(&p);
    }
    for (size_t i = 1; i < na; i += 2)
        gm_free(a[i]);
    for (size_t i = 0; i < nb; i++)
        gm_free(b[i]);
    VALID();
}

TEST(sampled_shares_match_call_sites)
{
    static const size_t allA[] = {8, 24, 100, 600, 3000, 20000, 70000}, allB[] = {48, 300, 1500, 9000, 40000};
    checkShares(siteA, allA, 7, siteB, allB, 5, 8192, "mixed.pb.gz");
    // Other sites: a profile holds every record since the program began.
    static const size_t smallA[] = {16, 40, 100, 250, 700, 1800}, smallB[] = {32, 64, 200, 500, 1200};
    checkShares(siteC, smallA, 6, siteD, smallB, 5, 32768, "small.pb.gz");
}

// --------------------------------------------------------------- format

// Everything the format promises: the four sample types, the period, a
// mapping naming this program with its build id, every location of every
// sample defined, in use never above allocated; gomem's own frames gone.
TEST(profile_reads_back)
{
    const char *file = path("format.pb.gz");
    CHECK_EQ(gm_prof_start(file, 1), 0); // every allocation
    void *keep[64];
    for (int i = 0; i < 64; i++)
        keep[i] = siteA((size_t)(i + 1) * 40);
    for (int i = 0; i < 64; i += 2)
        gm_free(keep[i]);
    void *big = siteB(100000);
    void *re = gm_realloc(siteB(10), 5000); // realloc of a sampled object: the old record freed
    CHECK_EQ(gm_prof_dump(), 0);
    pprofProfile p;
    if (CHECK(readProf(file, &p))) {
        static const char *const types[4] = {"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"};
        CHECK_EQ(p.nvalue, 4);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(valueIndex(&p, types[i]), i);
        CHECK_EQ(p.period, 1);
        size_t len;
        const char *def = pprof_string(&p, p.defaultSampleType, &len);
        CHECK(len == 11 && memcmp(def, "inuse_space", 11) == 0);
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = 0;
        const char *mf = pprof_string(&p, p.mapping[0].filename, &len);
        CHECK(p.nmapping >= 1 && len == strlen(self) && memcmp(mf, self, len) == 0);
        int bad = 0;
        uintptr_t fns[2] = {(uintptr_t)siteA, (uintptr_t)siteB};
        int atA = 0, bytesA = 0;
        for (uint32_t i = 0; i < p.nsample; i++) {
            const pprofSample *s = &p.sample[i];
            TALLY(bad, s->nval == 4);
            TALLY(bad, s->value[2] <= s->value[0] && s->value[3] <= s->value[1], "sample %u", i);
            for (uint32_t j = 0; j < s->nloc; j++)
                TALLY(bad, pprof_location(&p, s->loc[j]) != NULL, "sample %u frame %u", i, j);
            const pprofLocation *l = s->nloc ? pprof_location(&p, s->loc[0]) : NULL;
            if (l != NULL && whichFunction(l->address, fns, 2) == 0) {
                atA += (int)s->value[2]; // rate 1: exact counts
                bytesA += (int)s->value[3];
            }
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(atA, 32); // siteA's 64 objects, half freed
        int want = 0;
        for (int i = 1; i < 64; i += 2)
            want += (int)gm_malloc_usable_size(keep[i]);
        CHECK_EQ(bytesA, want);
        pprof_free(&p);
    }
    CHECK_EQ(gm_prof_stop(), 0);
    for (int i = 1; i < 64; i += 2)
        gm_free(keep[i]);
    gm_free(big);
    gm_free(re);
    VALID();
}

// ------------------------------------------------------------ bad input

TEST(unwritable_path_fails_and_the_program_runs_on)
{
    errno = 0;
    CHECK_EQ(gm_prof_start("/nonexistent-dir/heap.pb.gz", 0), -1);
    CHECK_EQ(errno, ENOENT);
    CHECK_EQ(gm_prof_start(NULL, 0), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gm_prof_dump(), -1); // not on
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gm_prof_stop(), -1);
    CHECK_EQ(gm_prof_write(path("x"), 99), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gm_prof_write("/nonexistent-dir/x", GM_PROF_HEAP), -1);
    void *p = gm_malloc(100);
    CHECK(p != NULL);
    gm_free(p);
    // GOMEM_PROF naming a file that cannot be written: a warning, and the
    // program runs to its end.
    CHECK_EQ(sh("GOMEM_PROF=/nonexistent-dir/p.pb.gz %s/gomem-info version 2>&1", build()), 0);
    CHECK(strstr(out, "GOMEM_PROF: cannot write '/nonexistent-dir/p.pb.gz'") != NULL);
    CHECK(strstr(out, "gomem ") != NULL);
    CHECK_EQ(sh("GOMEM_PROF=%s GOMEM_PROF_RATE=lots %s/gomem-info version 2>&1", path("r.pb.gz"), build()), 0);
    CHECK(strstr(out, "GOMEM_PROF_RATE='lots'") != NULL);
    // %p: the process id, a file per process.
    CHECK_EQ(sh("GOMEM_PROF=%s/pid.%%p.pb.gz %s/gomem-info version >/dev/null 2>&1 && "
                "GOMEM_PROF=%s/pid.%%p.pb.gz %s/gomem-info version >/dev/null 2>&1 && ls %s | grep -c '^pid\\.[0-9]*\\.pb\\.gz$'",
                dir, build(), dir, build(), dir),
             0);
    CHECK_EQ(atoi(out), 2);
}

TEST(gomem_info_names_bad_files)
{
    const char *good = path("good.pb.gz");
    CHECK_EQ(gm_prof_write(good, GM_PROF_HEAP), 0);
    // Truncated: half of it.
    struct stat st;
    CHECK_EQ(stat(good, &st), 0);
    const char *cut = path("cut.pb.gz");
    CHECK_EQ(sh("head -c %lld %s > %s", (long long)st.st_size / 2, good, cut), 0);
    CHECK_EQ(sh("%s/gomem-info pprof %s 2>&1", build(), cut), 1);
    CHECK(strstr(out, cut) != NULL && strstr(out, "truncated") != NULL);
    // Foreign: a text file, and a gzip of text.
    const char *text = path("text");
    CHECK_EQ(sh("echo 'hello, not a profile' > %s", text), 0);
    CHECK_EQ(sh("%s/gomem-info pprof %s 2>&1", build(), text), 1);
    CHECK(strstr(out, "not a pprof profile") != NULL);
    CHECK_EQ(sh("echo 'hello, not a profile' | gzip -c > %s.gz", text), 0);
    CHECK_EQ(sh("%s/gomem-info pprof %s.gz 2>&1", build(), text), 1);
    CHECK(strstr(out, "not a pprof profile") != NULL);
    CHECK_EQ(sh("%s/gomem-info pprof %s 2>&1", build(), path("missing")), 1);
    CHECK(strstr(out, "No such file") != NULL);
    CHECK_EQ(sh("%s/gomem-info coroutines %s 2>&1", build(), good), 1);
    CHECK(strstr(out, "not a coroutine profile") != NULL);
    // A good one prints its call sites, and rewrites with names.
    CHECK_EQ(sh("%s/gomem-info pprof %s 2>&1", build(), good), 0);
    CHECK(strstr(out, "inuse_space") != NULL);
    const char *named = path("named.pb.gz");
    CHECK_EQ(sh("%s/gomem-info pprof %s -o %s 2>&1", build(), good, named), 0);
    pprofProfile p;
    if (CHECK(readProf(named, &p))) {
        CHECK(p.nfunction > 0); // this program has symbols
        pprof_free(&p);
    }
    // A heap profile in the HTML report.
    const char *html = path("heap.html");
    CHECK_EQ(sh("%s/gomem-info report %s -o %s 2>&1", build(), good, html), 0);
    CHECK_EQ(sh("grep -c 'Heap in use by call site' %s", html), 0);
}

// ----------------------------------------------------------------- fork

static void *churn(void *arg)
{
    _Atomic int *stop = arg;
    while (!atomic_load(stop))
        gm_free(siteA(200));
    return NULL;
}

// A fork while another thread allocates under profiling: the child writes
// a valid profile of its own and exits without touching the parent's file;
// the parent's profile stays whole.
TEST(fork_during_profiling)
{
    const char *file = path("fork.pb.gz"), *childFile = path("fork-child.pb.gz");
    CHECK_EQ(gm_prof_start(file, 4096), 0);
    _Atomic int stop = 0;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, churn, &stop), 0);
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 1000; i++)
                gm_free(siteB(300));
            _exit(gm_prof_write(childFile, GM_PROF_HEAP) == 0 ? 0 : 1);
        }
        int status;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_EQ(gm_prof_dump(), 0);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    CHECK_EQ(gm_prof_stop(), 0);
    pprofProfile p;
    if (CHECK(readProf(file, &p)))
        pprof_free(&p);
    if (CHECK(readProf(childFile, &p)))
        pprof_free(&p);
    VALID();
}

// --------------------------------------------------------------- threads

static void *volatile sinkT;

// The sum of value v (0: allocated objects, 2: in-use objects) over the
// samples of file whose innermost frame is in fn; -1 if file is unreadable.
static int64_t siteValue(const char *file, const void *fn, int v)
{
    pprofProfile p;
    if (!readProf(file, &p))
        return -1;
    uintptr_t fns[1] = {(uintptr_t)fn};
    int64_t sum = 0;
    for (uint32_t i = 0; i < p.nsample; i++) {
        const pprofLocation *l = p.sample[i].nloc ? pprof_location(&p, p.sample[i].loc[0]) : NULL;
        if (l != NULL && whichFunction(l->address, fns, 1) == 0)
            sum += p.sample[i].value[v];
    }
    pprof_free(&p);
    return sum;
}

static GM_NOINLINE void *threadSite(size_t n)
{
    void *p = gm_malloc(n);
    sinkT = p;
    return p;
}

static void *allocAndExit(void *arg)
{
    void **keep = arg;
    for (int i = 0; i < 10; i++)
        keep[i] = threadSite(1000);
    return NULL;
}

// A thread's samples outlive it: its ten objects, still live, are in the
// profile after it exited.
TEST(exited_thread_keeps_its_samples)
{
    const char *file = path("thread.pb.gz");
    CHECK_EQ(gm_prof_start(file, 1), 0);
    void *keep[10];
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, allocAndExit, keep), 0);
    pthread_join(t, NULL);
    CHECK_EQ(gm_prof_stop(), 0);
    CHECK_EQ(siteValue(file, threadSite, 2), 10);
    for (int i = 0; i < 10; i++)
        gm_free(keep[i]);
}

// A thread whose cache was made before gm_prof_start takes up the new rate
// at its next sample point: with rate 1, every allocation after that one
// is sampled (the first distance was drawn at the default rate: 512 of
// these 1000-byte objects on average, over 8,000 less than once in 10^6).
static _Atomic int lateGo, lateDone;
static GM_NOINLINE void *lateSite(size_t n)
{
    void *p = gm_malloc(n);
    sinkT = p;
    return p;
}

static void *allocLate(void *arg)
{
    (void)arg;
    gm_free(gm_malloc(1000)); // the cache exists, profiling off
    atomic_store(&lateDone, 1);
    while (!atomic_load(&lateGo))
        sched_yield();
    for (int i = 0; i < 20000; i++)
        gm_free(lateSite(1000));
    return NULL;
}

TEST(a_running_thread_takes_up_a_start_at_its_next_sample_point)
{
    const char *file = path("late.pb.gz");
    atomic_store(&lateGo, 0);
    atomic_store(&lateDone, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, allocLate, NULL), 0);
    while (!atomic_load(&lateDone))
        sched_yield();
    CHECK_EQ(gm_prof_start(file, 1), 0);
    atomic_store(&lateGo, 1);
    pthread_join(t, NULL);
    CHECK_EQ(gm_prof_stop(), 0);
    int64_t objects = siteValue(file, lateSite, 0); // allocated objects (rate 1: exact)
    printf("    %lld of the thread's 20000 allocations sampled\n", (long long)objects);
    CHECK(objects > 12000 && objects <= 20000);
}

// A class's allocation count and its sample countdown are one word with a
// second one beside it (mcache.h, binMallocs): gm_stats on another thread
// must never see one changed without the other. At rate 1 every
// allocation of the churning thread is a sample point.
static _Atomic int countStop;
static void *churnSampled(void *arg)
{
    (void)arg;
    while (!atomic_load(&countStop))
        gm_free(gm_malloc(1000));
    return NULL;
}

TEST(counts_stay_whole_across_sample_points)
{
    CHECK_EQ(gm_prof_start(path("counts.pb.gz"), 1), 0);
    atomic_store(&countStop, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, churnSampled, NULL), 0);
    int cls = 0;
    gm_memstats m;
    gm_stats(&m);
    for (int i = 1; i < GM_SIZE_CLASSES; i++)
        if (cls == 0 && m.by_size[i].size >= 1000)
            cls = i;
    uint64_t last = 0;
    int backwards = 0, reads = 0;
    for (; reads < 20000; reads++) {
        gm_stats(&m);
        TALLY(backwards, m.by_size[cls].mallocs >= last, "read %d: %llu after %llu", reads,
              (unsigned long long)m.by_size[cls].mallocs, (unsigned long long)last);
        last = m.by_size[cls].mallocs;
    }
    atomic_store(&countStop, 1);
    pthread_join(t, NULL);
    CHECK_EQ(gm_prof_stop(), 0);
    CHECK_EQ(backwards, 0);
    VALID();
}

// Sampled small objects stay in their class's span (Go's specials): at
// rate 1 every object is a sample, and 2,000 of 64 bytes take about 128
// KiB of spans, not a page each (16 MiB); they sit side by side. A free
// of an object that shares a page with a sample but is none leaves the
// records alone; the samples' frees are counted; a sample freed twice is
// a double free.
static GM_NOINLINE void *inplaceSite(size_t n)
{
    void *p = gm_malloc(n);
    sinkT = p;
    return p;
}

static void freeSampleTwice(void *arg)
{
    (void)arg;
    gm_prof_start(path("twice.pb.gz"), 1);
    void *p = inplaceSite(64);
    gm_free(p);
    gm_free(p);
}

static int64_t inplaceInUse(const char *file)
{
    return siteValue(file, inplaceSite, 2);
}

TEST(sampled_objects_stay_in_their_span)
{
    enum { N = 2000 };
    static char *keep[N];
    const char *file = path("inplace.pb.gz");
    gm_memstats before, after;
    gm_stats(&before);
    CHECK_EQ(gm_prof_start(file, 1), 0);
    for (int i = 0; i < N; i++)
        keep[i] = inplaceSite(64);
    gm_stats(&after);
    CHECK(after.heap_inuse - before.heap_inuse < (1u << 20));
    int adjacent = 0;
    for (int i = 1; i < N; i++)
        adjacent += keep[i] - keep[i - 1] == 64 || keep[i - 1] - keep[i] == 64;
    CHECK(adjacent > N / 2);
    CHECK_EQ(gm_prof_dump(), 0);
    CHECK_EQ(inplaceInUse(file), N);
    // The validator ties samples and page codes: a page that lost its
    // code, and a code with no sample, are both named.
    uintptr_t pg = (uintptr_t)keep[0];
    unsigned code = pageClassOf(pg) & 0xff;
    CHECK(code >= PageClassSampled);
    pageClassSetCode(pg, (uint8_t)(code - PageClassSampled));
    const char *bad = mheap_valid();
    CHECK(bad != NULL && strstr(bad, "lacks its sampled code") != NULL);
    pageClassSetCode(pg, (uint8_t)code);
    CHECK(mheap_valid() == NULL);
    // Half freed while on, then a neighbour that is no sample, with
    // profiling off: only the samples' frees count.
    for (int i = 0; i < N; i += 2)
        gm_free(keep[i]);
    CHECK_EQ(gm_prof_stop(), 0);
    CHECK_EQ(inplaceInUse(file), N / 2);
    void *other = gm_malloc(64); // one of the freed slots, on a page with samples
    gm_free(other);
    VALID();
    for (int i = 1; i < N; i += 2)
        gm_free(keep[i]);
    CHECK_EQ(gm_prof_start(file, 1), 0); // a dump of the records as they are now
    CHECK_EQ(gm_prof_stop(), 0);
    CHECK_EQ(inplaceInUse(file), 0);
    VALID();
    char *lone = gm_malloc(64); // no sample left on any page now
    unsigned was = pageClassOf((uintptr_t)lone);
    CHECK((was & 0xff) < PageClassSampled);
    pageClassSetCode((uintptr_t)lone, (uint8_t)((was & 0xff) + PageClassSampled));
    bad = mheap_valid();
    CHECK(bad != NULL && strstr(bad, "holds no sampled object") != NULL);
    pageClassSetCode((uintptr_t)lone, (uint8_t)was);
    gm_free(lone);
    VALID();
    CHECK_DEATH(freeSampleTwice, NULL, "double free");
}

// malloc must leave the program's floating-point state alone: the
// sampler draws its distances with integers, at sample points whether
// profiling is on or off.
TEST(sampling_leaves_floating_point_flags_alone)
{
    int bad = 0;
    for (int on = 0; on <= 1; on++) {
        if (on)
            CHECK_EQ(gm_prof_start(path("fenv.pb.gz"), 64), 0);
        feclearexcept(FE_ALL_EXCEPT);
        // 4 KiB objects: a sample point about every 128 of them while off.
        for (int i = 0; i < 20000; i++)
            gm_free(gm_malloc((size_t)(i % 8 + 1) * 512));
        for (int i = 0; i < 200; i++)
            gm_free(gm_malloc(100000)); // large objects' countdown
        TALLY(bad, fetestexcept(FE_ALL_EXCEPT) == 0, "profiling %s: flags %#x", on ? "on" : "off",
              (unsigned)fetestexcept(FE_ALL_EXCEPT));
        if (on)
            CHECK_EQ(gm_prof_stop(), 0);
    }
    CHECK_EQ(bad, 0);
}

// ------------------------------------------------------------ coroutines

static gm_chan *never;
static const char *coroFile, *coroText;
static int coroWrite;

static GM_NOINLINE void waitForever(void *arg)
{
    (void)arg;
    int v;
    gm_chan_recv(never, &v); // closed at the end
}

static void writer(void *arg)
{
    (void)arg;
    gm_yield(); // the others park first
    gm_sleep(100 * 1000 * 1000); // ... and wait 0.1 s: the profile says how long
    coroWrite = gm_prof_write(coroFile, GM_PROF_COROUTINES) == 0 && gm_prof_write(coroText, GM_PROF_COROUTINES_TEXT) == 0;
    gm_chan_close(never);
}

static void coroMain(void *arg)
{
    (void)arg;
    never = gm_chan_new(sizeof(int), 0);
    gm_go_options copied = {.mode = GM_STACK_COPIED, .name = "copied-waiter"};
    gm_go_options dedicated = {.mode = GM_STACK_DEDICATED, .stack_size = 64 << 10, .name = "dedicated-waiter"};
    gm_go_opts(waitForever, NULL, &copied);
    gm_go_opts(waitForever, NULL, &dedicated);
    gm_go(writer, NULL);
}

// Every coroutine with its name, state, wait and stack, as pprof and as
// text; gomem-info coroutines prints them.
TEST(coroutine_profile)
{
    coroFile = path("coro.pb.gz");
    coroText = path("coro.txt");
    gm_set_procs(1);
    CHECK_EQ(gm_main(coroMain, NULL), 0);
    CHECK(coroWrite);
    pprofProfile p;
    if (CHECK(readProf(coroFile, &p))) {
        CHECK_EQ(p.nvalue, 1);
        int named = 0, waiting = 0, withStack = 0;
        for (uint32_t i = 0; i < p.nsample; i++) {
            const pprofSample *s = &p.sample[i];
            bool waiter = false;
            for (uint32_t j = 0; j < s->nlabel; j++) {
                size_t kl, sl;
                const char *k = pprof_string(&p, s->label[3 * j], &kl);
                const char *v = pprof_string(&p, s->label[3 * j + 1], &sl);
                if (kl == 4 && memcmp(k, "name", 4) == 0 && sl > 7 && memcmp(v + sl - 7, "-waiter", 7) == 0)
                    named++, waiter = true;
                if (kl == 5 && memcmp(k, "state", 5) == 0 && sl == 12 && memcmp(v, "chan receive", 12) == 0)
                    waiting++;
            }
            if (waiter && s->nloc >= 1)
                withStack++;
        }
        CHECK_EQ(named, 2);
        CHECK_EQ(waiting, 2);
        CHECK_EQ(withStack, 2);
        CHECK(p.nsample >= 3); // and the writer, and the main coroutine
        pprof_free(&p);
    }
    CHECK_EQ(sh("cat %s", coroText), 0);
    CHECK(strstr(out, "\"copied-waiter\" [chan receive") != NULL);
    // How long it waited: 0.1 s, give or take the coarse clock's ticks.
    const char *w = strstr(out, "\"copied-waiter\" [chan receive, ");
    double waited = w != NULL ? strtod(w + strlen("\"copied-waiter\" [chan receive, "), NULL) : -1;
    if (!CHECK(waited >= 0.08 && waited < 5))
        printf("    waited %.3f s\n", waited);
    CHECK(strstr(out, "\"dedicated-waiter\" [chan receive") != NULL);
    CHECK(strstr(out, "(the caller)") != NULL);
    CHECK_EQ(sh("%s/gomem-info coroutines %s 2>&1", build(), coroFile), 0);
    CHECK(strstr(out, "name=\"copied-waiter\" state=\"chan receive\"") != NULL);
}

// ------------------------------------------------------------ LD_PRELOAD

// A real program under LD_PRELOAD=libgomem.so with GOMEM_PROF: python3,
// whose profile must name its own allocating functions.
TEST(preloaded_python_names_its_functions)
{
#if defined(GM_ASAN) || defined(GM_TSAN)
    printf("    (skipped: a sanitizer build's libgomem.so does not replace malloc)\n");
    return;
#endif
    if (test_skip_qemu("python3 is the host's"))
        return;
#if !defined(__GLIBC__)
    printf("    (skipped on musl: python3 is the host's, built for glibc; a musl libgomem.so cannot be preloaded)\n");
    return;
#endif
    if (sh("command -v python3 >/dev/null 2>&1") != 0) {
        printf("    (skipped: python3 is not installed)\n");
        return;
    }
    const char *file = path("python.pb.gz");
    CHECK_EQ(sh("GOMEM_PROF=%s GOMEM_PROF_RATE=32k LD_PRELOAD=%s/libgomem.so python3 -c "
                "'d = {i: str(i) * 3 for i in range(100000)}; print(len(d))' 2>&1",
                file, buildDir()),
             0);
    CHECK(strstr(out, "100000") != NULL);
    CHECK_EQ(sh("%s/gomem-info pprof %s 2>&1", build(), file), 0);
    // Exported names of the interpreter (Debian's python3 has no other).
    CHECK(strstr(out, "Py") != NULL);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(sampled_shares_match_call_sites);
    RUN(profile_reads_back);
    RUN(unwritable_path_fails_and_the_program_runs_on);
    RUN(gomem_info_names_bad_files);
    RUN(fork_during_profiling);
    RUN(exited_thread_keeps_its_samples);
    RUN(a_running_thread_takes_up_a_start_at_its_next_sample_point);
    RUN(counts_stay_whole_across_sample_points);
    RUN(sampled_objects_stay_in_their_span);
    RUN(sampling_leaves_floating_point_flags_alone);
    RUN(coroutine_profile);
    RUN(preloaded_python_names_its_functions);
    int rc = test_report();
    if (getenv("GOMEM_TEST_KEEP") == NULL) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            rc = 1;
    }
    return rc;
}
