/* Fuzz target for the upgrade's request head (coordinator/wshead.c): any input must parse
 * without a memory error; a head that parses lies inside the input and ends with its blank
 * line, and every shorter prefix of it asks for more (never "not mine"); the lookups, the
 * upgrade checks and the 101 answer stay inside their buffers and NUL-terminate. The first
 * byte picks the lookup buffers' size. */
#include "fuzz_common.h"
#include "wshead.h"

static void lookups(const coord_wsh_head_t *h, size_t cap) {
  char out[COORD_WSH_MAX + 1];
  static const char *names[] = {"host", "upgrade", "connection", "sec-websocket-key",
                                "sec-websocket-version", "sec-websocket-protocol", "authorization"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int n = coord_wsh_header(h, names[i], out, cap);
    if (n >= 0 && ((size_t)n >= cap || out[n] != '\0' || strlen(out) > (size_t)n)) abort();
    (void)coord_wsh_has_token(h, names[i], "upgrade");
  }
  for (size_t i = 0; i < h->nfields; i++) {
    char name[COORD_WSH_MAX + 1];
    memcpy(name, h->fields[i].name, h->fields[i].name_len);
    name[h->fields[i].name_len] = '\0';
    if (coord_wsh_header(h, name, out, sizeof out) < (int)h->fields[i].value_len) abort();
  }
  static const char *args[] = {"access_token", "a", "x"};
  for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
    int n = coord_wsh_query(h, args[i], out, cap);
    if (n >= 0 && ((size_t)n >= cap || out[n] != '\0' || strlen(out) != (size_t)n)) abort();
  }
  char accept[29];
  const char *why;
  int rc = coord_wsh_check_upgrade(h, accept, &why);
  if (rc != 0 && rc != 400 && rc != 426) abort();
  if (rc == 0) {
    if (strlen(accept) != 28) abort();
    char ans[512];
    if (coord_wsh_answer_101(ans, sizeof ans, accept, "coord") <= 0) abort();
  }
  (void)coord_wsh_is_upgrade(h, "/v1/ws");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t cap = 1 + data[0] % 64;
  const char *buf = (const char *)data + 1;
  size_t n = size - 1;
  coord_wsh_head_t h;
  size_t len;
  int rc = coord_wsh_parse(buf, n, &h, &len);
  if (rc == COORD_WSH_HEAD) {
    if (len < 4 || len > n || len > COORD_WSH_MAX || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) abort();
    if (h.nfields > COORD_WSH_HEADERS_MAX) abort();
    if (h.path < buf || h.path + h.path_len > buf + len) abort();
    if (h.query < buf || h.query + h.query_len > buf + len) abort();
    for (size_t i = 0; i < h.nfields; i++)
      if (h.fields[i].name < buf || h.fields[i].value + h.fields[i].value_len > buf + len) abort();
    lookups(&h, cap);
    coord_wsh_head_t p;
    size_t plen;
    for (size_t k = 0; k < len; k++)
      if (coord_wsh_parse(buf, k, &p, &plen) != COORD_WSH_MORE) abort();
  } else if (rc != COORD_WSH_MORE && rc != COORD_WSH_OTHER) {
    abort();
  } else if (len != 0) {
    abort();
  }
  return 0;
}
