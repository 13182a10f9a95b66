/* Tests for the fast path of streams/protocol.c (with msgscan.c and the hand-written
 * control frames of conn.c and protocol.c): a corpus of client messages, valid and
 * invalid, goes through the fast path (falling back to jansson when it defers) on one hub
 * and through the jansson path alone on a twin hub; every reply and every published event
 * frame must be the same bytes (epochs, random per hub, are masked), and the corpus says
 * which messages the fast path must take itself. Then the hand-written replies are
 * compared with what jansson writes for the same objects. */
#include "fastpath.h"
#include "streams/helpers.h"

typedef struct side {
  env_t e;
  tconn_t t; /* publishes, subscribes to acme/r and acme/s, member of group g on acme/q */
} side_t;

typedef struct twins {
  side_t fast; /* stream_conn_handle_message: fast path, jansson when it defers */
  side_t slow; /* the jansson path only */
} twins_t;

static void side_start(side_t *s) {
  env_config(&s->e);
  s->e.cfg.max_message_bytes = 8192;
  s->e.cfg.max_event_bytes = 2048;
  s->e.cfg.max_json_depth = 6;
  s->e.cfg.topic_publish_rate = 100;
  s->e.cfg.topic_publish_burst = 20;
  s->e.cfg.control_queue_max = 64;
  env_start(&s->e);
  tconn_open(&s->e, &s->t, "acme", STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH);
  sub_live(&s->t, "acme/r");
  sub_live(&s->t, "acme/s");
  const char *join = "{\"op\":\"sub\",\"topic\":\"acme/q\",\"group\":\"g\",\"max_inflight\":10}";
  assert_int_equal(stream__conn_handle_slow(s->t.c, join, strlen(join)), 0);
  for (int i = 0; i < 6; i++) pub_ok(&s->e, "acme/q", "{\"job\":1}");
  env_run(&s->e);
}

static void side_stop(side_t *s) {
  stream_conn_free(s->t.c);
  env_stop(&s->e);
}

static int setup(void **state) {
  twins_t *w = calloc(1, sizeof *w);
  side_start(&w->fast);
  side_start(&w->slow);
  *state = w;
  return 0;
}

static int teardown(void **state) {
  twins_t *w = *state;
  side_stop(&w->fast);
  side_stop(&w->slow);
  free(w);
  return 0;
}

/* Every payload pulled from t, one per line, with each epoch value replaced by 'E's. */
static char *collect(tconn_t *t) {
  size_t cap = 1 << 16, n = 0;
  char *out = xmalloc(cap);
  for (int guard = 0; guard < 1000 && stream_conn_pending(t->c); guard++) {
    stream_frame_t *frames[64];
    int k = stream_conn_pull(t->c, frames, 64, 1 << 20);
    if (k <= 0) break;
    for (int i = 0; i < k; i++) {
      size_t len;
      const unsigned char *p = stream_frame_payload(frames[i], &len);
      if (n + len + 2 > cap) out = xrealloc(out, cap = (n + len + 2) * 2);
      memcpy(out + n, p, len);
      out[n + len] = '\n';
      n += len + 1;
      stream_frame_unref(&frames[i]);
    }
  }
  out[n] = '\0';
  for (char *e = out; (e = strstr(e, "\"epoch\":\"")) != NULL;) {
    e += 9;
    for (int i = 0; i < STORE_EPOCH_LEN && e[i] && e[i] != '"'; i++) e[i] = 'E';
  }
  return out;
}

#define SIZED(lit) lit, sizeof(lit) - 1 /* a message with a NUL inside */

typedef struct mcase {
  const char *msg;
  size_t len; /* 0: strlen(msg) */
  bool fast;  /* the fast path must handle it itself */
} mcase_t;

/* Sends one message to both sides, turns both loops and compares what each client got. */
static void run_case(twins_t *w, const mcase_t *c, size_t idx) {
  size_t len = c->len ? c->len : strlen(c->msg);
  int rf = stream__conn_handle_fast(w->fast.t.c, c->msg, len);
  bool deferred = rf == STREAM_FAST_DEFER;
  if (deferred) rf = stream__conn_handle_slow(w->fast.t.c, c->msg, len);
  int rs = stream__conn_handle_slow(w->slow.t.c, c->msg, len);
  if (deferred == c->fast)
    fail_msg("case %zu (%.*s): the fast path %s it", idx, (int)len, c->msg, deferred ? "deferred" : "took");
  if (rf != rs) fail_msg("case %zu (%.*s): returned %d, jansson path %d", idx, (int)len, c->msg, rf, rs);
  env_advance_ms(&w->fast.e, 3);
  env_advance_ms(&w->slow.e, 3);
  env_run(&w->fast.e);
  env_run(&w->slow.e);
  char *a = collect(&w->fast.t), *b = collect(&w->slow.t);
  if (strcmp(a, b) != 0)
    fail_msg("case %zu (%.*s):\n--- fast path\n%s--- jansson path\n%s", idx, (int)len, c->msg, a, b);
  free(a);
  free(b);
}

