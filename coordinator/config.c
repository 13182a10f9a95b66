/* Configuration keys, their defaults, and the three sources that set them (JSON file,
 * environment, single key=value from the command line). Owns the key table and value
 * validation; it does not parse argv (cli.c) and does not act on any value. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "base/mem.h"
#include "store.h"
#include "streams.h"
#include "workflows.h"

typedef enum {
  KEY_INT,      /* int64_t, inclusive range */
  KEY_STRING,   /* char * (owned) */
  KEY_NONEMPTY, /* char * (owned), must not be "" */
  KEY_SECRET,   /* char * (owned), never printed */
  KEY_LISTEN,   /* char * (owned) + parsed host/port */
  KEY_LOGLEVEL, /* log_level_t */
  KEY_AUTHMODE, /* coord_auth_mode_t */
  KEY_TENANT,   /* char * (owned), a tenant name */
  KEY_URL,      /* char * (owned), "" or an http:// / https:// URL */
  KEY_ENVNAME,  /* char * (owned), "" or an environment variable name */
  KEY_HEADERS,  /* json_t * (owned), {name: value} of HTTP headers */
  KEY_PROFILES, /* json_t * (owned), {name: agent profile} */
} key_kind_t;

typedef struct config_key {
  const char *name; /* dotted */
  key_kind_t kind;
  size_t offset; /* into coord_config_t */
  int64_t min, max;
  const char *help;
} config_key_t;

#define OFF(field) offsetof(coord_config_t, field)

