/* Tests for workflows/template.c: compile errors, rendering of whole templates (the JSON
 * value itself) and of interpolations, missing paths, conditions and value templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "wf_test_util.h"

static json_t *ctx_new(void) {
  char *text = wft_q("{'input':{'topic':'otters','n':3,'tags':['a','b'],'opt':null,'flag':false,"
                     "'quote':'say \\'hi\\''},"
                     "'steps':{'research':{'output':{'title':'Otters','facts':[{'k':1},{'k':2}],"
                     "'done':true,'score':2.0}},'plain':{'output':'text out'}},"
                     "'item':{'name':'x'},'index':4,'run':{'id':'r_1','workflow':'w'}}");
  json_error_t err;
  json_t *ctx = json_loads(text, 0, &err);
  free(text);
  assert_non_null(ctx);
  return ctx;
}

typedef struct rcase {
  const char *src;
  const char *want; /* compact JSON of the rendered value, or the error message */
  bool error;
} rcase_t;

static const rcase_t render_cases[] = {
    /* whole templates yield the value itself */
    {"{{ input.n }}", "3", false},
    {"{{input.tags}}", "[\"a\",\"b\"]", false},
    {"{{ steps.research.output }}",
     "{\"title\":\"Otters\",\"facts\":[{\"k\":1},{\"k\":2}],\"done\":true,\"score\":2.0}", false},
    {"{{ steps.research.output.facts[1].k }}", "2", false},
    {"{{ input.opt }}", "null", false},
    {"{{ item }}", "{\"name\":\"x\"}", false},
    {"{{ index }}", "4", false},
    {"{{ run.id }}", "\"r_1\"", false},
    {"{{ steps.research.output[\"title\"] }}", "\"Otters\"", false},
    /* interpolation: strings raw, other values as compact JSON */
    {"About {{ input.topic }}", "\"About otters\"", false},
    {"n={{ input.n }} tags={{ input.tags }} opt={{ input.opt }}",
     "\"n=3 tags=[\\\"a\\\",\\\"b\\\"] opt=null\"", false},
    {" {{ input.n }}", "\" 3\"", false},
    {"no braces at all", "\"no braces at all\"", false},
    {"", "\"\"", false},
    {"single { brace } is text", "\"single { brace } is text\"", false},
    {"{{ \"{{\" }} literal", "\"{{ literal\"", false},
    {"{{ input.quote }}", "\"say \\\"hi\\\"\"", false},
    /* conditions */
    {"{{ steps.research.output.done == true }}", "true", false},
    {"{{ steps.research.output.score == 2 }}", "true", false},
    {"{{ input.topic != \"otters\" }}", "false", false},
    {"{{ !input.flag }}", "true", false},
    {"{{ !input.tags }}", "false", false},
    {"{{ input.n == 3 }} and {{ 1 == 2 }}", "\"true and false\"", false},
    {"{{ -1.5 }}", "-1.5", false},
    /* missing paths name the template and the path */
    {"{{ steps.research.output.author }}",
     "template \"{{ steps.research.output.author }}\": no value at steps.research.output.author "
     "(steps.research.output has no field \"author\")",
     true},
    {"Hi {{ steps.missing.output }}",
     "template \"Hi {{ steps.missing.output }}\": no value at steps.missing.output (steps has no "
     "field \"missing\")",
     true},
    {"{{ input.tags[5] }}", "template \"{{ input.tags[5] }}\": no value at input.tags[5] (input.tags has 2 items)", true},
    {"{{ input.topic.x }}",
     "template \"{{ input.topic.x }}\": no value at input.topic.x (input.topic is a string, not an object)", true},
    {"{{ input.topic[0] }}",
     "template \"{{ input.topic[0] }}\": no value at input.topic[0] (input.topic is a string, not an array)", true},
    {"{{ iteration }}", "template \"{{ iteration }}\": no value at iteration (iteration is not defined here)", true},
    {"{{ steps.plain.output.x == 1 }}",
     "template \"{{ steps.plain.output.x == 1 }}\": no value at steps.plain.output.x (steps.plain.output "
     "is a string, not an object)", true},
};

