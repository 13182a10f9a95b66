/* Differential fuzz target for the publish hot path's JSON text (streams/json_text.c)
 * against jansson, the reference parser of the rest of the daemon:
 *   - stream__json_compact accepts a text exactly when jansson accepts it (JSON_DECODE_ANY,
 *     no NUL) and its nesting is within the same depth limit; what it writes parses with
 *     jansson to a value equal to jansson's, has no whitespace outside strings (compacting
 *     it again changes nothing), and validate-only mode agrees with copying mode;
 *   - stream__json_escape writes exactly what jansson's compact dump writes for a string;
 *   - stream__json_canon, when it accepts a text, writes exactly what jansson writes after
 *     loading it with JSON_REJECT_DUPLICATES (compact dump), and jansson accepts it.
 * Intended difference: numbers that overflow jansson's int64/double (json_error_numeric_
 * overflow, e.g. 1e400 or 2^63) are valid RFC 8259 text; the compactor passes them through
 * as written, so those inputs only check the compactor against itself. Known jansson
 * quirk: jansson 2.14 skips one raw NUL byte after a number or literal ("1\0" and
 * "[true\0]" load), while a raw NUL is never valid JSON; for inputs with a raw NUL the
 * compactor must reject and jansson is not consulted.
 *
 * Input: byte 0 picks the depth limit (0..15, or 32 / 64 / 200 when the top bits say so);
 * the rest is the text. */
#include <errno.h>
#include <jansson.h>

#include "fastpath.h"
#include "fuzz_common.h"
#include "internal.h"

static void fz_fail(const char *what, const uint8_t *d, size_t n, const char *out, size_t out_len) {
  fprintf(stderr, "fuzz invariant broken: %s\n--- input (%zu bytes)\n%.*s\n--- compactor\n%.*s\n", what, n,
          (int)(n > 2000 ? 2000 : n), (const char *)d, (int)out_len, out ? out : "");
  abort();
}

/* Nesting depth of a value: containers count one each, scalars zero. */
static uint32_t fz_depth(const json_t *v) {
  uint32_t best = 0, k;
  size_t i;
  const char *key;
  json_t *x;
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) if ((k = fz_depth(x)) > best) best = k;
    return best + 1;
  }
  if (json_is_object(v)) {
    json_object_foreach((json_t *)v, key, x) if ((k = fz_depth(x)) > best) best = k;
    return best + 1;
  }
  return 0;
}

static void fz_compact(const uint8_t *d, size_t n, uint32_t max_depth) {
  char *out = malloc(n ? n : 1);
  size_t out_len = (size_t)-1, err_off = (size_t)-1;
  int rc = stream__json_compact((const char *)d, n, max_depth, out, &out_len, &err_off);
  if (rc != 0 && rc != -EINVAL) fz_fail("compact returned neither 0 nor -EINVAL", d, n, NULL, 0);
  if (rc == 0 && out_len > n) fz_fail("compact wrote more than it read", d, n, NULL, 0);
  if (rc < 0 && err_off > n) fz_fail("error offset past the end", d, n, NULL, 0);

  size_t v_len = (size_t)-1, v_off = (size_t)-1;
  int vrc = stream__json_compact((const char *)d, n, max_depth, NULL, &v_len, &v_off);
  if (vrc != rc || (rc == 0 && v_len != out_len) || (rc < 0 && v_off != err_off))
    fz_fail("validate-only mode disagrees with copying mode", d, n, NULL, 0);

  if (memchr(d, '\0', n)) {
    if (rc == 0) fz_fail("compactor accepts a raw NUL byte", d, n, out, out_len);
    free(out);
    return;
  }
  json_error_t jerr;
  json_t *ref = json_loadb((const char *)d, n, JSON_DECODE_ANY, &jerr);
  bool overflow = !ref && json_error_code(&jerr) == json_error_numeric_overflow;
  bool ref_ok = ref && fz_depth(ref) <= max_depth;

  if (rc == 0) {
    /* compacting the output again is the identity */
    char *again = malloc(out_len ? out_len : 1);
    size_t again_len = 0;
    if (stream__json_compact(out, out_len, max_depth, again, &again_len, NULL) != 0 || again_len != out_len ||
        memcmp(again, out, out_len) != 0)
      fz_fail("compacting the output again changed it", d, n, out, out_len);
    free(again);
  }
  if (!overflow) {
    if (ref_ok && rc != 0) {
      char why[64];
      snprintf(why, sizeof why, "compactor rejects at %zu what jansson accepts", err_off);
      fz_fail(why, d, n, NULL, 0);
    }
    if (!ref_ok && rc == 0) {
      char why[300];
      snprintf(why, sizeof why, "compactor accepts what jansson rejects (%s) or is deeper than %u",
               ref ? "depth" : jerr.text, max_depth);
      fz_fail(why, d, n, out, out_len);
    }
    if (rc == 0) {
      json_t *back = json_loadb(out, out_len, JSON_DECODE_ANY, &jerr);
      if (!back) fz_fail("jansson rejects the compactor's output", d, n, out, out_len);
      if (!json_equal(ref, back)) fz_fail("compactor's output is a different value", d, n, out, out_len);
      json_decref(back);
    }
  }
  json_decref(ref);
  free(out);
}

/* The header escaper versus jansson, on the input as one string when it is valid UTF-8
 * without NUL (the escaper's contract). */
static void fz_escape(const uint8_t *d, size_t n) {
  if (!stream__utf8_valid((const char *)d, n)) return;
  char *s = malloc(n + 1);
  memcpy(s, d, n);
  s[n] = '\0';
  size_t want = stream__json_escape_len(s);
  char *out = malloc(6 * n + 2);
  size_t got = stream__json_escape(out, s);
  if (got != want) fz_fail("escape length differs from escape_len", d, n, out, got);
  json_t *str = json_stringn(s, n);
  if (!str) fz_fail("jansson refuses a string the escaper takes", d, n, NULL, 0);
  char *ref = json_dumps(str, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!ref || strlen(ref) != got || memcmp(ref, out, got) != 0) fz_fail("escape differs from jansson", d, n, out, got);
  free(ref);
  json_decref(str);
  free(out);
  free(s);
}

/* The canonical writer: whatever it accepts, jansson loads and dumps to the same bytes. */
static void fz_canon(const uint8_t *d, size_t n, uint32_t max_depth) {
  char small[64];
  stream_jout_t o;
  stream__jout_init(&o, small, sizeof small);
  int rc = stream__json_canon((const char *)d, n, max_depth, &o, NULL, NULL);
  if (rc != 0 && rc != -EINVAL) fz_fail("canon returned neither 0 nor -EINVAL", d, n, NULL, 0);
  if (rc == 0) {
    json_error_t jerr;
    json_t *v = json_loadb((const char *)d, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!v) fz_fail("canon accepts what jansson rejects", d, n, o.p, o.len);
    if (fz_depth(v) > max_depth) fz_fail("canon accepts a text deeper than its limit", d, n, o.p, o.len);
    char *ref = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!ref || strlen(ref) != o.len || memcmp(ref, o.p, o.len) != 0)
      fz_fail("canon writes other bytes than jansson", d, n, o.p, o.len);
    free(ref);
    json_decref(v);
  }
  stream__jout_close(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const uint32_t big[4] = {0, 32, 64, 200};
  uint8_t cfg = data[0];
  uint32_t max_depth = (cfg >> 6) ? big[cfg >> 6] : (uint32_t)(cfg & 15);
  fz_compact(data + 1, size - 1, max_depth);
  fz_escape(data + 1, size - 1);
  fz_canon(data + 1, size - 1, max_depth);
  return 0;
}
