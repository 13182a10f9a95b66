/* Fixed-bucket latency histograms; see base/hist.h. */
#include "base/hist.h"

#include <string.h>

const uint64_t base_hist_default_bounds_us[] = {
    50,     100,    250,    500,     1000,    2500,    5000,    10000,  25000,
    50000,  100000, 250000, 500000,  1000000, 2500000, 5000000, 10000000,
};
const size_t base_hist_default_nbounds =
    sizeof(base_hist_default_bounds_us) / sizeof(base_hist_default_bounds_us[0]);

void base_hist_init(base_hist_t *h, const uint64_t *bounds_us, size_t nbounds) {
  memset(h, 0, sizeof *h);
  if (!bounds_us) {
    bounds_us = base_hist_default_bounds_us;
    nbounds = base_hist_default_nbounds;
  }
  if (nbounds > BASE_HIST_MAX_BUCKETS) nbounds = BASE_HIST_MAX_BUCKETS;
  memcpy(h->bounds_us, bounds_us, nbounds * sizeof bounds_us[0]);
  h->nbounds = nbounds;
}

void base_hist_record_n(base_hist_t *h, uint64_t value_us, uint64_t n) {
  size_t lo = 0, hi = h->nbounds; /* first bound >= value, or nbounds (+Inf) */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (h->bounds_us[mid] >= value_us) hi = mid;
    else lo = mid + 1;
  }
  h->counts[lo] += n;
  h->count += n;
  h->sum_us += value_us * n;
}

void base_hist_record(base_hist_t *h, uint64_t value_us) { base_hist_record_n(h, value_us, 1); }

uint64_t base_hist_quantile(const base_hist_t *h, double q) {
  if (h->count == 0) return 0;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  double rank = q * (double)h->count;
  uint64_t seen = 0;
  for (size_t i = 0; i <= h->nbounds; i++) {
    if (h->counts[i] == 0) continue;
    if ((double)(seen + h->counts[i]) >= rank) {
      uint64_t lower = i == 0 ? 0 : h->bounds_us[i - 1];
      if (i == h->nbounds) return lower; /* +Inf bucket: report its floor */
      uint64_t upper = h->bounds_us[i];
      double frac = (rank - (double)seen) / (double)h->counts[i];
      return lower + (uint64_t)(frac * (double)(upper - lower));
    }
    seen += h->counts[i];
  }
  return h->nbounds ? h->bounds_us[h->nbounds - 1] : 0;
}
