/* Fuzz target for the WebSocket protocol (streams/protocol.c): client messages go through
 * stream_conn_handle_message on a real hub (memory store, own uv loop, fake clock), the
 * loop turns a few times so publishes commit and subscriptions deliver, and every frame
 * is pulled. Invariants: no memory or UB error, no leak, every pulled payload is one
 * JSON object with a string "op", a closed connection stays closed, and the loop closes
 * cleanly (uv_loop_close == 0) once the hub is gone.
 *
 * Input: byte 0 configures the run (limits, principal, second connection, clock step),
 * byte 1 is the separator; the rest is split on the separator into messages. */
#include <errno.h>
#include <jansson.h>
#include <uv.h>

#include "base/log.h"
#include "fuzz_common.h"
#include "streams.h"

#define FZ_CONNS 2
#define FZ_MAX_MESSAGES 64
#define FZ_TURNS 3

typedef struct fz_env {
  uv_loop_t loop;
  store_t *store;
  stream_hub_t *hub;
  uint64_t mono_us;
  int64_t wall_ms;
  stream_conn_t *conns[FZ_CONNS];
  bool closed[FZ_CONNS]; /* handle_message said -ENOBUFS; conn freed */
  int wakes[FZ_CONNS];
  bool verbose; /* FUZZ_VERBOSE set: print the messages and frames (reproducing a crash) */
} fz_env_t;

static uint64_t fz_mono(void *ud) { return ((fz_env_t *)ud)->mono_us; }
static int64_t fz_wall(void *ud) { return ((fz_env_t *)ud)->wall_ms; }

static void fz_wake(stream_conn_t *c, void *ud) {
  (void)c;
  (*(int *)ud)++;
}

static const stream_conn_ops_t fz_ops = {.wake = fz_wake};

static void fz_fail(const char *what, const unsigned char *p, size_t len) {
  fprintf(stderr, "fuzz invariant broken: %s: %.*s\n", what, (int)(len > 400 ? 400 : len), p ? (const char *)p : "");
  abort();
}

/* Pulls everything ready on conn i and checks each payload. */
static void fz_pull_all(fz_env_t *e, int i) {
  stream_conn_t *c = e->conns[i];
  if (!c) return;
  for (int guard = 0; guard < 1000 && stream_conn_pending(c); guard++) {
    stream_frame_t *frames[32];
    int n = stream_conn_pull(c, frames, 32, 1 << 16);
    if (n < 0) {
      if (n != -ENOBUFS || !stream_conn_close_reason(c)) fz_fail("pull error without a close reason", NULL, 0);
      return;
    }
    if (n == 0) fz_fail("pending but pulled nothing", NULL, 0);
    for (int k = 0; k < n; k++) {
      size_t len;
      const unsigned char *p = stream_frame_payload(frames[k], &len);
      json_error_t jerr;
      json_t *v = json_loadb((const char *)p, len, 0, &jerr);
      if (!v) fz_fail("frame is not JSON", p, len);
      if (!json_is_object(v) || !json_is_string(json_object_get(v, "op"))) fz_fail("frame without op", p, len);
      const char *op = stream_frame_op(frames[k]);
      if (!op || strcmp(op, json_string_value(json_object_get(v, "op"))) != 0)
        fz_fail("frame op differs from its payload", p, len);
      if (memchr(p, '\n', len)) fz_fail("frame spans lines (SSE needs one line)", p, len);
      if (e->verbose) fprintf(stderr, "conn %d <- %.*s\n", i, (int)len, (const char *)p);
      json_decref(v);
      stream_frame_unref(&frames[k]);
    }
  }
}

static void fz_turns(fz_env_t *e, int turns, uint32_t step_ms) {
  for (int t = 0; t < turns; t++) {
    e->mono_us += (uint64_t)step_ms * 1000;
    e->wall_ms += step_ms;
    uv_run(&e->loop, UV_RUN_NOWAIT);
    for (int i = 0; i < FZ_CONNS; i++) fz_pull_all(e, i);
  }
}

