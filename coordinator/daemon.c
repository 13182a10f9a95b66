/* Startup and shutdown orchestration of the daemon on one libuv loop.
 *
 * Owns the loop, the lws context (a foreign-loop libuv context, STACK-NOTES 3a), the
 * signal handlers, the event-loop lag timer and the drain state machine:
 *
 *   RUNNING --signal--> DRAINING: listener closed, /readyz 503, drain hooks and each
 *                       session's on_drain run; lasts shutdown.drain_ms, or ends early
 *                       once no connection is left
 *           --------> CLOSING: every WebSocket gets close 1001; lasts until the last one
 *                       is gone or shutdown.grace_ms passes
 *           --------> STOPPING: stop hooks run (they answer what still waits); while HTTP
 *                       connections are open, lws gets STOP_FLUSH_MS to write those answers
 *                       (new requests get 503); then our handles close,
 *                       lws_context_destroy(), the loop ends, exit 0
 *
 * A second signal exits at once with 128 + signal number. State transitions never run
 * inside an lws callback: they are scheduled on a zero timer. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

#define LAG_INTERVAL_MS 100
#define STOP_FLUSH_MS 100 /* at most, for answers the stop hooks queued (a loop turn or two) */

static const uint64_t lag_bounds_us[] = {100, 250, 500, 1000, 2500, 5000, 10000, 25000,
                                         50000, 100000, 250000, 500000, 1000000};

/* What runs on the daemon, attached in this order once the loop, metrics, the HTTP router
 * and the WebSocket transport exist and before libwebsockets starts. An attach function
 * registers routes, may install the WebSocket session (coord_ws_set_session) and drain/stop
 * hooks; a negative errno stops the start (exit 1). Later layers (streams, workflows) add
 * their entry before "static", whose fallback must come last. */
static const struct {
  const char *name;
  int (*attach)(coord_daemon_t *d);
} daemon_modules[] = {
    {"endpoints", coord__endpoints_register},
    {"test routes", coord__testroutes_register},
    {"streams", coord__streams_attach},
    {"runs", coord__runs_attach},
    {"static files", coord__static_register},
};

static void daemon_begin_close(uv_timer_t *t);
static void daemon_finish(uv_timer_t *t);
static void daemon_destroy(uv_timer_t *t);

/* lws's log callback carries no context pointer, so its rate limit lives in statics (the
 * loop thread is the only caller). Many lws warnings are caused by clients ("Ran out of
 * header data space"), so a client must not be able to flood the log: at most
 * LWS_LOG_BURST lines per second, then one summary of what was dropped. */
#define LWS_LOG_BURST 20

static void daemon_lws_log(int level, const char *line) {
  static uint64_t window_s, in_window, dropped;
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  char buf[512];
  snprintf(buf, sizeof buf, "%.*s", (int)n, line);
  if (!(level & (LLL_ERR | LLL_WARN))) {
    log_debug("lws", buf, NULL);
    return;
  }
  uint64_t now_s = uv_hrtime() / 1000000000u;
  if (now_s != window_s) {
    if (dropped)
      log_warn("lws", "lws log lines suppressed", "{s:I}", "count", (json_int_t)dropped);
    window_s = now_s;
    in_window = dropped = 0;
  }
  if (++in_window > LWS_LOG_BURST) {
    dropped++;
    return;
  }
  log_warn("lws", buf, NULL);
}

/* Raises RLIMIT_NOFILE's soft limit to the hard one; returns the resulting soft limit. */
static int daemon_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  rlim_t before = rl.rlim_cur;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = before;
  }
  return rl.rlim_cur > INT32_MAX ? INT32_MAX : (int)rl.rlim_cur;
}

