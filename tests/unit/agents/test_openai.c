/* OpenAI-compatible chat completions decoder (agents/openai.c): recorded-shape transcripts
 * in data/, each fed whole, split at every byte and byte by byte, with LF, CRLF and CR
 * line ends; all must give the deltas of the matching .expect file. */
#include "agents_test.h"

static void test_openai_text_stream_gives_text_finish_then_usage(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_text.sse");
}

static void test_openai_tool_call_fragments_keep_their_index(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_tools.sse");
}

static void test_openai_tool_calls_without_index_are_matched_by_id(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_tools_noindex.sse");
}

static void test_openai_reasoning_content_becomes_reasoning_deltas(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_reasoning.sse");
}

static void test_openai_error_object_after_200_ends_with_server_error(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_error.sse");
}

static void test_openai_rate_limit_error_code_classifies_as_rate_limited(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_error_ratelimit.sse");
}

static void test_llamacpp_error_line_is_surfaced_as_error(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "llamacpp_error.sse");
}

static void test_openai_stream_cut_before_finish_reports_network_error(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_truncated.sse");
}

static void test_openai_utf8_survives_splits_and_bad_bytes_become_replacement(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_unicode.sse");
}

static void test_openai_choices_are_kept_apart_and_missing_done_is_tolerated(void **state) {
  at_check_transcript(AGENT_WIRE_OPENAI, "openai_multichoice.sse");
}

static void test_openai_malformed_chunk_is_an_error_delta(void **state) {
  static const char body[] = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {nope\n\n";
  char *got = at_decode(AGENT_WIRE_OPENAI, body, sizeof body - 1, NULL, 0);
  at_assert_same("text \"x\"\nerror unknown \"malformed chunk: line 1 column 5: string or '}' expected near 'nope'\"\n",
                 got, "malformed");
  free(got);
}

static void test_openai_null_error_member_is_not_an_error(void **state) {
  static const char body[] =
      "data: {\"error\":null,\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\n";
  char *got = at_decode(AGENT_WIRE_OPENAI, body, sizeof body - 1, NULL, 0);
  at_assert_same("text \"x\"\nfinish stop raw=stop\n", got, "null error");
  free(got);
}

static void test_openai_chunk_that_is_not_an_object_is_an_error_delta(void **state) {
  static const char body[] = "data: [1,2]\n\n";
  char *got = at_decode(AGENT_WIRE_OPENAI, body, sizeof body - 1, NULL, 0);
  at_assert_same("error unknown \"malformed chunk: not an object\"\n", got, "array");
  free(got);
}

static void test_openai_tool_index_out_of_range_is_an_error_delta(void **state) {
  static const char body[] =
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":100000,\"function\":{\"name\":\"f\"}}]}}]}\n\n";
  char *got = at_decode(AGENT_WIRE_OPENAI, body, sizeof body - 1, NULL, 0);
  at_assert_same("error unknown \"tool_calls: too many calls or bad index\"\n", got, "index");
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_openai_text_stream_gives_text_finish_then_usage),
      cmocka_unit_test(test_openai_tool_call_fragments_keep_their_index),
      cmocka_unit_test(test_openai_tool_calls_without_index_are_matched_by_id),
      cmocka_unit_test(test_openai_reasoning_content_becomes_reasoning_deltas),
      cmocka_unit_test(test_openai_error_object_after_200_ends_with_server_error),
      cmocka_unit_test(test_openai_rate_limit_error_code_classifies_as_rate_limited),
      cmocka_unit_test(test_llamacpp_error_line_is_surfaced_as_error),
      cmocka_unit_test(test_openai_stream_cut_before_finish_reports_network_error),
      cmocka_unit_test(test_openai_utf8_survives_splits_and_bad_bytes_become_replacement),
      cmocka_unit_test(test_openai_choices_are_kept_apart_and_missing_done_is_tolerated),
      cmocka_unit_test(test_openai_malformed_chunk_is_an_error_delta),
      cmocka_unit_test(test_openai_null_error_member_is_not_an_error),
      cmocka_unit_test(test_openai_chunk_that_is_not_an_object_is_an_error_delta),
      cmocka_unit_test(test_openai_tool_index_out_of_range_is_an_error_delta),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
