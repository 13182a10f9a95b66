/* The provider-neutral half of the stream decoders: framing (SSE or NDJSON, chosen by the
 * wire's ops table), JSON parsing of each event, latching of errors, and the helpers that
 * emit deltas. What each provider's events mean is in openai.c, anthropic.c, ollama.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

const char *agent_delta_kind_name(agent_delta_kind_t k) {
  switch (k) {
    case AGENT_DELTA_TEXT: return "text";
    case AGENT_DELTA_REASONING: return "reasoning";
    case AGENT_DELTA_TOOL_CALL: return "tool_call";
    case AGENT_DELTA_USAGE: return "usage";
    case AGENT_DELTA_FINISH: return "finish";
    case AGENT_DELTA_ERROR: return "error";
  }
  return "unknown";
}

void agent__delta_init(agent_delta_t *dl, agent_delta_kind_t kind) {
  memset(dl, 0, sizeof *dl);
  dl->kind = kind;
  dl->text = "";
  dl->in_tokens = -1;
  dl->out_tokens = -1;
}

int agent__emit(agent_decoder_t *d, const agent_delta_t *dl) {
  int rc = d->on_delta(d->ud, dl);
  if (rc < 0) d->failed = rc;
  return rc < 0 ? rc : 0;
}

int agent__emit_text(agent_decoder_t *d, agent_delta_kind_t kind, int choice, const char *s,
                     size_t n) {
  agent_delta_t dl;
  if (!n) return 0;
  agent__delta_init(&dl, kind);
  dl.choice = choice;
  dl.text = s;
  dl.text_len = n;
  return agent__emit(d, &dl);
}

int agent__emit_error(agent_decoder_t *d, agent_err_class_t cls, const char *msg, size_t n) {
  agent_delta_t dl;
  agent__delta_init(&dl, AGENT_DELTA_ERROR);
  dl.err_class = cls;
  dl.text = msg;
  dl.text_len = n;
  d->done = true;
  return agent__emit(d, &dl);
}

int agent__emit_error_doc(agent_decoder_t *d, const json_t *doc, const char *raw, size_t n) {
  agent_err_class_t cls = AGENT_ERR_UNKNOWN;
  const char *msg = NULL;
  size_t mlen = 0;
  if (!agent__error_doc(doc, &cls, &msg, &mlen) || !msg) {
    msg = raw;
    mlen = n;
  }
  return agent__emit_error(d, cls, msg, mlen);
}

/* Framing or parse trouble: the delta stream says so, the push returns code (if any). */
static int dec_protocol_error(agent_decoder_t *d, const char *what, int code) {
  if (!d->done) {
    int rc = agent__emit_error(d, AGENT_ERR_UNKNOWN, what, strlen(what));
    if (rc < 0) return rc;
  }
  return code;
}

static int dec_dispatch(agent_decoder_t *d, const char *type, json_t *doc, const char *data,
                        size_t len, const char *perr) {
  if (d->failed) return d->failed;
  if (d->done) return 0;
  int rc = d->ops->on_event(d, type, doc, data, len, perr);
  return d->failed ? d->failed : rc;
}

/* Once done, the framing callbacks stop the parser (-ECANCELED, never seen by callers) so
 * nothing after the terminal event is even framed: a limit hit there must not surface. */
static int dec_on_sse(void *ud, const agent_sse_event_t *ev) {
  agent_decoder_t *d = ud;
  int rc = agent_decoder_event(d, ev->type, ev->data, ev->data_len);
  return rc ? rc : d->done ? -ECANCELED : 0;
}

static int dec_on_line(void *ud, json_t *doc, const char *line, size_t len, const char *err) {
  agent_decoder_t *d = ud;
  int rc = dec_dispatch(d, NULL, doc, line, len, err);
  return rc ? rc : d->done ? -ECANCELED : 0;
}

