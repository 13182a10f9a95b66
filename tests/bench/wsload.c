/* wsload: a WebSocket load client for benchmarks on loopback (docs/bench-tools.md).
 *
 * This file owns the command line, the loopback-only target check, forking the worker
 * processes (each holds fewer than 19,000 sockets, since RLIMIT_NOFILE is 20,000 here),
 * the phase handshake with them over pipes (all connected -> go -> publishers done ->
 * drain), and merging their results into one JSON summary on stdout: exact percentiles
 * from every sample, loss computed against the seqs the publishers saw acknowledged.
 * The connections themselves live in wsload_worker.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "base/mem.h"
#include "wsload.h"

#define WL_MAX_PER_WORKER 18900u /* sockets per process, below the 20,000 fd limit */

static const char wl_usage[] =
    "usage: wsload --mode MODE [options]\n"
    "\n"
    "WebSocket load client for benchmarks. Loopback targets only (127.0.0.0/8, ::1).\n"
    "Every run is bounded: it connects, runs for --duration, drains for at most --grace,\n"
    "closes every connection and prints one JSON summary on stdout.\n"
    "\n"
    "modes:\n"
    "  idle    open --conns connections and hold them --duration seconds\n"
    "          (with --subscribe each subscribes to one of --topics topics first)\n"
    "  sub     --conns subscribers over --topics topics, receive for --duration seconds;\n"
    "          loss is only what seq holes show (no publisher to compare with)\n"
    "  pub     --pubs publishers sending --rate publishes/s in total for --duration\n"
    "          seconds over --topics topics, measuring puback latency\n"
    "  pubsub  both: subscribers connect and subscribe first, then publishers run,\n"
    "          then subscribers drain; loss is exact against the acknowledged seqs\n"
    "\n"
    "target:\n"
    "  --url URL              ws://HOST:PORT/PATH (default ws://127.0.0.1:8080/v1/ws);\n"
    "                         a query string such as ?access_token=... is kept\n"
    "connections:\n"
    "  --conns N              idle/sub connections, subscribers in pubsub (default 1000)\n"
    "  --pubs N               publisher connections (default 1)\n"
    "  --workers N            processes for idle/sub connections (default: enough for at\n"
    "                         most 10,000 each, at least 2 when N >= 2; max 18,900 each)\n"
    "  --pub-workers N        processes for publishers (default 1)\n"
    "  --conn-rate R          new connections per second, all workers (default 2000)\n"
    "  --connect-timeout S    per connection, until open and subscribed (default 10)\n"
    "  --src-addrs K          bind sources 127.0.0.2..127.0.0.(K+1) round-robin so one\n"
    "                         address's ephemeral ports are not exhausted (default 10;\n"
    "                         0 = let the kernel choose; IPv6 targets never bind)\n"
    "topics and publishing:\n"
    "  --topics T             topics PREFIX0..PREFIX(T-1) (default 1)\n"
    "  --topic-prefix P       (default bench/t)\n"
    "  --rate R               publishes per second, all publishers (default 100)\n"
    "  --payload BYTES        size of the event's data object, about (default 200)\n"
    "  --warmup S             first S seconds of publishing are marked data.w=1 and left\n"
    "                         out of both latency figures (default 0)\n"
    "timing:\n"
    "  --duration S           hold / receive / publish time (default 10, max 3600)\n"
    "  --grace S              after publishing: wait for acks and events (default 5)\n"
    "idle extras:\n"
    "  --subscribe            each idle connection subscribes to one topic\n"
    "  --ping                 each idle connection sends one {\"op\":\"ping\"} once open\n"
    "  --ping-interval S      every connection sends {\"op\":\"ping\"} every S seconds\n"
    "  --protocol P           coordinator (default) or nats: NATS's client protocol\n"
    "                         (CONNECT, SUB bench.t<i>, PING/PONG) for idle mode only,\n"
    "                         to compare memory per connection with nats-server\n"
    "output:\n"
    "  --ready-file PATH      created once every connection is open (or failed)\n"
    "  --max-samples N        latency samples kept per worker (default 50000000);\n"
    "                         beyond it a uniform reservoir (summary says sampled)\n"
    "  --pub-subprotocol NAME publishers ask for this WebSocket subprotocol (e.g. coord-bulk:\n"
    "                         the daemon then reads them 16 KB at a time)\n"
    "  --quiet                no progress lines on stderr\n"
    "  --help\n";

