/* Tests for the SQLite store's topic calls that streams makes from its event loop while
 * the commit thread writes: a topic reserved at once and created by the batch that names
 * it (store_topic_reserve, store_batch_write_topics), and the lookups that read what is
 * committed instead of waiting for the other thread (store_topic_lookup,
 * store_dedupe_list, store_topic_list). Each test's files live in a fresh folder under
 * $COORD_TEST_TMPDIR (set by ctest) or /tmp. */
#include <pthread.h>
#include <time.h>

#include "base/log.h"
#define CONTRACT_HELPERS_ONLY
#include "store/contract.h"
#define DBDIR_PREFIX "topics"
#include "store/dbdir.h"
#include "internal.h"
#include "sqlite_events.h" /* sq_store_t: the reader's lock a settle holds */
#include "store/hold.h"   /* after sqlite_events.h: reader_hold_t */

static int contract_open(store_t **out) {
  const store_options_t opts = {.path = test_db};
  return store_open_sqlite(&opts, out);
}

static void test_a_reserved_topic_exists_once_the_batch_naming_it_commits(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t old = ensure(s, "acme/old");
  store_topic_t r;
  assert_int_equal(store_topic_reserve(s, &r), 0);
  assert_true(r.topic_id > old.topic_id);
  assert_int_equal(strlen(r.epoch), STORE_EPOCH_LEN);
  assert_int_equal(r.head_seq, 0);
  assert_int_equal(r.first_seq, 1);
  store_topic_t t;
  assert_int_equal(store_topic_get(s, "acme/new", &t), -ENOENT); /* nothing written yet */
  const store_new_topic_t top = {.name = "acme/new", .topic_id = r.topic_id, .epoch = r.epoch};
  store_event_t evs[2] = {make_event(r.topic_id, 1, 1000, NULL), make_event(old.topic_id, 1, 1000, NULL)};
  assert_int_equal(store_batch_write_topics(s, &top, 1, evs, 2), 0);
  t = get(s, "acme/new");
  assert_int_equal(t.topic_id, r.topic_id);
  assert_string_equal(t.epoch, r.epoch);
  assert_int_equal(t.head_seq, 1);
  assert_events(s, r.topic_id, 1, 1);
  /* A row alone, no event. */
  store_topic_t r2;
  assert_int_equal(store_topic_reserve(s, &r2), 0);
  assert_int_equal(r2.topic_id, r.topic_id + 1);
  const store_new_topic_t top2 = {.name = "acme/quiet", .topic_id = r2.topic_id, .epoch = r2.epoch};
  assert_int_equal(store_batch_write_topics(s, &top2, 1, NULL, 0), 0);
  assert_int_equal(get(s, "acme/quiet").topic_id, r2.topic_id);
  /* Ids go on above every row after a reopen, and store_topic_ensure takes from them too:
   * a reserved id is never handed out twice. */
  store_topic_t r3;
  assert_int_equal(store_topic_reserve(s, &r3), 0); /* reserved, never written */
  store_close(s);
  s = open_store();
  store_topic_t e = ensure(s, "acme/after");
  assert_int_equal(e.topic_id, r2.topic_id + 1);
  store_topic_t r4;
  assert_int_equal(store_topic_reserve(s, &r4), 0);
  assert_int_equal(r4.topic_id, e.topic_id + 1);
  store_close(s);
}

static void test_a_batch_creating_a_topic_that_exists_fails_whole(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  store_topic_t r;
  assert_int_equal(store_topic_reserve(s, &r), 0);
  const store_new_topic_t tops[2] = {{.name = "acme/b", .topic_id = r.topic_id, .epoch = r.epoch},
                                     {.name = "acme/a", .topic_id = r.topic_id + 100, .epoch = r.epoch}};
  store_event_t ev = make_event(a.topic_id, 1, 1000, NULL);
  log_set_level(LOG_OFF); /* the constraint failure is logged */
  assert_int_equal(store_batch_write_topics(s, tops, 2, &ev, 1), -EEXIST);
  log_set_level(LOG_INFO);
  store_topic_t t;
  assert_int_equal(store_topic_get(s, "acme/b", &t), -ENOENT); /* rolled back with the rest */
  assert_int_equal(get(s, "acme/a").head_seq, 0);
  /* Arguments: ids, names and epochs are checked; nothing at all is -EINVAL. */
  const store_new_topic_t bad[3] = {{.name = "acme/c", .topic_id = 0, .epoch = r.epoch},
                                    {.name = "", .topic_id = r.topic_id, .epoch = r.epoch},
                                    {.name = "acme/c", .topic_id = r.topic_id, .epoch = "abc"}};
  for (size_t i = 0; i < 3; i++) assert_int_equal(store_batch_write_topics(s, &bad[i], 1, NULL, 0), -EINVAL);
  assert_int_equal(store_batch_write_topics(s, NULL, 0, NULL, 0), -EINVAL);
  /* The store is still usable. */
  assert_int_equal(store_batch_write_topics(s, tops, 1, &ev, 1), 0);
  assert_int_equal(get(s, "acme/b").topic_id, r.topic_id);
  store_close(s);
}

