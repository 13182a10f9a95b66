/* JSON-lines logger; see base/log.h. Owns only the threshold and the output stream. */
#include "base/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

log_level_t log_threshold = LOG_INFO;
static FILE *log_stream;

static const char *const log_names[] = {"debug", "info", "warn", "error", "off"};

void log_set_level(log_level_t level) { log_threshold = level; }

int log_level_parse(const char *name, log_level_t *out) {
  for (int i = 0; i <= LOG_OFF; i++) {
    if (strcmp(name, log_names[i]) == 0) {
      *out = (log_level_t)i;
      return 0;
    }
  }
  return -EINVAL;
}

const char *log_level_name(log_level_t level) {
  return (unsigned)level <= LOG_OFF ? log_names[level] : "?";
}

void log_set_stream(FILE *stream) { log_stream = stream; }

void log_emit(log_level_t level, const char *module, const char *msg, const char *fields_fmt, ...) {
  if (level < log_threshold) return;
  json_t *obj = NULL;
  if (fields_fmt) {
    va_list ap;
    va_start(ap, fields_fmt);
    json_error_t err;
    obj = json_vpack_ex(&err, 0, fields_fmt, ap);
    va_end(ap);
    if (!obj || !json_is_object(obj)) {
      json_decref(obj);
      obj = json_pack("{s:s}", "log_error", err.text);
    }
  }
  if (!obj) obj = json_object();

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[40];
  size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000L);

  /* Put the fixed keys first by building a fresh object, then the caller's fields. */
  json_t *line = json_pack("{s:s,s:s,s:s,s:s}", "ts", when, "level", log_level_name(level),
                           "module", module ? module : "-", "msg", msg ? msg : "");
  if (line) {
    json_object_update_missing(line, obj);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text) {
      FILE *out = log_stream ? log_stream : stderr;
      fprintf(out, "%s\n", text);
      fflush(out);
      free(text);
    }
    json_decref(line);
  }
  json_decref(obj);
}
