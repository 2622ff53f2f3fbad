/* Patch 7: GHC 10.0's getTraceFlag/setTraceFlag, exactly as upstream declares
 * them, switch the RTS's own class switches (read here through the hidden
 * TRACE_* ints, reachable in a static link). Prints "ok" lines; exits 1 on a
 * mismatch. */
#include "Rts.h"
#include <stdio.h>

extern int TRACE_sched, TRACE_gc, TRACE_user, TRACE_cap;

int main(int argc, char *argv[])
{
    RtsConfig conf = defaultRtsConfig;
    conf.rts_opts_enabled = RtsOptsAll;
    hs_init_ghc(&argc, &argv, conf);
    int bad = 0;
#define CHECK(cond, what) do { if (cond) printf("ok   %s\n", what); else { printf("FAIL %s\n", what); bad = 1; } } while (0)
    CHECK(getTraceFlag(TRACE_SCHEDULER) && getTraceFlag(TRACE_GC) && getTraceFlag(TRACE_USER),
          "getTraceFlag: -l's default classes are on");
    setTraceFlag(TRACE_USER, false);
    CHECK(!getTraceFlag(TRACE_USER) && TRACE_user == 0, "setTraceFlag(TRACE_USER, false) switches -lu off");
    setTraceFlag(TRACE_SCHEDULER, false);
    setTraceFlag(TRACE_GC, false);
    CHECK(TRACE_sched == 0 && TRACE_gc == 0, "setTraceFlag switches -ls and -lg off");
    setTraceFlag(TRACE_USER, true);
    CHECK(getTraceFlag(TRACE_USER) && TRACE_user == 1, "setTraceFlag(TRACE_USER, true) switches it back");
    setTraceFlag(TRACE_CAP, false);
    CHECK(!getTraceFlag(TRACE_CAP) && TRACE_cap == 0, "TRACE_CAP is a flag of its own");
    setTraceFlag(TRACE_IPE, true);
    CHECK(!getTraceFlag(TRACE_IPE), "TRACE_IPE is accepted and stays off (no IPE in 9.0.2)");
    hs_exit();
    return bad;
}
