/* Helpers shared by the workflows unit tests: the repository root (from this file's
 * compile-time path, so tests run from any build folder), quote conversion for readable
 * JSON literals, and loading a document from a string. */
#ifndef WF_TEST_UTIL_H
#define WF_TEST_UTIL_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

/* The source tree root: __FILE__ is <root>/tests/unit/workflows/wf_test_util.h. */
static inline char *wft_root(void) {
  const char *f = __FILE__;
  const char *tail = strstr(f, "tests/unit/workflows/");
  if (!tail) return xstrdup(".");
  if (tail == f) return xstrdup(".");
  return xstrndup(f, (size_t)(tail - f - 1));
}

static inline char *wft_path(const char *rel) {
  char *root = wft_root();
  char *p = xasprintf("%s/%s", root, rel);
  free(root);
  return p;
}

/* JSON written with ' for " (tests never need a literal '). */
static inline char *wft_q(const char *s) {
  char *d = xstrdup(s);
  for (char *p = d; *p; p++)
    if (*p == '\'') *p = '"';
  return d;
}

/* Loads a '-quoted document as "t.json"; returns the errors as "path: reason" lines
 * ("" when valid). */
static inline char *wft_errors_of(const char *doc, const wf_registry_t *reg) {
  char *text = wft_q(doc);
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  int rc = wf_load_buffer(text, strlen(text), "t.json", reg, &wf, &errs);
  free(text);
  char *out = xstrdup("");
  for (size_t i = 0; i < wf_errors_count(errs); i++) {
    const wf_error_t *e = wf_errors_at(errs, i);
    char *next = xasprintf("%s%s%s%s%s", out, out[0] ? "\n" : "", e->path, e->path[0] ? ": " : "",
                           e->reason);
    free(out);
    out = next;
  }
  if (rc == 0 && wf_errors_count(errs) != 0) {
    free(out);
    out = xstrdup("BUG: success with errors");
  }
  if (rc != 0 && wf_errors_count(errs) == 0) {
    free(out);
    out = xstrdup("BUG: failure without errors");
  }
  wf_errors_free(errs);
  wf_free(wf);
  return out;
}

#endif
