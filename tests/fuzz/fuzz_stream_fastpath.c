/* Differential fuzz target for the fast path of the WebSocket protocol (streams/protocol.c,
 * msgscan.c, the canonical writer of json_text.c): the same client messages go to two
 * twin hubs (memory store, own loop, the same fake clock), through
 * stream_conn_handle_message's fast path (falling back to jansson when it defers) on one
 * and through the jansson path alone on the other. Invariants: both return the same code,
 * and after every message the client of each hub has pulled the same bytes (replies,
 * published events, group deliveries; epochs, random per hub, masked); no memory or UB
 * error, no leak, and both loops close cleanly.
 *
 * Input: byte 0 configures the run (small limits, principal), byte 1 is the separator;
 * the rest is split on the separator into messages. */
#include <errno.h>
#include <uv.h>

#include "base/log.h"
#include "fastpath.h"
#include "fuzz_common.h"
#include "streams.h"

#define FZ_MAX_MESSAGES 64

typedef struct fz_side {
  uv_loop_t loop;
  store_t *store;
  stream_hub_t *hub;
  stream_conn_t *conn; /* NULL once closed */
  uint64_t mono_us;
  int64_t wall_ms;
} fz_side_t;

static uint64_t fz_mono(void *ud) { return ((fz_side_t *)ud)->mono_us; }
static int64_t fz_wall(void *ud) { return ((fz_side_t *)ud)->wall_ms; }
static void fz_wake(stream_conn_t *c, void *ud) { (void)c, (void)ud; }
static const stream_conn_ops_t fz_ops = {.wake = fz_wake};

static void fz_fail(const char *what, const uint8_t *msg, size_t len, const fz_str_t *a, const fz_str_t *b) {
  fprintf(stderr, "fuzz invariant broken: %s\n--- message\n%.*s\n--- fast path\n%.*s\n--- jansson path\n%.*s\n", what,
          (int)(len > 2000 ? 2000 : len), msg ? (const char *)msg : "", a ? (int)a->len : 0, a && a->p ? a->p : "",
          b ? (int)b->len : 0, b && b->p ? b->p : "");
  abort();
}

static void fz_side_open(fz_side_t *s, const stream_config_t *cfg, const stream_principal_t *who) {
  s->mono_us = 1000000000;
  s->wall_ms = 1764300000000;
  if (uv_loop_init(&s->loop) != 0 || store_open_memory(&s->store) != 0) abort();
  stream_clock_t ck = {.mono_us = fz_mono, .wall_ms = fz_wall, .ud = s};
  stream_hub_options_t o = {.loop = &s->loop, .store = s->store, .config = cfg, .clock = &ck};
  if (stream_hub_new(&o, &s->hub) != 0) abort();
  if (stream_conn_new(s->hub, &fz_ops, NULL, who, &s->conn) != 0) abort();
}

static void fz_side_close(fz_side_t *s) {
  stream_conn_free(s->conn);
  stream_hub_close(s->hub);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  store_close(s->store);
  if (uv_loop_close(&s->loop) != 0) fz_fail("uv_loop_close failed: a handle was left open", NULL, 0, NULL, NULL);
}

/* Turns the loop, then appends every pulled payload to out (epoch values masked). */
static void fz_collect(fz_side_t *s, fz_str_t *out) {
  s->mono_us += 5000;
  s->wall_ms += 5;
  uv_run(&s->loop, UV_RUN_NOWAIT);
  if (!s->conn) return;
  for (int guard = 0; guard < 1000 && stream_conn_pending(s->conn); guard++) {
    stream_frame_t *frames[32];
    int n = stream_conn_pull(s->conn, frames, 32, 1 << 16);
    if (n <= 0) {
      fz_puts(out, n == -ENOBUFS ? "<closed>\n" : "<pull error>\n");
      return;
    }
    for (int k = 0; k < n; k++) {
      size_t len;
      const unsigned char *p = stream_frame_payload(frames[k], &len);
      size_t at = out->len;
      fz_put(out, p, len);
      fz_puts(out, "\n");
      for (char *e = out->p + at; (e = strstr(e, "\"epoch\":\"")) != NULL;) {
        e += 9;
        for (int i = 0; i < STORE_EPOCH_LEN && e[i] && e[i] != '"' && e[i] != '\n'; i++) e[i] = 'E';
      }
      stream_frame_unref(&frames[k]);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *devnull;
  if (!devnull && (devnull = fopen("/dev/null", "w"))) log_set_stream(devnull);
  if (size < 2) return 0;
  uint8_t cfgb = data[0], sep = data[1];
  const uint8_t *d = data + 2;
  size_t n = size - 2;

  stream_config_t cfg;
  stream_config_defaults(&cfg);
  /* Commits in the loop turn: with the writer thread, when an ack lands would depend on
   * the thread's timing, and the two sides' bytes after a message could differ. */
  cfg.commit_thread = false;
  if (cfgb & 1) { /* small limits so the edges are reachable */
    cfg.max_message_bytes = 256;
    cfg.max_event_bytes = 96;
    cfg.max_json_depth = 4;
    cfg.control_queue_max = 8;
    cfg.topic_publish_rate = 2;
    cfg.topic_publish_burst = 3;
  }
  stream_principal_t who = {.tenant = (cfgb & 2) ? NULL : "acme",
                            .scopes = (cfgb & 4) ? STREAM_SCOPE_SUBSCRIBE
                                                 : STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH};
  fz_side_t a, b;
  fz_side_open(&a, &cfg, &who);
  fz_side_open(&b, &cfg, &who);
  bool verbose = getenv("FUZZ_VERBOSE") != NULL;

  size_t start = 0, count = 0;
  for (size_t i = 0; i <= n && count < FZ_MAX_MESSAGES && a.conn; i++) {
    if (i < n && d[i] != sep) continue;
    const char *msg = (const char *)d + start;
    size_t len = i - start;
    start = i + 1;
    count++;
    int ra = stream__conn_handle_fast(a.conn, msg, len);
    bool deferred = ra == STREAM_FAST_DEFER;
    if (deferred) ra = stream__conn_handle_slow(a.conn, msg, len);
    int rb = stream__conn_handle_slow(b.conn, msg, len);
    if (verbose) fprintf(stderr, "%s -> %.*s\n", deferred ? "deferred" : "fast", (int)len, msg);
    if (ra != rb) fz_fail("the paths return different codes", (const uint8_t *)msg, len, NULL, NULL);
    if (ra != 0 && ra != -ENOBUFS) fz_fail("handle_message returned neither 0 nor -ENOBUFS", (const uint8_t *)msg, len,
                                           NULL, NULL);
    fz_str_t fa = {0}, fb = {0};
    fz_collect(&a, &fa);
    fz_collect(&b, &fb);
    if (fa.len != fb.len || (fa.len && memcmp(fa.p, fb.p, fa.len) != 0))
      fz_fail("the paths give different bytes", (const uint8_t *)msg, len, &fa, &fb);
    free(fa.p);
    free(fb.p);
    if (ra == -ENOBUFS) { /* what the transport does: close */
      stream_conn_free(a.conn);
      stream_conn_free(b.conn);
      a.conn = b.conn = NULL;
    }
  }
  fz_side_close(&a);
  fz_side_close(&b);
  return 0;
}
