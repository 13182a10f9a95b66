/* agents: the wire layer of the model clients, from response bytes to typed deltas.
 *
 * Owns the text/event-stream and NDJSON push parsers, the stream decoders of the three
 * provider dialects (OpenAI-compatible chat completions, Anthropic Messages, Ollama
 * /api/chat) that turn their events into one common delta stream, the tool-call assembler,
 * and the mapping of HTTP failures to error classes and retry delays. It owns no loop, no
 * socket and no libcurl handle: callers push bytes as they arrive and get callbacks
 * synchronously from inside the push. Objects have one owner and one thread; a callback
 * must not free the object that called it. Input is hostile: every size has a limit.
 * Details and the dialect choices: docs/parsers.md.
 *
 * On top of it (last section of this header) sit the model calls: agent_client_t drives
 * libcurl multi on the daemon's libuv loop (or the offline mock provider on uv timers),
 * builds each provider's request, feeds the body to a decoder, and reports deltas and one
 * result per call. Everything there runs on the loop thread. Details: docs/agents.md. */
#ifndef AGENTS_H
#define AGENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define AGENT_WUR __attribute__((warn_unused_result))

/* ---- error classes (what retry policies switch on) ---- */

typedef enum {
  AGENT_ERR_NONE = 0,
  AGENT_ERR_RATE_LIMITED,
  AGENT_ERR_TIMEOUT,
  AGENT_ERR_SERVER,
  AGENT_ERR_NETWORK,
  AGENT_ERR_BAD_REQUEST,
  AGENT_ERR_AUTH,
  AGENT_ERR_CONTENT_FILTER,
  AGENT_ERR_UNKNOWN,
} agent_err_class_t;

/* "none", "rate_limited", "timeout", "server_error", "network", "bad_request", "auth",
 * "content_filter", "unknown". */
const char *agent_err_class_name(agent_err_class_t c);
/* Class of a provider error "type" or "code" string (OpenAI, Anthropic, llama.cpp names;
 * a decimal string is read as an HTTP status). NULL or unrecognised: AGENT_ERR_UNKNOWN. */
agent_err_class_t agent_err_class_from_type(const char *type);
/* Class of an HTTP status: 2xx NONE, 0 NETWORK, 408/504/524 TIMEOUT, 429 RATE_LIMITED,
 * 401/402/403 AUTH, other 4xx BAD_REQUEST, other 5xx (529 too) SERVER, else UNKNOWN. */
agent_err_class_t agent_err_class_from_status(int status);
/* Classifies a failed exchange and the delay the server asked for. retry_after is the
 * Retry-After header value (delta-seconds or any of the three HTTP-date forms),
 * retry_after_ms the retry-after-ms header (milliseconds, may have a fraction); either may
 * be NULL. retry-after-ms wins when both parse. now_ms is the current Unix time in ms (for
 * HTTP-dates; a date in the past gives 0). *retry_ms is -1 when no header parsed.
 * Returns 0, or -EINVAL when an out pointer is NULL. */
int agent_http_classify(int status, const char *retry_after, const char *retry_after_ms,
                        int64_t now_ms, agent_err_class_t *cls, int64_t *retry_ms) AGENT_WUR;
/* Reads an error body (any 4xx/5xx body, or an error chunk): {"error":{"type","code",
 * "message"}}, {"type":"error","error":{...}}, {"error":"text"}, {"code","message"}.
 * *cls from code, then type; *msg (owned by the caller, free()) the message or the body.
 * Returns 0; -EBADMSG when the body is not JSON; -ENOENT when it has no error shape. */
int agent_error_body_parse(const char *body, size_t len, agent_err_class_t *cls,
                           char **msg) AGENT_WUR;

/* Where a parser stopped: code is the negative errno its calls return (0 when fine),
 * line counts line terminators seen before the failure, starting at 1. */
typedef struct agent_parse_error {
  int code;
  uint64_t line;
  char msg[96];
} agent_parse_error_t;

/* ---- text/event-stream (WHATWG HTML "event stream interpretation") ---- */

typedef struct agent_sse agent_sse_t;

