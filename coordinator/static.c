/* Static files for the web UI from cfg->web_root (read-only, GET only).
 *
 * Owns the checks that keep requests inside web_root: lws has already %-decoded the path
 * and collapsed "//", "/./" and "/../"; on top of that any "." or ".." segment, backslash or
 * control character is refused (400), dot-files are not served (404), and the resolved
 * real path (symlinks followed) must lie under the real web_root. Content types come from
 * a fixed extension table. The bytes are sent by lws_serve_http_file (http.c). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

static const struct {
  const char *ext;
  const char *type;
} static_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
};

static const char *static_content_type(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  if (dot) {
    for (size_t i = 0; i < sizeof static_types / sizeof static_types[0]; i++)
      if (strcasecmp(dot + 1, static_types[i].ext) == 0) return static_types[i].type;
  }
  return "application/octet-stream";
}

/* 0 = fine, 400 = malformed, 404 = not served. */
static int static_check_path(const char *rel) {
  const char *seg = rel;
  for (;;) {
    const char *end = strchr(seg, '/');
    size_t n = end ? (size_t)(end - seg) : strlen(seg);
    if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) return 400;
    if (n > 0 && seg[0] == '.') return 404;
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)seg[i] < 0x20 || seg[i] == '\\' || seg[i] == 0x7f) return 400;
    if (!end) return 0;
    seg = end + 1;
  }
}

static void static_handler(coord_http_req_t *req, void *ud) {
  coord_daemon_t *d = ud;
  const char *path = coord_http_req_path(req);
  if (!d->web_root_real || path[0] != '/') {
    coord_http_respond_error(req, 404, "not_found", "no such resource");
    return;
  }
  int bad = static_check_path(path + 1);
  if (bad) {
    coord_http_respond_error(req, bad, bad == 400 ? "bad_request" : "not_found",
                             bad == 400 ? "invalid path" : "no such resource");
    return;
  }
  size_t plen = strlen(path);
  bool dir_form = path[plen - 1] == '/';
  char full[PATH_MAX], real[PATH_MAX];
  int n = snprintf(full, sizeof full, "%s%s%s", d->web_root_real, path,
                   dir_form ? "index.html" : "");
  struct stat st;
  if (n < 0 || (size_t)n >= sizeof full || !realpath(full, real) || stat(real, &st) < 0)
    goto not_found;
  if (S_ISDIR(st.st_mode)) {
    /* "/docs" names a directory: serve its index, as "/docs/" would. */
    n = snprintf(full, sizeof full, "%s/index.html", real);
    if (n < 0 || (size_t)n >= sizeof full || !realpath(full, real) || stat(real, &st) < 0)
      goto not_found;
  }
  size_t rlen = strlen(d->web_root_real);
  if (strncmp(real, d->web_root_real, rlen) != 0 || real[rlen] != '/' || !S_ISREG(st.st_mode))
    goto not_found;
  coord_http_serve_file(req, real, static_content_type(real));
  return;
not_found:
  coord_http_respond_error(req, 404, "not_found", "no such resource");
}

int coord__static_register(coord_daemon_t *d) {
  const char *root = d->cfg->web_root;
  if (root && *root) {
    char real[PATH_MAX];
    struct stat st;
    if (realpath(root, real) && stat(real, &st) == 0 && S_ISDIR(st.st_mode))
      d->web_root_real = xstrdup(real);
    else
      log_warn("static", "web_root is not a readable directory; static files disabled",
               "{s:s,s:s}", "web_root", root, "error", strerror(errno));
  }
  coord_http_set_fallback(d->http, COORD_HTTP_GET, "static", static_handler, d);
  return 0;
}
