/* Fuzz target for the NDJSON parser (agents/ndjson.c): no memory errors, and whole, split
 * and byte-by-byte feeding give the same lines, parses and results. */
#include <jansson.h>

#include "agents.h"
#include "fuzz_common.h"

static int on_line(void *ud, json_t *doc, const char *line, size_t len, const char *err) {
  fz_str_t *s = ud;
  if ((doc == NULL) == (err == NULL)) abort();
  fz_puts(s, doc ? "J " : "B ");
  if (doc) {
    char *t = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (t) fz_puts(s, t);
    free(t);
  } else {
    fz_puts(s, err);
  }
  fz_puts(s, "|");
  fz_put(s, line, len);
  fz_puts(s, "\n");
  return 0;
}

static void run(const uint8_t *d, size_t n, uint8_t cfg, size_t step, size_t cut, fz_str_t *out) {
  agent_ndjson_t *p;
  agent_ndjson_opts_t o = {.max_line = 32 + (cfg & 3) * 300, .max_depth = 1 + (cfg & 28),
                           .on_line = on_line, .ud = out};
  if (agent_ndjson_new(&o, &p) != 0) abort();
  int first = 0;
  size_t at = 0;
  while (at < n) {
    size_t k = step ? step : (at < cut ? cut - at : n - at);
    if (k > n - at) k = n - at;
    int rc = agent_ndjson_push(p, d + at, k);
    if (rc && !first) first = rc;
    at += k;
  }
  int frc = agent_ndjson_finish(p);
  fz_puts(out, "end ");
  fz_putn(out, first);
  fz_putn(out, frc);
  agent_ndjson_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t cfg = data[0];
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  fz_str_t whole = {0}, split = {0}, bytes = {0};
  run(d, n, cfg, 0, n, &whole);
  run(d, n, cfg, 0, n ? (size_t)(cfg >> 5) * n / 8 : 0, &split);
  fz_same(&whole, &split, "ndjson split");
  if (n <= 4096) {
    run(d, n, cfg, 1, 0, &bytes);
    fz_same(&whole, &bytes, "ndjson byte by byte");
  }
  free(whole.p);
  free(split.p);
  free(bytes.p);
  return 0;
}
