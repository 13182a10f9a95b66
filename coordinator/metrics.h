/* A registry of counters, gauges and histograms rendered in the Prometheus text format
 * (version 0.0.4), for GET /metrics.
 *
 * A family has a name, help text and type; a series is one label set of a family. Hot
 * paths look a series up once and keep the pointer (stable until coord_metrics_free), so
 * counting is a plain add. Values that live elsewhere (another module's stats struct, the
 * daemon's connection count) are copied in by collectors, which run at render time. Label
 * values are escaped on output; keep label sets bounded (route patterns, not raw paths).
 * Loop thread only. Histograms use base/hist.h (microseconds) and are rendered in seconds. */
#ifndef COORD_METRICS_H
#define COORD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/hist.h"

typedef enum {
  COORD_METRIC_COUNTER,
  COORD_METRIC_GAUGE,
  COORD_METRIC_HISTOGRAM,
} coord_metric_type_t;

typedef struct coord_metrics coord_metrics_t;
typedef struct coord_metric_family coord_metric_family_t;
typedef struct coord_metric coord_metric_t;

typedef void (*coord_metrics_collect_fn)(coord_metrics_t *m, void *ud);

coord_metrics_t *coord_metrics_new(void);
void coord_metrics_free(coord_metrics_t *m);

/* Registers a family, or returns the existing one of that name (type must match; a
 * mismatch is a programming error and aborts). name must match [a-zA-Z_:][a-zA-Z0-9_:]*.
 * For histograms, bounds_us/nbounds are the bucket bounds (NULL = base defaults). */
coord_metric_family_t *coord_metrics_family(coord_metrics_t *m, const char *name,
                                            const char *help, coord_metric_type_t type);
coord_metric_family_t *coord_metrics_histogram(coord_metrics_t *m, const char *name,
                                               const char *help, const uint64_t *bounds_us,
                                               size_t nbounds);
/* A histogram of plain quantities (counts, sizes): bounds and observations are rendered as
 * they are, not converted from microseconds to seconds. */
coord_metric_family_t *coord_metrics_histogram_plain(coord_metrics_t *m, const char *name,
                                                     const char *help, const uint64_t *bounds,
                                                     size_t nbounds);

/* The series of fam with the given labels: a NULL-terminated list of name, value, name,
 * value, ... (labels may be NULL for none). Created on first use. Label names must be
 * valid Prometheus label names; values any UTF-8 text. */
coord_metric_t *coord_metric_series(coord_metric_family_t *fam, const char *const *labels);

void coord_metric_add(coord_metric_t *s, double v); /* counters and gauges */
void coord_metric_set(coord_metric_t *s, double v); /* gauges (and collectors of counters) */
double coord_metric_value(const coord_metric_t *s);
/* Histogram series: record one observation in microseconds / reach the histogram. */
void coord_metric_observe_us(coord_metric_t *s, uint64_t us);
base_hist_t *coord_metric_hist(coord_metric_t *s);

/* Adds a collector run (in registration order) at the start of every render. */
void coord_metrics_on_collect(coord_metrics_t *m, coord_metrics_collect_fn fn, void *ud);

/* Runs the collectors and renders every family (in registration order, series in creation
 * order). Returns an owned NUL-terminated string; *len gets its length. */
char *coord_metrics_render(coord_metrics_t *m, size_t *len) __attribute__((warn_unused_result));

#endif