/* Parses ws://HOST:PORT/PATH into o; HOST must be a loopback address. Returns 0 or -EINVAL
 * with a message on stderr. */
static int wl_url_parse(const char *url, wl_opts_t *o) {
  if (strncmp(url, "ws://", 5) != 0) {
    fprintf(stderr, "wsload: --url must start with ws:// (no TLS on loopback)\n");
    return -EINVAL;
  }
  const char *h = url + 5, *hend, *rest;
  if (*h == '[') {
    hend = strchr(h, ']');
    if (!hend) goto bad;
    h++;
    rest = hend + 1;
  } else {
    hend = h + strcspn(h, ":/?");
    rest = hend;
  }
  size_t hl = (size_t)(hend - h);
  if (hl == 0 || hl >= sizeof(o->host)) goto bad;
  char host[64];
  memcpy(host, h, hl);
  host[hl] = 0;
  o->port = 80;
  if (*rest == ':') {
    char *e;
    long p = strtol(rest + 1, &e, 10);
    if (p <= 0 || p > 65535) goto bad;
    o->port = (int)p;
    rest = e;
  }
  snprintf(o->path, sizeof(o->path), "%s%s", *rest == '/' ? "" : "/", rest);
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof(host), "127.0.0.1");
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1) {
    if ((ntohl(a4.s_addr) >> 24) != 127) goto notloop;
    o->ipv6 = false;
  } else if (inet_pton(AF_INET6, host, &a6) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&a6)) goto notloop;
    o->ipv6 = true;
  } else {
    goto notloop;
  }
  snprintf(o->host, sizeof(o->host), "%s", host);
  return 0;
notloop:
  fprintf(stderr, "wsload: refusing target %s: only loopback addresses (127.0.0.0/8, ::1, "
                  "localhost) may be loaded\n", host);
  return -EINVAL;
bad:
  fprintf(stderr, "wsload: cannot parse --url %s\n", url);
  return -EINVAL;
}

static int wl_num(const char *name, const char *v, double lo, double hi, double *out) {
  char *e;
  double d = strtod(v, &e);
  if (*v == 0 || *e != 0 || !(d >= lo && d <= hi)) {
    fprintf(stderr, "wsload: --%s %s: expected a number in [%g, %g]\n", name, v, lo, hi);
    return -EINVAL;
  }
  *out = d;
  return 0;
}

