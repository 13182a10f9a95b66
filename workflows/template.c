/* Templates: `{{ expr }}` inside strings, compiled once when a workflow loads and
 * rendered against a run's context (a json_t). Owns the expression syntax (paths,
 * literals, `!`, `==`, `!=`), rendering, truthiness, and value templates (a JSON value
 * whose strings are templates). It does not decide which names are visible where: the
 * validator does that from wf__tmpl_ref_at. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

#define TMPL_MAX_PARTS 1024 /* parts of one template; input-controlled */
#define TMPL_MAX_SEGS 32    /* path parts of one operand */

static const char *const root_names[] = {"input", "steps", "item", "index", "iteration", "run"};

typedef struct seg {
  char *key; /* owned; NULL for an index */
  size_t index;
} seg_t;

typedef struct operand {
  bool is_path;
  bool neg;
  wf__root_t root;
  seg_t *segs; /* owned array */
  size_t nsegs;
  json_t *literal; /* owned, when !is_path */
  char *text;      /* owned: as written, for messages */
} operand_t;

typedef enum { OP_NONE, OP_EQ, OP_NE } op_t;

typedef struct expr {
  operand_t a, b;
  op_t op;
} expr_t;

typedef struct part {
  char *text; /* owned literal text (when expr is NULL) */
  size_t len; /* bytes */
  expr_t *expr;
} part_t;

/* Invariant: parts alternate freely; no two adjacent text parts; no empty text part. */
struct wf__tmpl {
  char *src; /* owned */
  part_t *parts;
  size_t nparts;
};

static void operand_free(operand_t *o) {
  for (size_t i = 0; i < o->nsegs; i++) free(o->segs[i].key);
  free(o->segs);
  json_decref(o->literal);
  free(o->text);
}

void wf__tmpl_free(wf__tmpl_t *t) {
  if (!t) return;
  for (size_t i = 0; i < t->nparts; i++) {
    free(t->parts[i].text);
    if (t->parts[i].expr) {
      operand_free(&t->parts[i].expr->a);
      operand_free(&t->parts[i].expr->b);
      free(t->parts[i].expr);
    }
  }
  free(t->parts);
  free(t->src);
  free(t);
}

/* ---- compiling ------------------------------------------------------------------- */

typedef struct lexer {
  const char *s; /* the expression between the braces */
  size_t len, i;
  size_t base; /* offset of s inside the template, for messages */
  char *err;   /* owned; first error */
} lexer_t;

static int lex_fail(lexer_t *lx, const char *what) {
  if (!lx->err) lx->err = xasprintf("%s (at offset %zu)", what, lx->base + lx->i);
  return -EINVAL;
}

static void lex_ws(lexer_t *lx) {
  while (lx->i < lx->len && isspace((unsigned char)lx->s[lx->i])) lx->i++;
}

static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-'; }

/* A JSON string literal starting at the quote; *end set after the closing quote. */
static int lex_string(lexer_t *lx, json_t **out) {
  size_t k = lx->i + 1;
  while (k < lx->len && lx->s[k] != '"') k += lx->s[k] == '\\' ? 2 : 1;
  if (k >= lx->len) return lex_fail(lx, "unterminated string");
  json_t *v = json_loadb(lx->s + lx->i, k + 1 - lx->i, JSON_DECODE_ANY, NULL);
  if (!v) return lex_fail(lx, "invalid string literal");
  lx->i = k + 1;
  *out = v;
  return 0;
}

