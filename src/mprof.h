// SPDX-License-Identifier: MIT
//
// The heap profiler's entry points for the malloc files, and the profile
// writer's (mprof.c samples and keeps records; pprof.c writes and reads
// pprof's format). mprof.c's head tells the whole story.
#ifndef GOMEM_MPROF_H
#define GOMEM_MPROF_H

#include "runtime.h"

#pragma GCC visibility push(hidden)

// The mean sampling interval in bytes while heap profiling is on, else 0.
// Read relaxed on slow paths (large objects, new tiny blocks) and at a
// small class's sample point (the fast path reads nothing of it).
extern GM_HIDDEN _Atomic uint64_t mprofRate;

// bin[spc].nextSample of a class the fast path does not sample: no count
// of a thread's allocations counts it down to 0.
#define ProfNever UINT64_MAX

// A fresh mcache's sampling state, drawn at the rate of the moment (and
// its allocation counts, 0).
void mProf_initCache(mcache *c);

// The small fast path's count of class spc reached its sample point: the
// next distance is drawn, and if profiling is on x, just taken, is handed
// back and the request is served by a sampled object of its own (mprof.c,
// "Sampled objects"); else x is returned. The calloc variant clears it.
// Tail-called from gm_malloc and gm_calloc, so that they leave no frame;
// x alone (its span tells the class), so that the fast path keeps nothing
// else live for the call.
void *mProf_mallocSmall(void *x);
void *mProf_callocSmall(void *x);
// A large object in span s was allocated: samples it when its bytes cross
// the thread's countdown. Only when mprofRate != 0.
void mProf_mallocLarge(mcache *c, mspan *s);
// tinyAllocSlow is about to start a new bs-byte block for an n-byte
// request: true if this block is sampled (mProf_mallocTiny then serves the
// request). Only when mprofRate != 0.
bool mProf_tinyDue(mcache *c, uintptr_t bs);
void *mProf_mallocTiny(mcache *c, size_t n, uintptr_t bs);
// p, an object of class spc in span s, is being freed from a page with
// the sampled code: if p is a sample, its record counts the free, and the
// page gets its class back when no other sample remains on it. The
// caller frees p as usual.
void mProf_freeSampled(mspan *s, void *p, uint8_t spc);
// NULL if the sampled objects of s, an in-use span of a size class, and
// the sampled codes of its pages agree; else what is wrong.
const char *mProf_specialsValid(mspan *s);
// A sampled object's span s is being freed: its record is updated and
// s->profBucket cleared. Returns the size class it counts as if it is a
// sampled tiny request served by a span of its own, 0 for a large object.
uint8_t mProf_free(mspan *s);

// Each malloc file's functions that an allocation passes through
// (NULL-terminated; override.c's only in libgomem, weak): the profiler
// cuts their frames off the stacks it records.
extern const void *const malloc_allocFrames[], *const realloc_allocFrames[], *const tiny_allocFrames[];
extern const void *const override_allocFrames[] __attribute__((weak));

// fork: the bucket lock (mcache.c's handlers, in rank order).
void mprof_atfork_prepare(void);
void mprof_atfork_parent(void);
void mprof_atfork_child(void);

// ----------------------------------------------------------- the records

#define ProfMaxStack 64 // frames kept per sample (Go keeps 32)

// A sampled call stack and object size (Go: mprof.go's bucket with its
// memRecord). Immutable once published but the four counters, which are
// atomic. Never freed: the profile covers the whole run, as Go's does.
typedef struct mbucket {
    struct mbucket *next;      // hash chain; immutable once published
    struct mbucket *allnext;   // every bucket, newest first; immutable once published
    uint64_t hash;             // of stk, size and rate; immutable
    uintptr_t size;            // bytes of each sampled object; immutable
    uint64_t rate;             // the sampling rate its objects were sampled at (part of the key); immutable
    _Atomic uint64_t allocs, frees;          // sampled objects
    _Atomic uint64_t allocBytes, freeBytes;  // their bytes (allocs * size, frees * size)
    uint32_t nstk;             // frames in stk; immutable
    uintptr_t stk[];           // return addresses, innermost first; immutable
} mbucket;

// The newest bucket (follow allnext), read with an acquire load.
mbucket *mProf_buckets(void);
// The sampling interval of the last gm_prof_start (0 if never).
uint64_t mProf_lastRate(void);

// ---------------------------------------------------- pprof.c's profiles

// What pprof.c writes: gm_prof_write's kinds.
// Writes the profile of kind into fd: 0, or -1 and errno. The heap
// profile's period is rate; each record is scaled by its own.
int pprof_writeHeap(int fd, uint64_t rate);
int pprof_writeCoroutines(int fd, bool text);

// A decoded profile (the parts gomem-info and the tests read), made by
// pprof_read from a gzip-compressed profile.proto. Its arrays live in one
// mapping that pprof_free gives back.
typedef struct pprofSample {
    uint32_t nloc, nval, nlabel;
    uint64_t *loc;             // location ids, innermost first
    int64_t *value;            // nval (== the profile's nvalue) values, one per sample type
    int64_t *label;            // nlabel triples: key (string index), str (string index), num
} pprofSample;

typedef struct pprofLocation {
    uint64_t id, mappingId, address;
    int64_t function;          // function id of its first line, 0 if none
    int64_t line;
} pprofLocation;

typedef struct pprofMapping {
    uint64_t id, start, limit, offset;
    int64_t filename;          // string index
} pprofMapping;

typedef struct pprofFunction {
    uint64_t id;
    int64_t name, filename;    // string indexes
} pprofFunction;

typedef struct pprofProfile {
    uint32_t nvalue, nsample, nloc, nmapping, nfunction, nstring;
    int64_t *sampleType, *sampleUnit;        // string indexes, nvalue each
    pprofSample *sample;
    pprofLocation *loc;
    pprofMapping *mapping;
    pprofFunction *function;
    const char **string;
    uint32_t *stringLen;
    int64_t periodType, periodUnit, period, defaultSampleType;
    int64_t nanos, dropFrames;
    void *mem, *raw;           // the arrays' mapping; the decompressed bytes' (strings point there)
    size_t memLen, rawLen;
} pprofProfile;

// Reads a gzip-compressed (or plain) profile.proto from buf: 0, or -1 with
// a message naming what is wrong in err (the profile is then empty).
int pprof_read(const unsigned char *buf, size_t len, pprofProfile *p, char *err, size_t errlen);
void pprof_free(pprofProfile *p);
// The location with id, or NULL.
const pprofLocation *pprof_location(const pprofProfile *p, uint64_t id);
// String i of the table ("" if out of range), and its length.
const char *pprof_string(const pprofProfile *p, int64_t i, size_t *len);

// Writes p again (gzip-compressed) into fd with location i named name[i]
// (NULL: not named), in file[i] at line[i]: gomem-info pprof's symbolized
// copy. 0, or -1 and errno.
int pprof_writeSymbolized(int fd, const pprofProfile *p, const char *const *name, const char *const *file,
                          const int64_t *line);

// A name for address pc of this process: "function+0xoff" from the
// dynamic symbols, else "file+0xoff" (the module and offset), into buf.
void pprof_symbolize(uintptr_t pc, char *buf, size_t len);

#pragma GCC visibility pop
#endif
