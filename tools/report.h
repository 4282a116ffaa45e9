// SPDX-License-Identifier: MIT
//
// gomem-info's HTML reports (tools/report.c). Each returns the exit status:
// 0, or 1 after printing an error naming the file at fault.
#ifndef GOMEM_REPORT_H
#define GOMEM_REPORT_H

// A trace (GOMEM_TRACE) or statistics JSON (gm_stats_json) -> HTML with plots.
int report_main(const char *in, const char *out);

// A benchmark CSV (bench/report.sh) -> HTML with bar charts.
int bench_report_main(const char *in, const char *out);

#endif
