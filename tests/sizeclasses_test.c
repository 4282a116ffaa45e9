// SPDX-License-Identifier: MIT
//
// The size classes: Go 1.19's table exactly, the properties the generator
// promises, the lookup functions, and the committed header being what the
// generator prints.
#include <stdlib.h>

#include "sizeclasses.h"
#include "testing.h"

// Go 1.19 runtime/sizeclasses.go: bytes/obj, pages/span, objects.
static const int go_size[67] = {
    8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384,
    416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688,
    3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288,
    13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768,
};
static const int go_npages[67] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8, 3, 10, 7, 4,
};
static const int go_objects[67] = {
    1024, 512, 341, 256, 170, 128, 102, 85, 73, 64, 56, 51, 46, 42, 39, 36, 34, 32, 28, 25, 23, 21, 19,
    18, 17, 16, 14, 12, 11, 10, 9, 8, 7, 6, 11, 5, 9, 4, 7, 3, 8, 5, 7, 2, 5, 3, 4, 5, 6, 7, 1, 6, 5, 4,
    3, 2, 3, 4, 1, 4, 3, 2, 3, 1, 3, 2, 1,
};

#define PAGE 8192

TEST(table_is_gos)
{
    CHECK_EQ(NumSizeClasses, 68);
    CHECK_EQ(class_to_size[0], 0);
    int bad = 0;
    for (int c = 1; c < NumSizeClasses; c++) {
        TALLY(bad, class_to_size[c] == go_size[c - 1], "class %d: %d bytes", c, class_to_size[c]);
        TALLY(bad, class_to_allocnpages[c] == go_npages[c - 1], "class %d: %d pages", c, class_to_allocnpages[c]);
        TALLY(bad, class_to_allocnpages[c] * PAGE / class_to_size[c] == go_objects[c - 1], "class %d", c);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(class_to_size[NumSizeClasses - 1], MaxSmallSize);
}

TEST(properties)
{
    int ok_align = 1, ok_waste = 1, ok_fit = 1, ok_order = 1;
    for (int c = 1; c < NumSizeClasses; c++) {
        int size = class_to_size[c], span = class_to_allocnpages[c] * PAGE;
        // 8-byte steps below 32, 16-byte from 32, and the final grow step
        // keeps LargeSizeDiv alignment above SmallSizeMax (size_to_class128).
        if (size % 8 != 0 || (size >= 32 && size % 16 != 0) || (size > SmallSizeMax && size % LargeSizeDiv != 0))
            ok_align = 0;
        if (span % size > span / 8)
            ok_waste = 0;
        if ((span / size) * size > span || span / size < 1)
            ok_fit = 0;
        if (c > 1 && class_to_size[c] <= class_to_size[c - 1])
            ok_order = 0;
    }
    CHECK(ok_align);
    CHECK(ok_waste);
    CHECK(ok_fit);
    CHECK(ok_order);
}

TEST(size_to_class_is_the_smallest_fit)
{
    int bad = 0;
    for (uintptr_t n = 1; n <= MaxSmallSize; n++) {
        uint8_t c = size_to_class(n);
        if (c == 0 || class_to_size[c] < n || class_to_size[c - 1] >= n)
            bad++;
    }
    CHECK_EQ(bad, 0);
}

TEST(objindex_needs_no_division)
{
    int bad = 0;
    for (int c = 1; c < NumSizeClasses; c++) {
        uintptr_t size = class_to_size[c], span = (uintptr_t)class_to_allocnpages[c] * PAGE;
        for (uintptr_t off = 0; off < span; off++)
            TALLY(bad, class_objindex((uint8_t)c, off) == off / size, "class %d, offset %lu", c, (unsigned long)off);
    }
    CHECK_EQ(bad, 0);
}

TEST(committed_header_is_generated)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s %s/mksizeclasses", test_runner(), build);
    FILE *gen = popen(cmd, "r");
    FILE *file = fopen("src/sizeclasses.h", "r");
    CHECK(gen != NULL);
    CHECK(file != NULL);
    if (gen == NULL || file == NULL)
        return;
    long pos = 0, diff = -1;
    for (;;) {
        int a = fgetc(gen), b = fgetc(file);
        if (a != b) {
            diff = pos;
            break;
        }
        if (a == EOF)
            break;
        pos++;
    }
    if (diff >= 0)
        fprintf(stderr, "    src/sizeclasses.h differs from %s at byte %ld: run make gen\n", cmd, diff);
    CHECK_EQ(diff, -1);
    CHECK(pos > 1000);
    pclose(gen);
    fclose(file);
}

int main(void)
{
    RUN(table_is_gos);
    RUN(properties);
    RUN(size_to_class_is_the_smallest_fit);
    RUN(objindex_needs_no_division);
    RUN(committed_header_is_generated);
    return test_report();
}
