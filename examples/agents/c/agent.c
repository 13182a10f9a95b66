/* An external agent in C on the project's own code (docs/agents-external.md).
 *
 * It speaks the daemon's WebSocket protocol with the RFC 6455 framing of tests/bench
 * (wsframe.c: handshake, masked frames, a reader that reassembles messages) over one
 * plain blocking socket and poll(), and JSON with jansson. It joins a consumer group on a
 * coordination topic and works one task at a time: it watches the task's reply topic
 * (task.closed ends the work early), claims the task (task.heartbeat), streams a summary
 * of the task's input.text word by word (task.partial) while heartbeating (task.heartbeat
 * and `extend` of the group lease), publishes task.result, and only then acks the group
 * delivery, so a killed agent gives the task back to the group at once. The "summary" is
 * a deterministic stand-in (the first words of the text, with counts) so it runs offline.
 * On a lost connection it reconnects after a second and joins again.
 *
 *   build/examples/agents/agent_c --port 8080 --topic default/tasks/summarize \
 *       --group summarizers
 *
 * Options: --host (127.0.0.1), --port (8080), --topic, --group, --name, --token (a JWT,
 * sent as ?access_token=), --delay-ms (between streamed words, 40), --summary-words (12).
 * Prints one JSON line per event on stdout. */
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
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

#define MAX_MESSAGE (1u << 20) /* bytes of one server message */

typedef struct opts {
  const char *host, *topic, *group, *name, *token;
  int port, delay_ms, summary_words;
} opts_t;

/* The task being worked on. Invariant: active implies task is set. */
typedef struct work {
  bool active;
  json_t *task;     /* owned: the task event's data */
  uint64_t seq;     /* the group delivery to ack */
  json_t *words;    /* owned: array of the summary's words still to stream */
  size_t next;      /* index of the next word */
  size_t total;     /* words of the whole text */
  int64_t due_ms;   /* next streamed word */
  int64_t beat_ms;  /* next heartbeat */
  int64_t every_ms; /* heartbeat period */
  bool closed;      /* the engine closed the task */
} work_t;

typedef struct agent {
  opts_t o;
  int fd;
  wsf_reader_t rd;
  work_t w;
  unsigned long counter; /* for event ids */
} agent_t;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const agent_t *a, const char *msg, json_t *fields_take) {
  json_t *o = fields_take ? fields_take : json_object();
  json_object_set_new(o, "agent", json_string(a->o.name));
  json_object_set_new(o, "msg", json_string(msg));
  char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  printf("%s\n", s);
  fflush(stdout);
  free(s);
  json_decref(o);
}

static int send_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int send_frame(agent_t *a, uint8_t opcode, const void *payload, size_t len) {
  uint8_t mask[4];
  if (getrandom(mask, sizeof mask, 0) != (ssize_t)sizeof mask) return -1;
  uint8_t *buf = malloc(len + WSF_MAX_HEADER);
  if (!buf) return -1;
  size_t n = wsf_frame_encode(buf, len + WSF_MAX_HEADER, opcode, true, mask, payload, len);
  int rc = n ? send_all(a->fd, buf, n) : -1;
  free(buf);
  return rc;
}

/* Sends a protocol message (msg taken). */
static int send_json(agent_t *a, json_t *msg) {
  char *s = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  if (!s) return -1;
  int rc = send_frame(a, WSF_OP_TEXT, s, strlen(s));
  free(s);
  return rc;
}

/* Publishes an event of type to the current task's reply topic (data taken). The id
 * makes a resend harmless; pieces are numbered so a member that takes the task over
 * repeats them without doubling the text. */
static int reply(agent_t *a, const char *type, const char *what, json_t *data) {
  const char *reply_to = json_string_value(json_object_get(a->w.task, "reply_to"));
  const char *task_id = json_string_value(json_object_get(a->w.task, "task_id"));
  char id[256];
  snprintf(id, sizeof id, "%s:%s", task_id, what);
  return send_json(a, json_pack("{s:s,s:s,s:s,s:s,s:o}", "op", "pub", "topic", reply_to, "type",
                                type, "id", id, "data", data));
}

