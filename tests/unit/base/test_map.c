/* Tests for base/map.c: the intrusive string-keyed hash map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/map.h"
#include "base/mem.h"

typedef struct item {
  base_map_node_t node;
  char key[16];
  int value;
} item_t;

static void test_map_inserts_finds_and_removes_through_growth(void **state) {
  (void)state;
  enum { N = 5000 };
  item_t *items = xcalloc(N, sizeof *items);
  base_map_t m;
  base_map_init(&m);
  assert_null(base_map_get(&m, "x", 1));
  for (int i = 0; i < N; i++) {
    snprintf(items[i].key, sizeof items[i].key, "k%d", i);
    items[i].value = i;
    base_map_insert(&m, &items[i].node, items[i].key, strlen(items[i].key));
  }
  assert_int_equal(m.count, N);
  for (int i = 0; i < N; i += 7) {
    base_map_node_t *n = base_map_get(&m, items[i].key, strlen(items[i].key));
    assert_non_null(n);
    assert_int_equal(((item_t *)(void *)n)->value, i);
  }
  assert_null(base_map_get(&m, "k5000", 5));
  assert_null(base_map_get(&m, "k1", 1)); /* a prefix is another key */
  for (int i = 0; i < N; i += 2) base_map_remove(&m, &items[i].node);
  assert_int_equal(m.count, N / 2);
  assert_null(base_map_get(&m, "k2", 2));
  assert_non_null(base_map_get(&m, "k3", 2));
  size_t before = m.nbuckets;
  for (int i = 1; i < N - 10; i += 2) base_map_remove(&m, &items[i].node);
  base_map_shrink(&m);
  assert_true(m.nbuckets < before);
  assert_non_null(base_map_get(&m, items[N - 1].key, strlen(items[N - 1].key)));
  base_map_close(&m);
  free(items);
}

static void test_map_iteration_visits_each_node_once_even_when_removing(void **state) {
  (void)state;
  item_t items[100];
  base_map_t m;
  base_map_init(&m);
  for (int i = 0; i < 100; i++) {
    snprintf(items[i].key, sizeof items[i].key, "%d", i);
    items[i].value = 0;
    base_map_insert(&m, &items[i].node, items[i].key, strlen(items[i].key));
  }
  base_map_iter_t it;
  int seen = 0;
  for (base_map_node_t *n = base_map_first(&m, &it); n; n = base_map_next(&m, &it)) {
    item_t *x = (item_t *)(void *)n;
    x->value++;
    seen++;
    base_map_remove(&m, n);
  }
  assert_int_equal(seen, 100);
  assert_int_equal(m.count, 0);
  for (int i = 0; i < 100; i++) assert_int_equal(items[i].value, 1);
  base_map_close(&m);
}

static void test_map_hash_is_64_bit_fnv1a(void **state) {
  (void)state;
  assert_true(base_map_hash("", 0) == 14695981039346656037ull);
  assert_true(base_map_hash("a", 1) == 0xaf63dc4c8601ec8cull);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_inserts_finds_and_removes_through_growth),
      cmocka_unit_test(test_map_iteration_visits_each_node_once_even_when_removing),
      cmocka_unit_test(test_map_hash_is_64_bit_fnv1a),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
