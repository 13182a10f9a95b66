/* Tests for streams/group.c: joining and leaving over the protocol (replies and every
 * error), limits, the group's start position, its state in the store while it runs and
 * after the hub and a SQLite store are reopened (pending leases redelivered, position
 * kept), listing and metrics iteration, idle groups leaving memory, delete. Every test
 * runs its own loop and closes it. */
#include <dirent.h>
#include <unistd.h>

#include "streams/helpers.h"

#define TOPIC "acme/jobs"

typedef struct fx {
  env_t e;
  tconn_t t;
  char dir[512];
  char db[600];
} fx_t;

static void tune_common(fx_t *f) {
  f->e.cfg.topic_publish_rate = 0;
  f->e.cfg.publish_rate = 0;
  f->e.cfg.group_ack_wait_ms = 1000;
  f->e.cfg.groups_per_topic = 3;
  f->e.cfg.group_members_max = 2;
  f->e.cfg.group_max_inflight_limit = 50;
  f->e.cfg.max_subs_per_conn = 4;
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  env_config(&f->e);
  tune_common(f);
  env_start(&f->e);
  tconn_open(&f->e, &f->t, "acme", STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f->t.c) stream_conn_free(f->t.c);
  if (f->e.store) env_stop(&f->e);
  if (f->dir[0]) {
    DIR *d = opendir(f->dir);
    if (d) {
      char path[1200];
      for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", f->dir, de->d_name);
        unlink(path);
      }
      closedir(d);
    }
    rmdir(f->dir);
  }
  free(f);
  return 0;
}

static void stop(fx_t *f) {
  if (f->t.c) stream_conn_free(f->t.c);
  f->t.c = NULL;
  env_stop(&f->e);
  f->e.store = NULL;
}

static int send_msg(tconn_t *t, const char *json) { return stream_conn_handle_message(t->c, json, strlen(json)); }

/* Sends json and returns the single reply it produced (after running the loop). */
static json_t *roundtrip(fx_t *f, tconn_t *t, const char *json) {
  assert_int_equal(send_msg(t, json), 0);
  env_run(&f->e);
  json_t *m = drain_all(t);
  if (json_array_size(m) != 1) {
    char *s = json_dumps(m, 0);
    fail_msg("%s: %zu replies: %s", json, json_array_size(m), s);
  }
  json_t *r = json_incref(json_array_get(m, 0));
  json_decref(m);
  return r;
}

static void expect_error(fx_t *f, const char *json, const char *code, const char *message_part) {
  json_t *r = roundtrip(f, &f->t, json);
  assert_string_equal(msg_op(r), "error");
  if (strcmp(msg_s(r, "code"), code) != 0) fail_msg("%s: code %s, want %s", json, msg_s(r, "code"), code);
  if (message_part && !strstr(msg_s(r, "message"), message_part))
    fail_msg("%s: message \"%s\" lacks \"%s\"", json, msg_s(r, "message"), message_part);
  json_decref(r);
}

static void publish_n(fx_t *f, int n) {
  for (int i = 0; i < n; i++) pub_ok(&f->e, TOPIC, "{\"task\":true}");
  env_run(&f->e);
}

static json_t *take(tconn_t *t) {
  json_t *all = drain_all(t), *out = json_array();
  size_t i;
  json_t *m;
  json_array_foreach(all, i, m) if (strcmp(msg_op(m), "ev") == 0 && json_object_get(m, "group")) json_array_append(out, m);
  json_decref(all);
  return out;
}

