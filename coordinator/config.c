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

#include "base/mem.h"
#include "streams.h"

typedef enum {
  KEY_INT,      /* int64_t, inclusive range */
  KEY_STRING,   /* char * (owned) */
  KEY_NONEMPTY, /* char * (owned), must not be "" */
  KEY_SECRET,   /* char * (owned), never printed */
  KEY_LISTEN,   /* char * (owned) + parsed host/port */
  KEY_LOGLEVEL, /* log_level_t */
  KEY_AUTHMODE, /* coord_auth_mode_t */
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
    {"streams.dedupe_window_s", KEY_INT, OFF(streams.dedupe_window_s), 0, 86400,
     "seconds an event id is remembered"},
    {"streams.overload_threshold", KEY_INT, OFF(streams.overload_threshold), 1, 100000000,
     "uncommitted events above which publishes are shed (503, /readyz overloaded)"},
    {"streams.sse_keepalive_ms", KEY_INT, OFF(streams.sse_keepalive_ms), 100, 3600000,
     "a quiet SSE stream gets a keepalive comment this often"},
};

/* Objects that only group keys; anything else that is an object is an error. */
static const char *const config_groups[] = {"limits", "shutdown", "auth", "streams",
                                            "streams.retention"};

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
  cfg->shutdown.drain_ms = 5000;
  cfg->shutdown.grace_ms = 1000;
  cfg->auth.mode = COORD_AUTH_NONE;
  cfg->auth.jwt_secret = xstrdup("");
  cfg->streams.partitions = sc.partitions;
  cfg->streams.retention_max_events = (int64_t)sc.retention_max_events;
  cfg->streams.retention_max_age_s = sc.retention_max_age_s;
  cfg->streams.dedupe_window_s = sc.dedupe_window_s;
  cfg->streams.overload_threshold = sc.overload_threshold;
  cfg->streams.sse_keepalive_ms = 15000;
}

void coord_config_close(coord_config_t *cfg) {
  free(cfg->listen);
  free(cfg->data_dir);
  free(cfg->web_root);
  free(cfg->auth.jwt_secret);
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

/* Applies one value given as text (env, CLI) or as an integer (JSON); exactly one of
 * text / ival is used, chosen by is_int. */
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
    if (k->kind == KEY_INT) {
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
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    char at[300];
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
  enum { MAX_CONFIG_BYTES = 1 << 20 };
  int rc = 0;
  char *buf = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    rc = -errno;
    config_error(err, path, "", "cannot open: %s", strerror(errno));
    return rc;
  }
  buf = xmalloc(MAX_CONFIG_BYTES + 1);
  size_t n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
  if (ferror(f)) {
    rc = -EIO;
    config_error(err, path, "", "cannot read");
    goto out;
  }
  if (n > MAX_CONFIG_BYTES) {
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
    default:
      snprintf(def, sizeof def, "\"%s\"", *(char *const *)(const void *)(base + k->offset));
      break;
    }
    config_env_name(k->name, env, sizeof env);
    fprintf(out, "  %-30s %-16s %s (env %s)\n", k->name, def, k->help, env);
  }
  coord_config_close(&d);
}