static void run_cases(twins_t *w, const mcase_t *cases, size_t n) {
  for (size_t i = 0; i < n; i++) run_case(w, &cases[i], i);
}

static void test_pub_messages_publish_and_reply_the_same_bytes_on_both_paths(void **state) {
  static const mcase_t cases[] = {
      {"{\"op\":\"pub\",\"ref\":\"1\",\"topic\":\"acme/r\",\"type\":\"bench\",\"data\":{\"t0\":1764300000123456,"
       "\"pad\":\"xxxxxxxxxxxxxxxx\"}}", 0, true},
      {" {\n\t\"op\" : \"pub\" ,\r\n \"topic\" :\"acme/r\", \"data\" : [ 1 , 2 , { \"a\" : null } , [ ] , { } ] } \n",
       0, true},
      {"{\"data\":{\"k\":true},\"topic\":\"acme/r\",\"op\":\"pub\"}", 0, true}, /* op last */
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"x\":{\"y\":[1,2.5,\"z\"]},\"after\":5,\"group\":7,\"seq\":\"s\","
       "\"delay_ms\":{},\"data\":1}", 0, true}, /* fields of other ops and unknown ones are skipped */
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":{\"s\":\"\\u00e9\\/\\n\\t\\\"\\\\\\u0001\\u001F\\ud83d\\ude00"
       "\\u2028\\u0022\\u005C\\u007f\"}}", 0, true},
      {"{\"op\":\"pub\",\"ref\":\"r\\u0031\\n\\\"\",\"topic\":\"acme/r\",\"id\":\"\\u00e9x\",\"type\":\"t\\\"y\\/\","
       "\"data\":\"\xc3\xa9\xf0\x9f\x98\x80\"}", 0, true},
      {"{\"o\\u0070\":\"p\\u0075b\",\"top\\u0069c\":\"acme\\/r\",\"data\":0}", 0, true}, /* escaped keys */
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":[0.1,1e5,-0.0,1E-7,1.5e300,2.5e-310,100.0,1e22,"
       "123456789012345678.0,-2.2250738585072014e-308,5e-324,1e-400]}", 0, true},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":[-0,9223372036854775807,-9223372036854775808,0,-1]}", 0, true},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":[[[[{\"d\":5}]]]]}", 0, true}, /* depth 6 = the limit */
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":null}", 0, true},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\"}", 0, true},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"just text\"}", 0, true},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":false}", 0, true},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":{},\"ref\":null,\"id\":null,\"type\":null,\"lane\":null}", 0,
       true},
      {"{\"op\":\"pub\",\"topic\":\"acme/s\",\"lane\":\"ephemeral\",\"type\":\"typing\",\"data\":{\"on\":true}}", 0,
       true},
      {"{\"op\":\"pub\",\"topic\":\"acme/s\",\"lane\":\"control\",\"type\":\"step\",\"data\":{\"n\":1}}", 0, true},
      {"{\"op\":\"pub\",\"ref\":\"d1\",\"topic\":\"acme/r\",\"id\":\"evt-1\",\"data\":1}", 0, true},
      {"{\"op\":\"pub\",\"ref\":\"d2\",\"topic\":\"acme/r\",\"id\":\"evt-1\",\"data\":2}", 0, true}, /* duplicate */
      {"{\"op\":\"pub\",\"ref\":\"f\",\"topic\":\"other/x\",\"data\":1}", 0, true},                  /* forbidden */
      {"{\"op\":\"pub\",\"topic\":\"acme/x\",\"data\":\"0123456789012345678901234567890123456789\",\"id\":\"\"}", 0,
       false},
      /* deferred: every error of the message itself is the jansson path's */
      {"{\"op\":\"pub\",\"topic\":5,\"data\":1}", 0, false},
      {"{\"op\":\"pub\",\"data\":1}", 0, false},
      {"{\"op\":\"pub\",\"topic\":null}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"Acme/x\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"id\":5}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"type\":{}}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"lane\":\"bulk\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"lane\":\"ephemeral-but-longer-than-16\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"lane\":[]}", 0, false},
      {"{\"op\":\"pub\",\"ref\":5,\"topic\":\"acme/r\"}", 0, false},
      {"{\"op\":\"pub\",\"ref\":\"\",\"topic\":\"acme/r\"}", 0, true},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":{\"a\":1,\"a\":2}}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":{\"a\":1,\"\\u0061\":2}}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"topic\":\"acme/r\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"x\":1,\"x\":1}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"\\u0000\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"\\ud800\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"\\udc00x\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"\\ud800\\u0041\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"\xff\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"\xc0\xaf\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"\xed\xa0\x80\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"a\tb\"}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":1e400}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":9223372036854775808}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":-9223372036854775809}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":01}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":1.}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":NaN}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":[[[[[{}]]]]]}", 0, false}, /* depth 7 */
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":1", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":1,}", 0, false},
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":1} {}", 0, false},
      {SIZED("{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":1\0}"), false}, /* a raw NUL (jansson skips this one) */
      {SIZED("{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":1}\0"), false},
      {"\xef\xbb\xbf{\"op\":\"ping\"}", 0, false}, /* a byte order mark */
      {"{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":"
       "0.1000000000000000000000000000000000000000000000000000000000000000001}",
       0, false}, /* a real literal over 63 bytes: valid, left to jansson */
      {"[{\"op\":\"pub\"}]", 0, false},
      {"\"pub\"", 0, false},
      {"", 0, false},
      {"   ", 0, false},
  };
  run_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_other_messages_reply_the_same_bytes_on_both_paths(void **state) {
  static const mcase_t cases[] = {
      {"{\"op\":\"ping\"}", 0, true},
      {"{\"op\":\"ping\",\"ref\":\"p1\"}", 0, true},
      {"{\"op\":\"ping\",\"ref\":\"\\u00e9\\n\\u0001\\\"\\\\/\\ud83d\\ude00\"}", 0, true},
      {"{\"ref\":\"x\",\"op\":\"ping\",\"extra\":[1,{\"a\":\"b\"}]}", 0, true},
      {"{\"op\":\"ping\",\"ref\":\"1234567890123456789012345678901234567890123456789012345678901234567890"
       "1234567890123456789012345678901234567890123456789012345678\"}", 0, true}, /* 128 bytes */
      {"{\"op\":\"ping\",\"ref\":\"1234567890123456789012345678901234567890123456789012345678901234567890"
       "12345678901234567890123456789012345678901234567890123456789\"}", 0, false}, /* 129 bytes */
      {"{\"op\":\"ping\",\"ref\":5}", 0, false},
      {"{\"op\":\"ping\",\"ref\":[]}", 0, false},
      {"{\"op\":\"ping\",\"op\":\"ping\"}", 0, false},
      {"{\"op\":7}", 0, false},
      {"{\"op\":null}", 0, false},
      {"{\"topic\":\"acme/a\"}", 0, false},
      {"{\"op\":\"jump\"}", 0, false},
      {"{\"op\":\"PING\"}", 0, false},
      {"{\"op\":\"sub\",\"topic\":\"acme/t\"}", 0, false},
      {"{\"op\":\"unsub\",\"topic\":\"acme/t\",\"ref\":\"u\"}", 0, false},
      {"{\"op\":\"ping\",\"x\":[[[[[[[1]]]]]]]}", 0, false}, /* deeper than 6 */
      /* consumer groups: seqs 1..6 of acme/q are held by this member */
      {"{\"op\":\"ack\",\"ref\":\"a1\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":1}", 0, true},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":2}", 0, true}, /* silent */
      {"{\"op\":\"ack\",\"ref\":\"a1\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":1}", 0, true}, /* not held */
      {"{\"op\":\"ack\",\"ref\":\"a9\",\"topic\":\"acme/q\",\"group\":\"nope\",\"seq\":3}", 0, true},
      {"{\"op\":\"extend\",\"ref\":\"e\\\"1\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":3}", 0, true},
      {"{\"op\":\"nack\",\"ref\":\"n1\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":4,\"delay_ms\":100}", 0, true},
      {"{\"op\":\"nack\",\"ref\":\"n2\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":5,\"delay_ms\":null}", 0, true},
      {"{\"op\":\"ack\",\"ref\":\"a6\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":6,\"delay_ms\":\"x\"}", 0, true},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":9223372036854775807}", 0, true},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"seq\":1}", 0, false},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":\"bad name\",\"seq\":1}", 0, false},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":3,\"seq\":1}", 0, false},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":0}", 0, false},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":-0}", 0, false},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":1.0}", 0, false},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":\"1\"}", 0, false},
      {"{\"op\":\"ack\",\"topic\":\"acme/q\",\"group\":\"g\"}", 0, false},
      {"{\"op\":\"ack\",\"topic\":\"other/q\",\"group\":\"g\",\"seq\":1}", 0, true},
      {"{\"op\":\"nack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":5,\"delay_ms\":-1}", 0, false},
      {"{\"op\":\"nack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":5,\"delay_ms\":86400001}", 0, false},
      {"{\"op\":\"nack\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":5,\"delay_ms\":true}", 0, false},
  };
  run_cases(*state, cases, sizeof cases / sizeof cases[0]);
}

