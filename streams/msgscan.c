/* The client message scanner of the fast path: one pass over a message, no tree.
 *
 * The whole message goes through the canonical writer (json_text.c), which validates it
 * the way jansson's loader would (duplicate keys anywhere, numbers, escapes, UTF-8, depth)
 * and writes its canonical text; the top-level members the fast path reads are recorded
 * on the way (their value's text, its kind) and, once the scan succeeded, strings are
 * decoded in place and integers converted. Every other member has been validated and is
 * otherwise ignored, as the protocol allows. Performs nothing: protocol.c decides what to
 * do with the fields. Owns no state beyond the message being scanned. */
#include <errno.h>
#include <string.h>

#include "fastpath.h"

typedef struct msg_key {
  const char *name;
  size_t len;
} msg_key_t;

#define MSG_KEY(s) {s, sizeof(s) - 1}

static const msg_key_t msg_keys[STREAM_MSG_FIELDS] = {
    [STREAM_MSG_OP] = MSG_KEY("op"),       [STREAM_MSG_REF] = MSG_KEY("ref"),
    [STREAM_MSG_TOPIC] = MSG_KEY("topic"), [STREAM_MSG_ID] = MSG_KEY("id"),
    [STREAM_MSG_TYPE] = MSG_KEY("type"),   [STREAM_MSG_LANE] = MSG_KEY("lane"),
    [STREAM_MSG_DATA] = MSG_KEY("data"),   [STREAM_MSG_GROUP] = MSG_KEY("group"),
    [STREAM_MSG_SEQ] = MSG_KEY("seq"),     [STREAM_MSG_DELAY_MS] = MSG_KEY("delay_ms"),
};

static void msg_member(void *ud, const stream_jout_t *out, size_t key_off, size_t key_len, size_t val_off,
                       size_t val_len) {
  stream_msg_t *m = ud;
  const char *key = out->p + key_off;
  for (int i = 0; i < STREAM_MSG_FIELDS; i++) {
    if (msg_keys[i].len != key_len || memcmp(msg_keys[i].name, key, key_len) != 0) continue;
    stream_msg_field_t *f = &m->f[i];
    const char *v = out->p + val_off;
    f->off = val_off;
    f->len = val_len;
    if (*v == '"') f->kind = STREAM_MSG_STRING;
    else if (*v == 'n') f->kind = STREAM_MSG_NULL;
    else if ((*v == '-' || (*v >= '0' && *v <= '9')) && !memchr(v, '.', val_len) && !memchr(v, 'e', val_len))
      f->kind = STREAM_MSG_INT; /* canonical reals always have a '.' or an 'e' */
    else f->kind = STREAM_MSG_OTHER;
    return; /* keys are unique: the writer refuses duplicates */
  }
}

/* The canonical text of an integer within int64 (checked by the writer). */
static int64_t msg_int(const char *s, size_t len) {
  bool neg = *s == '-';
  uint64_t u = 0;
  for (size_t i = neg; i < len; i++) u = u * 10 + (uint64_t)(s[i] - '0');
  return neg ? -(int64_t)(u - 1) - 1 : (int64_t)u;
}

int stream__msg_scan(stream_msg_t *m, const char *text, size_t len, uint32_t max_depth, char *buf, size_t cap) {
  memset(m->f, 0, sizeof m->f);
  stream__jout_init(&m->out, buf, cap);
  if (stream__json_canon(text, len, max_depth, &m->out, msg_member, m) < 0) return -EINVAL;
  for (int i = 0; i < STREAM_MSG_FIELDS; i++) {
    stream_msg_field_t *f = &m->f[i];
    char *v = m->out.p + f->off;
    if (f->kind == STREAM_MSG_INT) {
      f->i = msg_int(v, f->len);
    } else if (f->kind == STREAM_MSG_STRING && i != STREAM_MSG_DATA) { /* data keeps its text */
      f->str_len = stream__json_canon_unescape(v, v, f->len);
      f->str = v;
    }
  }
  return 0;
}

void stream__msg_close(stream_msg_t *m) { stream__jout_close(&m->out); }