static int group_op(agent_t *a, const char *op) {
  return send_json(a, json_pack("{s:s,s:s,s:s,s:I}", "op", op, "topic", a->o.topic, "group",
                                a->o.group, "seq", (json_int_t)a->w.seq));
}

static void work_clear(work_t *w) {
  json_decref(w->task);
  json_decref(w->words);
  memset(w, 0, sizeof *w);
}

/* The text to summarize: input.text as a string, or its strings joined by spaces. */
static char *input_text(const json_t *input) {
  const json_t *t = json_object_get(input, "text");
  if (json_is_string(t)) return strdup(json_string_value(t));
  size_t cap = 1, len = 0;
  char *out = calloc(1, cap);
  size_t i;
  json_t *v;
  json_array_foreach(t, i, v) {
    const char *s = json_string_value(v);
    if (!s) continue;
    size_t n = strlen(s);
    char *grown = realloc(out, cap + n + 1);
    if (!grown) break;
    out = grown;
    cap += n + 1;
    if (len) out[len++] = ' ';
    memcpy(out + len, s, n);
    len += n;
    out[len] = '\0';
  }
  return out;
}

static int task_start(agent_t *a, json_t *delivery) {
  work_t *w = &a->w;
  w->task = json_incref(json_object_get(delivery, "data"));
  w->seq = (uint64_t)json_integer_value(json_object_get(delivery, "seq"));
  w->active = true;
  w->words = json_array();
  char *text = input_text(json_object_get(w->task, "input"));
  for (char *save = NULL, *tok = strtok_r(text, " \t\n", &save); tok;
       tok = strtok_r(NULL, " \t\n", &save)) {
    if (w->total++ < (size_t)a->o.summary_words) json_array_append_new(w->words, json_string(tok));
  }
  free(text);
  json_int_t hb = json_integer_value(json_object_get(w->task, "heartbeat_ms"));
  w->every_ms = hb > 150 ? hb / 3 : 50;
  w->due_ms = w->beat_ms = now_ms();
  say(a, "task",
      json_pack("{s:O,s:O,s:I}", "task_id", json_object_get(w->task, "task_id"), "attempt",
                json_object_get(w->task, "attempt"), "redelivered",
                json_integer_value(json_object_get(delivery, "redelivered"))));
  const char *reply_to = json_string_value(json_object_get(w->task, "reply_to"));
  if (!reply_to) return -1;
  /* Watch the reply topic from its start: a task closed already (given up, cancelled)
   * shows its task.closed at once. */
  if (send_json(
          a, json_pack("{s:s,s:s,s:{s:i}}", "op", "sub", "topic", reply_to, "after", "seq", 0)) < 0)
    return -1;
  return reply(a, "task.heartbeat", "claim", json_pack("{s:s}", "agent", a->o.name));
}

static int task_finish(agent_t *a) {
  work_t *w = &a->w;
  int rc = 0;
  if (w->closed) {
    say(a, "closed by the engine",
        json_pack("{s:O}", "task_id", json_object_get(w->task, "task_id")));
  } else {
    size_t n = json_array_size(w->words);
    size_t len = 0;
    char *summary = calloc(1, 1);
    for (size_t i = 0; i < n; i++) {
      const char *s = json_string_value(json_array_get(w->words, i));
      char *grown = realloc(summary, len + strlen(s) + 2);
      if (!grown) break;
      summary = grown;
      len += (size_t)sprintf(summary + len, "%s%s", i ? " " : "", s);
    }
    json_t *out = json_pack("{s:s,s:I,s:s}", "summary", summary, "words", (json_int_t)w->total,
                            "agent", a->o.name);
    free(summary);
    rc = reply(a, "task.result", "result",
               json_pack("{s:o,s:{s:I}}", "output", out, "usage", "out_tokens", (json_int_t)n));
    say(a, "done", json_pack("{s:O}", "task_id", json_object_get(w->task, "task_id")));
  }
  if (rc == 0) rc = group_op(a, "ack");
  if (rc == 0)
    rc = send_json(
        a, json_pack("{s:s,s:O}", "op", "unsub", "topic", json_object_get(w->task, "reply_to")));
  work_clear(w);
  return rc;
}

