/* Small helpers shared by the agents parsers: the growable byte buffer, WHATWG UTF-8
 * repair, and JSON parsing with an explicit depth limit. No parser logic lives here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

void agent__buf_append(agent__buf_t *b, const void *s, size_t n) {
  b->p = xgrow(b->p, &b->cap, b->len + n + 1, 64);
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void agent__buf_set(agent__buf_t *b, const void *s, size_t n) {
  b->len = 0;
  agent__buf_append(b, s, n);
}

void agent__buf_clear(agent__buf_t *b) {
  b->len = 0;
  if (b->p) b->p[0] = '\0';
}

void agent__buf_free(agent__buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Length of the well-formed sequence starting at s[i], or 0 when s[i] starts an
 * ill-formed one; *bad then holds how many bytes form its maximal subpart (>= 1). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t i, size_t *bad) {
  unsigned char c = s[i];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t k = 1; k <= need; k++) {
    if (i + k >= n || s[i + k] < lo || s[i + k] > hi) {
      *bad = k;
      return 0;
    }
    lo = 0x80;
    hi = 0xBF;
  }
  return need + 1;
}

bool agent__utf8_valid(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, bad;
  while (i < n) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = utf8_seq(u, n, i, &bad);
    if (!k) return false;
    i += k;
  }
  return true;
}

void agent__utf8_sanitize(const char *s, size_t n, agent__buf_t *out) {
  static const char repl[] = "\xEF\xBF\xBD";
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0, bad;
  while (i < n) {
    size_t k = utf8_seq(u, n, i, &bad);
    if (k) {
      i += k;
      continue;
    }
    agent__buf_append(out, s + run, i - run);
    agent__buf_append(out, repl, 3);
    i += bad;
    run = i;
  }
  agent__buf_append(out, s + run, n - run);
}

/* Rejects input nested deeper than max before jansson sees it (jansson's own limit is a
 * compile-time 2048, far above what a model response needs). */
static bool json_depth_ok(const char *s, size_t n, size_t max) {
  size_t depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max) return false;
    } else if ((c == ']' || c == '}') && depth) {
      depth--;
    }
  }
  return true;
}

int agent__json_parse(const char *s, size_t n, size_t max_depth, json_t **out, char *err,
                      size_t errlen) {
  json_error_t jerr;
  if (!max_depth) max_depth = AGENT_JSON_DEFAULT_MAX_DEPTH;
  *out = NULL;
  if (!json_depth_ok(s, n, max_depth)) {
    snprintf(err, errlen, "nested deeper than %zu", max_depth);
    return -EBADMSG;
  }
  json_t *doc = json_loadb(s, n, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
  if (!doc) {
    snprintf(err, errlen, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    return -EBADMSG;
  }
  *out = doc;
  return 0;
}

bool agent__json_str(const json_t *obj, const char *key, const char **s, size_t *n) {
  json_t *v = json_object_get(obj, key);
  if (!json_is_string(v)) return false;
  *s = json_string_value(v);
  *n = json_string_length(v);
  return true;
}

bool agent__json_int(const json_t *obj, const char *key, int64_t *v) {
  json_t *j = json_object_get(obj, key);
  if (json_is_integer(j)) {
    *v = (int64_t)json_integer_value(j);
    return true;
  }
  if (json_is_real(j)) {
    double r = json_real_value(j);
    if (r >= -9e15 && r <= 9e15 && r == (double)(int64_t)r) {
      *v = (int64_t)r;
      return true;
    }
  }
  return false;
}