static void fz_send(fz_env_t *e, int i, const uint8_t *msg, size_t len) {
  if (!e->conns[i]) return;
  if (e->verbose) fprintf(stderr, "conn %d -> %.*s\n", i, (int)len, (const char *)msg);
  int rc = stream_conn_handle_message(e->conns[i], (const char *)msg, len);
  if (rc != 0 && rc != -ENOBUFS) fz_fail("handle_message returned neither 0 nor -ENOBUFS", msg, len);
  if (rc == -ENOBUFS) {
    if (!stream_conn_close_reason(e->conns[i])) fz_fail("-ENOBUFS without a close reason", msg, len);
    /* what the transport does: stop reading, close. A second message must be refused. */
    if (stream_conn_handle_message(e->conns[i], "{\"op\":\"ping\"}", 13) != -ENOBUFS)
      fz_fail("closed connection took another message", msg, len);
    stream_conn_free(e->conns[i]);
    e->conns[i] = NULL;
    e->closed[i] = true;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *devnull; /* logs are formatted (hostile strings reach them) but not shown */
  if (!devnull && (devnull = fopen("/dev/null", "w"))) log_set_stream(devnull);
  if (size < 2) return 0;
  uint8_t cfgb = data[0], sep = data[1];
  const uint8_t *d = data + 2;
  size_t n = size - 2;

  fz_env_t e = {.mono_us = 1000000000, .wall_ms = 1764300000000, .verbose = getenv("FUZZ_VERBOSE") != NULL};
  stream_config_t cfg;
  stream_config_defaults(&cfg);
  if (cfgb & 1) { /* small limits so the edges are reachable */
    cfg.max_message_bytes = 256;
    cfg.max_event_bytes = 96;
    cfg.max_json_depth = 4;
    cfg.max_subs_per_conn = 3;
    cfg.control_queue_max = 8;
    cfg.ring_size = 4;
    cfg.retention_max_events = 6;
    cfg.topic_publish_rate = 2;
    cfg.topic_publish_burst = 3;
    cfg.group_max_inflight = 1;
    cfg.group_max_inflight_limit = 2;
    cfg.group_max_deliveries = 2;
    cfg.groups_per_topic = 2;
    cfg.ephemeral_slots_max = 2;
    cfg.pull_quantum = 2;
  }
  if (uv_loop_init(&e.loop) != 0) abort();
  if (store_open_memory(&e.store) != 0) abort();
  stream_clock_t ck = {.mono_us = fz_mono, .wall_ms = fz_wall, .ud = &e};
  stream_hub_options_t o = {.loop = &e.loop, .store = e.store, .config = &cfg, .clock = &ck};
  if (stream_hub_new(&o, &e.hub) != 0) abort();

  /* conn 0: tenant "acme" (or any tenant) with the scopes of bits 1-2; conn 1: any tenant,
   * all scopes, used when bit 3 is set (odd messages go to it). */
  static const unsigned scope_sets[4] = {STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH, STREAM_SCOPE_SUBSCRIBE,
                                         STREAM_SCOPE_PUBLISH, STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH |
                                                                   STREAM_SCOPE_ADMIN};
  stream_principal_t who0 = {.tenant = (cfgb & 0x40) ? NULL : "acme", .scopes = scope_sets[(cfgb >> 1) & 3]};
  stream_principal_t who1 = {.tenant = NULL, .scopes = scope_sets[3]};
  bool two = (cfgb & 8) != 0;
  if (stream_conn_new(e.hub, &fz_ops, &e.wakes[0], &who0, &e.conns[0]) != 0) abort();
  if (two && stream_conn_new(e.hub, &fz_ops, &e.wakes[1], &who1, &e.conns[1]) != 0) abort();
  uint32_t step_ms = (cfgb & 0x10) ? 40000 : 5; /* big steps expire group leases */

  size_t start = 0, count = 0;
  for (size_t i = 0; i <= n && count < FZ_MAX_MESSAGES; i++) {
    if (i < n && d[i] != sep) continue;
    int target = two && (count & 1) ? 1 : 0;
    fz_send(&e, target, d + start, i - start);
    count++;
    if (!(cfgb & 0x20)) fz_turns(&e, 1, step_ms); /* else all messages land in one turn */
    start = i + 1;
  }
  fz_turns(&e, FZ_TURNS, step_ms);
  if ((cfgb & 0x80) && e.conns[0]) { /* a drain in the middle of whatever is pending */
    stream_hub_drain(e.hub);
    for (int i = 0; i < FZ_CONNS; i++)
      if (e.conns[i] && stream_conn_drain(e.conns[i], 1000) < 0 && !stream_conn_close_reason(e.conns[i]))
        fz_fail("drain failed without a close reason", NULL, 0);
    fz_turns(&e, FZ_TURNS, step_ms);
  }
  stream_hub_groups_tick(e.hub);
  bool more;
  int retention_rc = stream_hub_retention_step(e.hub, &more);
  if (retention_rc != 0 && retention_rc != -EIO) fz_fail("retention step returned an unexpected code", NULL, 0);
  (void)stream_hub_sweep(e.hub);
  fz_turns(&e, 1, step_ms);

  for (int i = 0; i < FZ_CONNS; i++) stream_conn_free(e.conns[i]);
  stream_hub_close(e.hub);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  store_close(e.store);
  if (uv_loop_close(&e.loop) != 0) fz_fail("uv_loop_close failed: a handle was left open", NULL, 0);
  return 0;
}