int agent_decoder_new(const agent_decoder_opts_t *opts, agent_decoder_t **out) {
  const agent__wire_ops_t *ops;
  if (!opts || !opts->on_delta || !out) return -EINVAL;
  switch (opts->wire) {
    case AGENT_WIRE_OPENAI: ops = &agent__openai_ops; break;
    case AGENT_WIRE_ANTHROPIC: ops = &agent__anthropic_ops; break;
    case AGENT_WIRE_OLLAMA: ops = &agent__ollama_ops; break;
    default: return -EINVAL;
  }
  agent_decoder_t *d = xcalloc(1, sizeof *d);
  d->ops = ops;
  d->on_delta = opts->on_delta;
  d->ud = opts->ud;
  d->last_tool = -1;
  d->in_tokens = -1;
  d->out_tokens = -1;
  int rc;
  if (ops->ndjson) {
    agent_ndjson_opts_t no = {.max_line = opts->max_line, .on_line = dec_on_line, .ud = d};
    rc = agent_ndjson_new(&no, &d->nd);
  } else {
    agent_sse_opts_t so = {
        .max_line = opts->max_line, .max_data = opts->max_data, .on_event = dec_on_sse, .ud = d};
    rc = agent_sse_new(&so, &d->sse);
  }
  if (rc < 0) {
    agent_decoder_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

void agent_decoder_free(agent_decoder_t *d) {
  if (!d) return;
  agent_sse_free(d->sse);
  agent_ndjson_free(d->nd);
  for (size_t i = 0; i < d->ntools; i++) free(d->tools[i].id);
  free(d);
}

static int dec_framing_result(agent_decoder_t *d, int rc, const agent_parse_error_t *pe) {
  if (d->failed) return d->failed;
  if (rc >= 0 || d->done) return 0;
  return dec_protocol_error(d, pe->msg, rc);
}

int agent_decoder_push(agent_decoder_t *d, const void *buf, size_t len) {
  if (d->failed) return d->failed;
  if (d->done) return 0;
  if (d->sse) return dec_framing_result(d, agent_sse_push(d->sse, buf, len), agent_sse_error(d->sse));
  return dec_framing_result(d, agent_ndjson_push(d->nd, buf, len), agent_ndjson_error(d->nd));
}

int agent_decoder_event(agent_decoder_t *d, const char *type, const char *data, size_t len) {
  char perr[200];
  json_t *doc = NULL;
  if (d->failed) return d->failed;
  if (d->done) return 0;
  bool json = agent__json_parse(data, len, 0, &doc, perr, sizeof perr) == 0;
  int rc = dec_dispatch(d, d->ops->ndjson ? NULL : (type ? type : "message"), doc, data, len,
                        json ? NULL : perr);
  json_decref(doc);
  return rc;
}

int agent_decoder_finish(agent_decoder_t *d) {
  if (d->failed) return d->failed;
  if (d->nd && !d->done) {
    int rc = dec_framing_result(d, agent_ndjson_finish(d->nd), agent_ndjson_error(d->nd));
    if (rc < 0) return rc;
  }
  if (d->done || d->finish_seen) return 0;
  static const char msg[] = "stream ended before the response was complete";
  return agent__emit_error(d, AGENT_ERR_NETWORK, msg, sizeof msg - 1);
}

bool agent_decoder_done(const agent_decoder_t *d) { return d->done; }

static const struct {
  const char *raw;
  const char *norm;
} finish_map[] = {
    {"stop", "stop"},           {"end_turn", "stop"},         {"stop_sequence", "stop"},
    {"length", "length"},       {"max_tokens", "length"},     {"tool_calls", "tool_calls"},
    {"tool_use", "tool_calls"}, {"function_call", "tool_calls"},
    {"content_filter", "content_filter"}, {"refusal", "content_filter"},
};

int agent__emit_finish(agent_decoder_t *d, int choice, const char *raw, size_t n) {
  agent_delta_t dl;
  agent__delta_init(&dl, AGENT_DELTA_FINISH);
  dl.choice = choice;
  dl.text = raw;
  dl.text_len = n;
  dl.finish_reason = raw;
  for (size_t i = 0; i < BASE_ARRAY_SIZE(finish_map); i++)
    if (strlen(finish_map[i].raw) == n && memcmp(finish_map[i].raw, raw, n) == 0)
      dl.finish_reason = finish_map[i].norm;
  d->finish_seen = true;
  return agent__emit(d, &dl);
}

int agent__emit_usage(agent_decoder_t *d, int64_t in, int64_t out) {
  agent_delta_t dl;
  agent__delta_init(&dl, AGENT_DELTA_USAGE);
  dl.in_tokens = in;
  dl.out_tokens = out;
  return agent__emit(d, &dl);
}

int agent__protocol_error(agent_decoder_t *d, const char *fmt_what, const char *detail) {
  char msg[300];
  snprintf(msg, sizeof msg, "%s%s%s", fmt_what, detail ? ": " : "", detail ? detail : "");
  return agent__emit_error(d, AGENT_ERR_UNKNOWN, msg, strlen(msg));
}
