/* WebSocket framing with no I/O; see wsframe.h. */
#include "wsframe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/mem.h"
#include "utf8.h"

#define WSF_PROTOCOL 1002
#define WSF_TOO_BIG 1009
#define WSF_INVALID_DATA 1007
#define WSF_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 1.3 */

size_t coord_wsf_header(unsigned char *p, unsigned opcode, bool fin, uint64_t len) {
  p[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
  if (len < 126) {
    p[1] = (unsigned char)len;
    return 2;
  }
  if (len < 65536) {
    p[1] = 126;
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
    return 4;
  }
  p[1] = 127;
  for (int i = 0; i < 8; i++) p[2 + i] = (unsigned char)(len >> (56 - 8 * i));
  return 10;
}

void coord_wsf_parser_init(coord_wsf_parser_t *p, uint64_t max_message) {
  memset(p, 0, sizeof *p);
  p->max_message = max_message;
}

void coord_wsf_parser_close(coord_wsf_parser_t *p) {
  free(p->ctl);
  p->ctl = NULL;
  p->ctl_len = 0;
}

static bool wsf_control(unsigned op) { return op >= 0x8; }

/* Bytes the header in hdr[0..1] says it has in all (2 to 14), mask included. */
static size_t wsf_header_len(const unsigned char *h) {
  unsigned l7 = h[1] & 0x7f;
  return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* Checks a complete header and starts its frame; returns 0 or a close code. */
static int wsf_start_frame(coord_wsf_parser_t *p) {
  const unsigned char *h = p->hdr;
  unsigned op = h[0] & 0x0f;
  bool fin = (h[0] & 0x80) != 0;
  if (h[0] & 0x70) return WSF_PROTOCOL;    /* reserved bits: no extension was negotiated */
  if (!(h[1] & 0x80)) return WSF_PROTOCOL; /* a client's frames are masked (5.1) */
  uint64_t len = h[1] & 0x7f;
  size_t at = 2;
  if (len == 126) {
    len = ((uint64_t)h[2] << 8) | h[3];
    at = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
    if (len >> 63) return WSF_PROTOCOL; /* 5.2: the most significant bit must be 0 */
    at = 10;
  }
  memcpy(p->mask, h + at, 4);
  if (wsf_control(op)) {
    if (op != COORD_WSF_CLOSE && op != COORD_WSF_PING && op != COORD_WSF_PONG) return WSF_PROTOCOL;
    if (!fin || len > COORD_WSF_CONTROL_MAX) return WSF_PROTOCOL; /* 5.5 */
  } else if (op == COORD_WSF_CONTINUATION) {
    if (!p->msg_opcode) return WSF_PROTOCOL; /* nothing to continue */
  } else if (op == COORD_WSF_TEXT || op == COORD_WSF_BINARY) {
    if (p->msg_opcode) return WSF_PROTOCOL; /* 5.4: the open message must finish first */
  } else {
    return WSF_PROTOCOL; /* reserved non-control opcode */
  }
  if (!wsf_control(op)) {
    if (op != COORD_WSF_CONTINUATION) {
      p->msg_opcode = (uint8_t)op;
      p->msg_len = 0;
      p->msg_started = false;
    }
    if (p->max_message && len > p->max_message - p->msg_len) return WSF_TOO_BIG;
    p->msg_len += len;
  }
  p->opcode = (uint8_t)op;
  p->fin = fin;
  p->left = len;
  p->mask_pos = 0;
  p->in_payload = true;
  p->hdr_len = 0;
  return 0;
}

static void wsf_unmask(coord_wsf_parser_t *p, unsigned char *b, size_t n) {
  unsigned pos = p->mask_pos;
  for (size_t i = 0; i < n; i++) {
    b[i] ^= p->mask[pos];
    pos = (pos + 1) & 3;
  }
  p->mask_pos = (uint8_t)pos;
}

/* Delivers n payload bytes (already unmasked) of the current frame; returns the sink's
 * answer. The frame ends when left reaches 0. */
static int wsf_payload(coord_wsf_parser_t *p, const unsigned char *b, size_t n,
                       const coord_wsf_sink_t *sink, void *ud) {
  p->left -= n;
  bool frame_done = p->left == 0;
  if (frame_done) p->in_payload = false;
  if (wsf_control(p->opcode)) {
    if (!frame_done || p->ctl) {
      /* a control frame split across calls: gather it */
      if (!p->ctl) p->ctl = xmalloc(COORD_WSF_CONTROL_MAX);
      memcpy(p->ctl + p->ctl_len, b, n);
      p->ctl_len = (uint8_t)(p->ctl_len + n);
      if (!frame_done) return 0;
      unsigned char buf[COORD_WSF_CONTROL_MAX];
      size_t len = p->ctl_len;
      memcpy(buf, p->ctl, len);
      coord_wsf_parser_close(p);
      return sink->control(ud, p->opcode, buf, len);
    }
    return sink->control(ud, p->opcode, b, n);
  }
  bool last = frame_done && p->fin;
  if (n == 0 && !last) return 0; /* an empty fragment in the middle says nothing */
  bool first = !p->msg_started;
  p->msg_started = true;
  bool binary = p->msg_opcode == COORD_WSF_BINARY;
  if (last) p->msg_opcode = 0;
  return sink->data(ud, binary, b, n, first, last);
}

int coord_wsf_parse(coord_wsf_parser_t *p, unsigned char *buf, size_t n,
                    const coord_wsf_sink_t *sink, void *ud, size_t *used) {
  size_t at = 0;
  int rc = 0;
  while (at < n) {
    if (!p->in_payload) {
      /* gather the header: 2 bytes say how long it is */
      while (p->hdr_len < 2 && at < n) p->hdr[p->hdr_len++] = buf[at++];
      if (p->hdr_len < 2) break;
      size_t need = wsf_header_len(p->hdr);
      while (p->hdr_len < need && at < n) p->hdr[p->hdr_len++] = buf[at++];
      if (p->hdr_len < need) break;
      rc = wsf_start_frame(p);
      if (rc) break;
      if (p->left == 0) { /* an empty frame ends here */
        rc = wsf_payload(p, buf + at, 0, sink, ud);
        if (rc) break;
        continue;
      }
    }
    size_t take = n - at;
    if (take > p->left) take = (size_t)p->left;
    if (take == 0) break;
    wsf_unmask(p, buf + at, take);
    rc = wsf_payload(p, buf + at, take, sink, ud);
    at += take;
    if (rc) break;
  }
  *used = at;
  return rc;
}

/* 7.4.1 and the IANA registry: codes a peer may put in a close frame. */
static bool wsf_close_code_ok(unsigned code) {
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
  case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010:
  case 1011: case 1012: case 1013: case 1014:
    return true;
  default:
    return false;
  }
}

int coord_wsf_close_parse(const unsigned char *p, size_t n, uint16_t *code, const char **reason,
                          size_t *reason_len) {
  *code = 1005; /* "no status received" */
  *reason = "";
  *reason_len = 0;
  if (n == 0) return 0;
  if (n == 1) return WSF_PROTOCOL;
  unsigned c = ((unsigned)p[0] << 8) | p[1];
  if (!wsf_close_code_ok(c)) return WSF_PROTOCOL;
  if (!coord_utf8_valid(p + 2, n - 2)) return WSF_INVALID_DATA;
  *code = (uint16_t)c;
  *reason = (const char *)p + 2;
  *reason_len = n - 2;
  return 0;
}

int coord_wsf_accept(const char *key, size_t len, char out[COORD_WSF_ACCEPT_LEN + 1]) {
  out[0] = '\0';
  while (len && (key[0] == ' ' || key[0] == '\t')) key++, len--;
  while (len && (key[len - 1] == ' ' || key[len - 1] == '\t')) len--;
  /* base64 of 16 bytes: 22 characters and "==" */
  if (len != 24 || key[22] != '=' || key[23] != '=') return -EINVAL;
  unsigned char raw[18];
  if (EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18) return -EINVAL;
  for (size_t i = 0; i < 22; i++) {
    char c = key[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
          c == '/'))
      return -EINVAL;
  }
  /* the last character carries 2 bits of the 16th byte: its other 4 must be 0 */
  if (!strchr("AQgw", key[21])) return -EINVAL;
  unsigned char cat[24 + sizeof WSF_GUID - 1];
  memcpy(cat, key, 24);
  memcpy(cat + 24, WSF_GUID, sizeof WSF_GUID - 1);
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(cat, sizeof cat, md);
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
  out[COORD_WSF_ACCEPT_LEN] = '\0';
  return 0;
}