static void test_sub_with_a_group_replies_with_the_group_s_figures(void **state) {
  fx_t *f = *state;
  publish_n(f, 3);
  json_t *r = roundtrip(f, &f->t, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"summarizers\",\"max_inflight\":5,"
                                  "\"ack_wait_ms\":2500}");
  assert_string_equal(msg_op(r), "subscribed");
  assert_string_equal(msg_s(r, "group"), "summarizers");
  assert_int_equal(msg_u(r, "head"), 3);
  assert_int_equal(msg_u(r, "position"), 3); /* a new group starts live */
  assert_int_equal(msg_u(r, "max_inflight"), 5);
  assert_int_equal(msg_u(r, "ack_wait_ms"), 2500);
  assert_int_equal(msg_u(r, "pending"), 0);
  json_decref(r);
  /* The group's ack_wait is fixed at creation; a second member's choice is ignored. */
  tconn_t b;
  tconn_open(&f->e, &b, "acme", STREAM_SCOPE_SUBSCRIBE);
  r = roundtrip(f, &b, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"summarizers\",\"ack_wait_ms\":9}");
  assert_int_equal(msg_u(r, "ack_wait_ms"), 2500);
  assert_int_equal(msg_u(r, "max_inflight"), 16);
  json_decref(r);
  stream_conn_free(b.c);
  /* The event frame carries the group; ack with a ref gets "acked". */
  publish_n(f, 1);
  json_t *d = take(&f->t);
  assert_int_equal(json_array_size(d), 1);
  assert_int_equal(msg_u(json_array_get(d, 0), "seq"), 4);
  assert_string_equal(msg_s(json_array_get(d, 0), "group"), "summarizers");
  json_decref(d);
  r = roundtrip(f, &f->t, "{\"op\":\"ack\",\"ref\":\"a1\",\"topic\":\"acme/jobs\",\"group\":\"summarizers\",\"seq\":4}");
  assert_string_equal(msg_op(r), "acked");
  assert_string_equal(msg_s(r, "ref"), "a1");
  assert_int_equal(msg_u(r, "seq"), 4);
  json_decref(r);
  /* Without a ref, an ack is silent. */
  publish_n(f, 1);
  json_decref(take(&f->t));
  assert_int_equal(send_msg(&f->t, "{\"op\":\"ack\",\"topic\":\"acme/jobs\",\"group\":\"summarizers\",\"seq\":5}"), 0);
  env_run(&f->e);
  assert_false(stream_conn_pending(f->t.c));
  assert_int_equal(stream_hub_stats(f->e.hub)->group_acks, 2);
}

static void test_a_new_group_may_start_after_a_seq_and_an_existing_one_keeps_its_position(void **state) {
  fx_t *f = *state;
  publish_n(f, 5);
  assert_int_equal(send_msg(&f->t, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"after\":{\"seq\":2}}"), 0);
  env_run(&f->e);
  json_t *d = drain_all(&f->t);
  assert_string_equal(msg_op(json_array_get(d, 0)), "subscribed");
  assert_int_equal(msg_u(json_array_get(d, 0), "position"), 2);
  assert_ev_seqs(d, TOPIC, 3, 5);
  json_decref(d);
  json_t *r;
  tconn_t b;
  tconn_open(&f->e, &b, "acme", STREAM_SCOPE_SUBSCRIBE);
  r = roundtrip(f, &b, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"after\":{\"seq\":0}}");
  assert_int_equal(msg_u(r, "position"), 5);
  assert_int_equal(msg_u(r, "pending"), 3);
  json_decref(r);
  stream_conn_free(b.c);
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"h\",\"after\":{\"seq\":99}}", "bad_request",
               "after.seq: 99 is beyond the head");
}

