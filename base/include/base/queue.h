/* Intrusive circular doubly-linked queue.
 *
 * A queue head and its elements are the same struct (base_queue_t) embedded in the
 * owner; an empty queue points at itself. Insertion and removal are O(1) and never
 * allocate, which is why the hot paths (subscriber lists, writable rings) use it.
 * An element may be removed while it is not in any queue only after
 * base_queue_init(), which makes removal idempotent. */
#ifndef BASE_QUEUE_H
#define BASE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct base_queue {
  struct base_queue *next;
  struct base_queue *prev;
} base_queue_t;

static inline void base_queue_init(base_queue_t *q) { q->next = q->prev = q; }
static inline bool base_queue_empty(const base_queue_t *q) { return q->next == q; }
/* Whether a node initialised with base_queue_init() is currently linked somewhere. */
static inline bool base_queue_linked(const base_queue_t *n) { return n->next != n; }
static inline base_queue_t *base_queue_head(const base_queue_t *q) { return q->next; }

static inline void base_queue_insert_tail(base_queue_t *q, base_queue_t *n) {
  n->next = q;
  n->prev = q->prev;
  q->prev->next = n;
  q->prev = n;
}

static inline void base_queue_insert_head(base_queue_t *q, base_queue_t *n) {
  n->next = q->next;
  n->prev = q;
  q->next->prev = n;
  q->next = n;
}

/* Moves every element of from, in order, to the end of to; from is left empty. O(1). */
static inline void base_queue_move_tail(base_queue_t *from, base_queue_t *to) {
  if (base_queue_empty(from)) return;
  from->next->prev = to->prev;
  to->prev->next = from->next;
  from->prev->next = to;
  to->prev = from->prev;
  base_queue_init(from);
}

/* Unlinks n and leaves it self-linked, so removing it again is harmless. */
static inline void base_queue_remove(base_queue_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}

#define base_queue_data(ptr, type, field) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, field)))

/* Iterates q; the loop body must not remove the current node (use the _safe form). */
#define base_queue_foreach(it, q) for ((it) = (q)->next; (it) != (q); (it) = (it)->next)
#define base_queue_foreach_safe(it, tmp, q) \
  for ((it) = (q)->next, (tmp) = (it)->next; (it) != (q); (it) = (tmp), (tmp) = (it)->next)

#endif
