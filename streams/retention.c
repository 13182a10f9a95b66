/* Retention: deleting old events from the store in bounded slices.
 *
 * The hub's retention timer runs a slice every retention_interval_ms (sooner while a pass
 * has work left): on the commit thread when there is one (writer.c, between batches, so
 * the loop neither waits for the store lock a commit holds nor runs the deletes itself),
 * else on the loop. Each slice deletes at most retention_budget events by
 * the count rule (retention_max_events per topic), the age rule (retention_max_age_s) and
 * expires idempotency keys beyond the dedupe window. In memory the same rules apply at
 * read time (stream__topic_first, stream__expired), so a ring entry the store no longer
 * keeps is never served and a cursor gets a gap instead. */
#include "base/log.h"
#include "internal.h"

/* Events per slice at most when the loop runs the slices (no writer thread): a slice there
 * holds the loop for its whole length, a few ms at this size. */
#define RETENTION_LOOP_BUDGET 2000

void stream__retention_args(stream_hub_t *hub, stream_trim_args_t *out) {
  int64_t now = stream__wall_ms(hub);
  size_t budget = hub->cfg.retention_budget;
  if (!hub->writer.on && budget > RETENTION_LOOP_BUDGET) budget = RETENTION_LOOP_BUDGET;
  *out = (stream_trim_args_t){.max_events = hub->cfg.retention_max_events,
                              .min_ts_ms = hub->cfg.retention_max_age_s
                                               ? now - (int64_t)hub->cfg.retention_max_age_s * 1000
                                               : 0,
                              .dedupe_min_ts_ms = now - (int64_t)hub->cfg.dedupe_window_s * 1000,
                              .budget = budget};
}

int stream__retention_run(stream_hub_t *hub, const stream_trim_args_t *a, bool *more) {
  bool m = false;
  int rc = store_retention_run(hub->store, a->max_events, a->min_ts_ms, a->dedupe_min_ts_ms,
                               a->budget, &m);
  *more = rc == 0 && m;
  return rc;
}

int stream_hub_retention_step(stream_hub_t *hub, bool *more) {
  stream_trim_args_t a;
  stream__retention_args(hub, &a);
  bool m;
  int rc = stream__retention_run(hub, &a, &m);
  if (rc < 0) log_error("streams", "retention failed", "{s:i}", "rc", rc);
  if (more) *more = m;
  return rc;
}