/* mkdir -p for data_dir. */
static int daemon_make_dirs(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -ENAMETOOLONG;
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0750) < 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0750) < 0 && errno != EEXIST) return -errno;
  struct stat st;
  if (stat(buf, &st) < 0) return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static void daemon_register_metrics(coord_daemon_t *d) {
  coord_metrics_t *m = d->metrics;
  d->m.http_requests = coord_metrics_family(m, "coord_http_requests_total",
                                            "HTTP requests answered, by route and status.",
                                            COORD_METRIC_COUNTER);
  coord_metric_family_t *frames = coord_metrics_family(
      m, "coord_ws_frames_total",
      "WebSocket data messages by direction (a fragmented message counts once).",
      COORD_METRIC_COUNTER);
  coord_metric_family_t *bytes = coord_metrics_family(
      m, "coord_ws_bytes_total", "WebSocket payload bytes by direction.", COORD_METRIC_COUNTER);
  d->m.ws_frames_in = coord_metric_series(frames, (const char *const[]){"direction", "in", NULL});
  d->m.ws_frames_out = coord_metric_series(frames, (const char *const[]){"direction", "out", NULL});
  d->m.ws_bytes_in = coord_metric_series(bytes, (const char *const[]){"direction", "in", NULL});
  d->m.ws_bytes_out = coord_metric_series(bytes, (const char *const[]){"direction", "out", NULL});
  d->m.ws_writes = coord_metric_series(
      coord_metrics_family(m, "coord_ws_writes_total",
                           "Writes handed to the socket layer for WebSocket messages; several "
                           "messages go out in one write when they are ready together.",
                           COORD_METRIC_COUNTER),
      NULL);
  coord_metric_family_t *waits = coord_metrics_family(
      m, "coord_ws_write_waits_total",
      "Eager writes after which the connection had more to send: it waited for the socket "
      "to become writable (a remainder the socket did not take) or for the next loop turn "
      "(more than one budget ready).",
      COORD_METRIC_COUNTER);
  d->m.ws_wait_writable = coord_metric_series(waits, (const char *const[]){"wait", "writable", NULL});
  d->m.ws_wait_next_turn = coord_metric_series(waits, (const char *const[]){"wait", "next_turn", NULL});
  coord_metric_family_t *closed = coord_metrics_family(
      m, "coord_ws_protocol_closes_total",
      "WebSocket connections closed by the server for a protocol violation, by close code.",
      COORD_METRIC_COUNTER);
  d->m.ws_closed_too_big = coord_metric_series(closed, (const char *const[]){"code", "1009", NULL});
  d->m.ws_closed_utf8 = coord_metric_series(closed, (const char *const[]){"code", "1007", NULL});
  coord_metric_family_t *rejected = coord_metrics_family(
      m, "coord_connections_rejected_total",
      "Connections refused: max_connections (answered 503) or fd_limit (closed at once).",
      COORD_METRIC_COUNTER);
  d->m.rejected_max =
      coord_metric_series(rejected, (const char *const[]){"reason", "max_connections", NULL});
  d->m.rejected_fd = coord_metric_series(rejected, (const char *const[]){"reason", "fd_limit", NULL});
  d->m.loop_lag = coord_metric_series(
      coord_metrics_histogram(m, "coord_event_loop_lag_seconds",
                              "How late a 100 ms loop timer fires (event-loop lag).",
                              lag_bounds_us, sizeof lag_bounds_us / sizeof lag_bounds_us[0]),
      NULL);
}

static void daemon_lag_tick(uv_timer_t *t) {
  coord_daemon_t *d = t->data;
  uint64_t now = uv_hrtime();
  uint64_t lag_ns = now > d->lag_due_ns ? now - d->lag_due_ns : 0;
  coord_metric_observe_us(d->m.loop_lag, lag_ns / 1000);
  d->lag_due_ns = uv_hrtime() + (uint64_t)LAG_INTERVAL_MS * 1000000u;
  uv_timer_start(&d->lag_timer, daemon_lag_tick, LAG_INTERVAL_MS, 0);
}

static void daemon_schedule(coord_daemon_t *d, uv_timer_cb cb, uint64_t ms) {
  uv_timer_stop(&d->drain_timer);
  uv_timer_start(&d->drain_timer, cb, ms, 0);
}

