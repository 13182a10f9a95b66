/* Test helper of the store's tests: a temporary folder for a database file.
 *
 * tmpdir_make creates "<$COORD_TEST_TMPDIR or /tmp>/<prefix>-XXXXXX" into dir (failing
 * the test when it cannot); tmpdir_remove deletes the files in it (the database, its -wal
 * and -shm: one level, no subfolders) and the folder. */
#ifndef TESTS_UNIT_STORE_TMPDIR_H
#define TESTS_UNIT_STORE_TMPDIR_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static inline void tmpdir_make(char *dir, size_t size, const char *prefix) {
  const char *base = getenv("COORD_TEST_TMPDIR");
  snprintf(dir, size, "%s/%s-XXXXXX", base && base[0] ? base : "/tmp", prefix);
  assert_non_null(mkdtemp(dir));
}

static inline void tmpdir_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    char path[1024];
    for (struct dirent *e; (e = readdir(d));) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

#endif