static void test_protocol_errors_name_the_field(void **state) {
  fx_t *f = *state;
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"no spaces\"}", "bad_request",
               "group: must match");
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":7}", "bad_request", "group: must be a string");
  char big[200];
  snprintf(big, sizeof big, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"%065d\"}", 0);
  expect_error(f, big, "bad_request", "group:");
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"max_inflight\":0}", "bad_request",
               "max_inflight: must be an integer from 1 to 50");
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"max_inflight\":51}", "bad_request",
               "max_inflight");
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"ack_wait_ms\":\"x\"}", "bad_request",
               "ack_wait_ms");
  expect_error(f, "{\"op\":\"ack\",\"topic\":\"acme/jobs\",\"seq\":1}", "bad_request", "group: missing");
  expect_error(f, "{\"op\":\"ack\",\"topic\":\"acme/jobs\",\"group\":\"g\"}", "bad_request", "seq: missing");
  expect_error(f, "{\"op\":\"ack\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"seq\":0}", "bad_request", "seq: must be");
  expect_error(f, "{\"op\":\"ack\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"seq\":1}", "not_found",
               "group: not a member of g");
  expect_error(f, "{\"op\":\"ack\",\"group\":\"g\",\"seq\":1}", "bad_request", "topic: missing");
  json_decref(roundtrip(f, &f->t, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g\"}"));
  expect_error(f, "{\"op\":\"ack\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"seq\":1}", "not_found",
               "seq: 1 is not pending in group g");
  expect_error(f, "{\"op\":\"extend\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"seq\":3}", "not_found", "seq: 3");
  expect_error(f, "{\"op\":\"nack\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"seq\":1,\"delay_ms\":-1}",
               "bad_request", "delay_ms");
  expect_error(f, "{\"op\":\"nack\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"seq\":1,\"delay_ms\":86400001}",
               "bad_request", "delay_ms");
  expect_error(f, "{\"op\":\"unsub\",\"topic\":\"acme/jobs\",\"group\":\"other\"}", "not_found", "group: not a member");
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"other/jobs\",\"group\":\"g\"}", "forbidden", NULL);
  json_t *r = roundtrip(f, &f->t, "{\"op\":\"unsub\",\"topic\":\"acme/jobs\",\"group\":\"g\",\"ref\":\"u\"}");
  assert_string_equal(msg_op(r), "unsubscribed");
  assert_string_equal(msg_s(r, "group"), "g");
  json_decref(r);
}

static void test_limits_on_groups_members_and_subscriptions(void **state) {
  fx_t *f = *state;
  /* groups_per_topic = 3 */
  json_decref(roundtrip(f, &f->t, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g1\"}"));
  json_decref(roundtrip(f, &f->t, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g2\"}"));
  json_decref(roundtrip(f, &f->t, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g3\"}"));
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g4\"}", "too_many_subscriptions",
               "group: topic already has 3 groups");
  /* max_subs_per_conn = 4 counts plain subscriptions and memberships together */
  json_decref(roundtrip(f, &f->t, "{\"op\":\"sub\",\"topic\":\"acme/plain\"}"));
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/other\",\"group\":\"g\"}", "too_many_subscriptions", NULL);
  expect_error(f, "{\"op\":\"sub\",\"topic\":\"acme/more\"}", "too_many_subscriptions", NULL);
  /* Joining again is not another membership. */
  json_t *r = roundtrip(f, &f->t, "{\"op\":\"sub\",\"topic\":\"acme/jobs\",\"group\":\"g1\",\"max_inflight\":3}");
  assert_int_equal(msg_u(r, "max_inflight"), 3);
  json_decref(r);
  /* group_members_max = 2 */
  tconn_t b, c;
  tconn_any(&f->e, &b);
  tconn_any(&f->e, &c);
  stream_group_join_t j = {.group = "g1"};
  stream_err_t err;
  assert_int_equal(stream_conn_group_join(b.c, TOPIC, &j, &err), 0);
  assert_int_equal(stream_conn_group_join(c.c, TOPIC, &j, &err), -EMLINK);
  assert_non_null(strstr(err.message, "g1 already has 2 members"));
  stream_conn_free(b.c);
  stream_conn_free(c.c);
}

typedef struct listed {
  int n;
  stream_group_info_t g[4];
  char names[4][STREAM_GROUP_NAME_MAX + 1];
} listed_t;

static int on_group(void *ud, const stream_group_info_t *g) {
  listed_t *l = ud;
  assert_true(l->n < 4);
  l->g[l->n] = *g;
  snprintf(l->names[l->n], sizeof l->names[0], "%s", g->group);
  l->n++;
  return 0;
}