/* All pointers are borrowed, valid during the callback only. */
typedef struct agent_sse_event {
  const char *type;    /* event field, or "message"; NUL-terminated */
  const char *data;    /* data lines joined with "\n", NUL-terminated, may hold NUL */
  size_t data_len;     /* bytes */
  const char *last_id; /* the last event ID string after this event, "" when none */
} agent_sse_event_t;

#define AGENT_SSE_DEFAULT_MAX_LINE (256u * 1024u)  /* bytes */
#define AGENT_SSE_DEFAULT_MAX_DATA (1024u * 1024u) /* bytes */

typedef struct agent_sse_opts {
  size_t max_line; /* bytes of one line without its terminator; 0: default */
  size_t max_data; /* bytes of one event's data; 0: default */
  bool strict;     /* no dialects: a llama.cpp `error: {...}` line is then ignored */
  /* Returns 0 to go on; a negative errno stops the push, which returns it. */
  int (*on_event)(void *ud, const agent_sse_event_t *ev);
  /* Optional: text after the ':' of a comment line (keepalives). */
  void (*on_comment)(void *ud, const char *text, size_t len);
  void *ud;
} agent_sse_opts_t;

/* opts is copied; on_event is required (-EINVAL otherwise). */
int agent_sse_new(const agent_sse_opts_t *opts, agent_sse_t **out) AGENT_WUR;
void agent_sse_free(agent_sse_t *p);
/* Feeds bytes; lines may be split anywhere, CRLF included. Returns 0, -EMSGSIZE when a
 * line or an event's data is over its limit, or the callback's error. After an error every
 * push returns it again until agent_sse_finish. */
int agent_sse_push(agent_sse_t *p, const void *buf, size_t len) AGENT_WUR;
/* End of the stream: an unterminated event is discarded, never dispatched; *pending (may
 * be NULL) tells whether there was one (always true after an error). The parser is then ready for a new stream (a
 * reconnect): the last event ID and retry survive, the error is cleared. Returns 0 or the
 * latched error. */
int agent_sse_finish(agent_sse_t *p, bool *pending);
const char *agent_sse_last_id(const agent_sse_t *p); /* for Last-Event-ID; "" if none */
int64_t agent_sse_retry_ms(const agent_sse_t *p);    /* last retry field, -1 if none */
const agent_parse_error_t *agent_sse_error(const agent_sse_t *p);

/* ---- newline-delimited JSON (Ollama) ---- */

typedef struct agent_ndjson agent_ndjson_t;

#define AGENT_NDJSON_DEFAULT_MAX_LINE (1024u * 1024u) /* bytes */
#define AGENT_JSON_DEFAULT_MAX_DEPTH 64u

typedef struct agent_ndjson_opts {
  size_t max_line;  /* bytes of one line, a CR before its LF included; 0: default */
  size_t max_depth; /* JSON nesting limit; 0: default */
  /* One non-blank line: doc is its parse (borrowed), or NULL with err saying why. Returns
   * 0 to go on, or a negative errno that stops the push. */
  int (*on_line)(void *ud, json_t *doc, const char *line, size_t len, const char *err);
  void *ud;
} agent_ndjson_opts_t;

int agent_ndjson_new(const agent_ndjson_opts_t *opts, agent_ndjson_t **out) AGENT_WUR;
void agent_ndjson_free(agent_ndjson_t *p);
/* Same contract as agent_sse_push (LF ends a line, a CR before it is dropped). */
int agent_ndjson_push(agent_ndjson_t *p, const void *buf, size_t len) AGENT_WUR;
/* Delivers a last line that had no newline, then resets for a new stream. */
int agent_ndjson_finish(agent_ndjson_t *p) AGENT_WUR;
const agent_parse_error_t *agent_ndjson_error(const agent_ndjson_t *p);

/* ---- provider stream decoders and the common delta stream ---- */

typedef enum { AGENT_WIRE_OPENAI = 0, AGENT_WIRE_ANTHROPIC, AGENT_WIRE_OLLAMA } agent_wire_t;

typedef enum {
  AGENT_DELTA_TEXT = 0,  /* text */
  AGENT_DELTA_REASONING, /* text (reasoning_content, thinking) */
  AGENT_DELTA_TOOL_CALL, /* index, tool_id/tool_name when known, text = arguments fragment */
  AGENT_DELTA_USAGE,     /* in_tokens, out_tokens */
  AGENT_DELTA_FINISH,    /* finish_reason (normalised), text = the provider's own reason */
  AGENT_DELTA_ERROR,     /* err_class, text = message; always the last delta */
} agent_delta_kind_t;

