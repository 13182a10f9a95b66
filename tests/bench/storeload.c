/* storeload: the SQLite event store alone, through store.h (docs/bench-tools.md).
 *
 * Appends --events events of about 200 bytes round-robin over --topics topics in batches
 * of --batch (each batch one store transaction, as the streams commit stage does), with
 * or without an idempotency key per event (--ids), then reads the newest --read events of
 * the first topic back, once in one call and once in pages of 256 (as a catching-up
 * cursor does), each --reps times. Prints one JSON object: events/s and the process's CPU
 * per event (the checkpointer thread included), and the wall and CPU time of a read.
 * Only store.h is used, so the same source builds against any commit's store library for
 * an A/B of two schemas. Runs on a fresh file: the caller deletes it between runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "store.h"

typedef struct opts {
  const char *path;
  long events, topics, batch, read, reps;
  int ids;
} opts_t;

static double mono_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static int count_cb(void *ud, const store_event_t *ev) {
  (void)ev;
  (*(size_t *)ud)++;
  return 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: storeload --db PATH [--events 400000] [--topics 100] [--batch 1000]"
          " [--ids] [--read 10000] [--reps 20]\n");
  return 2;
}

static int parse(int argc, char **argv, opts_t *o) {
  *o = (opts_t){.events = 400000, .topics = 100, .batch = 1000, .read = 10000, .reps = 20};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    long *num = strcmp(a, "--events") == 0   ? &o->events
                : strcmp(a, "--topics") == 0 ? &o->topics
                : strcmp(a, "--batch") == 0  ? &o->batch
                : strcmp(a, "--read") == 0   ? &o->read
                : strcmp(a, "--reps") == 0   ? &o->reps
                                             : NULL;
    if (strcmp(a, "--ids") == 0) {
      o->ids = 1;
    } else if (strcmp(a, "--db") == 0 && i + 1 < argc) {
      o->path = argv[++i];
    } else if (num && i + 1 < argc) {
      *num = atol(argv[++i]);
      if (*num < 1) return -1;
    } else {
      return -1;
    }
  }
  return o->path ? 0 : -1;
}

/* Appends o->events events; heads[i] ends as topic i's head_seq. */
static int append_all(store_t *s, const opts_t *o, const int64_t *tids, uint64_t *heads) {
  char data[256];
  int dl = snprintf(data, sizeof data, "{\"text\":\"%0190d\"}", 7);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  long done = 0, k = 0;
  while (done < o->events) {
    if (store_batch_begin(s) < 0) return -1;
    for (long b = 0; b < o->batch && done < o->events; b++, done++, k = (k + 1) % o->topics) {
      char id[48];
      snprintf(id, sizeof id, "evt-%ld-%llu", k, (unsigned long long)heads[k] + 1);
      store_event_t ev = {.topic_id = tids[k], .seq = ++heads[k], .ts_ms = ms + done / 1000,
                          .id = o->ids ? id : NULL, .type = "token", .lane = 1,
                          .data = data, .data_len = (size_t)dl};
      if (store_batch_append(s, &ev) < 0) return -1;
    }
    if (store_batch_commit(s) < 0) return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  opts_t o;
  if (parse(argc, argv, &o) < 0) return usage();
  store_t *s = NULL;
  if (store_open_sqlite(&(store_options_t){.path = o.path}, &s) < 0) return 1;
  int64_t *tids = calloc((size_t)o.topics, sizeof *tids);
  uint64_t *heads = calloc((size_t)o.topics, sizeof *heads);
  int rc = tids && heads ? 0 : 1;
  for (long i = 0; rc == 0 && i < o.topics; i++) {
    char name[64];
    snprintf(name, sizeof name, "bench/topic-%ld", i);
    store_topic_t t;
    rc = store_topic_ensure(s, name, &t) < 0;
    if (rc == 0) tids[i] = t.topic_id, heads[i] = t.head_seq;
  }
  double w0 = mono_s(), c0 = cpu_s();
  if (rc == 0) rc = append_all(s, &o, tids, heads) < 0;
  double w = mono_s() - w0, c = cpu_s() - c0;
  uint64_t from = heads[0] > (uint64_t)o.read ? heads[0] - (uint64_t)o.read : 0;
  size_t got = 0, paged = 0;
  double r0 = mono_s(), rc0 = cpu_s();
  for (long r = 0; rc == 0 && r < o.reps; r++)
    rc = store_read(s, tids[0], from, (size_t)o.read, count_cb, &got) < 0;
  double rw = (mono_s() - r0) / (double)o.reps, rcpu = (cpu_s() - rc0) / (double)o.reps;
  double p0 = mono_s();
  for (long r = 0; rc == 0 && r < o.reps; r++)
    for (uint64_t a = from; rc == 0 && a < heads[0]; a += 256)
      rc = store_read(s, tids[0], a, 256, count_cb, &paged) < 0;
  double pw = (mono_s() - p0) / (double)o.reps;
  store_close(s);
  if (rc == 0)
    printf("{\"events\":%ld,\"topics\":%ld,\"batch\":%ld,\"ids\":%d,\"events_per_s\":%.0f,"
           "\"cpu_us_per_event\":%.3f,\"read_events\":%zu,\"read_ms\":%.3f,\"read_cpu_ms\":%.3f,"
           "\"read_pages256_ms\":%.3f}\n",
           o.events, o.topics, o.batch, o.ids, (double)o.events / w,
           c / (double)o.events * 1e6, got / (size_t)o.reps, rw * 1e3, rcpu * 1e3, pw * 1e3);
  free(tids);
  free(heads);
  return rc;
}
