/* The store.h contract as one suite, included by each backend's test file.
 *
 * The including file defines `static int contract_open(store_t **out)` for its backend
 * and then lists CONTRACT_TESTS in its cmocka group; every test here runs unchanged
 * against each backend. Tests of what only a backend has (files, reopening, crashes) live
 * in that backend's test file. A file that defines CONTRACT_HELPERS_ONLY before including it
 * gets the helpers alone (it still defines contract_open, which open_store calls). */
#ifndef TESTS_UNIT_STORE_CONTRACT_H
#define TESTS_UNIT_STORE_CONTRACT_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store.h"

static int contract_open(store_t **out);

#define CONTRACT_HELPER static __attribute__((unused))

/* ---- helpers ---- */

CONTRACT_HELPER store_t *open_store(void) {
  store_t *s = NULL;
  assert_int_equal(contract_open(&s), 0);
  assert_non_null(s);
  return s;
}

CONTRACT_HELPER store_topic_t ensure(store_t *s, const char *name) {
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, name, &t), 0);
  return t;
}

CONTRACT_HELPER store_topic_t get(store_t *s, const char *name) {
  store_topic_t t;
  assert_int_equal(store_topic_get(s, name, &t), 0);
  return t;
}

/* An event whose data is {"n":seq}; text lives in a rotating static buffer. */
CONTRACT_HELPER store_event_t make_event(int64_t topic_id, uint64_t seq, int64_t ts_ms,
                                         const char *id) {
  static char bufs[8][32];
  static unsigned next;
  char *buf = bufs[next++ % 8];
  int n = snprintf(buf, sizeof bufs[0], "{\"n\":%llu}", (unsigned long long)seq);
  return (store_event_t){.topic_id = topic_id,
                         .seq = seq,
                         .ts_ms = ts_ms,
                         .id = id,
                         .type = "msg",
                         .lane = 1,
                         .data = buf,
                         .data_len = (size_t)n};
}

/* Commits seqs from..to of the topic as one batch, event ts = ts_base + seq. */
CONTRACT_HELPER void append_range(store_t *s, int64_t topic_id, uint64_t from, uint64_t to,
                                  int64_t ts_base) {
  assert_int_equal(store_batch_begin(s), 0);
  for (uint64_t seq = from; seq <= to; seq++) {
    store_event_t ev = make_event(topic_id, seq, ts_base + (int64_t)seq, NULL);
    assert_int_equal(store_batch_append(s, &ev), 0);
  }
  assert_int_equal(store_batch_commit(s), 0);
}

typedef struct seqs {
  uint64_t v[256];
  size_t n;
  size_t stop_after; /* 0 = never stop */
} seqs_t;

CONTRACT_HELPER int collect_seq(void *ud, const store_event_t *ev) {
  seqs_t *c = ud;
  assert_true(c->n < sizeof c->v / sizeof c->v[0]);
  c->v[c->n++] = ev->seq;
  return c->stop_after && c->n == c->stop_after ? 42 : 0;
}

CONTRACT_HELPER seqs_t read_all(store_t *s, int64_t topic_id) {
  seqs_t c = {.n = 0};
  assert_int_equal(store_read(s, topic_id, 0, 0, collect_seq, &c), 0);
  return c;
}

/* Asserts the retained events are exactly from..to, ascending. */
CONTRACT_HELPER void assert_events(store_t *s, int64_t topic_id, uint64_t from, uint64_t to) {
  seqs_t c = read_all(s, topic_id);
  assert_int_equal(c.n, to >= from ? to - from + 1 : 0);
  for (size_t i = 0; i < c.n; i++) assert_int_equal(c.v[i], from + i);
}

/* Runs retention slices until done; returns how many slices it took. */
CONTRACT_HELPER int retention_until_done(store_t *s, uint64_t max_events, int64_t min_ts,
                                         int64_t dedupe_min_ts, size_t budget) {
  bool more = true;
  int slices = 0;
  while (more) {
    store_stats_t before, after;
    store_stats_get(s, &before);
    assert_int_equal(store_retention_run(s, max_events, min_ts, dedupe_min_ts, budget, &more), 0);
    store_stats_get(s, &after);
    assert_true(after.events_deleted - before.events_deleted <= budget);
    assert_true(++slices < 1000);
  }
  return slices;
}

