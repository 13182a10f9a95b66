/* Shared helpers of the agents unit tests: reading transcripts from data/, rendering a
 * delta stream as text lines, and feeding a transcript to a decoder with the input cut at
 * chosen places, so every suite can check that splits never change the deltas. */
#ifndef AGENTS_TEST_H
#define AGENTS_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agents.h"
#include "base/mem.h"

#define AT_UNUSED __attribute__((unused))

/* Text being built, NUL-terminated. */
typedef struct at_str {
  char *p;
  size_t len;
} at_str_t;

static AT_UNUSED void at_puts(at_str_t *s, const char *t, size_t n) {
  s->p = xrealloc(s->p, s->len + n + 1);
  memcpy(s->p + s->len, t, n);
  s->len += n;
  s->p[s->len] = '\0';
}

static AT_UNUSED void at_printf(at_str_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static AT_UNUSED void at_printf(at_str_t *s, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  assert_true(n >= 0 && (size_t)n < sizeof buf);
  at_puts(s, buf, (size_t)n);
}

/* Appends s as a JSON string literal (escapes make NUL and control bytes visible). */
static AT_UNUSED void at_quote(at_str_t *out, const char *s, size_t n) {
  json_t *j = json_stringn_nocheck(s, n);
  char *q = json_dumps(j, JSON_ENCODE_ANY);
  assert_non_null(q);
  at_puts(out, q, strlen(q));
  free(q);
  json_decref(j);
}

/* One line per delta; the format of the data/<name>.expect files:
 *   text "Hi"          text[1] "Hi" (choice 1)       reasoning "..."
 *   tool_call #0 id=call_1 name=get_weather "{\"a"  (id/name only when the delta has them)
 *   usage in=10 out=-1     finish stop raw=end_turn    error server_error "Overloaded" */
static AT_UNUSED void at_render_delta(at_str_t *out, const agent_delta_t *d) {
  at_puts(out, agent_delta_kind_name(d->kind), strlen(agent_delta_kind_name(d->kind)));
  if (d->choice) at_printf(out, "[%d]", d->choice);
  switch (d->kind) {
    case AGENT_DELTA_TEXT:
    case AGENT_DELTA_REASONING:
      at_puts(out, " ", 1);
      at_quote(out, d->text, d->text_len);
      break;
    case AGENT_DELTA_TOOL_CALL:
      at_printf(out, " #%d", d->index);
      if (d->tool_id) at_printf(out, " id=%s", d->tool_id);
      if (d->tool_name) at_printf(out, " name=%s", d->tool_name);
      at_puts(out, " ", 1);
      at_quote(out, d->text, d->text_len);
      break;
    case AGENT_DELTA_USAGE:
      at_printf(out, " in=%lld out=%lld", (long long)d->in_tokens, (long long)d->out_tokens);
      break;
    case AGENT_DELTA_FINISH:
      at_printf(out, " %s raw=", d->finish_reason);
      at_puts(out, d->text, d->text_len);
      break;
    case AGENT_DELTA_ERROR:
      at_printf(out, " %s ", agent_err_class_name(d->err_class));
      at_quote(out, d->text, d->text_len);
      break;
  }
  at_puts(out, "\n", 1);
}

static AT_UNUSED int at_collect(void *ud, const agent_delta_t *d) {
  at_render_delta(ud, d);
  return 0;
}

/* Path of data/<name> next to this header (tests run from the build tree). */
static AT_UNUSED char *at_data_path(const char *name) {
  const char *here = __FILE__;
  const char *slash = strrchr(here, '/');
  size_t dir = slash ? (size_t)(slash - here) : 0;
  return xasprintf("%.*s%sdata/%s", (int)dir, here, slash ? "/" : "", name);
}

static AT_UNUSED char *at_read_file(const char *name, size_t *len) {
  char *path = at_data_path(name);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  at_str_t s = {0};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) at_puts(&s, buf, n);
  fclose(f);
  free(path);
  if (!s.p) at_puts(&s, "", 0);
  *len = s.len;
  return s.p;
}

/* Runs a whole body through a decoder, cut before each offset in cuts (ascending). The
 * result is the rendered deltas, then "push=<rc>" for the first failed push, if any, and
 * "finish=<rc>" when finish fails. */
static AT_UNUSED char *at_decode(agent_wire_t wire, const char *buf, size_t len,
                                 const size_t *cuts, size_t ncuts) {
  at_str_t out = {0};
  agent_decoder_t *d;
  agent_decoder_opts_t o = {.wire = wire, .on_delta = at_collect, .ud = &out};
  assert_int_equal(agent_decoder_new(&o, &d), 0);
  size_t at = 0;
  int first = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    int rc = agent_decoder_push(d, buf + at, end - at);
    if (rc && !first) first = rc;
    at = end;
  }
  int frc = agent_decoder_finish(d);
  if (first) at_printf(&out, "push=%d\n", first);
  if (frc) at_printf(&out, "finish=%d\n", frc);
  agent_decoder_free(d);
  if (!out.p) at_puts(&out, "", 0);
  return out.p;
}

static AT_UNUSED void at_assert_same(const char *want, const char *got, const char *what) {
  if (strcmp(want, got) != 0) fail_msg("%s:\n--- want\n%s--- got\n%s", what, want, got);
}

/* Decodes data/<name> whole and compares with data/<base>.expect; then again split at
 * every byte boundary, byte by byte, and (for SSE) with every LF turned into CRLF and into
 * CR, each of which must give the very same deltas. */
static AT_UNUSED void at_check_transcript(agent_wire_t wire, const char *name) {
  size_t len, elen;
  char *buf = at_read_file(name, &len);
  char *ename = xstrdup(name);
  *strrchr(ename, '.') = '\0';
  char *ename2 = xasprintf("%s.expect", ename);
  char *want = at_read_file(ename2, &elen);

  char *got = at_decode(wire, buf, len, NULL, 0);
  at_assert_same(want, got, name);
  free(got);

  for (size_t cut = 1; cut < len; cut++) {
    got = at_decode(wire, buf, len, &cut, 1);
    if (strcmp(want, got) != 0) fail_msg("%s split at %zu:\n%s", name, cut, got);
    free(got);
  }
  size_t *all = xmalloc((len ? len : 1) * sizeof *all);
  for (size_t i = 0; i + 1 < len; i++) all[i] = i + 1;
  got = at_decode(wire, buf, len, all, len ? len - 1 : 0);
  at_assert_same(want, got, "byte by byte");
  free(got);
  free(all);

  if (wire != AGENT_WIRE_OLLAMA) {
    for (int variant = 0; variant < 2; variant++) {
      at_str_t alt = {0};
      for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n')
          at_puts(&alt, variant ? "\r" : "\r\n", variant ? 1 : 2);
        else
          at_puts(&alt, buf + i, 1);
      }
      got = at_decode(wire, alt.p, alt.len, NULL, 0);
      at_assert_same(want, got, variant ? "CR line ends" : "CRLF line ends");
      free(got);
      for (size_t cut = 1; cut < alt.len; cut++) {
        got = at_decode(wire, alt.p, alt.len, &cut, 1);
        if (strcmp(want, got) != 0) fail_msg("%s CR/CRLF split at %zu:\n%s", name, cut, got);
        free(got);
      }
      free(alt.p);
    }
  }
  free(buf);
  free(want);
  free(ename);
  free(ename2);
}

#endif