/* Rate limits, sizes and larger messages: publish errors are the fast path's too. */
static void test_limits_and_large_messages_give_the_same_bytes_on_both_paths(void **state) {
  twins_t *w = *state;
  char msg[8300];
  /* The topic bucket holds 20: the rest are rate_limited with a retry time. */
  for (int i = 0; i < 24; i++) {
    snprintf(msg, sizeof msg, "{\"op\":\"pub\",\"ref\":\"h%d\",\"topic\":\"acme/hot\",\"data\":%d}", i, i);
    mcase_t c = {msg, 0, true};
    run_case(w, &c, (size_t)i);
  }
  /* data over max_event_bytes: too_large from the publish */
  int n = snprintf(msg, sizeof msg, "{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":\"%03000d\"}", 0);
  mcase_t big = {msg, (size_t)n, true};
  run_case(w, &big, 100);
  /* a message over the stack buffer: the scan moves to the heap */
  n = snprintf(msg, sizeof msg, "{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":{\"text\":\"%01900d\",\"n\":[", 7);
  for (int i = 0; i < 60; i++) n += snprintf(msg + n, sizeof msg - (size_t)n, "%s1e%d", i ? "," : "", i);
  n += snprintf(msg + n, sizeof msg - (size_t)n, "]}}");
  mcase_t heap = {msg, (size_t)n, true};
  run_case(w, &heap, 101);
  /* over max_message_bytes */
  n = snprintf(msg, sizeof msg, "{\"op\":\"ping\",\"pad\":\"%08200d\"}", 0);
  mcase_t huge = {msg, (size_t)n, false};
  run_case(w, &huge, 102);
  /* an object wider than the scanner's duplicate check: valid, left to jansson */
  n = snprintf(msg, sizeof msg, "{\"op\":\"pub\",\"topic\":\"acme/r\",\"data\":{");
  for (int i = 0; i < 40; i++) n += snprintf(msg + n, sizeof msg - (size_t)n, "%s\"k%d\":%d", i ? "," : "", i, i);
  n += snprintf(msg + n, sizeof msg - (size_t)n, "}}");
  mcase_t wide = {msg, (size_t)n, false};
  run_case(w, &wide, 103);
}

/* Random mutations of the corpus above: both paths agree on every one. */
static void test_mutated_messages_give_the_same_bytes_on_both_paths(void **state) {
  twins_t *w = *state;
  static const char *seeds[] = {
      "{\"op\":\"pub\",\"ref\":\"r1\",\"topic\":\"acme/r\",\"id\":\"i\",\"type\":\"t\","
      "\"data\":{\"a\":[1,2.5,\"\\u00e9\"]}}",
      "{\"op\":\"ping\",\"ref\":\"p\\n\"}",
      "{\"op\":\"ack\",\"ref\":\"a\",\"topic\":\"acme/q\",\"group\":\"g\",\"seq\":3}",
      "{\"op\":\"pub\",\"topic\":\"acme/s\",\"lane\":\"ephemeral\",\"data\":-0}",
  };
  static const char alphabet[] = "{}[]\",:\\ 0123456789-.eEtrufalsnu/\x01\xc3\xa9";
  unsigned seed = 3;
  int fast = 0;
  for (int i = 0; i < 3000; i++) {
    char buf[256];
    const char *s = seeds[i % 4];
    size_t len = strlen(s);
    memcpy(buf, s, len);
    seed = seed * 1103515245u + 12345u;
    int muts = (int)((seed >> 8) % 3);
    for (int k = 0; k < muts; k++) {
      seed = seed * 1103515245u + 12345u;
      size_t at = (seed >> 8) % len;
      seed = seed * 1103515245u + 12345u;
      char ch = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
      if ((seed >> 20) & 1) buf[at] = ch;
      else memmove(buf + at, buf + at + 1, len - at - 1), len--;
    }
    int probe = stream__conn_handle_fast(w->fast.t.c, buf, len);
    if (probe != STREAM_FAST_DEFER) {
      /* taken: redo on the jansson twin only, then compare */
      int rs = stream__conn_handle_slow(w->slow.t.c, buf, len);
      if (probe != rs) fail_msg("mutation %d (%.*s): %d vs %d", i, (int)len, buf, probe, rs);
      fast++;
    } else {
      int rf = stream__conn_handle_slow(w->fast.t.c, buf, len);
      assert_int_equal(rf, stream__conn_handle_slow(w->slow.t.c, buf, len));
    }
    env_advance_ms(&w->fast.e, 3);
    env_advance_ms(&w->slow.e, 3);
    env_run(&w->fast.e);
    env_run(&w->slow.e);
    char *a = collect(&w->fast.t), *b = collect(&w->slow.t);
    if (strcmp(a, b) != 0)
      fail_msg("mutation %d (%.*s):\n--- fast path\n%s--- jansson path\n%s", i, (int)len, buf, a, b);
    free(a);
    free(b);
  }
  assert_true(fast > 500); /* the fast path took a good share of them */
}

/* ---- hand-written replies against jansson ---- */

static char *jansson_text(json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return s;
}

static void assert_frame_text(stream_frame_t *f, const char *want) {
  size_t len;
  const unsigned char *p = stream_frame_payload(f, &len);
  if (len != strlen(want) || memcmp(p, want, len) != 0) fail_msg("wrote %.*s\nwant  %s", (int)len, p, want);
  assert_int_equal(p[len], '\0');
}

static stream_frame_t *pull_one(tconn_t *t) {
  stream_frame_t *f = NULL;
  assert_int_equal(stream_conn_pull(t->c, &f, 1, 1 << 20), 1);
  return f;
}

static const char *tricky_refs[] = {"c1",          "",
                                    "q\"u\\o/te",  "ctl\x01\x1f\b\f\n\r\t",
                                    "\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80", NULL};

static void test_puback_is_written_as_jansson_writes_it(void **state) {
  twins_t *w = *state;
  free(collect(&w->fast.t)); /* what setup queued */
  stream_conn_t *c = w->fast.t.c;
  for (size_t i = 0; i < sizeof tricky_refs / sizeof tricky_refs[0]; i++) {
    for (int variant = 0; variant < 3; variant++) {
      stream_pub_t p = {.ref = (char *)tricky_refs[i]};
      stream_ack_t ack = {.topic = "acme/room-1", .epoch = "0123456789abcdef", .seq = variant == 2 ? 0 : 42 + i,
                          .duplicate = variant == 1, .ephemeral = variant == 2};
      stream__conn_pub_done(c, &p, &ack);
      json_t *o = json_object();
      json_object_set_new(o, "op", json_string("puback"));
      if (p.ref) json_object_set_new(o, "ref", json_string(p.ref));
      json_object_set_new(o, "topic", json_string(ack.topic));
      json_object_set_new(o, "seq", ack.ephemeral ? json_null() : json_integer((json_int_t)ack.seq));
      json_object_set_new(o, "epoch", json_string(ack.epoch));
      json_object_set_new(o, "duplicate", json_boolean(ack.duplicate));
      char *want = jansson_text(o);
      stream_frame_t *f = pull_one(&w->fast.t);
      assert_frame_text(f, want);
      assert_string_equal(stream_frame_op(f), "puback");
      assert_string_equal(stream_frame_topic(f), "acme/room-1");
      assert_int_equal(stream_frame_kind(f), STREAM_FRAME_CONTROL);
      assert_int_equal(stream_frame_lane(f), STREAM_LANE_CONTROL);
      stream_frame_unref(&f);
      free(want);
    }
  }
}

static void test_error_is_written_as_jansson_writes_it_even_for_invalid_utf8_messages(void **state) {
  twins_t *w = *state;
  free(collect(&w->fast.t));
  stream_conn_t *c = w->fast.t.c;
  static const char *messages[] = {NULL, "", "plain", "quote \" and \\ and \n", "bad \xff utf-8", "cut \xc3",
                                   "\xc3\xa9t\xc3\xa9"};
  static const int statuses[] = {-EINVAL, -EACCES, -EAGAIN, -EMSGSIZE, -EBUSY, -EIO};
  for (size_t i = 0; i < sizeof tricky_refs / sizeof tricky_refs[0]; i++) {
    for (size_t k = 0; k < sizeof messages / sizeof messages[0]; k++) {
      int status = statuses[(i + k) % 6];
      const char *topic = k % 2 ? "acme/r" : NULL;
      uint32_t retry = k % 3 == 0 ? 0 : (uint32_t)(250 * k);
      assert_int_equal(stream__conn_error(c, tricky_refs[i], status, topic, messages[k], retry), 0);
      json_t *o = json_object();
      json_object_set_new(o, "op", json_string("error"));
      if (tricky_refs[i]) json_object_set_new(o, "ref", json_string(tricky_refs[i]));
      json_object_set_new(o, "code", json_string(stream__error_code(status)));
      json_object_set_new(o, "message",
                          json_string(messages[k] && *messages[k] ? messages[k] : stream__error_code(status)));
      if (topic) json_object_set_new(o, "topic", json_string(topic));
      if (retry) json_object_set_new(o, "retry_after_ms", json_integer(retry));
      char *want = jansson_text(o);
      stream_frame_t *f = pull_one(&w->fast.t);
      assert_frame_text(f, want);
      assert_string_equal(stream_frame_op(f), "error");
      if (topic) assert_string_equal(stream_frame_topic(f), topic);
      else assert_null(stream_frame_topic(f));
      stream_frame_unref(&f);
      free(want);
    }
  }
}

static void test_pong_and_acked_are_written_as_jansson_writes_them(void **state) {
  twins_t *w = *state;
  free(collect(&w->fast.t));
  for (size_t i = 0; i < sizeof tricky_refs / sizeof tricky_refs[0]; i++) {
    const char *ref = tricky_refs[i];
    json_t *m = json_pack("{s:s}", "op", "ping");
    if (ref) json_object_set_new(m, "ref", json_string(ref));
    char *msg = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    assert_int_equal(stream__conn_handle_fast(w->fast.t.c, msg, strlen(msg)), 0);
    free(msg);
    json_t *o = json_pack("{s:s}", "op", "pong");
    if (ref) json_object_set_new(o, "ref", json_string(ref));
    char *want = jansson_text(o);
    stream_frame_t *f = pull_one(&w->fast.t);
    assert_frame_text(f, want);
    assert_string_equal(stream_frame_op(f), "pong");
    stream_frame_unref(&f);
    free(want);
    if (!ref) continue;
    /* ack, extend, nack of the held seqs 1..6 */
    static const char *ops[] = {"ack", "extend", "nack"}, *done[] = {"acked", "extended", "nacked"};
    m = json_pack("{s:s,s:s,s:s,s:s,s:i}", "op", ops[i % 3], "ref", ref, "topic", "acme/q", "group", "g", "seq",
                  (int)i + 1);
    msg = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    assert_int_equal(stream__conn_handle_fast(w->fast.t.c, msg, strlen(msg)), 0);
    free(msg);
    want = jansson_text(json_pack("{s:s,s:s,s:s,s:s,s:I}", "op", done[i % 3], "ref", ref, "topic", "acme/q", "group",
                                  "g", "seq", (json_int_t)i + 1));
    f = pull_one(&w->fast.t);
    assert_frame_text(f, want);
    assert_string_equal(stream_frame_op(f), done[i % 3]);
    assert_string_equal(stream_frame_topic(f), "acme/q");
    stream_frame_unref(&f);
    free(want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pub_messages_publish_and_reply_the_same_bytes_on_both_paths, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_other_messages_reply_the_same_bytes_on_both_paths, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits_and_large_messages_give_the_same_bytes_on_both_paths, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_mutated_messages_give_the_same_bytes_on_both_paths, setup, teardown),
      cmocka_unit_test_setup_teardown(test_puback_is_written_as_jansson_writes_it, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_is_written_as_jansson_writes_it_even_for_invalid_utf8_messages,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_pong_and_acked_are_written_as_jansson_writes_them, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
