/*
 * The shim's only contact with GHC's RTS internals.
 *
 * Every RTS symbol is a weak reference, so one object works in both links:
 *  - static link into the program: the hidden symbols (TRACE_* switches,
 *    stopAllCapabilities, my_task, ...) resolve, and the shim can stop the
 *    world, flush every capability buffer and switch event classes;
 *  - shared library: hidden symbols stay NULL and the shim reports that the
 *    mechanisms are unavailable instead of failing to load.
 * No GHC header is included so the crate builds on machines without GHC; the
 * declarations below follow GHC 9.0.2's rts/ and includes/ (checked there).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Capability_ Capability;
typedef struct Task_ Task;

#define WEAK __attribute__((weak))

/* Public (includes/rts/EventLogWriter.h, RtsAPI.h, HsFFI.h). */
extern bool startEventLogging(const void *writer) WEAK;
extern void endEventLogging(void) WEAK;
extern int eventLogStatus(void) WEAK;
extern Capability *rts_lock(void) WEAK;
extern void rts_unlock(Capability *cap) WEAK;
extern void hs_thread_done(void) WEAK;
extern unsigned int n_capabilities WEAK;

/* Hidden (rts/Trace.c, rts/Schedule.h, rts/Task.h). */
extern int TRACE_sched WEAK;
extern int TRACE_gc WEAK;
extern int TRACE_nonmoving_gc WEAK;
extern int TRACE_spark_sampled WEAK;
extern int TRACE_spark_full WEAK;
extern int TRACE_user WEAK;
extern int TRACE_cap WEAK;
extern void stopAllCapabilities(Capability **pCap, Task *task) WEAK;
extern void releaseAllCapabilities(uint32_t n, Capability *keep_cap, Task *task) WEAK;
extern volatile uintptr_t sched_state WEAK;
extern __thread Task *my_task WEAK;
extern Capability **capabilities WEAK;
extern void traceCapsetEvent_(uint16_t tag, uint32_t capset, uintptr_t info) WEAK;
extern void traceCapEvent_(Capability *cap, uint16_t tag) WEAK;
extern void traceWallClockTime_(void) WEAK;
extern void traceOSProcessInfo_(void) WEAK;

/* GHC >= 9.2, public (includes/rts/EventLogWriter.h): flushEventLog(Capability
 * **cap), cap NULL when none is held. 9.0.2 has an internal flushEventLog(void)
 * under the same name, so NullEventLogWriter (new in 9.2) marks the release.
 * ghc-patches/ patch 6 backports both to 9.0.2. */
struct EventLogWriter_;
extern const struct EventLogWriter_ NullEventLogWriter WEAK;
extern void flushEventLog(Capability **cap) WEAK;

/* The patched RTS (ghc-patches/), preferred when present. */
extern int rts_eventLogStreamingApiVersion(void) WEAK;
extern void rts_flushEventLog(void) WEAK;
extern bool rts_setTraceFlag(int flag, bool enabled) WEAK;
extern bool rts_getTraceFlag(int flag) WEAK;
extern void rts_resyncEventLog(void) WEAK;

/* Class bits, shared with rts.rs. */
enum {
    CLASS_SCHED = 1,
    CLASS_GC = 2,
    CLASS_NONMOVING_GC = 4,
    CLASS_SPARK_SAMPLED = 8,
    CLASS_SPARK_FULL = 16,
    CLASS_USER = 32,
};

#define EVENTLOG_RUNNING 2
#define SCHED_RUNNING 0

int elstream_glue_rts_present(void)
{
    return startEventLogging != NULL && endEventLogging != NULL && eventLogStatus != NULL;
}

int elstream_glue_eventlog_running(void)
{
    return eventLogStatus != NULL && eventLogStatus() == EVENTLOG_RUNNING;
}

int elstream_glue_has_switches(void)
{
    return &TRACE_sched != NULL && &TRACE_gc != NULL && &TRACE_nonmoving_gc != NULL &&
           &TRACE_spark_sampled != NULL && &TRACE_spark_full != NULL && &TRACE_user != NULL &&
           &TRACE_cap != NULL;
}

