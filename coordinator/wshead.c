/* The request head of a WebSocket upgrade; see wshead.h. */
#include "wshead.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "wsframe.h"

/* RFC 9110 5.6.2 tchar */
static bool wsh_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A header value may hold visible characters, spaces, tabs and obs-text; no controls. */
static bool wsh_vchar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* Finds the end of the head: the offset just after "\r\n\r\n", or 0. */
static size_t wsh_head_end(const char *buf, size_t n) {
  for (size_t i = 3; i < n; i++)
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') return i + 1;
  return 0;
}

/* Parses the request line [p, end) (without its CRLF). */
static bool wsh_request_line(const char *p, const char *end, coord_wsh_head_t *h) {
  const char *sp = memchr(p, ' ', (size_t)(end - p));
  if (!sp || sp == p) return false;
  for (const char *c = p; c < sp; c++)
    if (!wsh_tchar((unsigned char)*c)) return false;
  h->method = p;
  h->method_len = (size_t)(sp - p);
  const char *target = sp + 1;
  const char *sp2 = memchr(target, ' ', (size_t)(end - target));
  if (!sp2 || sp2 == target || *target != '/') return false;
  for (const char *c = target; c < sp2; c++)
    if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) return false;
  if ((size_t)(end - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.1", 8) != 0) return false;
  const char *q = memchr(target, '?', (size_t)(sp2 - target));
  const char *frag = memchr(target, '#', (size_t)(sp2 - target));
  const char *path_end = q ? q : frag ? frag : sp2;
  if (frag && q && frag < q) path_end = frag, q = NULL;
  h->path = target;
  h->path_len = (size_t)(path_end - target);
  if (q) {
    const char *qend = frag && frag > q ? frag : sp2;
    h->query = q + 1;
    h->query_len = (size_t)(qend - q - 1);
  } else {
    h->query = sp2;
    h->query_len = 0;
  }
  return true;
}

static bool wsh_field(const char *p, const char *end, coord_wsh_head_t *h) {
  if (h->nfields == COORD_WSH_HEADERS_MAX) return false;
  const char *colon = memchr(p, ':', (size_t)(end - p));
  if (!colon || colon == p) return false; /* also refuses obs-fold (a line starting with a space) */
  for (const char *c = p; c < colon; c++)
    if (!wsh_tchar((unsigned char)*c)) return false;
  const char *v = colon + 1, *ve = end;
  for (const char *c = v; c < ve; c++)
    if (!wsh_vchar((unsigned char)*c)) return false;
  while (v < ve && (*v == ' ' || *v == '\t')) v++;
  while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
  coord_wsh_field_t *f = &h->fields[h->nfields++];
  f->name = p;
  f->name_len = (size_t)(colon - p);
  f->value = v;
  f->value_len = (size_t)(ve - v);
  return true;
}

int coord_wsh_parse(const char *buf, size_t n, coord_wsh_head_t *h, size_t *head_len) {
  memset(h, 0, sizeof *h);
  *head_len = 0;
  size_t end = wsh_head_end(buf, n > COORD_WSH_MAX ? COORD_WSH_MAX : n);
  if (!end) {
    if (n >= COORD_WSH_MAX) return COORD_WSH_OTHER;
    /* Junk is handed over at once rather than waited on: a head starts with a token. */
    for (size_t i = 0; i < n && buf[i] != ' '; i++)
      if (!wsh_tchar((unsigned char)buf[i])) return COORD_WSH_OTHER;
    return COORD_WSH_MORE;
  }
  const char *p = buf, *stop = buf + end - 2; /* the final CRLF ends the last line */
  bool first = true;
  while (p < stop) {
    const char *cr = memchr(p, '\r', (size_t)(stop - p));
    if (!cr || cr[1] != '\n') return COORD_WSH_OTHER;
    if (memchr(p, '\n', (size_t)(cr - p))) return COORD_WSH_OTHER; /* a bare LF */
    if (first ? !wsh_request_line(p, cr, h) : !wsh_field(p, cr, h)) return COORD_WSH_OTHER;
    first = false;
    p = cr + 2;
  }
  if (first) return COORD_WSH_OTHER;
  *head_len = end;
  return COORD_WSH_HEAD;
}

static bool wsh_name_is(const coord_wsh_field_t *f, const char *name) {
  return strlen(name) == f->name_len && strncasecmp(f->name, name, f->name_len) == 0;
}

int coord_wsh_header(const coord_wsh_head_t *h, const char *name, char *out, size_t len) {
  if (!len) return -1;
  size_t at = 0;
  bool found = false;
  for (size_t i = 0; i < h->nfields; i++) {
    const coord_wsh_field_t *f = &h->fields[i];
    if (!wsh_name_is(f, name)) continue;
    size_t need = (found ? 2 : 0) + f->value_len;
    if (at + need + 1 > len) return -1;
    if (found) memcpy(out + at, ", ", 2), at += 2;
    memcpy(out + at, f->value, f->value_len);
    at += f->value_len;
    found = true;
  }
  if (!found) return -1;
  out[at] = '\0';
  return (int)at;
}

static int wsh_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int coord_wsh_query(const coord_wsh_head_t *h, const char *name, char *out, size_t len) {
  size_t nlen = strlen(name);
  const char *p = h->query, *end = h->query + h->query_len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *pe = amp ? amp : end;
    if ((size_t)(pe - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
      size_t at = 0;
      for (const char *c = p + nlen + 1; c < pe; c++) {
        char v = *c;
        if (v == '%') {
          int hi = pe - c > 2 ? wsh_hex(c[1]) : -1, lo = hi >= 0 ? wsh_hex(c[2]) : -1;
          if (lo < 0) return -1;
          v = (char)(hi * 16 + lo);
          if (v == '\0') return -1;
          c += 2;
        }
        if (at + 1 >= len) return -1;
        out[at++] = v;
      }
      if (!len) return -1;
      out[at] = '\0';
      return (int)at;
    }
    p = amp ? amp + 1 : end;
  }
  return -1;
}

bool coord_wsh_has_header(const coord_wsh_head_t *h, const char *name) {
  for (size_t i = 0; i < h->nfields; i++)
    if (wsh_name_is(&h->fields[i], name)) return true;
  return false;
}

bool coord_wsh_has_token(const coord_wsh_head_t *h, const char *name, const char *token) {
  size_t tlen = strlen(token);
  for (size_t i = 0; i < h->nfields; i++) {
    const coord_wsh_field_t *f = &h->fields[i];
    if (!wsh_name_is(f, name)) continue;
    const char *p = f->value, *end = f->value + f->value_len;
    while (p < end) {
      while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
      const char *e = p;
      while (e < end && *e != ',') e++;
      const char *te = e;
      while (te > p && (te[-1] == ' ' || te[-1] == '\t')) te--;
      if ((size_t)(te - p) == tlen && strncasecmp(p, token, tlen) == 0) return true;
      p = e;
    }
  }
  return false;
}

bool coord_wsh_is_upgrade(const coord_wsh_head_t *h, const char *path) {
  return h->method_len == 3 && memcmp(h->method, "GET", 3) == 0 && h->path_len == strlen(path) &&
         memcmp(h->path, path, h->path_len) == 0 && coord_wsh_has_token(h, "upgrade", "websocket") &&
         coord_wsh_has_token(h, "connection", "upgrade");
}

int coord_wsh_check_upgrade(const coord_wsh_head_t *h, char accept[29], const char **why) {
  char v[64];
  accept[0] = '\0';
  *why = "";
  int n = coord_wsh_header(h, "sec-websocket-version", v, sizeof v);
  if (n < 0 || strcmp(v, "13") != 0) {
    *why = "sec-websocket-version: only 13 is supported";
    return 426;
  }
  n = coord_wsh_header(h, "sec-websocket-key", v, sizeof v);
  if (n < 0 || coord_wsf_accept(v, (size_t)n, accept) < 0) {
    *why = "sec-websocket-key: expected the base64 form of 16 bytes";
    return 400;
  }
  return 0;
}

int coord_wsh_answer_101(char *out, size_t cap, const char *accept, const char *protocol) {
  int n = snprintf(out, cap,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                   accept, protocol ? "Sec-WebSocket-Protocol: " : "", protocol ? protocol : "",
                   protocol ? "\r\n" : "");
  return n < 0 || (size_t)n >= cap ? -1 : n;
}
