/* Test helper of the store's tests: another thread inside a store call, for the calls
 * that must not wait for it (store_stats_get, store_read).
 *
 * hold_start starts a thread whose store_read of topic_id blocks in its callback, holding
 * the store's lock, and returns once it does. hold_run then runs fn(arg) on a third
 * thread and waits up to wait_ms for it to return; in every case it then lets the holder
 * go and joins both threads. It returns whether fn returned in time; h->hold_rc is the
 * holder's store_read result. The topic needs at least one event (hold_start_on_new_topic
 * makes one). */
#ifndef TESTS_UNIT_STORE_HOLD_H
#define TESTS_UNIT_STORE_HOLD_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "store.h"

/* until = now (CLOCK_REALTIME, as pthread_cond_timedwait wants) + ms. */
static void hold_deadline(struct timespec *until, long ms) {
  clock_gettime(CLOCK_REALTIME, until);
  until->tv_sec += ms / 1000;
  until->tv_nsec += (ms % 1000) * 1000000L;
  if (until->tv_nsec >= 1000000000L) {
    until->tv_sec++;
    until->tv_nsec -= 1000000000L;
  }
}

/* Starts fn(arg) on *thread and returns once it has set *flag under mu (signalling cv). */
static void hold_thread_start(pthread_t *thread, pthread_mutex_t *mu, pthread_cond_t *cv, bool *flag,
                              void *(*fn)(void *), void *arg) {
  pthread_mutex_init(mu, NULL);
  pthread_cond_init(cv, NULL);
  assert_int_equal(pthread_create(thread, NULL, fn, arg), 0);
  pthread_mutex_lock(mu);
  while (!*flag) pthread_cond_wait(cv, mu);
  pthread_mutex_unlock(mu);
}

typedef struct store_hold {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool holding, release, done;
  int hold_rc;
  store_t *s;
  int64_t topic_id;
  pthread_t holder;
  void *(*fn)(void *);
  void *arg;
} store_hold_t;

static int hold_cb(void *ud, const store_event_t *ev) {
  (void)ev;
  store_hold_t *h = ud;
  pthread_mutex_lock(&h->mu);
  h->holding = true;
  pthread_cond_broadcast(&h->cv);
  while (!h->release) pthread_cond_wait(&h->cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
  return 0;
}

static void *hold_main(void *arg) {
  store_hold_t *h = arg;
  h->hold_rc = store_read(h->s, h->topic_id, 0, 1, hold_cb, h);
  return NULL;
}

static void *hold_run_main(void *arg) {
  store_hold_t *h = arg;
  h->fn(h->arg);
  pthread_mutex_lock(&h->mu);
  h->done = true;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

static void hold_start(store_hold_t *h, store_t *s, int64_t topic_id) {
  *h = (store_hold_t){.s = s, .topic_id = topic_id};
  hold_thread_start(&h->holder, &h->mu, &h->cv, &h->holding, hold_main, h);
}

/* hold_start on a topic of its own (created here, with the one event the holder reads). */
__attribute__((unused)) static void hold_start_on_new_topic(store_hold_t *h, store_t *s, const char *topic) {
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, topic, &t), 0);
  store_event_t ev = {.topic_id = t.topic_id, .seq = 1, .ts_ms = 1, .lane = 0, .data = "1", .data_len = 1};
  assert_int_equal(store_batch_write(s, &ev, 1), 0);
  hold_start(h, s, t.topic_id);
}

static bool hold_run(store_hold_t *h, void *(*fn)(void *), void *arg, long wait_ms) {
  h->fn = fn;
  h->arg = arg;
  pthread_t runner;
  assert_int_equal(pthread_create(&runner, NULL, hold_run_main, h), 0);
  struct timespec until;
  hold_deadline(&until, wait_ms);
  pthread_mutex_lock(&h->mu);
  int rc = 0;
  while (!h->done && rc == 0) rc = pthread_cond_timedwait(&h->cv, &h->mu, &until);
  bool done = h->done;
  h->release = true; /* in every case, so that both threads end */
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  pthread_join(h->holder, NULL);
  pthread_join(runner, NULL);
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
  return done;
}

#ifdef STORE_SQLITE_EVENTS_H
/* A stand-in for a WAL settle's pass (include sqlite_events.h first): reader_hold_start
 * returns once a thread holds the SQLite backend's reader lock; the thread lets go at
 * reader_hold_end, or by itself after 1.5 s, so that a call that wrongly waits for the
 * lock on the test's own thread ends (late) instead of hanging the test. */
typedef struct reader_hold {
  sq_store_t *q;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool held, release;
} reader_hold_t;

static void *reader_hold_main(void *arg) {
  reader_hold_t *rh = arg;
  pthread_mutex_lock(&rh->q->rlock);
  pthread_mutex_lock(&rh->mu);
  rh->held = true;
  pthread_cond_broadcast(&rh->cv);
  struct timespec until;
  hold_deadline(&until, 1500);
  int rc = 0;
  while (!rh->release && rc == 0) rc = pthread_cond_timedwait(&rh->cv, &rh->mu, &until);
  pthread_mutex_unlock(&rh->mu);
  pthread_mutex_unlock(&rh->q->rlock);
  return NULL;
}

__attribute__((unused)) static void reader_hold_start(reader_hold_t *rh, store_t *s) {
  *rh = (reader_hold_t){.q = store__backend(s)};
  hold_thread_start(&rh->thread, &rh->mu, &rh->cv, &rh->held, reader_hold_main, rh);
}

__attribute__((unused)) static void reader_hold_end(reader_hold_t *rh) {
  pthread_mutex_lock(&rh->mu);
  rh->release = true;
  pthread_cond_broadcast(&rh->cv);
  pthread_mutex_unlock(&rh->mu);
  pthread_join(rh->thread, NULL);
  pthread_cond_destroy(&rh->cv);
  pthread_mutex_destroy(&rh->mu);
}
#endif

#endif
