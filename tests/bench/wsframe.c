/* RFC 6455 client-side framing and handshake: see wsframe.h. Owns parsing and encoding
 * only; sockets, timers and what messages mean belong to wsload.c. */
#include "wsframe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/mem.h"

#define WSF_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WSF_RESPONSE_MAX 8192 /* bytes of an upgrade answer's head */

static bool wsf_opcode_known(uint8_t op) {
  return op == WSF_OP_CONT || op == WSF_OP_TEXT || op == WSF_OP_BINARY || op == WSF_OP_CLOSE ||
         op == WSF_OP_PING || op == WSF_OP_PONG;
}

int wsf_header_parse(const uint8_t *buf, size_t len, wsf_header_t *h) {
  if (len < 2) return -EAGAIN;
  uint8_t b0 = buf[0], b1 = buf[1];
  if (b0 & 0x70) return -EPROTO; /* RSV1-3: no extension was negotiated */
  h->fin = (b0 & 0x80) != 0;
  h->opcode = b0 & 0x0F;
  if (!wsf_opcode_known(h->opcode)) return -EPROTO;
  h->masked = (b1 & 0x80) != 0;
  uint64_t plen = b1 & 0x7F;
  size_t need = 2;
  if (plen == 126) {
    need += 2;
    if (len < need) return -EAGAIN;
    plen = ((uint64_t)buf[2] << 8) | buf[3];
    if (plen < 126) return -EPROTO;
  } else if (plen == 127) {
    need += 8;
    if (len < need) return -EAGAIN;
    plen = 0;
    for (int i = 0; i < 8; i++) plen = (plen << 8) | buf[2 + i];
    if (plen >> 63) return -EPROTO;
    if (plen <= 0xFFFF) return -EPROTO;
  }
  if (h->opcode >= 0x8 && (!h->fin || plen > 125)) return -EPROTO;
  if (h->masked) {
    if (len < need + 4) return -EAGAIN;
    memcpy(h->mask, buf + need, 4);
    need += 4;
  }
  h->payload_len = plen;
  h->header_len = need;
  return 0;
}

size_t wsf_header_encode(uint8_t *out, uint8_t opcode, bool fin, uint64_t payload_len,
                         const uint8_t *mask) {
  size_t n = 0;
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
  uint8_t mbit = mask ? 0x80 : 0;
  if (payload_len < 126) {
    out[n++] = (uint8_t)(mbit | payload_len);
  } else if (payload_len <= 0xFFFF) {
    out[n++] = mbit | 126;
    out[n++] = (uint8_t)(payload_len >> 8);
    out[n++] = (uint8_t)payload_len;
  } else {
    out[n++] = mbit | 127;
    for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)(payload_len >> (8 * i));
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

void wsf_mask_apply(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset) {
  size_t i = 0;
  /* Eight bytes at a time with the key rotated to this offset: a byte loop was the
   * publisher's largest cost at 200,000 messages per second. */
  if (n >= 16) {
    uint8_t k[8];
    for (int j = 0; j < 8; j++) k[j] = mask[(offset + (size_t)j) & 3];
    uint64_t key;
    memcpy(&key, k, 8);
    for (; i + 8 <= n; i += 8) {
      uint64_t v;
      memcpy(&v, p + i, 8);
      v ^= key;
      memcpy(p + i, &v, 8);
    }
  }
  for (; i < n; i++) p[i] ^= mask[(offset + i) & 3];
}

size_t wsf_frame_encode(uint8_t *out, size_t cap, uint8_t opcode, bool fin,
                        const uint8_t *mask, const void *payload, size_t len) {
  uint8_t hdr[WSF_MAX_HEADER];
  size_t hl = wsf_header_encode(hdr, opcode, fin, len, mask);
  if (cap < hl || cap - hl < len) return 0;
  memcpy(out, hdr, hl);
  if (len) memcpy(out + hl, payload, len);
  if (mask) wsf_mask_apply(out + hl, len, mask, 0);
  return hl + len;
}

size_t wsf_close_payload(uint8_t out[125], uint16_t code, const char *reason) {
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > 123) rl = 123;
  if (rl) memcpy(out + 2, reason, rl);
  return 2 + rl;
}

void wsf_reader_init(wsf_reader_t *r, size_t max_message) {
  memset(r, 0, sizeof(*r));
  r->max_message = max_message;
}

