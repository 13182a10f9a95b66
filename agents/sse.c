/* text/event-stream push parser, after the WHATWG HTML "event stream interpretation".
 *
 * Owns line splitting (CR, LF, CRLF, with a CRLF split across pushes), the one leading BOM,
 * UTF-8 repair (each line is decoded with U+FFFD replacement; line terminators are ASCII,
 * so per-line decoding equals decoding the whole stream), the event/data/id/retry fields,
 * the last event ID, and the size limits. It knows nothing of what the data means: the
 * provider decoders do. Dialect: `error: {...}` (llama.cpp) becomes an event "error". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

/* Invariants: line holds the current unterminated line (len <= max_line); data holds the
 * pending event's data with one LF after each data field (empty: no data field yet);
 * id_buf is the "last event ID buffer", last_id the "last event ID string"; err.code != 0
 * latches the first error and makes every push return it until finish. */
struct agent_sse {
  agent_sse_opts_t o;
  agent__buf_t line;    /* partial line, raw bytes */
  agent__buf_t fixed;   /* scratch: a line after UTF-8 repair */
  agent__buf_t data;    /* data buffer */
  agent__buf_t type;    /* event type buffer */
  agent__buf_t id_buf;  /* last event ID buffer */
  agent__buf_t last_id; /* last event ID string */
  bool after_cr;        /* the previous byte was a CR: a following LF belongs to it */
  bool first_line;      /* no line completed yet in this stream (BOM check pending) */
  int64_t retry_ms;     /* ms, -1 until a valid retry field */
  uint64_t lineno;      /* lines completed in this stream */
  agent_parse_error_t err;
};

static int sse_fail(agent_sse_t *p, int code, const char *what) {
  p->err.code = code;
  p->err.line = p->lineno + 1;
  snprintf(p->err.msg, sizeof p->err.msg, "line %llu: %s", (unsigned long long)(p->lineno + 1),
           what);
  return code;
}

int agent_sse_new(const agent_sse_opts_t *opts, agent_sse_t **out) {
  if (!opts || !opts->on_event || !out) return -EINVAL;
  agent_sse_t *p = xcalloc(1, sizeof *p);
  p->o = *opts;
  if (!p->o.max_line) p->o.max_line = AGENT_SSE_DEFAULT_MAX_LINE;
  if (!p->o.max_data) p->o.max_data = AGENT_SSE_DEFAULT_MAX_DATA;
  p->first_line = true;
  p->retry_ms = -1;
  agent__buf_set(&p->id_buf, "", 0);
  agent__buf_set(&p->last_id, "", 0);
  *out = p;
  return 0;
}

void agent_sse_free(agent_sse_t *p) {
  if (!p) return;
  agent__buf_free(&p->line);
  agent__buf_free(&p->fixed);
  agent__buf_free(&p->data);
  agent__buf_free(&p->type);
  agent__buf_free(&p->id_buf);
  agent__buf_free(&p->last_id);
  free(p);
}

static int sse_dispatch(agent_sse_t *p) {
  agent__buf_set(&p->last_id, p->id_buf.p, p->id_buf.len);
  if (p->data.len == 0) {
    agent__buf_clear(&p->type);
    return 0;
  }
  p->data.p[--p->data.len] = '\0'; /* the LF after the last data line */
  agent_sse_event_t ev = {
      .type = p->type.len ? p->type.p : "message",
      .data = p->data.p,
      .data_len = p->data.len,
      .last_id = p->last_id.p,
  };
  int rc = p->o.on_event(p->o.ud, &ev);
  agent__buf_clear(&p->data);
  agent__buf_clear(&p->type);
  if (rc < 0) return sse_fail(p, rc, "event callback failed");
  return 0;
}

static bool field_is(const char *f, size_t n, const char *name) {
  return strlen(name) == n && memcmp(f, name, n) == 0;
}

static int sse_data_append(agent_sse_t *p, const char *v, size_t n) {
  if (p->data.len + n + 1 > p->o.max_data) return sse_fail(p, -EMSGSIZE, "event data too large");
  agent__buf_append(&p->data, v, n);
  agent__buf_append(&p->data, "\n", 1);
  return 0;
}

