// SPDX-License-Identifier: MIT
//
// The context switch for x86-64 (System V). With sys_amd64.c it is the
// only architecture-specific code of the coroutine layer; a port adds
// switch_<arch>.S and sys_<arch>.c with the same symbols.
//
// void swapctx(void **save_sp, void *new_sp)
//   Saves the callee-saved registers, MXCSR and the x87 control word on the
//   current stack, stores the stack pointer in *save_sp, switches to new_sp
//   and restores the same from there (the control words as said below). A frame built by sys_amd64.c's
//   gostartcall has the same layout, with gostart as return address.
//   27 instructions where the control words are equal (Boost.Context's
//   jump_fcontext: 24, loading both words at every switch).
//
// The control words. Each coroutine keeps its own MXCSR control bits
// (rounding, flush-to-zero, exception masks) and x87 control word; the
// MXCSR exception flags (its low six bits, sticky) stay the thread's, as
// FPSR's do on arm64: they are not compared, and loaded only along with
// a control change. The two words are reloaded only when the other
// context's differ. Both the rule and the loads' sizes matter (measured on
// a Sapphire Rapids guest, bench/coro.sh at one worker): an ldmxcsr of a
// value that differs from the current one costs tens of nanoseconds in a
// busy pipeline, and a new coroutine starts with no flags set where a
// thread running float code has the inexact flag up: comparing whole
// MXCSRs, or always loading, makes creating and running a coroutine 95 ns
// instead of 37, a dedicated ping-pong round trip 228 ns instead of 115.
// And the saved words are read back with loads the size of their stores
// (4 and 2 bytes), which the stores forward to: one 8-byte load of both
// waits for the stores to reach the cache (a yield 9.2 ns instead of
// 4.7). On Zen 3 stmxcsr's store is not forwarded at all (1.7 ns a
// switch).
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
    movl (%rsp), %eax           // MXCSR and the x87 word, as stored (forwarded)
    movzwl 4(%rsp), %edx
    movq %rsi, %rsp
    xorl (%rsp), %eax
    andl $-64, %eax             // the exception flags are the thread's
    jnz 1f
    cmpw 4(%rsp), %dx
    jne 1f
    RESTORE_CONTEXT
1:  ldmxcsr (%rsp)
    fldcw 4(%rsp)
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
    // The current control words, in registers fn preserves: fn may
    // overwrite the saved context itself (that is its purpose).
    movl (%rsp), %r12d
    movzwl 4(%rsp), %r13d
    movq %rsi, %rsp
    movq %rcx, %rdi
    callq *%rdx
    movq %rax, %rsp
    xorl (%rsp), %r12d
    andl $-64, %r12d
    jnz 1f
    cmpw 4(%rsp), %r13w
    jne 1f
    RESTORE_CONTEXT
1:  ldmxcsr (%rsp)
    fldcw 4(%rsp)
    RESTORE_CONTEXT
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
