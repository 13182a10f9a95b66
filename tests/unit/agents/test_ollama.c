/* Ollama /api/chat NDJSON decoder (agents/ollama.c): transcripts in the shapes of Ollama's
 * API documentation, fed whole, split at every byte and byte by byte. */
#include "agents_test.h"

static void test_ollama_chat_stream_gives_text_finish_and_usage(void **state) {
  at_check_transcript(AGENT_WIRE_OLLAMA, "ollama_chat.ndjson");
}

static void test_ollama_thinking_becomes_reasoning(void **state) {
  at_check_transcript(AGENT_WIRE_OLLAMA, "ollama_thinking.ndjson");
}

static void test_ollama_whole_tool_calls_become_one_delta_each(void **state) {
  at_check_transcript(AGENT_WIRE_OLLAMA, "ollama_tools.ndjson");
}

static void test_ollama_error_line_ends_the_stream(void **state) {
  at_check_transcript(AGENT_WIRE_OLLAMA, "ollama_error.ndjson");
}

static void test_ollama_tolerates_bom_crlf_blank_lines_and_no_final_newline(void **state) {
  at_check_transcript(AGENT_WIRE_OLLAMA, "ollama_crlf_nonl.ndjson");
}

static void test_ollama_stream_without_done_is_network_error(void **state) {
  at_check_transcript(AGENT_WIRE_OLLAMA, "ollama_truncated.ndjson");
}

static void test_ollama_malformed_line_is_an_error_delta(void **state) {
  at_check_transcript(AGENT_WIRE_OLLAMA, "ollama_malformed.ndjson");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ollama_chat_stream_gives_text_finish_and_usage),
      cmocka_unit_test(test_ollama_thinking_becomes_reasoning),
      cmocka_unit_test(test_ollama_whole_tool_calls_become_one_delta_each),
      cmocka_unit_test(test_ollama_error_line_ends_the_stream),
      cmocka_unit_test(test_ollama_tolerates_bom_crlf_blank_lines_and_no_final_newline),
      cmocka_unit_test(test_ollama_stream_without_done_is_network_error),
      cmocka_unit_test(test_ollama_malformed_line_is_an_error_delta),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
