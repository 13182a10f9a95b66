/* Anthropic Messages stream decoder (agents/anthropic.c): transcripts in the shapes of
 * Anthropic's streaming documentation, fed whole, split at every byte and byte by byte,
 * with LF, CRLF and CR line ends. */
#include "agents_test.h"

static void test_anthropic_text_stream_gives_text_finish_and_usage(void **state) {
  at_check_transcript(AGENT_WIRE_ANTHROPIC, "anthropic_text.sse");
}

static void test_anthropic_tool_use_blocks_become_numbered_tool_calls(void **state) {
  at_check_transcript(AGENT_WIRE_ANTHROPIC, "anthropic_tools.sse");
}

static void test_anthropic_thinking_becomes_reasoning_and_unknown_events_are_ignored(void **state) {
  at_check_transcript(AGENT_WIRE_ANTHROPIC, "anthropic_thinking.sse");
}

static void test_anthropic_overloaded_error_event_is_server_error(void **state) {
  at_check_transcript(AGENT_WIRE_ANTHROPIC, "anthropic_overloaded.sse");
}

static void test_anthropic_rate_limit_error_event_is_rate_limited(void **state) {
  at_check_transcript(AGENT_WIRE_ANTHROPIC, "anthropic_ratelimit.sse");
}

static void test_anthropic_stream_cut_before_message_stop_is_network_error(void **state) {
  at_check_transcript(AGENT_WIRE_ANTHROPIC, "anthropic_truncated.sse");
}

static void test_anthropic_input_json_for_a_text_block_is_ignored(void **state) {
  static const char body[] =
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
      "\"content_block\":{\"type\":\"text\",\"text\":\"a\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":-1,"
      "\"delta\":{\"type\":\"text_delta\",\"text\":\"b\"}}\n\n";
  char *got = at_decode(AGENT_WIRE_ANTHROPIC, body, sizeof body - 1, NULL, 0);
  at_assert_same("text \"a\"\nerror unknown \"content_block_delta: bad index\"\n", got, "blocks");
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_anthropic_text_stream_gives_text_finish_and_usage),
      cmocka_unit_test(test_anthropic_tool_use_blocks_become_numbered_tool_calls),
      cmocka_unit_test(test_anthropic_thinking_becomes_reasoning_and_unknown_events_are_ignored),
      cmocka_unit_test(test_anthropic_overloaded_error_event_is_server_error),
      cmocka_unit_test(test_anthropic_rate_limit_error_event_is_rate_limited),
      cmocka_unit_test(test_anthropic_stream_cut_before_message_stop_is_network_error),
      cmocka_unit_test(test_anthropic_input_json_for_a_text_block_is_ignored),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