static int wl_opts_parse(int argc, char **argv, wl_opts_t *o) {
  static const struct option longs[] = {
      {"mode", 1, 0, 'm'}, {"url", 1, 0, 'u'}, {"conns", 1, 0, 'n'}, {"pubs", 1, 0, 'P'},
      {"workers", 1, 0, 'w'}, {"pub-workers", 1, 0, 'W'}, {"conn-rate", 1, 0, 'c'},
      {"connect-timeout", 1, 0, 'C'}, {"src-addrs", 1, 0, 'a'}, {"topics", 1, 0, 't'},
      {"topic-prefix", 1, 0, 'x'}, {"rate", 1, 0, 'r'}, {"payload", 1, 0, 'b'},
      {"warmup", 1, 0, 'U'}, {"duration", 1, 0, 'd'}, {"grace", 1, 0, 'g'},
      {"subscribe", 0, 0, 's'}, {"ping", 0, 0, 'p'}, {"ping-interval", 1, 0, 'i'},
      {"ready-file", 1, 0, 'R'}, {"max-samples", 1, 0, 'M'}, {"quiet", 0, 0, 'q'},
      {"protocol", 1, 0, 'o'}, {"pub-subprotocol", 1, 0, 'S'}, {"help", 0, 0, 'h'},
      {0, 0, 0, 0}};
  memset(o, 0, sizeof(*o));
  o->conns = 1000;
  o->pubs = 1;
  o->topics = 1;
  snprintf(o->topic_prefix, sizeof(o->topic_prefix), "bench/t");
  o->rate = 100;
  o->payload = 200;
  o->duration = 10;
  o->grace = 5;
  o->pub_workers = 1;
  o->conn_rate = 2000;
  o->connect_timeout = 10;
  o->src_addrs = 10;
  o->max_samples = 50000000;
  bool have_mode = false;
  if (wl_url_parse("ws://127.0.0.1:8080/v1/ws", o)) return -EINVAL;
  int ch;
  double d;
  while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    int rc = 0;
    switch (ch) {
    case 'm':
      have_mode = true;
      if (!strcmp(optarg, "idle")) o->mode = WL_MODE_IDLE;
      else if (!strcmp(optarg, "sub")) o->mode = WL_MODE_SUB;
      else if (!strcmp(optarg, "pub")) o->mode = WL_MODE_PUB;
      else if (!strcmp(optarg, "pubsub")) o->mode = WL_MODE_PUBSUB;
      else {
        fprintf(stderr, "wsload: --mode %s: expected idle, sub, pub or pubsub\n", optarg);
        rc = -EINVAL;
      }
      break;
    case 'u': rc = wl_url_parse(optarg, o); break;
    case 'n': rc = wl_num("conns", optarg, 0, 1e6, &d); o->conns = (uint32_t)d; break;
    case 'P': rc = wl_num("pubs", optarg, 0, 10000, &d); o->pubs = (uint32_t)d; break;
    case 'w': rc = wl_num("workers", optarg, 1, 64, &d); o->workers = (uint32_t)d; break;
    case 'W': rc = wl_num("pub-workers", optarg, 1, 64, &d); o->pub_workers = (uint32_t)d; break;
    case 'c': rc = wl_num("conn-rate", optarg, 1, 100000, &o->conn_rate); break;
    case 'C': rc = wl_num("connect-timeout", optarg, 0.1, 600, &o->connect_timeout); break;
    case 'a': rc = wl_num("src-addrs", optarg, 0, 250, &d); o->src_addrs = (uint32_t)d; break;
    case 't': rc = wl_num("topics", optarg, 1, 1e6, &d); o->topics = (uint32_t)d; break;
    case 'x':
      if (strlen(optarg) >= sizeof(o->topic_prefix) || strpbrk(optarg, "\"\\")) {
        fprintf(stderr, "wsload: --topic-prefix: at most 127 bytes, no quotes or backslashes\n");
        rc = -EINVAL;
      } else {
        snprintf(o->topic_prefix, sizeof(o->topic_prefix), "%s", optarg);
      }
      break;
    case 'r': rc = wl_num("rate", optarg, 0.001, 1e7, &o->rate); break;
    case 'b': rc = wl_num("payload", optarg, 0, WL_PAYLOAD_MAX, &d); o->payload = (uint32_t)d; break;
    case 'U': rc = wl_num("warmup", optarg, 0, 3600, &o->warmup); break;
    case 'd': rc = wl_num("duration", optarg, 0.1, 3600, &o->duration); break;
    case 'g': rc = wl_num("grace", optarg, 0, 600, &o->grace); break;
    case 's': o->subscribe = true; break;
    case 'p': o->ping_once = true; break;
    case 'i': rc = wl_num("ping-interval", optarg, 0, 3600, &o->ping_interval); break;
    case 'R':
      if (strlen(optarg) >= sizeof(o->ready_file)) rc = -EINVAL;
      else snprintf(o->ready_file, sizeof(o->ready_file), "%s", optarg);
      break;
    case 'M': rc = wl_num("max-samples", optarg, 1000, 1e9, &d); o->max_samples = (uint64_t)d; break;
    case 'q': o->quiet = true; break;
    case 'o':
      if (!strcmp(optarg, "nats")) o->nats = true;
      else if (strcmp(optarg, "coordinator") != 0) {
        fprintf(stderr, "wsload: --protocol %s: expected coordinator or nats\n", optarg);
        rc = -EINVAL;
      }
      break;
    case 'S':
      if (strlen(optarg) >= sizeof(o->pub_subprotocol) || strspn(optarg, "abcdefghijklmnopqrstuvwxyz"
                                                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != strlen(optarg)) {
        fprintf(stderr, "wsload: --pub-subprotocol: at most 31 token characters\n");
        rc = -EINVAL;
      } else {
        snprintf(o->pub_subprotocol, sizeof(o->pub_subprotocol), "%s", optarg);
      }
      break;
    case 'h': fputs(wl_usage, stdout); exit(0);
    default: fputs(wl_usage, stderr); return -EINVAL;
    }
    if (rc) return rc;
  }
  if (optind < argc || !have_mode) {
    fprintf(stderr, "wsload: %s\n\n%s", have_mode ? "unexpected argument" : "--mode is required", wl_usage);
    return -EINVAL;
  }
  if (o->nats && o->mode != WL_MODE_IDLE) {
    fprintf(stderr, "wsload: --protocol nats is for --mode idle only\n");
    return -EINVAL;
  }
  if (o->mode == WL_MODE_PUB) o->conns = 0;
  if (o->mode == WL_MODE_IDLE || o->mode == WL_MODE_SUB) o->pubs = 0;
  if ((o->mode == WL_MODE_PUB || o->mode == WL_MODE_PUBSUB) && o->pubs == 0) {
    fprintf(stderr, "wsload: --pubs must be at least 1 in this mode\n");
    return -EINVAL;
  }
  if (!o->workers) {
    o->workers = (o->conns + 9999) / 10000;
    if (o->workers < 2 && o->conns >= 2) o->workers = 2;
    if (o->workers == 0) o->workers = 1;
  }
  if (o->workers > o->conns && o->conns > 0) o->workers = o->conns;
  if (o->pub_workers > o->pubs && o->pubs > 0) o->pub_workers = o->pubs;
  if (o->conns && (o->conns + o->workers - 1) / o->workers > WL_MAX_PER_WORKER) {
    fprintf(stderr, "wsload: %u connections over %u workers is more than %u per process; "
                    "raise --workers\n", o->conns, o->workers, WL_MAX_PER_WORKER);
    return -EINVAL;
  }
  if ((o->pubs + o->pub_workers - 1) / o->pub_workers > WL_MAX_PER_WORKER) {
    fprintf(stderr, "wsload: too many publishers per process; raise --pub-workers\n");
    return -EINVAL;
  }
  return 0;
}

