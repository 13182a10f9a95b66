/* Retention: deleting old events from the store in bounded slices.
 *
 * The hub's retention timer calls stream_hub_retention_step every retention_interval_ms
 * (sooner while a pass has work left). Each step deletes at most retention_budget rows by
 * the count rule (retention_max_events per topic), the age rule (retention_max_age_s) and
 * expires idempotency keys beyond the dedupe window. In memory the same rules apply at
 * read time (stream__topic_first, stream__expired), so a ring entry the store no longer
 * keeps is never served and a cursor gets a gap instead. */
#include "base/log.h"
#include "internal.h"

int stream_hub_retention_step(stream_hub_t *hub, bool *more) {
  int64_t now = stream__wall_ms(hub);
  int64_t min_ts = hub->cfg.retention_max_age_s ? now - (int64_t)hub->cfg.retention_max_age_s * 1000 : 0;
  int64_t dedupe_min = now - (int64_t)hub->cfg.dedupe_window_s * 1000;
  bool m = false;
  int rc = store_retention_run(hub->store, hub->cfg.retention_max_events, min_ts, dedupe_min,
                               hub->cfg.retention_budget, &m);
  if (rc < 0) log_error("streams", "retention failed", "{s:i}", "rc", rc);
  if (more) *more = rc == 0 && m;
  return rc;
}
