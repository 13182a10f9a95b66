/* Shared fixtures for the streams unit tests: a loop, a store, a hub with a fake clock,
 * fake transport connections that count wakes, and helpers to pull and parse frames.
 * Header-only (static functions) so every test executable stays self-contained. */
#ifndef STREAMS_TEST_HELPERS_H
#define STREAMS_TEST_HELPERS_H

#define HELPER static __attribute__((unused))

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <uv.h>
#include <unistd.h>

#include "base/mem.h"
#include "internal.h"
#include "streams.h"

typedef struct fake_clock {
  uint64_t mono_us;
  int64_t wall_ms;
} fake_clock_t;

HELPER uint64_t fake_mono(void *ud) { return ((fake_clock_t *)ud)->mono_us; }
HELPER int64_t fake_wall(void *ud) { return ((fake_clock_t *)ud)->wall_ms; }

typedef struct env {
  uv_loop_t loop;
  store_t *store;
  stream_hub_t *hub;
  fake_clock_t clock;
  stream_config_t cfg;
} env_t;

HELPER void env_advance_ms(env_t *e, int64_t ms) {
  e->clock.mono_us += (uint64_t)ms * 1000;
  e->clock.wall_ms += ms;
}

/* The config is e->cfg as the caller left it (call env_config first to get defaults). */
HELPER void env_config(env_t *e) {
  memset(e, 0, sizeof *e);
  stream_config_defaults(&e->cfg);
  e->clock.mono_us = 1000000000;
  e->clock.wall_ms = 1764300000000;
}

HELPER void env_start_with(env_t *e, store_t *store) {
  assert_int_equal(uv_loop_init(&e->loop), 0);
  e->store = store;
  stream_clock_t ck = {.mono_us = fake_mono, .wall_ms = fake_wall, .ud = &e->clock};
  stream_hub_options_t o = {.loop = &e->loop, .store = e->store, .config = &e->cfg, .clock = &ck};
  assert_int_equal(stream_hub_new(&o, &e->hub), 0);
}

HELPER void env_start(env_t *e) {
  store_t *s;
  assert_int_equal(store_open_memory(&s), 0);
  env_start_with(e, s);
}

/* Runs the loop until the hub has nothing left to do. */
HELPER void env_run(env_t *e) { uv_run(&e->loop, UV_RUN_DEFAULT); }

HELPER void env_stop_hub(env_t *e) {
  stream_hub_close(e->hub);
  e->hub = NULL;
  uv_run(&e->loop, UV_RUN_DEFAULT);
}

HELPER void env_stop(env_t *e) {
  if (e->hub) env_stop_hub(e);
  store_close(e->store);
  assert_int_equal(uv_loop_close(&e->loop), 0);
}

/* ---- a SQLite store in a folder of its own ---- */

/* A fresh folder under $COORD_TEST_TMPDIR (set by ctest) or /tmp into dir, and the path
 * of the store's database in it into path. */
HELPER void test_dir_make(char dir[512], char path[600]) {
  const char *base = getenv("COORD_TEST_TMPDIR");
  snprintf(dir, 512, "%s/streams-XXXXXX", base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(dir));
  snprintf(path, 600, "%s/events.db", dir);
}

/* Removes dir with every file in it (the store's database, its log, its parts' files). */
HELPER void test_dir_remove(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *de;
  char file[800];
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    snprintf(file, sizeof file, "%s/%s", dir, de->d_name);
    unlink(file);
  }
  closedir(d);
  assert_int_equal(rmdir(dir), 0);
}

typedef struct sq_env {
  env_t e;
  char dir[512], path[600];
} sq_env_t;

/* Starts x->e, configured by the caller (env_config, then its changes), on a SQLite store
 * in a fresh folder (test_dir_make). */
HELPER void sq_env_start(sq_env_t *x) {
  test_dir_make(x->dir, x->path);
  store_t *s;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = x->path}, &s), 0);
  env_start_with(&x->e, s);
}

HELPER void sq_env_stop(sq_env_t *x) {
  env_stop(&x->e);
  test_dir_remove(x->dir);
}

/* ---- publishing ---- */

typedef struct ack_rec {
  int calls;
  int status;
  uint64_t seq;
  bool duplicate;
  bool ephemeral;
  char epoch[STORE_EPOCH_LEN + 1];
} ack_rec_t;

HELPER void ack_cb(void *ud, int status, const stream_ack_t *ack) {
  ack_rec_t *r = ud;
  r->calls++;
  r->status = status;
  r->seq = ack->seq;
  r->duplicate = ack->duplicate;
  r->ephemeral = ack->ephemeral;
  snprintf(r->epoch, sizeof r->epoch, "%s", ack->epoch ? ack->epoch : "");
}

