/* wakeprobe: how late this machine wakes a sleeping process (docs/bench-tools.md).
 *
 * Sleeps --period-us (default 1000) --samples times (default 10000) and measures by how
 * much each sleep overran its period: the time a process that has just become runnable
 * waits for a core, plus the timer's own slack. Every delivery in a WebSocket benchmark
 * passes through such wake-ups (the server's poll, the reader's poll), so run beside a
 * benchmark (run-pubsub.sh WAKE_PROBE=1) it indicates what the machine adds to a wake-up
 * in that moment. An indicator: a busy server thread is scheduled unlike a sleeper, and
 * the overrun includes the timer's slack (about 50 us), which socket wake-ups do not have.
 * Prints one JSON object with the quantiles in microseconds. No dependencies. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int64_t ns_between(const struct timespec *a, const struct timespec *b) {
  return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000 + (b->tv_nsec - a->tv_nsec);
}

static int parse_long(const char *name, const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "wakeprobe: %s must be an integer in [%ld, %ld], got '%s'\n", name, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  long samples = 10000, period_us = 1000;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp(argv[i], "--samples") == 0) {
      if (parse_long("--samples", argv[++i], 1, 10000000, &samples) < 0) return 2;
    } else if (i + 1 < argc && strcmp(argv[i], "--period-us") == 0) {
      if (parse_long("--period-us", argv[++i], 1, 1000000, &period_us) < 0) return 2;
    } else {
      fprintf(stderr, "usage: wakeprobe [--samples N] [--period-us U]\n");
      return 2;
    }
  }
  int64_t *late = malloc((size_t)samples * sizeof *late);
  if (!late) {
    fprintf(stderr, "wakeprobe: out of memory\n");
    return 1;
  }
  struct timespec period = {period_us / 1000000, (period_us % 1000000) * 1000};
  struct timespec start, end, t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (long i = 0; i < samples; i++) {
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc;
    /* EINTR: sleep again; the overrun then counts the interruption too */
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &period, NULL)) == EINTR) {
    }
    if (rc != 0) {
      fprintf(stderr, "wakeprobe: clock_nanosleep failed (error %d)\n", rc);
      free(late);
      return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t over = ns_between(&t0, &t1) - (int64_t)period_us * 1000;
    late[i] = over > 0 ? over : 0;
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  double wall_s = (double)ns_between(&start, &end) / 1e9;
  double sum = 0;
  for (long i = 0; i < samples; i++) sum += (double)late[i];
  qsort(late, (size_t)samples, sizeof *late, cmp_i64);
#define Q(p) ((double)late[(long)((double)(samples - 1) * (p))] / 1e3)
  printf("{\"samples\":%ld,\"period_us\":%ld,\"wall_s\":%.3f,\"late_us\":{\"p50\":%.1f,\"p90\":%.1f,"
         "\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f,\"mean\":%.1f}}\n",
         samples, period_us, wall_s, Q(0.50), Q(0.90), Q(0.99), Q(0.999), (double)late[samples - 1] / 1e3,
         sum / (double)samples / 1e3);
#undef Q
  free(late);
  return 0;
}
