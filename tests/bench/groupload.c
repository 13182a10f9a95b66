/* groupload: consumer group dispatch throughput (issue 6 "Done when"), a bounded loopback
 * tool (docs/bench-tools.md, docs/benchmarks.md).
 *
 * --publishers connections publish N task events to a fresh topic (each with at most
 * --window publishes awaiting their puback: pubacks are control replies, and a client that
 * lets too many of them wait is slowed down, then closed), M member connections of one group (each
 * with
 * --max-inflight) ack every delivery as it arrives. When every task was delivered, each
 * member sends a ping: its pong proves that the server handled all of its acks (messages
 * of one connection are handled in order). Throughput is N over the time from the first
 * publish to the last pong: tasks published, dispatched, delivered and acked end to end.
 * It also checks exactly-once: every seq 1..N delivered once, no redelivery. Output: one
 * JSON object on stdout; exit status 0 only for a complete, exactly-once run.
 *
 * Single thread, plain non-blocking sockets and poll(), the RFC 6455 framing of wsframe.c.
 * Messages are recognised by their leading bytes and a few fields; the server's JSON is
 * trusted (it is the thing measured, not policed). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wsframe.h"

typedef struct gl_opts {
  const char *host;
  int port, members, publishers, max_inflight, window, payload, timeout_s;
  long tasks;
  const char *tenant, *group;
} gl_opts_t;

typedef struct gl_conn {
  int fd;
  int idx; /* < 0: publisher -1 - idx; else the member's index */
  wsf_reader_t rd;
  char key[WSF_KEY_LEN + 1];
  char hs[8192];
  size_t hs_len;
  bool open;   /* handshake done */
  bool joined; /* members: "subscribed" came */
  bool ponged;
  uint8_t *out; /* owned: frames not yet written */
  size_t out_len, out_off, out_cap;
  uint64_t rng;
  long delivered;
  long sent, acked; /* publishers: publishes sent and acknowledged */
} gl_conn_t;

typedef struct gl {
  gl_opts_t o;
  gl_conn_t *c; /* [0..publishers) publishers, then the members */
  int n, np;
  char topic[128];
  long sent, acked_pub, unique, dups, redelivered, out_of_range;
  uint8_t *seen; /* bitmap 1..tasks */
  bool pinged;
  double t0, t_pub_done, t_deliver_done, t_end;
  char *pub_tail; /* ",\"data\":{\"pad\":\"xx..\",\"i\":" */
} gl_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "groupload: %s: %s\n", what, strerror(errno));
  exit(2);
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static bool all(const struct gl *g, bool (*pred)(const gl_conn_t *c));
static bool is_joined(const gl_conn_t *c);

static void out_frame(gl_conn_t *c, const char *text, size_t len) {
  size_t need = c->out_len + len + WSF_MAX_HEADER;
  if (need > c->out_cap) {
    c->out_cap = need * 2;
    c->out = realloc(c->out, c->out_cap);
    if (!c->out) die("realloc");
  }
  uint64_t r = xorshift(&c->rng);
  uint8_t mask[4];
  memcpy(mask, &r, 4);
  c->out_len += wsf_frame_encode(c->out + c->out_len, c->out_cap - c->out_len, WSF_OP_TEXT, true,
                                 mask, text, len);
}

static void out_text(gl_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_text(gl_conn_t *c, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  out_frame(c, buf, (size_t)n);
}

static int flush_out(gl_conn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (k <= 0) return -1;
    c->out_off += (size_t)k;
  }
  c->out_off = c->out_len = 0;
  return 0;
}

static long field_long(const char *p, size_t len, const char *name) {
  const char *f = memmem(p, len, name, strlen(name));
  return f ? strtol(f + strlen(name), NULL, 10) : -1;
}

