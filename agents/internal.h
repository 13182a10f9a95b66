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

/* ---- model calls (client.c, http.c, request.c, mock.c) ---- */

#include <uv.h>

#include "base/map.h"
#include "base/queue.h"

/* A concurrency limit key. Lives in the client's map until the client is freed (keys are
 * few: one per profile). Invariant: running <= max unless max is 0 (unlimited); waiters
 * is empty whenever running < max. */
typedef struct agent__limit {
  base_map_node_t node;
  char *key;            /* owned; the node's key */
  int max;              /* 0: unlimited */
  uint64_t running;
  uint64_t queued;
  base_queue_t waiters; /* agent_call_t.qnode, FIFO */
} agent__limit_t;

typedef enum {
  AGENT__CALL_QUEUED = 0, /* in limit->waiters */
  AGENT__CALL_RUNNING,    /* holds a slot, transport started */
  AGENT__CALL_FINISHED,   /* result fixed; in client->reap, waiting for the reaper */
  AGENT__CALL_DELIVERING, /* on_done is running */
  AGENT__CALL_CLOSING,    /* timers closing; freed by their close callbacks */
} agent__call_state_t;

/* How a call's exchange runs: HTTP on libcurl multi, or the mock on uv timers. */
typedef struct agent__transport_ops {
  /* Starts the exchange; never calls the call's callbacks synchronously. Returns 0, or a
   * negative errno after agent__call_fail() said why (the core then finishes the call). */
  int (*start)(agent_call_t *call);
  /* Stops the exchange and frees its resources. Never called from inside a libcurl
   * callback; idempotent. */
  void (*stop)(agent_call_t *call);
} agent__transport_ops_t;

extern const agent__transport_ops_t agent__http_transport;
extern const agent__transport_ops_t agent__mock_transport;

/* A built HTTP request (request.c): strings owned. */
typedef struct agent__request {
  char *url;
  char *body;      /* JSON, compact */
  size_t body_len; /* bytes */
  char **headers;  /* "Name: value", nheaders entries */
  size_t nheaders;
} agent__request_t;

typedef struct agent__http_call agent__http_call_t; /* http.c */
typedef struct agent__mock agent__mock_t;           /* mock.c */
typedef struct agent__http agent__http_t;           /* http.c: the multi handle and sockets */

/* One call. Invariants: exactly one owner list: limit->waiters (QUEUED), none (RUNNING),
 * client->reap (FINISHED, or cancelled before delivery); always in client->calls until
 * CLOSING. The result fields are written once, by the first agent__call_fail or by a
 * success finish; open_handles counts the timers not yet closed. */
struct agent_call {
  agent_client_t *client;  /* borrowed */
  agent__limit_t *limit;   /* borrowed from the client's map */
  base_queue_t qnode;      /* waiters or reap */
  base_queue_t link;       /* client->calls */
  agent__call_state_t state;
  bool cancelled;          /* no more callbacks */
  bool holds_slot;
  bool started;            /* transport start ran */
  const agent__transport_ops_t *transport;
  agent_provider_t provider;
  agent_call_cbs_t cbs;
  void *ud;                /* borrowed */
  int attempt;             /* from 1 */
  int64_t timeout_ms;      /* resolved; -1 none */
  int64_t idle_timeout_ms; /* resolved; -1 none */
  /* what to ask (copies) */
  char *model;             /* owned; may be NULL for mock */
  char *system;            /* owned; may be NULL */
  json_t *messages;        /* owned: array of {"role","content"}; NULL when input was bad */
  json_t *params;          /* owned object; never NULL */
  char *base_url;          /* owned; NULL: provider config */
  char *api_key_env;       /* owned; NULL: provider config */
  char *input_error;       /* owned: why input/profile was rejected, or NULL */
  /* timers: total, idle (or mock pacing) */
  uv_timer_t t_total;
  uv_timer_t t_idle;
  uv_timer_t t_tick;
  int open_handles;
  uint64_t started_at;     /* uv_now, ms */
  /* output so far */
  agent_tools_t *tools;    /* owned */
  agent__buf_t text;
  agent__buf_t reasoning;
  char finish[32];         /* normalised finish reason, "" when none */
  int64_t in_tokens;
  int64_t out_tokens;
  bool partial;
  /* result */
  bool failed;
  int status;
  agent_err_class_t err_class;
  int http_status;
  int64_t retry_after_ms;
  agent__buf_t message;
  /* transport state */
  agent__http_call_t *http; /* owned by http.c */
  agent__mock_t *mock;      /* owned by mock.c */
};

/* Owned copy of one provider's configuration. */
typedef struct agent__provider_cfg {
  char *base_url;    /* owned; NULL: built-in default */
  char *api_key;     /* owned; may be NULL */
  char *api_key_env; /* owned; may be NULL */
  json_t *headers;   /* owned; may be NULL */
  int concurrency;
} agent__provider_cfg_t;

/* Invariants: open_handles counts the client's own handles (reaper timer, curl pieces)
 * plus every call still allocated; the client is freed when it reaches 0 after
 * agent_client_free. */
struct agent_client {
  uv_loop_t *loop; /* borrowed */
  agent__provider_cfg_t providers[AGENT_PROVIDER_COUNT];
  int64_t connect_timeout_ms;
  int64_t default_timeout_ms;      /* -1 none */
  int64_t default_idle_timeout_ms; /* -1 none */
  size_t max_response_bytes;
  size_t max_error_body;
  size_t max_calls;
  base_map_t limits;   /* agent__limit_t */
  base_queue_t calls;  /* every call not yet closing */
  base_queue_t reap;   /* finished or cancelled calls */
  uv_timer_t reaper;
  agent__http_t *http; /* owned by http.c; NULL until the first HTTP call */
  agent_client_stats_t stats;
  uint64_t ncalls;     /* calls in `calls` */
  int open_handles;
  bool closing;
};

/* Records the call's error (the first one wins) with a printf message. */
void agent__call_fail(agent_call_t *call, int status, agent_err_class_t cls, int http_status,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Ends a running call (success unless failed): stops its timers and hands it to the
 * reaper, which stops the transport and delivers on_done. No-op unless RUNNING. */
void agent__call_finish(agent_call_t *call);
/* One delta from the transport: accumulates and forwards it. Returns 0, or -ECANCELED
 * when the call is no longer running (the transport then stops feeding it). An ERROR
 * delta fails and finishes the call. */
int agent__call_delta(agent_call_t *call, const agent_delta_t *d);
/* Restarts the idle timer (each arrival of bytes). */
void agent__call_touch(agent_call_t *call);
/* Releases one handle of the client (close callbacks); frees a closing client at 0. */
void agent__client_unref(agent_client_t *c);

/* http.c: the client's multi handle (created on first use) and its teardown. */
int agent__http_init(agent_client_t *c);
void agent__http_close(agent_client_t *c);

/* request.c */
/* Input as messages: a string is one user message; an array is checked and copied.
 * Returns 0 or -EINVAL with err ("input[2].role: expected a string"). */
int agent__messages_from_input(const json_t *input, json_t **out, char *err, size_t errlen);
/* The provider's wire, default base URL and default key variable. */
agent_wire_t agent__provider_wire(agent_provider_t p);
/* Builds the HTTP request of call. Returns 0 or -EINVAL with err naming the field. */
int agent__request_build(const agent_call_t *call, agent__request_t *rq, char *err,
                         size_t errlen);
void agent__request_free(agent__request_t *rq);

#endif