static const config_key_t config_keys[] = {
    {"listen", KEY_LISTEN, OFF(listen), 0, 0, "HOST:PORT to serve HTTP and WebSocket on"},
    {"data_dir", KEY_NONEMPTY, OFF(data_dir), 0, 0, "directory for the SQLite files"},
    {"store.wal_max_mb", KEY_INT, OFF(store.wal_max_mb), 1, 4096,
     "MB; the SQLite write-ahead log starts over once it holds this (its file stays near it)"},
    {"store.cache_mb", KEY_INT, OFF(store.cache_mb), 1, 4096,
     "MB; SQLite page cache of each store connection, taken only as pages are used"},
    {"store.secure_delete", KEY_INT, OFF(store.secure_delete), 0, 1,
     "1: deleted events are overwritten with zeros in the files at once (more writes)"},
    {"log_level", KEY_LOGLEVEL, OFF(log_level), 0, 0, "debug | info | warn | error | off"},
    {"web_root", KEY_STRING, OFF(web_root), 0, 0, "folder of static files; \"\" disables"},
    {"limits.max_connections", KEY_INT, OFF(limits.max_connections), 1, 1000000,
     "open connections; more get 503"},
    {"limits.max_http_body", KEY_INT, OFF(limits.max_http_body), 1, INT64_C(1) << 30,
     "bytes; larger request bodies get 413"},
    {"limits.max_ws_message", KEY_INT, OFF(limits.max_ws_message), 64, INT64_C(64) << 20,
     "bytes; larger WebSocket messages get close 1009"},
    {"limits.idle_timeout_ms", KEY_INT, OFF(limits.idle_timeout_ms), 0, 86400000,
     "silent connections are closed after this; 0 = never"},
    {"limits.handshake_timeout_ms", KEY_INT, OFF(limits.handshake_timeout_ms), 100, 600000,
     "time to send complete request headers"},
    {"limits.publish_rate", KEY_INT, OFF(limits.publish_rate), 0, 100000000,
     "events/s per tenant; 0 = unlimited"},
    {"limits.publish_burst", KEY_INT, OFF(limits.publish_burst), 1, 100000000,
     "events per tenant burst"},
    {"limits.topic_publish_rate", KEY_INT, OFF(limits.topic_publish_rate), 0, 100000000,
     "events/s per topic; 0 = unlimited"},
    {"limits.topic_publish_burst", KEY_INT, OFF(limits.topic_publish_burst), 1, 100000000,
     "events per topic burst"},
    {"limits.slow_client_timeout_ms", KEY_INT, OFF(limits.slow_client_timeout_ms), 0, 86400000,
     "a client with data pending that cannot be written to this long is closed; 0 = never"},
    {"limits.ws_frames_per_write", KEY_INT, OFF(limits.ws_frames_per_write), 1, 256,
     "WebSocket frames sent in one write (1 = one send per frame)"},
    {"limits.ws_bulk_connections", KEY_INT, OFF(limits.ws_bulk_connections), 0, 1000000,
     "WebSockets open on the coord-bulk subprotocol (with libwebsockets, 16 KB receive buffer "
     "each); more get 503"},
    {"websocket.own_transport", KEY_INT, OFF(websocket.own_transport), 0, 1,
     "1 (default): the daemon reads and writes WebSockets on /v1/ws itself (about 1.2 KB "
     "less per connection); 0: libwebsockets does"},
    {"shutdown.drain_ms", KEY_INT, OFF(shutdown.drain_ms), 0, 3600000,
     "SIGTERM: /readyz 503 for this long, then close 1001"},
    {"shutdown.grace_ms", KEY_INT, OFF(shutdown.grace_ms), 0, 60000,
     "after the 1001 closes, wait this long for clients"},
    {"auth.mode", KEY_AUTHMODE, OFF(auth.mode), 0, 0, "none (loopback only) | jwt"},
    {"auth.jwt_secret", KEY_SECRET, OFF(auth.jwt_secret), 0, 0,
     "HS256 secret, at least 32 bytes (auth.mode jwt)"},
    {"streams.partitions", KEY_INT, OFF(streams.partitions), 1, 4096, "partitions per daemon"},
    {"streams.retention.max_events", KEY_INT, OFF(streams.retention_max_events), 1, 1000000000,
     "events kept per topic"},
    {"streams.retention.max_age_s", KEY_INT, OFF(streams.retention_max_age_s), 1, 31536000,
     "seconds an event is kept"},
    {"streams.idle_topic_s", KEY_INT, OFF(streams.idle_topic_s), 1, 86400,
     "seconds a topic with no subscriber and nothing in flight stays in memory"},
    {"streams.dedupe_window_s", KEY_INT, OFF(streams.dedupe_window_s), 0, 86400,
     "seconds an event id is remembered"},
    {"streams.overload_threshold", KEY_INT, OFF(streams.overload_threshold), 1, 100000000,
     "uncommitted events above which publishes are shed (503, /readyz overloaded)"},
    {"streams.overload_mb", KEY_INT, OFF(streams.overload_mb), 1, 65536,
     "MiB of uncommitted events above which publishes are shed likewise"},
    {"streams.commit_thread", KEY_INT, OFF(streams.commit_thread), 0, 1,
     "1 = store commits run on a writer thread, off the event loop; 0 = on the loop"},
    {"streams.control_queue_max", KEY_INT, OFF(streams.control_queue_max), 4, 65536,
     "replies (pubacks, errors, pongs) queued per connection; reading a client pauses at half"},
    {"streams.commit_batch_max", KEY_INT, OFF(streams.commit_batch_max), 1, 100000,
     "events per store transaction at most (a group commit takes what is queued, up to this)"},
    {"streams.commit_inline_max", KEY_INT, OFF(streams.commit_inline_max), 0, 100000,
     "batches of at most this many events commit on the loop even with the writer thread"},
    {"streams.router_budget", KEY_INT, OFF(streams.router_budget), 1, 10000000,
     "subscriber visits (wakes and writes) per loop turn; the walk goes on in the next turn"},
    {"streams.ring_size", KEY_INT, OFF(streams.ring_size), 16, 65536,
     "newest committed events kept in memory per topic with a subscriber or group; a cursor "
     "further behind reads the store"},
    {"streams.sse_keepalive_ms", KEY_INT, OFF(streams.sse_keepalive_ms), 100, 3600000,
     "a quiet SSE stream gets a keepalive comment this often"},
    {"streams.groups.ack_wait_ms", KEY_INT, OFF(streams.groups.ack_wait_ms), 1, 86400000,
     "lease of a new consumer group (a join may choose its own)"},
    {"streams.groups.max_deliveries", KEY_INT, OFF(streams.groups.max_deliveries), 0, 1000000,
     "deliveries of an event before it is dead-lettered to <topic>.dlq; 0 = never"},
    {"streams.groups.max_inflight", KEY_INT, OFF(streams.groups.max_inflight), 1, 1000000,
     "unacked deliveries per member when its join does not say"},
    {"streams.groups.max_inflight_limit", KEY_INT, OFF(streams.groups.max_inflight_limit), 1,
     1000000, "the most max_inflight a join may ask for"},
    {"streams.groups.max_pending", KEY_INT, OFF(streams.groups.max_pending), 1, 100000000,
     "leases per group; no new events are handed out beyond"},
    {"streams.groups.per_topic", KEY_INT, OFF(streams.groups.per_topic), 1, 100000,
     "groups per topic"},
    {"streams.groups.members_max", KEY_INT, OFF(streams.groups.members_max), 1, 1000000,
     "members per group"},
    {"workflows_dir", KEY_NONEMPTY, OFF(workflows_dir), 0, 0,
     "folder of workflow files (*.json), read at start and on SIGHUP"},
    {"runs.token_coalesce_ms", KEY_INT, OFF(runs.token_coalesce_ms), 0, 10000,
     "token deltas within this window form one event; 0 = one event per delta"},
    {"runs.max_runs", KEY_INT, OFF(runs.max_runs), 1, 1000000,
     "runs executing at once; more starts get 503"},
    {"runs.default_tenant", KEY_TENANT, OFF(runs.default_tenant), 0, 0,
     "tenant of runs when auth.mode is none"},
    {"providers.openai.base_url", KEY_URL, OFF(providers[COORD_PROVIDER_OPENAI].base_url), 0, 0,
     "endpoint URL; \"\" = the provider's default"},
    {"providers.openai.api_key_env", KEY_ENVNAME, OFF(providers[COORD_PROVIDER_OPENAI].api_key_env), 0, 0,
     "variable holding the API key; \"\" = the provider's usual one"},
    {"providers.openai.headers", KEY_HEADERS, OFF(providers[COORD_PROVIDER_OPENAI].headers), 0, 0,
     "{name: value} headers added to every request"},
    {"providers.openai.concurrency", KEY_INT, OFF(providers[COORD_PROVIDER_OPENAI].concurrency), 0, 100000,
     "requests at once per profile that sets no limit; 0 = no limit"},
    {"providers.anthropic.base_url", KEY_URL, OFF(providers[COORD_PROVIDER_ANTHROPIC].base_url), 0, 0,
     "endpoint URL; \"\" = the provider's default"},
    {"providers.anthropic.api_key_env", KEY_ENVNAME, OFF(providers[COORD_PROVIDER_ANTHROPIC].api_key_env), 0, 0,
     "variable holding the API key; \"\" = the provider's usual one"},
    {"providers.anthropic.headers", KEY_HEADERS, OFF(providers[COORD_PROVIDER_ANTHROPIC].headers), 0, 0,
     "{name: value} headers added to every request"},
    {"providers.anthropic.concurrency", KEY_INT, OFF(providers[COORD_PROVIDER_ANTHROPIC].concurrency), 0, 100000,
     "requests at once per profile that sets no limit; 0 = no limit"},
    {"providers.ollama.base_url", KEY_URL, OFF(providers[COORD_PROVIDER_OLLAMA].base_url), 0, 0,
     "endpoint URL; \"\" = the provider's default"},
    {"providers.ollama.api_key_env", KEY_ENVNAME, OFF(providers[COORD_PROVIDER_OLLAMA].api_key_env), 0, 0,
     "variable holding the API key; \"\" = the provider's usual one"},
    {"providers.ollama.headers", KEY_HEADERS, OFF(providers[COORD_PROVIDER_OLLAMA].headers), 0, 0,
     "{name: value} headers added to every request"},
    {"providers.ollama.concurrency", KEY_INT, OFF(providers[COORD_PROVIDER_OLLAMA].concurrency), 0, 100000,
     "requests at once per profile that sets no limit; 0 = no limit"},
    {"agents", KEY_PROFILES, OFF(agents), 0, 0,
     "shared agent profiles {name: profile} for {\"ref\": name}"},
    {"model_calls.connect_timeout_ms", KEY_INT, OFF(model_calls.connect_timeout_ms), 100, 600000,
     "TCP and TLS connect of a model request"},
    {"model_calls.idle_timeout_ms", KEY_INT, OFF(model_calls.idle_timeout_ms), 100, 86400000,
     "longest silence of a model endpoint, first byte included"},
    {"model_calls.max_calls", KEY_INT, OFF(model_calls.max_calls), 0, 10000000,
     "model calls running and queued; 0 = no limit"},
};