/* One step of a model's output. Pointers are borrowed, valid during the callback only. */
typedef struct agent_delta {
  agent_delta_kind_t kind;
  int choice;            /* OpenAI choice index; 0 elsewhere */
  int index;             /* TOOL_CALL: the call's index within the response, from 0 */
  const char *text;      /* NUL-terminated, may hold NUL; "" when none */
  size_t text_len;       /* bytes */
  const char *tool_id;   /* TOOL_CALL: NULL unless this fragment carries it */
  const char *tool_name; /* TOOL_CALL: NULL unless this fragment carries it */
  int64_t in_tokens;     /* USAGE: prompt tokens, -1 when unknown */
  int64_t out_tokens;    /* USAGE: completion tokens, -1 when unknown */
  const char *finish_reason; /* FINISH: "stop", "length", "tool_calls", "content_filter"
                                or the provider's value when none of these fits */
  agent_err_class_t err_class; /* ERROR */
} agent_delta_t;

typedef int (*agent_delta_cb)(void *ud, const agent_delta_t *d);

const char *agent_delta_kind_name(agent_delta_kind_t k); /* "text", "reasoning", ... */

typedef struct agent_decoder agent_decoder_t;

typedef struct agent_decoder_opts {
  agent_wire_t wire;
  size_t max_line;       /* framing limits, 0: the parsers' defaults */
  size_t max_data;
  agent_delta_cb on_delta; /* required; a negative return stops the push, which returns it */
  void *ud;
} agent_decoder_opts_t;

int agent_decoder_new(const agent_decoder_opts_t *opts, agent_decoder_t **out) AGENT_WUR;
void agent_decoder_free(agent_decoder_t *d);
/* Feeds bytes of a 2xx response body. A framing error (-EMSGSIZE) or a malformed chunk is
 * also reported as an ERROR delta, so the delta stream alone tells the story. Input after
 * the terminal event ([DONE], message_stop, done:true) or after an ERROR is ignored. */
int agent_decoder_push(agent_decoder_t *d, const void *buf, size_t len) AGENT_WUR;
/* Feeds one already framed event: an SSE event (type may be NULL for "message") or, for
 * Ollama, one NDJSON line. Same results as agent_decoder_push. */
int agent_decoder_event(agent_decoder_t *d, const char *type, const char *data,
                        size_t len) AGENT_WUR;
/* End of the body. A stream that ended before its terminal event gets an ERROR delta of
 * class network ("truncated"), unless the finish reason had already arrived. Returns 0 or
 * the callback's error. */
int agent_decoder_finish(agent_decoder_t *d) AGENT_WUR;
/* Whether the terminal event or an ERROR was seen. */
bool agent_decoder_done(const agent_decoder_t *d);

/* ---- tool-call assembler ---- */

/* A complete call; strings owned by the assembler, args is JSON text ("{}" when empty). */
typedef struct agent_tool_call {
  int index;
  char *id;   /* NULL when the provider gave none (Ollama) */
  char *name; /* NULL until a fragment names it */
  char *args;
  size_t args_len; /* bytes */
} agent_tool_call_t;

typedef struct agent_tools agent_tools_t;

/* max_calls (0: 64) and max_args (bytes per call, 0: 1 MiB) bound what input can grow. */
int agent_tools_new(size_t max_calls, size_t max_args, agent_tools_t **out) AGENT_WUR;
void agent_tools_free(agent_tools_t *t);
/* Accumulates one TOOL_CALL delta (others are ignored) by index; a negative index falls
 * back to tool_id, then to the last call. Returns 0, -E2BIG over max_calls, -EMSGSIZE
 * over max_args. */
int agent_tools_add(agent_tools_t *t, const agent_delta_t *d) AGENT_WUR;
/* Ends assembly: empty arguments become "{}"; each call must have a name and arguments
 * that parse as a JSON object. Returns 0 or -EBADMSG with err (may be NULL) naming the
 * call, e.g. `tool_calls[1].arguments: '}' expected near end of file`. */
