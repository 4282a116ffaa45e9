// SPDX-License-Identifier: MIT
//
// The context switch (src/switch_<arch>.S): every register the procedure
// call standard makes callee-saved holds its value across gm_yield, while
// another coroutine on the same thread loads different values into all of
// them, in both stack modes. The compiler keeps values in these registers
// across calls only when it happens to; here an assembly block sets each
// one, calls gm_yield and reads them back. (The floating-point control
// state per coroutine is proc_test's floating_point_* tests.)
#include <stdint.h>

#include "gomem.h"
#include "testing.h"

#if defined(__aarch64__)
// x19-x27 and d8-d15 carry values, x28 the output pointer; x29 must come
// back too (the frame chain) and sp (the asm would not return otherwise).
#define NREGS 18
static void yieldKeeping(uint64_t seed, uint64_t *out)
{
    register uint64_t a0 __asm__("x0") = seed;
    register uint64_t *a1 __asm__("x1") = out;
    __asm__ volatile("mov x28, x1\n\t"
                     "mov x19, x0\n\t"
                     "add x20, x0, #1\n\t"
                     "add x21, x0, #2\n\t"
                     "add x22, x0, #3\n\t"
                     "add x23, x0, #4\n\t"
                     "add x24, x0, #5\n\t"
                     "add x25, x0, #6\n\t"
                     "add x26, x0, #7\n\t"
                     "add x27, x0, #8\n\t"
                     "add x2, x0, #9\n\t"
                     "fmov d8, x2\n\t"
                     "add x2, x0, #10\n\t"
                     "fmov d9, x2\n\t"
                     "add x2, x0, #11\n\t"
                     "fmov d10, x2\n\t"
                     "add x2, x0, #12\n\t"
                     "fmov d11, x2\n\t"
                     "add x2, x0, #13\n\t"
                     "fmov d12, x2\n\t"
                     "add x2, x0, #14\n\t"
                     "fmov d13, x2\n\t"
                     "add x2, x0, #15\n\t"
                     "fmov d14, x2\n\t"
                     "add x2, x0, #16\n\t"
                     "fmov d15, x2\n\t"
                     "bl gm_yield\n\t"
                     "stp x19, x20, [x28, #0]\n\t"
                     "stp x21, x22, [x28, #16]\n\t"
                     "stp x23, x24, [x28, #32]\n\t"
                     "stp x25, x26, [x28, #48]\n\t"
                     "str x27, [x28, #64]\n\t"
                     "fmov x2, d8\n\t"
                     "str x2, [x28, #72]\n\t"
                     "fmov x2, d9\n\t"
                     "str x2, [x28, #80]\n\t"
                     "fmov x2, d10\n\t"
                     "str x2, [x28, #88]\n\t"
                     "fmov x2, d11\n\t"
                     "str x2, [x28, #96]\n\t"
                     "fmov x2, d12\n\t"
                     "str x2, [x28, #104]\n\t"
                     "fmov x2, d13\n\t"
                     "str x2, [x28, #112]\n\t"
                     "fmov x2, d14\n\t"
                     "str x2, [x28, #120]\n\t"
                     "fmov x2, d15\n\t"
                     "str x2, [x28, #128]\n\t"
                     "str x28, [x28, #136]"
                     : "+r"(a0), "+r"(a1)
                     :
                     : "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15",
                       "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
                       "x30", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13",
                       "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26",
                       "v27", "v28", "v29", "v30", "v31", "memory", "cc");
}
#elif defined(__x86_64__)
// rbx, r12-r14 carry values, r15 the output pointer; rbp is saved and
// used here to realign the stack for the call (below the red zone), so it
// must come back too.
#define NREGS 5
static void yieldKeeping(uint64_t seed, uint64_t *out)
{
    register uint64_t a0 __asm__("rdi") = seed;
    register uint64_t *a1 __asm__("rsi") = out;
    __asm__ volatile("mov %%rsi, %%r15\n\t"
                     "mov %%rdi, %%rbx\n\t"
                     "lea 1(%%rdi), %%r12\n\t"
                     "lea 2(%%rdi), %%r13\n\t"
                     "lea 3(%%rdi), %%r14\n\t"
                     "lea -128(%%rsp), %%rsp\n\t"
                     "push %%rbp\n\t"
                     "mov %%rsp, %%rbp\n\t"
                     "and $-16, %%rsp\n\t"
                     "call gm_yield\n\t"
                     "mov %%rbp, %%rsp\n\t"
                     "pop %%rbp\n\t"
                     "lea 128(%%rsp), %%rsp\n\t"
                     "mov %%rbx, 0(%%r15)\n\t"
                     "mov %%r12, 8(%%r15)\n\t"
                     "mov %%r13, 16(%%r15)\n\t"
                     "mov %%r14, 24(%%r15)\n\t"
                     "mov %%r15, 32(%%r15)"
                     : "+r"(a0), "+r"(a1)
                     :
                     : "rax", "rcx", "rdx", "r8", "r9", "r10", "r11", "rbx", "r12", "r13", "r14", "r15", "xmm0",
                       "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}
#endif

enum { Rounds = 50 };
static int bad[2];

static void keeper(void *arg)
{
    int id = (int)(uintptr_t)arg;
    uint64_t out[NREGS];
    for (uint64_t r = 0; r < Rounds; r++) {
        uint64_t seed = ((uint64_t)(id + 1) << 40) + r * 1000;
        yieldKeeping(seed, out);
        for (int i = 0; i < NREGS - 1; i++)
            bad[id] += out[i] != seed + (uint64_t)i;
        bad[id] += out[NREGS - 1] != (uint64_t)(uintptr_t)out; // the pointer register itself
    }
}

static void two_keepers(void *arg)
{
    gm_go_options o = { (gm_stack_mode)(uintptr_t)arg, 0, NULL, 0 };
    gm_go_opts(keeper, (void *)0, &o);
    gm_go_opts(keeper, (void *)1, &o);
}

TEST(callee_saved_registers_survive_a_switch)
{
    for (uintptr_t mode = 0; mode <= 1; mode++) { // copied, dedicated
        bad[0] = bad[1] = 0;
        CHECK_EQ(gm_main(two_keepers, (void *)mode), 0);
        CHECK_EQ(bad[0], 0);
        CHECK_EQ(bad[1], 0);
    }
}

int main(void)
{
    gm_set_procs(1); // both coroutines on one thread: each switch is between them
    RUN(callee_saved_registers_survive_a_switch);
    return test_report();
}
