/* Routes that exercise the HTTP machinery later layers rely on, registered only when the
 * environment has COORD_TEST_ROUTES=1 (the integration tests set it; nothing else should):
 *
 *   POST /_test/echo?delay_ms=N        answers the body back after N ms (coord_http_defer)
 *   GET  /_test/stream?chunks=N&interval_ms=M
 *                                      text/event-stream, one "data: i" event every M ms,
 *                                      pushed from a timer, then the end of the stream
 *   GET  /_test/pull?chunks=N&size=S   N chunks of S bytes produced on demand (pull callback)
 *   POST /_test/hold-store?ms=N        a stand-in for a WAL settle's pass: a thread holds the
 *                                      streams store's lock and its reader's lock for N ms
 *                                      (store_hold_for_test); 202 at once, 409 while one runs
 *
 * Deferring logs "test request deferred"; a client that leaves early triggers the abort
 * callback, which logs "test request aborted", so tests can see both happen. Owns one small job per request. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"
#include "store.h"

typedef struct test_job {
  coord_http_req_t *req; /* borrowed; NULL once answered or aborted */
  uv_timer_t timer;
  int remaining;
  int interval_ms;
  int next;
  size_t size;
} test_job_t;

static long test_query_long(coord_http_req_t *req, const char *name, long def, long max) {
  char buf[32];
  if (coord_http_req_query(req, name, buf, sizeof buf) <= 0) return def;
  long v = strtol(buf, NULL, 10);
  return v < 0 ? 0 : v > max ? max : v;
}

static void test_job_free(uv_handle_t *h) { free(h->data); }

static void test_job_done(test_job_t *job) {
  job->req = NULL;
  uv_timer_stop(&job->timer);
  uv_close((uv_handle_t *)&job->timer, test_job_free);
}

static void test_abort(coord_http_req_t *req, void *ud) {
  test_job_t *job = ud;
  log_info("test", "test request aborted", "{s:s}", "path", coord_http_req_path(req));
  test_job_done(job);
}

static void test_echo_fire(uv_timer_t *t) {
  test_job_t *job = t->data;
  size_t len;
  const char *body = coord_http_req_body(job->req, &len);
  coord_http_respond(job->req, 200, "application/octet-stream", body, len);
  test_job_done(job);
}

static test_job_t *test_job_new(coord_daemon_t *d, coord_http_req_t *req) {
  test_job_t *job = xcalloc(1, sizeof *job);
  job->req = req;
  uv_timer_init(d->loop, &job->timer);
  job->timer.data = job;
  return job;
}

static void test_echo(coord_http_req_t *req, void *ud) {
  test_job_t *job = test_job_new(ud, req);
  coord_http_defer(req, test_abort, job);
  log_info("test", "test request deferred", "{s:s}", "path", coord_http_req_path(req));
  uv_timer_start(&job->timer, test_echo_fire, (uint64_t)test_query_long(req, "delay_ms", 0, 60000), 0);
}

static void test_stream_tick(uv_timer_t *t) {
  test_job_t *job = t->data;
  char line[64];
  int n = snprintf(line, sizeof line, "data: %d\n\n", job->next++);
  if (coord_http_stream_write(job->req, line, (size_t)n) < 0 || --job->remaining <= 0) {
    coord_http_stream_end(job->req);
    test_job_done(job);
    return;
  }
  uv_timer_start(&job->timer, test_stream_tick, (uint64_t)job->interval_ms, 0);
}

static void test_stream(coord_http_req_t *req, void *ud) {
  test_job_t *job = test_job_new(ud, req);
  job->remaining = (int)test_query_long(req, "chunks", 3, 100000);
  job->interval_ms = (int)test_query_long(req, "interval_ms", 10, 60000);
  coord_http_add_header(req, "x-test", "stream");
  coord_http_stream_begin(req, 200, "text/event-stream", NULL, test_abort, job);
  if (job->remaining == 0) {
    coord_http_stream_end(req);
    test_job_done(job);
    return;
  }
  uv_timer_start(&job->timer, test_stream_tick, 0, 0);
}

static bool test_pull_more(coord_http_req_t *req, void *ud, size_t budget) {
  test_job_t *job = ud;
  while (job->remaining > 0 && budget >= job->size) {
    char *chunk = xmalloc(job->size);
    memset(chunk, 'a' + job->next % 26, job->size);
    job->next++;
    job->remaining--;
    budget -= job->size;
    if (coord_http_stream_write(req, chunk, job->size) < 0) job->remaining = 0;
    free(chunk);
  }
  if (job->remaining == 0) {
    coord_http_stream_end(req);
    test_job_done(job);
    return false;
  }
  return true;
}

static void test_pull(coord_http_req_t *req, void *ud) {
  test_job_t *job = test_job_new(ud, req);
  job->remaining = (int)test_query_long(req, "chunks", 4, 1000000);
  job->size = (size_t)test_query_long(req, "size", 1000, 65536);
  if (job->size == 0) job->size = 1;
  coord_http_stream_begin(req, 200, "application/octet-stream", test_pull_more, test_abort, job);
}

static void test_hold_store(coord_http_req_t *req, void *ud) {
  coord_daemon_t *d = ud;
  long ms = test_query_long(req, "ms", 500, 10000);
  int rc = d->streams_store ? store_hold_for_test(d->streams_store, (uint32_t)ms) : -ENOENT;
  if (rc == 0) {
    char body[64];
    int n = snprintf(body, sizeof body, "{\"held_ms\":%ld}\n", ms);
    coord_http_respond(req, 202, "application/json", body, (size_t)n);
    return;
  }
  coord_http_respond_error(req, rc == -EBUSY ? 409 : 400, rc == -EBUSY ? "conflict" : "bad_request",
                           rc == -EBUSY ? "a hold runs already" : "ms: 1 to 10000, and a store");
}

int coord__testroutes_register(coord_daemon_t *d) {
  const char *on = getenv("COORD_TEST_ROUTES");
  if (!on || strcmp(on, "1") != 0) return 0;
  log_warn("test", "test routes enabled (COORD_TEST_ROUTES=1)", NULL);
  int rc = coord_http_route(d->http, COORD_HTTP_POST, "/_test/echo", NULL, test_echo, d);
  if (rc == 0) rc = coord_http_route(d->http, COORD_HTTP_GET, "/_test/stream", NULL, test_stream, d);
  if (rc == 0) rc = coord_http_route(d->http, COORD_HTTP_GET, "/_test/pull", NULL, test_pull, d);
  if (rc == 0)
    rc = coord_http_route(d->http, COORD_HTTP_POST, "/_test/hold-store", NULL, test_hold_store, d);
  return rc;
}