HELPER int pub_full(env_t *e, const char *topic, const char *id, const char *type, int lane, const char *data,
                    ack_rec_t *rec) {
  stream_event_t ev = {.id = id, .type = type, .lane = lane, .data = data, .data_len = data ? strlen(data) : 0};
  stream_err_t err;
  return stream_publish(e->hub, topic, &ev, rec ? ack_cb : NULL, rec, NULL, &err);
}

HELPER void pub_ok(env_t *e, const char *topic, const char *data) {
  assert_int_equal(pub_full(e, topic, NULL, "t", STREAM_LANE_DATA, data, NULL), 0);
}

/* ---- fake transport connections ---- */

typedef struct tconn {
  stream_conn_t *c;
  int wakes;
} tconn_t;

HELPER void tconn_wake(stream_conn_t *c, void *ud) {
  (void)c;
  ((tconn_t *)ud)->wakes++;
}

HELPER const stream_conn_ops_t tconn_ops = {.wake = tconn_wake};

HELPER void tconn_open(env_t *e, tconn_t *t, const char *tenant, unsigned scopes) {
  memset(t, 0, sizeof *t);
  stream_principal_t who = {.tenant = tenant, .scopes = scopes};
  assert_int_equal(stream_conn_new(e->hub, &tconn_ops, t, &who, &t->c), 0);
}

HELPER void tconn_any(env_t *e, tconn_t *t) {
  tconn_open(e, t, NULL, STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH);
}

HELPER void sub_live(tconn_t *t, const char *topic) {
  stream_position_t pos = {.live = true};
  stream_err_t err;
  assert_int_equal(stream_conn_subscribe(t->c, topic, &pos, &err), 0);
}

HELPER void sub_after(tconn_t *t, const char *topic, const char *epoch, uint64_t seq) {
  stream_position_t pos = {.epoch = epoch, .seq = seq};
  stream_err_t err;
  assert_int_equal(stream_conn_subscribe(t->c, topic, &pos, &err), 0);
}

/* Pulled frames as parsed JSON objects (an array), plus the raw count. */
typedef struct pulled {
  json_t *msgs;
  size_t bytes;
} pulled_t;

HELPER json_t *pull_json(tconn_t *t, size_t max_frames, size_t max_bytes, int *rc_out) {
  stream_frame_t *frames[4096];
  if (max_frames > 4096) max_frames = 4096;
  int n = stream_conn_pull(t->c, frames, max_frames, max_bytes);
  if (rc_out) *rc_out = n;
  json_t *arr = json_array();
  for (int i = 0; i < n; i++) {
    size_t len;
    const unsigned char *p = stream_frame_payload(frames[i], &len);
    json_error_t jerr;
    json_t *v = json_loadb((const char *)p, len, 0, &jerr);
    if (!v) fail_msg("frame is not JSON: %.*s (%s)", (int)len, p, jerr.text);
    json_array_append_new(arr, v);
    stream_frame_unref(&frames[i]);
  }
  return arr;
}

/* Pulls until nothing is pending; returns every message. */
HELPER json_t *drain_all(tconn_t *t) {
  json_t *all = json_array();
  for (int guard = 0; guard < 100000 && stream_conn_pending(t->c); guard++) {
    json_t *a = pull_json(t, 64, 1 << 20, NULL);
    json_array_extend(all, a);
    json_decref(a);
  }
  return all;
}

/* A connection that may do anything (tconn_any), subscribed live to topic, its
 * "subscribed" reply already pulled: the next pull holds events only. */
HELPER void tconn_live(env_t *e, tconn_t *t, const char *topic) {
  tconn_any(e, t);
  sub_live(t, topic);
  json_decref(pull_json(t, 8, 1 << 20, NULL));
}

HELPER const char *msg_op(json_t *m) { return json_string_value(json_object_get(m, "op")); }
HELPER uint64_t msg_u(json_t *m, const char *k) { return (uint64_t)json_integer_value(json_object_get(m, k)); }
HELPER const char *msg_s(json_t *m, const char *k) { return json_string_value(json_object_get(m, k)); }

/* Asserts that the "ev" messages of msgs for topic are exactly seqs from..to in order. */
HELPER void assert_ev_seqs(json_t *msgs, const char *topic, uint64_t from, uint64_t to) {
  uint64_t want = from;
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    if (strcmp(msg_op(m), "ev") != 0 || strcmp(msg_s(m, "topic"), topic) != 0) continue;
    if (msg_u(m, "seq") != want) fail_msg("%s: got seq %llu, want %llu", topic, (unsigned long long)msg_u(m, "seq"),
                                          (unsigned long long)want);
    want++;
  }
  if (want != to + 1) fail_msg("%s: got events up to %llu, want %llu", topic, (unsigned long long)(want - 1),
                               (unsigned long long)to);
}

HELPER size_t count_op(json_t *msgs, const char *op) {
  size_t i, n = 0;
  json_t *m;
  json_array_foreach(msgs, i, m) if (strcmp(msg_op(m), op) == 0) n++;
  return n;
}

#endif
