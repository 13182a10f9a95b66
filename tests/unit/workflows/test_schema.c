/* Tests for workflows/schema.c (the output_schema subset: checking a schema, validating
 * model output against it) and for docs/workflow.schema.json: its names match the
 * validator's tables, every example satisfies it, and documents the validator rejects
 * for shape reasons are rejected by it too. The published schema is evaluated by a small
 * evaluator here that knows exactly the keywords the file uses and fails on any other,
 * so the file cannot drift into keywords nobody checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <dirent.h>
#include <regex.h>

#include "wf_test_util.h"

/* ---- the output_schema subset ---------------------------------------------------- */

static void test_schema_check_accepts_the_subset_and_names_the_first_problem(void **state) {
  (void)state;
  static const struct {
    const char *schema, *path, *err;
  } cases[] = {
      {"{'type':'object','properties':{'a':{'type':['string','null'],'maxLength':3},"
       "'b':{'type':'array','items':{'enum':[1,2]},'minItems':1}},'required':['a'],"
       "'additionalProperties':false,'title':'t','description':'d'}", NULL, NULL},
      {"{'type':'text'}", "type", "expected a type name (object, array, string, number, integer, boolean, null) or a list of them"},
      {"{'properties':{'a':{'oneOf':[]}}}", "properties.a.oneOf", "unsupported schema keyword"},
      {"{'requred':['a']}", "requred", "unsupported schema keyword (did you mean \"required\"?)"},
      {"{'required':'a'}", "required", "expected an array of property names"},
      {"{'minItems':-1}", "minItems", "expected a non-negative integer"},
      {"{'maximum':'9'}", "maximum", "expected a number"},
      {"{'items':{'items':3}}", "items.items", "expected a schema object"},
      {"{'enum':[]}", "enum", "expected a non-empty array"},
      {"[]", "", "expected a schema object"},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(cases); i++) {
    char *text = wft_q(cases[i].schema);
    json_t *s = json_loads(text, 0, NULL);
    assert_non_null(s);
    char *path = NULL, *err = NULL;
    int rc = wf__schema_check(s, &path, &err);
    if (!cases[i].err) {
      assert_int_equal(rc, 0);
    } else {
      assert_int_equal(rc, -EINVAL);
      assert_string_equal(path, cases[i].path);
      assert_string_equal(err, cases[i].err);
    }
    free(path);
    free(err);
    json_decref(s);
    free(text);
  }
}

static void test_schema_validate_checks_model_output_against_the_subset(void **state) {
  (void)state;
  char *stext = wft_q("{'type':'object','required':['best','scores'],'additionalProperties':false,"
                      "'properties':{'best':{'type':'integer','minimum':0,'maximum':9},"
                      "'reason':{'type':'string','minLength':2,'maxLength':5},"
                      "'scores':{'type':'array','maxItems':3,'items':{'type':'number'}},"
                      "'label':{'enum':['a','b']},'v':{'const':1},'n':{'type':['null','string']}}}");
  json_t *schema = json_loads(stext, 0, NULL);
  free(stext);
  static const struct {
    const char *value, *err;
  } cases[] = {
      {"{'best':1,'scores':[1,2.5]}", NULL},
      {"{'best':1.0,'scores':[],'reason':'h\\u00e9llo','n':null}", NULL},
      {"{'scores':[]}", "$: missing required property \"best\""},
      {"{'best':'1','scores':[]}", "$.best: expected integer, got string"},
      {"{'best':1.5,'scores':[]}", "$.best: expected integer, got number"},
      {"{'best':10,'scores':[]}", "$.best: must be <= 9"},
      {"{'best':1,'scores':[1,'x']}", "$.scores[1]: expected number, got string"},
      {"{'best':1,'scores':[1,2,3,4]}", "$.scores: must have at most 3 items"},
      {"{'best':1,'scores':[],'reason':'x'}", "$.reason: must have at least 2 characters"},
      {"{'best':1,'scores':[],'reason':'toolong'}", "$.reason: must have at most 5 characters"},
      {"{'best':1,'scores':[],'extra':1}", "$.extra: property not allowed"},
      {"{'best':1,'scores':[],'label':'c'}", "$.label: is not one of the enum values"},
      {"{'best':1,'scores':[],'v':2}", "$.v: does not equal the const value"},
      {"{'best':1,'scores':[],'n':1}", "$.n: expected one of [\"null\",\"string\"], got integer"},
      {"[1]", "$: expected object, got array"},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(cases); i++) {
    char *vtext = wft_q(cases[i].value);
    json_t *v = json_loads(vtext, 0, NULL);
    assert_non_null(v);
    char *err = NULL;
    int rc = wf__schema_validate(schema, v, &err);
    if (!cases[i].err) {
      if (rc != 0) print_error("%s: %s\n", cases[i].value, err);
      assert_int_equal(rc, 0);
    } else {
      assert_int_equal(rc, -EINVAL);
      assert_string_equal(err, cases[i].err);
    }
    free(err);
    json_decref(v);
    free(vtext);
  }
  json_decref(schema);
}