static int parse_operand(lexer_t *lx, operand_t *o) {
  lex_ws(lx);
  if (lx->i < lx->len && lx->s[lx->i] == '!') {
    o->neg = true;
    lx->i++;
    lex_ws(lx);
  }
  size_t start = lx->i;
  if (lx->i >= lx->len) return lex_fail(lx, "expected a value");
  char c = lx->s[lx->i];
  if (c == '"') {
    if (lex_string(lx, &o->literal) < 0) return -EINVAL;
  } else if (c == '-' || isdigit((unsigned char)c)) {
    size_t k = lx->i + 1;
    while (k < lx->len && (isdigit((unsigned char)lx->s[k]) || strchr(".eE+-", lx->s[k]))) k++;
    o->literal = json_loadb(lx->s + lx->i, k - lx->i, JSON_DECODE_ANY, NULL);
    if (!o->literal) return lex_fail(lx, "invalid number");
    lx->i = k;
  } else if (isalpha((unsigned char)c) || c == '_') {
    size_t k = lx->i;
    while (k < lx->len && name_char(lx->s[k])) k++;
    char *word = xstrndup(lx->s + lx->i, k - lx->i);
    lx->i = k;
    if (!strcmp(word, "true") || !strcmp(word, "false") || !strcmp(word, "null")) {
      o->literal = !strcmp(word, "true") ? json_true() : !strcmp(word, "false") ? json_false()
                                                                               : json_null();
      free(word);
    } else {
      size_t r = 0;
      while (r < BASE_ARRAY_SIZE(root_names) && strcmp(word, root_names[r])) r++;
      if (r == BASE_ARRAY_SIZE(root_names)) {
        const char *hint = wf__closest(word, root_names, BASE_ARRAY_SIZE(root_names));
        char *msg = hint ? xasprintf("unknown name %s (did you mean %s?)", WF__Q(word), WF__Q(hint))
                         : xasprintf("unknown name %s (expected input, steps, item, "
                                     "index, iteration or run)", WF__Q(word));
        lx->i = start;
        lex_fail(lx, msg);
        free(msg);
        free(word);
        return -EINVAL;
      }
      free(word);
      o->is_path = true;
      o->root = (wf__root_t)r;
      for (;;) {
        if (lx->i < lx->len && lx->s[lx->i] == '.') {
          lx->i++;
          size_t ks = lx->i;
          while (lx->i < lx->len && name_char(lx->s[lx->i])) lx->i++;
          if (lx->i == ks) return lex_fail(lx, "expected a name after \".\"");
          if (o->nsegs == TMPL_MAX_SEGS) return lex_fail(lx, "path too long");
          o->segs = xrealloc(o->segs, (o->nsegs + 1) * sizeof(seg_t));
          o->segs[o->nsegs++] = (seg_t){.key = xstrndup(lx->s + ks, lx->i - ks)};
        } else if (lx->i < lx->len && lx->s[lx->i] == '[') {
          lx->i++;
          lex_ws(lx);
          seg_t sg = {0};
          if (lx->i < lx->len && lx->s[lx->i] == '"') {
            json_t *ks = NULL;
            if (lex_string(lx, &ks) < 0) return -EINVAL;
            if (!json_is_string(ks)) {
              json_decref(ks);
              return lex_fail(lx, "expected a string key");
            }
            sg.key = xstrdup(json_string_value(ks));
            json_decref(ks);
          } else {
            size_t ks = lx->i;
            while (lx->i < lx->len && isdigit((unsigned char)lx->s[lx->i])) lx->i++;
            if (lx->i == ks || lx->i - ks > 9) return lex_fail(lx, "expected an index after \"[\"");
            sg.index = strtoul(lx->s + ks, NULL, 10);
          }
          lex_ws(lx);
          if (lx->i >= lx->len || lx->s[lx->i] != ']') {
            free(sg.key);
            return lex_fail(lx, "expected \"]\"");
          }
          lx->i++;
          if (o->nsegs == TMPL_MAX_SEGS) {
            free(sg.key);
            return lex_fail(lx, "path too long");
          }
          o->segs = xrealloc(o->segs, (o->nsegs + 1) * sizeof(seg_t));
          o->segs[o->nsegs++] = sg;
        } else {
          break;
        }
      }
    }
  } else {
    return lex_fail(lx, "expected a name or a literal");
  }
  o->text = xstrndup(lx->s + start, lx->i - start);
  return 0;
}

static int parse_expr(lexer_t *lx, expr_t *e) {
  if (parse_operand(lx, &e->a) < 0) return -EINVAL;
  lex_ws(lx);
  if (lx->i + 1 < lx->len && (lx->s[lx->i] == '=' || lx->s[lx->i] == '!') &&
      lx->s[lx->i + 1] == '=') {
    e->op = lx->s[lx->i] == '=' ? OP_EQ : OP_NE;
    lx->i += 2;
    if (parse_operand(lx, &e->b) < 0) return -EINVAL;
    lex_ws(lx);
  }
  if (lx->i < lx->len) return lex_fail(lx, "unexpected text after the expression");
  return 0;
}