const char *const coord_provider_names[COORD_PROVIDERS] = {"openai", "anthropic", "ollama"};

/* Objects that only group keys; anything else that is an object is an error. */
static const char *const config_groups[] = {"store",            "limits",           "shutdown", "websocket",
                                            "auth",             "streams",
                                            "streams.retention", "streams.groups", "runs",
                                            "providers",        "providers.openai",
                                            "providers.anthropic", "providers.ollama",
                                            "model_calls"};

static const char *const log_level_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const auth_mode_names[] = {"none", "jwt"};

static void config_error(coord_config_error_t *err, const char *where, const char *key,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void config_error(coord_config_error_t *err, const char *where, const char *key,
                         const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->reason, sizeof err->reason, fmt, ap);
  va_end(ap);
  snprintf(err->where, sizeof err->where, "%s", where ? where : "");
  snprintf(err->key, sizeof err->key, "%s", key ? key : "");
  size_t n = 0;
  err->text[0] = '\0';
  if (err->where[0]) n += (size_t)snprintf(err->text + n, sizeof err->text - n, "%s: ", err->where);
  if (err->key[0] && n < sizeof err->text)
    n += (size_t)snprintf(err->text + n, sizeof err->text - n, "%s: ", err->key);
  if (n < sizeof err->text) snprintf(err->text + n, sizeof err->text - n, "%s", err->reason);
}

static const config_key_t *config_key_find(const char *name) {
  for (size_t i = 0; i < BASE_ARRAY_SIZE(config_keys); i++)
    if (strcmp(config_keys[i].name, name) == 0) return &config_keys[i];
  return NULL;
}

