// SPDX-License-Identifier: MIT
//
// A new coroutine's first frame on AArch64 (Go: sys_arm64.go's
// gostartcall): what switch_arm64.S's swapctx restores, laid out so that
// its first switch in runs entry(g).
#include "runtime2.h"

#if !defined(__aarch64__)
#error "sys_arm64.c is the AArch64 port; gomem supports x86-64 (amd64) and AArch64 (arm64)"
#endif

// switch_arm64.S's saved frame, in 8-byte words from its lowest address:
// d8-d15, x19-x28, x29, x30, FPCR, padding.
enum { FrameD8 = 0, FrameX19 = 8, FrameX20 = 9, FrameX29 = 18, FrameX30 = 19, FrameFPCR = 20, FrameWords = 22 };
_Static_assert(FrameWords * 8 == 176 && FrameWords % 2 == 0, "switch_arm64.S's FRAME, a multiple of 16 bytes");

// x19 = entry and x20 = g (callee-saved, so gostart finds them), x29 = 0
// (the end of the frame-pointer chain), x30 = gostart (swapctx returns
// there), FPCR 0 (Linux's initial value: round to nearest, no traps, no
// flush-to-zero); every other register 0. sp is 16-byte aligned at
// gostart, as AAPCS64 requires at every instruction that uses it.
void gostart(void);
void *gostartcall(char *top, gm_g *g, void (*entry)(gm_g *))
{
    uintptr_t *sp = (uintptr_t *)(((uintptr_t)top & ~(uintptr_t)15) - FrameWords * 8);
    for (int i = 0; i < FrameWords; i++)
        sp[i] = 0;
    sp[FrameX19] = (uintptr_t)entry;
    sp[FrameX20] = (uintptr_t)g;
    sp[FrameX29] = 0;
    sp[FrameX30] = (uintptr_t)gostart;
    sp[FrameFPCR] = 0;
    return sp;
}

const size_t gosavedframeBytes = FrameWords * 8;

void gosavedframe(const uintptr_t *sp, uintptr_t *fp, uintptr_t *pc)
{
    *fp = sp[FrameX29];
    *pc = sp[FrameX30];
}
