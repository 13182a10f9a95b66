/* The commit thread: store batches written off the loop, their results posted back.
 *
 * With cfg.commit_thread the hub owns one thread that runs store_batch_write for the batch
 * publish.c built on the loop (hub->writer.evs), one batch at a time, and posts the
 * result back through a uv_async handle. The loop applies it (stream__commit_landed) and
 * hands over the next batch at once, so it keeps reading, parsing and fanning out while
 * SQLite commits, and under load batches grow by themselves. The async handle is
 * referenced only while a batch is in flight: a loop then waits for the result instead
 * of spinning, and an idle hub still never keeps a loop alive. Between batches the thread
 * also runs the retention timer's slices (retention.c), whose results come back through
 * the same async handle (not referenced for them: retention keeps no loop alive). Owns the
 * thread, the hand-over state and the waits of drain and close; owns no batch logic
 * (publish.c). */
#include <errno.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

static void writer_main(void *arg) {
  stream_hub_t *hub = arg;
  stream_writer_t *w = &hub->writer;
  uv_mutex_lock(&w->mu);
  for (;;) {
    while (!w->job && !w->trim_job && !w->stop) uv_cond_wait(&w->wake, &w->mu);
    if (!w->job && w->trim_job && !w->stop) {
      /* A retention slice, only while no batch waits: batches carry the latency. */
      w->trim_job = false;
      stream_trim_args_t a = w->trim_args;
      uv_mutex_unlock(&w->mu);
      bool more;
      int rc = stream__retention_run(hub, &a, &more);
      uv_mutex_lock(&w->mu);
      w->trim_rc = rc;
      w->trim_more = more;
      w->trim_done = true;
      uv_async_send(&w->async);
      continue;
    }
    if (!w->job) break; /* stop, and nothing left to write */
    w->job = false;
    const store_event_t *evs = w->evs;
    size_t n = w->nevs, nt = w->ntops;
    uv_mutex_unlock(&w->mu);
    uint64_t t0 = uv_hrtime();
    int rc = store_batch_write_topics(hub->store, w->tops, nt, evs, n);
    uint64_t us = (uv_hrtime() - t0) / 1000;
    uv_mutex_lock(&w->mu);
    w->rc = rc;
    w->us = us;
    w->done = true;
    uv_cond_signal(&w->landed);
    uv_async_send(&w->async);
  }
  uv_mutex_unlock(&w->mu);
}

/* Takes the result when there is one (waiting for it when wait is set). */
static bool writer_take(stream_writer_t *w, bool wait, int *rc, uint64_t *us) {
  uv_mutex_lock(&w->mu);
  while (wait && !w->done) uv_cond_wait(&w->landed, &w->mu);
  bool got = w->done;
  if (got) {
    *rc = w->rc;
    *us = w->us;
    w->done = false;
  }
  uv_mutex_unlock(&w->mu);
  return got;
}

static void writer_land(stream_hub_t *hub, int rc, uint64_t us) {
  hub->writer.busy = false;
  uv_unref((uv_handle_t *)&hub->writer.async);
  stream__commit_landed(hub, rc, us);
}

/* Applies a retention slice's result when there is one. */
static void writer_trim_take(stream_hub_t *hub) {
  stream_writer_t *w = &hub->writer;
  if (!w->trim) return;
  uv_mutex_lock(&w->mu);
  bool got = w->trim_done;
  int rc = w->trim_rc;
  bool more = w->trim_more;
  w->trim_done = false;
  uv_mutex_unlock(&w->mu);
  if (!got) return;
  w->trim = false;
  stream__retention_landed(hub, rc, more);
}

static void writer_async_cb(uv_async_t *h) {
  stream_hub_t *hub = container_of(h, stream_hub_t, writer.async);
  int rc;
  uint64_t us;
  writer_trim_take(hub);
  /* A result that drain already took leaves a spurious wake-up behind. */
  if (!hub->writer.busy || !writer_take(&hub->writer, false, &rc, &us)) return;
  writer_land(hub, rc, us);
  /* The hub's check phase follows in this loop turn: callbacks, router, wakes. */
  stream__commit_run(hub);
}

int stream__writer_start(stream_hub_t *hub) {
  stream_writer_t *w = &hub->writer;
  int rc = uv_mutex_init(&w->mu);
  if (rc < 0) return rc;
  if ((rc = uv_cond_init(&w->wake)) < 0) goto fail_mu;
  if ((rc = uv_cond_init(&w->landed)) < 0) goto fail_wake;
  /* The thread first: until a job arrives it touches nothing but mu, wake and stop, so a
   * failed async init below can still stop it synchronously. */
  if ((rc = uv_thread_create(&w->thread, writer_main, hub)) < 0) goto fail_landed;
  if ((rc = uv_async_init(hub->loop, &w->async, writer_async_cb)) < 0) {
    uv_mutex_lock(&w->mu);
    w->stop = true;
    uv_cond_signal(&w->wake);
    uv_mutex_unlock(&w->mu);
    uv_thread_join(&w->thread);
    goto fail_landed;
  }
  uv_unref((uv_handle_t *)&w->async);
  w->on = true;
  return 0;
fail_landed:
  uv_cond_destroy(&w->landed);
fail_wake:
  uv_cond_destroy(&w->wake);
fail_mu:
  uv_mutex_destroy(&w->mu);
  return rc;
}

void stream__writer_submit(stream_hub_t *hub) {
  stream_writer_t *w = &hub->writer;
  w->busy = true;
  uv_ref((uv_handle_t *)&w->async);
  uv_mutex_lock(&w->mu);
  w->job = true;
  uv_cond_signal(&w->wake);
  uv_mutex_unlock(&w->mu);
}

void stream__writer_trim(stream_hub_t *hub) {
  stream_writer_t *w = &hub->writer;
  if (w->trim) return;
  w->trim = true;
  uv_mutex_lock(&w->mu);
  w->trim_job = true;
  uv_cond_signal(&w->wake);
  uv_mutex_unlock(&w->mu);
}

void stream__writer_wait(stream_hub_t *hub) {
  int rc;
  uint64_t us;
  if (!hub->writer.busy) return;
  (void)writer_take(&hub->writer, true, &rc, &us);
  writer_land(hub, rc, us);
}

void stream__writer_stop(stream_hub_t *hub) {
  stream_writer_t *w = &hub->writer;
  if (!w->on) return;
  stream__writer_wait(hub);
  uv_mutex_lock(&w->mu);
  w->stop = true;
  uv_cond_signal(&w->wake);
  uv_mutex_unlock(&w->mu);
  uv_thread_join(&w->thread);
  uv_cond_destroy(&w->landed);
  uv_cond_destroy(&w->wake);
  uv_mutex_destroy(&w->mu);
  w->on = false;
}
