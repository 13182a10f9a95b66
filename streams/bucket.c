/* Token buckets for publish rate limits (per tenant, per topic).
 *
 * Pure arithmetic on a caller-supplied monotonic clock in ms, so tests drive time
 * explicitly. A bucket holds at most `burst` tokens and refills at `rate` per second;
 * check and take are separate so that a publish can test the tenant's and the topic's
 * bucket before spending from either. */
#include "internal.h"

void stream__bucket_init(stream_bucket_t *b, uint32_t burst, uint64_t now_ms) {
  b->tokens = burst;
  b->last_ms = now_ms;
}

bool stream__bucket_check(stream_bucket_t *b, double rate, uint32_t burst, uint64_t now_ms, uint32_t *retry_ms) {
  if (rate <= 0) return true;
  if (burst == 0) burst = 1;
  if (now_ms > b->last_ms) {
    b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
    if (b->tokens > burst) b->tokens = burst;
    b->last_ms = now_ms;
  }
  if (b->tokens >= 1.0) return true;
  if (retry_ms) {
    double ms = (1.0 - b->tokens) * 1000.0 / rate;
    uint32_t whole = ms > 3600000 ? 3600000 : (uint32_t)ms;
    if ((double)whole < ms && whole < 3600000) whole++; /* round up */
    *retry_ms = whole ? whole : 1;
  }
  return false;
}

void stream__bucket_take(stream_bucket_t *b) {
  if (b->tokens >= 1.0) b->tokens -= 1.0;
}
