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
#include <string.h>

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

/* Hidden (rts/Trace.c, rts/Schedule.h, rts/Task.h). The TRACE_* switches are
 * `int` on 9.0 and `bool` since 9.2 (checked on 9.6.6 and 9.10.3: one byte
 * each). They only ever hold 0 or 1, so the shim reads and writes their first
 * byte, which is the value on a little-endian machine for either type. */
extern uint8_t TRACE_sched WEAK;
extern uint8_t TRACE_gc WEAK;
extern uint8_t TRACE_nonmoving_gc WEAK;
extern uint8_t TRACE_spark_sampled WEAK;
extern uint8_t TRACE_spark_full WEAK;
extern uint8_t TRACE_user WEAK;
extern uint8_t TRACE_cap WEAK;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the TRACE_* byte access assumes a little-endian machine"
#endif
extern void stopAllCapabilities(Capability **pCap, Task *task) WEAK;
extern void releaseAllCapabilities(uint32_t n, Capability *keep_cap, Task *task) WEAK;
extern volatile uintptr_t sched_state WEAK;
extern __thread Task *my_task WEAK;
extern Capability **capabilities WEAK;
extern void traceCapsetEvent_(uint16_t tag, uint32_t capset, uintptr_t info) WEAK;
extern void traceCapEvent_(Capability *cap, uint16_t tag) WEAK;
extern void traceWallClockTime_(void) WEAK;
extern void traceOSProcessInfo_(void) WEAK;
extern void traceEventHeapInfo_(uint32_t heap_capset, uint32_t gens, uintptr_t max_heap,
                                uintptr_t alloc_area, uintptr_t mblock, uintptr_t block) WEAK;

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

/* GHC >= 10.0, public (rts/include/rts/EventLogWriter.h at ghc commit
 * 41c2448bbaed232cdd647f7d152e7872e57e3a9a): runtime trace flags. The header
 * warns that the flag cache is not thread-safe: the shim calls them from its
 * RTS thread only. ghc-patches/ patch 7 exports exactly this API on 9.0.2. */
enum {
    RTF_SCHEDULER = 0,
    RTF_GC = 1,
    RTF_NONMOVING_GC = 2,
    RTF_SPARK_SAMPLED = 3,
    RTF_SPARK_FULL = 4,
    RTF_USER = 5,
    RTF_CAP = 6,
    RTF_IPE = 7,
};
extern bool getTraceFlag(int flag) WEAK;
extern void setTraceFlag(int flag, bool value) WEAK;

/* Heap profiling control, public (rts/include/rts/prof/Heap.h): requestHeapCensus
 * since 9.2; start/stopHeapProfTimer also in 9.0.2. They act only in a program
 * run with heap profiling on (+RTS -hT, -hi, or -h... when profiled). */
extern void requestHeapCensus(void) WEAK;
extern void startHeapProfTimer(void) WEAK;
extern void stopHeapProfTimer(void) WEAK;

/* Threads, for the state replay (includes/rts/storage/GC.h, TSO.h, Threads.h). */
extern uint8_t *generations WEAK;
extern uint8_t *oldest_gen WEAK;
extern uint8_t stg_END_TSO_QUEUE_closure[] WEAK;
extern long rts_getThreadId(void *tso) WEAK;
/* The listThreads# primop (9.6+): marks an RTS whose StgTSO has a label. */
extern uint8_t stg_listThreadszh[] WEAK;
/* Every TSO's header word is its info pointer; a profiled RTS has a longer
 * header (and CCS_SYSTEM), which moves every field: no walk there. */
extern uint8_t stg_TSO_info[] WEAK;
extern uint8_t CCS_SYSTEM[] WEAK;

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

/* Public (includes/rts/Flags.h): RtsFlags.GcFlags.giveStats, a uint32_t right
 * after the FILE *statsFile that opens RTS_FLAGS (offset 8 on 9.0.2, 9.6.6 and
 * 9.10.3, checked by shim/tests/rts_layout.rs against each GHC's headers).
 * +RTS -l sets it to COLLECT_GC_STATS (rts/Trace.c initTracing); without it
 * stat_endGC posts no EndGC on the initiating capability, no GC stats and no
 * heap events, so the shim does the same when it switches GC tracing on. */
extern uint8_t RtsFlags[] WEAK;
#define GIVE_STATS_OFFSET 8
#define NO_GC_STATS 0
#define COLLECT_GC_STATS 1

static void collect_gc_stats(void)
{
    if (RtsFlags == NULL)
        return;
    uint32_t *give = (uint32_t *)(RtsFlags + GIVE_STATS_OFFSET);
    if (*give == NO_GC_STATS)
        *give = COLLECT_GC_STATS;
}