static void sse_retry(agent_sse_t *p, const char *v, size_t n) {
  int64_t ms = 0;
  if (n == 0) return;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return;
    if (ms < (INT64_MAX - 9) / 10) ms = ms * 10 + (v[i] - '0');
  }
  p->retry_ms = ms;
}

static int sse_line(agent_sse_t *p, const char *l, size_t n) {
  if (p->first_line) {
    p->first_line = false;
    if (n >= 3 && memcmp(l, "\xEF\xBB\xBF", 3) == 0) {
      l += 3;
      n -= 3;
    }
  }
  if (!agent__utf8_valid(l, n)) {
    agent__buf_clear(&p->fixed);
    agent__utf8_sanitize(l, n, &p->fixed);
    l = p->fixed.p;
    n = p->fixed.len;
  }
  if (n == 0) return sse_dispatch(p);
  if (l[0] == ':') {
    if (p->o.on_comment) p->o.on_comment(p->o.ud, l + 1, n - 1);
    return 0;
  }
  const char *colon = memchr(l, ':', n);
  size_t flen = colon ? (size_t)(colon - l) : n;
  const char *v = colon ? colon + 1 : l + n;
  size_t vlen = colon ? n - flen - 1 : 0;
  if (vlen && v[0] == ' ') {
    v++;
    vlen--;
  }
  if (field_is(l, flen, "data")) return sse_data_append(p, v, vlen);
  if (field_is(l, flen, "event")) {
    agent__buf_set(&p->type, v, vlen);
  } else if (field_is(l, flen, "id")) {
    if (!memchr(v, '\0', vlen)) agent__buf_set(&p->id_buf, v, vlen);
  } else if (field_is(l, flen, "retry")) {
    sse_retry(p, v, vlen);
  } else if (field_is(l, flen, "error") && !p->o.strict) {
    agent__buf_set(&p->type, "error", 5);
    return sse_data_append(p, v, vlen);
  }
  return 0;
}

int agent_sse_push(agent_sse_t *p, const void *buf, size_t len) {
  const char *s = buf, *end = s + len;
  if (p->err.code) return p->err.code;
  if (p->after_cr && s < end) {
    p->after_cr = false;
    if (*s == '\n') s++;
  }
  while (s < end) {
    const char *e = s;
    while (e < end && *e != '\n' && *e != '\r') e++;
    size_t n = (size_t)(e - s);
    if (p->line.len + n > p->o.max_line) return sse_fail(p, -EMSGSIZE, "line too long");
    if (e == end) {
      agent__buf_append(&p->line, s, n);
      break;
    }
    int rc;
    if (p->line.len) {
      agent__buf_append(&p->line, s, n);
      rc = sse_line(p, p->line.p, p->line.len);
      agent__buf_clear(&p->line);
    } else {
      rc = sse_line(p, s, n);
    }
    if (rc) return rc;
    p->lineno++;
    if (*e == '\r') {
      if (e + 1 == end)
        p->after_cr = true;
      else if (e[1] == '\n')
        e++;
    }
    s = e + 1;
  }
  return 0;
}

int agent_sse_finish(agent_sse_t *p, bool *pending) {
  int rc = p->err.code;
  if (pending) *pending = rc != 0 || p->line.len > 0 || p->data.len > 0 || p->type.len > 0;
  agent__buf_clear(&p->line);
  agent__buf_clear(&p->data);
  agent__buf_clear(&p->type);
  agent__buf_set(&p->id_buf, p->last_id.p, p->last_id.len);
  p->after_cr = false;
  p->first_line = true;
  p->lineno = 0;
  memset(&p->err, 0, sizeof p->err);
  return rc;
}

const char *agent_sse_last_id(const agent_sse_t *p) { return p->last_id.p; }
int64_t agent_sse_retry_ms(const agent_sse_t *p) { return p->retry_ms; }
const agent_parse_error_t *agent_sse_error(const agent_sse_t *p) { return &p->err; }
