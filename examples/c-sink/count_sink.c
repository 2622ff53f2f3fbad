/*
 * An in-process elstream sink in C: counts events per event type (names from
 * the eventlog header), blocks, bytes and drops, prints a line once a second
 * and a summary when the stream stops. Callbacks run on the shim's I/O thread.
 *
 *   #include "elstream.h"
 *   count_sink_install(stderr);   // after elstream_start
 *
 * It decodes the eventlog itself (big-endian; see GHC's EventLogFormat.h),
 * as any consumer would: header = "hdrb" "hetb" ("etb" u16 num, i16 size
 * (-1 variable), u32 desc len, desc, u32 extra len, extra, "ete")* "hete" "hdre"
 * "datb"; event = u16 type, u64 time, [u16 size if variable], payload.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "elstream.h"

#define MAX_TYPES 1024

struct counts {
    FILE *out;
    int32_t size[MAX_TYPES];      /* -2 unknown, -1 variable */
    char *name[MAX_TYPES];
    uint64_t events[MAX_TYPES];
    uint64_t blocks, bytes, dropped_blocks, dropped_bytes, bad;
    time_t last_print;
};

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void on_header(void *ctx, const uint8_t *b, size_t len)
{
    struct counts *c = ctx;
    for (int i = 0; i < MAX_TYPES; i++)
        c->size[i] = -2;
    size_t at = 8; /* hdrb hetb */
    while (at + 4 <= len && memcmp(b + at, "etb\0", 4) == 0) {
        if (at + 4 + 8 > len)
            break;
        uint16_t num = be16(b + at + 4);
        int16_t size = (int16_t)be16(b + at + 6);
        uint32_t dlen = be32(b + at + 8);
        size_t d = at + 12;
        if (d + dlen + 4 > len)
            break;
        uint32_t elen = be32(b + d + dlen);
        if (num < MAX_TYPES) {
            c->size[num] = size;
            c->name[num] = strndup((const char *)b + d, dlen);
        }
        at = d + dlen + 4 + elen + 4; /* ... "ete" */
    }
}

static void print_line(struct counts *c, const char *what)
{
    fprintf(c->out, "count_sink %s: blocks %llu bytes %llu dropped %llu/%llu bad %llu", what,
            (unsigned long long)c->blocks, (unsigned long long)c->bytes,
            (unsigned long long)c->dropped_blocks, (unsigned long long)c->dropped_bytes,
            (unsigned long long)c->bad);
    for (int t = 0; t < MAX_TYPES; t++)
        if (c->events[t])
            fprintf(c->out, " | %d %s=%llu", t, c->name[t] ? c->name[t] : "?",
                    (unsigned long long)c->events[t]);
    fputc('\n', c->out);
    fflush(c->out);
}

static void on_block(void *ctx, const uint8_t *b, size_t len)
{
    struct counts *c = ctx;
    c->blocks++;
    c->bytes += len;
    size_t at = 0;
    while (at + 10 <= len) {
        uint16_t ty = be16(b + at);
        if (ty >= MAX_TYPES || c->size[ty] == -2) {
            c->bad++;
            break;
        }
        size_t n = 10;
        if (c->size[ty] == -1) {
            if (at + 12 > len)
                break;
            n += 2 + be16(b + at + 10);
        } else {
            n += (size_t)c->size[ty];
        }
        if (at + n > len)
            break;
        c->events[ty]++;
        at += n;
    }
    time_t now = time(NULL);
    if (now != c->last_print) {
        c->last_print = now;
        print_line(c, "running");
    }
}

static void on_drop(void *ctx, uint64_t blocks, uint64_t bytes)
{
    struct counts *c = ctx;
    c->dropped_blocks += blocks;
    c->dropped_bytes += bytes;
}

static void on_stop(void *ctx)
{
    struct counts *c = ctx;
    print_line(c, "final");
    for (int t = 0; t < MAX_TYPES; t++)
        free(c->name[t]);
    free(c);
}

/* Installs the sink; 0 or elstream's negative error code. */
int count_sink_install(FILE *out)
{
    static const elstream_sink_vtable vt = {
        ELSTREAM_SINK_ABI_VERSION, on_header, on_block, on_drop, on_stop,
    };
    struct counts *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->out = out;
    int rc = elstream_add_sink(&vt, c);
    if (rc != 0)
        free(c);
    return rc;
}

/* For Haskell callers: print to stdout. */
int count_sink_install_stdout(void) { return count_sink_install(stdout); }