/* Checked before the TLS variable is touched: in a shared library the
 * functions are NULL and my_task must not be read. */
int elstream_glue_can_stop_world(void)
{
    return rts_lock != NULL && rts_unlock != NULL && stopAllCapabilities != NULL &&
           releaseAllCapabilities != NULL && &n_capabilities != NULL && &sched_state != NULL &&
           hs_thread_done != NULL;
}

int elstream_glue_patched_api(void)
{
    return rts_eventLogStreamingApiVersion != NULL ? rts_eventLogStreamingApiVersion() : 0;
}

/* 0 once hs_exit has begun (rts_lock is fatal then); 1 otherwise, also when
 * the scheduler's state is out of reach (shared library). */
int elstream_glue_scheduler_running(void)
{
    return &sched_state == NULL || sched_state == SCHED_RUNNING;
}

unsigned elstream_glue_get_classes(void)
{
    if (!elstream_glue_has_switches())
        return 0;
    return (TRACE_sched ? CLASS_SCHED : 0) | (TRACE_gc ? CLASS_GC : 0) |
           (TRACE_nonmoving_gc ? CLASS_NONMOVING_GC : 0) |
           (TRACE_spark_sampled ? CLASS_SPARK_SAMPLED : 0) |
           (TRACE_spark_full ? CLASS_SPARK_FULL : 0) | (TRACE_user ? CLASS_USER : 0);
}

static void set_classes(unsigned m)
{
    TRACE_sched = (m & CLASS_SCHED) != 0;
    TRACE_gc = (m & CLASS_GC) != 0;
    TRACE_nonmoving_gc = (m & CLASS_NONMOVING_GC) != 0;
    TRACE_spark_sampled = (m & CLASS_SPARK_SAMPLED) != 0;
    TRACE_spark_full = (m & CLASS_SPARK_FULL) != 0;
    TRACE_user = (m & CLASS_USER) != 0;
    /* As rts/Trace.c initTracing: capability events whenever anything is traced. */
    TRACE_cap = m != 0;
}

/* Plain stores of ints the RTS reads racily by design (as with +RTS -l). */
int elstream_glue_set_classes(unsigned classes)
{
    if (!elstream_glue_has_switches())
        return -1;
    set_classes(classes);
    return 0;
}

/* Event numbers and capsets as in includes/rts/EventLogFormat.h, rts/Trace.h. */
#define EVENT_CAPSET_CREATE 25
#define EVENT_CAPSET_ASSIGN_CAP 27
#define EVENT_CAP_CREATE 45
#define CAPSET_OSPROCESS_DEFAULT 0
#define CAPSET_CLOCKDOMAIN_DEFAULT 1
#define CAPSET_TYPE_OSPROCESS 2
#define CAPSET_TYPE_CLOCKDOMAIN 3

int elstream_glue_can_post_state(void)
{
    return traceCapsetEvent_ != NULL && traceCapEvent_ != NULL && &capabilities != NULL &&
           traceWallClockTime_ != NULL && traceOSProcessInfo_ != NULL;
}

/* Re-posts what the RTS posts once at start-up (rts/Capability.c initCapabilities,
 * rts/RtsStartup.c hs_init_ghc): 9.0.2 does not repeat it when a writer starts. */
static void post_state(void)
{
    if (!elstream_glue_can_post_state())
        return;
    traceCapsetEvent_(EVENT_CAPSET_CREATE, CAPSET_OSPROCESS_DEFAULT, CAPSET_TYPE_OSPROCESS);
    traceCapsetEvent_(EVENT_CAPSET_CREATE, CAPSET_CLOCKDOMAIN_DEFAULT, CAPSET_TYPE_CLOCKDOMAIN);
    for (unsigned int i = 0; i < n_capabilities; i++) {
        traceCapEvent_(capabilities[i], EVENT_CAP_CREATE);
        traceCapsetEvent_(EVENT_CAPSET_ASSIGN_CAP, CAPSET_OSPROCESS_DEFAULT, i);
        traceCapsetEvent_(EVENT_CAPSET_ASSIGN_CAP, CAPSET_CLOCKDOMAIN_DEFAULT, i);
    }
    traceWallClockTime_();
    traceOSProcessInfo_();
}

