/* Latency samples with exact percentiles, per-connection sequence checks, and the result
 * blob a wsload worker writes to its parent. No I/O other than the blob's pipe. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "wsload.h"

const char *const wl_error_codes[WL_NCODES] = {
    "bad_request", "forbidden", "not_found", "rate_limited", "too_large", "overloaded",
    "unauthorized", "other"};

uint64_t wl_realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t wl_monotonic_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t wl_rng_next(uint64_t *s) {
  uint64_t x = *s; /* xorshift64*: fast, and uniform enough for a reservoir */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

void wl_samples_init(wl_samples_t *s, uint64_t max, uint64_t seed) {
  memset(s, 0, sizeof(*s));
  s->max = max ? max : 1;
  s->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

void wl_samples_add(wl_samples_t *s, uint64_t us) {
  uint32_t v = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  s->seen++;
  s->sum_us += v;
  if (v > s->max_us) s->max_us = v;
  if (s->n < s->max) {
    if (s->n == s->cap) {
      s->cap = s->cap ? s->cap * 2 : 4096;
      if (s->cap > s->max) s->cap = s->max;
      s->v = xrealloc(s->v, s->cap * sizeof(uint32_t));
    }
    s->v[s->n++] = v;
    return;
  }
  uint64_t j = wl_rng_next(&s->rng) % s->seen;
  if (j < s->max) s->v[j] = v;
}

void wl_samples_close(wl_samples_t *s) {
  free(s->v);
  memset(s, 0, sizeof(*s));
}

void wl_samples_sort(uint32_t *v, uint64_t n) {
  if (n < 2) return;
  uint32_t *tmp = xmalloc(n * sizeof(uint32_t));
  uint32_t *src = v, *dst = tmp;
  for (int shift = 0; shift < 32; shift += 16) {
    uint64_t *count = xcalloc(65537, sizeof(uint64_t));
    for (uint64_t i = 0; i < n; i++) count[((src[i] >> shift) & 0xFFFF) + 1]++;
    for (size_t b = 1; b <= 65536; b++) count[b] += count[b - 1];
    for (uint64_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & 0xFFFF]++] = src[i];
    free(count);
    uint32_t *t = src;
    src = dst;
    dst = t;
  }
  /* Two passes: the sorted data is back in v. */
  free(tmp);
}

uint32_t wl_percentile(const uint32_t *sorted, uint64_t n, double q) {
  if (n == 0) return 0;
  double rank = q * (double)n;
  uint64_t k = (uint64_t)rank;
  if ((double)k < rank) k++;
  if (k == 0) k = 1;
  if (k > n) k = n;
  return sorted[k - 1];
}

void wl_seq_see(wl_seq_t *s, uint64_t seq) {
  if (!s->have) {
    s->have = true;
    s->first = s->last = seq;
    s->window = 1;
    s->unique = 1;
    return;
  }
  if (seq > s->last) {
    uint64_t d = seq - s->last;
    s->holes += d - 1;
    s->window = d >= 64 ? 1 : (s->window << d) | 1;
    s->last = seq;
    s->unique++;
    return;
  }
  uint64_t d = s->last - seq;
  if (d < 64) {
    if (s->window & (1ULL << d)) {
      s->duplicates++;
      return;
    }
    s->window |= 1ULL << d;
    if (seq < s->first) {
      s->first = seq; /* a late event from before the first one seen: not a hole */
    } else if (s->holes) {
      s->holes--;
    }
    s->reordered++;
    s->unique++;
    return;
  }
  /* Older than the window: cannot tell a late event from a duplicate; count it late. */
  s->reordered++;
  s->unique++;
  if (seq < s->first) s->first = seq;
  else if (s->holes) s->holes--;
}

uint64_t wl_loss_for(const wl_conn_rec_t *c, const wl_topic_rec_t *t, uint64_t *expected) {
  *expected = 0;
  if (!t->acked || t->min_seq > t->max_seq) return 0;
  uint64_t exp = t->max_seq - t->min_seq + 1;
  *expected = exp;
  if (!c->unique) return exp;
  uint64_t lost = c->holes;
  if (c->first > t->min_seq) lost += c->first - t->min_seq;
  if (t->max_seq > c->last) lost += t->max_seq - c->last;
  return lost;
}

static int wl_write_all(int fd, const void *p, size_t n) {
  const char *b = p;
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int wl_read_all(int fd, void *p, size_t n) {
  char *b = p;
  while (n) {
    ssize_t r = read(fd, b, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return -EPIPE;
    b += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Blob layout: the result struct itself (pointers meaningless), then lat.n and ack.n
 * samples, then the connection records, then the topic records. Parent and workers are
 * the same binary (fork), so the raw layout is shared. */
int wl_result_write(int fd, const wl_result_t *r) {
  int rc = wl_write_all(fd, r, sizeof(*r));
  if (!rc && r->lat.n) rc = wl_write_all(fd, r->lat.v, r->lat.n * sizeof(uint32_t));
  if (!rc && r->ack.n) rc = wl_write_all(fd, r->ack.v, r->ack.n * sizeof(uint32_t));
  if (!rc && r->nconn_recs)
    rc = wl_write_all(fd, r->conn_recs, r->nconn_recs * sizeof(wl_conn_rec_t));
  if (!rc && r->ntopics) rc = wl_write_all(fd, r->topic_recs, r->ntopics * sizeof(wl_topic_rec_t));
  return rc;
}

int wl_result_read(int fd, wl_result_t *r) {
  int rc = wl_read_all(fd, r, sizeof(*r));
  if (rc) return rc;
  r->lat.v = r->lat.n ? xmalloc(r->lat.n * sizeof(uint32_t)) : NULL;
  r->lat.cap = r->lat.n;
  r->ack.v = r->ack.n ? xmalloc(r->ack.n * sizeof(uint32_t)) : NULL;
  r->ack.cap = r->ack.n;
  r->conn_recs = r->nconn_recs ? xmalloc(r->nconn_recs * sizeof(wl_conn_rec_t)) : NULL;
  r->topic_recs = r->ntopics ? xmalloc(r->ntopics * sizeof(wl_topic_rec_t)) : NULL;
  if (r->lat.n) rc = wl_read_all(fd, r->lat.v, r->lat.n * sizeof(uint32_t));
  if (!rc && r->ack.n) rc = wl_read_all(fd, r->ack.v, r->ack.n * sizeof(uint32_t));
  if (!rc && r->nconn_recs)
    rc = wl_read_all(fd, r->conn_recs, r->nconn_recs * sizeof(wl_conn_rec_t));
  if (!rc && r->ntopics) rc = wl_read_all(fd, r->topic_recs, r->ntopics * sizeof(wl_topic_rec_t));
  return rc;
}

void wl_result_close(wl_result_t *r) {
  wl_samples_close(&r->lat);
  wl_samples_close(&r->ack);
  free(r->conn_recs);
  free(r->topic_recs);
  memset(r, 0, sizeof(*r));
}