/* A read callback that counts the events into *(uint64_t *)ud. */
CONTRACT_HELPER int count_rows(void *ud, const store_event_t *ev) {
  (void)ev;
  (*(uint64_t *)ud)++;
  return 0;
}

/* One event with idempotency key id (may be NULL) in a batch of its own. */
CONTRACT_HELPER void append_keyed(store_t *s, int64_t topic_id, uint64_t seq, int64_t ts, const char *id) {
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t ev = make_event(topic_id, seq, ts, id);
  assert_int_equal(store_batch_append(s, &ev), 0);
  assert_int_equal(store_batch_commit(s), 0);
}


#ifndef CONTRACT_HELPERS_ONLY

/* ---- topics ---- */

static void test_topic_ensure_creates_once_and_returns_the_same_topic_after(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/room");
  assert_int_equal(a.head_seq, 0);
  assert_int_equal(a.first_seq, 1);
  assert_int_equal(strlen(a.epoch), STORE_EPOCH_LEN);
  assert_int_equal(strspn(a.epoch, "0123456789abcdef"), STORE_EPOCH_LEN);
  store_topic_t again = ensure(s, "acme/room");
  assert_int_equal(again.topic_id, a.topic_id);
  assert_string_equal(again.epoch, a.epoch);
  store_topic_t other = ensure(s, "acme/other");
  assert_int_not_equal(other.topic_id, a.topic_id);
  assert_string_not_equal(other.epoch, a.epoch);
  store_close(s);
}

static void test_topic_get_of_an_unknown_topic_is_enoent(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t t;
  assert_int_equal(store_topic_get(s, "acme/none", &t), -ENOENT);
  assert_int_equal(store_topic_reset(s, "acme/none", &t), -ENOENT);
  store_close(s);
}

static void test_topic_calls_reject_missing_or_empty_names(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, NULL, &t), -EINVAL);
  assert_int_equal(store_topic_ensure(s, "", &t), -EINVAL);
  assert_int_equal(store_topic_get(s, "", &t), -EINVAL);
  assert_int_equal(store_topic_ensure(s, "acme/x", NULL), -EINVAL);
  store_close(s);
}

typedef struct names {
  char v[8][32];
  size_t n;
  size_t stop_after;
} names_t;

static int collect_name(void *ud, const char *topic, const store_topic_t *t) {
  names_t *c = ud;
  assert_true(c->n < 8);
  assert_true(t->topic_id > 0);
  snprintf(c->v[c->n++], sizeof c->v[0], "%s", topic);
  return c->stop_after && c->n == c->stop_after ? 7 : 0;
}

