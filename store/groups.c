/* store groups front end: the public store_group_* functions of store.h.
 *
 * Owns the argument checks every groups backend relies on (see internal.h) and dispatches
 * to the groups ops table store.c opened beside the event log. Owns no storage: that is
 * groups_sqlite.c and groups_memory.c. */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define GROUP_TOPIC_MAX 265

static bool name_ok(const char *s, size_t max) {
  return s && s[0] && strnlen(s, max + 1) <= max;
}

static bool ids_ok(const char *topic, const char *name) {
  return name_ok(topic, GROUP_TOPIC_MAX) && name_ok(name, STORE_GROUP_NAME_MAX);
}

static bool write_ok(const store_group_write_t *w) {
  const store_group_t *g = &w->group;
  if (!ids_ok(g->topic, g->name) || !g->epoch || !g->epoch[0] || g->next_seq == 0) return false;
  if ((w->ndel && !w->del) || (w->nput && !w->put)) return false;
  for (size_t i = 0; i < w->nput; i++)
    if (w->put[i].seq == 0 || w->put[i].seq > INT64_MAX) return false;
  return g->next_seq <= INT64_MAX;
}

int store_group_load(store_t *s, const char *topic, const char *name, store_group_cb gcb,
                     store_lease_cb lcb, void *ud) {
  if (!s || !ids_ok(topic, name) || !gcb) return -EINVAL;
  void *gb;
  const store_groups_ops_t *ops = store__groups(s, &gb);
  store__groups_lock(s);
  int rc = ops->load(gb, topic, name, gcb, lcb, ud);
  store__groups_unlock(s);
  return rc;
}

int store_group_list(store_t *s, const char *topic, store_group_cb cb, void *ud) {
  if (!s || !name_ok(topic, GROUP_TOPIC_MAX) || !cb) return -EINVAL;
  void *gb;
  const store_groups_ops_t *ops = store__groups(s, &gb);
  store__groups_lock(s);
  int rc = ops->list(gb, topic, cb, ud);
  store__groups_unlock(s);
  return rc;
}

int store_group_save(store_t *s, const store_group_write_t *w, size_t n) {
  if (!s || (n && !w)) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!write_ok(&w[i])) return -EINVAL;
  if (n == 0) return 0;
  void *gb;
  const store_groups_ops_t *ops = store__groups(s, &gb);
  store__groups_lock(s);
  int rc = ops->save(gb, w, n);
  store__groups_unlock(s);
  return rc;
}

int store_group_delete(store_t *s, const char *topic, const char *name) {
  if (!s || !ids_ok(topic, name)) return -EINVAL;
  void *gb;
  const store_groups_ops_t *ops = store__groups(s, &gb);
  store__groups_lock(s);
  int rc = ops->del(gb, topic, name);
  store__groups_unlock(s);
  return rc;
}
