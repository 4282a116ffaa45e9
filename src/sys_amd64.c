// SPDX-License-Identifier: MIT
//
// A new coroutine's first frame on x86-64 (Go: sys_x86.go's gostartcall):
// what switch_amd64.S's swapctx pops, laid out so that its first switch in
// runs entry(g).
#include "runtime2.h"

#if !defined(__x86_64__)
#error "sys_amd64.c is the x86-64 port; gomem supports x86-64 (amd64) and AArch64 (arm64)"
#endif

// Callee-saved registers with r12 = g and r13 = entry, then gostart as the
// return address, so that after swapctx's jump the stack is 16-byte
// aligned for gostart's call.
void gostart(void);
void *gostartcall(char *top, gm_g *g, void (*entry)(gm_g *))
{
    uintptr_t *sp = (uintptr_t *)(((uintptr_t)top & ~(uintptr_t)15) - 16 - 64);
    sp[0] = 0x1F80 | ((uintptr_t)0x037F << 32); // MXCSR default; x87 control word default
    sp[1] = 0;                                  // r15
    sp[2] = 0;                                  // r14
    sp[3] = (uintptr_t)entry;                   // r13
    sp[4] = (uintptr_t)g;                       // r12
    sp[5] = 0;                                  // rbx
    sp[6] = 0;                                  // rbp
    sp[7] = (uintptr_t)gostart;                 // return address
    return sp;
}

const size_t gosavedframeBytes = 8 * sizeof(uintptr_t);

void gosavedframe(const uintptr_t *sp, uintptr_t *fp, uintptr_t *pc)
{
    *fp = sp[6];
    *pc = sp[7];
}