static void test_topic_list_yields_names_with_the_prefix_in_name_order_up_to_limit(void **state) {
  (void)state;
  store_t *s = open_store();
  const char *names[] = {"acme/b", "acmf/z", "acme/a/b", "acme", "beta/z", "acme/a", "acme0"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) ensure(s, names[i]);
  names_t c = {.n = 0};
  assert_int_equal(store_topic_list(s, "acme/", NULL, 0, collect_name, &c), 0);
  assert_int_equal(c.n, 3);
  assert_string_equal(c.v[0], "acme/a");
  assert_string_equal(c.v[1], "acme/a/b");
  assert_string_equal(c.v[2], "acme/b");
  c = (names_t){.n = 0};
  assert_int_equal(store_topic_list(s, "acme/", NULL, 2, collect_name, &c), 0);
  assert_int_equal(c.n, 2);
  c = (names_t){.n = 0};
  assert_int_equal(store_topic_list(s, NULL, NULL, 0, collect_name, &c), 0);
  assert_int_equal(c.n, 7);
  assert_string_equal(c.v[0], "acme");
  assert_string_equal(c.v[6], "beta/z");
  c = (names_t){.n = 0, .stop_after = 1};
  assert_int_equal(store_topic_list(s, "acm", NULL, 0, collect_name, &c), 7);
  assert_int_equal(c.n, 1);
  c = (names_t){.n = 0};
  assert_int_equal(store_topic_list(s, "zzz", NULL, 0, collect_name, &c), 0);
  assert_int_equal(c.n, 0);
  /* pages: after the last name of the previous one, still within the prefix */
  c = (names_t){.n = 0};
  assert_int_equal(store_topic_list(s, "acme/", "acme/a", 0, collect_name, &c), 0);
  assert_int_equal(c.n, 2);
  assert_string_equal(c.v[0], "acme/a/b");
  assert_string_equal(c.v[1], "acme/b");
  c = (names_t){.n = 0};
  assert_int_equal(store_topic_list(s, "acme/", "acme/a/b", 1, collect_name, &c), 0);
  assert_int_equal(c.n, 1);
  assert_string_equal(c.v[0], "acme/b");
  c = (names_t){.n = 0};
  assert_int_equal(store_topic_list(s, "acme/", "acme/b", 0, collect_name, &c), 0);
  assert_int_equal(c.n, 0);
  /* an `after` that is not a stored name works too; one below the prefix starts at it */
  c = (names_t){.n = 0};
  assert_int_equal(store_topic_list(s, "acme/", "acme/a/a", 0, collect_name, &c), 0);
  assert_int_equal(c.n, 2);
  assert_string_equal(c.v[0], "acme/a/b");
  c = (names_t){.n = 0};
  assert_int_equal(store_topic_list(s, "acme/", "aaa", 0, collect_name, &c), 0);
  assert_int_equal(c.n, 3);
  store_close(s);
}

static void test_topic_reset_drops_events_and_keys_and_changes_the_epoch(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t t = ensure(s, "acme/r");
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t ev = make_event(t.topic_id, 1, 1000, "k1");
  assert_int_equal(store_batch_append(s, &ev), 0);
  assert_int_equal(store_batch_commit(s), 0);
  append_range(s, t.topic_id, 2, 5, 1000);
  store_topic_t r;
  assert_int_equal(store_topic_reset(s, "acme/r", &r), 0);
  assert_int_equal(r.topic_id, t.topic_id);
  assert_string_not_equal(r.epoch, t.epoch);
  assert_int_equal(r.head_seq, 0);
  assert_int_equal(r.first_seq, 1);
  assert_events(s, t.topic_id, 1, 0);
  uint64_t seq;
  assert_int_equal(store_dedupe_find(s, t.topic_id, "k1", 0, &seq), -ENOENT);
  append_range(s, t.topic_id, 1, 2, 2000); /* seqs restart at 1 in the new epoch */
  assert_events(s, t.topic_id, 1, 2);
  store_close(s);
}

/* ---- batches ---- */

static void test_batch_commit_makes_dense_appends_visible_and_advances_head_once(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a"), b = ensure(s, "acme/b");
  assert_int_equal(store_batch_begin(s), 0);
  for (uint64_t seq = 1; seq <= 3; seq++) {
    store_event_t ev = make_event(a.topic_id, seq, 10, NULL);
    assert_int_equal(store_batch_append(s, &ev), 0);
  }
  store_event_t eb = make_event(b.topic_id, 1, 10, NULL);
  assert_int_equal(store_batch_append(s, &eb), 0);
  assert_int_equal(get(s, "acme/a").head_seq, 0); /* head moves only at commit */
  assert_int_equal(store_batch_commit(s), 0);
  assert_int_equal(get(s, "acme/a").head_seq, 3);
  assert_int_equal(get(s, "acme/a").first_seq, 1);
  assert_int_equal(get(s, "acme/b").head_seq, 1);
  assert_events(s, a.topic_id, 1, 3);
  assert_events(s, b.topic_id, 1, 1);
  store_stats_t st;
  store_stats_get(s, &st);
  assert_int_equal(st.commits, 1);
  assert_int_equal(st.events_appended, 4);
  store_close(s);
}

