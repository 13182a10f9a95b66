/* Stand-alone replay driver for the fuzz targets when libFuzzer is not available (gcc
 * builds, CI): runs LLVMFuzzerTestOneInput on every file of the corpus directory given as
 * argv[1], then on deterministic pseudo-random mutations of them (byte flips, inserted
 * stream tokens, deletions, splices), bounded by a count and a wall-clock budget so it
 * stays a few seconds. A broken invariant aborts, which fails the ctest. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_common.h"

#define FZ_MAX_INPUT 65536

typedef struct seed {
  uint8_t *p;
  size_t n;
} seed_t;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void) { /* xorshift64*: fixed seed, same mutations on every run */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t load_corpus(const char *dir, seed_t **out) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "cannot open corpus %s\n", dir);
    exit(2);
  }
  char **names = NULL;
  size_t nn = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    names = realloc(names, (nn + 1) * sizeof *names);
    names[nn++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, nn, sizeof *names, cmp_names);
  seed_t *seeds = calloc(nn ? nn : 1, sizeof *seeds);
  for (size_t i = 0; i < nn; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    FILE *f = fopen(path, "rb");
    if (!f) exit(2);
    seeds[i].p = malloc(FZ_MAX_INPUT);
    seeds[i].n = fread(seeds[i].p, 1, FZ_MAX_INPUT, f);
    fclose(f);
    free(names[i]);
  }
  free(names);
  *out = seeds;
  return nn;
}

static const char *const tokens[] = {"\n", "\r", "\r\n", "\n\n", ":", ": ", "data: ", "data:",
                                     "event: ", "id: ", "retry: ", "error: ", "[DONE]",
                                     "\xEF\xBB\xBF", "\xff", "\xc3", "\"", "{", "}", "[", "]",
                                     "\\", "\\u0000", "null", "\"index\":", "-1", "99999999999"};

static size_t mutate(uint8_t *buf, size_t n, const seed_t *seeds, size_t nseeds) {
  int ops = 1 + (int)(rng() % 4);
  for (int k = 0; k < ops; k++) {
    size_t pos = n ? rng() % (n + 1) : 0;
    switch (rng() % 5) {
      case 0: /* flip */
        if (n) buf[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
        break;
      case 1: { /* insert a token */
        const char *t = tokens[rng() % (sizeof tokens / sizeof tokens[0])];
        size_t tl = strlen(t);
        if (n + tl > FZ_MAX_INPUT) break;
        memmove(buf + pos + tl, buf + pos, n - pos);
        memcpy(buf + pos, t, tl);
        n += tl;
        break;
      }
      case 2: { /* delete a range */
        if (!n || pos == n) break;
        size_t len = 1 + rng() % (n - pos < 32 ? n - pos : 32);
        memmove(buf + pos, buf + pos + len, n - pos - len);
        n -= len;
        break;
      }
      case 3: { /* splice a piece of another seed */
        const seed_t *s = &seeds[rng() % nseeds];
        if (!s->n) break;
        size_t from = rng() % s->n, len = 1 + rng() % (s->n - from);
        if (len > 256) len = 256;
        if (n + len > FZ_MAX_INPUT) break;
        memmove(buf + pos + len, buf + pos, n - pos);
        memcpy(buf + pos, s->p + from, len);
        n += len;
        break;
      }
      default: /* new config byte */
        if (n) buf[0] = (uint8_t)rng();
        break;
    }
  }
  return n;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR [MAX_MUTATIONS] [MAX_SECONDS]\n", argv[0]);
    return 2;
  }
  long max_mut = argc > 2 ? atol(argv[2]) : 20000;
  double max_s = argc > 3 ? atof(argv[3]) : 3.0;
  seed_t *seeds;
  size_t nseeds = load_corpus(argv[1], &seeds);
  if (!nseeds) {
    fprintf(stderr, "empty corpus %s\n", argv[1]);
    return 2;
  }
  for (size_t i = 0; i < nseeds; i++) LLVMFuzzerTestOneInput(seeds[i].p, seeds[i].n);
  uint8_t *buf = malloc(FZ_MAX_INPUT);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long done = 0;
  for (; done < max_mut; done++) {
    const seed_t *s = &seeds[rng() % nseeds];
    memcpy(buf, s->p, s->n);
    size_t n = mutate(buf, s->n, seeds, nseeds);
    LLVMFuzzerTestOneInput(buf, n);
    if ((done & 255) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &t);
      if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > max_s) break;
    }
  }
  printf("%s: %zu seeds, %ld mutations, no failure\n", argv[0], nseeds, done);
  for (size_t i = 0; i < nseeds; i++) free(seeds[i].p);
  free(seeds);
  free(buf);
  return 0;
}
