// SPDX-License-Identifier: MIT
//
// The context switch for AArch64 (AAPCS64, Linux). The same symbols and
// contracts as switch_amd64.S, whose head describes each; sys_arm64.c
// builds a new coroutine's first frame in the layout below.
//
// void swapctx(void **save_sp, void *new_sp)
//   Saves what AAPCS64 makes callee-saved: x19-x28, the frame pointer x29,
//   the link register x30 (where the switch returns to), the low halves of
//   v8-v15 (d8-d15) and FPCR (rounding mode, flush-to-zero, default NaN,
//   trap enables: per coroutine, as MXCSR and the x87 control word are on
//   x86-64) in a 176-byte frame on the current stack, stores sp in
//   *save_sp, switches to new_sp and restores the same from there.
//   Not saved: FPSR, whose cumulative exception flags stay the thread's
//   (fetestexcept sees the flags every coroutine on the thread raised since
//   they were last cleared; so do MXCSR's flags and the x87 status word on
//   x86-64); x18, the platform register,
//   never touched; SVE's upper vector bits and SME's ZA state, which the
//   procedure call standard does not preserve across a call either.
//   FPCR is written only when it differs from the current value (an MSR to
//   FPCR may synchronise the pipeline on some cores; reading it does not),
//   as switch_amd64.S does with the x87 control word. 31 instructions on
//   the path where FPCR is equal; not measured on arm64 hardware.
//
//   It returns with ret, not br x30: a br to the saved return address
//   would need a BTI landing pad there, which a call site does not have
//   (BTI-enforcing binaries would fault), and the return predictor
//   mispredicts a switch either way (Boost.Context also returns with ret).
//
// void swapctxVia(void **save_sp, void *scratch, void *(*fn)(void *), void *arg)
//   swapctx whose new stack pointer is fn(arg), run on the 16-byte aligned
//   scratch stack once the current context is saved (switch_amd64.S's
//   head says why).
//
// gostart: first code of a new coroutine: calls x19(x20) (proc.c's
//   coroMain(g), which never returns).
//
// copystackbytes: memcpy for saved stacks, not checked by AddressSanitizer.
//
// Unwinding: swapctx's CFI describes the saved frame at sp (CFA = sp + 176,
// x29 and x30 in it), which is true on either side of the stack switch, as
// both stacks hold a frame of this layout: a debugger stopped inside it
// unwinds into whichever context's caller is current. In swapctxVia, while
// fn runs on the scratch stack (and may overwrite the saved frame), x30 is
// marked undefined, so backtraces from fn stop there; gostart marks x30
// undefined too, the outermost frame of every coroutine (x29 is 0 there,
// which also ends a frame-pointer walk).

// The saved context, offsets from sp: d8-d15 at 0..63, x19-x28 at 64..143,
// x29 at 144, x30 at 152, FPCR at 160, 8 bytes of padding (sp stays
// 16-byte aligned).
#define FRAME 176

// Where the saved registers are, relative to the CFA (sp + FRAME).
.macro SAVED_CFI
    .cfi_offset d8, -176
    .cfi_offset d9, -168
    .cfi_offset d10, -160
    .cfi_offset d11, -152
    .cfi_offset d12, -144
    .cfi_offset d13, -136
    .cfi_offset d14, -128
    .cfi_offset d15, -120
    .cfi_offset x19, -112
    .cfi_offset x20, -104
    .cfi_offset x21, -96
    .cfi_offset x22, -88
    .cfi_offset x23, -80
    .cfi_offset x24, -72
    .cfi_offset x25, -64
    .cfi_offset x26, -56
    .cfi_offset x27, -48
    .cfi_offset x28, -40
    .cfi_offset x29, -32
    .cfi_offset x30, -24
.endm

// Every register holds its caller's value again.
.macro RESTORED_CFI
    .cfi_restore d8
    .cfi_restore d9
    .cfi_restore d10
    .cfi_restore d11
    .cfi_restore d12
    .cfi_restore d13
    .cfi_restore d14
    .cfi_restore d15
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
.endm

