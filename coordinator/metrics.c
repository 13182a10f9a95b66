/* Prometheus metrics registry and text rendering; see metrics.h. Owns the families, their
 * series and the collector list; it knows nothing of HTTP (http.c serves the text). */
#include "metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

struct coord_metric {
  char *labels; /* owned; rendered label list without braces, "" for none */
  double value;
  base_hist_t hist; /* histograms only */
  coord_metric_family_t *fam; /* borrowed back-pointer */
};

struct coord_metric_family {
  char *name; /* owned */
  char *help; /* owned */
  coord_metric_type_t type;
  double divisor; /* histograms: 1e6 renders microseconds as seconds, 1 plain values */
  uint64_t bounds_us[BASE_HIST_MAX_BUCKETS];
  size_t nbounds;
  coord_metric_t **series; /* owned array of owned series */
  size_t nseries, cap;
};

typedef struct metrics_collector {
  coord_metrics_collect_fn fn;
  void *ud;
} metrics_collector_t;

struct coord_metrics {
  coord_metric_family_t **fams; /* owned */
  size_t nfams, cap;
  metrics_collector_t *collectors; /* owned array */
  size_t ncollectors;
};

/* Growable output buffer. */
typedef struct metrics_buf {
  char *p;
  size_t len, cap;
} metrics_buf_t;

static void buf_reserve(metrics_buf_t *b, size_t more) {
  b->p = xgrow(b->p, &b->cap, b->len + more + 1, 4096);
}

