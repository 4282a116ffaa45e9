// SPDX-License-Identifier: MIT
//
// docs/stack-or-heap.md, example 3: what the C compiler catches. Each
// function below lets a pointer to a local outlive it; `make check-escape`
// compiles this file with the warnings the guide recommends and expects
// each one to be reported (it is the test that they are).
#include <stddef.h>

int *leak_local(void)
{
    int x = 1;
    return &x; // -Wreturn-local-addr
}

int *keep;

void store_local(void)
{
    int y = 2;
    keep = &y; // -Wdangling-pointer=2
}

int use_after_scope(void)
{
    int *p;
    {
        int z = 3;
        p = &z;
    }
    return *p; // -Wdangling-pointer=2
}
