/* Intrusive string-keyed hash map (separate chaining).
 *
 * The node (base_map_node_t) is embedded in the owner, like base_queue_t, so insertion
 * and removal never allocate per element; only the bucket array is allocated, and it
 * doubles when the load passes 1. The key is borrowed: it must stay valid and unchanged
 * while the node is in the map (owners usually keep the key in the same allocation).
 * Keys are byte strings with an explicit length; hashing is 64-bit FNV-1a.
 *
 * The bucket array never shrinks on removal (so iteration stays valid while removing
 * the current node); call base_map_shrink() at a safe point to give memory back after
 * mass removal. Not thread-safe: one owner per map. */
#ifndef BASE_MAP_H
#define BASE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct base_map_node {
  struct base_map_node *next; /* chain; owned by the map while inserted */
  uint64_t hash;
  const char *key; /* borrowed */
  size_t klen;     /* bytes */
} base_map_node_t;

typedef struct base_map {
  base_map_node_t **buckets; /* owned; NULL until the first insert */
  size_t nbuckets;           /* 0 or a power of two */
  size_t count;
} base_map_t;

/* Iteration cursor: see base_map_first. */
typedef struct base_map_iter {
  size_t bucket;
  base_map_node_t *next;
} base_map_iter_t;

uint64_t base_map_hash(const char *key, size_t klen);

void base_map_init(base_map_t *m);
/* Frees the bucket array; nodes still inside are simply forgotten (they are the owner's). */
void base_map_close(base_map_t *m);

/* The node whose key equals (key, klen), or NULL. */
base_map_node_t *base_map_get(const base_map_t *m, const char *key, size_t klen);
/* Inserts n under (key, klen). The caller guarantees that no node with that key is in the
 * map (look it up first). */
void base_map_insert(base_map_t *m, base_map_node_t *n, const char *key, size_t klen);
/* Removes n, which must be in m. */
void base_map_remove(base_map_t *m, base_map_node_t *n);
/* Halves the bucket array while the load is under 1/4 (never below 16 buckets). Do not
 * call it during an iteration. */
void base_map_shrink(base_map_t *m);

/* Iteration in bucket order: for (n = base_map_first(m, &it); n; n = base_map_next(m, &it)).
 * The body may remove the current node (the cursor already points past it) but must not
 * insert. */
base_map_node_t *base_map_first(const base_map_t *m, base_map_iter_t *it);
base_map_node_t *base_map_next(const base_map_t *m, base_map_iter_t *it);

#endif
