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

/* 1 while the scheduler runs; 0 once hs_exit has begun (rts_lock is fatal then). */
int elstream_glue_scheduler_running(void)
{
    return &sched_state != NULL && sched_state == SCHED_RUNNING;
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

/*
 * Ops run with every capability stopped, so no Haskell thread is posting into
 * a capability buffer while the RTS writes it out. Must be called from an OS
 * thread that holds no capability (the shim's own threads), and only while the
 * scheduler runs.
 */
enum {
    OP_END = 1,           /* write out every buffer, data end, stop the writer */
    OP_START = 2,         /* start `writer` (after OP_END when both are set) */
    OP_SET_CLASSES = 4,   /* set `classes` */
};

int elstream_glue_stopped_world(unsigned ops, const void *writer, unsigned classes)
{
    if (!elstream_glue_can_stop_world() || !elstream_glue_rts_present())
        return -1;
    if (!elstream_glue_scheduler_running())
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

/* Frees the RTS task of a shim thread that called rts_lock. */
void elstream_glue_thread_done(void)
{
    if (hs_thread_done != NULL)
        hs_thread_done();
}
