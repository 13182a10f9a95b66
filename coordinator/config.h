/* The daemon's configuration: defaults, the JSON file, environment overrides.
 *
 * One table of keys (config.c) drives everything: JSON parsing, env overrides
 * (COORDINATOR_<KEY_WITH_DOTS_AS_UNDERSCORES, UPPER>), validation, and `--help`. Precedence is
 * command line > environment > file > default; the command line itself is parsed in cli.c,
 * which calls coord_config_set() for its flags. Errors name where the value came from, the
 * key and the reason, e.g. `cfg.json: limits.max_connections: must be an integer between 1
 * and 1000000`. Keys that belong to later layers (auth.*, streams.*, publish limits) are
 * parsed and range-checked here so that a bad value fails at start, and are only carried.
 * The defaults of the streams keys come from stream_config_defaults() (one source of truth);
 * streams_mod.c maps them onto stream_config_t. Keys of the workflow runs and the model
 * clients (workflows_dir, runs.*, providers.*, agents, model_calls.*) are mapped by
 * runs_mod.c; object-valued keys (providers.<name>.headers, agents) take a JSON object in
 * the file and JSON text in their environment variable, and each shared profile of
 * `agents` is checked with the workflow validator, so its errors read like a workflow's. */
#ifndef COORD_CONFIG_H
#define COORD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "base/log.h"

typedef enum {
  COORD_AUTH_NONE = 0, /* dev default: any tenant; only allowed on a loopback listen address */
  COORD_AUTH_JWT = 1,  /* HS256 tokens signed with auth.jwt_secret */
} coord_auth_mode_t;

/* All fields are valid once coord_config_defaults() has run; strings are owned (heap) and
 * freed by coord_config_close(). Durations carry their unit in the name. */
/* Daemon-wide settings of one HTTP model provider (providers.<name>.*). */
typedef struct coord_provider_config {
  char *base_url;      /* owned; "" = the provider's default (docs/agents.md) */
  char *api_key_env;   /* owned; "" = OPENAI_API_KEY / ANTHROPIC_API_KEY / none */
  json_t *headers;     /* owned; {name: value} added to every request, {} for none */
  int64_t concurrency; /* requests at once per limit key whose profile sets none; 0 = no limit */
} coord_provider_config_t;

/* providers[] index: the HTTP providers that have daemon-wide settings. */
enum { COORD_PROVIDER_OPENAI = 0, COORD_PROVIDER_ANTHROPIC, COORD_PROVIDER_OLLAMA, COORD_PROVIDERS };
extern const char *const coord_provider_names[COORD_PROVIDERS]; /* "openai", ... */

typedef struct coord_config {
  char *listen;        /* owned; "HOST:PORT" as given */
  char listen_host[64]; /* numeric address parsed from listen ("localhost" -> 127.0.0.1) */
  int listen_port;      /* 0 = kernel picks a free port */
  bool listen_loopback; /* listen_host is 127.0.0.0/8 or ::1 */
  char *data_dir;       /* owned */
  struct {
    int64_t wal_max_mb; /* MB: the SQLite write-ahead log starts over once it holds this */
    int64_t cache_mb;   /* MB: SQLite page cache of each store connection */
    int64_t secure_delete; /* 1: PRAGMA secure_delete=ON; 0: FAST */
  } store;
  char *web_root;       /* owned; "" disables static files */
  log_level_t log_level;

  struct {
    int64_t max_connections;      /* open TCP connections; more get 503 */
    int64_t max_http_body;        /* bytes; more get 413 */
    int64_t max_ws_message;       /* bytes, reassembled; more get close 1009 */
    int64_t idle_timeout_ms;      /* silence (no frame, no pong) before hang-up; 0 = off */
    int64_t handshake_timeout_ms; /* accept -> complete request headers */
    int64_t publish_rate;         /* events/s per tenant (streams); 0 = unlimited */
    int64_t publish_burst;        /* events, per tenant bucket size */
    int64_t topic_publish_rate;   /* events/s per topic; 0 = unlimited */
    int64_t topic_publish_burst;  /* events */
    int64_t slow_client_timeout_ms; /* data pending but unwritable this long: close; 0 = never */
    int64_t ws_frames_per_write;  /* WebSocket frames coalesced into one send (1 = no coalescing) */
    int64_t ws_bulk_connections;  /* open WebSockets on the coord-bulk subprotocol */
  } limits;

  struct {
    int64_t own_transport; /* 1: the daemon reads and writes /v1/ws itself (wso.c); 0: lws */
  } websocket;

  struct {
    int64_t drain_ms; /* SIGTERM -> close 1001 window */
    int64_t grace_ms; /* after the 1001 closes, wait this long for clients to go */
  } shutdown;

  struct {
    coord_auth_mode_t mode;
    char *jwt_secret; /* owned; "" unless mode is jwt */
  } auth;

  struct {
    int64_t partitions;
    int64_t retention_max_events; /* streams.retention.max_events */
    int64_t retention_max_age_s;  /* streams.retention.max_age_s */
    int64_t dedupe_window_s;
    int64_t idle_topic_s;       /* a topic with no subscriber leaves memory after this */
    int64_t overload_threshold; /* uncommitted events before publishes are shed (503) */
    int64_t overload_mb;        /* MiB of uncommitted events before the same */
    int64_t commit_thread;      /* 1: store commits on a writer thread; 0: on the loop */
    int64_t control_queue_max;  /* control frames queued per connection; reading pauses at half */
    int64_t commit_batch_max;   /* events per store transaction at most */
    int64_t commit_inline_max;  /* batches this small commit on the loop even with the thread */
    int64_t router_budget;      /* subscriber visits per loop turn */
    int64_t ring_size;          /* newest committed events kept in memory per read topic */
    int64_t sse_keepalive_ms;   /* ": keepalive" comment on a quiet SSE stream this often */
    struct {                    /* consumer groups (docs/groups.md) */
      int64_t ack_wait_ms;        /* lease of a new group */
      int64_t max_deliveries;     /* deliveries before the dead letter; 0 = never */
      int64_t max_inflight;       /* a member's unacked deliveries by default */
      int64_t max_inflight_limit; /* the most a join may ask for */
      int64_t max_pending;        /* leases per group */
      int64_t per_topic;          /* groups per topic */
      int64_t members_max;        /* members per group */
    } groups;
  } streams;

  char *workflows_dir; /* owned; folder of workflow files, read at start and on SIGHUP */

  struct {
    int64_t token_coalesce_ms; /* window of one token event; 0 = one event per delta */
    int64_t max_runs;          /* runs executing at once; more starts get 503 */
    char *default_tenant;      /* owned; the tenant of runs under auth.mode none */
  } runs;

  coord_provider_config_t providers[COORD_PROVIDERS];
  /* Shared agent profiles {name: profile} that workflows use with {"ref": name}; owned,
   * {} when none. Each profile was checked like a workflow's own (coord_config_apply_*). */
  json_t *agents;

  struct {
    int64_t connect_timeout_ms; /* TCP + TLS connect of a model request */
    int64_t idle_timeout_ms;    /* longest silence inside a streamed response */
    int64_t max_calls;          /* model calls running + queued; 0 = no limit */
  } model_calls;
} coord_config_t;