void wsf_reader_close(wsf_reader_t *r) {
  free(r->pending);
  free(r->msg);
  memset(r, 0, sizeof(*r));
}

static void wsf_buf_append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n) {
  if (*len + n > *cap) {
    size_t ncap = *cap ? *cap : 256;
    while (ncap < *len + n) ncap *= 2;
    *buf = xrealloc(*buf, ncap);
    *cap = ncap;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
}

/* Handles one whole frame (header already checked, payload complete and unmasked). */
static int wsf_reader_frame(wsf_reader_t *r, const wsf_header_t *h, const uint8_t *payload,
                            wsf_message_cb cb, void *ud) {
  size_t n = (size_t)h->payload_len;
  if (h->opcode >= 0x8) return cb(ud, h->opcode, payload, n);
  if (h->opcode == WSF_OP_CONT) {
    if (!r->msg_opcode) return -EPROTO;
    if (r->msg_len + n > r->max_message) return -EMSGSIZE;
    wsf_buf_append(&r->msg, &r->msg_len, &r->msg_cap, payload, n);
    if (!h->fin) return 0;
    uint8_t op = r->msg_opcode;
    r->msg_opcode = 0;
    size_t ml = r->msg_len;
    r->msg_len = 0;
    return cb(ud, op, r->msg, ml);
  }
  if (r->msg_opcode) return -EPROTO; /* a new data message inside a fragmented one */
  if (h->fin) return cb(ud, h->opcode, payload, n);
  r->msg_opcode = h->opcode;
  r->msg_len = 0;
  wsf_buf_append(&r->msg, &r->msg_len, &r->msg_cap, payload, n);
  return 0;
}

/* Parses whole frames from p; returns how many bytes were consumed via *used. */
static int wsf_reader_parse(wsf_reader_t *r, const uint8_t *p, size_t len, size_t *used,
                            wsf_message_cb cb, void *ud) {
  size_t off = 0;
  int rc = 0;
  while (off < len) {
    wsf_header_t h;
    rc = wsf_header_parse(p + off, len - off, &h);
    if (rc == -EAGAIN) {
      rc = 0;
      break;
    }
    if (rc) break;
    if (h.masked) {
      rc = -EPROTO; /* RFC 6455 5.1: a client closes on a masked server frame */
      break;
    }
    if (h.payload_len > r->max_message) {
      rc = -EMSGSIZE;
      break;
    }
    if (len - off - h.header_len < h.payload_len) break;
    const uint8_t *payload = p + off + h.header_len;
    off += h.header_len + (size_t)h.payload_len;
    rc = wsf_reader_frame(r, &h, payload, cb, ud);
    if (rc) break;
  }
  *used = off;
  return rc;
}

/* Bytes the first frame held in pending needs in all: its header and payload once the
 * header is whole, else as many as the longest header (more may belong to the payload or
 * the next frame: wsf_reader_parse sorts that out). 0 with *rc set for a bad header. */
static size_t wsf_pending_want(const wsf_reader_t *r, int *rc) {
  wsf_header_t h;
  *rc = wsf_header_parse(r->pending, r->pending_len, &h);
  if (*rc == -EAGAIN) {
    *rc = 0;
    return WSF_MAX_HEADER;
  }
  if (*rc) return 0;
  if (h.masked) *rc = -EPROTO; /* RFC 6455 5.1 */
  else if (h.payload_len > r->max_message) *rc = -EMSGSIZE;
  return *rc ? 0 : h.header_len + (size_t)h.payload_len;
}

/* A frame split across reads is completed in pending with only the bytes it lacks; the
 * rest of the read is parsed where it lies, so a stream of small frames is not copied. */
int wsf_reader_feed(wsf_reader_t *r, const uint8_t *data, size_t len, wsf_message_cb cb,
                    void *ud) {
  size_t off = 0, used;
  int rc;
  while (r->pending_len > 0) {
    size_t want = wsf_pending_want(r, &rc);
    if (rc) return rc;
    if (want > r->pending_len) {
      size_t take = want - r->pending_len < len - off ? want - r->pending_len : len - off;
      wsf_buf_append(&r->pending, &r->pending_len, &r->pending_cap, data + off, take);
      off += take;
    }
    used = 0;
    rc = wsf_reader_parse(r, r->pending, r->pending_len, &used, cb, ud);
    if (rc) return rc;
    memmove(r->pending, r->pending + used, r->pending_len - used);
    r->pending_len -= used;
    if (off == len) return 0;
  }
  used = 0;
  rc = wsf_reader_parse(r, data + off, len - off, &used, cb, ud);
  if (rc == 0 && off + used < len)
    wsf_buf_append(&r->pending, &r->pending_len, &r->pending_cap, data + off + used,
                   len - off - used);
  return rc;
}

void wsf_key_make(const uint8_t nonce[16], char out[WSF_KEY_LEN + 1]) {
  EVP_EncodeBlock((unsigned char *)out, nonce, 16);
  out[WSF_KEY_LEN] = '\0';
}

void wsf_accept_for(const char *key, char out[WSF_ACCEPT_LEN + 1]) {
  char joined[128];
  int n = snprintf(joined, sizeof(joined), "%s%s", key, WSF_GUID);
  if (n < 0 || (size_t)n >= sizeof(joined)) n = (int)sizeof(joined) - 1;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)joined, (size_t)n, digest);
  EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
  out[WSF_ACCEPT_LEN] = '\0';
}