static void test_batch_with_a_non_dense_seq_is_einval_and_rolled_back_whole(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a"), b = ensure(s, "acme/b");
  append_range(s, a.topic_id, 1, 2, 0);
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t e3 = make_event(a.topic_id, 3, 5, "id3");
  store_event_t eb = make_event(b.topic_id, 1, 5, "idb");
  store_event_t gap = make_event(a.topic_id, 5, 5, NULL);
  assert_int_equal(store_batch_append(s, &e3), 0);
  assert_int_equal(store_batch_append(s, &eb), 0);
  assert_int_equal(store_batch_append(s, &gap), -EINVAL);
  assert_int_equal(store_batch_commit(s), -EBUSY); /* the batch is gone */
  assert_events(s, a.topic_id, 1, 2);
  assert_events(s, b.topic_id, 1, 0);
  assert_int_equal(get(s, "acme/a").head_seq, 2);
  assert_int_equal(get(s, "acme/b").head_seq, 0);
  uint64_t seq;
  assert_int_equal(store_dedupe_find(s, a.topic_id, "id3", 0, &seq), -ENOENT);
  assert_int_equal(store_dedupe_find(s, b.topic_id, "idb", 0, &seq), -ENOENT);
  append_range(s, a.topic_id, 3, 4, 0); /* the store is usable afterwards */
  assert_events(s, a.topic_id, 1, 4);
  store_close(s);
}

static void test_batch_repeating_a_committed_seq_is_einval(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  append_range(s, a.topic_id, 1, 3, 0);
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t dup = make_event(a.topic_id, 3, 0, NULL);
  assert_int_equal(store_batch_append(s, &dup), -EINVAL);
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t zero = make_event(a.topic_id, 0, 0, NULL);
  assert_int_equal(store_batch_append(s, &zero), -EINVAL);
  assert_int_equal(store_batch_begin(s), 0);
  assert_int_equal(store_batch_append(s, NULL), -EINVAL);
  assert_int_equal(store_batch_commit(s), -EBUSY);
  assert_events(s, a.topic_id, 1, 3);
  store_close(s);
}

static void test_batch_append_to_an_unknown_topic_is_enoent_and_rolls_back(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t ok = make_event(a.topic_id, 1, 0, NULL);
  store_event_t bad = make_event(a.topic_id + 100, 1, 0, NULL);
  assert_int_equal(store_batch_append(s, &ok), 0);
  assert_int_equal(store_batch_append(s, &bad), -ENOENT);
  assert_int_equal(store_batch_commit(s), -EBUSY);
  assert_events(s, a.topic_id, 1, 0);
  store_close(s);
}

static void test_batch_misuse_and_writes_inside_a_batch_are_ebusy(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  store_event_t ev = make_event(a.topic_id, 1, 0, NULL);
  assert_int_equal(store_batch_append(s, &ev), -EBUSY);
  assert_int_equal(store_batch_commit(s), -EBUSY);
  store_batch_rollback(s); /* harmless without a batch */
  assert_int_equal(store_batch_begin(s), 0);
  assert_int_equal(store_batch_begin(s), -EBUSY);
  store_topic_t t;
  bool more;
  assert_int_equal(store_topic_ensure(s, "acme/a", &t), 0); /* existing: a lookup */
  assert_int_equal(store_topic_ensure(s, "acme/new", &t), -EBUSY);
  assert_int_equal(store_topic_reset(s, "acme/a", &t), -EBUSY);
  assert_int_equal(store_retention_run(s, 1, 0, 0, 10, &more), -EBUSY);
  assert_int_equal(store_batch_append(s, &ev), 0); /* the batch survived all that */
  assert_int_equal(store_batch_commit(s), 0);
  assert_events(s, a.topic_id, 1, 1);
  store_close(s);
}