int elstream_glue_gc_stats_collected(void)
{
    return RtsFlags != NULL && *(uint32_t *)(RtsFlags + GIVE_STATS_OFFSET) != NO_GC_STATS;
}

static void set_classes(unsigned m)
{
    if (m & CLASS_GC)
        collect_gc_stats();
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
static void post_caps(void);

static void post_state(void)
{
    if (!elstream_glue_can_post_state())
        return;
    post_caps();
    traceWallClockTime_();
    traceOSProcessInfo_();
}

/* RtsFlags.GcFlags.maxHeapSize and minAllocAreaSize (uint32_t, in blocks) at
 * 28 and 32 on 9.0.2, 9.6.6 and 9.10.3; MBLOCK_SIZE and BLOCK_SIZE as on
 * every 64-bit GHC. Posted once at start-up by initStorage, repeated by no
 * restart: a stream that starts later needs it for the heap's size limits. */
#define MAX_HEAP_OFFSET 28
#define ALLOC_AREA_OFFSET 32
#define MBLOCK_BYTES (1UL << 20)
#define BLOCK_BYTES (1UL << 12)
#define CAPSET_HEAP_DEFAULT 0

static long generation_count(void);

static void post_heap_info(void)
{
    long gens = generation_count();
    if (traceEventHeapInfo_ == NULL || RtsFlags == NULL || gens <= 0)
        return;
    uint32_t max_heap = *(uint32_t *)(RtsFlags + MAX_HEAP_OFFSET);
    uint32_t alloc_area = *(uint32_t *)(RtsFlags + ALLOC_AREA_OFFSET);
    traceEventHeapInfo_(CAPSET_HEAP_DEFAULT, (uint32_t)gens, max_heap * BLOCK_BYTES,
                        alloc_area * BLOCK_BYTES, MBLOCK_BYTES, BLOCK_BYTES);
}

/* The capsets and capabilities as initCapabilities posts them (9.0 only: on
 * 9.6.6 traceCapEvent_ with capabilities[i] posted garbage capability
 * numbers, so for 9.2+ the shim writes these events itself, from
 * elstream_glue_n_capabilities). */
static void post_caps(void)
{
    if (traceCapsetEvent_ == NULL || traceCapEvent_ == NULL || &capabilities == NULL)
        return;
    traceCapsetEvent_(EVENT_CAPSET_CREATE, CAPSET_OSPROCESS_DEFAULT, CAPSET_TYPE_OSPROCESS);
    traceCapsetEvent_(EVENT_CAPSET_CREATE, CAPSET_CLOCKDOMAIN_DEFAULT, CAPSET_TYPE_CLOCKDOMAIN);
    for (unsigned int i = 0; i < n_capabilities; i++) {
        traceCapEvent_(capabilities[i], EVENT_CAP_CREATE);
        traceCapsetEvent_(EVENT_CAPSET_ASSIGN_CAP, CAPSET_OSPROCESS_DEFAULT, i);
        traceCapsetEvent_(EVENT_CAPSET_ASSIGN_CAP, CAPSET_CLOCKDOMAIN_DEFAULT, i);
    }
    post_heap_info();
}

/* The number of capabilities, 0 when out of reach. */
unsigned elstream_glue_n_capabilities(void)
{
    return &n_capabilities != NULL ? n_capabilities : 0;
}

/*
 * Ops run with every capability stopped, so no Haskell thread is posting into
 * a capability buffer while the RTS writes it out. Must be called from an OS
 * thread that holds no capability (the shim's own thread), and only while the
 * scheduler runs. They run in this order. On 9.2+ OP_END, OP_START and
 * OP_FLUSH deadlock here (those functions stop the world themselves): the
 * 9.2 adapter never passes them.
 */
enum {
    OP_END = 1,           /* write out every buffer, data end, stop the writer */
    OP_START = 2,         /* start `writer` */
    OP_SET_CLASSES = 4,   /* set `classes` */
    OP_POST_STATE = 8,    /* post the start-up state events again */
    OP_FLUSH = 16,        /* write out every buffer: end, then start `writer` again */
    OP_THREADS = 32,      /* list the live threads (elstream_glue_threads) */
    OP_POST_CAPS = 64,    /* 9.2+: post the heap info (the shim writes capsets and caps) */
};

static long list_threads(uint64_t *ids, long cap);
int elstream_glue_has_trace_flags(void);
void elstream_glue_set_trace_flags(unsigned m);
static uint64_t *thread_ids;
static long thread_ids_cap;
static long thread_ids_len = -1;

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
    if (ops & OP_SET_CLASSES) {
        if (elstream_glue_has_trace_flags())
            elstream_glue_set_trace_flags(classes);
        else
            set_classes(classes);
    }
    if (ops & OP_POST_STATE)
        post_state();
    if (ops & OP_POST_CAPS)
        post_heap_info();
    if (ops & OP_FLUSH) {
        endEventLogging();
        if (!startEventLogging(writer))
            rc = -3;
    }
    if (ops & OP_THREADS)
        thread_ids_len = list_threads(thread_ids, thread_ids_cap);
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

/* ---- RTS generations ------------------------------------------------------
 * Told apart by what the linked RTS exports, not by a version string:
 *  90:  no NullEventLogWriter: start/endEventLogging leave the capabilities
 *       running, so the shim stops the world around them itself;
 *  92:  NullEventLogWriter (9.2+): start/endEventLogging and flushEventLog
 *       stop the world themselves, and calling them while holding every
 *       capability deadlocks (seen on 9.6.6 and 9.10.3);
 *  100: getTraceFlag/setTraceFlag (10.0+): runtime trace flags.
 * A 9.0.2 RTS with ghc-patches/ is 90 whatever it backports: the patches keep
 * 9.0.2's start/end, which do not stop the world. */
int elstream_glue_generation(void)
{
    if (rts_eventLogStreamingApiVersion != NULL)
        return 90;
    if (getTraceFlag != NULL && setTraceFlag != NULL)
        return 100;
    if (&NullEventLogWriter != NULL)
        return 92;
    return 90;
}

int elstream_glue_has_trace_flags(void)
{
    return getTraceFlag != NULL && setTraceFlag != NULL;
}

/* From the shim's RTS thread only (the API's flag cache is not thread-safe). */
void elstream_glue_set_trace_flags(unsigned m)
{
    if (!elstream_glue_has_trace_flags())
        return;
    if (m & CLASS_GC)
        collect_gc_stats();
    setTraceFlag(RTF_SCHEDULER, (m & CLASS_SCHED) != 0);
    setTraceFlag(RTF_GC, (m & CLASS_GC) != 0);
    setTraceFlag(RTF_NONMOVING_GC, (m & CLASS_NONMOVING_GC) != 0);
    setTraceFlag(RTF_SPARK_SAMPLED, (m & CLASS_SPARK_SAMPLED) != 0);
    setTraceFlag(RTF_SPARK_FULL, (m & CLASS_SPARK_FULL) != 0);
    setTraceFlag(RTF_USER, (m & CLASS_USER) != 0);
    setTraceFlag(RTF_CAP, m != 0);
}

unsigned elstream_glue_get_trace_flags(void)
{
    if (!elstream_glue_has_trace_flags())
        return 0;
    return (getTraceFlag(RTF_SCHEDULER) ? CLASS_SCHED : 0) | (getTraceFlag(RTF_GC) ? CLASS_GC : 0) |
           (getTraceFlag(RTF_NONMOVING_GC) ? CLASS_NONMOVING_GC : 0) |
           (getTraceFlag(RTF_SPARK_SAMPLED) ? CLASS_SPARK_SAMPLED : 0) |
           (getTraceFlag(RTF_SPARK_FULL) ? CLASS_SPARK_FULL : 0) |
           (getTraceFlag(RTF_USER) ? CLASS_USER : 0);
}

/* 9.2+: start or end the session from a thread holding no capability; the
 * RTS stops the world itself. */
int elstream_glue_start(const void *writer)
{
    if (!elstream_glue_rts_present())
        return -1;
    return startEventLogging(writer) ? 0 : -3;
}

void elstream_glue_end(void)
{
    if (elstream_glue_eventlog_running())
        endEventLogging();
}

/* ---- heap profiling -------------------------------------------------------- */
int elstream_glue_heap_census_available(void) { return requestHeapCensus != NULL; }
int elstream_glue_heap_timer_available(void)
{
    return startHeapProfTimer != NULL && stopHeapProfTimer != NULL;
}
void elstream_glue_heap_census(void)
{
    if (requestHeapCensus != NULL)
        requestHeapCensus();
}
void elstream_glue_heap_timer(int on)
{
    if (on && startHeapProfTimer != NULL)
        startHeapProfTimer();
    if (!on && stopHeapProfTimer != NULL)
        stopHeapProfTimer();
}

/* ---- live threads ----------------------------------------------------------
 * Each generation's `threads` list (linked by StgTSO.global_link) holds every
 * thread outside a GC. The layouts come from the public headers and are the
 * same on 9.0.2, 9.6.6 and 9.10.3 for what is read here: generation.no at 0,
 * generation.threads at 104, StgTSO.global_link at 16, what_next at 32. The
 * size of a generation differs (232 bytes in the non-threaded RTS; 384 on
 * 9.0.2's threaded RTS, 368 on 9.6.6's and 9.10.3's), so the stride is the
 * candidate that numbers every generation from `generations` to `oldest_gen`
 * correctly. The id comes from the RTS's own rts_getThreadId, and the walk
 * refuses (-1) where anything is off. */
#define GEN_THREADS 104
#define TSO_GLOBAL_LINK 16
#define TSO_WHAT_NEXT 32
#define THREAD_KILLED 3
#define THREAD_COMPLETE 4
#define MAX_WALK 10000000
#define MAX_GENERATIONS 64

int elstream_glue_can_list_threads(void)
{
    return &generations != NULL && &oldest_gen != NULL && stg_END_TSO_QUEUE_closure != NULL &&
           rts_getThreadId != NULL && stg_TSO_info != NULL && CCS_SYSTEM == NULL;
}

/* The size of a generation in this RTS, or 0 if no candidate fits. */
static long generation_stride(long *count)
{
    static const long candidates[] = {384, 368, 232};
    if (generations == NULL || oldest_gen == NULL || oldest_gen < generations)
        return 0;
    long diff = oldest_gen - generations;
    if (diff == 0) {
        *count = 1;
        return *(uint32_t *)generations == 0 ? 1 : 0;
    }
    for (unsigned c = 0; c < sizeof candidates / sizeof candidates[0]; c++) {
        long size = candidates[c];
        if (diff % size != 0 || diff / size + 1 > MAX_GENERATIONS)
            continue;
        long n = diff / size + 1, g;
        for (g = 0; g < n && *(uint32_t *)(generations + g * size) == (uint32_t)g; g++)
            ;
        if (g == n) {
            *count = n;
            return size;
        }
    }
    return 0;
}

static long generation_count(void)
{
    long gens = 0;
    return generation_stride(&gens) ? gens : 0;
}

/* Thread labels live in the TSO since 9.6 (listThreads# marks it): an
 * StgArrBytes * (header word, byte count, UTF-8 bytes) 40 bytes after the
 * id, whose own place (48 on 9.6.6, 56 on 9.10.3) is found by comparing with
 * rts_getThreadId. Copied while the world is stopped (a GC may move it). */
static uint8_t *labels;
static long labels_cap, labels_len;

static void copy_label(uint8_t *tso, uint64_t id)
{
    if (stg_listThreadszh == NULL || labels == NULL)
        return;
    long at;
    if (*(uint64_t *)(tso + 48) == id)
        at = 88;
    else if (*(uint64_t *)(tso + 56) == id)
        at = 96;
    else
        return;
    uint8_t *arr = *(uint8_t **)(tso + at);
    if (arr == NULL)
        return;
    uintptr_t len = *(uintptr_t *)(arr + 8);
    if (len > 4096 || labels_len + 12 + (long)len > labels_cap)
        return;
    memcpy(labels + labels_len, &id, 8);
    uint32_t l32 = (uint32_t)len;
    memcpy(labels + labels_len + 8, &l32, 4);
    memcpy(labels + labels_len + 12, arr + 16, len);
    labels_len += 12 + (long)len;
}

long elstream_glue_labels(const uint8_t **out)
{
    *out = labels;
    return labels_len;
}

void elstream_glue_labels_buffer(uint8_t *buf, long cap)
{
    labels = buf;
    labels_cap = cap;
    labels_len = 0;
}

/* With every capability stopped. Writes at most `cap` live thread ids to
 * `ids`; returns how many there are (may exceed `cap`), or -1. */
static long list_threads(uint64_t *ids, long cap)
{
    long gens = 0;
    long stride = elstream_glue_can_list_threads() ? generation_stride(&gens) : 0;
    if (stride == 0)
        return -1;
    long n = 0, walked = 0;
    for (long g = 0; g < gens; g++) {
        uint8_t *tso = *(uint8_t **)(generations + g * stride + GEN_THREADS);
        while (tso != NULL && tso != stg_END_TSO_QUEUE_closure) {
            if (++walked > MAX_WALK || *(uint8_t **)tso != stg_TSO_info)
                return -1;
            uint16_t what_next = *(uint16_t *)(tso + TSO_WHAT_NEXT);
            if (what_next != THREAD_KILLED && what_next != THREAD_COMPLETE) {
                if (n < cap) {
                    ids[n] = (uint64_t)rts_getThreadId(tso);
                    copy_label(tso, ids[n]);
                }
                n++;
            }
            tso = *(uint8_t **)(tso + TSO_GLOBAL_LINK);
        }
    }
    return n;
}

/* The result of the last OP_THREADS; -1 if none or the walk refused. */
long elstream_glue_threads(const uint64_t **ids)
{
    *ids = thread_ids;
    return thread_ids_len;
}

void elstream_glue_threads_buffer(uint64_t *ids, long cap)
{
    thread_ids = ids;
    thread_ids_cap = cap;
    thread_ids_len = -1;
}

