/* The bounded list of validation errors and its renderings (text lines, JSON), the quoting
 * of document text in messages (so that every error stays one line of text), plus the edit
 * distance behind "did you mean" hints. It knows nothing of the workflow format. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

/* Invariant: n <= WF_MAX_ERRORS; every string of v[0..n) is owned. */
struct wf_errors {
  wf_error_t *v; /* owned array of cap entries */
  size_t n;
  size_t cap;
  bool truncated;
};

wf_errors_t *wf__errors_new(void) { return xcalloc(1, sizeof(wf_errors_t)); }

static void errors_push(wf_errors_t *errs, const wf_error_t *e) {
  if (errs->n >= WF_MAX_ERRORS) {
    errs->truncated = true;
    free((char *)e->file);
    free((char *)e->path);
    free((char *)e->reason);
    return;
  }
  if (errs->n == errs->cap) {
    errs->cap = errs->cap ? errs->cap * 2 : 8;
    errs->v = xrealloc(errs->v, errs->cap * sizeof(*errs->v));
  }
  errs->v[errs->n++] = *e;
}

/* ---- quoting ---------------------------------------------------------------------- */

static size_t put_u(char *out, unsigned cp) {
  static const char hex[] = "0123456789ABCDEF";
  out[0] = '\\';
  out[1] = 'u';
  for (int i = 0; i < 4; i++) out[2 + i] = hex[(cp >> (12 - 4 * i)) & 0xF];
  return 6;
}

/* Appends s[0..n) to out, which has room for 6 * n + 1 bytes, with control characters
 * escaped: C0, DEL and C1 (a terminal may act on them: ESC and CSI start sequences) and
 * U+2028/U+2029 (line breaks to some viewers). json: " and \ too. Returns the bytes
 * written, not counting the NUL. Bytes of a sequence cut at n are copied as they are. */
static size_t escape_into(char *out, const char *s, size_t n, bool json) {
  const unsigned char *u = (const unsigned char *)s;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = u[i];
    char short_esc = 0;
    switch (c) {
    case '\n': short_esc = 'n'; break;
    case '\t': short_esc = 't'; break;
    case '\r': short_esc = 'r'; break;
    case '\b': short_esc = 'b'; break;
    case '\f': short_esc = 'f'; break;
    case '"':
    case '\\': short_esc = json ? (char)c : 0; break;
    default: break;
    }
    if (short_esc) {
      out[o++] = '\\';
      out[o++] = short_esc;
    } else if (c < 0x20 || c == 0x7F) {
      o += put_u(out + o, c);
    } else if (c == 0xC2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F) {
      o += put_u(out + o, u[++i]);
    } else if (c == 0xE2 && i + 2 < n && u[i + 1] == 0x80 &&
               (u[i + 2] == 0xA8 || u[i + 2] == 0xA9)) {
      o += put_u(out + o, 0x2000u + u[i + 2] - 0x80u);
      i += 2;
    } else {
      out[o++] = (char)c;
    }
  }
  out[o] = '\0';
  return o;
}