static bool config_is_group(const char *name) {
  for (size_t i = 0; i < BASE_ARRAY_SIZE(config_groups); i++)
    if (strcmp(config_groups[i], name) == 0) return true;
  return false;
}

static void config_set_string(coord_config_t *cfg, size_t offset, const char *value) {
  char **slot = (char **)(void *)((char *)cfg + offset);
  free(*slot);
  *slot = xstrdup(value);
}

void coord_config_defaults(coord_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->listen = xstrdup("127.0.0.1:8080");
  snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
  cfg->listen_port = 8080;
  cfg->listen_loopback = true;
  cfg->data_dir = xstrdup("./data");
  cfg->store.wal_max_mb = STORE_WAL_MAX_DEFAULT >> 20;
  cfg->store.cache_mb = STORE_CACHE_DEFAULT >> 20;
  cfg->web_root = xstrdup("examples/web");
  cfg->log_level = LOG_INFO;
  cfg->limits.max_connections = 100000;
  cfg->limits.max_http_body = 1048576;
  cfg->limits.max_ws_message = 1048576;
  cfg->limits.idle_timeout_ms = 60000;
  cfg->limits.handshake_timeout_ms = 10000;
  /* The streams engine's own defaults are the single source for its keys. */
  stream_config_t sc;
  stream_config_defaults(&sc);
  cfg->limits.publish_rate = (int64_t)sc.publish_rate;
  cfg->limits.publish_burst = sc.publish_burst;
  cfg->limits.topic_publish_rate = (int64_t)sc.topic_publish_rate;
  cfg->limits.topic_publish_burst = sc.topic_publish_burst;
  cfg->limits.slow_client_timeout_ms = 30000;
  cfg->limits.ws_frames_per_write = 64;
  cfg->limits.ws_bulk_connections = 256;
  cfg->websocket.own_transport = 1;
  cfg->shutdown.drain_ms = 5000;
  cfg->shutdown.grace_ms = 1000;
  cfg->auth.mode = COORD_AUTH_NONE;
  cfg->auth.jwt_secret = xstrdup("");
  cfg->streams.partitions = sc.partitions;
  cfg->streams.retention_max_events = (int64_t)sc.retention_max_events;
  cfg->streams.retention_max_age_s = sc.retention_max_age_s;
  cfg->streams.dedupe_window_s = sc.dedupe_window_s;
  cfg->streams.idle_topic_s = sc.idle_topic_s;
  cfg->streams.overload_threshold = sc.overload_threshold;
  cfg->streams.overload_mb = (int64_t)(sc.overload_bytes >> 20);
  cfg->streams.commit_thread = sc.commit_thread ? 1 : 0;
  cfg->streams.control_queue_max = sc.control_queue_max;
  cfg->streams.commit_batch_max = sc.commit_batch_max;
  cfg->streams.commit_inline_max = sc.commit_inline_max;
  cfg->streams.router_budget = sc.router_budget;
  cfg->streams.ring_size = sc.ring_size;
  cfg->streams.sse_keepalive_ms = 15000;
  cfg->streams.groups.ack_wait_ms = sc.group_ack_wait_ms;
  cfg->streams.groups.max_deliveries = sc.group_max_deliveries;
  cfg->streams.groups.max_inflight = sc.group_max_inflight;
  cfg->streams.groups.max_inflight_limit = sc.group_max_inflight_limit;
  cfg->streams.groups.max_pending = sc.group_max_pending;
  cfg->streams.groups.per_topic = sc.groups_per_topic;
  cfg->streams.groups.members_max = sc.group_members_max;
  cfg->workflows_dir = xstrdup("examples/workflows");
  cfg->runs.token_coalesce_ms = 20;
  cfg->runs.max_runs = 1000;
  cfg->runs.default_tenant = xstrdup("default");
  for (int i = 0; i < COORD_PROVIDERS; i++) {
    cfg->providers[i].base_url = xstrdup("");
    cfg->providers[i].api_key_env = xstrdup("");
    cfg->providers[i].headers = json_object();
  }
  cfg->agents = json_object();
  cfg->model_calls.connect_timeout_ms = 10000;
  cfg->model_calls.idle_timeout_ms = 60000;
}

void coord_config_close(coord_config_t *cfg) {
  free(cfg->listen);
  free(cfg->data_dir);
  free(cfg->web_root);
  free(cfg->auth.jwt_secret);
  free(cfg->workflows_dir);
  free(cfg->runs.default_tenant);
  for (int i = 0; i < COORD_PROVIDERS; i++) {
    free(cfg->providers[i].base_url);
    free(cfg->providers[i].api_key_env);
    json_decref(cfg->providers[i].headers);
  }
  json_decref(cfg->agents);
  memset(cfg, 0, sizeof *cfg);
}