size_t wsf_request_build(char *out, size_t cap, const char *host, int port, const char *path,
                         const char *key, const char *subprotocol) {
  bool sp = subprotocol && *subprotocol;
  int n = snprintf(out, cap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s:%d\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "%s%s%s"
                   "\r\n",
                   path, host, port, key, sp ? "Sec-WebSocket-Protocol: " : "", sp ? subprotocol : "",
                   sp ? "\r\n" : "");
  if (n < 0 || (size_t)n >= cap) return 0;
  return (size_t)n;
}

/* Finds header name (case-insensitive) in head; returns its trimmed value through v and vl. */
static bool wsf_header_find(const char *head, size_t len, const char *name, const char **v,
                            size_t *vl) {
  size_t nl = strlen(name);
  const char *p = memchr(head, '\n', len); /* skip the status line */
  const char *end = head + len;
  while (p && p + 1 < end) {
    const char *line = p + 1;
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) break;
    size_t ll = (size_t)(eol - line);
    if (ll > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
      const char *s = line + nl + 1, *e = eol;
      while (s < e && (*s == ' ' || *s == '\t')) s++;
      while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
      *v = s;
      *vl = (size_t)(e - s);
      return true;
    }
    p = eol;
  }
  return false;
}

/* Whether the comma-separated list v contains token (case-insensitive). */
static bool wsf_list_has(const char *v, size_t vl, const char *token) {
  size_t tl = strlen(token);
  size_t i = 0;
  while (i < vl) {
    while (i < vl && (v[i] == ' ' || v[i] == ',')) i++;
    size_t s = i;
    while (i < vl && v[i] != ',') i++;
    size_t e = i;
    while (e > s && v[e - 1] == ' ') e--;
    if (e - s == tl && strncasecmp(v + s, token, tl) == 0) return true;
  }
  return false;
}

int wsf_response_check(const char *buf, size_t len, const char *key, int *status) {
  const char *end = NULL;
  for (size_t i = 3; i < len; i++) {
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
      end = buf + i + 1;
      break;
    }
  }
  if (!end) return len >= WSF_RESPONSE_MAX ? -EMSGSIZE : -EAGAIN;
  size_t head = (size_t)(end - buf);
  if (head > WSF_RESPONSE_MAX) return -EMSGSIZE;
  int code = 0;
  if (head < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0 || sscanf(buf + 9, "%3d", &code) != 1)
    return -EPROTO;
  if (status) *status = code;
  if (code != 101) return -ECONNREFUSED;
  const char *v;
  size_t vl;
  if (!wsf_header_find(buf, head, "Upgrade", &v, &vl) || !wsf_list_has(v, vl, "websocket"))
    return -EPROTO;
  if (!wsf_header_find(buf, head, "Connection", &v, &vl) || !wsf_list_has(v, vl, "upgrade"))
    return -EPROTO;
  char want[WSF_ACCEPT_LEN + 1];
  wsf_accept_for(key, want);
  if (!wsf_header_find(buf, head, "Sec-WebSocket-Accept", &v, &vl) || vl != WSF_ACCEPT_LEN ||
      memcmp(v, want, WSF_ACCEPT_LEN) != 0)
    return -EPROTO;
  return (int)head;
}
