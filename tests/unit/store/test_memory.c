/* Tests for store/memory.c: the store.h contract suite against the in-memory backend. */
#include "store/contract.h"

static int contract_open(store_t **out) {
  return store_open_memory(out);
}

/* Topics are created only by store_topic_ensure here: the reserving half is SQLite's. */
static void test_memory_store_does_not_reserve_topics(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t r;
  assert_int_equal(store_topic_reserve(s, &r), -ENOTSUP);
  const store_new_topic_t top = {.name = "acme/new", .topic_id = 1, .epoch = "0000000000000000"};
  assert_int_equal(store_batch_write_topics(s, &top, 1, NULL, 0), -ENOTSUP);
  store_topic_t a = ensure(s, "acme/a");
  assert_int_equal(store_topic_lookup(s, "acme/a", &r), 0);
  assert_int_equal(r.topic_id, a.topic_id);
  assert_int_equal(store_topic_lookup(s, "acme/new", &r), -ENOENT);
  store_close(s);
}

static void test_memory_store_keeps_many_keys_and_events_through_growth(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  char id[16];
  assert_int_equal(store_batch_begin(s), 0);
  for (uint64_t seq = 1; seq <= 5000; seq++) {
    snprintf(id, sizeof id, "k%llu", (unsigned long long)seq);
    store_event_t ev = make_event(a.topic_id, seq, (int64_t)seq, id);
    assert_int_equal(store_batch_append(s, &ev), 0);
  }
  assert_int_equal(store_batch_commit(s), 0);
  uint64_t seq = 0;
  assert_int_equal(store_dedupe_find(s, a.topic_id, "k4321", 0, &seq), 0);
  assert_int_equal(seq, 4321);
  retention_until_done(s, 10, 0, 4990, 1000);
  assert_events(s, a.topic_id, 4991, 5000);
  keys_t k = {0};
  assert_int_equal(store_dedupe_list(s, a.topic_id, 0, collect_key, &k), 0);
  assert_int_equal(k.n, 11);
  store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      CONTRACT_TESTS,
      cmocka_unit_test(test_memory_store_keeps_many_keys_and_events_through_growth),
      cmocka_unit_test(test_memory_store_does_not_reserve_topics),
  };
  return cmocka_run_group_tests_name("store memory", tests, NULL, NULL);
}
