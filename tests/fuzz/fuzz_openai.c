/* Fuzz target for the stream decoders (agents/openai.c first; the first byte's low bits
 * pick OpenAI, Anthropic or Ollama framing and meaning) and the tool-call assembler: no
 * memory errors, an ERROR delta is always the last one, and whole versus split feeding
 * gives the same deltas. */
#include "agents.h"
#include "fuzz_common.h"

typedef struct fz_run {
  fz_str_t out;
  agent_tools_t *tools;
  bool saw_error;
} fz_run_t;

static int on_delta(void *ud, const agent_delta_t *d) {
  fz_run_t *r = ud;
  if (r->saw_error) abort(); /* nothing may follow an ERROR */
  if (d->kind == AGENT_DELTA_ERROR) r->saw_error = true;
  if (!d->text || d->text[d->text_len] != '\0') abort();
  fz_puts(&r->out, agent_delta_kind_name(d->kind));
  fz_putn(&r->out, d->choice);
  fz_putn(&r->out, d->index);
  if (d->tool_id) fz_puts(&r->out, d->tool_id);
  if (d->tool_name) fz_puts(&r->out, d->tool_name);
  fz_put(&r->out, d->text, d->text_len);
  fz_putn(&r->out, (long long)d->in_tokens);
  fz_putn(&r->out, (long long)d->out_tokens);
  if (d->finish_reason) fz_puts(&r->out, d->finish_reason);
  fz_puts(&r->out, agent_err_class_name(d->err_class));
  fz_puts(&r->out, "\n");
  int rc = agent_tools_add(r->tools, d);
  if (rc) fz_putn(&r->out, rc);
  return 0;
}

static void run(const uint8_t *d, size_t n, uint8_t cfg, size_t cut, fz_str_t *out) {
  static const agent_wire_t wires[4] = {AGENT_WIRE_OPENAI, AGENT_WIRE_ANTHROPIC,
                                        AGENT_WIRE_OLLAMA, AGENT_WIRE_OPENAI};
  fz_run_t r = {0};
  if (agent_tools_new(8, 4096, &r.tools) != 0) abort();
  agent_decoder_t *dec;
  agent_decoder_opts_t o = {.wire = wires[cfg & 3], .max_line = (cfg & 4) ? 200 : 0,
                            .on_delta = on_delta, .ud = &r};
  if (agent_decoder_new(&o, &dec) != 0) abort();
  int first = 0, rc;
  if ((rc = agent_decoder_push(dec, d, cut)) && !first) first = rc;
  if ((rc = agent_decoder_push(dec, d + cut, n - cut)) && !first) first = rc;
  if (agent_decoder_finish(dec) != 0) abort();
  if (!agent_decoder_done(dec) && !r.saw_error) {
    /* finished without ERROR: a finish reason must have arrived */
    if (!strstr(r.out.p ? r.out.p : "", "finish")) abort();
  }
  char err[256];
  rc = agent_tools_finish(r.tools, err, sizeof err);
  fz_putn(&r.out, first);
  fz_putn(&r.out, rc);
  for (size_t i = 0; i < agent_tools_count(r.tools); i++) {
    const agent_tool_call_t *c = agent_tools_get(r.tools, i);
    if (c->args[c->args_len] != '\0') abort();
    fz_put(&r.out, c->args, c->args_len);
  }
  agent_decoder_free(dec);
  agent_tools_free(r.tools);
  *out = r.out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t cfg = data[0];
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  fz_str_t whole = {0}, split = {0};
  run(d, n, cfg, 0, &whole);
  run(d, n, cfg, n ? (size_t)(cfg >> 3) * n / 32 : 0, &split);
  fz_same(&whole, &split, "decoder split");
  free(whole.p);
  free(split.p);
  return 0;
}
