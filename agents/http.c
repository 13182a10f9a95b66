/* The HTTP transport: libcurl multi driven by the client's libuv loop, one easy handle
 * per running call, the response body pushed into the provider's stream decoder as it
 * arrives, and the mapping of what curl and the server said into the call's result.
 *
 * Loop glue (STACK-NOTES 3(c), P9, P10): CURLMOPT_SOCKETFUNCTION keeps one uv_poll_t per
 * socket, attached with curl_multi_assign and closed asynchronously on CURL_POLL_REMOVE;
 * CURLMOPT_TIMERFUNCTION drives one uv timer. Handles are added from a zero-delay "kick"
 * timer and removed only by the core's reaper (agent__http_transport.stop), never inside a
 * libcurl callback, which libcurl forbids. A call that must end while curl is calling us
 * (cancel from on_delta, a limit, an error event) makes the write callback return 0, which
 * aborts the transfer and closes the connection. Timeouts are the core's uv timers, not
 * CURLOPT_LOW_SPEED_*, which is several seconds late. It owns no retry policy. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/mem.h"
#include "internal.h"

/* Invariants: socks lists every open uv_poll_t; open counts the two timers not yet
 * closed (h is freed at 0, after the client dropped it). */
struct agent__http {
  agent_client_t *c;    /* borrowed */
  CURLM *multi;         /* owned */
  uv_timer_t timer;     /* curl's timeout */
  uv_timer_t kick;      /* adds pending handles on the next turn */
  base_queue_t socks;   /* http_sock_t.link */
  base_queue_t pending; /* agent__http_call_t.pend: started, not yet in the multi */
  int open;
};

typedef struct http_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  agent__http_t *h;  /* borrowed; NULL once the multi is gone */
  agent_client_t *c; /* borrowed */
  base_queue_t link;
} http_sock_t;

struct agent__http_call {
  CURL *easy;                 /* owned */
  struct curl_slist *headers; /* owned */
  agent__request_t rq;        /* owned; the body must outlive the transfer */
  agent_decoder_t *dec;       /* owned */
  base_queue_t pend;          /* in h->pending until added */
  bool in_multi;
  bool status_known;    /* of the current response */
  bool ok;              /* its status is 2xx */
  size_t body_bytes;    /* of a 2xx body */
  agent__buf_t errbody; /* first max_error_body bytes of a non-2xx body */
  char retry_after[64]; /* header values of the current response, "" when none */
  char retry_after_ms[64];
  char errbuf[CURL_ERROR_SIZE];
};

/* ---- loop glue ---- */

static void drain(agent__http_t *h);

static void sock_close_cb(uv_handle_t *hd) {
  http_sock_t *sk = hd->data;
  agent_client_t *c = sk->c;
  free(sk);
  agent__client_unref(c);
}

static void sock_close(http_sock_t *sk) {
  base_queue_remove(&sk->link);
  uv_poll_stop(&sk->poll);
  uv_close((uv_handle_t *)&sk->poll, sock_close_cb);
}

static void poll_cb(uv_poll_t *p, int status, int events) {
  http_sock_t *sk = p->data;
  agent__http_t *h = sk->h;
  int flags = 0, running = 0;
  if (!h) return;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  /* sk may be closed by the socket callback inside; do not touch it afterwards. */
  curl_multi_socket_action(h->multi, sk->fd, flags, &running);
  drain(h);
}

static int socket_fn(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  agent__http_t *h = userp;
  http_sock_t *sk = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sk) {
      sock_close(sk);
      curl_multi_assign(h->multi, s, NULL);
    }
    return 0;
  }
  if (!sk) {
    sk = xcalloc(1, sizeof *sk);
    if (uv_poll_init_socket(h->c->loop, &sk->poll, s) < 0) {
      free(sk);
      return -1;
    }
    sk->fd = s;
    sk->h = h;
    sk->c = h->c;
    sk->poll.data = sk;
    base_queue_insert_tail(&h->socks, &sk->link);
    h->c->open_handles++;
    curl_multi_assign(h->multi, s, sk);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  uv_poll_start(&sk->poll, ev, poll_cb);
  return 0;
}