static void test_template_renders_values_strings_and_missing_paths(void **state) {
  (void)state;
  json_t *ctx = ctx_new();
  int failed = 0;
  for (size_t i = 0; i < BASE_ARRAY_SIZE(render_cases); i++) {
    const rcase_t *c = &render_cases[i];
    wf__tmpl_t *t = NULL;
    char *err = NULL;
    if (wf__tmpl_compile(c->src, &t, &err) < 0) {
      print_error("compile \"%s\": %s\n", c->src, err);
      free(err);
      failed++;
      continue;
    }
    json_t *out = NULL;
    int rc = wf__tmpl_render(t, ctx, &out, &err);
    char *got = rc == 0 ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6))
                        : xstrdup(err);
    if ((rc != 0) != c->error || strcmp(got, c->want) != 0) {
      print_error("render \"%s\":\n  want: %s\n  got:  %s (rc %d)\n", c->src, c->want, got, rc);
      failed++;
    }
    free(got);
    free(err);
    json_decref(out);
    wf__tmpl_free(t);
  }
  json_decref(ctx);
  assert_int_equal(failed, 0);
}

typedef struct ccase {
  const char *src;
  const char *want_err;
} ccase_t;

static const ccase_t compile_errors[] = {
    {"{{ input.x", "unterminated \"{{\" (at offset 0)"},
    {"ok {{ }}", "empty \"{{ }}\" (at offset 3)"},
    {"{{ foo.bar }}", "unknown name \"foo\" (expected input, steps, item, index, iteration or run) (at offset 3)"},
    {"{{ stesp.a.output }}", "unknown name \"stesp\" (did you mean \"steps\"?) (at offset 3)"},
    {"{{ input. }}", "expected a name after \".\" (at offset 9)"},
    {"{{ input.tags[x] }}", "expected an index after \"[\" (at offset 14)"},
    {"{{ input.tags[1 }}", "expected \"]\" (at offset 16)"},
    {"{{ input.a input.b }}", "unexpected text after the expression (at offset 11)"},
    {"{{ input.a == }}", "expected a value (at offset 14)"},
    {"{{ input.a = 1 }}", "unexpected text after the expression (at offset 11)"},
    {"{{ \"abc }}", "unterminated \"{{\" (at offset 0)"},
    {"{{ 1.2.3 }}", "invalid number (at offset 3)"},
    {"{{ ( }}", "expected a name or a literal (at offset 3)"},
};

static void test_template_compile_errors_say_what_and_where(void **state) {
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < BASE_ARRAY_SIZE(compile_errors); i++) {
    wf__tmpl_t *t = NULL;
    char *err = NULL;
    int rc = wf__tmpl_compile(compile_errors[i].src, &t, &err);
    if (rc != -EINVAL || !err || strcmp(err, compile_errors[i].want_err) != 0) {
      print_error("compile \"%s\":\n  want: %s\n  got:  %s\n", compile_errors[i].src,
                  compile_errors[i].want_err, err ? err : "(ok)");
      failed++;
    }
    assert_null(t);
    free(err);
  }
  assert_int_equal(failed, 0);
}

static void test_template_lists_the_paths_it_reads(void **state) {
  (void)state;
  wf__tmpl_t *t = NULL;
  char *err = NULL;
  assert_int_equal(wf__tmpl_compile("{{ steps.a.output.x }} {{ input.t == steps.b.output }} {{ 3 }}", &t, &err), 0);
  assert_false(wf__tmpl_is_whole(t));
  assert_false(wf__tmpl_is_literal(t));
  assert_int_equal(wf__tmpl_ref_count(t), 3);
  wf__tmpl_ref_t r;
  wf__tmpl_ref_at(t, 0, &r);
  assert_int_equal(r.root, WF__ROOT_STEPS);
  assert_string_equal(r.name, "a");
  assert_string_equal(r.field, "output");
  assert_string_equal(r.text, "steps.a.output.x");
  wf__tmpl_ref_at(t, 1, &r);
  assert_int_equal(r.root, WF__ROOT_INPUT);
  assert_string_equal(r.name, "t");
  assert_null(r.field);
  wf__tmpl_ref_at(t, 2, &r);
  assert_string_equal(r.name, "b");
  wf__tmpl_free(t);
}