int coord_config_parse_listen(const char *text, char *host, size_t host_len, int *port,
                              bool *loopback, char *reason, size_t reason_len) {
  static const char usage[] =
      "must be HOST:PORT with a numeric IPv4 or [IPv6] address or localhost";
  const char *colon, *h = text;
  size_t hlen;
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (!close || close[1] != ':') goto bad;
    h = text + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(text, ':');
    if (!colon) goto bad;
    hlen = (size_t)(colon - text);
  }
  char hbuf[64];
  if (hlen == 0 || hlen >= sizeof hbuf) goto bad;
  memcpy(hbuf, h, hlen);
  hbuf[hlen] = '\0';

  const char *p = colon + 1;
  if (!*p || strlen(p) > 5) goto badport;
  long v = 0;
  for (const char *q = p; *q; q++) {
    if (!isdigit((unsigned char)*q)) goto badport;
    v = v * 10 + (*q - '0');
  }
  if (v > 65535) goto badport;

  if (strcmp(hbuf, "localhost") == 0) snprintf(hbuf, sizeof hbuf, "127.0.0.1");
  unsigned char addr[16];
  bool lb;
  if (text[0] != '[' && inet_pton(AF_INET, hbuf, addr) == 1) {
    lb = addr[0] == 127;
  } else if (text[0] == '[' && inet_pton(AF_INET6, hbuf, addr) == 1) {
    static const unsigned char v6lo[16] = {[15] = 1};
    lb = memcmp(addr, v6lo, 16) == 0;
  } else {
    goto bad;
  }
  if (strlen(hbuf) >= host_len) goto bad;
  snprintf(host, host_len, "%s", hbuf);
  *port = (int)v;
  *loopback = lb;
  return 0;
bad:
  snprintf(reason, reason_len, "%s", usage);
  return -EINVAL;
badport:
  snprintf(reason, reason_len, "port must be a number between 0 and 65535");
  return -EINVAL;
}

/* Strict decimal integer: optional '-', digits, no spaces, no overflow. */
static bool config_parse_int(const char *s, int64_t *out) {
  if (!*s) return false;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || isspace((unsigned char)s[0]) || s[0] == '+') return false;
  *out = v;
  return true;
}

static int config_choose(const char *value, const char *const *names, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(value, names[i]) == 0) return (int)i;
  return -1;
}

static void config_choices_text(char *buf, size_t len, const char *const *names, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "%s\"%s\"", i ? ", " : "", names[i]);
}

/* JSON in the config (the file, and the object keys' values from the environment or a
 * flag) is parsed with the house limits: the size first, then the depth, then jansson. */
#define CONFIG_MAX_JSON_BYTES ((size_t)1 << 20) /* bytes */
#define CONFIG_MAX_JSON_DEPTH 16                /* nested objects and arrays */

/* Whether text[0..len) opens a bracket deeper than CONFIG_MAX_JSON_DEPTH; if so *line and
 * *column (1-based, in characters as jansson counts them) name that bracket. Strings are
 * skipped; the text need not be valid JSON (jansson reports what else is wrong). */
static bool config_json_too_deep(const char *text, size_t len, int *line, int *column) {
  int depth = 0, ln = 1, col = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '\n') {
      ln++;
      col = 0;
      continue;
    }
    if ((c & 0xC0) != 0x80) col++;
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > CONFIG_MAX_JSON_DEPTH) {
        *line = ln;
        *column = col;
        return true;
      }
    } else if ((c == '}' || c == ']') && depth > 0) {
      depth--;
    }
  }
  return false;
}

static bool config_is_json_kind(key_kind_t kind) {
  return kind == KEY_HEADERS || kind == KEY_PROFILES;
}

/* An HTTP header name: 1-128 token characters (RFC 9110). */
static bool config_header_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return false;
  return true;
}

static int config_check_headers(const json_t *v, const char *where, const char *key,
                                coord_config_error_t *err) {
  if (!json_is_object(v)) {
    config_error(err, where, key, "must be an object {\"Header-Name\": \"value\"}");
    return -EINVAL;
  }
  if (json_object_size(v) > 64) {
    config_error(err, where, key, "at most 64 headers");
    return -EINVAL;
  }
  const char *name;
  json_t *val;
  json_object_foreach((json_t *)v, name, val) {
    char path[256];
    snprintf(path, sizeof path, "%s.%.128s", key, name);
    if (!config_header_name_ok(name)) {
      config_error(err, where, path, "a header name is 1 to 128 token characters");
      return -EINVAL;
    }
    const char *text = json_string_value(val);
    if (!text || strlen(text) != json_string_length(val) || strpbrk(text, "\r\n") ||
        json_string_length(val) > 8192) {
      config_error(err, where, path,
                   "must be a string of at most 8192 bytes without CR, LF or NUL");
      return -EINVAL;
    }
  }
  return 0;
}

