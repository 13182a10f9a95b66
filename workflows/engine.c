/* The run engine's shell: its configuration, the two uv handles every run shares (one
 * timer driving a heap of wf__tmr_t, one zero-delay timer draining the task queue), the
 * map of live runs, the random source of retry jitter, and engine creation and teardown.
 *
 * It does not run steps (run_exec.c and the kind files do) and does not implement the
 * public run functions (run_api.c). One uv timer for all timers keeps a run's many
 * short-lived timers (coalescing windows, backoffs, timeouts) free of handle close
 * round trips. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "engine_internal.h"

/* ---- timer heap (min-heap on due) ---- */

void wf__tmr_init(wf__tmr_t *t, void (*cb)(wf__tmr_t *t)) {
  t->due = 0;
  t->idx = SIZE_MAX;
  t->cb = cb;
}

static void heap_swap(wf_engine_t *e, size_t a, size_t b) {
  wf__tmr_t *t = e->heap[a];
  e->heap[a] = e->heap[b];
  e->heap[b] = t;
  e->heap[a]->idx = a;
  e->heap[b]->idx = b;
}

static bool heap_less(const wf__tmr_t *a, const wf__tmr_t *b) {
  return a->due < b->due;
}

static void heap_up(wf_engine_t *e, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(e->heap[i], e->heap[p])) break;
    heap_swap(e, i, p);
    i = p;
  }
}

static void heap_down(wf_engine_t *e, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < e->nheap && heap_less(e->heap[l], e->heap[m])) m = l;
    if (r < e->nheap && heap_less(e->heap[r], e->heap[m])) m = r;
    if (m == i) return;
    heap_swap(e, i, m);
    i = m;
  }
}

static void heap_remove(wf_engine_t *e, wf__tmr_t *t) {
  size_t i = t->idx;
  e->nheap--;
  if (i != e->nheap) {
    e->heap[i] = e->heap[e->nheap];
    e->heap[i]->idx = i;
    heap_down(e, i);
    heap_up(e, i);
  }
  t->idx = SIZE_MAX;
}

static void timer_cb(uv_timer_t *h);

static void timer_arm(wf_engine_t *e) {
  if (e->freeing) return;
  if (e->nheap == 0) {
    uv_timer_stop(&e->timer);
    return;
  }
  uint64_t now = uv_now(e->loop);
  uint64_t due = e->heap[0]->due;
  uv_timer_start(&e->timer, timer_cb, due > now ? due - now : 0, 0);
}

/* Fires every timer that is due, earliest first; callbacks may start and stop timers. */
static void timer_cb(uv_timer_t *h) {
  wf_engine_t *e = h->data;
  uint64_t now = uv_now(e->loop);
  e->in_timer_cb = true;
  while (e->nheap > 0 && e->heap[0]->due <= now && !e->freeing) {
    wf__tmr_t *t = e->heap[0];
    heap_remove(e, t);
    t->cb(t);
  }
  e->in_timer_cb = false;
  timer_arm(e);
}

void wf__tmr_start(wf_engine_t *e, wf__tmr_t *t, int64_t delay_ms) {
  if (wf__tmr_armed(t)) heap_remove(e, t);
  if (delay_ms < 0) delay_ms = 0;
  /* Started from a timer callback, a zero delay would fire in the same pass again and
   * again; it waits for the next loop turn instead. */
  if (e->in_timer_cb && delay_ms == 0) delay_ms = 1;
  /* From the clock now, not the loop's time cached at the start of this turn: that lags
   * by the turn's work so far, and a Retry-After of 300 ms fired 2 ms early (before the
   * server's wish) under load. The loop's time itself is left alone (no uv_update_time):
   * moved forward in the middle of libuv's timer pass, it let timers started there fire
   * again in the same pass, with no I/O in between. uv_now counts in the same clock as
   * uv_hrtime unless the coarse clock ticks every ms (then it lags it by less than 1 ms). */
  uint64_t now = uv_now(e->loop), clock_ms = uv_hrtime() / 1000000u;
  t->due = (clock_ms > now ? clock_ms : now) + (uint64_t)delay_ms;
  if (e->nheap == e->heap_cap) {
    e->heap_cap = e->heap_cap ? e->heap_cap * 2 : 64;
    e->heap = xrealloc(e->heap, e->heap_cap * sizeof *e->heap);
  }
  t->idx = e->nheap;
  e->heap[e->nheap++] = t;
  heap_up(e, t->idx);
  if (e->heap[0] == t) timer_arm(e);
}

void wf__tmr_stop(wf_engine_t *e, wf__tmr_t *t) {
  if (!wf__tmr_armed(t)) return;
  bool was_first = e->heap[0] == t;
  heap_remove(e, t);
  if (was_first) timer_arm(e);
}

/* ---- tasks ---- */

void wf__task_init(wf__task_t *t, void (*fn)(wf__task_t *t)) {
  base_queue_init(&t->link);
  t->fn = fn;
}

static void kick_cb(uv_idle_t *h);