static void timeout_cb(uv_timer_t *t) {
  agent__http_t *h = t->data;
  int running = 0;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  drain(h);
}

static int timer_fn(CURLM *m, long ms, void *userp) {
  agent__http_t *h = userp;
  if (ms < 0)
    uv_timer_stop(&h->timer);
  else
    uv_timer_start(&h->timer, timeout_cb, (uint64_t)ms, 0);
  return 0;
}

static void kick_cb(uv_timer_t *t) {
  agent__http_t *h = t->data;
  while (!base_queue_empty(&h->pending)) {
    agent__http_call_t *hc =
        base_queue_data(base_queue_head(&h->pending), agent__http_call_t, pend);
    base_queue_remove(&hc->pend);
    agent_call_t *call = NULL;
    curl_easy_getinfo(hc->easy, CURLINFO_PRIVATE, (char **)&call);
    if (curl_multi_add_handle(h->multi, hc->easy) != CURLM_OK) {
      agent__call_fail(call, -EIO, AGENT_ERR_UNKNOWN, 0, "libcurl refused the transfer");
      agent__call_finish(call);
      continue;
    }
    hc->in_multi = true;
  }
}

int agent__http_init(agent_client_t *c) {
  if (c->http) return 0;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -EIO;
  agent__http_t *h = xcalloc(1, sizeof *h);
  h->multi = curl_multi_init();
  if (!h->multi) {
    free(h);
    curl_global_cleanup();
    return -EIO;
  }
  h->c = c;
  base_queue_init(&h->socks);
  base_queue_init(&h->pending);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  uv_timer_init(c->loop, &h->timer);
  uv_timer_init(c->loop, &h->kick);
  h->timer.data = h->kick.data = h;
  h->open = 2;
  c->open_handles += 2;
  c->http = h;
  return 0;
}

static void http_timer_close_cb(uv_handle_t *hd) {
  agent__http_t *h = hd->data;
  agent_client_t *c = h->c;
  if (--h->open == 0) free(h);
  agent__client_unref(c);
}

/* Called by agent_client_free after every call's transport was stopped. */
void agent__http_close(agent_client_t *c) {
  agent__http_t *h = c->http;
  if (!h) return;
  c->http = NULL;
  uv_timer_stop(&h->timer);
  uv_timer_stop(&h->kick);
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  while (!base_queue_empty(&h->socks)) {
    http_sock_t *sk = base_queue_data(base_queue_head(&h->socks), http_sock_t, link);
    sk->h = NULL;
    sock_close(sk);
  }
  curl_global_cleanup();
  uv_close((uv_handle_t *)&h->timer, http_timer_close_cb);
  uv_close((uv_handle_t *)&h->kick, http_timer_close_cb);
}

/* ---- one transfer ---- */

static bool running(const agent_call_t *call) {
  return call->state == AGENT__CALL_RUNNING && !call->cancelled;
}

static void note_status(agent_call_t *call, agent__http_call_t *hc) {
  long st = 0;
  if (hc->status_known) return;
  curl_easy_getinfo(hc->easy, CURLINFO_RESPONSE_CODE, &st);
  call->http_status = (int)st;
  hc->ok = st >= 200 && st < 300;
  hc->status_known = true;
}