/* ---- a minimal evaluator for docs/workflow.schema.json ----------------------------- */

typedef struct eval {
  const json_t *root;
  char *err; /* first failure, owned */
  int depth;
} eval_t;

static bool eval_fail(eval_t *e, const char *at, const char *msg) {
  if (!e->err) e->err = xasprintf("%s: %s", at, msg);
  return false;
}

static bool json_type_is(const char *t, const json_t *v) {
  if (!strcmp(t, "object")) return json_is_object(v);
  if (!strcmp(t, "array")) return json_is_array(v);
  if (!strcmp(t, "string")) return json_is_string(v);
  if (!strcmp(t, "integer")) return json_is_integer(v);
  if (!strcmp(t, "number")) return json_is_number(v);
  if (!strcmp(t, "boolean")) return json_is_boolean(v);
  if (!strcmp(t, "null")) return json_is_null(v);
  return false;
}

static bool matches(const char *pattern, const char *s) {
  regex_t re;
  assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
  bool ok = regexec(&re, s, 0, NULL, 0) == 0;
  regfree(&re);
  return ok;
}

static bool eval(eval_t *e, const json_t *s, const json_t *v, const char *at);

static bool eval_quiet(eval_t *e, const json_t *s, const json_t *v, const char *at) {
  char *saved = e->err;
  e->err = NULL;
  bool ok = eval(e, s, v, at);
  free(e->err);
  e->err = saved;
  return ok;
}

static const char *const known_keywords[] = {
    "$schema", "$id", "title", "description", "default", "examples", "$defs", "$ref", "type",
    "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum",
    "const", "pattern", "minimum", "maximum", "minLength", "minProperties", "propertyNames",
    "oneOf", "if", "then", "else"};