// Saves the context, leaving the current FPCR in x9.
.macro SAVE_CONTEXT
    sub sp, sp, #FRAME
    .cfi_def_cfa_offset FRAME
    stp d8, d9, [sp, #0]
    stp d10, d11, [sp, #16]
    stp d12, d13, [sp, #32]
    stp d14, d15, [sp, #48]
    stp x19, x20, [sp, #64]
    stp x21, x22, [sp, #80]
    stp x23, x24, [sp, #96]
    stp x25, x26, [sp, #112]
    stp x27, x28, [sp, #128]
    stp x29, x30, [sp, #144]
    SAVED_CFI
    mrs x9, fpcr
    str x9, [sp, #160]
.endm

// Restores the context at sp, writing FPCR only when it differs from
// \cur, and returns into it.
.macro RESTORE_CONTEXT cur
    ldr x10, [sp, #160]
    cmp x10, \cur
    b.eq 1f
    msr fpcr, x10
1:  ldp d8, d9, [sp, #0]
    ldp d10, d11, [sp, #16]
    ldp d12, d13, [sp, #32]
    ldp d14, d15, [sp, #48]
    ldp x19, x20, [sp, #64]
    ldp x21, x22, [sp, #80]
    ldp x23, x24, [sp, #96]
    ldp x25, x26, [sp, #112]
    ldp x27, x28, [sp, #128]
    ldp x29, x30, [sp, #144]
    add sp, sp, #FRAME
    .cfi_def_cfa_offset 0
    RESTORED_CFI
    ret
.endm

// A landing pad for indirect calls when the build enforces BTI (a no-op
// hint otherwise); gomem calls these directly.
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define BTI_C hint #34
#else
#define BTI_C
#endif

    .text
    .globl swapctx
    .hidden swapctx
    .type swapctx, %function
    .p2align 4
swapctx:
    .cfi_startproc
    BTI_C
    SAVE_CONTEXT
    mov x10, sp
    str x10, [x0]
    mov sp, x1
    RESTORE_CONTEXT x9
    .cfi_endproc
    .size swapctx, .-swapctx

    .globl swapctxVia
    .hidden swapctxVia
    .type swapctxVia, %function
    .p2align 4
swapctxVia:
    .cfi_startproc
    BTI_C
    SAVE_CONTEXT
    mov x10, sp
    str x10, [x0]
    // The current FPCR, in a register fn preserves (x19 is saved above):
    // fn may overwrite the saved context itself (that is its purpose).
    mov x19, x9
    .cfi_undefined x30
    mov sp, x1
    mov x0, x3
    blr x2
    mov sp, x0
    .cfi_offset x30, -24
    RESTORE_CONTEXT x19
    .cfi_endproc
    .size swapctxVia, .-swapctxVia

    .globl gostart
    .hidden gostart
    .type gostart, %function
    .p2align 2
gostart:
    .cfi_startproc
    .cfi_undefined x30
    mov x0, x20
    blr x19
    brk #0x1
    .cfi_endproc
    .size gostart, .-gostart

// void copystackbytes(void *dst, const void *src, size_t n)
//   16 bytes per step, then the tail byte by byte (saved stacks are
//   multiples of 16 bytes; any n works). The ranges do not overlap.
    .globl copystackbytes
    .hidden copystackbytes
    .type copystackbytes, %function
    .p2align 4
copystackbytes:
    .cfi_startproc
    BTI_C
    subs x2, x2, #16
    b.lo 2f
1:  ldp x3, x4, [x1], #16
    stp x3, x4, [x0], #16
    subs x2, x2, #16
    b.hs 1b
2:  adds x2, x2, #16
    b.eq 4f
3:  ldrb w3, [x1], #1
    strb w3, [x0], #1
    subs x2, x2, #1
    b.ne 3b
4:  ret
    .cfi_endproc
    .size copystackbytes, .-copystackbytes

// With BTI or PAC in the default branch protection, say that this object
// complies (no indirect call lands here unmarked; no function here signs
// a return address: the saved x30 is a plain address, as in any context
// switch), so the linker keeps the property for the whole binary.
#if defined(__ARM_FEATURE_BTI_DEFAULT) || defined(__ARM_FEATURE_PAC_DEFAULT)
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define GNU_PROPERTY_BTI 1
#else
#define GNU_PROPERTY_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT
#define GNU_PROPERTY_PAC 2
#else
#define GNU_PROPERTY_PAC 0
#endif
    .pushsection .note.gnu.property, "a"
    .p2align 3
    .word 4                   // name size
    .word 16                  // descriptor size
    .word 5                   // NT_GNU_PROPERTY_TYPE_0
    .asciz "GNU"
    .word 0xc0000000          // GNU_PROPERTY_AARCH64_FEATURE_1_AND
    .word 4                   // its size
    .word GNU_PROPERTY_BTI | GNU_PROPERTY_PAC
    .word 0                   // padding
    .popsection
#endif

    .section .note.GNU-stack,"",%progbits
