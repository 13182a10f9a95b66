/* Tool-call assembler (agents/tools.c): grouping by index with id fallback, limits, and
 * the validation at finish; also fed from real decoder output. */
#include <errno.h>

#include "agents_test.h"

static agent_delta_t frag(int index, const char *id, const char *name, const char *args) {
  agent_delta_t d = {.kind = AGENT_DELTA_TOOL_CALL, .index = index, .tool_id = id,
                     .tool_name = name, .text = args, .text_len = strlen(args)};
  return d;
}

static void test_tools_group_fragments_by_index_in_first_seen_order(void **state) {
  agent_tools_t *t;
  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  agent_delta_t ds[] = {frag(1, "b", "second", "{\"x\""), frag(0, "a", "first", ""),
                        frag(1, NULL, NULL, ":1}"), frag(0, NULL, NULL, "{}")};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(ds); i++) assert_int_equal(agent_tools_add(t, &ds[i]), 0);
  agent_delta_t text = {.kind = AGENT_DELTA_TEXT, .text = "ignored", .text_len = 7};
  assert_int_equal(agent_tools_add(t, &text), 0);
  assert_int_equal(agent_tools_finish(t, NULL, 0), 0);
  assert_int_equal(agent_tools_count(t), 2);
  const agent_tool_call_t *c = agent_tools_get(t, 0);
  assert_int_equal(c->index, 1);
  assert_string_equal(c->id, "b");
  assert_string_equal(c->name, "second");
  assert_string_equal(c->args, "{\"x\":1}");
  assert_int_equal(c->args_len, 7);
  c = agent_tools_get(t, 1);
  assert_string_equal(c->name, "first");
  assert_string_equal(c->args, "{}");
  assert_null(agent_tools_get(t, 2));
  agent_tools_free(t);
}

static void test_tools_without_index_match_by_id_then_continue_the_last(void **state) {
  agent_tools_t *t;
  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  agent_delta_t ds[] = {frag(-1, "a", "f", "{\"q\":"), frag(-1, "b", "g", "{"),
                        frag(-1, NULL, NULL, "}"), frag(-1, "a", NULL, "1}")};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(ds); i++) assert_int_equal(agent_tools_add(t, &ds[i]), 0);
  assert_int_equal(agent_tools_finish(t, NULL, 0), 0);
  assert_int_equal(agent_tools_count(t), 2);
  assert_string_equal(agent_tools_get(t, 0)->args, "{\"q\":1}");
  assert_int_equal(agent_tools_get(t, 0)->index, 0);
  assert_string_equal(agent_tools_get(t, 1)->args, "{}");
  assert_int_equal(agent_tools_get(t, 1)->index, 1);
  agent_tools_free(t);
}

static void test_tools_empty_arguments_become_an_empty_object(void **state) {
  agent_tools_t *t;
  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  agent_delta_t d = frag(0, "x", "noargs", " \n");
  assert_int_equal(agent_tools_add(t, &d), 0);
  assert_int_equal(agent_tools_finish(t, NULL, 0), 0);
  assert_string_equal(agent_tools_get(t, 0)->args, "{}");
  agent_tools_free(t);
}

static void test_tools_finish_names_the_call_with_bad_arguments(void **state) {
  agent_tools_t *t;
  char err[200];
  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  agent_delta_t a = frag(0, "a", "f", "{}"), b = frag(1, "b", "g", "{\"x\":");
  assert_int_equal(agent_tools_add(t, &a), 0);
  assert_int_equal(agent_tools_add(t, &b), 0);
  assert_int_equal(agent_tools_finish(t, err, sizeof err), -EBADMSG);
  assert_non_null(strstr(err, "tool_calls[1].arguments: line 1 column"));
  agent_tools_free(t);

  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  agent_delta_t arr = frag(0, "a", "f", "[1]");
  assert_int_equal(agent_tools_add(t, &arr), 0);
  assert_int_equal(agent_tools_finish(t, err, sizeof err), -EBADMSG);
  assert_string_equal(err, "tool_calls[0].arguments: not a JSON object");
  agent_tools_free(t);

  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  agent_delta_t noname = frag(0, "a", NULL, "{}");
  assert_int_equal(agent_tools_add(t, &noname), 0);
  assert_int_equal(agent_tools_finish(t, err, sizeof err), -EBADMSG);
  assert_string_equal(err, "tool_calls[0].name: missing");
  agent_tools_free(t);
}