static void test_batch_rollback_discards_appends_and_restores_replaced_keys(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t e1 = make_event(a.topic_id, 1, 100, "x");
  assert_int_equal(store_batch_append(s, &e1), 0);
  assert_int_equal(store_batch_commit(s), 0);
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t e2 = make_event(a.topic_id, 2, 200, "x"); /* reuses the key */
  store_event_t e3 = make_event(a.topic_id, 3, 200, "y");
  store_event_t e4 = make_event(a.topic_id, 4, 300, "x"); /* and again */
  assert_int_equal(store_batch_append(s, &e2), 0);
  assert_int_equal(store_batch_append(s, &e3), 0);
  assert_int_equal(store_batch_append(s, &e4), 0);
  store_batch_rollback(s);
  uint64_t seq = 0;
  assert_int_equal(store_dedupe_find(s, a.topic_id, "x", 0, &seq), 0);
  assert_int_equal(seq, 1);
  assert_int_equal(store_dedupe_find(s, a.topic_id, "x", 101, &seq), -ENOENT);
  assert_int_equal(store_dedupe_find(s, a.topic_id, "y", 0, &seq), -ENOENT);
  assert_events(s, a.topic_id, 1, 1);
  append_range(s, a.topic_id, 2, 2, 0);
  store_stats_t st;
  store_stats_get(s, &st);
  assert_int_equal(st.commits, 2);
  assert_int_equal(st.events_appended, 2);
  store_close(s);
}

static void test_batch_appends_are_readable_inside_the_batch_before_head_moves(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  append_range(s, a.topic_id, 1, 2, 0);
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t e3 = make_event(a.topic_id, 3, 50, "k3");
  assert_int_equal(store_batch_append(s, &e3), 0);
  assert_events(s, a.topic_id, 1, 3);
  uint64_t seq = 0;
  assert_int_equal(store_dedupe_find(s, a.topic_id, "k3", 0, &seq), 0);
  assert_int_equal(seq, 3);
  assert_int_equal(get(s, "acme/a").head_seq, 2);
  store_batch_rollback(s);
  assert_events(s, a.topic_id, 1, 2);
  store_close(s);
}

/* ---- reads ---- */

static int check_fields(void *ud, const store_event_t *ev) {
  int *calls = ud;
  (*calls)++;
  if (ev->seq == 1) {
    assert_string_equal(ev->id, "key-1");
    assert_string_equal(ev->type, "delta");
    assert_int_equal(ev->lane, 2);
    assert_int_equal(ev->ts_ms, 1700000000123);
    assert_int_equal(ev->data_len, 13);
    assert_memory_equal(ev->data, "{\"t\":\"h\\u00e9\"}", 13);
  } else {
    assert_null(ev->id);
    assert_null(ev->type);
    assert_null(ev->data);
    assert_int_equal(ev->data_len, 0);
  }
  return 0;
}

static void test_read_round_trips_every_field_and_nulls(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  const char data[] = "{\"t\":\"h\\u00e9\"}trailing bytes not part of the event";
  store_event_t e1 = {.topic_id = a.topic_id,
                      .seq = 1,
                      .ts_ms = 1700000000123,
                      .id = "key-1",
                      .type = "delta",
                      .lane = 2,
                      .data = data,
                      .data_len = 13};
  store_event_t e2 = {.topic_id = a.topic_id, .seq = 2};
  assert_int_equal(store_batch_begin(s), 0);
  assert_int_equal(store_batch_append(s, &e1), 0);
  assert_int_equal(store_batch_append(s, &e2), 0);
  assert_int_equal(store_batch_commit(s), 0);
  int calls = 0;
  assert_int_equal(store_read(s, a.topic_id, 0, 0, check_fields, &calls), 0);
  assert_int_equal(calls, 2);
  store_close(s);
}

static void test_read_yields_events_after_seq_up_to_limit_in_order(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a"), b = ensure(s, "acme/b");
  append_range(s, a.topic_id, 1, 10, 0);
  append_range(s, b.topic_id, 1, 3, 0);
  seqs_t c = {.n = 0};
  assert_int_equal(store_read(s, a.topic_id, 3, 4, collect_seq, &c), 0);
  assert_int_equal(c.n, 4);
  for (size_t i = 0; i < 4; i++) assert_int_equal(c.v[i], 4 + i);
  c = (seqs_t){.n = 0};
  assert_int_equal(store_read(s, a.topic_id, 8, 0, collect_seq, &c), 0);
  assert_int_equal(c.n, 2);
  c = (seqs_t){.n = 0};
  assert_int_equal(store_read(s, a.topic_id, 10, 0, collect_seq, &c), 0);
  assert_int_equal(c.n, 0);
  c = (seqs_t){.n = 0};
  assert_int_equal(store_read(s, a.topic_id, 999, 5, collect_seq, &c), 0);
  assert_int_equal(c.n, 0);
  assert_events(s, b.topic_id, 1, 3);
  store_close(s);
}

