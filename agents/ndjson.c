/* Newline-delimited JSON push parser (Ollama's /api/chat and /api/generate streams).
 *
 * Owns line splitting on LF (a CR before the LF is dropped, blank lines are skipped, one
 * leading BOM is skipped), the line size limit and parsing each line with a depth limit.
 * A line that is not JSON is still handed over (doc NULL, with the reason): whether that
 * ends the stream is the decoder's call. What the objects mean is not known here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

/* Invariants: line holds the current unterminated line (len <= max_line); err.code != 0
 * latches the first error and every push returns it until finish. */
struct agent_ndjson {
  agent_ndjson_opts_t o;
  agent__buf_t line; /* partial line */
  bool first_line;   /* BOM check pending */
  uint64_t lineno;   /* lines completed */
  agent_parse_error_t err;
};

static int nd_fail(agent_ndjson_t *p, int code, const char *what) {
  p->err.code = code;
  p->err.line = p->lineno + 1;
  snprintf(p->err.msg, sizeof p->err.msg, "line %llu: %s", (unsigned long long)(p->lineno + 1),
           what);
  return code;
}

int agent_ndjson_new(const agent_ndjson_opts_t *opts, agent_ndjson_t **out) {
  if (!opts || !opts->on_line || !out) return -EINVAL;
  agent_ndjson_t *p = xcalloc(1, sizeof *p);
  p->o = *opts;
  if (!p->o.max_line) p->o.max_line = AGENT_NDJSON_DEFAULT_MAX_LINE;
  if (!p->o.max_depth) p->o.max_depth = AGENT_JSON_DEFAULT_MAX_DEPTH;
  p->first_line = true;
  *out = p;
  return 0;
}

void agent_ndjson_free(agent_ndjson_t *p) {
  if (!p) return;
  agent__buf_free(&p->line);
  free(p);
}

static int nd_line(agent_ndjson_t *p, const char *l, size_t n) {
  if (p->first_line) {
    p->first_line = false;
    if (n >= 3 && memcmp(l, "\xEF\xBB\xBF", 3) == 0) {
      l += 3;
      n -= 3;
    }
  }
  if (n && l[n - 1] == '\r') n--;
  size_t i = 0;
  while (i < n && (l[i] == ' ' || l[i] == '\t' || l[i] == '\r')) i++;
  if (i == n) return 0;
  char perr[200];
  json_t *doc = NULL;
  int rc = agent__json_parse(l, n, p->o.max_depth, &doc, perr, sizeof perr);
  rc = p->o.on_line(p->o.ud, doc, l, n, rc ? perr : NULL);
  json_decref(doc);
  if (rc < 0) return nd_fail(p, rc, "line callback failed");
  return 0;
}

int agent_ndjson_push(agent_ndjson_t *p, const void *buf, size_t len) {
  const char *s = buf, *end = s + len;
  if (p->err.code) return p->err.code;
  while (s < end) {
    const char *e = memchr(s, '\n', (size_t)(end - s));
    size_t n = e ? (size_t)(e - s) : (size_t)(end - s);
    /* the limit counts a CR before the LF too, so it never depends on where splits fall */
    if (p->line.len + n > p->o.max_line)
      return nd_fail(p, -EMSGSIZE, "line too long");
    if (!e) {
      agent__buf_append(&p->line, s, n);
      break;
    }
    int rc;
    if (p->line.len) {
      agent__buf_append(&p->line, s, n);
      rc = nd_line(p, p->line.p, p->line.len);
      agent__buf_clear(&p->line);
    } else {
      rc = nd_line(p, s, n);
    }
    if (rc) return rc;
    p->lineno++;
    s = e + 1;
  }
  return 0;
}

int agent_ndjson_finish(agent_ndjson_t *p) {
  int rc = p->err.code;
  if (!rc && p->line.len) rc = nd_line(p, p->line.p, p->line.len);
  agent__buf_clear(&p->line);
  p->first_line = true;
  p->lineno = 0;
  memset(&p->err, 0, sizeof p->err);
  return rc;
}

const agent_parse_error_t *agent_ndjson_error(const agent_ndjson_t *p) { return &p->err; }
