// SPDX-License-Identifier: MIT
//
// The SIGSEGV handler that turns a stack overflow into a message naming the
// coroutine (Go: signal_unix.go's sighandler, for the one fault gomem
// expects). Each worker thread gets an alternate signal stack, so the
// handler can run when the coroutine's own stack is exhausted.
//
// The handler claims a fault when it hits:
//   - the guard page below a dedicated or stackcheck coroutine's stack, or
//     below a worker's execution stack (copied mode): "stack overflow in
//     coroutine N ...";
//   - a parked stackcheck coroutine's protected stack (GOMEM_DEBUG=
//     stackcheck): the parked-stack contract broken, naming both coroutines.
// Any other fault goes to the handler the program had installed before
// gomem's, or to the default action.
#include "runtime2.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sigaction oldSegv; // the program's handler, chained to for faults not ours

static GM_COLD void writeErr(const char *msg, int len)
{
    if (len > 0 && write(2, msg, (size_t)len) < 0)
        abort();
}

static void onSegv(int sig, siginfo_t *info, void *uctx)
{
    worker *p = TLS(tworker);
    uintptr_t a = (uintptr_t)info->si_addr;
    gm_g *g = p != NULL ? p->cur : NULL;
    if (g != NULL) {
        if (inGuard(g, a)) {
            char buf[200];
            describeG(buf, sizeof buf, g);
            // snprintf is not async-signal-safe in general; this process is
            // about to abort and the faulting thread holds no gomem lock.
            char msg[400];
            writeErr(msg, snprintf(msg, sizeof msg, "gomem: stack overflow in %s at %p (%s)\n", buf, (void *)a,
                                   stackLimitHint(g)));
            abort();
        }
    }
    for (gm_g *o = checkedGs; o != NULL; o = o->checkNext) {
        if (!o->protected || a < o->stack.lo + os_physpagesize() || a >= o->stack.hi)
            continue;
        char who[200], whose[200], msg[500];
        if (g != NULL)
            describeG(who, sizeof who, g);
        else
            snprintf(who, sizeof who, "thread %lu (not in a coroutine)", (unsigned long)pthread_self());
        describeG(whose, sizeof whose, o);
        writeErr(msg, snprintf(msg, sizeof msg,
                               "gomem: stackcheck: %s accessed %p in the stack of %s while it is parked "
                               "(the parked-stack contract: docs/stack-or-heap.md)\n",
                               who, (void *)a, whose));
        abort();
    }
    if ((oldSegv.sa_flags & SA_SIGINFO) && oldSegv.sa_sigaction != NULL) {
        oldSegv.sa_sigaction(sig, info, uctx);
        return;
    }
    if (oldSegv.sa_handler != SIG_DFL && oldSegv.sa_handler != SIG_IGN && oldSegv.sa_handler != NULL) {
        oldSegv.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL); // returning re-executes the access: the default action
}

static void initsig(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onSegv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &oldSegv);
}

void minitSignals(worker *p)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    // Without it a guard-page hit cannot be reported (the handler would
    // run on the overflowed stack): the program still works.
    p->altstack = os_alloc_meta(SignalStackSize);
    if (p->altstack != NULL) {
        stack_t ss = { .ss_sp = p->altstack, .ss_size = SignalStackSize, .ss_flags = 0 };
        sigaltstack(&ss, NULL);
    }
    pthread_once(&once, initsig);
}

void unminitSignals(worker *p)
{
    if (p->altstack == NULL)
        return;
    stack_t ss = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
    sigaltstack(&ss, NULL);
    os_release(p->altstack, SignalStackSize);
    p->altstack = NULL;
}