static void test_list_groups_shows_members_pending_position_and_redeliveries(void **state) {
  fx_t *f = *state;
  tconn_t b;
  tconn_any(&f->e, &b);
  stream_group_join_t j = {.group = "b-workers", .max_inflight = 2};
  stream_err_t err;
  assert_int_equal(stream_conn_group_join(b.c, TOPIC, &j, &err), 0);
  j.group = "a-workers";
  assert_int_equal(stream_conn_group_join(f->t.c, TOPIC, &j, &err), 0);
  assert_int_equal(stream_conn_group_join(b.c, TOPIC, &j, &err), 0);
  publish_n(f, 5);
  json_decref(take(&f->t));
  json_decref(take(&b));
  env_advance_ms(&f->e, 1000);
  assert_int_equal(stream_hub_groups_tick(f->e.hub), 6); /* 4 in a-workers, 2 in b-workers */
  env_run(&f->e);
  listed_t l = {0};
  assert_int_equal(stream_list_groups(f->e.hub, TOPIC, on_group, &l), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.names[0], "a-workers");
  assert_string_equal(l.names[1], "b-workers");
  assert_int_equal(l.g[0].members, 2);
  assert_int_equal(l.g[0].head, 5);
  assert_int_equal(l.g[0].position, 4); /* 2 x max_inflight 2 */
  assert_int_equal(l.g[0].pending, 4);
  assert_int_equal(l.g[0].redeliveries, 4);
  assert_int_equal(l.g[1].members, 1);
  assert_int_equal(l.g[1].position, 2);
  assert_true(l.g[1].loaded);
  listed_t m = {0};
  assert_int_equal(stream_hub_groups_foreach(f->e.hub, on_group, &m), 0);
  assert_int_equal(m.n, 2);
  assert_int_equal(stream_hub_stats(f->e.hub)->groups, 2);
  assert_int_equal(stream_hub_stats(f->e.hub)->group_members, 3);
  /* Everyone leaves; after idle_topic_s the groups leave memory and are listed from the
   * store (no members, the same position and pending count). */
  stream_conn_free(b.c);
  stream_conn_free(f->t.c);
  f->t.c = NULL;
  env_run(&f->e);
  env_advance_ms(&f->e, (int64_t)f->e.cfg.idle_topic_s * 1000);
  stream_hub_groups_tick(f->e.hub);
  assert_int_equal(stream_hub_stats(f->e.hub)->groups, 0);
  assert_int_equal(stream_hub_stats(f->e.hub)->group_pending, 0);
  l = (listed_t){0};
  assert_int_equal(stream_list_groups(f->e.hub, TOPIC, on_group, &l), 0);
  assert_int_equal(l.n, 2);
  assert_false(l.g[0].loaded);
  assert_int_equal(l.g[0].members, 0);
  assert_int_equal(l.g[0].position, 4);
  assert_int_equal(l.g[0].pending, 4);
  assert_int_equal(l.g[0].head, 5);
  assert_int_equal(stream_list_groups(f->e.hub, "Bad/topic", on_group, &l), -EINVAL);
  l = (listed_t){0};
  assert_int_equal(stream_list_groups(f->e.hub, "acme/none", on_group, &l), 0);
  assert_int_equal(l.n, 0);
  /* Delete forgets it: a new group of that name starts live. */
  assert_int_equal(stream_group_delete(f->e.hub, TOPIC, "a-workers"), 0);
  assert_int_equal(stream_group_delete(f->e.hub, TOPIC, "a-workers"), -ENOENT);
  l = (listed_t){0};
  assert_int_equal(stream_list_groups(f->e.hub, TOPIC, on_group, &l), 0);
  assert_int_equal(l.n, 1);
}

