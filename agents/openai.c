/* Decoder for OpenAI-compatible chat completions streams (OpenAI, vLLM, llama.cpp, Ollama's
 * /v1 layer, OpenRouter, DeepSeek...): `data: {chunk}` events ending with `data: [DONE]`.
 *
 * Maps choices[].delta.{reasoning_content|reasoning, content, tool_calls[]} and
 * finish_reason, the final usage chunk (stream_options.include_usage), and error objects
 * sent after HTTP 200 ({"error":{...}} chunks, llama.cpp's `error:` events) to deltas.
 * Tool-call fragments carry "index"; servers that omit it are matched by "id", and a
 * fragment with neither continues the previous call. Framing is decoder.c's job. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

/* Resolves the index of a tool-call fragment; -1 when the table is full. */
static int openai_tool_index(agent_decoder_t *d, const json_t *tc, const char *id) {
  json_t *jidx = json_object_get(tc, "index");
  int idx = -1;
  if (json_is_integer(jidx)) {
    json_int_t v = json_integer_value(jidx);
    if (v < 0 || v >= AGENT__MAX_TOOLS) return -1;
    idx = (int)v;
  } else if (id) {
    for (size_t i = 0; i < d->ntools; i++)
      if (d->tools[i].id && strcmp(d->tools[i].id, id) == 0) idx = d->tools[i].index;
    if (idx < 0) {
      int next = 0;
      for (size_t i = 0; i < d->ntools; i++)
        if (d->tools[i].index >= next) next = d->tools[i].index + 1;
      idx = next;
    }
  } else {
    idx = d->last_tool < 0 ? 0 : d->last_tool;
  }
  if (idx >= AGENT__MAX_TOOLS) return -1;
  size_t i;
  for (i = 0; i < d->ntools; i++)
    if (d->tools[i].index == idx) break;
  if (i == d->ntools) {
    if (d->ntools == AGENT__MAX_TOOLS) return -1;
    d->tools[d->ntools].index = idx;
    d->tools[d->ntools].id = NULL;
    d->ntools++;
  }
  if (id && !d->tools[i].id) d->tools[i].id = xstrdup(id);
  d->last_tool = idx;
  return idx;
}

static int openai_tool_call(agent_decoder_t *d, int choice, const json_t *tc) {
  if (!json_is_object(tc)) return 0;
  const char *id = json_string_value(json_object_get(tc, "id"));
  if (id && !*id) id = NULL;
  int idx = openai_tool_index(d, tc, id);
  if (idx < 0) return agent__protocol_error(d, "tool_calls", "too many calls or bad index");
  json_t *fn = json_object_get(tc, "function");
  const char *name = json_string_value(json_object_get(fn, "name"));
  if (name && !*name) name = NULL;
  json_t *args = json_object_get(fn, "arguments");
  char *dumped = NULL;
  agent_delta_t dl;
  agent__delta_init(&dl, AGENT_DELTA_TOOL_CALL);
  dl.choice = choice;
  dl.index = idx;
  dl.tool_id = id;
  dl.tool_name = name;
  if (json_is_string(args)) {
    dl.text = json_string_value(args);
    dl.text_len = json_string_length(args);
  } else if (json_is_object(args)) { /* some servers send the arguments parsed */
    dumped = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    if (dumped) {
      dl.text = dumped;
      dl.text_len = strlen(dumped);
    }
  }
  int rc = 0;
  if (id || name || dl.text_len) rc = agent__emit(d, &dl);
  free(dumped);
  return rc;
}

static int openai_choice(agent_decoder_t *d, const json_t *ch, size_t pos) {
  const char *s;
  size_t n;
  int rc;
  if (!json_is_object(ch)) return 0;
  int64_t ci = (int64_t)pos;
  agent__json_int(ch, "index", &ci);
  if (ci < 0 || ci > 1024) return agent__protocol_error(d, "choices", "bad index");
  json_t *delta = json_object_get(ch, "delta");
  if (json_is_object(delta)) {
    if ((agent__json_str(delta, "reasoning_content", &s, &n) ||
         agent__json_str(delta, "reasoning", &s, &n)) &&
        (rc = agent__emit_text(d, AGENT_DELTA_REASONING, (int)ci, s, n)))
      return rc;
    if (agent__json_str(delta, "content", &s, &n) &&
        (rc = agent__emit_text(d, AGENT_DELTA_TEXT, (int)ci, s, n)))
      return rc;
    json_t *tcs = json_object_get(delta, "tool_calls"), *tc;
    size_t i;
    json_array_foreach(tcs, i, tc) {
      if ((rc = openai_tool_call(d, (int)ci, tc)) || d->done) return rc;
    }
  }
  if (agent__json_str(ch, "finish_reason", &s, &n) && n)
    return agent__emit_finish(d, (int)ci, s, n);
  return 0;
}

static int openai_event(agent_decoder_t *d, const char *type, json_t *doc, const char *data,
                        size_t len, const char *perr) {
  int rc;
  if (type && strcmp(type, "error") == 0) return agent__emit_error_doc(d, doc, data, len);
  if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
    d->done = true;
    return 0;
  }
  if (!doc) return agent__protocol_error(d, "malformed chunk", perr);
  if (!json_is_object(doc)) return agent__protocol_error(d, "malformed chunk", "not an object");
  json_t *err = json_object_get(doc, "error");
  if (err && !json_is_null(err)) return agent__emit_error_doc(d, doc, data, len);
  json_t *choices = json_object_get(doc, "choices"), *ch;
  size_t i;
  json_array_foreach(choices, i, ch) {
    if ((rc = openai_choice(d, ch, i)) || d->done) return rc;
  }
  json_t *usage = json_object_get(doc, "usage");
  if (json_is_object(usage)) {
    int64_t in = -1, out = -1;
    agent__json_int(usage, "prompt_tokens", &in);
    agent__json_int(usage, "completion_tokens", &out);
    if (in >= 0 || out >= 0) return agent__emit_usage(d, in, out);
  }
  return 0;
}

const agent__wire_ops_t agent__openai_ops = {
    .ndjson = false,
    .on_event = openai_event,
};