void wf__task_post(wf_engine_t *e, wf__task_t *t) {
  if (base_queue_linked(&t->link) || e->freeing) return;
  base_queue_insert_tail(&e->tasks, &t->link);
  if (!uv_is_active((uv_handle_t *)&e->kick)) uv_idle_start(&e->kick, kick_cb);
}

void wf__task_cancel(wf__task_t *t) {
  base_queue_remove(&t->link);
}

/* Runs the tasks queued before this turn; tasks they post wait for the next turn, so a
 * long chain of instant steps cannot hold the loop. An idle handle, not a 0 ms timer:
 * libuv 1.44 runs a timer started from its own callback again in the same timer pass,
 * so a chain ran to its end before the loop polled again
 * (test_a_chain_of_tasks_runs_one_link_per_loop_turn). */
static void kick_cb(uv_idle_t *h) {
  wf_engine_t *e = h->data;
  base_queue_t batch;
  base_queue_init(&batch);
  if (!base_queue_empty(&e->tasks)) {
    /* Move the whole queue onto batch. */
    batch.next = e->tasks.next;
    batch.prev = e->tasks.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    base_queue_init(&e->tasks);
  }
  while (!base_queue_empty(&batch) && !e->freeing) {
    base_queue_t *q = base_queue_head(&batch);
    base_queue_remove(q);
    wf__task_t *t = base_queue_data(q, wf__task_t, link);
    t->fn(t);
  }
  /* Left over only when freeing: unlink so nothing points at the stack. */
  while (!base_queue_empty(&batch)) base_queue_remove(base_queue_head(&batch));
  if (base_queue_empty(&e->tasks) || e->freeing) uv_idle_stop(&e->kick);
}

/* ---- engine ---- */

int64_t wf__now_ms(const wf_engine_t *e) {
  if (e->clock.wall_ms) return e->clock.wall_ms(e->clock.ud);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t wf__random(wf_engine_t *e) {
  uint64_t x = e->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  e->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

wf__run_t *wf__run_find(wf_engine_t *e, const char *id) {
  if (!id) return NULL;
  base_map_node_t *n = base_map_get(&e->runs, id, strlen(id));
  return n ? container_of(n, wf__run_t, node) : NULL;
}

int wf_engine_new(const wf_engine_options_t *opts, wf_engine_t **out) {
  if (!opts || !out || !opts->loop || !opts->store || !opts->hub || !opts->agents) return -EINVAL;
  wf_engine_t *e = xcalloc(1, sizeof *e);
  e->loop = opts->loop;
  e->store = opts->store;
  e->hub = opts->hub;
  e->agents = opts->agents;
  e->registry = opts->registry;
  if (opts->config) e->cfg = *opts->config;
  if (e->cfg.token_coalesce_ms == 0) e->cfg.token_coalesce_ms = WF__DEFAULT_COALESCE_MS;
  if (e->cfg.token_coalesce_ms < 0) e->cfg.token_coalesce_ms = 0;
  if (e->cfg.token_max_bytes == 0) e->cfg.token_max_bytes = WF__DEFAULT_TOKEN_MAX;
  if (e->cfg.max_runs == 0) e->cfg.max_runs = WF__DEFAULT_MAX_RUNS;
  e->default_tenant = xstrdup(e->cfg.default_tenant ? e->cfg.default_tenant : "default");
  e->cfg.default_tenant = e->default_tenant;
  if (opts->clock) e->clock = *opts->clock;
  e->rng = e->cfg.random_seed;
  while (e->rng == 0 && getrandom(&e->rng, sizeof e->rng, 0) != (ssize_t)sizeof e->rng) {
  }
  if (e->rng == 0) e->rng = 0x9E3779B97F4A7C15ull;
  base_queue_init(&e->tasks);
  base_map_init(&e->runs);
  base_queue_init(&e->run_list);
  uv_timer_init(e->loop, &e->timer);
  uv_idle_init(e->loop, &e->kick);
  e->timer.data = e;
  e->kick.data = e;
  e->handles_open = 2;
  *out = e;
  return 0;
}

static void engine_handle_closed(uv_handle_t *h) {
  wf_engine_t *e = h->data;
  if (--e->handles_open > 0) return;
  free(e->heap);
  base_map_close(&e->runs);
  free(e->default_tenant);
  free(e);
}

void wf_engine_free(wf_engine_t *e) {
  if (!e) return;
  while (!base_queue_empty(&e->run_list)) {
    wf__run_t *r = base_queue_data(base_queue_head(&e->run_list), wf__run_t, link);
    wf__run_abandon(r);
  }
  e->freeing = true;
  while (!base_queue_empty(&e->tasks)) base_queue_remove(base_queue_head(&e->tasks));
  while (e->nheap > 0) heap_remove(e, e->heap[0]);
  uv_close((uv_handle_t *)&e->timer, engine_handle_closed);
  uv_close((uv_handle_t *)&e->kick, engine_handle_closed);
}

void wf_engine_set_registry(wf_engine_t *e, const wf_registry_t *registry) {
  if (e) e->registry = registry;
}

void wf_engine_stats(const wf_engine_t *e, wf_engine_stats_t *out) {
  *out = e->stats;
  out->runs_active = e->running;
}