static size_t write_cb(char *p, size_t sz, size_t n, void *ud) {
  agent_call_t *call = ud;
  agent__http_call_t *hc = call->http;
  size_t len = sz * n;
  if (!running(call)) return 0; /* aborts the transfer */
  agent__call_touch(call);
  note_status(call, hc);
  if (!hc->ok) {
    size_t room = call->client->max_error_body - hc->errbody.len;
    agent__buf_append(&hc->errbody, p, len < room ? len : room);
    return len;
  }
  hc->body_bytes += len;
  if (hc->body_bytes > call->client->max_response_bytes) {
    agent__call_fail(call, -EMSGSIZE, AGENT_ERR_UNKNOWN, 0, "response larger than %zu bytes",
                     call->client->max_response_bytes);
    agent__call_finish(call);
    return 0;
  }
  /* Framing errors come out as ERROR deltas, which fail the call. */
  if (agent_decoder_push(hc->dec, p, len) < 0 && running(call)) {
    agent__call_fail(call, -EIO, AGENT_ERR_UNKNOWN, 0, "response stream could not be decoded");
    agent__call_finish(call);
  }
  return running(call) ? len : 0;
}

/* Copies the value of header line p if its name is name (case-insensitive), trimmed. */
static void header_value(const char *p, size_t len, const char *name, char *out, size_t outlen) {
  size_t nl = strlen(name);
  if (len <= nl || p[nl] != ':' || strncasecmp(p, name, nl) != 0) return;
  const char *v = p + nl + 1, *end = p + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  size_t vl = (size_t)(end - v) < outlen - 1 ? (size_t)(end - v) : outlen - 1;
  memcpy(out, v, vl);
  out[vl] = '\0';
}

static size_t header_cb(char *p, size_t sz, size_t n, void *ud) {
  agent_call_t *call = ud;
  agent__http_call_t *hc = call->http;
  size_t len = sz * n;
  if (!running(call)) return 0;
  agent__call_touch(call);
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (e.g. after 100) */
    hc->status_known = false;
    hc->retry_after[0] = hc->retry_after_ms[0] = '\0';
    return len;
  }
  header_value(p, len, "retry-after", hc->retry_after, sizeof hc->retry_after);
  header_value(p, len, "retry-after-ms", hc->retry_after_ms, sizeof hc->retry_after_ms);
  return len;
}

static int64_t unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void http_error(agent_call_t *call, agent__http_call_t *hc, int st) {
  agent_err_class_t cls = AGENT_ERR_UNKNOWN, bcls = AGENT_ERR_UNKNOWN;
  int64_t retry = -1;
  char *msg = NULL;
  if (agent_http_classify(st, hc->retry_after[0] ? hc->retry_after : NULL,
                          hc->retry_after_ms[0] ? hc->retry_after_ms : NULL, unix_ms(), &cls,
                          &retry) < 0)
    cls = AGENT_ERR_UNKNOWN;
  call->retry_after_ms = retry;
  if (hc->errbody.len && agent_error_body_parse(hc->errbody.p, hc->errbody.len, &bcls, &msg) == 0 &&
      (cls == AGENT_ERR_BAD_REQUEST || cls == AGENT_ERR_UNKNOWN) && bcls != AGENT_ERR_UNKNOWN)
    cls = bcls;
  if (msg)
    agent__call_fail(call, -EIO, cls, st, "HTTP %d: %.300s", st, msg);
  else if (hc->errbody.len)
    agent__call_fail(call, -EIO, cls, st, "HTTP %d: %.300s", st, hc->errbody.p);
  else
    agent__call_fail(call, -EIO, cls, st, "HTTP %d", st);
  free(msg);
}

static void network_error(agent_call_t *call, agent__http_call_t *hc, CURLcode res) {
  int status = -ECONNRESET;
  agent_err_class_t cls = AGENT_ERR_NETWORK;
  switch (res) {
    case CURLE_COULDNT_CONNECT:
      status = -ECONNREFUSED;
      break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      status = -EHOSTUNREACH;
      break;
    case CURLE_OPERATION_TIMEDOUT:
      status = -ETIMEDOUT;
      cls = AGENT_ERR_TIMEOUT;
      break;
    default:
      break;
  }
  agent__call_fail(call, status, cls, 0, "%s%s%s%s", call->partial ? "stream interrupted: " : "",
                   curl_easy_strerror(res), hc->errbuf[0] ? ": " : "", hc->errbuf);
}

