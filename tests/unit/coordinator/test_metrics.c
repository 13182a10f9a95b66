/* Tests for coordinator/metrics.c: Prometheus text rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void test_metrics_render_counters_gauges_and_labels_in_text_format(void **state) {
  (void)state;
  coord_metrics_t *m = coord_metrics_new();
  coord_metric_family_t *req =
      coord_metrics_family(m, "coord_http_requests_total", "HTTP requests.", COORD_METRIC_COUNTER);
  coord_metric_family_t *open =
      coord_metrics_family(m, "coord_open_connections", "Open connections.", COORD_METRIC_GAUGE);
  coord_metric_t *ok =
      coord_metric_series(req, (const char *const[]){"route", "/healthz", "status", "200", NULL});
  coord_metric_add(ok, 1);
  coord_metric_add(ok, 2);
  coord_metric_t *odd = coord_metric_series(
      req, (const char *const[]){"route", "a\"b\\c\nd", "status", "404", NULL});
  coord_metric_add(odd, 1);
  assert_ptr_equal(ok, coord_metric_series(req, (const char *const[]){"route", "/healthz",
                                                                       "status", "200", NULL}));
  coord_metric_set(coord_metric_series(open, NULL), 2.5);
  size_t len;
  char *text = coord_metrics_render(m, &len);
  assert_string_equal(text,
                      "# HELP coord_http_requests_total HTTP requests.\n"
                      "# TYPE coord_http_requests_total counter\n"
                      "coord_http_requests_total{route=\"/healthz\",status=\"200\"} 3\n"
                      "coord_http_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"404\"} 1\n"
                      "# HELP coord_open_connections Open connections.\n"
                      "# TYPE coord_open_connections gauge\n"
                      "coord_open_connections 2.5\n");
  assert_int_equal(len, strlen(text));
  free(text);
  coord_metrics_free(m);
}

static void test_metrics_render_histograms_cumulatively_in_seconds(void **state) {
  (void)state;
  static const uint64_t bounds[] = {1000, 10000};
  coord_metrics_t *m = coord_metrics_new();
  coord_metric_family_t *lag =
      coord_metrics_histogram(m, "coord_loop_lag_seconds", "Lag.", bounds, 2);
  coord_metric_t *s = coord_metric_series(lag, NULL);
  coord_metric_observe_us(s, 500);
  coord_metric_observe_us(s, 2000);
  coord_metric_observe_us(s, 20000);
  size_t len;
  char *text = coord_metrics_render(m, &len);
  assert_string_equal(text, "# HELP coord_loop_lag_seconds Lag.\n"
                            "# TYPE coord_loop_lag_seconds histogram\n"
                            "coord_loop_lag_seconds_bucket{le=\"0.001\"} 1\n"
                            "coord_loop_lag_seconds_bucket{le=\"0.01\"} 2\n"
                            "coord_loop_lag_seconds_bucket{le=\"+Inf\"} 3\n"
                            "coord_loop_lag_seconds_sum 0.0225\n"
                            "coord_loop_lag_seconds_count 3\n");
  free(text);
  coord_metrics_free(m);
}

static void test_metrics_render_plain_histograms_without_unit_conversion(void **state) {
  (void)state;
  static const uint64_t bounds[] = {1, 10, 100};
  coord_metrics_t *m = coord_metrics_new();
  coord_metric_t *s = coord_metric_series(
      coord_metrics_histogram_plain(m, "coord_batch_events", "Batch.", bounds, 3), NULL);
  coord_metric_observe_us(s, 1);
  coord_metric_observe_us(s, 64);
  size_t len;
  char *text = coord_metrics_render(m, &len);
  assert_string_equal(text, "# HELP coord_batch_events Batch.\n"
                            "# TYPE coord_batch_events histogram\n"
                            "coord_batch_events_bucket{le=\"1\"} 1\n"
                            "coord_batch_events_bucket{le=\"10\"} 1\n"
                            "coord_batch_events_bucket{le=\"100\"} 2\n"
                            "coord_batch_events_bucket{le=\"+Inf\"} 2\n"
                            "coord_batch_events_sum 65\n"
                            "coord_batch_events_count 2\n");
  free(text);
  coord_metrics_free(m);
}

static void labelled_collector(coord_metrics_t *m, void *ud) {
  int *calls = ud;
  (*calls)++;
  coord_metric_family_t *f = coord_metrics_family(m, "x_total", "X.", COORD_METRIC_COUNTER);
  coord_metric_set(coord_metric_series(f, (const char *const[]){"lane", "data", NULL}), *calls);
}

static void test_metrics_run_collectors_before_each_render(void **state) {
  (void)state;
  coord_metrics_t *m = coord_metrics_new();
  int calls = 0;
  coord_metrics_on_collect(m, labelled_collector, &calls);
  size_t len;
  char *a = coord_metrics_render(m, &len);
  char *b = coord_metrics_render(m, &len);
  assert_int_equal(calls, 2);
  assert_non_null(strstr(a, "x_total{lane=\"data\"} 1\n"));
  assert_non_null(strstr(b, "x_total{lane=\"data\"} 2\n"));
  free(a);
  free(b);
  coord_metrics_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_metrics_render_counters_gauges_and_labels_in_text_format),
      cmocka_unit_test(test_metrics_render_histograms_cumulatively_in_seconds),
      cmocka_unit_test(test_metrics_render_plain_histograms_without_unit_conversion),
      cmocka_unit_test(test_metrics_run_collectors_before_each_render),
  };
  return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
