/* Decoder for Ollama's native NDJSON streams: /api/chat (message.content, message.thinking,
 * message.tool_calls) and /api/generate (response, thinking), ending with a "done": true
 * line that carries done_reason, prompt_eval_count and eval_count; {"error":"..."} lines
 * report failures after HTTP 200.
 *
 * Ollama sends each tool call whole, with "arguments" as a JSON object: it becomes one
 * TOOL_CALL delta whose fragment is the compact serialisation, numbered in order of
 * appearance. A done line without done_reason finishes with "stop". */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

static int ollama_tool_call(agent_decoder_t *d, const json_t *tc) {
  json_t *fn = json_object_get(tc, "function");
  if (!json_is_object(fn)) return 0;
  if (d->last_tool + 1 >= AGENT__MAX_TOOLS)
    return agent__protocol_error(d, "tool_calls", "too many tool calls");
  agent_delta_t dl;
  agent__delta_init(&dl, AGENT_DELTA_TOOL_CALL);
  dl.index = ++d->last_tool;
  dl.tool_id = json_string_value(json_object_get(tc, "id"));
  dl.tool_name = json_string_value(json_object_get(fn, "name"));
  json_t *args = json_object_get(fn, "arguments");
  char *dumped = NULL;
  if (json_is_string(args)) {
    dl.text = json_string_value(args);
    dl.text_len = json_string_length(args);
  } else if (args) {
    dumped = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    if (dumped) {
      dl.text = dumped;
      dl.text_len = strlen(dumped);
    }
  }
  int rc = agent__emit(d, &dl);
  free(dumped);
  return rc;
}

static int ollama_event(agent_decoder_t *d, const char *type, json_t *doc, const char *data,
                        size_t len, const char *perr) {
  const char *s;
  size_t n;
  int rc;
  if (!doc) return agent__protocol_error(d, "malformed line", perr);
  if (!json_is_object(doc)) return agent__protocol_error(d, "malformed line", "not an object");
  json_t *err = json_object_get(doc, "error");
  if (err && !json_is_null(err)) return agent__emit_error_doc(d, doc, data, len);
  json_t *msg = json_object_get(doc, "message");
  const json_t *src = json_is_object(msg) ? msg : doc; /* /api/chat : /api/generate */
  if (agent__json_str(src, "thinking", &s, &n) &&
      (rc = agent__emit_text(d, AGENT_DELTA_REASONING, 0, s, n)))
    return rc;
  if ((agent__json_str(src, "content", &s, &n) || agent__json_str(doc, "response", &s, &n)) &&
      (rc = agent__emit_text(d, AGENT_DELTA_TEXT, 0, s, n)))
    return rc;
  json_t *tcs = json_object_get(src, "tool_calls"), *tc;
  size_t i;
  json_array_foreach(tcs, i, tc) {
    if ((rc = ollama_tool_call(d, tc)) || d->done) return rc;
  }
  if (!json_is_true(json_object_get(doc, "done"))) return 0;
  if (!agent__json_str(doc, "done_reason", &s, &n) || !n) {
    s = "stop";
    n = 4;
  }
  if ((rc = agent__emit_finish(d, 0, s, n))) return rc;
  int64_t in = -1, out = -1;
  agent__json_int(doc, "prompt_eval_count", &in);
  agent__json_int(doc, "eval_count", &out);
  if ((in >= 0 || out >= 0) && (rc = agent__emit_usage(d, in, out))) return rc;
  d->done = true;
  return 0;
}

const agent__wire_ops_t agent__ollama_ops = {
    .ndjson = true,
    .on_event = ollama_event,
};