typedef struct wl_child {
  pid_t pid;
  wl_worker_spec_t spec;
  int to_child, from_child; /* parent's ends */
  bool ready, done, failed;
  wl_result_t res;
} wl_child_t;

static int wl_spawn(const wl_opts_t *o, wl_child_t *kids, size_t nk, size_t i) {
  int down[2], up[2];
  if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0) return -errno;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (size_t k = 0; k < i; k++) {
      close(kids[k].to_child);
      close(kids[k].from_child);
    }
    close(down[1]);
    close(up[0]);
    kids[i].spec.ctl_in = down[0];
    kids[i].spec.ctl_out = up[1];
    signal(SIGPIPE, SIG_IGN);
    exit(wl_worker_run(o, &kids[i].spec)); /* exit, not _exit: sanitizers check the worker too */
  }
  (void)nk;
  close(down[0]);
  close(up[1]);
  kids[i].pid = pid;
  kids[i].to_child = down[1];
  kids[i].from_child = up[0];
  return 0;
}

static void wl_tell(wl_child_t *kids, size_t nk, char msg, int role) {
  for (size_t i = 0; i < nk; i++) {
    if (kids[i].done || (role >= 0 && (int)kids[i].spec.role != role)) continue;
    if (write(kids[i].to_child, &msg, 1) != 1) kids[i].failed = true;
  }
}