/* Checks shared agent profiles with the workflow validator: each one is placed in a
 * one-step workflow document, so the rules (and the wording of the errors) are exactly
 * those of a profile written inside a workflow file. */
static int config_check_profiles(const json_t *v, const char *where, const char *key,
                                 coord_config_error_t *err) {
  if (!json_is_object(v)) {
    config_error(err, where, key, "must be an object {\"name\": {\"provider\": ...}}");
    return -EINVAL;
  }
  if (json_object_size(v) > 256) {
    config_error(err, where, key, "at most 256 shared profiles");
    return -EINVAL;
  }
  const char *name;
  json_t *prof;
  json_object_foreach((json_t *)v, name, prof) {
    char path[256];
    if (json_is_object(prof) && json_object_get(prof, "ref")) {
      snprintf(path, sizeof path, "%s.%.64s.ref", key, name);
      config_error(err, where, path, "a shared profile cannot refer to another one");
      return -EINVAL;
    }
  }
  json_t *doc = json_pack("{s:s,s:O,s:[{s:s,s:s,s:s}]}", "name", "config-agents", "agents", v,
                          "steps", "id", "check", "type", "transform", "value", "");
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  if (!text) {
    config_error(err, where, key, "cannot be encoded");
    return -EINVAL;
  }
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  int rc = wf_load_buffer(text, strlen(text), "config", NULL, &wf, &errs);
  free(text);
  wf_free(wf);
  if (rc < 0) {
    const wf_error_t *e = wf_errors_count(errs) ? wf_errors_at(errs, 0) : NULL;
    /* The validator's paths ("agents.writer.params") are the config keys. */
    config_error(err, where, e && e->path[0] ? e->path : key, "%s",
                 e ? e->reason : "invalid shared profiles");
    rc = -EINVAL;
  }
  wf_errors_free(errs);
  return rc;
}

/* Sets a JSON-valued key (headers, profiles) after checking it; v is borrowed. */
static int config_apply_json_kind(coord_config_t *cfg, const config_key_t *k, json_t *v,
                                  const char *where, coord_config_error_t *err) {
  int rc = k->kind == KEY_HEADERS ? config_check_headers(v, where, k->name, err)
                                  : config_check_profiles(v, where, k->name, err);
  if (rc < 0) return rc;
  json_t **slot = (json_t **)(void *)((char *)cfg + k->offset);
  json_decref(*slot);
  *slot = json_deep_copy(v);
  return 0;
}

/* An environment variable name for an API key: 1-128 of A-Z a-z 0-9 _, not starting
 * with a digit. */
static bool config_envname_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128 || isdigit((unsigned char)s[0])) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return false;
  return true;
}

static bool config_url_ok(const char *s) {
  const char *rest = strncmp(s, "http://", 7) == 0    ? s + 7
                     : strncmp(s, "https://", 8) == 0 ? s + 8
                                                      : NULL;
  if (!rest || !*rest || *rest == '/' || strlen(s) > 2048) return false;
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || *s == 0x7f) return false;
  return true;
}

/* Applies one value given as text (env, CLI) or as an integer (JSON); exactly one of
 * text / ival is used, chosen by is_int. JSON-valued keys parse their text. */