/* Publishes while the window has room. */
static void publish_more(gl_t *g) {
  if (!all(g, is_joined)) return; /* start once every member is there */
  size_t cap = strlen(g->pub_tail) + strlen(g->topic) + 128;
  char *buf = malloc(cap);
  if (!buf) die("malloc");
  for (int i = 0; i < g->np; i++) {
    gl_conn_t *pub = &g->c[i];
    while (pub->open && g->sent < g->o.tasks && pub->sent - pub->acked < g->o.window) {
      if (g->sent == 0) g->t0 = now_s();
      int n = snprintf(buf, cap, "{\"op\":\"pub\",\"topic\":\"%s\",\"type\":\"task\"%s%ld}}",
                       g->topic, g->pub_tail, g->sent);
      out_frame(pub, buf, (size_t)n);
      g->sent++;
      pub->sent++;
    }
  }
  free(buf);
}

static bool all(const gl_t *g, bool (*pred)(const gl_conn_t *c)) {
  for (int i = g->np; i < g->n; i++)
    if (!pred(&g->c[i])) return false;
  return true;
}

static bool is_joined(const gl_conn_t *c) {
  return c->joined;
}

static bool is_ponged(const gl_conn_t *c) {
  return c->ponged;
}

typedef struct gl_msg_ctx {
  gl_t *g;
  gl_conn_t *c;
} gl_msg_ctx_t;

static int on_message(void *ud, uint8_t opcode, const uint8_t *payload, size_t len) {
  gl_msg_ctx_t *m = ud;
  gl_t *g = m->g;
  gl_conn_t *c = m->c;
  const char *p = (const char *)payload;
  if (opcode == WSF_OP_PING) {
    /* answer keepalives */
    uint64_t r = xorshift(&c->rng);
    uint8_t mask[4], frame[WSF_MAX_HEADER + 125];
    memcpy(mask, &r, 4);
    size_t n = wsf_frame_encode(frame, sizeof frame, WSF_OP_PONG, true, mask, payload, len);
    if (c->out_len + n > c->out_cap) {
      c->out_cap = (c->out_len + n) * 2;
      c->out = realloc(c->out, c->out_cap);
      if (!c->out) die("realloc");
    }
    memcpy(c->out + c->out_len, frame, n);
    c->out_len += n;
    return 0;
  }
  if (opcode != WSF_OP_TEXT) return opcode == WSF_OP_CLOSE ? -1 : 0;
  if (len > 12 && !memcmp(p, "{\"op\":\"ev\"", 10)) {
    long seq = field_long(p, len, "\"seq\":");
    if (memmem(p, len, "\"redelivered\":", 14)) g->redelivered++;
    if (seq < 1 || seq > g->o.tasks) {
      g->out_of_range++;
    } else if (g->seen[seq >> 3] & (1u << (seq & 7))) {
      g->dups++;
    } else {
      g->seen[seq >> 3] |= (uint8_t)(1u << (seq & 7));
      if (++g->unique == g->o.tasks) g->t_deliver_done = now_s();
    }
    c->delivered++;
    out_text(c, "{\"op\":\"ack\",\"topic\":\"%s\",\"group\":\"%s\",\"seq\":%ld}", g->topic,
             g->o.group, seq);
  } else if (len > 16 && !memcmp(p, "{\"op\":\"puback\"", 14)) {
    c->acked++;
    if (++g->acked_pub == g->o.tasks) g->t_pub_done = now_s();
    publish_more(g);
  } else if (!memcmp(p, "{\"op\":\"subscribed\"", 18 < len ? 18 : len)) {
    c->joined = true;
    publish_more(g);
  } else if (!memcmp(p, "{\"op\":\"pong\"", 12 < len ? 12 : len)) {
    c->ponged = true;
    if (all(g, is_ponged)) g->t_end = now_s();
  } else if (!memcmp(p, "{\"op\":\"error\"", 13 < len ? 13 : len)) {
    fprintf(stderr, "groupload: server error on %s %d: %.*s\n", c->idx < 0 ? "publisher" : "member",
            c->idx < 0 ? -1 - c->idx : c->idx, (int)(len > 300 ? 300 : len), p);
  }
  return 0;
}

