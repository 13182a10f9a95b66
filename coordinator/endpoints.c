/* The daemon's own HTTP endpoints: GET /healthz (alive), GET /readyz (ready, draining, or
 * a module's reason such as "overloaded")
 * and GET /metrics (Prometheus text), plus the collector that copies live connection
 * counts into gauges at scrape time. Later layers register their routes next to these. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void endpoints_healthz(coord_http_req_t *req, void *ud) {
  (void)ud;
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond_json_take(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void endpoints_readyz(coord_http_req_t *req, void *ud) {
  coord_daemon_t *d = ud;
  coord_http_add_header(req, "cache-control", "no-store");
  const char *why = d->state != COORD_STATE_RUNNING ? "draining"
                    : d->not_ready                  ? d->not_ready(d->not_ready_ud)
                                                    : NULL;
  if (!why)
    coord_http_respond_json_take(req, 200, json_pack("{s:s}", "status", "ready"));
  else {
    if (d->state == COORD_STATE_RUNNING) coord_http_add_header(req, "retry-after", "1");
    coord_http_respond_json_take(req, 503, json_pack("{s:s}", "status", why));
  }
}

static void endpoints_metrics(coord_http_req_t *req, void *ud) {
  coord_daemon_t *d = ud;
  size_t len;
  char *text = coord_metrics_render(d->metrics, &len);
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
  free(text);
}

static void endpoints_collect(coord_metrics_t *m, void *ud) {
  coord_daemon_t *d = ud;
  coord_metric_set(coord_metric_series(coord_metrics_family(m, "coord_open_connections",
                                                            "Open TCP connections (HTTP and WebSocket).",
                                                            COORD_METRIC_GAUGE),
                                       NULL),
                   (double)d->open_conns);
  coord_metric_set(coord_metric_series(coord_metrics_family(m, "coord_ws_connections",
                                                            "Open WebSocket connections.",
                                                            COORD_METRIC_GAUGE),
                                       NULL),
                   (double)coord_ws_count(d->ws));
  coord_metric_set(coord_metric_series(coord_metrics_family(m, "coord_ws_rx_paused",
                                                            "WebSockets not read from until their queued replies drain (backpressure).",
                                                            COORD_METRIC_GAUGE),
                                       NULL),
                   (double)coord__ws_paused_count(d->ws));
  coord_metric_set(coord_metric_series(coord_metrics_family(m, "coord_ready",
                                                            "1 while ready, 0 while draining.",
                                                            COORD_METRIC_GAUGE),
                                       NULL),
                   d->state == COORD_STATE_RUNNING ? 1 : 0);
  coord_metric_set(coord_metric_series(coord_metrics_family(m, "coord_max_connections",
                                                            "Effective connection limit (config and file descriptors).",
                                                            COORD_METRIC_GAUGE),
                                       NULL),
                   (double)d->max_conns);
}

int coord__endpoints_register(coord_daemon_t *d) {
  coord_metrics_on_collect(d->metrics, endpoints_collect, d);
  int rc = coord_http_route(d->http, COORD_HTTP_GET, "/healthz", NULL, endpoints_healthz, d);
  if (rc == 0) rc = coord_http_route(d->http, COORD_HTTP_GET, "/readyz", NULL, endpoints_readyz, d);
  if (rc == 0) rc = coord_http_route(d->http, COORD_HTTP_GET, "/metrics", NULL, endpoints_metrics, d);
  return rc;
}