static void daemon_start_drain(coord_daemon_t *d, int signum) {
  d->state = COORD_STATE_DRAINING;
  log_info("daemon", "draining", "{s:i,s:I,s:I,s:I}", "signal", signum, "drain_ms",
           (json_int_t)d->cfg->shutdown.drain_ms, "open_connections", (json_int_t)d->open_conns,
           "websockets", (json_int_t)coord_ws_count(d->ws));
  coord__listener_stop(d);
  for (int i = d->ndrain_hooks - 1; i >= 0; i--) d->drain_hooks[i].fn(d, d->drain_hooks[i].ud);
  coord__ws_drain_all(d->ws);
  daemon_schedule(d, daemon_begin_close, d->open_conns == 0 ? 0 : (uint64_t)d->cfg->shutdown.drain_ms);
}

static void daemon_begin_close(uv_timer_t *t) {
  coord_daemon_t *d = t->data;
  if (d->state != COORD_STATE_DRAINING) return;
  d->state = COORD_STATE_CLOSING;
  size_t n = coord_ws_count(d->ws);
  log_info("daemon", "closing websockets", "{s:I}", "websockets", (json_int_t)n);
  coord__ws_close_all(d->ws, COORD_WS_CLOSE_GOING_AWAY, "server shutting down");
  daemon_schedule(d, daemon_finish, n == 0 ? 0 : (uint64_t)d->cfg->shutdown.grace_ms);
}

static void daemon_finish(uv_timer_t *t) {
  coord_daemon_t *d = t->data;
  if (d->state == COORD_STATE_STOPPING) return;
  d->state = COORD_STATE_STOPPING;
  if (coord_ws_count(d->ws))
    log_warn("daemon", "websockets still open after the grace period", "{s:I}", "websockets",
             (json_int_t)coord_ws_count(d->ws));
  coord__listener_stop(d);
  for (int i = d->nstop_hooks - 1; i >= 0; i--) d->stop_hooks[i].fn(d, d->stop_hooks[i].ud);
  /* What the hooks answered (a read or a publish still waiting gets 503) is only queued:
   * lws writes it in a later turn, so it gets one before the connections go. */
  if (d->open_conns > 0) {
    daemon_schedule(d, daemon_destroy, STOP_FLUSH_MS);
    return;
  }
  daemon_destroy(&d->drain_timer);
}

static void daemon_destroy(uv_timer_t *t) {
  coord_daemon_t *d = t->data;
  if (d->destroyed) return;
  d->destroyed = true;
  uv_close((uv_handle_t *)&d->sig_term, NULL);
  uv_close((uv_handle_t *)&d->sig_int, NULL);
  uv_close((uv_handle_t *)&d->lag_timer, NULL);
  uv_close((uv_handle_t *)&d->drain_timer, NULL);
  /* First of the two destroy calls of STACK-NOTES 3(a); the second follows uv_run. */
  lws_context_destroy(d->lws);
}

void coord__daemon_conn_gone(coord_daemon_t *d) {
  if (d->state == COORD_STATE_DRAINING && d->open_conns == 0)
    daemon_schedule(d, daemon_begin_close, 0);
  else if (d->state == COORD_STATE_CLOSING && coord_ws_count(d->ws) == 0)
    daemon_schedule(d, daemon_finish, 0);
  else if (d->state == COORD_STATE_STOPPING && d->open_conns == 0 && !d->destroyed)
    daemon_schedule(d, daemon_destroy, 0);
}

void coord_daemon_on_drain(coord_daemon_t *d, coord_daemon_hook_fn fn, void *ud) {
  if (d->ndrain_hooks == COORD_DAEMON_MAX_HOOKS) abort();
  d->drain_hooks[d->ndrain_hooks].fn = fn;
  d->drain_hooks[d->ndrain_hooks].ud = ud;
  d->ndrain_hooks++;
}

void coord_daemon_on_stop(coord_daemon_t *d, coord_daemon_hook_fn fn, void *ud) {
  if (d->nstop_hooks == COORD_DAEMON_MAX_HOOKS) abort();
  d->stop_hooks[d->nstop_hooks].fn = fn;
  d->stop_hooks[d->nstop_hooks].ud = ud;
  d->nstop_hooks++;
}

