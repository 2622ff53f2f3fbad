/* Drives the RTS eventlog calls from a foreign OS thread while Load.hs keeps
 * capability 0 busy. Writes "key values..." lines to <out>/facts.
 *
 * mode "test"  (patched RTS, +RTS -l): flush, class switches, resync, with
 *              snapshots of the eventlog file for the checker.
 * mode "quiet" (patched RTS, +RTS -l --eventlog-flush-interval=..): no
 *              calls, one snapshot after 0.5 s.
 * mode "api92" (patched RTS, +RTS -l): the same flush through GHC 9.2's
 *              public flushEventLog(NULL) and NullEventLogWriter (patch 6).
 * mode "bench" (patched RTS, no -l): a byte-counting writer, then timed
 *              rts_flushEventLog() calls.
 * Built with -DSTOCK (stock 9.0.2 RTS, mode "bench" only): the same timed
 * flushes done the only way 9.0.2 allows, through hidden RTS symbols:
 * rts_lock, stopAllCapabilities, endEventLogging + startEventLogging,
 * releaseAllCapabilities, rts_unlock. */
#include "Rts.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int tick;
static int done;
static char mode[32], out_dir[4096], log_path[4096];
static FILE *facts;

void driver_set_tick(int n) { __atomic_store_n(&tick, n, __ATOMIC_SEQ_CST); }
int driver_done(void) { return __atomic_load_n(&done, __ATOMIC_SEQ_CST); }
static int cur_tick(void) { return __atomic_load_n(&tick, __ATOMIC_SEQ_CST); }

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#define FACT(...) (fprintf(facts, __VA_ARGS__), fputc('\n', facts), fflush(facts))

/* A writer that only counts bytes: the flush cost without file I/O. */
static unsigned long long written;
static char first_bytes[5]; /* the first write must be a header: "hdrb" */
static bool count_write(void *buf, size_t n)
{
    if (__atomic_fetch_add(&written, n, __ATOMIC_RELAXED) == 0 && n >= 4) {
        memcpy(first_bytes, buf, 4);
    }
    return true;
}
static const EventLogWriter count_writer = {NULL, count_write, NULL, NULL};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#if defined(STOCK)
/* Hidden in the 9.0.2 RTS; reachable because the RTS is linked statically. */
extern __thread void *my_task;
extern int TRACE_sched, TRACE_gc, TRACE_spark_sampled, TRACE_user, TRACE_cap;
void stopAllCapabilities(Capability **pCap, void *task);
void releaseAllCapabilities(uint32_t n, Capability *keep_cap, void *task);

static void start_counting(void)
{
    startEventLogging(&count_writer);
    TRACE_sched = TRACE_gc = TRACE_spark_sampled = TRACE_user = TRACE_cap = 1;
}

static void do_flush(void)
{
    Capability *cap = rts_lock();
    void *task = my_task;
    stopAllCapabilities(&cap, task);
    endEventLogging();
    startEventLogging(&count_writer);
    releaseAllCapabilities(n_capabilities, cap, task);
    rts_unlock(cap);
}
#else
static void start_counting(void)
{
    rts_restartEventLogging(&count_writer);
    rts_setTraceFlag(RTS_TRACE_FLAG_SCHEDULER, true);
    rts_setTraceFlag(RTS_TRACE_FLAG_GC, true);
    rts_setTraceFlag(RTS_TRACE_FLAG_SPARKS_SAMPLED, true);
    rts_setTraceFlag(RTS_TRACE_FLAG_USER, true);
}

static void do_flush(void) { rts_flushEventLog(); }
#endif

static void timed_flushes(const char *key, int n)
{
    double *us = calloc(n, sizeof(double));
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        do_flush();
        us[i] = now_us() - t0;
        sleep_ms(2);
    }
    qsort(us, n, sizeof(double), cmp_double);
    FACT("%s %d %.1f %.1f %.1f %.1f", key, n, us[0], us[n / 2], us[n * 99 / 100],
         us[n - 1]);
    free(us);
}

#if !defined(STOCK)
static long snapshot(const char *name)
{
    char dst[8192];
    snprintf(dst, sizeof dst, "%s/%s", out_dir, name);
    FILE *in = fopen(log_path, "rb"), *out = fopen(dst, "wb");
    if (!in || !out) {
        perror("snapshot");
        exit(2);
    }
    char buf[65536];
    size_t n;
    long total = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        fwrite(buf, 1, n, out);
        total += n;
    }
    fclose(in);
    fclose(out);
    FACT("snapshot %s %ld", name, total);
    return total;
}