static bool eval(eval_t *e, const json_t *s, const json_t *v, const char *at) {
  assert_true(json_is_object(s));
  assert_true(++e->depth < 200);
  bool ok = true;
  const char *kw;
  json_t *arg;
  json_object_foreach((json_t *)s, kw, arg) {
    size_t k = 0;
    while (k < BASE_ARRAY_SIZE(known_keywords) && strcmp(kw, known_keywords[k])) k++;
    if (k == BASE_ARRAY_SIZE(known_keywords)) fail_msg("schema uses unsupported keyword %s", kw);
  }
  const json_t *r = json_object_get(s, "$ref");
  if (r) {
    const char *ref = json_string_value(r);
    assert_true(strncmp(ref, "#/$defs/", 8) == 0);
    const json_t *target = json_object_get(json_object_get(e->root, "$defs"), ref + 8);
    assert_non_null(target);
    ok = eval(e, target, v, at) && ok;
  }
  const json_t *t = json_object_get(s, "type");
  if (json_is_string(t) && !json_type_is(json_string_value(t), v))
    ok = eval_fail(e, at, "wrong type");
  if (json_is_array(t)) {
    bool any = false;
    for (size_t i = 0; i < json_array_size(t); i++)
      any = any || json_type_is(json_string_value(json_array_get(t, i)), v);
    if (!any) ok = eval_fail(e, at, "wrong type");
  }
  if ((r = json_object_get(s, "const")) && !json_equal((json_t *)r, (json_t *)v))
    ok = eval_fail(e, at, "not the const");
  if ((r = json_object_get(s, "enum"))) {
    bool any = false;
    for (size_t i = 0; i < json_array_size(r); i++) any = any || json_equal(json_array_get(r, i), (json_t *)v);
    if (!any) ok = eval_fail(e, at, "not in enum");
  }
  if (json_is_string(v)) {
    if ((r = json_object_get(s, "pattern")) && !matches(json_string_value(r), json_string_value(v)))
      ok = eval_fail(e, at, "pattern mismatch");
    if ((r = json_object_get(s, "minLength")) && json_string_length(v) < (size_t)json_integer_value(r))
      ok = eval_fail(e, at, "too short");
  }
  if (json_is_number(v)) {
    if ((r = json_object_get(s, "minimum")) && json_number_value(v) < json_number_value(r)) ok = eval_fail(e, at, "below minimum");
    if ((r = json_object_get(s, "maximum")) && json_number_value(v) > json_number_value(r)) ok = eval_fail(e, at, "above maximum");
  }
  if (json_is_array(v)) {
    if ((r = json_object_get(s, "minItems")) && json_array_size(v) < (size_t)json_integer_value(r)) ok = eval_fail(e, at, "too few items");
    if ((r = json_object_get(s, "maxItems")) && json_array_size(v) > (size_t)json_integer_value(r)) ok = eval_fail(e, at, "too many items");
    if ((r = json_object_get(s, "items"))) {
      for (size_t i = 0; i < json_array_size(v); i++) {
        char *sub = xasprintf("%s[%zu]", at, i);
        ok = eval(e, r, json_array_get(v, i), sub) && ok;
        free(sub);
      }
    }
  }
  if (json_is_object(v)) {
    const json_t *props = json_object_get(s, "properties");
    const json_t *extra = json_object_get(s, "additionalProperties");
    const json_t *names = json_object_get(s, "propertyNames");
    if ((r = json_object_get(s, "minProperties")) && json_object_size(v) < (size_t)json_integer_value(r))
      ok = eval_fail(e, at, "too few properties");
    const json_t *req = json_object_get(s, "required");
    for (size_t i = 0; i < json_array_size(req); i++)
      if (!json_object_get(v, json_string_value(json_array_get(req, i)))) ok = eval_fail(e, at, "missing required");
    const char *k;
    json_t *pv;
    json_object_foreach((json_t *)v, k, pv) {
      char *sub = xasprintf("%s.%s", at, k);
      if (names) {
        json_t *kj = json_string(k);
        ok = eval(e, names, kj, sub) && ok;
        json_decref(kj);
      }
      const json_t *ps = json_object_get(props, k);
      if (ps)
        ok = eval(e, ps, pv, sub) && ok;
      else if (json_is_false(extra))
        ok = eval_fail(e, sub, "property not allowed");
      else if (json_is_object(extra))
        ok = eval(e, extra, pv, sub) && ok;
      free(sub);
    }
  }
  if ((r = json_object_get(s, "oneOf"))) {
    int n = 0;
    for (size_t i = 0; i < json_array_size(r); i++) n += eval_quiet(e, json_array_get(r, i), v, at);
    if (n != 1) ok = eval_fail(e, at, n ? "matches several oneOf" : "matches no oneOf");
  }
  if ((r = json_object_get(s, "if"))) {
    const json_t *branch = json_object_get(s, eval_quiet(e, r, v, at) ? "then" : "else");
    if (branch) ok = eval(e, branch, v, at) && ok;
  }
  e->depth--;
  return ok;
}

static json_t *load_docs_schema(void) {
  char *path = wft_path("docs/workflow.schema.json");
  json_error_t jerr;
  json_t *s = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!s) fail_msg("%s: %s", path, jerr.text);
  free(path);
  return s;
}

static char *schema_errors(const json_t *schema, const char *doc) {
  char *text = wft_q(doc);
  json_t *v = json_loads(text, 0, NULL);
  assert_non_null(v);
  eval_t e = {.root = schema};
  eval(&e, schema, v, "$");
  json_decref(v);
  free(text);
  return e.err;
}

static void assert_same_names(const json_t *obj_or_array, const char *table) {
  size_t n = 0;
  const char *const *names = wf__names(table, &n);
  assert_non_null(names);
  size_t have = json_is_object(obj_or_array) ? json_object_size(obj_or_array) : json_array_size(obj_or_array);
  if (have != n) fail_msg("table %s: validator has %zu names, schema %zu", table, n, have);
  for (size_t i = 0; i < n; i++) {
    bool found = false;
    if (json_is_object(obj_or_array)) {
      found = json_object_get(obj_or_array, names[i]) != NULL;
    } else {
      for (size_t j = 0; j < json_array_size(obj_or_array); j++)
        found = found || !strcmp(json_string_value(json_array_get(obj_or_array, j)), names[i]);
    }
    if (!found) fail_msg("table %s: \"%s\" missing from the schema", table, names[i]);
  }
}