/* A transfer ended (from drain, outside curl callbacks). */
static void transfer_done(agent_call_t *call, CURLcode res) {
  agent__http_call_t *hc = call->http;
  if (!running(call)) return;
  note_status(call, hc);
  int st = call->http_status;
  if (hc->ok && (res == CURLE_OK || agent_decoder_done(hc->dec))) {
    /* A truncated stream comes out as an ERROR delta, which fails the call. */
    if (res == CURLE_OK && agent_decoder_finish(hc->dec) < 0 && running(call))
      agent__call_fail(call, -EIO, AGENT_ERR_UNKNOWN, 0, "response stream could not be decoded");
  } else if (st >= 300 && (res == CURLE_OK || hc->errbody.len)) {
    http_error(call, hc, st);
  } else {
    network_error(call, hc, res);
  }
  agent__call_finish(call);
}

static void drain(agent__http_t *h) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(h->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    agent_call_t *call = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
    if (call) transfer_done(call, msg->data.result);
  }
}

static int dec_delta(void *ud, const agent_delta_t *d) {
  return agent__call_delta(ud, d);
}

static int http_start(agent_call_t *call) {
  agent_client_t *c = call->client;
  char err[256];
  if (agent__http_init(c) < 0) {
    agent__call_fail(call, -EIO, AGENT_ERR_UNKNOWN, 0, "libcurl could not be initialised");
    return -EIO;
  }
  agent__http_call_t *hc = xcalloc(1, sizeof *hc);
  base_queue_init(&hc->pend);
  call->http = hc;
  if (agent__request_build(call, &hc->rq, err, sizeof err) < 0) {
    agent__call_fail(call, -EINVAL, AGENT_ERR_BAD_REQUEST, 0, "%s", err);
    return -EINVAL;
  }
  agent_decoder_opts_t dopts = {
      .wire = agent__provider_wire(call->provider), .on_delta = dec_delta, .ud = call};
  hc->easy = curl_easy_init();
  if (!hc->easy || agent_decoder_new(&dopts, &hc->dec) < 0) {
    agent__call_fail(call, -EIO, AGENT_ERR_UNKNOWN, 0, "cannot set up the transfer");
    return -EIO;
  }
  for (size_t i = 0; i < hc->rq.nheaders; i++)
    hc->headers = curl_slist_append(hc->headers, hc->rq.headers[i]);
  hc->headers = curl_slist_append(hc->headers, "Expect:");
  if (!hc->headers) abort();
  CURL *e = hc->easy;
  curl_easy_setopt(e, CURLOPT_URL, hc->rq.url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, hc->rq.body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)hc->rq.body_len);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hc->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "coordinator/" COORD_VERSION);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)call);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, hc->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  base_queue_insert_tail(&c->http->pending, &hc->pend);
  if (!uv_is_active((uv_handle_t *)&c->http->kick)) uv_timer_start(&c->http->kick, kick_cb, 0, 0);
  return 0;
}

static void http_stop(agent_call_t *call) {
  agent__http_call_t *hc = call->http;
  if (!hc) return;
  base_queue_remove(&hc->pend);
  /* Removing an unfinished transfer closes its connection: the server sees the abort. */
  if (hc->in_multi && call->client->http)
    curl_multi_remove_handle(call->client->http->multi, hc->easy);
  if (hc->easy) curl_easy_cleanup(hc->easy);
  curl_slist_free_all(hc->headers);
  agent_decoder_free(hc->dec);
  agent__request_free(&hc->rq);
  agent__buf_free(&hc->errbody);
  free(hc);
  call->http = NULL;
}

const agent__transport_ops_t agent__http_transport = {
    .start = http_start,
    .stop = http_stop,
};