/* Where a config problem was found and why; text is the full one-line message. */
typedef struct coord_config_error {
  char where[256]; /* file path, "COORDINATOR_X" (env) or "--flag" */
  char key[128];   /* dotted key, "" when the problem is not about one key */
  char reason[256];
  char text[700]; /* "where: key: reason" (parts omitted when empty) */
} coord_config_error_t;

/* Looks up an environment variable; NULL when unset. Injected so tests need no globals. */
typedef const char *(*coord_getenv_fn)(const char *name, void *ud);

/* Fills cfg with the documented defaults. Pair with coord_config_close(). */
void coord_config_defaults(coord_config_t *cfg);
void coord_config_close(coord_config_t *cfg);

/* Applies the JSON object in text (len bytes) on top of cfg; where names the source in errors.
 * Returns 0, -EFBIG (text over 1 MiB, checked first), or -EINVAL with err filled (objects and
 * arrays nested deeper than 16, checked before parsing, or bad JSON, both with line and
 * column; unknown key, wrong type, out of range). On error cfg may be partly updated; callers
 * exit. */
int coord_config_apply_json(coord_config_t *cfg, const char *text, size_t len, const char *where,
                            coord_config_error_t *err) __attribute__((warn_unused_result));

/* Reads path (at most 1 MiB) and applies it. -ENOENT/-EACCES/-EFBIG/-EINVAL with err filled. */
int coord_config_apply_file(coord_config_t *cfg, const char *path, coord_config_error_t *err)
    __attribute__((warn_unused_result));

/* Applies every COORDINATOR_<KEY> variable that getenv returns. -EINVAL with err filled. */
int coord_config_apply_env(coord_config_t *cfg, coord_getenv_fn getenv_fn, void *ud,
                           coord_config_error_t *err) __attribute__((warn_unused_result));

/* Sets one key from its string form (CLI flags, env); where names the source in errors.
 * -ENOENT for an unknown key, -EINVAL for a bad value; err filled either way. */
int coord_config_set(coord_config_t *cfg, const char *key, const char *value, const char *where,
                     coord_config_error_t *err) __attribute__((warn_unused_result));

/* Cross-key rules, run once after every source is applied (e.g. auth.mode "jwt" needs
 * auth.jwt_secret; auth.mode "none" needs a loopback listen address). -EINVAL with err. */
int coord_config_validate(const coord_config_t *cfg, coord_config_error_t *err)
    __attribute__((warn_unused_result));

/* Parses "HOST:PORT" / "[V6]:PORT" with a numeric address or "localhost". Returns 0 or
 * -EINVAL with a reason in reason[reason_len]. */
int coord_config_parse_listen(const char *text, char *host, size_t host_len, int *port,
                              bool *loopback, char *reason, size_t reason_len)
    __attribute__((warn_unused_result));

/* Writes the key reference (name, type, default, env variable) for --help. */
void coord_config_print_keys(FILE *out);

#endif