static void test_read_stops_early_and_returns_the_callbacks_value(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  append_range(s, a.topic_id, 1, 10, 0);
  seqs_t c = {.n = 0, .stop_after = 3};
  assert_int_equal(store_read(s, a.topic_id, 0, 0, collect_seq, &c), 42);
  assert_int_equal(c.n, 3);
  /* The store is usable after an early stop: a second read starts afresh. */
  c = (seqs_t){.n = 0};
  assert_int_equal(store_read(s, a.topic_id, 7, 0, collect_seq, &c), 0);
  assert_int_equal(c.n, 3);
  store_close(s);
}

static void test_read_of_an_unknown_topic_is_enoent(void **state) {
  (void)state;
  store_t *s = open_store();
  seqs_t c = {.n = 0};
  assert_int_equal(store_read(s, 12345, 0, 0, collect_seq, &c), -ENOENT);
  store_close(s);
}

/* ---- dedupe ---- */

static void test_dedupe_find_honours_topic_and_time_window(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a"), b = ensure(s, "acme/b");
  append_keyed(s, a.topic_id, 1, 1000, "k1");
  append_keyed(s, a.topic_id, 2, 2000, "k2");
  uint64_t seq = 0;
  assert_int_equal(store_dedupe_find(s, a.topic_id, "k2", 2000, &seq), 0);
  assert_int_equal(seq, 2);
  assert_int_equal(store_dedupe_find(s, a.topic_id, "k1", 1000, &seq), 0);
  assert_int_equal(seq, 1);
  assert_int_equal(store_dedupe_find(s, a.topic_id, "k1", 1001, &seq), -ENOENT);
  assert_int_equal(store_dedupe_find(s, b.topic_id, "k1", 0, &seq), -ENOENT);
  assert_int_equal(store_dedupe_find(s, a.topic_id, "k3", 0, &seq), -ENOENT);
  store_close(s);
}

typedef struct keys {
  uint64_t seq_sum;
  int64_t ts_sum;
  size_t n;
} keys_t;

static int collect_key(void *ud, const char *id, uint64_t seq, int64_t ts_ms) {
  keys_t *k = ud;
  assert_int_equal(id[0], 'k');
  assert_int_equal((uint64_t)atoi(id + 1), seq);
  k->seq_sum += seq;
  k->ts_sum += ts_ms;
  k->n++;
  return 0;
}

static void test_dedupe_list_yields_the_keys_inside_the_window(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a"), b = ensure(s, "acme/b");
  char id[16];
  for (uint64_t seq = 1; seq <= 50; seq++) {
    snprintf(id, sizeof id, "k%llu", (unsigned long long)seq);
    append_keyed(s, a.topic_id, seq, 1000 + (int64_t)seq, id);
  }
  append_keyed(s, b.topic_id, 1, 5000, "k1");
  keys_t k = {0};
  assert_int_equal(store_dedupe_list(s, a.topic_id, 1041, collect_key, &k), 0);
  assert_int_equal(k.n, 10);
  assert_int_equal(k.seq_sum, 41 + 42 + 43 + 44 + 45 + 46 + 47 + 48 + 49 + 50);
  k = (keys_t){0};
  assert_int_equal(store_dedupe_list(s, a.topic_id, 0, collect_key, &k), 0);
  assert_int_equal(k.n, 50);
  k = (keys_t){0};
  assert_int_equal(store_dedupe_list(s, b.topic_id, 0, collect_key, &k), 0);
  assert_int_equal(k.n, 1);
  assert_int_equal(k.ts_sum, 5000);
  store_close(s);
}

/* ---- retention ---- */

