/* Positions inside JSON text. jansson reports line/column only for syntax errors; for
 * semantic errors we re-scan the (already valid) text along the error's path and report
 * where the value starts. Object keys are decoded with jansson (JSON_DECODE_ANY) so
 * escaped keys compare correctly. Also owns the pre-parse nesting-depth check and the
 * rendering of paths as text. It does not parse values itself. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

/* Line and column (characters, like jansson: UTF-8 continuation bytes do not count) of
 * byte offset off. */
static void offset_to_pos(const char *text, size_t off, int *line, int *column) {
  int l = 1, c = 1;
  for (size_t i = 0; i < off; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == '\n') {
      l++;
      c = 1;
    } else if ((ch & 0xC0) != 0x80) {
      c++;
    }
  }
  *line = l;
  *column = c;
}

/* Skips a string starting at text[*i] == '"'; leaves *i after the closing quote. */
static void skip_string(const char *text, size_t len, size_t *i) {
  size_t k = *i + 1;
  while (k < len && text[k] != '"') k += text[k] == '\\' ? 2 : 1;
  *i = k < len ? k + 1 : len;
}

int wf__json_depth_check(const char *text, size_t len, int max_depth, int *line, int *column) {
  int depth = 0;
  for (size_t i = 0; i < len;) {
    char ch = text[i];
    if (ch == '"') {
      skip_string(text, len, &i);
      continue;
    }
    if (ch == '[' || ch == '{') {
      if (++depth > max_depth) {
        offset_to_pos(text, i, line, column);
        return -EMLINK;
      }
    } else if ((ch == ']' || ch == '}') && depth > 0) {
      depth--;
    }
    i++;
  }
  return 0;
}

static void skip_ws(const char *text, size_t len, size_t *i) {
  while (*i < len && (text[*i] == ' ' || text[*i] == '\t' || text[*i] == '\n' || text[*i] == '\r'))
    (*i)++;
}

/* Skips one value (valid JSON assumed, depth already bounded by the depth check). */
static void skip_value(const char *text, size_t len, size_t *i) {
  skip_ws(text, len, i);
  if (*i >= len) return;
  char ch = text[*i];
  if (ch == '"') {
    skip_string(text, len, i);
    return;
  }
  if (ch == '[' || ch == '{') {
    int depth = 0;
    while (*i < len) {
      ch = text[*i];
      if (ch == '"') {
        skip_string(text, len, i);
        continue;
      }
      if (ch == '[' || ch == '{') depth++;
      if (ch == ']' || ch == '}') {
        if (--depth == 0) {
          (*i)++;
          return;
        }
      }
      (*i)++;
    }
    return;
  }
  while (*i < len && !strchr(",]} \t\r\n", text[*i])) (*i)++;
}

/* Whether the key token text[start..end) decodes to key. */
static bool key_equals(const char *text, size_t start, size_t end, const char *key) {
  json_t *k = json_loadb(text + start, end - start, JSON_DECODE_ANY, NULL);
  bool eq = k && json_is_string(k) && strcmp(json_string_value(k), key) == 0;
  json_decref(k);
  return eq;
}

size_t wf__json_locate(const char *text, size_t len, const wf__path_comp_t *comps, size_t n,
                       int *line, int *column) {
  size_t i = 0, matched = 0;
  skip_ws(text, len, &i);
  size_t found_at = i;
  while (matched < n && i < len) {
    const wf__path_comp_t *c = &comps[matched];
    bool hit = false;
    if (c->key && text[i] == '{') {
      i++;
      for (;;) {
        skip_ws(text, len, &i);
        if (i >= len || text[i] != '"') break;
        size_t ks = i;
        skip_string(text, len, &i);
        bool eq = key_equals(text, ks, i, c->key);
        skip_ws(text, len, &i);
        if (i < len && text[i] == ':') i++;
        skip_ws(text, len, &i);
        if (eq) {
          hit = true;
          break;
        }
        skip_value(text, len, &i);
        skip_ws(text, len, &i);
        if (i < len && text[i] == ',') i++;
      }
    } else if (!c->key && text[i] == '[') {
      i++;
      for (size_t k = 0;; k++) {
        skip_ws(text, len, &i);
        if (i >= len || text[i] == ']') break;
        if (k == c->index) {
          hit = true;
          break;
        }
        skip_value(text, len, &i);
        skip_ws(text, len, &i);
        if (i < len && text[i] == ',') i++;
      }
    }
    if (!hit) break;
    matched++;
    found_at = i;
  }
  offset_to_pos(text, found_at < len ? found_at : len, line, column);
  return matched;
}

static bool plain_key(const char *k) {
  if (!*k) return false;
  for (; *k; k++)
    if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-') return false;
  return true;
}

char *wf__path_format(const wf__path_comp_t *comps, size_t n) {
  char *buf = NULL;
  size_t blen = 0;
  FILE *f = open_memstream(&buf, &blen);
  if (!f) abort();
  for (size_t i = 0; i < n; i++) {
    if (!comps[i].key) {
      fprintf(f, "[%zu]", comps[i].index);
    } else if (plain_key(comps[i].key)) {
      fprintf(f, "%s%s", i ? "." : "", comps[i].key);
    } else {
      json_t *s = json_string(comps[i].key);
      char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
      fprintf(f, "[%s]", q ? q : "\"?\"");
      free(q);
      json_decref(s);
    }
  }
  fclose(f);
  return buf;
}
