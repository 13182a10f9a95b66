/* Intrusive string-keyed hash map; see base/map.h. Owns only the bucket array. */
#include "base/map.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

#define MAP_MIN_BUCKETS 16

uint64_t base_map_hash(const char *key, size_t klen) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < klen; i++) {
    h ^= (unsigned char)key[i];
    h *= 1099511628211ull;
  }
  return h;
}

void base_map_init(base_map_t *m) {
  m->buckets = NULL;
  m->nbuckets = 0;
  m->count = 0;
}

void base_map_close(base_map_t *m) {
  free(m->buckets);
  base_map_init(m);
}

static void map_rehash(base_map_t *m, size_t nbuckets) {
  base_map_node_t **nb = xcalloc(nbuckets, sizeof *nb);
  for (size_t i = 0; i < m->nbuckets; i++) {
    base_map_node_t *n = m->buckets[i];
    while (n) {
      base_map_node_t *next = n->next;
      size_t b = (size_t)(n->hash & (nbuckets - 1));
      n->next = nb[b];
      nb[b] = n;
      n = next;
    }
  }
  free(m->buckets);
  m->buckets = nb;
  m->nbuckets = nbuckets;
}

base_map_node_t *base_map_get(const base_map_t *m, const char *key, size_t klen) {
  if (m->count == 0) return NULL;
  uint64_t h = base_map_hash(key, klen);
  for (base_map_node_t *n = m->buckets[h & (m->nbuckets - 1)]; n; n = n->next) {
    if (n->hash == h && n->klen == klen && memcmp(n->key, key, klen) == 0) return n;
  }
  return NULL;
}

void base_map_insert(base_map_t *m, base_map_node_t *n, const char *key, size_t klen) {
  if (m->nbuckets == 0) map_rehash(m, MAP_MIN_BUCKETS);
  else if (m->count >= m->nbuckets) map_rehash(m, m->nbuckets * 2);
  n->hash = base_map_hash(key, klen);
  n->key = key;
  n->klen = klen;
  size_t b = (size_t)(n->hash & (m->nbuckets - 1));
  n->next = m->buckets[b];
  m->buckets[b] = n;
  m->count++;
}

void base_map_remove(base_map_t *m, base_map_node_t *n) {
  base_map_node_t **pp = &m->buckets[n->hash & (m->nbuckets - 1)];
  while (*pp != n) pp = &(*pp)->next;
  *pp = n->next;
  n->next = NULL;
  m->count--;
}

void base_map_shrink(base_map_t *m) {
  size_t nb = m->nbuckets;
  while (nb > MAP_MIN_BUCKETS && m->count < nb / 4) nb /= 2;
  if (nb != m->nbuckets) map_rehash(m, nb);
}

static base_map_node_t *map_scan(const base_map_t *m, base_map_iter_t *it) {
  while (it->bucket < m->nbuckets) {
    base_map_node_t *n = m->buckets[it->bucket++];
    if (n) {
      it->next = n->next;
      return n;
    }
  }
  it->next = NULL;
  return NULL;
}

base_map_node_t *base_map_first(const base_map_t *m, base_map_iter_t *it) {
  it->bucket = 0;
  it->next = NULL;
  return map_scan(m, it);
}

base_map_node_t *base_map_next(const base_map_t *m, base_map_iter_t *it) {
  base_map_node_t *n = it->next;
  if (n) {
    it->next = n->next;
    return n;
  }
  return map_scan(m, it);
}