static int dial(const gl_opts_t *o) {
  char port[16];
  snprintf(port, sizeof port, "%d", o->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  if (getaddrinfo(o->host, port, &hints, &res) != 0) return -1;
  int fd = -1;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  return fd;
}

/* Reads what is there; -1 when the connection ended or broke the protocol. */
static int conn_read(gl_t *g, gl_conn_t *c) {
  uint8_t buf[65536];
  gl_msg_ctx_t ctx = {g, c};
  for (;;) {
    ssize_t k = recv(c->fd, buf, sizeof buf, 0);
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (k <= 0) return -1;
    const uint8_t *data = buf;
    size_t len = (size_t)k;
    if (!c->open) {
      size_t take = len < sizeof c->hs - c->hs_len ? len : sizeof c->hs - c->hs_len;
      memcpy(c->hs + c->hs_len, buf, take);
      c->hs_len += take;
      int head = wsf_response_check(c->hs, c->hs_len, c->key, NULL);
      if (head == -EAGAIN) continue;
      if (head < 0) return -1;
      c->open = true;
      if (c->idx >= 0)
        out_text(c,
                 "{\"op\":\"sub\",\"topic\":\"%s\",\"group\":\"%s\",\"max_inflight\":%d,"
                 "\"ack_wait_ms\":600000}",
                 g->topic, g->o.group, g->o.max_inflight);
      if (c->idx < 0) publish_more(g);
      data = (const uint8_t *)c->hs + head;
      len = c->hs_len - (size_t)head;
    }
    if (len && wsf_reader_feed(&c->rd, data, len, on_message, &ctx)) return -1;
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: groupload --port P [--host 127.0.0.1] [--members 10] [--tasks 20000]\n"
          "                 [--publishers 2] [--window 48] [--max-inflight 64] [--payload 100]\n"
          "                 [--timeout 120]\n"
          "                 [--tenant bench] [--group workers]\n");
  exit(2);
}

int main(int argc, char **argv) {
  gl_t g = {.o = {.host = "127.0.0.1",
                  .members = 10,
                  .tasks = 20000,
                  .publishers = 2,
                  .max_inflight = 64,
                  .window = 48,
                  .payload = 100,
                  .timeout_s = 120,
                  .tenant = "bench",
                  .group = "workers"}};
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    i++;
    if (!strcmp(k, "--host"))
      g.o.host = v;
    else if (!strcmp(k, "--port"))
      g.o.port = atoi(v);
    else if (!strcmp(k, "--members"))
      g.o.members = atoi(v);
    else if (!strcmp(k, "--publishers"))
      g.o.publishers = atoi(v);
    else if (!strcmp(k, "--tasks"))
      g.o.tasks = atol(v);
    else if (!strcmp(k, "--max-inflight"))
      g.o.max_inflight = atoi(v);
    else if (!strcmp(k, "--window"))
      g.o.window = atoi(v);
    else if (!strcmp(k, "--payload"))
      g.o.payload = atoi(v);
    else if (!strcmp(k, "--timeout"))
      g.o.timeout_s = atoi(v);
    else if (!strcmp(k, "--tenant"))
      g.o.tenant = v;
    else if (!strcmp(k, "--group"))
      g.o.group = v;
    else
      usage();
  }
  if (g.o.port <= 0 || g.o.members < 1 || g.o.publishers < 1 || g.o.tasks < 1 || g.o.window < 1 ||
      g.o.payload < 0 || g.o.payload > 60000)
    usage();
  snprintf(g.topic, sizeof g.topic, "%s/groupload-%d-%ld", g.o.tenant, (int)getpid(),
           (long)time(NULL));
  char *pad = malloc((size_t)g.o.payload + 1);
  memset(pad, 'x', (size_t)g.o.payload);
  pad[g.o.payload] = '\0';
  size_t tl = strlen(pad) + 64;
  g.pub_tail = malloc(tl);
  snprintf(g.pub_tail, tl, ",\"data\":{\"pad\":\"%s\",\"i\":", pad);
  free(pad);
  g.seen = calloc((size_t)g.o.tasks / 8 + 1, 1);
  g.np = g.o.publishers;
  g.n = g.o.members + g.np;
  g.c = calloc((size_t)g.n, sizeof *g.c);
  for (int i = 0; i < g.n; i++) {
    gl_conn_t *c = &g.c[i];
    c->idx = i < g.np ? -1 - i : i - g.np;
    if (getrandom(&c->rng, sizeof c->rng, 0) != (ssize_t)sizeof c->rng || !c->rng)
      c->rng = 88172645463325252ull + (uint64_t)i;
    wsf_reader_init(&c->rd, 1u << 20);
    c->fd = dial(&g.o);
    if (c->fd < 0) die("connect");
    uint8_t nonce[16];
    for (int k = 0; k < 16; k++) nonce[k] = (uint8_t)xorshift(&c->rng);
    wsf_key_make(nonce, c->key);
    char req[1024];
    size_t n = wsf_request_build(req, sizeof req, g.o.host, g.o.port, "/v1/ws", c->key, NULL);
    c->out_cap = 65536;
    c->out = malloc(c->out_cap);
    if (!c->out) die("malloc");
    memcpy(c->out, req, n);
    c->out_len = n;
  }
  struct pollfd *pfd = calloc((size_t)g.n, sizeof *pfd);
  double deadline = now_s() + g.o.timeout_s;
  bool failed = false;
  while (!g.t_end && !failed) {
    if (g.unique == g.o.tasks && !g.pinged) {
      g.pinged = true;
      for (int i = g.np; i < g.n; i++) out_text(&g.c[i], "{\"op\":\"ping\",\"ref\":\"end\"}");
    }
    for (int i = 0; i < g.n; i++) {
      if (flush_out(&g.c[i]) < 0) failed = true;
      pfd[i] = (struct pollfd){.fd = g.c[i].fd,
                               .events = (short)(POLLIN | (g.c[i].out_len ? POLLOUT : 0))};
    }
    double left = deadline - now_s();
    if (left <= 0) break;
    int r = poll(pfd, (nfds_t)g.n, (int)(left * 1000) + 1);
    if (r < 0 && errno != EINTR) die("poll");
    for (int i = 0; i < g.n && r > 0; i++) {
      if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (conn_read(&g, &g.c[i]) < 0) {
          fprintf(stderr, "groupload: connection %d ended\n", i);
          failed = true;
        }
      }
    }
  }
  bool complete = g.t_end > 0;
  double span = complete ? g.t_end - g.t0 : now_s() - g.t0;
  long lost = g.o.tasks - g.unique;
  printf(
      "{\"topic\":\"%s\",\"publishers\":%d,\"members\":%d,\"tasks\":%ld,\"max_inflight\":%d,"
      "\"window\":%d,"
      "\"payload\":%d,\"complete\":%s,\"seconds\":%.3f,\"tasks_per_s\":%.0f,"
      "\"published_s\":%.3f,\"delivered_s\":%.3f,\"lost\":%ld,\"duplicates\":%ld,"
      "\"redelivered\":%ld,\"out_of_range\":%ld,\"per_member\":[",
      g.topic, g.o.publishers, g.o.members, g.o.tasks, g.o.max_inflight, g.o.window, g.o.payload,
      complete ? "true" : "false", span, complete ? (double)g.o.tasks / span : 0.0,
      g.t_pub_done ? g.t_pub_done - g.t0 : -1.0, g.t_deliver_done ? g.t_deliver_done - g.t0 : -1.0,
      lost, g.dups, g.redelivered, g.out_of_range);
  for (int i = g.np; i < g.n; i++) printf("%s%ld", i > g.np ? "," : "", g.c[i].delivered);
  printf("]}\n");
  for (int i = 0; i < g.n; i++) {
    close(g.c[i].fd);
    wsf_reader_close(&g.c[i].rd);
    free(g.c[i].out);
  }
  free(pfd);
  free(g.c);
  free(g.seen);
  free(g.pub_tail);
  bool ok = complete && lost == 0 && g.dups == 0 && g.redelivered == 0 && g.out_of_range == 0;
  return ok ? 0 : 1;
}