static void test_retention_by_count_works_in_slices_and_keeps_the_newest(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a"), b = ensure(s, "acme/b"), c = ensure(s, "acme/c");
  append_range(s, a.topic_id, 1, 25, 0);
  append_range(s, b.topic_id, 1, 12, 0);
  append_range(s, c.topic_id, 1, 3, 0);
  int slices = retention_until_done(s, 5, 0, 0, 7);
  assert_true(slices >= 4); /* 27 rows at 7 per slice */
  store_stats_t st;
  store_stats_get(s, &st);
  assert_int_equal(st.events_deleted, 20 + 7);
  assert_events(s, a.topic_id, 21, 25);
  assert_events(s, b.topic_id, 8, 12);
  assert_events(s, c.topic_id, 1, 3);
  assert_int_equal(get(s, "acme/a").first_seq, 21);
  assert_int_equal(get(s, "acme/a").head_seq, 25);
  assert_int_equal(get(s, "acme/b").first_seq, 8);
  assert_int_equal(get(s, "acme/c").first_seq, 1);
  /* A second pass finds nothing to do and says so at once. */
  assert_int_equal(retention_until_done(s, 5, 0, 0, 7), 1);
  store_stats_get(s, &st);
  assert_int_equal(st.events_deleted, 27);
  store_close(s);
}

static void test_retention_examines_at_most_budget_topics_per_slice(void **state) {
  (void)state;
  store_t *s = open_store();
  char name[32];
  for (int i = 0; i < 10; i++) {
    snprintf(name, sizeof name, "acme/t%d", i);
    store_topic_t t = ensure(s, name);
    append_range(s, t.topic_id, 1, 2, 0);
  }
  /* Nothing to delete: 10 topics at 3 a slice take 4 slices, the last one saying done. */
  assert_int_equal(retention_until_done(s, 5, 0, 0, 3), 4);
  assert_true(retention_until_done(s, 1, 0, 0, 3) >= 4);
  for (int i = 0; i < 10; i++) {
    snprintf(name, sizeof name, "acme/t%d", i);
    assert_int_equal(get(s, name).first_seq, 2);
  }
  store_stats_t st;
  store_stats_get(s, &st);
  assert_int_equal(st.events_deleted, 10);
  store_close(s);
}

static void test_retention_by_age_deletes_only_the_old_prefix_without_holes(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a"), b = ensure(s, "acme/b");
  append_range(s, a.topic_id, 1, 10, 1000); /* ts 1001..1010 */
  /* b's clock stepped back: seq 3 is old again but must stay, as seq 2 is new. */
  append_keyed(s, b.topic_id, 1, 1001, NULL);
  append_keyed(s, b.topic_id, 2, 2000, NULL);
  append_keyed(s, b.topic_id, 3, 1002, NULL);
  assert_true(retention_until_done(s, 0, 1006, 0, 2) >= 3);
  assert_events(s, a.topic_id, 6, 10);
  assert_events(s, b.topic_id, 2, 3);
  assert_int_equal(get(s, "acme/a").first_seq, 6);
  assert_int_equal(get(s, "acme/b").first_seq, 2);
  store_close(s);
}

static void test_retention_by_count_and_age_applies_the_stricter(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  append_range(s, a.topic_id, 1, 20, 1000);
  retention_until_done(s, 15, 1003, 0, 100); /* count keeps 6.., age keeps 3.. */
  assert_events(s, a.topic_id, 6, 20);
  retention_until_done(s, 15, 1010, 0, 100); /* now age is stricter: keeps 10.. */
  assert_events(s, a.topic_id, 10, 20);
  store_close(s);
}

static void test_retention_may_delete_every_event_but_head_seq_stays(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  append_range(s, a.topic_id, 1, 9, 1000);
  retention_until_done(s, 0, 5000, 0, 4);
  assert_events(s, a.topic_id, 1, 0);
  store_topic_t t = get(s, "acme/a");
  assert_int_equal(t.head_seq, 9);
  assert_int_equal(t.first_seq, 10);
  assert_string_equal(t.epoch, a.epoch);
  append_range(s, a.topic_id, 10, 11, 9000); /* seqs continue after the head */
  assert_events(s, a.topic_id, 10, 11);
  store_close(s);
}