typedef struct lookup_call {
  store_t *s;
  const char *name;
  int rc;
  store_topic_t t;
  size_t keys;
  int keys_rc;
  size_t topics;
  int list_rc;
} lookup_call_t;

static int count_topic(void *ud, const char *name, const store_topic_t *t) {
  (void)name;
  (void)t;
  (*(size_t *)ud)++;
  return 0;
}

static int count_key(void *ud, const char *id, uint64_t seq, int64_t ts_ms) {
  (void)id;
  (void)seq;
  (void)ts_ms;
  (*(size_t *)ud)++;
  return 0;
}

static void *lookup_main(void *arg) {
  lookup_call_t *c = arg;
  c->rc = store_topic_lookup(c->s, c->name, &c->t);
  if (c->rc == 0) c->keys_rc = store_dedupe_list(c->s, c->t.topic_id, 0, count_key, &c->keys);
  c->list_rc = store_topic_list(c->s, "acme/", NULL, 10, count_topic, &c->topics);
  return NULL;
}

/* What the event loop asks when a topic is not in memory (and for a bounded topic list):
 * answered from what is committed while the commit thread holds the store, instead of
 * waiting for it. */
static void test_a_topic_lookup_and_its_keys_do_not_wait_for_another_threads_call(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/known");
  append_keyed(s, a.topic_id, 1, 1000, "k1");
  append_keyed(s, a.topic_id, 2, 1000, "k2");
  store_hold_t h;
  hold_start(&h, s, a.topic_id);
  lookup_call_t c = {.s = s, .name = "acme/known"};
  if (!hold_run(&h, lookup_main, &c, 5000)) fail_msg("the lookup waited for the other thread's call to end");
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.t.topic_id, a.topic_id);
  assert_string_equal(c.t.epoch, a.epoch);
  assert_int_equal(c.t.head_seq, 2);
  assert_int_equal(c.keys_rc, 0);
  assert_int_equal(c.keys, 2);
  assert_int_equal(c.list_rc, 0); /* a bounded topic list does not wait either */
  assert_int_equal(c.topics, 1);
  hold_start(&h, s, a.topic_id);
  lookup_call_t u = {.s = s, .name = "acme/unknown"};
  if (!hold_run(&h, lookup_main, &u, 5000)) fail_msg("the lookup waited for the other thread's call to end");
  assert_int_equal(u.rc, -ENOENT);
  /* Nor for a WAL settle, which holds the reader's lock as well as the store's (up to a
   * checkpoint pass): the lookup is a short read, which goes ahead without it. The
   * stand-in settle lets go after 1.5 s in any case, so a lookup that waits for it fails
   * the deadline below and the test ends. */
  reader_hold_t rh;
  reader_hold_start(&rh, s);
  hold_start(&h, s, a.topic_id);
  lookup_call_t w = {.s = s, .name = "acme/known"};
  bool in_time = hold_run(&h, lookup_main, &w, 500);
  reader_hold_end(&rh);
  if (!in_time) fail_msg("the lookup waited for the reader's lock a settle holds");
  assert_int_equal(w.rc, 0);
  assert_int_equal(w.t.head_seq, 2);
  assert_int_equal(w.keys, 2);
  assert_int_equal(w.topics, 1);
  /* Without another thread, the same answers. */
  assert_int_equal(store_topic_lookup(s, "acme/known", &c.t), 0);
  assert_int_equal(c.t.head_seq, 2);
  assert_int_equal(store_topic_lookup(s, "acme/unknown", &c.t), -ENOENT);
  assert_int_equal(store_topic_lookup(s, "", &c.t), -EINVAL);
  store_close(s);
}

#define FILE_TEST(f) cmocka_unit_test_setup_teardown(f, dbdir_setup, dbdir_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      FILE_TEST(test_a_reserved_topic_exists_once_the_batch_naming_it_commits),
      FILE_TEST(test_a_batch_creating_a_topic_that_exists_fails_whole),
      FILE_TEST(test_a_topic_lookup_and_its_keys_do_not_wait_for_another_threads_call),
  };
  return cmocka_run_group_tests_name("store sqlite topics", tests, NULL, NULL);
}
