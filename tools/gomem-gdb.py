# gdb commands for gomem coroutines (load with: source tools/gomem-gdb.py).
#
#   gm-coroutines        every started coroutine of every worker: id, name,
#                        mode, state (the wait reason when parked)
#   gm-bt ID             the backtrace of coroutine ID where it parked
#
# A parked coroutine's context is what swapctx pushed at g->sp: MXCSR and
# x87 control word, r15, r14, r13, r12, rbx, rbp, then the return address.
# gm-bt points rsp/rip/rbp there, prints the backtrace and puts them back
# (a live process, not a core file). A dedicated coroutine's frames are
# always in place; a copied one's only while it owns its execution stack
# (g->onExec: the last copied coroutine that ran there): the others' frames
# sit in their saved copies at other addresses, where gdb cannot unwind
# them. Run the program with GOMEM_DEBUG=stackcheck to give every copied
# coroutine a stack of its own, and gm-bt shows every one.
import gdb

STATES = {0: "idle", 1: "runnable", 2: "running", 3: "waiting", 4: "dead"}


def workers():
    seen, out = set(), []
    orig = gdb.selected_thread()
    for t in gdb.selected_inferior().threads():
        t.switch()
        try:
            p = gdb.parse_and_eval("tworker")
        except gdb.error:
            continue
        if int(p) == 0:
            continue
        grp = p["grp"]
        n = int(grp["nprocs"])
        ps = [grp["ps"][i] for i in range(n)] if n > 0 and int(grp["ps"]) != 0 else [p]
        for w in ps:
            if int(w) not in seen:
                seen.add(int(w))
                out.append(w)
    if orig is not None:
        orig.switch()
    return out


def coroutines():
    for w in workers():
        for head in ("allg", "allgMov"):  # the started gs that cannot move, then the movable ones
            g = w[head]
            while int(g) != 0:
                yield w, g
                g = g["allnext"]


def describe(w, g):
    name = g["name"].string() if int(g["name"]) != 0 else ""
    mode = "dedicated" if int(g["mode"]) == 1 else ("copied, stackcheck" if bool(g["checked"]) else "copied")
    st = STATES.get(int(g["status"]), "?")
    if st == "waiting" and int(g["waitReason"]) != 0:
        st = g["waitReason"].string()
    return "coroutine %d %s[%s] %s, worker %d" % (int(g["id"]), '"%s" ' % name if name else "", st, mode, int(w["id"]))


class Coroutines(gdb.Command):
    """List gomem coroutines: gm-coroutines"""

    def __init__(self):
        super().__init__("gm-coroutines", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        n = 0
        for w, g in coroutines():
            print(describe(w, g))
            n += 1
        print("%d coroutines" % n)


class Backtrace(gdb.Command):
    """Backtrace of a parked gomem coroutine: gm-bt ID"""

    def __init__(self):
        super().__init__("gm-bt", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        want = int(arg)
        for w, g in coroutines():
            if int(g["id"]) != want:
                continue
            print(describe(w, g))
            if int(w["cur"]) == int(g):
                print("running now: use gdb's own bt in its thread")
                return
            # Its frames are in place on a stack of its own (dedicated,
            # stackcheck, pinned), or while it owns its execution stack.
            if not bool(g["own"]) and not bool(g["onExec"]):
                print("its frames are in its saved copy (copied mode): run with GOMEM_DEBUG=stackcheck to see them")
                return
            sp = int(g["sp"])
            u64 = gdb.lookup_type("unsigned long").pointer()
            regs = {r: gdb.parse_and_eval("$" + r) for r in ("rsp", "rip", "rbp")}
            try:
                gdb.execute("set $rbp = %d" % int(gdb.Value(sp + 48).cast(u64).dereference()))
                gdb.execute("set $rip = %d" % int(gdb.Value(sp + 56).cast(u64).dereference()))
                gdb.execute("set $rsp = %d" % (sp + 64))
                gdb.execute("bt")
            finally:
                for r, v in regs.items():
                    gdb.execute("set $%s = %d" % (r, int(v)))
            return
        print("no started coroutine %d" % want)


Coroutines()
Backtrace()