int agent_tools_finish(agent_tools_t *t, char *err, size_t errlen) AGENT_WUR;
size_t agent_tools_count(const agent_tools_t *t);
const agent_tool_call_t *agent_tools_get(const agent_tools_t *t, size_t i); /* in order */

/* ---- model calls on the loop (client.c, http.c, request.c, mock.c) ---- */

typedef enum {
  AGENT_PROVIDER_MOCK = 0,  /* offline, deterministic, no HTTP */
  AGENT_PROVIDER_OPENAI,    /* OpenAI-compatible POST {base}/chat/completions (SSE) */
  AGENT_PROVIDER_ANTHROPIC, /* POST {base}/v1/messages (SSE) */
  AGENT_PROVIDER_OLLAMA,    /* POST {base}/api/chat (NDJSON) */
} agent_provider_t;

#define AGENT_PROVIDER_COUNT 4

/* "mock", "openai", "anthropic", "ollama". */
const char *agent_provider_name(agent_provider_t p);
/* Returns 0, or -EINVAL for an unknown name. */
int agent_provider_parse(const char *name, agent_provider_t *out) AGENT_WUR;

/* Daemon-wide settings of one provider. Strings and json are copied by agent_client_new. */
typedef struct agent_provider_config {
  const char *base_url;    /* NULL: https://api.openai.com/v1, https://api.anthropic.com,
                              http://127.0.0.1:11434 */
  const char *api_key;     /* NULL: read from the environment variable below */
  const char *api_key_env; /* NULL: OPENAI_API_KEY, ANTHROPIC_API_KEY, none for ollama */
  const json_t *headers;   /* {name: string} added to every request; may be NULL */
  int concurrency;         /* limit of a limit key whose profile sets none; 0: unlimited */
} agent_provider_config_t;

typedef struct agent_client_config {
  agent_provider_config_t providers[AGENT_PROVIDER_COUNT]; /* indexed by agent_provider_t */
  int64_t connect_timeout_ms;      /* TCP+TLS connect; 0: 10000 */
  int64_t default_timeout_ms;      /* total per call when opts give none; 0: none */
  int64_t default_idle_timeout_ms; /* between body bytes when opts give none; 0: 60000 */
  size_t max_response_bytes;       /* body bytes of one response; 0: 32 MiB */
  size_t max_error_body;           /* bytes of a non-2xx body kept for the message; 0: 64 KiB */
  size_t max_calls;                /* calls running + queued per client; 0: unlimited */
} agent_client_config_t;

/* One agent profile, as the workflow engine resolved it. Borrowed by agent_call_start
 * only: everything is copied. */
typedef struct agent_profile {
  agent_provider_t provider;
  const char *model;       /* required except for mock */
  const char *system;      /* rendered system prompt; NULL or "" for none */
  const json_t *params;    /* object merged into the request body (temperature,
                              max_tokens, ...); mock_* keys configure the mock
                              (docs/agents.md); may be NULL */
  const char *base_url;    /* NULL: the provider config's */
  const char *api_key_env; /* NULL: the provider config's key */
  const char *limit_key;   /* concurrency limit key (e.g. "workflow/profile"); NULL:
                              the provider name */
  int concurrency;         /* limit of limit_key (the last nonzero value given wins);
                              0: the provider config's */
} agent_profile_t;

typedef struct agent_call_opts {
  int64_t timeout_ms;      /* whole call from the moment it leaves the queue; 0: client
                              default; -1: none */
  int64_t idle_timeout_ms; /* longest gap between body bytes (the wait for the first one
                              too); 0: client default; -1: none */
  int attempt;             /* 1-based attempt number (mock failure injection); 0 means 1 */
} agent_call_opts_t;

