// SPDX-License-Identifier: MIT
//
// Size classes (Go: sizeclasses.go). The table itself is generated into
// sizeclasses.h by tools/mksizeclasses.c (run `make gen`), with the same
// rules and the same result as Go's mksizeclasses.go; this file only defines
// the arrays once and prints the table for gomem-info.
//
// Differences from Go: none in the numbers. Go 1.19 keeps the division
// magic as one uint32 per class, as here.
#define SIZECLASSES_DEFINE
#include "sizeclasses.h"

void sizeclasses_print(FILE *f)
{
    fprintf(f, "class bytes/obj bytes/span objects tail-waste max-waste\n");
    unsigned prev = 0;
    for (int c = 1; c < NumSizeClasses; c++) {
        unsigned size = class_to_size[c];
        unsigned span = (unsigned)class_to_allocnpages[c] << SizeClassPageShift;
        unsigned objects = span / size, tail = span - objects * size;
        double maxwaste = (double)((size - prev - 1) * objects + tail) / span * 100;
        fprintf(f, "%5d %9u %10u %7u %10u %8.2f%%\n", c, size, span, objects, tail, maxwaste);
        prev = size;
    }
}
