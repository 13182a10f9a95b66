/* The JSON Schema subset that `llm.output_schema` may use, and validation of a model's
 * JSON output against it. The subset (documented in docs/workflows.md): type (a name or
 * a list of names), properties, required, additionalProperties (boolean or schema),
 * items, enum, const, minItems, maxItems, minLength, maxLength, minimum, maximum, and
 * the annotations title, description, default, examples. Anything else is refused when
 * the workflow loads, so a schema never silently means less than it says. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

static const char *const schema_keys[] = {
    "type",     "properties", "required",  "additionalProperties", "items",     "enum",
    "const",    "minItems",   "maxItems",  "minLength",            "maxLength", "minimum",
    "maximum",  "title",      "description", "default",            "examples",
};
static const char *const type_names[] = {"object", "array",   "string", "number",
                                         "integer", "boolean", "null"};

static bool in_list(const char *s, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0) return true;
  return false;
}

static int check_fail(char **path, char **err, const char *at, char *msg) {
  *path = xstrdup(at);
  *err = msg;
  return -EINVAL;
}

static int check_at(const json_t *schema, const char *at, char **path, char **err) {
  if (!json_is_object(schema))
    return check_fail(path, err, at, xstrdup("expected a schema object"));
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)schema, key, v) {
    char *sub = xasprintf("%s%s%s", at, at[0] ? "." : "", key);
    int rc = 0;
    if (!in_list(key, schema_keys, BASE_ARRAY_SIZE(schema_keys))) {
      const char *hint = wf__closest(key, schema_keys, BASE_ARRAY_SIZE(schema_keys));
      rc = check_fail(path, err, sub,
                      hint ? xasprintf("unsupported schema keyword (did you mean %s?)", WF__Q(hint))
                           : xstrdup("unsupported schema keyword"));
    } else if (!strcmp(key, "type")) {
      bool ok = json_is_string(v) && in_list(json_string_value(v), type_names, 7);
      if (json_is_array(v) && json_array_size(v) > 0) {
        ok = true;
        for (size_t i = 0; i < json_array_size(v); i++) {
          json_t *t = json_array_get(v, i);
          if (!json_is_string(t) || !in_list(json_string_value(t), type_names, 7)) ok = false;
        }
      }
      if (!ok)
        rc = check_fail(path, err, sub,
                        xstrdup("expected a type name (object, array, string, number, "
                                "integer, boolean, null) or a list of them"));
    } else if (!strcmp(key, "properties")) {
      if (!json_is_object(v)) {
        rc = check_fail(path, err, sub, xstrdup("expected an object of schemas"));
      } else {
        const char *pk;
        json_t *pv;
        json_object_foreach(v, pk, pv) {
          char *psub = xasprintf("%s.%s", sub, pk);
          rc = check_at(pv, psub, path, err);
          free(psub);
          if (rc < 0) break;
        }
      }
    } else if (!strcmp(key, "required")) {
      bool ok = json_is_array(v);
      for (size_t i = 0; ok && i < json_array_size(v); i++)
        ok = json_is_string(json_array_get(v, i));
      if (!ok) rc = check_fail(path, err, sub, xstrdup("expected an array of property names"));
    } else if (!strcmp(key, "additionalProperties")) {
      if (!json_is_boolean(v)) rc = check_at(v, sub, path, err);
    } else if (!strcmp(key, "items")) {
      rc = check_at(v, sub, path, err);
    } else if (!strcmp(key, "enum")) {
      if (!json_is_array(v) || json_array_size(v) == 0)
        rc = check_fail(path, err, sub, xstrdup("expected a non-empty array"));
    } else if (!strncmp(key, "min", 3) || !strncmp(key, "max", 3)) {
      bool length = strstr(key, "Items") || strstr(key, "Length");
      if (length ? !(json_is_integer(v) && json_integer_value(v) >= 0) : !json_is_number(v))
        rc = check_fail(path, err, sub,
                        xstrdup(length ? "expected a non-negative integer" : "expected a number"));
    }
    free(sub);
    if (rc < 0) return rc;
  }
  return 0;
}

int wf__schema_check(const json_t *schema, char **path, char **err) {
  *path = NULL;
  *err = NULL;
  return check_at(schema, "", path, err);
}

/* ---- validation ------------------------------------------------------------------ */

static bool type_matches(const char *type, const json_t *v) {
  if (!strcmp(type, "object")) return json_is_object(v);
  if (!strcmp(type, "array")) return json_is_array(v);
  if (!strcmp(type, "string")) return json_is_string(v);
  if (!strcmp(type, "number")) return json_is_number(v);
  if (!strcmp(type, "boolean")) return json_is_boolean(v);
  if (!strcmp(type, "null")) return json_is_null(v);
  if (!strcmp(type, "integer")) {
    if (json_is_integer(v)) return true;
    if (!json_is_real(v)) return false;
    double d = json_real_value(v);
    return d == (double)(long long)d;
  }
  return false;
}

