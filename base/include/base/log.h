/* Structured logs: one JSON object per line on stderr.
 *
 * Each line has "ts" (RFC 3339 UTC, milliseconds), "level", "module", "msg" and the
 * caller's fields, built with jansson's json_pack format so values are always escaped:
 *
 *   log_info("http", "listening", "{s:s,s:i}", "host", host, "port", port);
 *
 * The threshold and the output stream are process-wide: like the signal flag, they are
 * the documented exception to "no globals" (set once at start, read everywhere). The
 * level check happens before any formatting, so a disabled debug line costs a compare. */
#ifndef BASE_LOG_H
#define BASE_LOG_H

#include <stdio.h>

typedef enum {
  LOG_DEBUG = 0,
  LOG_INFO = 1,
  LOG_WARN = 2,
  LOG_ERROR = 3,
  LOG_OFF = 4,
} log_level_t;

extern log_level_t log_threshold;

void log_set_level(log_level_t level);
/* Parses "debug" | "info" | "warn" | "error" | "off". Returns 0 or -EINVAL. */
int log_level_parse(const char *name, log_level_t *out) __attribute__((warn_unused_result));
const char *log_level_name(log_level_t level);
/* Redirects output (tests); NULL restores stderr. The stream is borrowed. */
void log_set_stream(FILE *stream);

/* fields_fmt may be NULL for no fields; otherwise a json_pack object format. */
void log_emit(log_level_t level, const char *module, const char *msg, const char *fields_fmt, ...);

#define log_debug(mod, msg, ...) \
  do { if (log_threshold <= LOG_DEBUG) log_emit(LOG_DEBUG, mod, msg, __VA_ARGS__); } while (0)
#define log_info(mod, msg, ...) \
  do { if (log_threshold <= LOG_INFO) log_emit(LOG_INFO, mod, msg, __VA_ARGS__); } while (0)
#define log_warn(mod, msg, ...) \
  do { if (log_threshold <= LOG_WARN) log_emit(LOG_WARN, mod, msg, __VA_ARGS__); } while (0)
#define log_error(mod, msg, ...) \
  do { if (log_threshold <= LOG_ERROR) log_emit(LOG_ERROR, mod, msg, __VA_ARGS__); } while (0)

#endif
