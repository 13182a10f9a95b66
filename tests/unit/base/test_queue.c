/* Tests for base/include/base/queue.h: the intrusive queue's splice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/queue.h"

typedef struct item {
  base_queue_t link;
  int v;
} item_t;

/* The values of q in order into out; returns the count. */
static int values(const base_queue_t *q, int *out) {
  int n = 0;
  for (const base_queue_t *it = q->next; it != q; it = it->next) {
    const item_t *x = base_queue_data(it, item_t, link);
    out[n++] = x->v;
    assert_ptr_equal(it->next->prev, it); /* both directions stay linked */
  }
  return n;
}

static void test_move_tail_appends_every_element_in_order_and_empties_the_source(void **state) {
  (void)state;
  item_t items[5];
  base_queue_t from, to;
  base_queue_init(&from);
  base_queue_init(&to);
  for (int i = 0; i < 5; i++) {
    items[i].v = i;
    base_queue_insert_tail(i < 2 ? &to : &from, &items[i].link);
  }
  base_queue_move_tail(&from, &to);
  assert_true(base_queue_empty(&from));
  int got[5];
  assert_int_equal(values(&to, got), 5);
  for (int i = 0; i < 5; i++) assert_int_equal(got[i], i);
  assert_ptr_equal(to.prev, &items[4].link);
  assert_ptr_equal(items[4].link.next, &to);
  /* Both may be used afterwards. */
  base_queue_remove(&items[2].link);
  base_queue_insert_tail(&from, &items[2].link);
  assert_int_equal(values(&to, got), 4);
  assert_int_equal(values(&from, got), 1);
  assert_int_equal(got[0], 2);
}

static void test_move_tail_of_an_empty_queue_changes_nothing(void **state) {
  (void)state;
  item_t a = {.v = 1};
  base_queue_t from, to;
  base_queue_init(&from);
  base_queue_init(&to);
  base_queue_move_tail(&from, &to);
  assert_true(base_queue_empty(&to));
  base_queue_insert_tail(&to, &a.link);
  base_queue_move_tail(&from, &to);
  int got[1];
  assert_int_equal(values(&to, got), 1);
  assert_true(base_queue_empty(&from));
  /* Into an empty queue. */
  base_queue_move_tail(&to, &from);
  assert_true(base_queue_empty(&to));
  assert_int_equal(values(&from, got), 1);
  assert_int_equal(got[0], 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_move_tail_appends_every_element_in_order_and_empties_the_source),
      cmocka_unit_test(test_move_tail_of_an_empty_queue_changes_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
