/* Example elstream proxy plugin in C: prints one line per garbage collection,
 *     gc cap=<capability> pause_ns=<GC end - GC start>
 * to stdout (the proxy's stdout). CONFIG: a line prefix (default "gc"); the
 * config "fail" makes init refuse, to show how a plugin declines to start.
 *
 *   cc -shared -fPIC -I include -o libgc_pause.so examples/plugins/c-gc-pause/gc_pause.c
 *   elstream proxy --source unix:/tmp/app.sock --plugin ./libgc_pause.so:gc
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elstream_plugin.h"

#define EVENT_GC_START 9
#define EVENT_GC_END 10
#define EVENT_BLOCK_MARKER 18
#define MAX_TYPES 1024
#define MAX_CAPS 256

struct ctx {
    char prefix[64];
    int sizes[MAX_TYPES]; /* payload size by type; -1 variable, -2 unknown */
    unsigned long long gc_start[MAX_CAPS + 1];
    unsigned long long gcs;
};

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static unsigned long be32(const uint8_t *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}
static unsigned long long be64(const uint8_t *p) {
    return (unsigned long long)be32(p) << 32 | be32(p + 4);
}

static void *init(const char *config, char *err, size_t err_len) {
    if (strcmp(config, "fail") == 0) {
        snprintf(err, err_len, "config \"fail\": refusing to start, as asked");
        return NULL;
    }
    struct ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    snprintf(c->prefix, sizeof c->prefix, "%s", *config ? config : "gc");
    return c;
}

/* hdrb hetb (etb u16 num, i16 size, u32 len, desc, u32 len, extra, ete)* hete hdre datb */
static int on_header(void *vc, const uint8_t *b, size_t len) {
    struct ctx *c = vc;
    for (int i = 0; i < MAX_TYPES; i++) c->sizes[i] = -2;
    size_t at = 8;
    while (at + 4 <= len && memcmp(b + at, "etb\0", 4) == 0) {
        if (at + 12 > len) return 1;
        unsigned num = be16(b + at + 4);
        int size = (int16_t)be16(b + at + 6);
        unsigned long dlen = be32(b + at + 8);
        at += 12 + dlen;
        if (at + 4 > len) return 1;
        at += 4 + be32(b + at) + 4; /* extra info, "ete\0" */
        if (num < MAX_TYPES) c->sizes[num] = size;
    }
    return 0;
}

static int on_block(void *vc, const uint8_t *b, size_t len) {
    struct ctx *c = vc;
    size_t at = 0;
    unsigned cap = MAX_CAPS;
    while (at + 10 <= len) {
        unsigned ty = be16(b + at);
        unsigned long long t = be64(b + at + 2);
        size_t hdr = 10, size;
        if (ty >= MAX_TYPES || c->sizes[ty] == -2) return 0; /* unknown: skip the rest */
        if (c->sizes[ty] == -1) {
            if (at + 12 > len) return 0;
            size = be16(b + at + 10);
            hdr = 12;
        } else {
            size = (size_t)c->sizes[ty];
        }
        if (at + hdr + size > len) return 0;
        const uint8_t *p = b + at + hdr;
        if (ty == EVENT_BLOCK_MARKER && size >= 14) {
            cap = be16(p + 12);
            if (cap > MAX_CAPS) cap = MAX_CAPS; /* 0xffff: the global buffer */
        } else if (ty == EVENT_GC_START) {
            c->gc_start[cap] = t;
        } else if (ty == EVENT_GC_END && c->gc_start[cap]) {
            printf("%s cap=%d pause_ns=%llu\n", c->prefix, cap == MAX_CAPS ? -1 : (int)cap,
                   t - c->gc_start[cap]);
            c->gc_start[cap] = 0;
            c->gcs++;
        }
        at += hdr + size;
    }
    fflush(stdout);
    return 0;
}

static int on_drop(void *vc, uint64_t blocks, uint64_t bytes) {
    struct ctx *c = vc;
    printf("%s dropped blocks=%llu bytes=%llu\n", c->prefix, (unsigned long long)blocks,
           (unsigned long long)bytes);
    memset(c->gc_start, 0, sizeof c->gc_start);
    return 0;
}

static int on_stop(void *vc) {
    struct ctx *c = vc;
    printf("%s session-end gcs=%llu\n", c->prefix, c->gcs);
    fflush(stdout);
    return 0;
}

static void fini(void *vc) { free(vc); }

static const elstream_plugin_vtable_v1 vtable = {
    ELSTREAM_PLUGIN_ABI_VERSION, "c-gc-pause", init, on_header, on_block, on_drop, on_stop, fini,
};

const elstream_plugin_vtable_v1 *elstream_plugin_v1(void) { return &vtable; }
