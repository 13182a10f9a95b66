/* Fixed-bucket histograms for latency metrics (Prometheus "histogram" semantics).
 *
 * Observations are in microseconds; bucket bounds are upper bounds (le) in microseconds,
 * ascending, chosen by the caller (base_hist_default_bounds_us covers 50 us .. 10 s).
 * Recording is O(log buckets) and allocation-free. Percentiles are estimated by linear
 * interpolation inside a bucket, good for status pages and tests; benchmarks compute
 * exact percentiles from raw samples instead. Not thread-safe: one owner per histogram. */
#ifndef BASE_HIST_H
#define BASE_HIST_H

#include <stddef.h>
#include <stdint.h>

#define BASE_HIST_MAX_BUCKETS 32

typedef struct base_hist {
  size_t nbounds;
  uint64_t bounds_us[BASE_HIST_MAX_BUCKETS]; /* upper bounds, ascending; +Inf is implicit */
  uint64_t counts[BASE_HIST_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
  uint64_t count;
  uint64_t sum_us;
} base_hist_t;

extern const uint64_t base_hist_default_bounds_us[];
extern const size_t base_hist_default_nbounds;

/* bounds NULL means the defaults; nbounds is clamped to BASE_HIST_MAX_BUCKETS. */
void base_hist_init(base_hist_t *h, const uint64_t *bounds_us, size_t nbounds);
void base_hist_record(base_hist_t *h, uint64_t value_us);
/* Records n observations of the same value at the cost of one: for hot paths where many
 * observations share a value (frames of one commit written together). */
void base_hist_record_n(base_hist_t *h, uint64_t value_us, uint64_t n);
/* q in [0,1]; returns an estimate in microseconds (0 when empty). */
uint64_t base_hist_quantile(const base_hist_t *h, double q);

#endif
