// SPDX-License-Identifier: MIT
//
// The context switch for x86-64 (System V). With sys_amd64.c it is the
// only architecture-specific code of the coroutine layer; a port adds
// switch_<arch>.S and sys_<arch>.c with the same symbols.
//
// void swapctx(void **save_sp, void *new_sp)
//   Saves the callee-saved registers, MXCSR and the x87 control word on the
//   current stack, stores the stack pointer in *save_sp, switches to new_sp
//   and restores the same from there. A frame built by sys_amd64.c's
//   gostartcall has the same layout, with gostart as return address.
//   24 instructions, as many as Boost.Context's jump_fcontext.
//
// The control words, measured on Zen 3 (AMD EPYC; a bare switch loop like
// bench/boost_switch.cpp, minimum of 20 interleaved runs): stmxcsr is the
// dearest part of a switch (3.0 ns of 6.0), and what it stores is not
// forwarded to a load, which waits for the store to reach the cache:
// comparing the saved MXCSR with the other context's, to skip ldmxcsr when
// equal, cost 1.7 ns more per switch than always loading it, which costs
// next to nothing (and keeps the status flags per context too). fnstcw's
// store is forwarded: the x87 word is compared and loaded only when it
// differs (0.3 ns less than always).
//
// void swapctxVia(void **save_sp, void *scratch, void *(*fn)(void *), void *arg)
//   swapctx whose new stack pointer is computed by fn(arg), run on the
//   16-byte aligned scratch stack after the current context is saved: a
//   copied-mode coroutine yielding to another copies frames over its own,
//   which must happen on neither's stack. One switch (one mispredicted
//   return) instead of two through the scheduler.
//
// gostart: first code of a new coroutine: calls r13(r12) (proc.c's
//   coroMain(g), which never returns).
//
// copystackbytes: see below.

// The saved context, lowest address first: MXCSR (4 bytes), x87 control
// word (2), padding, r15, r14, r13, r12, rbx, rbp, return address.
.macro SAVE_CONTEXT
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
.endm

// Pops what SAVE_CONTEXT pushed (the control words were loaded, or not,
// by the caller) and resumes at the saved return address: pop + jmp, not
// ret, because the return stack buffer predicts the caller of this call,
// never the other context's; the indirect predictor learns the switch
// patterns (Boost.Context's jump_fcontext does the same).
.macro RESTORE_CONTEXT
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    popq %rcx
    jmp *%rcx
.endm

    .text
    .globl swapctx
    .hidden swapctx
    .type swapctx, @function
swapctx:
    .cfi_startproc
    SAVE_CONTEXT
    movq %rsp, (%rdi)
    movzwl 4(%rsp), %eax
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    cmpw 4(%rsp), %ax
    jne 1f
    RESTORE_CONTEXT
1:  fldcw 4(%rsp)
    RESTORE_CONTEXT
    .cfi_endproc
    .size swapctx, .-swapctx

    .globl swapctxVia
    .hidden swapctxVia
    .type swapctxVia, @function
swapctxVia:
    .cfi_startproc
    SAVE_CONTEXT
    movq %rsp, (%rdi)
    // The current x87 control word, in a register fn preserves: fn may
    // overwrite the saved context itself (that is its purpose).
    movzwl 4(%rsp), %r12d
    movq %rsi, %rsp
    movq %rcx, %rdi
    callq *%rdx
    movq %rax, %rsp
    ldmxcsr (%rsp)
    cmpw 4(%rsp), %r12w
    je 1f
    fldcw 4(%rsp)
1:  RESTORE_CONTEXT
    .cfi_endproc
    .size swapctxVia, .-swapctxVia

    .globl gostart
    .hidden gostart
    .type gostart, @function
gostart:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size gostart, .-gostart

// void copystackbytes(void *dst, const void *src, size_t n)
//   memcpy for saved stacks, in assembly so that AddressSanitizer does not
//   check it: a stack's bytes include its frames' redzones.
    .globl copystackbytes
    .hidden copystackbytes
    .type copystackbytes, @function
copystackbytes:
    .cfi_startproc
    movq %rdx, %rcx
    rep movsb
    ret
    .cfi_endproc
    .size copystackbytes, .-copystackbytes

    .section .note.GNU-stack,"",@progbits
