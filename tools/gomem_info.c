// SPDX-License-Identifier: MIT
//
// gomem-info: look inside gomem from the command line.
//
//   gomem-info sizeclasses   the size-class table, one line per class
//   gomem-info stats         a fresh process's statistics, as JSON
//   gomem-info version       version and build settings
//   gomem-info report FILE [-heap PROFILE] -o OUT.html
//                            a trace (GOMEM_TRACE) or statistics file
//                            (GOMEM_STATS, gm_stats_json) as plots; with
//                            -heap, a heap profile's top call sites and
//                            flame graph beside them (FILE may also be a
//                            heap profile alone)
//   gomem-info pprof PROFILE [-o OUT.pb.gz]
//                            a heap profile (GOMEM_PROF, gm_prof_dump):
//                            its top call sites by bytes in use and
//                            allocated, named from the program's symbols
//                            (addr2line when installed); with -o, the
//                            profile written again with the names in it,
//                            for go tool pprof
//   gomem-info coroutines PROFILE
//                            a coroutine profile (gm_prof_write): every
//                            coroutine, its state and its stack
//   gomem-info bench-report FILE.csv -o OUT.html
//                            make bench's results as bar charts
//
// A report is one HTML file of inline SVG, with no script and nothing
// fetched from the network. It is written to a temporary file and renamed,
// so a failed write leaves nothing behind; a missing, truncated or foreign
// input file is an error naming it.
//
// Exit status: 0 when the command did its work; 1 when it could not (a
// message on stderr says why); 2 for a command line it does not know, after
// the usage text.
#include <stdio.h>
#include <string.h>

#include "gomem.h"
#include "report.h"
#include "sizeclasses.h"

static int usage(void)
{
    fprintf(stderr, "usage: gomem-info sizeclasses | stats | version\n"
                    "       gomem-info report TRACE-OR-STATS-FILE [-heap PROFILE] -o OUT.html\n"
                    "       gomem-info report PROFILE -o OUT.html\n"
                    "       gomem-info pprof PROFILE [-o OUT.pb.gz]\n"
                    "       gomem-info coroutines PROFILE\n"
                    "       gomem-info bench-report RESULTS.csv -o OUT.html\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[3], "-o") == 0) {
        if (strcmp(argv[1], "report") == 0)
            return report_main(argv[2], argv[4], NULL);
        if (strcmp(argv[1], "bench-report") == 0)
            return bench_report_main(argv[2], argv[4]);
        if (strcmp(argv[1], "pprof") == 0)
            return pprof_main(argv[2], argv[4], false);
    }
    if (argc == 7 && strcmp(argv[1], "report") == 0 && strcmp(argv[3], "-heap") == 0 && strcmp(argv[5], "-o") == 0)
        return report_main(argv[2], argv[6], argv[4]);
    if (argc == 3 && strcmp(argv[1], "pprof") == 0)
        return pprof_main(argv[2], NULL, false);
    if (argc == 3 && strcmp(argv[1], "coroutines") == 0)
        return pprof_main(argv[2], NULL, true);
    if (argc != 2)
        return usage();
    if (strcmp(argv[1], "sizeclasses") == 0) {
        sizeclasses_print(stdout);
        return 0;
    }
    if (strcmp(argv[1], "stats") == 0) {
        // Touch each layer once so the numbers show something real.
        gm_stack s = gm_stackalloc(1000);
        gm_stackfree(s);
        return gm_stats_json(stdout) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "version") == 0) {
        printf("gomem %s\n", gm_version());
        return 0;
    }
    return usage();
}