void coord_daemon_on_exit(coord_daemon_t *d, coord_daemon_hook_fn fn, void *ud) {
  if (d->nexit_hooks == COORD_DAEMON_MAX_HOOKS) abort();
  d->exit_hooks[d->nexit_hooks].fn = fn;
  d->exit_hooks[d->nexit_hooks].ud = ud;
  d->nexit_hooks++;
}

void coord_daemon_set_ready_check(coord_daemon_t *d, const char *(*fn)(void *ud), void *ud) {
  d->not_ready = fn;
  d->not_ready_ud = ud;
}

static void daemon_on_signal(uv_signal_t *h, int signum) {
  coord_daemon_t *d = h->data;
  d->signals++;
  if (d->signals > 1 || d->state != COORD_STATE_RUNNING) {
    log_warn("daemon", "second signal, exiting now", "{s:i}", "signal", signum);
    _exit(128 + signum);
  }
  daemon_start_drain(d, signum);
}

static int daemon_create_lws(coord_daemon_t *d, uv_loop_t *loop) {
  const coord_config_t *cfg = d->cfg;
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  void *loops[] = {loop};
  unsigned hs_s = (unsigned)((cfg->limits.handshake_timeout_ms + 999) / 1000);
  unsigned idle_s = (unsigned)((cfg->limits.idle_timeout_ms + 999) / 1000);
  if (idle_s > 65535) idle_s = 65535;
  if (idle_s) {
    /* lws pings a WebSocket that has been silent for half the idle time and hangs up when
     * no pong came by the full idle time (a pong or the upgrade count as life). */
    d->idle_policy.secs_since_valid_hangup = (uint16_t)(idle_s < 2 ? 2 : idle_s);
    d->idle_policy.secs_since_valid_ping = (uint16_t)(d->idle_policy.secs_since_valid_hangup / 2);
  }
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_FALLBACK_TO_APPLY_LISTEN_ACCEPT_CONFIG;
  info.foreign_loops = loops;
  info.pcontext = &d->lws;
  info.user = d;
  info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  info.protocols = coord__protocols;
  info.vhost_name = "default";
  info.server_string = "coordinator";
  info.timeout_secs = hs_s;
  info.timeout_secs_ah_idle = hs_s;
  info.keepalive_timeout = idle_s ? (int)idle_s : 3600;
  info.retry_and_idle_policy = &d->idle_policy;
  info.listen_accept_role = "raw-skt";
  info.listen_accept_protocol = "coord-bad-http";
  info.pt_serv_buf_size = 16384;
  /* Request header space, held only while a request's headers are parsed (not per idle
   * connection). lws's default of 4 KiB is too small for a long bearer token. */
  info.max_http_header_data = 8192;
  /* permessage-deflate stays off (STACK-NOTES P8): info.extensions is NULL. */
  d->lws = lws_create_context(&info);
  if (!d->lws) return -EIO;
  d->vhost = lws_get_vhost_by_name(d->lws, "default");
  return d->vhost ? 0 : -EIO;
}