static int config_apply_value(coord_config_t *cfg, const config_key_t *k, const char *text,
                              bool is_int, int64_t ival, const char *where,
                              coord_config_error_t *err) {
  char *base = (char *)cfg;
  char choices[128];
  switch (k->kind) {
  case KEY_INT: {
    int64_t v = ival;
    if (!is_int && !config_parse_int(text, &v)) goto range;
    if (v < k->min || v > k->max) goto range;
    *(int64_t *)(void *)(base + k->offset) = v;
    return 0;
  range:
    config_error(err, where, k->name, "must be an integer between %" PRId64 " and %" PRId64,
                 k->min, k->max);
    return -EINVAL;
  }
  default:
    break;
  }
  if (is_int) {
    config_error(err, where, k->name, "must be a string");
    return -EINVAL;
  }
  switch (k->kind) {
  case KEY_HEADERS:
  case KEY_PROFILES: {
    size_t len = strlen(text);
    int line = 0, column = 0;
    if (len > CONFIG_MAX_JSON_BYTES) {
      config_error(err, where, k->name, "JSON text larger than 1 MiB");
      return -EINVAL;
    }
    if (config_json_too_deep(text, len, &line, &column)) {
      config_error(err, where, k->name, "JSON nested deeper than %d levels at column %d",
                   CONFIG_MAX_JSON_DEPTH, column);
      return -EINVAL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
      config_error(err, where, k->name, "invalid JSON at column %d: %s", jerr.column, jerr.text);
      return -EINVAL;
    }
    int rc = config_apply_json_kind(cfg, k, v, where, err);
    json_decref(v);
    return rc;
  }
  case KEY_TENANT:
    if (!coord_auth_tenant_valid(text)) {
      config_error(err, where, k->name, "must match [a-z0-9_-]{1,64}");
      return -EINVAL;
    }
    config_set_string(cfg, k->offset, text);
    return 0;
  case KEY_URL:
    if (*text && !config_url_ok(text)) {
      config_error(err, where, k->name,
                   "must be \"\" or an http:// or https:// URL with a host and no spaces");
      return -EINVAL;
    }
    config_set_string(cfg, k->offset, text);
    return 0;
  case KEY_ENVNAME:
    if (*text && !config_envname_ok(text)) {
      config_error(err, where, k->name,
                   "must be \"\" or an environment variable name (A-Z a-z 0-9 _)");
      return -EINVAL;
    }
    config_set_string(cfg, k->offset, text);
    return 0;
  case KEY_NONEMPTY:
    if (!*text) {
      config_error(err, where, k->name, "must not be empty");
      return -EINVAL;
    }
    /* fall through */
  case KEY_STRING:
  case KEY_SECRET:
    config_set_string(cfg, k->offset, text);
    return 0;
  case KEY_LISTEN: {
    char reason[128];
    if (coord_config_parse_listen(text, cfg->listen_host, sizeof cfg->listen_host,
                                  &cfg->listen_port, &cfg->listen_loopback, reason,
                                  sizeof reason) < 0) {
      config_error(err, where, k->name, "%s", reason);
      return -EINVAL;
    }
    config_set_string(cfg, k->offset, text);
    return 0;
  }
  case KEY_LOGLEVEL: {
    int i = config_choose(text, log_level_names, BASE_ARRAY_SIZE(log_level_names));
    if (i < 0) {
      config_choices_text(choices, sizeof choices, log_level_names,
                          BASE_ARRAY_SIZE(log_level_names));
      config_error(err, where, k->name, "must be one of %s", choices);
      return -EINVAL;
    }
    cfg->log_level = (log_level_t)i;
    return 0;
  }
  case KEY_AUTHMODE: {
    int i = config_choose(text, auth_mode_names, BASE_ARRAY_SIZE(auth_mode_names));
    if (i < 0) {
      config_choices_text(choices, sizeof choices, auth_mode_names,
                          BASE_ARRAY_SIZE(auth_mode_names));
      config_error(err, where, k->name, "must be one of %s", choices);
      return -EINVAL;
    }
    cfg->auth.mode = (coord_auth_mode_t)i;
    return 0;
  }
  case KEY_INT:
    break;
  }
  return -EINVAL;
}

int coord_config_set(coord_config_t *cfg, const char *key, const char *value, const char *where,
                     coord_config_error_t *err) {
  const config_key_t *k = config_key_find(key);
  if (!k) {
    config_error(err, where, key, "unknown key");
    return -ENOENT;
  }
  return config_apply_value(cfg, k, value, false, 0, where, err);
}

static int config_apply_object(coord_config_t *cfg, json_t *obj, const char *prefix,
                               const char *where, coord_config_error_t *err) {
  const char *name;
  json_t *value;
  json_object_foreach(obj, name, value) {
    char path[128];
    if ((size_t)snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name) >=
        sizeof path) {
      config_error(err, where, "", "key too long");
      return -EINVAL;
    }
    if (config_is_group(path)) {
      if (!json_is_object(value)) {
        config_error(err, where, path, "must be an object");
        return -EINVAL;
      }
      int rc = config_apply_object(cfg, value, path, where, err);
      if (rc < 0) return rc;
      continue;
    }
    const config_key_t *k = config_key_find(path);
    if (!k) {
      config_error(err, where, path, "unknown key");
      return -EINVAL;
    }
    int rc;
    if (config_is_json_kind(k->kind)) {
      rc = config_apply_json_kind(cfg, k, value, where, err);
    } else if (k->kind == KEY_INT) {
      if (!json_is_integer(value)) {
        config_error(err, where, path, "must be an integer between %" PRId64 " and %" PRId64,
                     k->min, k->max);
        return -EINVAL;
      }
      rc = config_apply_value(cfg, k, NULL, true, (int64_t)json_integer_value(value), where, err);
    } else {
      if (!json_is_string(value)) {
        config_error(err, where, path, "must be a string");
        return -EINVAL;
      }
      if (strlen(json_string_value(value)) != json_string_length(value)) {
        config_error(err, where, path, "must not contain NUL characters");
        return -EINVAL;
      }
      rc = config_apply_value(cfg, k, json_string_value(value), false, 0, where, err);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

int coord_config_apply_json(coord_config_t *cfg, const char *text, size_t len, const char *where,
                            coord_config_error_t *err) {
  char at[300];
  if (len > CONFIG_MAX_JSON_BYTES) {
    config_error(err, where, "", "JSON text larger than 1 MiB");
    return -EFBIG;
  }
  int line = 0, column = 0;
  if (config_json_too_deep(text, len, &line, &column)) {
    snprintf(at, sizeof at, "%s:%d:%d", where, line, column);
    config_error(err, at, "", "JSON nested deeper than %d levels", CONFIG_MAX_JSON_DEPTH);
    return -EINVAL;
  }
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    snprintf(at, sizeof at, "%s:%d:%d", where, jerr.line, jerr.column);
    config_error(err, at, "", "invalid JSON: %s", jerr.text);
    return -EINVAL;
  }
  int rc;
  if (!json_is_object(root)) {
    config_error(err, where, "", "the top level must be a JSON object");
    rc = -EINVAL;
  } else {
    rc = config_apply_object(cfg, root, "", where, err);
  }
  json_decref(root);
  return rc;
}

int coord_config_apply_file(coord_config_t *cfg, const char *path, coord_config_error_t *err) {
  int rc = 0;
  char *buf = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    rc = -errno;
    config_error(err, path, "", "cannot open: %s", strerror(errno));
    return rc;
  }
  buf = xmalloc(CONFIG_MAX_JSON_BYTES + 1);
  size_t n = fread(buf, 1, CONFIG_MAX_JSON_BYTES + 1, f);
  if (ferror(f)) {
    rc = -EIO;
    config_error(err, path, "", "cannot read");
    goto out;
  }
  if (n > CONFIG_MAX_JSON_BYTES) {
    rc = -EFBIG;
    config_error(err, path, "", "larger than 1 MiB");
    goto out;
  }
  rc = coord_config_apply_json(cfg, buf, n, path, err);
out:
  free(buf);
  fclose(f);
  return rc;
}

