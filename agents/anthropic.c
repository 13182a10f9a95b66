/* Decoder for the Anthropic Messages stream: message_start, content_block_start/delta/stop,
 * message_delta, message_stop, ping and error events.
 *
 * Content blocks are numbered by the server; this file remembers what each index is (text,
 * thinking, tool_use) so input_json_delta fragments land on the right tool call, numbered
 * 0, 1, ... in order of appearance. Usage is sent once, at message_delta, with the input
 * count from message_start (input + cache creation + cache read tokens, so that it counts
 * the whole prompt like OpenAI's prompt_tokens). Unknown event and delta types are ignored,
 * as Anthropic's versioning policy asks. Framing is decoder.c's job. */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

static int block_index(const json_t *doc) {
  int64_t idx;
  if (!agent__json_int(doc, "index", &idx) || idx < 0 || idx >= AGENT__MAX_BLOCKS) return -1;
  return (int)idx;
}

static int anth_block_start(agent_decoder_t *d, const json_t *doc) {
  int idx = block_index(doc);
  json_t *cb = json_object_get(doc, "content_block");
  const char *type = json_string_value(json_object_get(cb, "type"));
  const char *s;
  size_t n;
  if (idx < 0) return agent__protocol_error(d, "content_block_start", "bad index");
  d->block_kind[idx] = 0;
  if (!type) return 0;
  if (strcmp(type, "text") == 0) {
    d->block_kind[idx] = 't';
    if (agent__json_str(cb, "text", &s, &n)) return agent__emit_text(d, AGENT_DELTA_TEXT, 0, s, n);
  } else if (strcmp(type, "thinking") == 0) {
    d->block_kind[idx] = 'r';
    if (agent__json_str(cb, "thinking", &s, &n))
      return agent__emit_text(d, AGENT_DELTA_REASONING, 0, s, n);
  } else if (strcmp(type, "tool_use") == 0) {
    if (d->last_tool + 1 >= AGENT__MAX_TOOLS)
      return agent__protocol_error(d, "content_block_start", "too many tool calls");
    d->block_kind[idx] = 'u';
    d->block_tool[idx] = ++d->last_tool;
    agent_delta_t dl;
    agent__delta_init(&dl, AGENT_DELTA_TOOL_CALL);
    dl.index = d->block_tool[idx];
    dl.tool_id = json_string_value(json_object_get(cb, "id"));
    dl.tool_name = json_string_value(json_object_get(cb, "name"));
    json_t *input = json_object_get(cb, "input");
    char *dumped = NULL;
    if (json_is_object(input) && json_object_size(input)) { /* input sent whole, not streamed */
      dumped = json_dumps(input, JSON_COMPACT);
      if (dumped) {
        dl.text = dumped;
        dl.text_len = strlen(dumped);
      }
    }
    int rc = agent__emit(d, &dl);
    free(dumped);
    return rc;
  }
  return 0;
}

static int anth_block_delta(agent_decoder_t *d, const json_t *doc) {
  int idx = block_index(doc);
  json_t *delta = json_object_get(doc, "delta");
  const char *type = json_string_value(json_object_get(delta, "type"));
  const char *s;
  size_t n;
  if (idx < 0) return agent__protocol_error(d, "content_block_delta", "bad index");
  if (!type) return 0;
  if (strcmp(type, "text_delta") == 0 && agent__json_str(delta, "text", &s, &n))
    return agent__emit_text(d, AGENT_DELTA_TEXT, 0, s, n);
  if (strcmp(type, "thinking_delta") == 0 && agent__json_str(delta, "thinking", &s, &n))
    return agent__emit_text(d, AGENT_DELTA_REASONING, 0, s, n);
  if (strcmp(type, "input_json_delta") == 0 && d->block_kind[idx] == 'u' &&
      agent__json_str(delta, "partial_json", &s, &n) && n) {
    agent_delta_t dl;
    agent__delta_init(&dl, AGENT_DELTA_TOOL_CALL);
    dl.index = d->block_tool[idx];
    dl.text = s;
    dl.text_len = n;
    return agent__emit(d, &dl);
  }
  return 0; /* signature_delta, citations_delta, future types */
}

static int64_t sum_tokens(const json_t *usage) {
  static const char *const keys[] = {"input_tokens", "cache_creation_input_tokens",
                                     "cache_read_input_tokens"};
  int64_t total = -1, v;
  for (size_t i = 0; i < BASE_ARRAY_SIZE(keys); i++)
    if (agent__json_int(usage, keys[i], &v) && v >= 0) total = (total < 0 ? 0 : total) + v;
  return total;
}

static int anth_message_delta(agent_decoder_t *d, const json_t *doc) {
  const char *s;
  size_t n;
  int rc;
  json_t *delta = json_object_get(doc, "delta");
  if (agent__json_str(delta, "stop_reason", &s, &n) && n &&
      (rc = agent__emit_finish(d, 0, s, n)))
    return rc;
  json_t *usage = json_object_get(doc, "usage");
  if (!json_is_object(usage)) return 0;
  int64_t in = sum_tokens(usage);
  if (in >= 0) d->in_tokens = in;
  agent__json_int(usage, "output_tokens", &d->out_tokens);
  return agent__emit_usage(d, d->in_tokens, d->out_tokens);
}

static int anth_event(agent_decoder_t *d, const char *sse_type, json_t *doc, const char *data,
                      size_t len, const char *perr) {
  const char *type = json_string_value(json_object_get(doc, "type"));
  if (!type) type = sse_type;
  if (strcmp(type, "error") == 0) return agent__emit_error_doc(d, doc, data, len);
  if (strcmp(type, "ping") == 0) return 0;
  if (!doc) return agent__protocol_error(d, "malformed event", perr);
  if (!json_is_object(doc)) return agent__protocol_error(d, "malformed event", "not an object");
  if (strcmp(type, "message_start") == 0) {
    int64_t in = sum_tokens(json_object_get(json_object_get(doc, "message"), "usage"));
    if (in >= 0) d->in_tokens = in;
    return 0;
  }
  if (strcmp(type, "content_block_start") == 0) return anth_block_start(d, doc);
  if (strcmp(type, "content_block_delta") == 0) return anth_block_delta(d, doc);
  if (strcmp(type, "message_delta") == 0) return anth_message_delta(d, doc);
  if (strcmp(type, "message_stop") == 0) d->done = true;
  return 0; /* content_block_stop and event types added later */
}

const agent__wire_ops_t agent__anthropic_ops = {
    .ndjson = false,
    .on_event = anth_event,
};