static void test_retention_forgets_old_idempotency_keys_in_slices(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a"), b = ensure(s, "acme/b");
  char id[16];
  for (uint64_t seq = 1; seq <= 10; seq++) {
    snprintf(id, sizeof id, "k%llu", (unsigned long long)seq);
    append_keyed(s, a.topic_id, seq, 100 * (int64_t)seq, id);
    append_keyed(s, b.topic_id, seq, 100 * (int64_t)seq, id);
  }
  assert_true(retention_until_done(s, 0, 0, 801, 4) >= 4); /* 16 keys at 4 a slice */
  keys_t k = {0};
  assert_int_equal(store_dedupe_list(s, a.topic_id, 0, collect_key, &k), 0);
  assert_int_equal(k.n, 2);
  assert_int_equal(k.seq_sum, 9 + 10);
  uint64_t seq;
  assert_int_equal(store_dedupe_find(s, b.topic_id, "k8", 0, &seq), -ENOENT);
  assert_int_equal(store_dedupe_find(s, b.topic_id, "k9", 0, &seq), 0);
  assert_events(s, a.topic_id, 1, 10); /* events are untouched by the key window */
  store_stats_t st;
  store_stats_get(s, &st);
  assert_int_equal(st.events_deleted, 0);
  store_close(s);
}

static void test_retention_rejects_a_zero_budget(void **state) {
  (void)state;
  store_t *s = open_store();
  bool more;
  assert_int_equal(store_retention_run(s, 1, 0, 0, 0, &more), -EINVAL);
  assert_int_equal(store_retention_run(s, 1, 0, 0, 1, NULL), -EINVAL);
  store_close(s);
}

#define CONTRACT_TESTS                                                                          \
  cmocka_unit_test(test_topic_ensure_creates_once_and_returns_the_same_topic_after),            \
      cmocka_unit_test(test_topic_get_of_an_unknown_topic_is_enoent),                           \
      cmocka_unit_test(test_topic_calls_reject_missing_or_empty_names),                         \
      cmocka_unit_test(test_topic_list_yields_names_with_the_prefix_in_name_order_up_to_limit), \
      cmocka_unit_test(test_topic_reset_drops_events_and_keys_and_changes_the_epoch),           \
      cmocka_unit_test(test_batch_commit_makes_dense_appends_visible_and_advances_head_once),   \
      cmocka_unit_test(test_batch_with_a_non_dense_seq_is_einval_and_rolled_back_whole),        \
      cmocka_unit_test(test_batch_repeating_a_committed_seq_is_einval),                         \
      cmocka_unit_test(test_batch_append_to_an_unknown_topic_is_enoent_and_rolls_back),         \
      cmocka_unit_test(test_batch_misuse_and_writes_inside_a_batch_are_ebusy),                  \
      cmocka_unit_test(test_batch_rollback_discards_appends_and_restores_replaced_keys),        \
      cmocka_unit_test(test_batch_appends_are_readable_inside_the_batch_before_head_moves),     \
      cmocka_unit_test(test_read_round_trips_every_field_and_nulls),                            \
      cmocka_unit_test(test_read_yields_events_after_seq_up_to_limit_in_order),                 \
      cmocka_unit_test(test_read_stops_early_and_returns_the_callbacks_value),                  \
      cmocka_unit_test(test_read_of_an_unknown_topic_is_enoent),                                \
      cmocka_unit_test(test_dedupe_find_honours_topic_and_time_window),                         \
      cmocka_unit_test(test_dedupe_list_yields_the_keys_inside_the_window),                     \
      cmocka_unit_test(test_retention_by_count_works_in_slices_and_keeps_the_newest),           \
      cmocka_unit_test(test_retention_examines_at_most_budget_topics_per_slice),                \
      cmocka_unit_test(test_retention_by_age_deletes_only_the_old_prefix_without_holes),        \
      cmocka_unit_test(test_retention_by_count_and_age_applies_the_stricter),                   \
      cmocka_unit_test(test_retention_may_delete_every_event_but_head_seq_stays),               \
      cmocka_unit_test(test_retention_forgets_old_idempotency_keys_in_slices),                  \
      cmocka_unit_test(test_retention_rejects_a_zero_budget)

#endif /* CONTRACT_HELPERS_ONLY */
#endif