static void config_env_name(const char *key, char *out, size_t len) {
  size_t n = (size_t)snprintf(out, len, "COORDINATOR_");
  for (const char *p = key; *p && n + 1 < len; p++)
    out[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
  out[n] = '\0';
}

int coord_config_apply_env(coord_config_t *cfg, coord_getenv_fn getenv_fn, void *ud,
                           coord_config_error_t *err) {
  for (size_t i = 0; i < BASE_ARRAY_SIZE(config_keys); i++) {
    char name[96];
    config_env_name(config_keys[i].name, name, sizeof name);
    const char *v = getenv_fn(name, ud);
    if (!v) continue;
    int rc = config_apply_value(cfg, &config_keys[i], v, false, 0, name, err);
    if (rc < 0) return rc;
  }
  return 0;
}

int coord_config_validate(const coord_config_t *cfg, coord_config_error_t *err) {
  if (cfg->auth.mode == COORD_AUTH_JWT && strlen(cfg->auth.jwt_secret) < 32) {
    config_error(err, "config", "auth.jwt_secret",
                 "must be at least 32 bytes when auth.mode is \"jwt\"");
    return -EINVAL;
  }
  if (cfg->streams.groups.max_inflight > cfg->streams.groups.max_inflight_limit) {
    config_error(err, "config", "streams.groups.max_inflight",
                 "must not exceed streams.groups.max_inflight_limit (%lld)",
                 (long long)cfg->streams.groups.max_inflight_limit);
    return -EINVAL;
  }
  if (cfg->auth.mode == COORD_AUTH_NONE && !cfg->listen_loopback) {
    config_error(err, "config", "auth.mode",
                 "\"none\" is only allowed with a loopback listen address (listen is %s); use "
                 "\"jwt\"",
                 cfg->listen);
    return -EINVAL;
  }
  return 0;
}

void coord_config_print_keys(FILE *out) {
  coord_config_t d;
  coord_config_defaults(&d);
  for (size_t i = 0; i < BASE_ARRAY_SIZE(config_keys); i++) {
    const config_key_t *k = &config_keys[i];
    const char *base = (const char *)&d;
    char def[64], env[96];
    switch (k->kind) {
    case KEY_INT:
      snprintf(def, sizeof def, "%" PRId64, *(const int64_t *)(const void *)(base + k->offset));
      break;
    case KEY_LOGLEVEL:
      snprintf(def, sizeof def, "\"%s\"", log_level_names[d.log_level]);
      break;
    case KEY_AUTHMODE:
      snprintf(def, sizeof def, "\"%s\"", auth_mode_names[d.auth.mode]);
      break;
    case KEY_HEADERS:
    case KEY_PROFILES:
      snprintf(def, sizeof def, "{}");
      break;
    default:
      snprintf(def, sizeof def, "\"%s\"", *(char *const *)(const void *)(base + k->offset));
      break;
    }
    config_env_name(k->name, env, sizeof env);
    fprintf(out, "  %-30s %-16s %s (env %s)\n", k->name, def, k->help, env);
  }
  coord_config_close(&d);
}