static void buf_put(metrics_buf_t *b, const char *s, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_puts(metrics_buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(metrics_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(metrics_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Prometheus sample values: integers without exponent, others round-trip exact. */
static void buf_value(metrics_buf_t *b, double v) {
  if (isnan(v)) buf_puts(b, "NaN");
  else if (isinf(v)) buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 1e15) buf_printf(b, "%.0f", v);
  else {
    /* Shortest of 15 or 17 significant digits that reads back as the same double. */
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof tmp, "%.17g", v);
    buf_puts(b, tmp);
  }
}

static bool metrics_name_valid(const char *s, bool allow_colon) {
  if (!*s || isdigit((unsigned char)*s)) return false;
  for (; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_' || (allow_colon && *s == ':'))) return false;
  return true;
}

coord_metrics_t *coord_metrics_new(void) { return xcalloc(1, sizeof(coord_metrics_t)); }

void coord_metrics_free(coord_metrics_t *m) {
  if (!m) return;
  for (size_t i = 0; i < m->nfams; i++) {
    coord_metric_family_t *f = m->fams[i];
    for (size_t j = 0; j < f->nseries; j++) {
      free(f->series[j]->labels);
      free(f->series[j]);
    }
    free(f->series);
    free(f->name);
    free(f->help);
    free(f);
  }
  free(m->fams);
  free(m->collectors);
  free(m);
}

coord_metric_family_t *coord_metrics_family(coord_metrics_t *m, const char *name,
                                            const char *help, coord_metric_type_t type) {
  for (size_t i = 0; i < m->nfams; i++) {
    if (strcmp(m->fams[i]->name, name) == 0) {
      if (m->fams[i]->type != type) abort();
      return m->fams[i];
    }
  }
  if (!metrics_name_valid(name, true)) abort();
  coord_metric_family_t *f = xcalloc(1, sizeof *f);
  f->name = xstrdup(name);
  f->help = xstrdup(help ? help : "");
  f->type = type;
  f->divisor = 1e6;
  f->nbounds = base_hist_default_nbounds;
  memcpy(f->bounds_us, base_hist_default_bounds_us, f->nbounds * sizeof(uint64_t));
  if (m->nfams == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 16;
    m->fams = xrealloc(m->fams, m->cap * sizeof *m->fams);
  }
  m->fams[m->nfams++] = f;
  return f;
}

coord_metric_family_t *coord_metrics_histogram(coord_metrics_t *m, const char *name,
                                               const char *help, const uint64_t *bounds_us,
                                               size_t nbounds) {
  coord_metric_family_t *f = coord_metrics_family(m, name, help, COORD_METRIC_HISTOGRAM);
  if (bounds_us && f->nseries == 0) {
    f->nbounds = nbounds < BASE_HIST_MAX_BUCKETS ? nbounds : BASE_HIST_MAX_BUCKETS;
    memcpy(f->bounds_us, bounds_us, f->nbounds * sizeof(uint64_t));
  }
  return f;
}

coord_metric_family_t *coord_metrics_histogram_plain(coord_metrics_t *m, const char *name,
                                                     const char *help, const uint64_t *bounds,
                                                     size_t nbounds) {
  coord_metric_family_t *f = coord_metrics_histogram(m, name, help, bounds, nbounds);
  f->divisor = 1;
  return f;
}

static void metrics_escape_label(metrics_buf_t *b, const char *v) {
  for (; *v; v++) {
    if (*v == '\\') buf_puts(b, "\\\\");
    else if (*v == '"') buf_puts(b, "\\\"");
    else if (*v == '\n') buf_puts(b, "\\n");
    else buf_put(b, v, 1);
  }
}

coord_metric_t *coord_metric_series(coord_metric_family_t *fam, const char *const *labels) {
  metrics_buf_t b = {0};
  buf_puts(&b, "");
  for (size_t i = 0; labels && labels[i]; i += 2) {
    if (!metrics_name_valid(labels[i], false) || !labels[i + 1]) abort();
    buf_printf(&b, "%s%s=\"", i ? "," : "", labels[i]);
    metrics_escape_label(&b, labels[i + 1]);
    buf_puts(&b, "\"");
  }
  for (size_t i = 0; i < fam->nseries; i++) {
    if (strcmp(fam->series[i]->labels, b.p) == 0) {
      free(b.p);
      return fam->series[i];
    }
  }
  coord_metric_t *s = xcalloc(1, sizeof *s);
  s->labels = b.p;
  s->fam = fam;
  if (fam->type == COORD_METRIC_HISTOGRAM) base_hist_init(&s->hist, fam->bounds_us, fam->nbounds);
  if (fam->nseries == fam->cap) {
    fam->cap = fam->cap ? fam->cap * 2 : 8;
    fam->series = xrealloc(fam->series, fam->cap * sizeof *fam->series);
  }
  fam->series[fam->nseries++] = s;
  return s;
}

void coord_metric_add(coord_metric_t *s, double v) { s->value += v; }
void coord_metric_set(coord_metric_t *s, double v) { s->value = v; }
double coord_metric_value(const coord_metric_t *s) { return s->value; }
void coord_metric_observe_us(coord_metric_t *s, uint64_t us) { base_hist_record(&s->hist, us); }
base_hist_t *coord_metric_hist(coord_metric_t *s) { return &s->hist; }

void coord_metrics_on_collect(coord_metrics_t *m, coord_metrics_collect_fn fn, void *ud) {
  m->collectors = xrealloc(m->collectors, (m->ncollectors + 1) * sizeof *m->collectors);
  m->collectors[m->ncollectors++] = (metrics_collector_t){fn, ud};
}

/* name{labels[,extra]} with braces only when there is something inside. */
static void metrics_series_name(metrics_buf_t *b, const char *name, const char *suffix,
                                const char *labels, const char *extra) {
  buf_puts(b, name);
  buf_puts(b, suffix);
  if (!*labels && !extra) return;
  buf_puts(b, "{");
  buf_puts(b, labels);
  if (extra) {
    if (*labels) buf_puts(b, ",");
    buf_puts(b, extra);
  }
  buf_puts(b, "}");
}

static void metrics_render_help(metrics_buf_t *b, const coord_metric_family_t *f) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  buf_printf(b, "# HELP %s ", f->name);
  for (const char *h = f->help; *h; h++) {
    if (*h == '\\') buf_puts(b, "\\\\");
    else if (*h == '\n') buf_puts(b, "\\n");
    else buf_put(b, h, 1);
  }
  buf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
}

static void metrics_render_hist(metrics_buf_t *b, const coord_metric_family_t *f,
                                const coord_metric_t *s) {
  const base_hist_t *h = &s->hist;
  uint64_t cum = 0;
  char le[64];
  for (size_t i = 0; i <= h->nbounds; i++) {
    cum += h->counts[i];
    if (i < h->nbounds) snprintf(le, sizeof le, "le=\"%.6g\"", (double)h->bounds_us[i] / f->divisor);
    else snprintf(le, sizeof le, "le=\"+Inf\"");
    metrics_series_name(b, f->name, "_bucket", s->labels, le);
    buf_printf(b, " %llu\n", (unsigned long long)cum);
  }
  metrics_series_name(b, f->name, "_sum", s->labels, NULL);
  buf_puts(b, " ");
  buf_value(b, (double)h->sum_us / f->divisor);
  buf_puts(b, "\n");
  metrics_series_name(b, f->name, "_count", s->labels, NULL);
  buf_printf(b, " %llu\n", (unsigned long long)h->count);
}

char *coord_metrics_render(coord_metrics_t *m, size_t *len) {
  for (size_t i = 0; i < m->ncollectors; i++) m->collectors[i].fn(m, m->collectors[i].ud);
  metrics_buf_t b = {0};
  buf_puts(&b, "");
  for (size_t i = 0; i < m->nfams; i++) {
    const coord_metric_family_t *f = m->fams[i];
    metrics_render_help(&b, f);
    for (size_t j = 0; j < f->nseries; j++) {
      const coord_metric_t *s = f->series[j];
      if (f->type == COORD_METRIC_HISTOGRAM) {
        metrics_render_hist(&b, f, s);
        continue;
      }
      metrics_series_name(&b, f->name, "", s->labels, NULL);
      buf_puts(&b, " ");
      buf_value(&b, s->value);
      buf_puts(&b, "\n");
    }
  }
  *len = b.len;
  return b.p;
}
