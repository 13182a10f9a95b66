/* Fuzz target for the daemon's configuration parser (coordinator/config.c): the input
 * is applied on top of the defaults as a JSON file (coord_config_apply_json), as the
 * value of one environment variable (coord_config_apply_env with an injected getenv), or
 * as a "key=value" command-line setting (coord_config_set); a config that applied is then
 * checked with coord_config_validate. Invariants: no memory or UB error, no leak; the
 * return code is 0 or -EINVAL (-EFBIG for JSON text over 1 MiB; -ENOENT for an unknown key given to coord_config_set);
 * every failure fills an error whose text starts with where the value came from, and has
 * a reason; a failure of the file names the key unless it is about the whole document.
 *
 * Input: byte 0's low 2 bits pick the source (0, 1: file; 2: env; 3: key=value); for env
 * the other bits pick which variable (the n-th getenv call) gets the rest of the input. */
#include <errno.h>
#include <jansson.h>

#include "config.h"
#include "fuzz_common.h"

#define FZ_WHERE "fuzz.json"

typedef struct fz_env {
  const char *value; /* NUL-terminated copy of the input */
  unsigned pick;     /* which getenv call answers */
  unsigned calls;
  char name[128];    /* the variable that answered */
} fz_env_t;

static const char *fz_getenv(const char *name, void *ud) {
  fz_env_t *e = ud;
  if (e->calls++ != e->pick) return NULL;
  snprintf(e->name, sizeof e->name, "%s", name);
  return e->value;
}

static void fz_fail(const char *what, const coord_config_error_t *err) {
  fprintf(stderr, "fuzz invariant broken: %s\nwhere=%s key=%s reason=%s\ntext=%s\n", what, err->where, err->key,
          err->reason, err->text);
  abort();
}

static void fz_check_error(const coord_config_error_t *err, const char *where) {
  if (!memchr(err->text, '\0', sizeof err->text) || !memchr(err->reason, '\0', sizeof err->reason))
    fz_fail("error text not terminated", err);
  if (!err->reason[0]) fz_fail("error without a reason", err);
  if (strncmp(err->text, where, strlen(where)) != 0) fz_fail("error does not start with its source", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  char *z = malloc(len + 1); /* NUL-terminated copy for the string sources */
  memcpy(z, text, len);
  z[len] = '\0';

  coord_config_t cfg;
  coord_config_defaults(&cfg);
  coord_config_error_t err;
  memset(&err, 0, sizeof err);
  int rc;
  switch (mode & 3) {
  case 2: {
    fz_env_t e = {.value = z, .pick = mode >> 2};
    rc = coord_config_apply_env(&cfg, fz_getenv, &e, &err);
    if (rc != 0 && rc != -EINVAL) fz_fail("apply_env returned an unexpected code", &err);
    if (rc < 0) fz_check_error(&err, e.name[0] ? e.name : "COORDINATOR_");
    break;
  }
  case 3: {
    char *eq = strchr(z, '=');
    const char *value = eq ? eq + 1 : "";
    if (eq) *eq = '\0';
    rc = coord_config_set(&cfg, z, value, "--fuzz", &err);
    if (rc != 0 && rc != -EINVAL && rc != -ENOENT) fz_fail("config_set returned an unexpected code", &err);
    if (rc < 0) fz_check_error(&err, "--fuzz");
    break;
  }
  default:
    rc = coord_config_apply_json(&cfg, text, len, FZ_WHERE, &err);
    if (rc != 0 && rc != -EINVAL && rc != -EFBIG) fz_fail("apply_json returned an unexpected code", &err);
    if (rc < 0) {
      fz_check_error(&err, FZ_WHERE);
      /* "key too long": a key over 127 bytes cannot be named in full (err.key's size);
       * "unknown key" with an empty name: the top-level key "" itself */
      if (!err.key[0] && !strstr(err.reason, "JSON") && !strstr(err.reason, "top level") &&
          strcmp(err.reason, "key too long") != 0 && strcmp(err.reason, "unknown key") != 0)
        fz_fail("error about a value names no key", &err);
    }
    break;
  }
  if (rc == 0) {
    memset(&err, 0, sizeof err);
    rc = coord_config_validate(&cfg, &err);
    if (rc != 0 && rc != -EINVAL) fz_fail("validate returned an unexpected code", &err);
    if (rc < 0 && (!err.reason[0] || !err.text[0])) fz_fail("validate failed without a reason", &err);
    if (!cfg.listen || !cfg.data_dir || !cfg.web_root || !cfg.auth.jwt_secret || !json_is_object(cfg.agents))
      fz_fail("a config field became NULL", &err);
  }
  coord_config_close(&cfg);
  free(z);
  return 0;
}
