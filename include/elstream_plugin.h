/* elstream proxy plugin ABI, version 1 (hand-written; see proxy/README.md).
 *
 * A plugin is a shared library exporting
 *
 *     const elstream_plugin_vtable_v1 *elstream_plugin_v1(void);
 *
 * loaded with `elstream proxy --plugin PATH.so[:CONFIG]`. The proxy checks
 * abi_version, calls init(CONFIG) once, then the callbacks in stream order:
 * on_header at each session start, on_block for each whole eventlog block
 * (marker included; parse with the event types from the header), on_drop when
 * blocks were dropped because the plugin fell behind, on_stop at each session
 * end, and fini once at exit.
 *
 * Threading: every call for one plugin comes from that plugin's own thread
 * (never the proxy's loop thread), one at a time. A slow plugin only drops
 * blocks for itself (queue bounded by --queue). Byte pointers are valid for the
 * duration of the call only.
 *
 * Errors: init returns NULL and writes a message into err (at most err_len
 * bytes, NUL-terminated) to refuse to start; a callback returning non-zero
 * disables the plugin. The proxy carries on in both cases. A plugin that
 * crashes (segfault, abort) takes the proxy down: run an untrusted plugin in a
 * second proxy fed by the first (`--source tcp:HOST:PORT`).
 */
#ifndef ELSTREAM_PLUGIN_H
#define ELSTREAM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define ELSTREAM_PLUGIN_ABI_VERSION 1u

typedef struct elstream_plugin_vtable_v1 {
    uint32_t abi_version; /* ELSTREAM_PLUGIN_ABI_VERSION */
    const char *name;     /* for log messages; may be NULL */
    void *(*init)(const char *config, char *err, size_t err_len);
    int (*on_header)(void *ctx, const uint8_t *bytes, size_t len);
    int (*on_block)(void *ctx, const uint8_t *bytes, size_t len);
    int (*on_drop)(void *ctx, uint64_t blocks, uint64_t bytes);
    int (*on_stop)(void *ctx);
    void (*fini)(void *ctx);
} elstream_plugin_vtable_v1;

const elstream_plugin_vtable_v1 *elstream_plugin_v1(void);

#endif