/* Streams the next word or heartbeats when due. */
static int task_tick(agent_t *a) {
  work_t *w = &a->w;
  int64_t now = now_ms();
  if (w->closed || w->next >= json_array_size(w->words)) return task_finish(a);
  if (now >= w->beat_ms) {
    char what[32];
    snprintf(what, sizeof what, "hb%lu", a->counter++);
    if (reply(a, "task.heartbeat", what, json_object()) < 0 || group_op(a, "extend") < 0) return -1;
    w->beat_ms = now + w->every_ms;
  }
  if (now >= w->due_ms) {
    char what[32];
    snprintf(what, sizeof what, "p%zu", w->next);
    const char *word = json_string_value(json_array_get(w->words, w->next));
    char text[512];
    snprintf(text, sizeof text, "%s%s", w->next ? " " : "", word);
    if (reply(a, "task.partial", what, json_pack("{s:s}", "text", text)) < 0) return -1;
    w->next++;
    w->due_ms = now + a->o.delay_ms;
  }
  return 0;
}

static int on_text(agent_t *a, const char *text, size_t len) {
  json_t *m = json_loadb(text, len, 0, NULL);
  if (!m) return 0;
  const char *op = json_string_value(json_object_get(m, "op"));
  const char *type = json_string_value(json_object_get(m, "type"));
  const char *group = json_string_value(json_object_get(m, "group"));
  int rc = 0;
  if (!op) {
  } else if (!strcmp(op, "subscribed") && group) {
    say(a, "joined",
        json_pack("{s:O,s:O}", "topic", json_object_get(m, "topic"), "pending",
                  json_object_get(m, "pending")));
  } else if (!strcmp(op, "ev") && group && type && !strcmp(type, "task")) {
    /* max_inflight 1: a second task comes only after the ack */
    if (!a->w.active) rc = task_start(a, m);
  } else if (!strcmp(op, "ev") && type && !strcmp(type, "task.closed") && a->w.active) {
    const char *topic = json_string_value(json_object_get(m, "topic"));
    const char *reply_to = json_string_value(json_object_get(a->w.task, "reply_to"));
    if (topic && reply_to && !strcmp(topic, reply_to)) a->w.closed = true;
  } else if (!strcmp(op, "error")) {
    say(a, "server error",
        json_pack("{s:O,s:O}", "code", json_object_get(m, "code"), "message",
                  json_object_get(m, "message")));
  } else if (!strcmp(op, "drain")) {
    rc = -1; /* the server goes away: reconnect (the group keeps our place) */
  }
  json_decref(m);
  return rc;
}

static int on_message(void *ud, uint8_t opcode, const uint8_t *payload, size_t len) {
  agent_t *a = ud;
  if (opcode == WSF_OP_TEXT) return on_text(a, (const char *)payload, len);
  if (opcode == WSF_OP_PING) return send_frame(a, WSF_OP_PONG, payload, len) < 0 ? -1 : 0;
  if (opcode == WSF_OP_CLOSE) return -1;
  return 0;
}

static int dial(const opts_t *o) {
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
  return fd;
}

/* The opening handshake; bytes after the 101 go to the reader. */
static int handshake(agent_t *a) {
  uint8_t nonce[16];
  char key[WSF_KEY_LEN + 1], path[2048], req[4096], buf[8192];
  if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) return -1;
  wsf_key_make(nonce, key);
  snprintf(path, sizeof path, "/v1/ws%s%s", a->o.token[0] ? "?access_token=" : "", a->o.token);
  size_t n = wsf_request_build(req, sizeof req, a->o.host, a->o.port, path, key, NULL);
  if (!n || send_all(a->fd, (const uint8_t *)req, n) < 0) return -1;
  size_t len = 0;
  for (;;) {
    ssize_t k = recv(a->fd, buf + len, sizeof buf - len, 0);
    if (k <= 0) return -1;
    len += (size_t)k;
    int status = 0;
    int head = wsf_response_check(buf, len, key, &status);
    if (head == -EAGAIN) continue;
    if (head < 0) {
      say(a, "upgrade refused", json_pack("{s:i}", "status", status));
      return -1;
    }
    if ((size_t)head < len &&
        wsf_reader_feed(&a->rd, (const uint8_t *)buf + head, len - (size_t)head, on_message, a))
      return -1;
    return 0;
  }
}

