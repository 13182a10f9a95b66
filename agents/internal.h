/* Declarations shared inside agents/: byte buffers, UTF-8 and JSON helpers, and the
 * decoder's state and per-provider ops table. Nothing here is public API. */
#ifndef AGENTS_INTERNAL_H
#define AGENTS_INTERNAL_H

#include "agents.h"

/* Growable byte string; p is NUL-terminated whenever cap > 0 (len excludes the NUL). */
typedef struct agent__buf {
  char *p;    /* owned */
  size_t len; /* bytes */
  size_t cap; /* bytes allocated */
} agent__buf_t;

void agent__buf_append(agent__buf_t *b, const void *s, size_t n);
void agent__buf_set(agent__buf_t *b, const void *s, size_t n);
void agent__buf_clear(agent__buf_t *b);
void agent__buf_free(agent__buf_t *b);

/* Appends s to out with every ill-formed UTF-8 sequence replaced by U+FFFD, following the
 * WHATWG "UTF-8 decode" error handling (maximal subparts). Returns whether s was valid. */
bool agent__utf8_valid(const char *s, size_t n);
void agent__utf8_sanitize(const char *s, size_t n, agent__buf_t *out);

/* Parses s as one JSON value after checking its nesting against max_depth (0: default).
 * NUL inside strings is allowed (use json_string_length). Returns 0 with *out owned by the
 * caller, or -EBADMSG with err filled ("line 1 column 7: ..."). */
int agent__json_parse(const char *s, size_t n, size_t max_depth, json_t **out, char *err,
                      size_t errlen);
/* Sets *s and *n to a string member's value; false when absent or not a string. */
bool agent__json_str(const json_t *obj, const char *key, const char **s, size_t *n);
/* Reads an integer member (integers and integral reals); false when absent or not one. */
bool agent__json_int(const json_t *obj, const char *key, int64_t *v);

#define AGENT__MAX_TOOLS 256  /* tool calls tracked per response */
#define AGENT__MAX_BLOCKS 1024 /* Anthropic content blocks tracked per message */

typedef struct agent__wire_ops {
  bool ndjson; /* framing: NDJSON lines instead of SSE events */
  /* One framed event: type is the SSE event type (NULL for NDJSON), doc its JSON (NULL
   * when data is not JSON, perr then says why), data/len the raw payload. */
  int (*on_event)(agent_decoder_t *d, const char *type, json_t *doc, const char *data,
                  size_t len, const char *perr);
} agent__wire_ops_t;

extern const agent__wire_ops_t agent__openai_ops;
extern const agent__wire_ops_t agent__anthropic_ops;
extern const agent__wire_ops_t agent__ollama_ops;

typedef struct agent__tool_slot {
  char *id; /* owned; NULL when the provider gave none */
  int index;
} agent__tool_slot_t;

/* Invariants: exactly one of sse/nd is set, per ops->ndjson. Once done, events are
 * ignored; once failed (<0), every push returns it. */
struct agent_decoder {
  const agent__wire_ops_t *ops;
  agent_delta_cb on_delta;
  void *ud;
  agent_sse_t *sse;   /* owned */
  agent_ndjson_t *nd; /* owned */
  bool done;          /* terminal event or ERROR emitted */
  bool finish_seen;   /* a finish/stop reason arrived */
  int failed;         /* latched negative errno */
  /* OpenAI: id -> index for chunks without "index" */
  agent__tool_slot_t tools[AGENT__MAX_TOOLS];
  size_t ntools;
  int last_tool; /* -1 before the first */
  /* Anthropic: kind of each content block ('t'ext, 'r'easoning, 'u' tool_use, 0 other)
   * and the tool ordinal of tool_use blocks */
  unsigned char block_kind[AGENT__MAX_BLOCKS];
  int block_tool[AGENT__MAX_BLOCKS];
  int64_t in_tokens; /* from message_start, -1 unknown */
  int64_t out_tokens;
};

void agent__delta_init(agent_delta_t *dl, agent_delta_kind_t kind);
/* Sends dl to the callback; latches and returns its error. */
int agent__emit(agent_decoder_t *d, const agent_delta_t *dl);
int agent__emit_text(agent_decoder_t *d, agent_delta_kind_t kind, int choice, const char *s,
                     size_t n);
/* FINISH with the reason normalised (finish_reason) and raw (text); sets finish_seen. */
int agent__emit_finish(agent_decoder_t *d, int choice, const char *raw, size_t n);
int agent__emit_usage(agent_decoder_t *d, int64_t in, int64_t out);
/* ERROR of class unknown for a malformed stream: "<what>: <detail>". */
int agent__protocol_error(agent_decoder_t *d, const char *what, const char *detail);
/* Emits the terminal ERROR delta and marks the decoder done. */
int agent__emit_error(agent_decoder_t *d, agent_err_class_t cls, const char *msg, size_t n);
/* ERROR delta from an error object or body ({"error":...} shapes). */
int agent__emit_error_doc(agent_decoder_t *d, const json_t *doc, const char *raw, size_t n);
/* Parses an error document into class and message (borrowed from doc when possible, else
 * written to buf). Returns false when doc has no error shape. */
bool agent__error_doc(const json_t *doc, agent_err_class_t *cls, const char **msg,
                      size_t *msg_len);

#endif