static void run_test(void)
{
    FACT("api_version %d", rts_eventLogStreamingApiVersion());
    sleep_ms(300);

    /* 1. flush: the quiet capability's event must come out. */
    snapshot("snap0.eventlog");
    double t0 = now_us();
    rts_flushEventLog();
    FACT("first_flush_us %.1f", now_us() - t0);
    snapshot("snap1.eventlog");

    /* 2a. scheduler and GC classes off for a while; a window of the same
     * length before serves as the control. */
    sleep_ms(100);
    int a0 = cur_tick();
    sleep_ms(150);
    int a1 = cur_tick();
    bool ok_s = rts_setTraceFlag(RTS_TRACE_FLAG_SCHEDULER, false);
    bool ok_g = rts_setTraceFlag(RTS_TRACE_FLAG_GC, false);
    FACT("set_off %d %d get %d %d", ok_s, ok_g, rts_getTraceFlag(RTS_TRACE_FLAG_SCHEDULER),
         rts_getTraceFlag(RTS_TRACE_FLAG_GC));
    sleep_ms(150);
    int a2 = cur_tick();
    rts_setTraceFlag(RTS_TRACE_FLAG_SCHEDULER, true);
    rts_setTraceFlag(RTS_TRACE_FLAG_GC, true);
    FACT("window_sg %d %d %d", a0, a1, a2);

    /* 2b. user events off. */
    sleep_ms(100);
    int b1 = cur_tick();
    rts_setTraceFlag(RTS_TRACE_FLAG_USER, false);
    FACT("user_off_get %d", rts_getTraceFlag(RTS_TRACE_FLAG_USER));
    sleep_ms(150);
    int b2 = cur_tick();
    rts_setTraceFlag(RTS_TRACE_FLAG_USER, true);
    sleep_ms(100);
    FACT("window_u %d %d %d", b1, b2, cur_tick());

    /* 2c. TRACE_cap follows the classes (hidden symbol, read for the test). */
    {
        extern int TRACE_cap;
        int flags[] = {RTS_TRACE_FLAG_SCHEDULER, RTS_TRACE_FLAG_GC,
                       RTS_TRACE_FLAG_SPARKS_SAMPLED, RTS_TRACE_FLAG_SPARKS_FULL,
                       RTS_TRACE_FLAG_USER};
        bool saved[5];
        for (int i = 0; i < 5; i++) saved[i] = rts_getTraceFlag(flags[i]);
        int before = TRACE_cap;
        for (int i = 0; i < 5; i++) rts_setTraceFlag(flags[i], false);
        int all_off = TRACE_cap;
        rts_setTraceFlag(RTS_TRACE_FLAG_SPARKS_SAMPLED, true);
        int one_on = TRACE_cap;
        for (int i = 0; i < 5; i++) rts_setTraceFlag(flags[i], saved[i]);
        FACT("trace_cap %d %d %d %d bad_flag %d", before, all_off, one_on, TRACE_cap,
             rts_setTraceFlag(42, true));
    }
    sleep_ms(50);

    /* 3. resync: state events re-posted and written out at once. */
    FACT("resync_tick %d", cur_tick());
    rts_resyncEventLog();
    snapshot("snap2.eventlog");

    /* 4. flush pause while busy (file writer). */
    timed_flushes("flush_file_us", 200);

    /* 5. swap the file writer for a counting one while busy, then stop. */
    bool swapped = rts_restartEventLogging(&count_writer);
    sleep_ms(50);
    rts_flushEventLog();
    bool stopped = rts_restartEventLogging(NULL);
    FACT("restart %d %d status %d first %s bytes %llu", swapped, stopped, (int)eventLogStatus(),
         first_bytes, __atomic_load_n(&written, __ATOMIC_RELAXED));
}

/* GHC 9.2's API as patch 6 backports it: what a 9.2-aware library uses. */
static void run_api92(void)
{
    sleep_ms(300);
    snapshot("snap0.eventlog");
    flushEventLog(NULL);
    snapshot("snap1.eventlog");
    const EventLogWriter *w = &NullEventLogWriter;
    char byte = 0;
    FACT("null_writer %d %d", w->writeEventLog(&byte, 1),
         w->initEventLogWriter == NULL && w->flushEventLog == NULL &&
             w->stopEventLogWriter == NULL);
}
#endif

static void *driver_main(void *arg)
{
    (void)arg;
#if !defined(STOCK)
    if (strcmp(mode, "test") == 0) {
        run_test();
    } else if (strcmp(mode, "api92") == 0) {
        run_api92();
    } else if (strcmp(mode, "quiet") == 0) {
        /* no flush call: only --eventlog-flush-interval can write cap 1 out */
        sleep_ms(500);
        snapshot("snapq.eventlog");
    } else
#endif
    {
        start_counting();
        sleep_ms(200);
        timed_flushes("flush_count_us", 500);
        FACT("bytes_written %llu", __atomic_load_n(&written, __ATOMIC_RELAXED));
    }
    fclose(facts);
    __atomic_store_n(&done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

int driver_start(const char *m, const char *o, const char *l)
{
    snprintf(mode, sizeof mode, "%s", m);
    snprintf(out_dir, sizeof out_dir, "%s", o);
    snprintf(log_path, sizeof log_path, "%s", l);
    char path[8192];
    snprintf(path, sizeof path, "%s/facts", out_dir);
    facts = fopen(path, "w");
    if (!facts) {
        perror(path);
        return -1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, driver_main, NULL) != 0) return -1;
    pthread_detach(t);
    return 0;
}
