/* store groups, in-memory backend: the groups contract of store.h without a file.
 *
 * Owns copies of every group row and, per group, a map of its leases keyed by seq.
 * Listing and lease iteration sort on the fly (tests and benchmarks hold few groups).
 * A save is all or nothing because it is checked before anything changes. Nothing
 * survives store_close. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "base/mem.h"
#include "internal.h"

typedef struct mg_lease {
  base_map_node_t node; /* keyed by the bytes of seq */
  uint64_t seq;
  uint32_t deliveries;
} mg_lease_t;

typedef struct mg_group {
  base_map_node_t node; /* keyed by "topic\0name" (key) */
  char *key;            /* owned: topic, NUL, name */
  size_t klen;
  char *epoch; /* owned */
  uint64_t next_seq;
  uint32_t ack_wait_ms;
  base_map_t leases; /* mg_lease_t, owned */
} mg_group_t;

typedef struct mg_store {
  base_map_t groups; /* mg_group_t, owned */
} mg_store_t;

static char *mg_key(const char *topic, const char *name, size_t *klen) {
  size_t a = strlen(topic), b = strlen(name);
  char *k = xmalloc(a + 1 + b + 1);
  memcpy(k, topic, a + 1);
  memcpy(k + a + 1, name, b + 1);
  *klen = a + 1 + b;
  return k;
}

static mg_group_t *mg_find(mg_store_t *m, const char *topic, const char *name) {
  size_t klen;
  char *k = mg_key(topic, name, &klen);
  base_map_node_t *n = base_map_get(&m->groups, k, klen);
  free(k);
  return n ? container_of(n, mg_group_t, node) : NULL;
}

static void mg_group_free(mg_group_t *g) {
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&g->leases, &it); n;
       n = base_map_next(&g->leases, &it)) {
    base_map_remove(&g->leases, n);
    free(container_of(n, mg_lease_t, node));
  }
  base_map_close(&g->leases);
  free(g->key);
  free(g->epoch);
  free(g);
}

static void mg_close(void *gb) {
  mg_store_t *m = gb;
  if (!m) return;
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&m->groups, &it); n;
       n = base_map_next(&m->groups, &it)) {
    base_map_remove(&m->groups, n);
    mg_group_free(container_of(n, mg_group_t, node));
  }
  base_map_close(&m->groups);
  free(m);
}

static store_group_t mg_row(const mg_group_t *g) {
  return (store_group_t){.topic = g->key,
                         .name = g->key + strlen(g->key) + 1,
                         .epoch = g->epoch,
                         .next_seq = g->next_seq,
                         .ack_wait_ms = g->ack_wait_ms,
                         .pending = g->leases.count};
}

static int lease_cmp(const void *a, const void *b) {
  const mg_lease_t *x = *(mg_lease_t *const *)a, *y = *(mg_lease_t *const *)b;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

static int mg_load(void *gb, const char *topic, const char *name, store_group_cb gcb,
                   store_lease_cb lcb, void *ud) {
  mg_group_t *g = mg_find(gb, topic, name);
  if (!g) return -ENOENT;
  store_group_t row = mg_row(g);
  int rc = gcb(ud, &row);
  if (rc || !lcb || g->leases.count == 0) return rc;
  mg_lease_t **all = xmalloc(g->leases.count * sizeof *all);
  size_t n = 0;
  base_map_iter_t it;
  for (base_map_node_t *x = base_map_first(&g->leases, &it); x; x = base_map_next(&g->leases, &it))
    all[n++] = container_of(x, mg_lease_t, node);
  qsort(all, n, sizeof *all, lease_cmp);
  for (size_t i = 0; i < n && rc == 0; i++) {
    store_group_lease_t l = {.seq = all[i]->seq, .deliveries = all[i]->deliveries};
    rc = lcb(ud, &l);
  }
  free(all);
  return rc;
}

static int group_cmp(const void *a, const void *b) {
  const mg_group_t *x = *(mg_group_t *const *)a, *y = *(mg_group_t *const *)b;
  return strcmp(x->key + strlen(x->key) + 1, y->key + strlen(y->key) + 1);
}

static int mg_list(void *gb, const char *topic, store_group_cb cb, void *ud) {
  mg_store_t *m = gb;
  size_t cap = m->groups.count, n = 0;
  if (cap == 0) return 0;
  mg_group_t **all = xmalloc(cap * sizeof *all);
  base_map_iter_t it;
  for (base_map_node_t *x = base_map_first(&m->groups, &it); x;
       x = base_map_next(&m->groups, &it)) {
    mg_group_t *g = container_of(x, mg_group_t, node);
    if (strcmp(g->key, topic) == 0) all[n++] = g;
  }
  qsort(all, n, sizeof *all, group_cmp);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    store_group_t row = mg_row(all[i]);
    rc = cb(ud, &row);
  }
  free(all);
  return rc;
}

static mg_lease_t *lease_find(mg_group_t *g, uint64_t seq) {
  base_map_node_t *n = base_map_get(&g->leases, (const char *)&seq, sizeof seq);
  return n ? container_of(n, mg_lease_t, node) : NULL;
}

static void mg_apply(mg_store_t *m, const store_group_write_t *w) {
  const store_group_t *row = &w->group;
  mg_group_t *g = mg_find(m, row->topic, row->name);
  if (!g) {
    g = xcalloc(1, sizeof *g);
    g->key = mg_key(row->topic, row->name, &g->klen);
    base_map_init(&g->leases);
    base_map_insert(&m->groups, &g->node, g->key, g->klen);
  }
  free(g->epoch);
  g->epoch = xstrdup(row->epoch);
  g->next_seq = row->next_seq;
  g->ack_wait_ms = row->ack_wait_ms;
  for (size_t i = 0; i < w->ndel; i++) {
    mg_lease_t *l = lease_find(g, w->del[i]);
    if (!l) continue;
    base_map_remove(&g->leases, &l->node);
    free(l);
  }
  for (size_t i = 0; i < w->nput; i++) {
    mg_lease_t *l = lease_find(g, w->put[i].seq);
    if (!l) {
      l = xcalloc(1, sizeof *l);
      l->seq = w->put[i].seq;
      base_map_insert(&g->leases, &l->node, (const char *)&l->seq, sizeof l->seq);
    }
    l->deliveries = w->put[i].deliveries;
  }
}

static int mg_save(void *gb, const store_group_write_t *w, size_t n) {
  for (size_t i = 0; i < n; i++) mg_apply(gb, &w[i]);
  return 0;
}

static int mg_del(void *gb, const char *topic, const char *name) {
  mg_store_t *m = gb;
  mg_group_t *g = mg_find(m, topic, name);
  if (!g) return -ENOENT;
  base_map_remove(&m->groups, &g->node);
  mg_group_free(g);
  return 0;
}

static const store_groups_ops_t mg_ops = {
    .close = mg_close,
    .load = mg_load,
    .list = mg_list,
    .save = mg_save,
    .del = mg_del,
};

int store__groups_memory_open(const store_groups_ops_t **ops, void **gb) {
  mg_store_t *m = xcalloc(1, sizeof *m);
  base_map_init(&m->groups);
  *ops = &mg_ops;
  *gb = m;
  return 0;
}