/* One connection's life; returns when it ends. */
static void session(agent_t *a) {
  wsf_reader_init(&a->rd, MAX_MESSAGE);
  if (handshake(a) < 0) goto out;
  if (send_json(a, json_pack("{s:s,s:s,s:s,s:i}", "op", "sub", "topic", a->o.topic, "group",
                             a->o.group, "max_inflight", 1)) < 0)
    goto out;
  uint8_t buf[65536];
  while (!stop_flag) {
    int timeout = -1;
    if (a->w.active) {
      int64_t due = a->w.due_ms < a->w.beat_ms ? a->w.due_ms : a->w.beat_ms;
      int64_t left = due - now_ms();
      timeout = left < 0 ? 0 : (int)left;
    }
    struct pollfd p = {.fd = a->fd, .events = POLLIN};
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    if (r > 0) {
      ssize_t k = recv(a->fd, buf, sizeof buf, 0);
      if (k <= 0) break;
      if (wsf_reader_feed(&a->rd, buf, (size_t)k, on_message, a)) break;
    }
    if (a->w.active && task_tick(a) < 0) break;
  }
  if (stop_flag) {
    uint8_t payload[125];
    size_t n = wsf_close_payload(payload, 1000, "bye");
    (void)send_frame(a, WSF_OP_CLOSE, payload, n);
  }
out:
  /* An unfinished task stays unacked: the group gives it to another member. */
  work_clear(&a->w);
  wsf_reader_close(&a->rd);
  close(a->fd);
  a->fd = -1;
}

static const char *arg_of(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s needs a value\n", argv[*i]);
    exit(2);
  }
  return argv[++*i];
}

int main(int argc, char **argv) {
  static char name[64];
  snprintf(name, sizeof name, "c-agent-%d", (int)getpid());
  agent_t a = {.o = {.host = "127.0.0.1",
                     .port = 8080,
                     .topic = "default/tasks/summarize",
                     .group = "summarizers",
                     .name = name,
                     .token = "",
                     .delay_ms = 40,
                     .summary_words = 12},
               .fd = -1};
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "--host"))
      a.o.host = arg_of(argc, argv, &i);
    else if (!strcmp(k, "--port"))
      a.o.port = atoi(arg_of(argc, argv, &i));
    else if (!strcmp(k, "--topic"))
      a.o.topic = arg_of(argc, argv, &i);
    else if (!strcmp(k, "--group"))
      a.o.group = arg_of(argc, argv, &i);
    else if (!strcmp(k, "--name"))
      a.o.name = arg_of(argc, argv, &i);
    else if (!strcmp(k, "--token"))
      a.o.token = arg_of(argc, argv, &i);
    else if (!strcmp(k, "--delay-ms"))
      a.o.delay_ms = atoi(arg_of(argc, argv, &i));
    else if (!strcmp(k, "--summary-words"))
      a.o.summary_words = atoi(arg_of(argc, argv, &i));
    else {
      fprintf(stderr,
              "usage: %s [--host H] [--port P] [--topic T] [--group G] [--name N] [--token JWT] "
              "[--delay-ms MS] [--summary-words N]\n",
              argv[0]);
      return 2;
    }
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  while (!stop_flag) {
    a.fd = dial(&a.o);
    if (a.fd >= 0) {
      session(&a);
    } else {
      say(&a, "cannot connect", NULL);
    }
    if (!stop_flag) sleep(1);
  }
  return 0;
}
