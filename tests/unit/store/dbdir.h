/* Test helper of the SQLite store tests: each test gets a fresh folder (tmpdir.h) and the
 * path of its database file in it, test_dir/events.db in test_db. The including file
 * defines DBDIR_PREFIX (the folder name's prefix) first and uses dbdir_setup and
 * dbdir_teardown as its tests' cmocka fixtures. */
#ifndef TESTS_UNIT_STORE_DBDIR_H
#define TESTS_UNIT_STORE_DBDIR_H

#include "store/tmpdir.h"

static char test_dir[512];
static char test_db[600];

static int dbdir_setup(void **state) {
  (void)state;
  tmpdir_make(test_dir, sizeof test_dir, DBDIR_PREFIX);
  snprintf(test_db, sizeof test_db, "%s/events.db", test_dir);
  return 0;
}

static int dbdir_teardown(void **state) {
  (void)state;
  tmpdir_remove(test_dir);
  return 0;
}

#endif