/* What a call produced. Pointers are borrowed, valid during on_done only. */
typedef struct agent_result {
  int status;                  /* 0, or a negative errno: -ETIMEDOUT (timeout or idle
                                  timeout), -EIO (HTTP error status or error event),
                                  -ECONNREFUSED/-ECONNRESET/-EHOSTUNREACH (network),
                                  -EMSGSIZE (response over a limit), -EBADMSG (tool-call
                                  arguments not a JSON object), -EINVAL (bad profile,
                                  input or params) */
  agent_err_class_t err_class; /* NONE when status is 0; retry policies switch on it */
  int http_status;             /* 0 when no response arrived (network, timeout before
                                  headers); the mock reports 200 or its injected status */
  int64_t retry_after_ms;      /* from Retry-After / retry-after-ms; -1 when none */
  const char *message;         /* "" when status is 0 */
  bool partial;                /* TEXT/REASONING/TOOL_CALL deltas were delivered */
  const char *text;            /* choice 0 TEXT joined; NUL-terminated, may hold NUL */
  size_t text_len;             /* bytes */
  const char *reasoning;       /* choice 0 REASONING joined */
  size_t reasoning_len;        /* bytes */
  const agent_tools_t *tools;  /* assembled tool calls of choice 0 (agent_tools_count/get);
                                  never NULL */
  int64_t in_tokens;           /* -1 when unknown */
  int64_t out_tokens;          /* -1 when unknown */
  const char *finish_reason;   /* normalised ("stop", "length", ...); NULL when none */
  int64_t elapsed_ms;          /* from leaving the queue to the end */
} agent_result_t;

/* Callbacks of one call; they never fire from inside agent_call_start.
 * on_delta (may be NULL) gets TEXT, REASONING, TOOL_CALL, USAGE and FINISH deltas as they
 * arrive (an ERROR is reported by on_done only). on_done (required) fires exactly once,
 * after the last on_delta, unless the call was cancelled. Both may start new calls and
 * cancel any call (this one included, from on_delta); neither may free the client. */
typedef struct agent_call_cbs {
  void (*on_delta)(void *ud, const agent_delta_t *d);
  void (*on_done)(void *ud, const agent_result_t *r);
} agent_call_cbs_t;

typedef struct agent_client agent_client_t;
typedef struct agent_call agent_call_t;

/* Creates a client on loop (borrowed; it must outlive the client). cfg may be NULL (all
 * defaults) and is copied. Returns 0, -EINVAL for a bad config (e.g. headers not an
 * object of strings), or -EIO when libcurl cannot be set up. */
int agent_client_new(uv_loop_t *loop, const agent_client_config_t *cfg,
                     agent_client_t **out) AGENT_WUR;
/* Aborts every running and queued call without calling their callbacks, and starts
 * closing the client's handles; its memory is released from their close callbacks, so
 * run the loop afterwards (uv_run) before uv_loop_close. Not from inside a callback of
 * this client. NULL is a no-op. */
void agent_client_free(agent_client_t *c);

/* Starts a call: input is a JSON string (one user message) or an array of {"role",
 * "content"} messages (borrowed; copied). The call runs at once when its limit key has
 * room, else it waits in FIFO order. Problems with the profile, input or params are not
 * returned here: the call then fails through on_done with class bad_request and a message
 * naming the field, like a 400 from an endpoint. *out (may be NULL when the caller never
 * cancels) stays valid until on_done returns or agent_call_cancel is called.
 * Returns 0; -EINVAL when c, p, input, cbs or cbs->on_done is NULL; -EBUSY when the
 * client already holds max_calls calls. */
int agent_call_start(agent_client_t *c, const agent_profile_t *p, const json_t *input,
                     const agent_call_opts_t *opts, const agent_call_cbs_t *cbs, void *ud,
                     agent_call_t **out) AGENT_WUR;
/* Cancels a queued or running call: the transfer is aborted (the server sees the
 * connection close) and no callback of this call fires after this returns, so the caller
 * may free ud at once. The handle is invalid afterwards. Allowed from any callback of
 * this client; not after on_done of this call has started. */
void agent_call_cancel(agent_call_t *call);

typedef struct agent_client_stats {
  uint64_t running; /* calls holding a concurrency slot */
  uint64_t queued;  /* calls waiting for one */
  uint64_t started; /* calls that left the queue, since creation */
  uint64_t failed;  /* calls that ended with status < 0 (cancels excluded) */
} agent_client_stats_t;

void agent_client_stats(const agent_client_t *c, agent_client_stats_t *st);
/* Running and queued calls of one limit key (0 and 0 when it was never used). */
void agent_client_limit_stats(const agent_client_t *c, const char *limit_key, uint64_t *running,
                              uint64_t *queued);

#endif
