/* Declarations of the jansson-free client message path, shared by json_text.c (the
 * canonical writer), msgscan.c (the message scanner), protocol.c (which tries it before the
 * jansson path), frame.c (exact-size control frames) and conn.c (puback and error written
 * with them). Not part of the public interface;
 * kept apart from internal.h so that it can change without touching the shared header.
 *
 * The rule of the fast path: it either handles a message exactly as the jansson path would
 * (same published bytes, same replies, byte for byte) or it leaves the message untouched
 * and the jansson path handles it. So it only has to be right on what it accepts; anything
 * unusual (errors of any kind, numbers jansson would refuse, very wide objects) is
 * deferred, and the jansson path keeps producing every error message. */
#ifndef STREAMS_FASTPATH_H
#define STREAMS_FASTPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- canonical JSON text (json_text.c) ---- */

/* Output of stream__json_canon. Starts in caller storage (p, cap, heap false) and moves to
 * the heap when it must grow; stream__jout_close frees what it owns. */
typedef struct stream_jout {
  char *p;     /* caller's storage, or owned once heap is set */
  size_t len;  /* bytes written */
  size_t cap;  /* bytes */
  bool heap;
} stream_jout_t;

void stream__jout_init(stream_jout_t *o, char *buf, size_t cap);
void stream__jout_close(stream_jout_t *o);

/* A top-level member of the object being canonicalized: its key as written in out (canonical
 * form, without the quotes; equal to the raw key when it has no escapes) and where its
 * value's canonical text is in out. Offsets, because out may move while it grows. */
typedef void (*stream_jmember_cb)(void *ud, const stream_jout_t *out, size_t key_off, size_t key_len, size_t val_off,
                                  size_t val_len);

/* Writes into out exactly what jansson writes for text with json_loadb(JSON_REJECT_DUPLICATES
 * | JSON_DECODE_ANY) then json_dumps(JSON_COMPACT | JSON_ENCODE_ANY): keys in input order,
 * strings unescaped then escaped as jansson does, integers and reals as jansson formats them,
 * no whitespace. Nesting deeper than max_depth fails. When member is not NULL the text must
 * be an object and member is called for each of its members, in order.
 * Returns 0, or -EINVAL when jansson would reject the text, when it is deeper than
 * max_depth, or when it is beyond what this writer handles (an object with more than 32
 * members, more than 128 keys open at once, a number literal over 63 bytes): a caller that
 * needs jansson's answer then asks jansson. out->len is meaningful only on success. */
int stream__json_canon(const char *text, size_t len, uint32_t max_depth, stream_jout_t *out, stream_jmember_cb member,
                       void *ud) __attribute__((warn_unused_result));

/* Decodes the canonical JSON string at s (quotes included, as stream__json_canon writes it)
 * into dst (needs len - 1 bytes) with a terminating NUL; returns the decoded length. */
size_t stream__json_canon_unescape(char *dst, const char *s, size_t len);

/* ---- client messages (msgscan.c) ---- */

typedef enum {
  STREAM_MSG_ABSENT = 0,
  STREAM_MSG_NULL,
  STREAM_MSG_STRING, /* str and str_len are set */
  STREAM_MSG_INT,    /* i is set */
  STREAM_MSG_OTHER,  /* anything else: a real, a boolean, an object, an array */
} stream_msg_kind_t;

typedef struct stream_msg_field {
  uint8_t kind;        /* stream_msg_kind_t */
  const char *str;     /* borrowed from the scan's output: decoded, NUL-terminated */
  size_t str_len;      /* bytes */
  int64_t i;
  size_t off, len;     /* bytes: the value's canonical text in the scan's output */
} stream_msg_field_t;

typedef enum {
  STREAM_MSG_OP = 0, STREAM_MSG_REF, STREAM_MSG_TOPIC, STREAM_MSG_ID, STREAM_MSG_TYPE, STREAM_MSG_LANE,
  STREAM_MSG_DATA, STREAM_MSG_GROUP, STREAM_MSG_SEQ, STREAM_MSG_DELAY_MS, STREAM_MSG_FIELDS
} stream_msg_key_t;

/* The fields of a client message that the fast path reads; the others are validated and
 * skipped. Strings point into out. */
typedef struct stream_msg {
  stream_jout_t out; /* canonical text of the whole message */
  stream_msg_field_t f[STREAM_MSG_FIELDS];
} stream_msg_t;

/* Scans a client message (one JSON object) into m, using buf (cap bytes) while it fits.
 * 0 when jansson would load the text (JSON_REJECT_DUPLICATES) to the same values, nested at
 * most max_depth deep; -EINVAL otherwise (the jansson path decides). Either way, call
 * stream__msg_close. */
int stream__msg_scan(stream_msg_t *m, const char *text, size_t len, uint32_t max_depth, char *buf, size_t cap)
    __attribute__((warn_unused_result));
void stream__msg_close(stream_msg_t *m);

/* ---- the two paths of stream_conn_handle_message (protocol.c) ---- */

#define STREAM_FAST_DEFER 1

/* The fast path: STREAM_FAST_DEFER when it leaves the message to the jansson path (and has
 * done nothing), else what stream_conn_handle_message returns (0 or -ENOBUFS). */
int stream__conn_handle_fast(stream_conn_t *conn, const char *json, size_t len) __attribute__((warn_unused_result));
/* The jansson path alone, for every message: what stream_conn_handle_message returns. */
int stream__conn_handle_slow(stream_conn_t *conn, const char *json, size_t len) __attribute__((warn_unused_result));

/* ---- control frames written by hand (frame.c) ---- */

/* A small writer for control frames of known size: fields are appended in order; the
 * strings must be valid UTF-8 (they are escaped as jansson's compact dump escapes them). */
typedef struct stream_cw {
  char *p; /* next byte to write */
} stream_cw_t;

/* A control frame with a payload of exactly len bytes, for the caller to write through w
 * (w->p at the payload's first byte). topic may be NULL. */
stream_frame_t *stream__frame_control_alloc(stream_frames_t *fr, size_t headroom, const char *op, const char *topic,
                                            size_t len, stream_cw_t *w);
/* Bytes the same appends take, to size the frame first. */
size_t stream__cw_int_len(int64_t v);
void stream__cw_lit(stream_cw_t *w, const char *s, size_t len);
void stream__cw_str(stream_cw_t *w, const char *s); /* quoted and escaped */
void stream__cw_jstr(stream_cw_t *w, const stream_jstr_t *j); /* the same, measured before */
void stream__cw_int(stream_cw_t *w, int64_t v);

#define STREAM_CW_LIT(w, lit) stream__cw_lit((w), (lit), sizeof(lit) - 1)

#endif
