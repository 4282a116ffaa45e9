// SPDX-License-Identifier: MIT
//
// Descriptions of coroutines (Go: traceback.go's goroutineheader and
// tracebackothers): the one-line description that names a coroutine in
// every message (describeG, throwG, offStack, notInCoroutine, the hint of
// how to raise its stack limit), and the list of a group's coroutines
// that the deadlock report prints (proc.c's checkdead decides; this prints).
//
// Owns no state. Reads a g's fields the way a message may: a descriptor
// is never freed, so a stale gm_g * still reads as some coroutine.
#include "runtime2.h"

#include <stdio.h>

void describeG(char *buf, size_t n, const gm_g *g)
{
    snprintf(buf, n, "coroutine %llu%s%s%s (%s stack, %zu bytes)", (unsigned long long)g->id,
             g->name ? " \"" : "", g->name ? g->name : "", g->name ? "\"" : "",
             g->mode == GM_STACK_DEDICATED ? "dedicated"
             : g->checked                  ? "copied, stackcheck"
             : g->pinned                   ? "copied, pinned"
                                           : "copied",
             g->mode == GM_STACK_DEDICATED ? (size_t)(g->stack.hi - g->stack.lo)
             : g->checked                  ? CheckStackSize
                                           : execStackSize());
}

const char *stackLimitHint(const gm_g *g)
{
    return g->mode == GM_STACK_DEDICATED ? "a dedicated stack does not grow: its size is gm_go_options.stack_size"
           : g->checked ? "GOMEM_DEBUG=stackcheck runs each copied coroutine on a stack of 256 KiB"
                        : "copied coroutines may grow to GOMEM_MAXSTACK (default 8m, at most 1g)";
}

void throwG(const char *what, const gm_g *g)
{
    char buf[200];
    describeG(buf, sizeof buf, g);
    throw("%s: %s", what, buf);
}

static const char *statusName(const gm_g *g)
{
    switch (gstatus(g)) {
    case Grunnable: return "runnable";
    case Grunning: return "running";
    case Gwaiting: return g->waitReason != NULL ? g->waitReason : "waiting";
    default: return "dead";
    }
}

void tracebackGroup(group *grp)
{
    int shown = 0;
    for (int i = 0; i < grp->nprocs; i++) {
        worker *p = grp->ps[i];
        spin_lock(&p->lock);
        for (int l = 0; l < 2; l++)
            for (gm_g *g = l == 0 ? p->allg : p->allgMov; g != NULL && shown <= 100; g = g->allnext) {
                if (shown++ == 100) {
                    fprintf(stderr, "...\n");
                    break;
                }
                fprintf(stderr, "\ncoroutine %llu%s%s%s [%s]\n", (unsigned long long)g->id,
                        g->name ? " \"" : "", g->name ? g->name : "", g->name ? "\"" : "", statusName(g));
            }
        spin_unlock(&p->lock);
    }
}

void offStack(const char *who, const gm_g *g, uintptr_t sp)
{
    char buf[240];
    if (ownStack(g) && sp < g->stack.lo && sp + (64 << 10) > g->stack.lo) {
        describeG(buf, sizeof buf, g);
        throw("stack overflow (its stack pointer is below its stack; canary overwritten): %s (%s)", buf,
              stackLimitHint(g));
    }
    snprintf(buf, sizeof buf, "%s called from a signal handler (or another stack than the coroutine's)", who);
    throwG(buf, g);
}

void notInCoroutine(const char *who)
{
    throw("%s called outside a coroutine", who);
}
