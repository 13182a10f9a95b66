/* Fuzz target for the SSE parser (agents/sse.c): any input must parse without a memory
 * error, and feeding it whole, split at a point chosen by the first byte, or byte by byte
 * must give the very same events, comments, pending flag and result. */
#include "agents.h"
#include "fuzz_common.h"

static int on_event(void *ud, const agent_sse_event_t *ev) {
  fz_str_t *s = ud;
  fz_puts(s, "E ");
  fz_puts(s, ev->type);
  fz_puts(s, " ");
  fz_puts(s, ev->last_id);
  fz_puts(s, " ");
  fz_putn(s, (long long)ev->data_len);
  fz_puts(s, ":");
  fz_put(s, ev->data, ev->data_len);
  if (ev->data[ev->data_len] != '\0') abort();
  fz_puts(s, "\n");
  return 0;
}

static void on_comment(void *ud, const char *text, size_t len) {
  fz_puts(ud, "C ");
  fz_put(ud, text, len);
  fz_puts(ud, "\n");
}

static void run(const uint8_t *d, size_t n, uint8_t cfg, size_t step, size_t cut, fz_str_t *out) {
  agent_sse_t *p;
  agent_sse_opts_t o = {.max_line = 64 + (cfg & 3) * 200, .max_data = 128 + (cfg & 12) * 100,
                        .strict = cfg & 16, .on_event = on_event, .on_comment = on_comment,
                        .ud = out};
  if (agent_sse_new(&o, &p) != 0) abort();
  int first = 0;
  size_t at = 0;
  while (at < n) {
    size_t k = step ? step : (at < cut ? cut - at : n - at);
    if (k > n - at) k = n - at;
    int rc = agent_sse_push(p, d + at, k);
    if (rc && !first) first = rc;
    if (first && rc != first) abort();
    at += k;
  }
  bool pending;
  int frc = agent_sse_finish(p, &pending);
  if (frc != first) abort();
  fz_puts(out, pending ? "pending " : "done ");
  fz_putn(out, first);
  fz_puts(out, agent_sse_last_id(p));
  fz_putn(out, (long long)agent_sse_retry_ms(p));
  agent_sse_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t cfg = data[0];
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  fz_str_t whole = {0}, split = {0}, bytes = {0};
  run(d, n, cfg, 0, n, &whole);
  run(d, n, cfg, 0, n ? (size_t)(cfg >> 5) * n / 8 : 0, &split);
  fz_same(&whole, &split, "sse split");
  if (n <= 4096) {
    run(d, n, cfg, 1, 0, &bytes);
    fz_same(&whole, &bytes, "sse byte by byte");
  }
  free(whole.p);
  free(split.p);
  free(bytes.p);
  return 0;
}