static void add_text(wf__tmpl_t *t, const char *s, size_t n) {
  if (n == 0) return;
  t->parts = xrealloc(t->parts, (t->nparts + 1) * sizeof(part_t));
  t->parts[t->nparts++] = (part_t){.text = xstrndup(s, n), .len = n};
}

int wf__tmpl_compile(const char *src, wf__tmpl_t **out, char **err) {
  *out = NULL;
  *err = NULL;
  wf__tmpl_t *t = xcalloc(1, sizeof(*t));
  t->src = xstrdup(src);
  size_t len = strlen(src), i = 0, text_start = 0;
  while (i < len) {
    if (!(src[i] == '{' && i + 1 < len && src[i + 1] == '{')) {
      i++;
      continue;
    }
    /* Find the closing braces, skipping string literals inside the expression. */
    size_t k = i + 2;
    bool closed = false;
    while (k < len) {
      if (src[k] == '"') {
        k++;
        while (k < len && src[k] != '"') k += src[k] == '\\' ? 2 : 1;
        k++;
        continue;
      }
      if (src[k] == '}' && k + 1 < len && src[k + 1] == '}') {
        closed = true;
        break;
      }
      k++;
    }
    if (!closed) {
      *err = xasprintf("unterminated \"{{\" (at offset %zu)", i);
      goto fail;
    }
    if (t->nparts + 2 > TMPL_MAX_PARTS) {
      *err = xasprintf("too many {{ }} parts (limit %d)", TMPL_MAX_PARTS / 2);
      goto fail;
    }
    add_text(t, src + text_start, i - text_start);
    lexer_t lx = {.s = src + i + 2, .len = k - i - 2, .base = i + 2};
    lex_ws(&lx);
    if (lx.i == lx.len) {
      *err = xasprintf("empty \"{{ }}\" (at offset %zu)", i);
      goto fail;
    }
    expr_t *e = xcalloc(1, sizeof(*e));
    t->parts = xrealloc(t->parts, (t->nparts + 1) * sizeof(part_t));
    t->parts[t->nparts++] = (part_t){.expr = e};
    if (parse_expr(&lx, e) < 0) {
      *err = lx.err;
      goto fail;
    }
    i = text_start = k + 2;
  }
  add_text(t, src + text_start, len - text_start);
  *out = t;
  return 0;
fail:
  wf__tmpl_free(t);
  return -EINVAL;
}

const char *wf__tmpl_source(const wf__tmpl_t *t) { return t->src; }

bool wf__tmpl_is_whole(const wf__tmpl_t *t) { return t->nparts == 1 && t->parts[0].expr; }

bool wf__tmpl_is_literal(const wf__tmpl_t *t) {
  return t->nparts == 0 || (t->nparts == 1 && !t->parts[0].expr);
}

/* Operands that are paths, in order: a then b of each expression. */
static const operand_t *path_operand(const wf__tmpl_t *t, size_t want) {
  size_t n = 0;
  for (size_t i = 0; i < t->nparts; i++) {
    const expr_t *e = t->parts[i].expr;
    if (!e) continue;
    if (e->a.is_path && n++ == want) return &e->a;
    if (e->op != OP_NONE && e->b.is_path && n++ == want) return &e->b;
  }
  return NULL;
}

size_t wf__tmpl_ref_count(const wf__tmpl_t *t) {
  size_t n = 0;
  while (path_operand(t, n)) n++;
  return n;
}

void wf__tmpl_ref_at(const wf__tmpl_t *t, size_t i, wf__tmpl_ref_t *out) {
  const operand_t *o = path_operand(t, i);
  *out = (wf__tmpl_ref_t){.root = o->root, .text = o->text};
  if (o->nsegs > 0) out->name = o->segs[0].key;
  if (o->nsegs > 1) out->field = o->segs[1].key;
}

/* ---- rendering ------------------------------------------------------------------- */

bool wf__json_truthy(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_NULL:
  case JSON_FALSE: return false;
  case JSON_TRUE: return true;
  case JSON_INTEGER: return json_integer_value(v) != 0;
  case JSON_REAL: return json_real_value(v) != 0.0;
  case JSON_STRING: return json_string_length(v) > 0;
  case JSON_ARRAY: return json_array_size(v) > 0;
  case JSON_OBJECT: return json_object_size(v) > 0;
  }
  return false;
}

static bool json_same(const json_t *a, const json_t *b) {
  if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
  return json_equal((json_t *)a, (json_t *)b);
}