/*
 * Ops run with every capability stopped, so no Haskell thread is posting into
 * a capability buffer while the RTS writes it out. Must be called from an OS
 * thread that holds no capability (the shim's own thread), and only while the
 * scheduler runs. They run in this order.
 */
enum {
    OP_END = 1,           /* write out every buffer, data end, stop the writer */
    OP_START = 2,         /* start `writer` */
    OP_SET_CLASSES = 4,   /* set `classes` */
    OP_POST_STATE = 8,    /* post the start-up state events again */
    OP_FLUSH = 16,        /* write out every buffer: end, then start `writer` again */
};

int elstream_glue_stopped_world(unsigned ops, const void *writer, unsigned classes)
{
    if (!elstream_glue_can_stop_world() || !elstream_glue_rts_present())
        return -1;
    if (sched_state != SCHED_RUNNING)
        return -2;
    Capability *cap = rts_lock();
    Task *task = my_task;
    stopAllCapabilities(&cap, task);
    int rc = 0;
    if ((ops & OP_END) && eventLogStatus() == EVENTLOG_RUNNING)
        endEventLogging();
    if ((ops & OP_START) && !startEventLogging(writer))
        rc = -3;
    if (ops & OP_SET_CLASSES)
        set_classes(classes);
    if (ops & OP_POST_STATE)
        post_state();
    if (ops & OP_FLUSH) {
        endEventLogging();
        if (!startEventLogging(writer))
            rc = -3;
    }
    releaseAllCapabilities(n_capabilities, cap, task);
    rts_unlock(cap);
    return rc;
}

/* Without stopping the world: only safe when nothing else posts events
 * (shared-library link), documented as such. */
int elstream_glue_start_unlocked(const void *writer)
{
    if (!elstream_glue_rts_present())
        return -1;
    return startEventLogging(writer) ? 0 : -3;
}

void elstream_glue_end_unlocked(void)
{
    if (endEventLogging != NULL)
        endEventLogging();
}

int elstream_glue_public_flush_api(void)
{
    return &NullEventLogWriter != NULL && flushEventLog != NULL;
}

/* From a thread that holds no capability (the shim's own). */
void elstream_glue_public_flush(void)
{
    if (elstream_glue_public_flush_api())
        flushEventLog(NULL);
}

/* The patched RTS's native mechanisms (ghc-patches/). */
void elstream_glue_patched_flush(void)
{
    if (rts_flushEventLog != NULL)
        rts_flushEventLog();
}

int elstream_glue_patched_set_classes(unsigned classes)
{
    if (rts_setTraceFlag == NULL)
        return -1;
    /* Flag numbers follow the patch: the class bits' positions, s g n p f u. */
    for (int flag = 0; flag < 6; flag++)
        rts_setTraceFlag(flag, (classes >> flag) & 1);
    return 0;
}

void elstream_glue_patched_resync(void)
{
    if (rts_resyncEventLog != NULL)
        rts_resyncEventLog();
}

/* The RTS calls this first thing in hs_exit (rtsConfig.onExitHook), while the
 * scheduler still runs: the shim stops its RTS thread here, so no flush can
 * reach for a capability the shutdown is about to free. Overriding the hook is
 * how the RTS lets programs hook it (rts/hooks/OnExit.c). */
extern void elstream_rts_exiting(void);

void OnExitHook(void)
{
    elstream_rts_exiting();
}

/* Frees the RTS task of a shim thread that called rts_lock. */
void elstream_glue_thread_done(void)
{
    if (hs_thread_done != NULL)
        hs_thread_done();
}
