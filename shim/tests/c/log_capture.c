/* The host's log callback for tests/log.rs: every message of the shim becomes
 * a "LOG <level> <message>" line on stdout. */
#include <stdio.h>
#include "elstream.h"

static void on_log(void *ctx, elstream_log_level level, const char *message) {
  FILE *out = ctx;
  fprintf(out, "LOG %d %s\n", (int)level, message);
  fflush(out);
}

int capture_logs(void) { return elstream_set_log_callback(on_log, stdout); }