static void test_docs_schema_names_the_same_fields_as_the_validator(void **state) {
  (void)state;
  json_t *s = load_docs_schema();
  const json_t *defs = json_object_get(s, "$defs");
  assert_same_names(json_object_get(s, "properties"), "workflow");
  assert_same_names(json_object_get(json_object_get(defs, "input"), "properties"), "input");
  assert_same_names(json_object_get(json_object_get(json_object_get(json_object_get(defs, "input"), "properties"), "type"), "enum"), "input_type");
  assert_same_names(json_object_get(json_object_get(defs, "agent_profile"), "properties"), "agent");
  assert_same_names(json_object_get(json_object_get(json_object_get(json_object_get(defs, "agent_profile"), "properties"), "provider"), "enum"), "provider");
  assert_same_names(json_object_get(json_object_get(defs, "retry"), "properties"), "retry");
  assert_same_names(json_object_get(json_object_get(defs, "catch"), "properties"), "catch");
  assert_same_names(json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(defs, "retry"), "properties"), "on"), "items"), "enum"), "retry_class");
  assert_same_names(json_object_get(json_object_get(json_object_get(json_object_get(defs, "step"), "properties"), "type"), "enum"), "step_type");
  /* Each step kind: the schema's fields are exactly the validator's. */
  for (int k = 0; k < WF_STEP__COUNT; k++) {
    char *def = xasprintf("%s_step", wf__step_kind_names[k]);
    const json_t *props = json_object_get(json_object_get(defs, def), "properties");
    assert_non_null(props);
    const char *keys[16];
    size_t n = wf__step_keys((wf_step_kind_t)k, keys, 16);
    assert_int_equal(json_object_size(props), n);
    for (size_t i = 0; i < n; i++)
      if (!json_object_get(props, keys[i])) fail_msg("%s: field %s missing from the schema", def, keys[i]);
    free(def);
  }
  json_decref(s);
}

static void test_docs_schema_accepts_every_example(void **state) {
  (void)state;
  json_t *s = load_docs_schema();
  char *dir = wft_path("examples/workflows");
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
    char *path = xasprintf("%s/%s", dir, de->d_name);
    json_t *doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    eval_t e = {.root = s};
    if (!eval(&e, s, doc, "$")) fail_msg("%s: %s", de->d_name, e.err);
    free(e.err);
    json_decref(doc);
    free(path);
    n++;
  }
  closedir(d);
  assert_true(n >= 4);
  free(dir);
  json_decref(s);
}

static void test_docs_schema_rejects_what_the_validator_rejects_for_shape(void **state) {
  (void)state;
  json_t *s = load_docs_schema();
  static const char *const bad[] = {
      "{'name':'t','steps':[{'id':'a','type':'llm','agent':'w','promt':'x'}]}",
      "{'name':'t','steps':[{'id':'a','type':'lmm'}]}",
      "{'name':'T','steps':[{'id':'a','type':'transform','value':1}]}",
      "{'name':'t','steps':[]}",
      "{'name':'t','steps':[{'id':'a b','type':'transform','value':1}]}",
      "{'name':'t','steps':[{'id':'l','type':'loop','max_iterations':5000,'steps':[{'id':'a','type':'transform','value':1}]}]}",
      "{'name':'t','steps':[{'id':'l','type':'loop','steps':[{'id':'a','type':'transform','value':1}]}]}",
      "{'name':'t','steps':[{'id':'a','type':'transform','value':1,'retry':{'on':['rate_limit']}}]}",
      "{'name':'t','steps':[{'id':'a','type':'transform','value':1,'catch':{'goto':'b','action':'fail'}}]}",
      "{'name':'t','steps':[{'id':'m','type':'map','over':'x {{ input.l }}','steps':[{'id':'a','type':'transform','value':1}]}]}",
      "{'name':'t','agents':{'a':{'provider':'openai'}},'steps':[{'id':'a','type':'transform','value':1}]}",
      "{'name':'t','agents':{'a':{'ref':'x','model':'m'}},'steps':[{'id':'a','type':'transform','value':1}]}",
      "{'name':'t','inputs':{'1a':{'type':'string'}},'steps':[{'id':'a','type':'transform','value':1}]}",
      "{'name':'t','stpes':1,'steps':[{'id':'a','type':'transform','value':1}]}",
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(bad); i++) {
    char *serr = schema_errors(s, bad[i]);
    char *verr = wft_errors_of(bad[i], NULL);
    if (!serr) fail_msg("schema accepts %s", bad[i]);
    if (!verr[0]) fail_msg("validator accepts %s", bad[i]);
    free(serr);
    free(verr);
  }
  json_decref(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schema_check_accepts_the_subset_and_names_the_first_problem),
      cmocka_unit_test(test_schema_validate_checks_model_output_against_the_subset),
      cmocka_unit_test(test_docs_schema_names_the_same_fields_as_the_validator),
      cmocka_unit_test(test_docs_schema_accepts_every_example),
      cmocka_unit_test(test_docs_schema_rejects_what_the_validator_rejects_for_shape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