static const char *kind_of(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

static int fail(char **err, const char *at, char *msg) {
  *err = xasprintf("%s: %s", at, msg);
  free(msg);
  return -EINVAL;
}

static size_t utf8_length(const char *s, size_t n) {
  size_t chars = 0;
  for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
  return chars;
}

static int validate_at(const json_t *schema, const json_t *v, const char *at, char **err) {
  const json_t *type = json_object_get(schema, "type");
  if (json_is_string(type) && !type_matches(json_string_value(type), v))
    return fail(err, at, xasprintf("expected %s, got %s", json_string_value(type), kind_of(v)));
  if (json_is_array(type)) {
    bool any = false;
    for (size_t i = 0; i < json_array_size(type); i++)
      any = any || type_matches(json_string_value(json_array_get(type, i)), v);
    if (!any) {
      char *list = json_dumps(type, JSON_COMPACT);
      int rc = fail(err, at, xasprintf("expected one of %s, got %s", list, kind_of(v)));
      free(list);
      return rc;
    }
  }
  const json_t *c = json_object_get(schema, "const");
  if (c && !json_equal((json_t *)c, (json_t *)v)) return fail(err, at, xstrdup("does not equal the const value"));
  const json_t *en = json_object_get(schema, "enum");
  if (en) {
    bool found = false;
    for (size_t i = 0; i < json_array_size(en) && !found; i++)
      found = json_equal(json_array_get(en, i), (json_t *)v);
    if (!found) return fail(err, at, xstrdup("is not one of the enum values"));
  }
  const json_t *lim;
  if (json_is_number(v)) {
    if ((lim = json_object_get(schema, "minimum")) && json_number_value(v) < json_number_value(lim))
      return fail(err, at, xasprintf("must be >= %g", json_number_value(lim)));
    if ((lim = json_object_get(schema, "maximum")) && json_number_value(v) > json_number_value(lim))
      return fail(err, at, xasprintf("must be <= %g", json_number_value(lim)));
  }
  if (json_is_string(v)) {
    size_t n = utf8_length(json_string_value(v), json_string_length(v));
    if ((lim = json_object_get(schema, "minLength")) && n < (size_t)json_integer_value(lim))
      return fail(err, at, xasprintf("must have at least %lld characters", (long long)json_integer_value(lim)));
    if ((lim = json_object_get(schema, "maxLength")) && n > (size_t)json_integer_value(lim))
      return fail(err, at, xasprintf("must have at most %lld characters", (long long)json_integer_value(lim)));
  }
  if (json_is_array(v)) {
    size_t n = json_array_size(v);
    if ((lim = json_object_get(schema, "minItems")) && n < (size_t)json_integer_value(lim))
      return fail(err, at, xasprintf("must have at least %lld items", (long long)json_integer_value(lim)));
    if ((lim = json_object_get(schema, "maxItems")) && n > (size_t)json_integer_value(lim))
      return fail(err, at, xasprintf("must have at most %lld items", (long long)json_integer_value(lim)));
    const json_t *items = json_object_get(schema, "items");
    for (size_t i = 0; items && i < n; i++) {
      char *sub = xasprintf("%s[%zu]", at, i);
      int rc = validate_at(items, json_array_get(v, i), sub, err);
      free(sub);
      if (rc < 0) return rc;
    }
  }
  if (json_is_object(v)) {
    const json_t *req = json_object_get(schema, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
      const char *name = json_string_value(json_array_get(req, i));
      if (!json_object_get(v, name))
        return fail(err, at, xasprintf("missing required property %s", WF__Q(name)));
    }
    const json_t *props = json_object_get(schema, "properties");
    const json_t *extra = json_object_get(schema, "additionalProperties");
    const char *k;
    json_t *pv;
    json_object_foreach((json_t *)v, k, pv) {
      const json_t *ps = json_object_get(props, k);
      char *sub = xasprintf("%s.%s", at, WF__BARE(k)); /* k is model output */
      int rc = 0;
      if (ps)
        rc = validate_at(ps, pv, sub, err);
      else if (json_is_false(extra))
        rc = fail(err, sub, xstrdup("property not allowed"));
      else if (json_is_object(extra))
        rc = validate_at(extra, pv, sub, err);
      free(sub);
      if (rc < 0) return rc;
    }
  }
  return 0;
}

int wf__schema_validate(const json_t *schema, const json_t *value, char **err) {
  *err = NULL;
  return validate_at(schema, value, "$", err);
}