const char *wf__quote(char *buf, const char *s, bool quoted) {
  if (!s) {
    memcpy(buf, "null", 5);
    return buf;
  }
  size_t n = strnlen(s, WF__QUOTE_MAX + 1);
  bool cut = n > WF__QUOTE_MAX;
  if (cut) {
    n = WF__QUOTE_MAX;
    /* Back to the start of the character s[n] belongs to (at most 3 continuation bytes). */
    for (int k = 0; k < 3 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; k++) n--;
  }
  size_t o = 0;
  if (quoted) buf[o++] = '"';
  o += escape_into(buf + o, s, n, quoted);
  if (cut) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  if (quoted) buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

static bool needs_escape(const char *s) {
  for (const unsigned char *u = (const unsigned char *)s; *u; u++)
    if (*u < 0x20 || *u == 0x7F || (u[0] == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F) ||
        (u[0] == 0xE2 && u[1] == 0x80 && (u[2] == 0xA8 || u[2] == 0xA9)))
      return true;
  return false;
}

char *wf__escape_dup(const char *s) {
  if (!needs_escape(s)) return xstrdup(s);
  size_t n = strlen(s);
  char *out = xmalloc(6 * n + 1);
  escape_into(out, s, n, false);
  return out;
}

/* ---- the list ---------------------------------------------------------------------- */

void wf__errors_add(wf_errors_t *errs, const char *file, const char *path, int line,
                    int column, const char *fmt, ...) {
  if (!errs) return;
  if (errs->n >= WF_MAX_ERRORS) {
    errs->truncated = true;
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  char *reason = NULL;
  if (vasprintf(&reason, fmt, ap) < 0) abort();
  va_end(ap);
  if (needs_escape(reason)) {
    char *clean = wf__escape_dup(reason);
    free(reason);
    reason = clean;
  }
  wf_error_t e = {
      .file = xstrdup(file ? file : ""),
      .path = wf__escape_dup(path ? path : ""),
      .line = line,
      .column = column,
      .reason = reason,
  };
  errors_push(errs, &e);
}

void wf__errors_move(wf_errors_t *dst, wf_errors_t *src) {
  for (size_t i = 0; i < src->n; i++) errors_push(dst, &src->v[i]);
  if (src->truncated) dst->truncated = true;
  src->n = 0;
  src->truncated = false;
}

size_t wf_errors_count(const wf_errors_t *errs) { return errs ? errs->n : 0; }

const wf_error_t *wf_errors_at(const wf_errors_t *errs, size_t i) {
  return errs && i < errs->n ? &errs->v[i] : NULL;
}

bool wf_errors_truncated(const wf_errors_t *errs) { return errs && errs->truncated; }

/* One line: the file is kept as given in the list (and in JSON), and escaped here. */
static char *error_line(const wf_error_t *e) {
  char pos[48] = "";
  if (e->line > 0) snprintf(pos, sizeof pos, ":%d:%d", e->line, e->column);
  char *file = e->file[0] ? wf__escape_dup(e->file) : NULL;
  char *line = xasprintf("%s%s%s%s%s%s", file ? file : "", file || pos[0] ? pos : "",
                         file || pos[0] ? ": " : "", e->path, e->path[0] ? ": " : "", e->reason);
  free(file);
  return line;
}

char *wf_errors_format(const wf_errors_t *errs) {
  size_t n = wf_errors_count(errs);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) abort();
  for (size_t i = 0; i < n; i++) {
    char *line = error_line(&errs->v[i]);
    fprintf(f, "%s\n", line);
    free(line);
  }
  if (wf_errors_truncated(errs)) {
    char *file = wf__escape_dup(n && errs->v[0].file[0] ? errs->v[0].file : "input");
    fprintf(f, "%s: more errors omitted (only the first %d are reported)\n", file, WF_MAX_ERRORS);
    free(file);
  }
  fclose(f);
  return buf;
}

json_t *wf_errors_json(const wf_errors_t *errs) {
  json_t *arr = json_array();
  for (size_t i = 0; i < wf_errors_count(errs); i++) {
    const wf_error_t *e = &errs->v[i];
    char *msg = error_line(e);
    json_array_append_new(arr, json_pack("{s:s,s:s,s:i,s:i,s:s,s:s}", "file", e->file, "path",
                                         e->path, "line", e->line, "column", e->column,
                                         "reason", e->reason, "message", msg));
    free(msg);
  }
  return arr;
}

void wf_errors_free(wf_errors_t *errs) {
  if (!errs) return;
  for (size_t i = 0; i < errs->n; i++) {
    free((char *)errs->v[i].file);
    free((char *)errs->v[i].path);
    free((char *)errs->v[i].reason);
  }
  free(errs->v);
  free(errs);
}

/* Levenshtein distance on bytes with an early cap: names are short, and only distances
 * up to 2 matter for hints. */
int wf__edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 3;
  if ((la > lb ? la - lb : lb - la) >= 3) return 3;
  int prev[65], cur[65];
  for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      int del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, sizeof(int) * (lb + 1));
  }
  return prev[lb] < 3 ? prev[lb] : 3;
}

const char *wf__closest(const char *word, const char *const *cands, size_t n) {
  const char *best = NULL;
  int best_d = 3;
  for (size_t i = 0; i < n; i++) {
    if (!cands[i] || strcmp(cands[i], word) == 0) continue;
    int d = wf__edit_distance(word, cands[i]);
    if (d < best_d) {
      best_d = d;
      best = cands[i];
    }
  }
  /* One-letter names are too close to everything to hint usefully. */
  if (best && best_d >= (int)strlen(word)) return NULL;
  return best;
}
