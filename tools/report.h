// SPDX-License-Identifier: MIT
//
// gomem-info's HTML reports (tools/report.c). Each returns the exit status:
// 0, or 1 after printing an error naming the file at fault.
#ifndef GOMEM_REPORT_H
#define GOMEM_REPORT_H

#include <stdbool.h>
#include <stdio.h>

// A trace (GOMEM_TRACE), statistics JSON (gm_stats_json) or heap profile
// (GOMEM_PROF) -> HTML with plots; heap, if not NULL, a heap profile whose
// call sites are shown beside the plots.
int report_main(const char *in, const char *out, const char *heap);

// gomem-info pprof (coroutines: gomem-info coroutines) of profile in,
// printing its top call sites or coroutines, or with out, writing it again
// with its addresses named (tools/pprof_tool.c).
int pprof_main(const char *in, const char *out, bool coroutines);

// The HTML section of a heap profile: the top call sites by bytes in use
// and a flame graph. 1 after an error naming the file.
int pprof_htmlSection(FILE *o, const char *path);

// A benchmark CSV (bench/report.sh) -> HTML with bar charts.
int bench_report_main(const char *in, const char *out);

#endif