static void test_delete_of_a_group_with_members_is_busy(void **state) {
  fx_t *f = *state;
  stream_group_join_t j = {.group = "g"};
  stream_err_t err;
  assert_int_equal(stream_conn_group_join(f->t.c, TOPIC, &j, &err), 0);
  assert_int_equal(stream_group_delete(f->e.hub, TOPIC, "g"), -EBUSY);
  assert_int_equal(stream_conn_group_leave(f->t.c, TOPIC, "g"), 0);
  assert_int_equal(stream_conn_group_leave(f->t.c, TOPIC, "g"), -ENOENT);
  assert_int_equal(stream_group_delete(f->e.hub, TOPIC, "g"), 0); /* never written yet: fine */
  assert_int_equal(stream_group_delete(f->e.hub, TOPIC, "bad name"), -EINVAL);
}

typedef struct stored {
  uint64_t next_seq;
  int leases;
  uint64_t seqs[8];
  uint32_t deliveries[8];
} stored_t;

static int stored_group(void *ud, const store_group_t *g) {
  ((stored_t *)ud)->next_seq = g->next_seq;
  return 0;
}

static int stored_lease(void *ud, const store_group_lease_t *l) {
  stored_t *s = ud;
  if (s->leases < 8) {
    s->seqs[s->leases] = l->seq;
    s->deliveries[s->leases] = l->deliveries;
  }
  s->leases++;
  return 0;
}

static void test_group_state_is_written_while_it_runs(void **state) {
  fx_t *f = *state;
  stream_group_join_t j = {.group = "g", .max_inflight = 3};
  stream_err_t err;
  assert_int_equal(stream_conn_group_join(f->t.c, TOPIC, &j, &err), 0);
  publish_n(f, 5);
  json_decref(take(&f->t));
  assert_int_equal(stream_conn_group_ack(f->t.c, TOPIC, "g", 2, &err), 0);
  env_run(&f->e);
  stored_t s = {0};
  assert_int_equal(store_group_load(f->e.store, TOPIC, "g", stored_group, stored_lease, &s), 0);
  assert_int_equal(s.next_seq, 5); /* 1..4 handed out: 3 first, one more after the ack */
  assert_int_equal(s.leases, 3);
  assert_int_equal(s.seqs[0], 1);
  assert_int_equal(s.seqs[1], 3);
  assert_int_equal(s.seqs[2], 4);
  assert_int_equal(s.deliveries[0], 1);
}