static json_t *wl_lat_json(wl_samples_t *merged, uint64_t seen, uint64_t sum_us, uint32_t max_us) {
  wl_samples_sort(merged->v, merged->n);
  json_t *j = json_object();
  json_object_set_new(j, "samples", json_integer((json_int_t)merged->n));
  json_object_set_new(j, "observed", json_integer((json_int_t)seen));
  json_object_set_new(j, "sampled", json_boolean(merged->n < seen));
  if (merged->n == 0) return j;
  static const struct { const char *name; double q; } qs[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99_9", 0.999}};
  for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
    json_object_set_new(j, qs[i].name,
                        json_real(wl_percentile(merged->v, merged->n, qs[i].q) / 1000.0));
  json_object_set_new(j, "max", json_real(max_us / 1000.0));
  json_object_set_new(j, "mean", json_real(seen ? (double)sum_us / (double)seen / 1000.0 : 0));
  return j;
}

/* Appends src's samples into dst (allocating as needed). */
static void wl_samples_concat(wl_samples_t *dst, const wl_samples_t *src) {
  if (!src->n) return;
  dst->v = xrealloc(dst->v, (dst->n + src->n) * sizeof(uint32_t));
  memcpy(dst->v + dst->n, src->v, src->n * sizeof(uint32_t));
  dst->n += src->n;
}

#define WL_J(obj, key, val) json_object_set_new((obj), (key), json_integer((json_int_t)(val)))

static json_t *wl_summary(const wl_opts_t *o, wl_child_t *kids, size_t nk, double wall_s) {
  wl_counts_t t;
  memset(&t, 0, sizeof(t));
  wl_samples_t lat = {0}, ack = {0};
  uint64_t lat_seen = 0, lat_sum = 0, ack_seen = 0, ack_sum = 0, pub_us = 0, conn_us = 0;
  uint64_t ack_span = 0;
  uint32_t lat_max = 0, ack_max = 0;
  wl_topic_rec_t *topics = xcalloc(o->topics, sizeof(wl_topic_rec_t));
  for (uint32_t i = 0; i < o->topics; i++) topics[i].min_seq = UINT64_MAX;
  bool crashed = false;
  for (size_t k = 0; k < nk; k++) {
    wl_result_t *r = &kids[k].res;
    if (!kids[k].done || kids[k].failed) crashed = true;
    uint64_t *dst = (uint64_t *)&t;
    const uint64_t *src = (const uint64_t *)&r->c;
    for (size_t f = 0; f < sizeof(t) / sizeof(uint64_t); f++) dst[f] += src[f];
    if (r->c.publish_us > pub_us) pub_us = r->c.publish_us;
    if (r->c.connect_us > conn_us) conn_us = r->c.connect_us;
    if (r->c.ack_span_us > ack_span) ack_span = r->c.ack_span_us;
    wl_samples_concat(&lat, &r->lat);
    wl_samples_concat(&ack, &r->ack);
    lat_seen += r->lat.seen;
    lat_sum += r->lat.sum_us;
    if (r->lat.max_us > lat_max) lat_max = r->lat.max_us;
    ack_seen += r->ack.seen;
    ack_sum += r->ack.sum_us;
    if (r->ack.max_us > ack_max) ack_max = r->ack.max_us;
    for (uint64_t i = 0; i < r->ntopics && i < o->topics; i++) {
      wl_topic_rec_t *a = &topics[i], *b = &r->topic_recs[i];
      if (b->min_seq < a->min_seq) a->min_seq = b->min_seq;
      if (b->max_seq > a->max_seq) a->max_seq = b->max_seq;
      a->acked += b->acked;
    }
  }
  /* Loss against what the publishers saw acknowledged (pubsub only). */
  uint64_t expected = 0, lost = 0, subscribed_recs = 0;
  for (size_t k = 0; k < nk && o->mode == WL_MODE_PUBSUB; k++) {
    wl_result_t *r = &kids[k].res;
    for (uint64_t i = 0; i < r->nconn_recs; i++) {
      wl_conn_rec_t *c = &r->conn_recs[i];
      if (!c->subscribed || c->topic >= o->topics) continue;
      subscribed_recs++;
      uint64_t exp = 0;
      lost += wl_loss_for(c, &topics[c->topic], &exp);
      expected += exp;
    }
  }
  json_t *j = json_object();
  static const char *const modes[] = {"idle", "sub", "pub", "pubsub"};
  json_object_set_new(j, "mode", json_string(modes[o->mode]));
  json_object_set_new(j, "target", json_sprintf("ws://%s%s%s:%d%s", o->ipv6 ? "[" : "", o->host,
                                                o->ipv6 ? "]" : "", o->port, o->path));
  WL_J(j, "workers", o->workers);
  WL_J(j, "pub_workers", o->pubs ? o->pub_workers : 0);
  json_object_set_new(j, "duration_s", json_real(o->duration));
  json_object_set_new(j, "wall_s", json_real(wall_s));
  json_object_set_new(j, "complete", json_boolean(!crashed));

  json_t *c = json_object();
  WL_J(c, "requested", t.conns);
  WL_J(c, "opened", t.opened);
  WL_J(c, "failed", t.failed);
  json_t *fr = json_object();
  WL_J(fr, "connect", t.fail_connect);
  WL_J(fr, "http_status", t.fail_http);
  WL_J(fr, "handshake", t.fail_handshake);
  WL_J(fr, "timeout", t.fail_timeout);
  json_object_set_new(c, "failed_by_reason", fr);
  json_object_set_new(c, "setup_s", json_real(conn_us / 1e6));
  WL_J(c, "closed_by_server", t.closed_by_server);
  json_t *cc = json_object();
  WL_J(cc, "1000", t.close_1000);
  WL_J(cc, "1001", t.close_1001);
  WL_J(cc, "1008", t.close_1008);
  WL_J(cc, "1009", t.close_1009);
  WL_J(cc, "1011", t.close_1011);
  WL_J(cc, "other", t.close_other);
  WL_J(cc, "no_close_frame", t.close_abrupt);
  json_object_set_new(c, "server_close_codes", cc);
  WL_J(c, "protocol_errors", t.proto_errors);
  json_object_set_new(j, "connections", c);

  if (t.sub_sent) {
    json_t *s = json_object();
    WL_J(s, "sent", t.sub_sent);
    WL_J(s, "confirmed", t.subscribed);
    WL_J(s, "errors", t.sub_errors);
    WL_J(s, "timeouts", t.sub_timeouts);
    json_object_set_new(j, "subscriptions", s);
  }
  if (o->mode == WL_MODE_SUB || o->mode == WL_MODE_PUBSUB || t.ev_received) {
    json_t *e = json_object();
    WL_J(e, "received", t.ev_received);
    if (o->mode == WL_MODE_PUBSUB) {
      WL_J(e, "expected", expected);
      WL_J(e, "lost", lost);
    } else {
      json_object_set_new(e, "expected", json_null());
      WL_J(e, "lost", t.ev_holes); /* only what seq holes show */
    }
    WL_J(e, "duplicates", t.ev_duplicates);
    WL_J(e, "reordered", t.ev_reordered);
    WL_J(e, "seq_holes", t.ev_holes);
    WL_J(e, "without_seq", t.ev_no_seq);
    WL_J(e, "gaps", t.gaps);
    if (pub_us) json_object_set_new(e, "per_s", json_real((double)t.ev_received / (pub_us / 1e6)));
    json_object_set_new(j, "events", e);
    json_object_set_new(j, "latency_ms", wl_lat_json(&lat, lat_seen, lat_sum, lat_max));
  }
  if (o->pubs) {
    json_t *p = json_object();
    json_object_set_new(p, "rate_target", json_real(o->rate));
    WL_J(p, "sent", t.pub_sent);
    WL_J(p, "acked", t.pub_acked);
    WL_J(p, "unacked", t.pub_sent - t.pub_acked - t.pub_err_rate_limited - t.pub_err_overloaded -
                           t.pub_err_other);
    WL_J(p, "ack_duplicate", t.pub_ack_duplicate);
    WL_J(p, "skipped_backpressure", t.pub_skipped);
    json_t *pe = json_object();
    WL_J(pe, "rate_limited", t.pub_err_rate_limited);
    WL_J(pe, "overloaded", t.pub_err_overloaded);
    WL_J(pe, "other", t.pub_err_other);
    json_object_set_new(p, "errors", pe);
    json_object_set_new(p, "publish_s", json_real(pub_us / 1e6));
    /* Acks still arriving after the last publish stretch the window they are spread on. */
    uint64_t span = ack_span > pub_us ? ack_span : pub_us;
    json_object_set_new(p, "ack_span_s", json_real(ack_span / 1e6));
    if (span) json_object_set_new(p, "acked_per_s", json_real((double)t.pub_acked / (span / 1e6)));
    uint64_t topics_acked = 0;
    for (uint32_t i = 0; i < o->topics; i++) topics_acked += topics[i].acked > 0;
    WL_J(p, "topics_with_acks", topics_acked);
    json_object_set_new(j, "publish", p);
    json_object_set_new(j, "ack_latency_ms", wl_lat_json(&ack, ack_seen, ack_sum, ack_max));
  }
  if (t.pings_sent || t.pongs || t.server_pings) {
    json_t *p = json_object();
    WL_J(p, "sent", t.pings_sent);
    WL_J(p, "pongs", t.pongs);
    WL_J(p, "server_pings", t.server_pings);
    json_object_set_new(j, "pings", p);
  }
  json_t *ec = json_object();
  for (size_t i = 0; i < WL_NCODES; i++)
    if (t.error_codes[i]) WL_J(ec, wl_error_codes[i], t.error_codes[i]);
  json_object_set_new(j, "error_replies", ec);
  WL_J(j, "other_messages", t.other_messages);
  WL_J(j, "bad_messages", t.bad_messages);
  (void)subscribed_recs;
  free(topics);
  free(lat.v);
  free(ack.v);
  return j;
}

int main(int argc, char **argv) {
  wl_opts_t o;
  if (wl_opts_parse(argc, argv, &o)) return 2;
  signal(SIGPIPE, SIG_IGN);
  size_t nk = (o.conns ? o.workers : 0) + (o.pubs ? o.pub_workers : 0);
  wl_child_t *kids = xcalloc(nk, sizeof(*kids));
  size_t k = 0;
  uint32_t first = 0;
  for (uint32_t i = 0; o.conns && i < o.workers; i++, k++) {
    uint32_t n = o.conns / o.workers + (i < o.conns % o.workers);
    kids[k].spec = (wl_worker_spec_t){
        .role = o.mode == WL_MODE_IDLE ? WL_ROLE_IDLE : WL_ROLE_SUB,
        .index = i, .first_conn = first, .nconns = n};
    first += n;
  }
  for (uint32_t i = 0; o.pubs && i < o.pub_workers; i++, k++) {
    uint32_t n = o.pubs / o.pub_workers + (i < o.pubs % o.pub_workers);
    kids[k].spec = (wl_worker_spec_t){.role = WL_ROLE_PUB, .index = i, .first_conn = first,
                                      .nconns = n, .share = (double)n / o.pubs};
    first += n;
  }
  uint64_t t_start = wl_monotonic_us();
  for (k = 0; k < nk; k++) {
    int rc = wl_spawn(&o, kids, nk, k);
    if (rc) {
      fprintf(stderr, "wsload: cannot start worker: %s\n", strerror(-rc));
      for (size_t i = 0; i < k; i++) kill(kids[i].pid, SIGKILL);
      return 1;
    }
  }
  double setup_s = (double)(o.conns + o.pubs) / o.conn_rate + o.connect_timeout;
  uint64_t deadline = t_start + (uint64_t)((setup_s + o.duration + o.grace + 90) * 1e6);
  size_t ready = 0, done = 0, pubs_done = 0; /* workers */
  size_t npubw = o.pubs ? o.pub_workers : 0;
  bool went = false, stopped = false;
  struct pollfd *pfd = xcalloc(nk, sizeof(*pfd));
  while (done < nk) {
    uint64_t now = wl_monotonic_us();
    if (now > deadline) {
      fprintf(stderr, "wsload: workers overran the deadline; killing them\n");
      for (size_t i = 0; i < nk; i++)
        if (!kids[i].done) {
          kill(kids[i].pid, SIGKILL);
          kids[i].done = kids[i].failed = true;
          done++;
        }
      break;
    }
    for (size_t i = 0; i < nk; i++) {
      pfd[i].fd = kids[i].done ? -1 : kids[i].from_child;
      pfd[i].events = POLLIN;
      pfd[i].revents = 0;
    }
    int pr = poll(pfd, nk, 1000);
    if (pr < 0 && errno != EINTR) break;
    for (size_t i = 0; i < nk && pr > 0; i++) {
      if (!pfd[i].revents) continue;
      char m;
      ssize_t r = read(kids[i].from_child, &m, 1);
      if (r == 1 && m == WL_MSG_READY) {
        kids[i].ready = true;
        ready++;
        if (!o.quiet)
          fprintf(stderr, "wsload: worker %zu ready (%zu/%zu)\n", i, ready, nk);
      } else if (r == 1 && m == WL_MSG_DONE) {
        if (wl_result_read(kids[i].from_child, &kids[i].res)) kids[i].failed = true;
        kids[i].done = true;
        done++;
        if (kids[i].spec.role == WL_ROLE_PUB) pubs_done++;
      } else {
        fprintf(stderr, "wsload: worker %zu ended without a result\n", i);
        kids[i].done = kids[i].failed = true;
        done++;
        if (kids[i].spec.role == WL_ROLE_PUB) pubs_done++;
      }
    }
    size_t settled = 0;
    for (size_t i = 0; i < nk; i++) settled += kids[i].ready || kids[i].done;
    if (!went && settled == nk) {
      went = true;
      if (o.ready_file[0]) {
        FILE *f = fopen(o.ready_file, "w");
        if (f) {
          fprintf(f, "ready\n");
          fclose(f);
        }
      }
      if (!o.quiet) fprintf(stderr, "wsload: all connections settled, running %.1f s\n", o.duration);
      wl_tell(kids, nk, WL_MSG_GO, -1);
    }
    if (went && !stopped && npubw && pubs_done == npubw) {
      stopped = true;
      if (!o.quiet) fprintf(stderr, "wsload: publishers done, subscribers draining\n");
      wl_tell(kids, nk, WL_MSG_STOP, WL_ROLE_SUB);
    }
  }
  for (size_t i = 0; i < nk; i++) {
    int st;
    waitpid(kids[i].pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) kids[i].failed = true;
  }
  json_t *j = wl_summary(&o, kids, nk, (wl_monotonic_us() - t_start) / 1e6);
  char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
  puts(s);
  free(s);
  bool complete = json_is_true(json_object_get(j, "complete"));
  json_decref(j);
  for (size_t i = 0; i < nk; i++) {
    wl_result_close(&kids[i].res);
    close(kids[i].to_child);
    close(kids[i].from_child);
  }
  free(pfd);
  free(kids);
  return complete ? 0 : 1;
}