int coord__daemon_run(const coord_config_t *cfg) {
  coord_daemon_t *d = xcalloc(1, sizeof *d);
  uv_loop_t loop;
  int rc;
  d->cfg = cfg;
  d->exit_code = 0;
  d->listener.fd = -1;
  log_set_level(cfg->log_level);
  lws_set_log_level(LLL_ERR | LLL_WARN | (cfg->log_level == LOG_DEBUG ? LLL_NOTICE : 0),
                    daemon_lws_log);
  signal(SIGPIPE, SIG_IGN);

  /* Before lws sizes its fd table from the limit. */
  d->fd_limit = daemon_raise_fd_limit();
  int64_t fd_capacity = d->fd_limit - 64; /* stdio, SQLite, curl, signal pipes, lws */
  if (fd_capacity < 16) fd_capacity = 16;
  d->max_conns = cfg->limits.max_connections < fd_capacity ? cfg->limits.max_connections : fd_capacity;
  log_info("daemon", "file descriptors", "{s:i,s:I,s:I}", "rlimit_nofile", d->fd_limit,
           "connection_capacity", (json_int_t)fd_capacity, "max_connections",
           (json_int_t)d->max_conns);

  rc = daemon_make_dirs(cfg->data_dir);
  if (rc < 0) {
    log_error("daemon", "cannot create data_dir", "{s:s,s:s}", "data_dir", cfg->data_dir,
              "error", strerror(-rc));
    free(d);
    return 1;
  }

  uv_loop_init(&loop);
  d->loop = &loop;
  d->metrics = coord_metrics_new();
  daemon_register_metrics(d);
  d->http = coord__http_new(d);
  d->ws = coord__ws_new(d);
  if (cfg->websocket.own_transport) d->wso = coord__wso_new(d);
  for (size_t i = 0; i < sizeof daemon_modules / sizeof daemon_modules[0]; i++) {
    rc = daemon_modules[i].attach(d);
    if (rc < 0) {
      log_error("daemon", "cannot start a module", "{s:s,s:s}", "module", daemon_modules[i].name,
                "error", strerror(-rc));
      d->exit_code = 1;
      goto fail_stop;
    }
  }
  rc = daemon_create_lws(d, &loop);
  if (rc < 0) {
    log_error("daemon", "cannot start libwebsockets", NULL);
    d->exit_code = 1;
    if (d->lws) lws_context_destroy(d->lws);
    goto fail_stop;
  }
  log_info("daemon", "libwebsockets on the libuv loop", "{s:s}", "lws_version", lws_get_library_version());

  rc = coord__listener_start(d);
  if (rc < 0) {
    log_error("daemon", "cannot listen", "{s:s,s:s}", "listen", cfg->listen, "error", strerror(-rc));
    d->exit_code = 1;
    lws_context_destroy(d->lws);
    goto fail_stop;
  }
  char url[128];
  snprintf(url, sizeof url, strchr(cfg->listen_host, ':') ? "http://[%s]:%d" : "http://%s:%d",
           cfg->listen_host, d->bound_port);
  log_info("daemon", "listening", "{s:s,s:i,s:s,s:s,s:s}", "host", cfg->listen_host, "port",
           d->bound_port, "url", url, "data_dir", cfg->data_dir, "web_root",
           d->web_root_real ? d->web_root_real : "");

  uv_signal_init(&loop, &d->sig_term);
  uv_signal_init(&loop, &d->sig_int);
  d->sig_term.data = d->sig_int.data = d;
  uv_signal_start(&d->sig_term, daemon_on_signal, SIGTERM);
  uv_signal_start(&d->sig_int, daemon_on_signal, SIGINT);
  uv_timer_init(&loop, &d->lag_timer);
  uv_timer_init(&loop, &d->drain_timer);
  d->lag_timer.data = d->drain_timer.data = d;
  d->lag_due_ns = uv_hrtime() + (uint64_t)LAG_INTERVAL_MS * 1000000u;
  uv_timer_start(&d->lag_timer, daemon_lag_tick, LAG_INTERVAL_MS, 0);

  uv_run(&loop, UV_RUN_DEFAULT);
  log_info("daemon", "stopped", "{s:i}", "exit_code", d->exit_code);
  goto out;

fail_stop:
  /* Start-up failed after modules may have opened handles: let them close, and let lws
   * close its own when it was created (first destroy call done above). */
  for (int i = d->nstop_hooks - 1; i >= 0; i--) d->stop_hooks[i].fn(d, d->stop_hooks[i].ud);
  uv_run(&loop, UV_RUN_DEFAULT);
out:
  if (d->lws) lws_context_destroy(d->lws); /* second call: completes the destruction */
  uv_run(&loop, UV_RUN_NOWAIT);
  for (int i = d->nexit_hooks - 1; i >= 0; i--) d->exit_hooks[i].fn(d, d->exit_hooks[i].ud);
  if (uv_loop_close(&loop) != 0) log_warn("daemon", "event loop closed with handles open", NULL);
  coord__wso_free(d->wso);
  coord__ws_free(d->ws);
  coord__http_free(d->http);
  coord_metrics_free(d->metrics);
  free(d->web_root_real);
  int code = d->exit_code;
  free(d);
  return code;
}
