/* Tests for streams/topic_name.c: the topic validation table and partition stability. */
#include "streams/helpers.h"

typedef struct name_case {
  const char *topic;
  int rc;
  const char *message_part; /* substring of the error, NULL when valid */
} name_case_t;

static void test_topic_validation_accepts_and_rejects_per_the_table(void **state) {
  (void)state;
  static char long_tenant[80], long_room[220], max_room[210];
  memset(long_tenant, 'a', 65);
  strcpy(long_tenant + 65, "/r");
  strcpy(long_room, "t/");
  memset(long_room + 2, 'r', 201);
  strcpy(max_room, "t/");
  memset(max_room + 2, 'R', 200);
  const name_case_t cases[] = {
      {"acme/room-1", 0, NULL},
      {"acme/runs/r_81f", 0, NULL},
      {"a_b-9/A.b:c/d-e_f", 0, NULL},
      {max_room, 0, NULL},
      {"acme", -EINVAL, "tenant/room"},
      {"/room", -EINVAL, "tenant must be 1 to 64"},
      {long_tenant, -EINVAL, "tenant must be 1 to 64"},
      {"Acme/room", -EINVAL, "tenant has a character outside"},
      {"ac me/room", -EINVAL, "tenant has a character"},
      {"acme/", -EINVAL, "room must be 1 to 200"},
      {long_room, -EINVAL, "room must be 1 to 200"},
      {"acme/ro om", -EINVAL, "room has a character outside"},
      {"acme/r\xc3\xa9", -EINVAL, "room has a character"},
      {"acme/a?b", -EINVAL, "offset 1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    stream_err_t err = {0};
    size_t tl = 0;
    int rc = stream_topic_validate(cases[i].topic, &tl, &err);
    if (rc != cases[i].rc) fail_msg("case %zu (%s): rc %d, want %d", i, cases[i].topic, rc, cases[i].rc);
    if (cases[i].message_part && !strstr(err.message, cases[i].message_part))
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.message, cases[i].message_part);
    if (rc == 0) assert_int_equal(tl, strchr(cases[i].topic, '/') - cases[i].topic);
  }
  assert_int_equal(stream_topic_validate(NULL, NULL, NULL), -EINVAL);
}

static void test_topic_partition_is_stable_fnv1a_modulo_partitions(void **state) {
  (void)state;
  /* Fixed values: changing the hash would move every topic to another partition. */
  assert_int_equal(stream_topic_partition("acme/room-1", 0xffffffffu), 1654271201u % 0xffffffffu);
  assert_int_equal(stream_topic_partition("acme/room-1", 16), 1);
  assert_int_equal(stream_topic_partition("acme/runs/r_81f", 16), 7);
  assert_int_equal(stream_topic_partition("a/b", 16), 1);
  assert_int_equal(stream_topic_partition("a/b", 1), 0);
  for (uint32_t p = 1; p < 64; p++) assert_true(stream_topic_partition("acme/x", p) < p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_topic_validation_accepts_and_rejects_per_the_table),
      cmocka_unit_test(test_topic_partition_is_stable_fnv1a_modulo_partitions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
