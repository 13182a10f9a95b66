/* wakeprobe: how late this machine wakes a sleeping process (docs/bench-tools.md).
 *
 * Sleeps --period-us (default 1000) --samples times (default 10000) and measures by how
 * much each sleep overran its period: the time a process that has just become runnable
 * waits for a core, plus the timer's own slack. Every delivery in a WebSocket benchmark
 * passes through such wake-ups (the publisher's timer, the server's poll, the reader's
 * poll), so run beside a benchmark (run-pubsub.sh WAKE_PROBE=1) it gives the latency the
 * machine adds to any process in that moment, the same for the daemon and for a peer.
 * Prints one JSON object with the quantiles in microseconds. No dependencies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

static long ns_between(const struct timespec *a, const struct timespec *b) {
  return (b->tv_sec - a->tv_sec) * 1000000000L + (b->tv_nsec - a->tv_nsec);
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
  long *late = malloc((size_t)samples * sizeof *late);
  if (!late) {
    fprintf(stderr, "wakeprobe: out of memory\n");
    return 1;
  }
  struct timespec period = {period_us / 1000000, (period_us % 1000000) * 1000};
  struct timespec start, t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (long i = 0; i < samples; i++) {
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &period, NULL) != 0) {
    } /* EINTR: sleep again; the overrun then counts the interruption too */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long over = ns_between(&t0, &t1) - period_us * 1000L;
    late[i] = over > 0 ? over : 0;
  }
  double wall_s = (double)ns_between(&start, &t1) / 1e9;
  double sum = 0;
  for (long i = 0; i < samples; i++) sum += (double)late[i];
  qsort(late, (size_t)samples, sizeof *late, cmp_long);
#define Q(p) ((double)late[(long)((double)(samples - 1) * (p))] / 1e3)
  printf("{\"samples\":%ld,\"period_us\":%ld,\"wall_s\":%.3f,\"late_us\":{\"p50\":%.1f,\"p90\":%.1f,"
         "\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f,\"mean\":%.1f}}\n",
         samples, period_us, wall_s, Q(0.50), Q(0.90), Q(0.99), Q(0.999), (double)late[samples - 1] / 1e3,
         sum / (double)samples / 1e3);
#undef Q
  free(late);
  return 0;
}