static void test_group_state_survives_reopening_the_hub_and_the_sqlite_store(void **state) {
  fx_t *f = *state;
  /* This test brings its own SQLite store. */
  stop(f);
  const char *base = getenv("COORD_TEST_TMPDIR");
  snprintf(f->dir, sizeof f->dir, "%s/group-XXXXXX", base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->db, sizeof f->db, "%s/streams.db", f->dir);
  store_t *s;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = f->db}, &s), 0);
  env_config(&f->e);
  tune_common(f);
  f->e.cfg.group_max_deliveries = 3;
  env_start_with(&f->e, s);
  tconn_any(&f->e, &f->t);
  stream_group_join_t j = {.group = "g", .max_inflight = 4, .ack_wait_ms = 60000};
  stream_err_t err;
  assert_int_equal(stream_conn_group_join(f->t.c, TOPIC, &j, &err), 0);
  publish_n(f, 6);
  json_t *d = take(&f->t);
  assert_int_equal(json_array_size(d), 4);
  json_decref(d);
  assert_int_equal(stream_conn_group_ack(f->t.c, TOPIC, "g", 1, &err), 0);
  assert_int_equal(stream_conn_group_ack(f->t.c, TOPIC, "g", 3, &err), 0);
  env_run(&f->e);
  d = take(&f->t);
  assert_ev_seqs(d, TOPIC, 5, 6); /* room for two more */
  json_decref(d);
  /* Pending now: 2, 4, 5, 6 (delivered once each), position 6. The member goes, the
   * daemon stops. */
  stop(f);

  assert_int_equal(store_open_sqlite(&(store_options_t){.path = f->db}, &s), 0);
  env_config(&f->e);
  tune_common(f);
  f->e.cfg.group_max_deliveries = 3;
  env_start_with(&f->e, s);
  tconn_any(&f->e, &f->t);
  j.ack_wait_ms = 0;
  j.max_inflight = 10;
  assert_int_equal(stream_conn_group_join(f->t.c, TOPIC, &j, &err), 0);
  env_run(&f->e);
  json_t *all = drain_all(&f->t);
  json_t *sub = json_array_get(all, 0);
  assert_string_equal(msg_op(sub), "subscribed");
  assert_int_equal(msg_u(sub, "position"), 6);
  assert_int_equal(msg_u(sub, "pending"), 4);
  assert_int_equal(msg_u(sub, "ack_wait_ms"), 60000);
  static const uint64_t want[] = {2, 4, 5, 6};
  assert_int_equal(json_array_size(all), 5);
  for (size_t i = 0; i < 4; i++) {
    json_t *m = json_array_get(all, i + 1);
    assert_string_equal(msg_op(m), "ev");
    assert_int_equal(msg_u(m, "seq"), want[i]);
    assert_int_equal(msg_u(m, "redelivered"), 1);
  }
  json_decref(all);
  listed_t l = {0};
  assert_int_equal(stream_list_groups(f->e.hub, TOPIC, on_group, &l), 0);
  assert_int_equal(l.g[0].pending, 4);
  assert_int_equal(l.g[0].redeliveries, 4);
  /* A new event continues from the kept position, not redelivered. */
  publish_n(f, 1);
  d = take(&f->t);
  assert_int_equal(json_array_size(d), 1);
  assert_int_equal(msg_u(json_array_get(d, 0), "seq"), 7);
  assert_null(json_object_get(json_array_get(d, 0), "redelivered"));
  json_decref(d);
}

static void test_redelivered_after_restart_carry_their_delivery_count(void **state) {
  fx_t *f = *state;
  /* The same as above with the frames checked: a restart keeps "redelivered". */
  stop(f);
  const char *base = getenv("COORD_TEST_TMPDIR");
  snprintf(f->dir, sizeof f->dir, "%s/group-XXXXXX", base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->db, sizeof f->db, "%s/streams.db", f->dir);
  for (int run = 0; run < 3; run++) {
    store_t *s;
    assert_int_equal(store_open_sqlite(&(store_options_t){.path = f->db}, &s), 0);
    env_config(&f->e);
    tune_common(f);
    f->e.cfg.group_max_deliveries = 10;
    env_start_with(&f->e, s);
    tconn_any(&f->e, &f->t);
    stream_group_join_t j = {.group = "g"};
    stream_err_t err;
    assert_int_equal(stream_conn_group_join(f->t.c, TOPIC, &j, &err), 0);
    if (run == 0) publish_n(f, 2);
    env_run(&f->e);
    json_t *d = take(&f->t);
    assert_ev_seqs(d, TOPIC, 1, 2);
    for (size_t i = 0; i < 2; i++) {
      json_t *m = json_array_get(d, i);
      if (run == 0) assert_null(json_object_get(m, "redelivered"));
      else assert_int_equal(msg_u(m, "redelivered"), (uint64_t)run);
    }
    json_decref(d);
    stop(f);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_sub_with_a_group_replies_with_the_group_s_figures, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_new_group_may_start_after_a_seq_and_an_existing_one_keeps_its_position, setup, teardown),
      cmocka_unit_test_setup_teardown(test_protocol_errors_name_the_field, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits_on_groups_members_and_subscriptions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_groups_shows_members_pending_position_and_redeliveries, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_delete_of_a_group_with_members_is_busy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_state_is_written_while_it_runs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_state_survives_reopening_the_hub_and_the_sqlite_store, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_redelivered_after_restart_carry_their_delivery_count, setup, teardown),
  };
  return cmocka_run_group_tests_name("streams groups", tests, NULL, NULL);
}