static const char *type_word(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER:
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

/* Resolves a path operand; on a miss sets *why to a fresh explanation. */
static const json_t *resolve(const operand_t *o, const json_t *ctx, char **why) {
  const json_t *v = json_object_get(ctx, root_names[o->root]);
  char *at = xstrdup(root_names[o->root]);
  if (!v) {
    *why = xasprintf("%s is not defined here", at);
    free(at);
    return NULL;
  }
  for (size_t i = 0; i < o->nsegs; i++) {
    const seg_t *sg = &o->segs[i];
    const json_t *next = NULL;
    if (sg->key) {
      if (!json_is_object(v)) {
        *why = xasprintf("%s is %s, not an object", at, type_word(v));
        break;
      }
      next = json_object_get(v, sg->key);
      if (!next) {
        *why = xasprintf("%s has no field %s", at, WF__Q(sg->key));
        break;
      }
    } else {
      if (!json_is_array(v)) {
        *why = xasprintf("%s is %s, not an array", at, type_word(v));
        break;
      }
      next = json_array_get(v, sg->index);
      if (!next) {
        *why = xasprintf("%s has %zu items", at, json_array_size(v));
        break;
      }
    }
    char *nat = sg->key ? xasprintf("%s.%s", at, WF__BARE(sg->key))
                        : xasprintf("%s[%zu]", at, sg->index);
    free(at);
    at = nat;
    v = next;
  }
  free(at);
  return *why ? NULL : v;
}

static json_t *eval_operand(const wf__tmpl_t *t, const operand_t *o, const json_t *ctx,
                            char **err) {
  const json_t *v = o->literal;
  if (o->is_path) {
    char *why = NULL;
    v = resolve(o, ctx, &why);
    if (!v) {
      *err = xasprintf("template %s: no value at %s (%s)", WF__Q(t->src), WF__BARE(o->text), why);
      free(why);
      return NULL;
    }
  }
  if (o->neg) return json_boolean(!wf__json_truthy(v));
  return json_incref((json_t *)v);
}

static json_t *eval_expr(const wf__tmpl_t *t, const expr_t *e, const json_t *ctx, char **err) {
  json_t *a = eval_operand(t, &e->a, ctx, err);
  if (!a || e->op == OP_NONE) return a;
  json_t *b = eval_operand(t, &e->b, ctx, err);
  if (!b) {
    json_decref(a);
    return NULL;
  }
  bool same = json_same(a, b);
  json_decref(a);
  json_decref(b);
  return json_boolean(e->op == OP_EQ ? same : !same);
}

typedef struct buf {
  char *p;
  size_t n, cap;
} buf_t;

static void buf_put(buf_t *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    while (b->n + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 64;
    b->p = xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

int wf__tmpl_render(const wf__tmpl_t *t, const json_t *ctx, json_t **out, char **err) {
  *out = NULL;
  *err = NULL;
  if (wf__tmpl_is_whole(t)) {
    *out = eval_expr(t, t->parts[0].expr, ctx, err);
    return *out ? 0 : -EINVAL;
  }
  buf_t b = {0};
  buf_put(&b, "", 0);
  for (size_t i = 0; i < t->nparts; i++) {
    const part_t *p = &t->parts[i];
    if (!p->expr) {
      buf_put(&b, p->text, p->len);
      continue;
    }
    json_t *v = eval_expr(t, p->expr, ctx, err);
    if (!v) {
      free(b.p);
      return -EINVAL;
    }
    if (json_is_string(v)) {
      buf_put(&b, json_string_value(v), json_string_length(v));
    } else {
      char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      buf_put(&b, s, strlen(s));
      free(s);
    }
    json_decref(v);
  }
  *out = json_stringn(b.p, b.n);
  free(b.p);
  if (!*out) {
    *err = xstrdup("template produced invalid UTF-8");
    return -EINVAL;
  }
  return 0;
}

char *wf__switch_key(const json_t *v) {
  if (json_is_string(v)) return xstrdup(json_string_value(v));
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s) abort();
  return s;
}

/* ---- value templates ------------------------------------------------------------- */

typedef enum { VT_LITERAL, VT_TEMPLATE, VT_OBJECT, VT_ARRAY } vt_kind_t;

/* Mirrors the JSON value it was compiled from; keys are borrowed from it. */
struct wf__vtmpl {
  vt_kind_t kind;
  const json_t *literal; /* borrowed: VT_LITERAL */
  wf__tmpl_t *tmpl;      /* owned: VT_TEMPLATE */
  size_t n;
  const char **keys;      /* VT_OBJECT: borrowed keys, n of them */
  wf__vtmpl_t **kids;     /* owned: n children */
};

void wf__vtmpl_free(wf__vtmpl_t *vt) {
  if (!vt) return;
  wf__tmpl_free(vt->tmpl);
  for (size_t i = 0; i < vt->n; i++) wf__vtmpl_free(vt->kids[i]);
  free(vt->kids);
  free(vt->keys);
  free(vt);
}

typedef struct vt_walk {
  wf__vtmpl_fn fn;
  void *arg;
  wf__path_comp_t comps[WF_MAX_JSON_DEPTH + 1];
  size_t n;
  bool failed;
} vt_walk_t;

static wf__vtmpl_t *vt_build(vt_walk_t *w, const json_t *v) {
  wf__vtmpl_t *vt = xcalloc(1, sizeof(*vt));
  if (json_is_string(v)) {
    char *err = NULL;
    if (wf__tmpl_compile(json_string_value(v), &vt->tmpl, &err) < 0) {
      w->failed = true;
      if (w->fn) w->fn(w->arg, w->comps, w->n, NULL, err);
      free(err);
      vt->kind = VT_LITERAL;
      vt->literal = v;
      return vt;
    }
    if (w->fn) w->fn(w->arg, w->comps, w->n, vt->tmpl, NULL);
    if (wf__tmpl_is_literal(vt->tmpl)) {
      wf__tmpl_free(vt->tmpl);
      vt->tmpl = NULL;
      vt->kind = VT_LITERAL;
      vt->literal = v;
    } else {
      vt->kind = VT_TEMPLATE;
    }
  } else if ((json_is_object(v) || json_is_array(v)) && w->n < WF_MAX_JSON_DEPTH) {
    bool obj = json_is_object(v);
    vt->kind = obj ? VT_OBJECT : VT_ARRAY;
    size_t cap = obj ? json_object_size(v) : json_array_size(v);
    vt->kids = xcalloc(cap ? cap : 1, sizeof(*vt->kids));
    if (obj) {
      vt->keys = xcalloc(cap ? cap : 1, sizeof(*vt->keys));
      const char *k;
      json_t *child;
      json_object_foreach((json_t *)v, k, child) {
        w->comps[w->n++] = (wf__path_comp_t){.key = k};
        vt->keys[vt->n] = k;
        vt->kids[vt->n++] = vt_build(w, child);
        w->n--;
      }
    } else {
      for (size_t i = 0; i < cap; i++) {
        w->comps[w->n++] = (wf__path_comp_t){.index = i};
        vt->kids[vt->n++] = vt_build(w, json_array_get(v, i));
        w->n--;
      }
    }
  } else {
    vt->kind = VT_LITERAL;
    vt->literal = v;
  }
  return vt;
}

int wf__vtmpl_compile(const json_t *v, wf__vtmpl_t **out, wf__vtmpl_fn fn, void *arg) {
  vt_walk_t w = {.fn = fn, .arg = arg};
  wf__vtmpl_t *vt = vt_build(&w, v);
  if (w.failed) {
    wf__vtmpl_free(vt);
    *out = NULL;
    return -EINVAL;
  }
  *out = vt;
  return 0;
}

int wf__vtmpl_render(const wf__vtmpl_t *vt, const json_t *ctx, json_t **out, char **err) {
  *out = NULL;
  *err = NULL;
  switch (vt->kind) {
  case VT_LITERAL: *out = json_deep_copy(vt->literal); return 0;
  case VT_TEMPLATE: return wf__tmpl_render(vt->tmpl, ctx, out, err);
  case VT_OBJECT:
  case VT_ARRAY: break;
  }
  json_t *res = vt->kind == VT_OBJECT ? json_object() : json_array();
  for (size_t i = 0; i < vt->n; i++) {
    json_t *child = NULL;
    if (wf__vtmpl_render(vt->kids[i], ctx, &child, err) < 0) {
      json_decref(res);
      return -EINVAL;
    }
    if (vt->kind == VT_OBJECT)
      json_object_set_new(res, vt->keys[i], child);
    else
      json_array_append_new(res, child);
  }
  *out = res;
  return 0;
}