static void test_tools_limits_bound_calls_and_argument_bytes(void **state) {
  agent_tools_t *t;
  assert_int_equal(agent_tools_new(2, 4, &t), 0);
  agent_delta_t a = frag(0, NULL, "f", "{}"), b = frag(1, NULL, "g", "{}"), c = frag(2, NULL, "h", "");
  assert_int_equal(agent_tools_add(t, &a), 0);
  assert_int_equal(agent_tools_add(t, &b), 0);
  assert_int_equal(agent_tools_add(t, &c), -E2BIG);
  agent_delta_t more = frag(0, NULL, NULL, "abc");
  assert_int_equal(agent_tools_add(t, &more), -EMSGSIZE);
  agent_delta_t fits = frag(0, NULL, NULL, "ab");
  assert_int_equal(agent_tools_add(t, &fits), 0);
  agent_tools_free(t);
}

static int add_to_tools(void *ud, const agent_delta_t *d) {
  return agent_tools_add(ud, d);
}

static void assemble(agent_wire_t wire, const char *file, agent_tools_t *t) {
  size_t len;
  char *body = at_read_file(file, &len);
  agent_decoder_t *d;
  agent_decoder_opts_t o = {.wire = wire, .on_delta = add_to_tools, .ud = t};
  assert_int_equal(agent_decoder_new(&o, &d), 0);
  for (size_t i = 0; i < len; i += 7)
    assert_int_equal(agent_decoder_push(d, body + i, len - i < 7 ? len - i : 7), 0);
  assert_int_equal(agent_decoder_finish(d), 0);
  agent_decoder_free(d);
  free(body);
  assert_int_equal(agent_tools_finish(t, NULL, 0), 0);
}

static void test_tools_assemble_openai_and_anthropic_streams(void **state) {
  agent_tools_t *t;
  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  assemble(AGENT_WIRE_OPENAI, "openai_tools.sse", t);
  assert_int_equal(agent_tools_count(t), 2);
  assert_string_equal(agent_tools_get(t, 0)->id, "call_DdmO9pD3xa9XTPNJ32zg2hcA");
  assert_string_equal(agent_tools_get(t, 0)->args, "{\"location\": \"Paris, France\"}");
  assert_string_equal(agent_tools_get(t, 1)->args, "{\"tz\":\"CET\"}");
  agent_tools_free(t);

  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  assemble(AGENT_WIRE_ANTHROPIC, "anthropic_tools.sse", t);
  assert_int_equal(agent_tools_count(t), 2);
  assert_string_equal(agent_tools_get(t, 0)->name, "get_weather");
  assert_string_equal(agent_tools_get(t, 0)->args,
                      "{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}");
  assert_string_equal(agent_tools_get(t, 1)->args, "{}");
  agent_tools_free(t);

  assert_int_equal(agent_tools_new(0, 0, &t), 0);
  assemble(AGENT_WIRE_OLLAMA, "ollama_tools.ndjson", t);
  assert_int_equal(agent_tools_count(t), 2);
  assert_null(agent_tools_get(t, 0)->id);
  assert_string_equal(agent_tools_get(t, 0)->args, "{\"city\":\"Tokyo\",\"days\":3}");
  agent_tools_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tools_group_fragments_by_index_in_first_seen_order),
      cmocka_unit_test(test_tools_without_index_match_by_id_then_continue_the_last),
      cmocka_unit_test(test_tools_empty_arguments_become_an_empty_object),
      cmocka_unit_test(test_tools_finish_names_the_call_with_bad_arguments),
      cmocka_unit_test(test_tools_limits_bound_calls_and_argument_bytes),
      cmocka_unit_test(test_tools_assemble_openai_and_anthropic_streams),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