static void test_template_truthiness_and_switch_keys_follow_json_values(void **state) {
  (void)state;
  const char *falsy[] = {"null", "false", "0", "0.0", "\"\"", "[]", "{}"};
  const char *truthy[] = {"true", "1", "-0.5", "\"false\"", "[0]", "{\"a\":null}"};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(falsy); i++) {
    json_t *v = json_loads(falsy[i], JSON_DECODE_ANY, NULL);
    assert_false(wf__json_truthy(v));
    json_decref(v);
  }
  for (size_t i = 0; i < BASE_ARRAY_SIZE(truthy); i++) {
    json_t *v = json_loads(truthy[i], JSON_DECODE_ANY, NULL);
    assert_true(wf__json_truthy(v));
    json_decref(v);
  }
  json_t *s = json_string("billing"), *b = json_true(), *n = json_integer(3);
  char *k1 = wf__switch_key(s), *k2 = wf__switch_key(b), *k3 = wf__switch_key(n);
  assert_string_equal(k1, "billing");
  assert_string_equal(k2, "true");
  assert_string_equal(k3, "3");
  free(k1);
  free(k2);
  free(k3);
  json_decref(s);
  json_decref(b);
  json_decref(n);
}

static void record_path(void *arg, const wf__path_comp_t *comps, size_t n, const wf__tmpl_t *t,
                        const char *err) {
  char **log = arg;
  char *p = wf__path_format(comps, n);
  char *next = xasprintf("%s%s=%s;", *log, p, err ? err : (wf__tmpl_is_literal(t) ? "lit" : "tmpl"));
  free(p);
  free(*log);
  *log = next;
}

static void test_value_template_renders_a_json_value_with_templated_strings(void **state) {
  (void)state;
  char *text = wft_q("{'t':'{{ steps.research.output.title }}','n':'{{ input.n }}','s':'n={{ input.n }}',"
                     "'lit':[1,true,null,'plain'],'nested':{'a b':['{{ index }}']}}");
  json_t *shape = json_loads(text, 0, NULL);
  free(text);
  char *log = xstrdup("");
  wf__vtmpl_t *vt = NULL;
  assert_int_equal(wf__vtmpl_compile(shape, &vt, record_path, &log), 0);
  assert_string_equal(log, "t=tmpl;n=tmpl;s=tmpl;lit[3]=lit;nested[\"a b\"][0]=tmpl;");
  json_t *ctx = ctx_new(), *out = NULL;
  char *err = NULL;
  assert_int_equal(wf__vtmpl_render(vt, ctx, &out, &err), 0);
  char *got = json_dumps(out, JSON_COMPACT);
  assert_string_equal(got, "{\"t\":\"Otters\",\"n\":3,\"s\":\"n=3\",\"lit\":[1,true,null,\"plain\"],"
                           "\"nested\":{\"a b\":[4]}}");
  free(got);
  json_decref(out);
  /* A missing path anywhere fails the whole value. */
  json_object_del(ctx, "index");
  assert_int_equal(wf__vtmpl_render(vt, ctx, &out, &err), -EINVAL);
  assert_null(out);
  assert_string_equal(err, "template \"{{ index }}\": no value at index (index is not defined here)");
  free(err);
  wf__vtmpl_free(vt);
  /* A syntax error is reported with its place and fails the compile. */
  free(log);
  log = xstrdup("");
  json_t *bad = json_pack("{s:[s,s]}", "a", "ok", "{{ nope }}");
  assert_int_equal(wf__vtmpl_compile(bad, &vt, record_path, &log), -EINVAL);
  assert_null(vt);
  assert_string_equal(log, "a[0]=lit;a[1]=unknown name \"nope\" (expected input, steps, item, index, "
                           "iteration or run) (at offset 3);");
  json_decref(bad);
  free(log);
  json_decref(ctx);
  json_decref(shape);
}

static void test_template_long_sources_are_shortened_in_messages(void **state) {
  (void)state;
  char *src = xasprintf("%0100d {{ input.none }}", 0);
  wf__tmpl_t *t = NULL;
  char *err = NULL;
  assert_int_equal(wf__tmpl_compile(src, &t, &err), 0);
  json_t *ctx = ctx_new(), *out = NULL;
  assert_int_equal(wf__tmpl_render(t, ctx, &out, &err), -EINVAL);
  assert_non_null(strstr(err, "...\": no value at input.none (input has no field \"none\")"));
  assert_true(strlen(err) < 200);
  free(err);
  json_decref(ctx);
  wf__tmpl_free(t);
  free(src);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_template_renders_values_strings_and_missing_paths),
      cmocka_unit_test(test_template_compile_errors_say_what_and_where),
      cmocka_unit_test(test_template_lists_the_paths_it_reads),
      cmocka_unit_test(test_template_truthiness_and_switch_keys_follow_json_values),
      cmocka_unit_test(test_value_template_renders_a_json_value_with_templated_strings),
      cmocka_unit_test(test_template_long_sources_are_shortened_in_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
