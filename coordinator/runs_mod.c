/* The runs module of the daemon: creates the agent client (model endpoints) on the daemon
 * loop from the providers.* and model_calls.* keys, loads the workflow registry from
 * workflows_dir (each invalid file's errors are logged and the daemon starts without it),
 * creates the run engine on the streams hub and store and resumes the unfinished runs,
 * reloads the registry on SIGHUP (logging what changed), copies the engine's and the
 * client's statistics into /metrics, and stops the engine before the hub drains. It owns
 * no route: runs_http.c does. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "runs_glue.h"

/* ---- the registry ---- */

/* One log line per validation error, worded like `coordinator validate` prints it. */
static void runs_log_errors(const wf_errors_t *errs) {
  for (size_t i = 0; i < wf_errors_count(errs); i++) {
    const wf_error_t *e = wf_errors_at(errs, i);
    char where[64] = "";
    if (e->line > 0) snprintf(where, sizeof where, ":%d:%d", e->line, e->column);
    char *text =
        xasprintf("%s%s: %s%s%s", e->file, where, e->path, e->path[0] ? ": " : "", e->reason);
    log_error("runs", "invalid workflow file left out", "{s:s,s:s,s:s,s:i,s:i,s:s}", "error", text,
              "file", e->file, "path", e->path, "line", e->line, "column", e->column, "reason",
              e->reason);
    free(text);
  }
  if (wf_errors_truncated(errs))
    log_error("runs", "more workflow errors were omitted", "{s:i}", "max", WF_MAX_ERRORS);
}

/* Files named by errs, as a set {file: true} (new reference). */
static json_t *runs_error_files(const wf_errors_t *errs) {
  json_t *files = json_object();
  for (size_t i = 0; i < wf_errors_count(errs); i++) {
    const wf_error_t *e = wf_errors_at(errs, i);
    if (e->file[0]) json_object_set_new(files, e->file, json_true());
  }
  return files;
}

/* Loads the folder; *errs receives the errors (or NULL). Never returns NULL. */
static wf_registry_t *runs_load(coord_runs_t *r, wf_errors_t **errs, int *folder_rc) {
  const coord_config_t *cfg = r->d->cfg;
  wf_registry_t *reg = NULL;
  *errs = NULL;
  int rc = wf_registry_load_dir(cfg->workflows_dir, cfg->agents, &reg, errs);
  *folder_rc = 0;
  if (rc < 0 && rc != -EINVAL) {
    *folder_rc = rc;
    log_error("runs", "cannot read the workflows folder", "{s:s,s:s}", "workflows_dir",
              cfg->workflows_dir, "error", strerror(-rc));
    wf_registry_free(reg);
    reg = NULL;
  }
  if (!reg) reg = wf_registry_new(cfg->agents);
  runs_log_errors(*errs);
  return reg;
}

wf_registry_t *coord__runs_load_registry(coord_runs_t *r, size_t *rejected, int *folder_rc) {
  wf_errors_t *errs;
  wf_registry_t *reg = runs_load(r, &errs, folder_rc);
  json_t *files = runs_error_files(errs);
  *rejected = json_object_size(files);
  json_decref(files);
  wf_errors_free(errs);
  return reg;
}

static json_t *runs_names(const wf_registry_t *reg) {
  json_t *names = json_array();
  for (size_t i = 0; i < wf_registry_count(reg); i++)
    json_array_append_new(names, json_string(wf_workflow_name(wf_registry_at(reg, i))));
  return names;
}

/* SIGHUP: a new registry from the folder replaces the old one for new runs; running runs
 * keep the workflows they hold. A file that now fails validation keeps its previous
 * version in service (a typo must not take a workflow away); a file that is gone takes
 * its workflow with it. When the folder cannot be read at all, nothing changes. */
static void runs_reload(coord_runs_t *r) {
  wf_errors_t *errs;
  int folder_rc;
  wf_registry_t *reg = runs_load(r, &errs, &folder_rc);
  r->reloads++;
  if (folder_rc < 0) {
    r->reload_failures++;
    log_warn("runs", "reload failed: the loaded workflows stay in service", "{s:I}", "loaded",
             (json_int_t)wf_registry_count(r->registry));
    wf_registry_free(reg);
    wf_errors_free(errs);
    return;
  }
  json_t *bad_files = runs_error_files(errs);
  json_t *added = json_array(), *removed = json_array(), *changed = json_array(),
         *kept = json_array();
  for (size_t i = 0; i < wf_registry_count(reg); i++) {
    wf_workflow_t *wf = wf_registry_at(reg, i);
    wf_workflow_t *old = wf_registry_find(r->registry, wf_workflow_name(wf));
    if (!old)
      json_array_append_new(added, json_string(wf_workflow_name(wf)));
    else if (!json_equal(wf_workflow_doc(old), wf_workflow_doc(wf)))
      json_array_append_new(changed, json_string(wf_workflow_name(wf)));
  }
  for (size_t i = 0; i < wf_registry_count(r->registry); i++) {
    wf_workflow_t *old = wf_registry_at(r->registry, i);
    const char *name = wf_workflow_name(old);
    if (wf_registry_find(reg, name)) continue;
    if (json_object_get(bad_files, wf_workflow_file(old)) && wf_registry_add(reg, old) == 0)
      json_array_append_new(kept, json_string(name));
    else
      json_array_append_new(removed, json_string(name));
  }
  r->rejected_files = json_object_size(bad_files);
  json_decref(bad_files);
  wf_errors_free(errs);

  wf_registry_t *old_reg = r->registry;
  r->registry = reg;
  if (r->engine) wf_engine_set_registry(r->engine, reg);
  wf_registry_free(old_reg);
  /* "O" borrows: the macro skips json_pack entirely below the log threshold, so the
   * arrays are released here either way. */
  log_info("runs", "workflows reloaded", "{s:I,s:O,s:O,s:O,s:O,s:I}", "loaded",
           (json_int_t)wf_registry_count(reg), "added", added, "removed", removed, "changed",
           changed, "kept_previous", kept, "rejected_files", (json_int_t)r->rejected_files);
  json_decref(added);
  json_decref(removed);
  json_decref(changed);
  json_decref(kept);
}

static void runs_on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  coord_runs_t *r = h->data;
  if (r->d->state != COORD_STATE_RUNNING) return;
  log_info("runs", "SIGHUP: reloading workflows", "{s:s}", "workflows_dir",
           r->d->cfg->workflows_dir);
  runs_reload(r);
}

/* ---- configuration ---- */

static void runs_client_config(const coord_config_t *cfg, agent_client_config_t *ac) {
  static const agent_provider_t ids[COORD_PROVIDERS] = {
      [COORD_PROVIDER_OPENAI] = AGENT_PROVIDER_OPENAI,
      [COORD_PROVIDER_ANTHROPIC] = AGENT_PROVIDER_ANTHROPIC,
      [COORD_PROVIDER_OLLAMA] = AGENT_PROVIDER_OLLAMA,
  };
  memset(ac, 0, sizeof *ac);
  for (int i = 0; i < COORD_PROVIDERS; i++) {
    const coord_provider_config_t *p = &cfg->providers[i];
    agent_provider_config_t *out = &ac->providers[ids[i]];
    out->base_url = p->base_url[0] ? p->base_url : NULL;
    out->api_key_env = p->api_key_env[0] ? p->api_key_env : NULL;
    out->headers = json_object_size(p->headers) ? p->headers : NULL;
    out->concurrency = (int)p->concurrency;
  }
  ac->connect_timeout_ms = cfg->model_calls.connect_timeout_ms;
  ac->default_idle_timeout_ms = cfg->model_calls.idle_timeout_ms;
  ac->max_calls = (size_t)cfg->model_calls.max_calls;
}

/* ---- metrics ---- */

static void runs_set(coord_metrics_t *m, const char *name, const char *help,
                     coord_metric_type_t type, const char *const *labels, double v) {
  coord_metric_set(coord_metric_series(coord_metrics_family(m, name, help, type), labels), v);
}

static void runs_collect(coord_metrics_t *m, void *ud) {
  coord_runs_t *r = ud;
  runs_set(m, "coord_workflows_loaded", "Workflows new runs can start.", COORD_METRIC_GAUGE, NULL,
           (double)wf_registry_count(r->registry));
  runs_set(m, "coord_workflow_files_rejected", "Workflow files left out by the last load.",
           COORD_METRIC_GAUGE, NULL, (double)r->rejected_files);
  runs_set(m, "coord_workflow_reloads_total", "SIGHUP reloads of the workflows folder, by result.",
           COORD_METRIC_COUNTER, (const char *const[]){"result", "ok", NULL},
           (double)(r->reloads - r->reload_failures));
  runs_set(m, "coord_workflow_reloads_total", NULL, COORD_METRIC_COUNTER,
           (const char *const[]){"result", "failed", NULL}, (double)r->reload_failures);
  if (!r->engine) return; /* stopped: the last values stay */
  wf_engine_stats_t st;
  wf_engine_stats(r->engine, &st);
  runs_set(m, "coord_runs_active", "Runs executing in this process.", COORD_METRIC_GAUGE, NULL,
           (double)st.runs_active);
  runs_set(m, "coord_runs_max", "runs.max_runs: runs that may execute at once.", COORD_METRIC_GAUGE,
           NULL, (double)r->d->cfg->runs.max_runs);
  const struct {
    const char *event;
    uint64_t v;
  } ev[] = {{"started", st.runs_started},
            {"resumed", st.runs_resumed},
            {"completed", st.runs_completed},
            {"failed", st.runs_failed},
            {"cancelled", st.runs_cancelled}};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(ev); i++)
    runs_set(m, "coord_runs_total",
             "Runs by what happened to them: started, resumed after a restart, and how they "
             "ended.",
             COORD_METRIC_COUNTER, (const char *const[]){"event", ev[i].event, NULL},
             (double)ev[i].v);
  runs_set(m, "coord_run_steps_started_total", "Step attempts started.", COORD_METRIC_COUNTER, NULL,
           (double)st.steps_started);
  runs_set(m, "coord_run_step_retries_total", "Step attempts retried after a failure.",
           COORD_METRIC_COUNTER, NULL, (double)st.step_retries);
  runs_set(m, "coord_run_token_deltas_total", "Token deltas received from model endpoints.",
           COORD_METRIC_COUNTER, NULL, (double)st.token_deltas);
  runs_set(m, "coord_run_token_events_total",
           "token events published (deltas coalesced over runs.token_coalesce_ms).",
           COORD_METRIC_COUNTER, NULL, (double)st.token_events);
  runs_set(m, "coord_run_publish_errors_total", "Run events the hub refused for good.",
           COORD_METRIC_COUNTER, NULL, (double)st.publish_errors);
  const struct {
    const char *event;
    uint64_t v;
  } tk[] = {{"offered", st.tasks_offered},
            {"answered", st.task_results},
            {"rejected", st.task_rejected},
            {"heartbeat_missed", st.task_heartbeat_misses}};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(tk); i++)
    runs_set(m, "coord_agent_tasks_total",
             "External agent tasks: offered on a coordination topic, answered (result or error "
             "taken by a step), rejected (HTTP results for unknown or finished tasks), and "
             "attempts failed for a missed heartbeat.",
             COORD_METRIC_COUNTER, (const char *const[]){"event", tk[i].event, NULL},
             (double)tk[i].v);
  agent_client_stats_t as;
  agent_client_stats(r->agents, &as);
  const char *help = "Model calls holding a concurrency slot (running) or waiting for one.";
  runs_set(m, "coord_model_calls", help, COORD_METRIC_GAUGE,
           (const char *const[]){"state", "running", NULL}, (double)as.running);
  runs_set(m, "coord_model_calls", help, COORD_METRIC_GAUGE,
           (const char *const[]){"state", "queued", NULL}, (double)as.queued);
  runs_set(m, "coord_model_calls_started_total", "Model calls that left the queue.",
           COORD_METRIC_COUNTER, NULL, (double)as.started);
  runs_set(m, "coord_model_calls_failed_total", "Model calls that ended with an error.",
           COORD_METRIC_COUNTER, NULL, (double)as.failed);
}

/* ---- daemon hooks ---- */

/* Engine first (it cancels its model calls and drops its publishes), then the client. */
static void runs_stop_engine(coord_runs_t *r) {
  if (r->engine) {
    wf_engine_stats_t st;
    wf_engine_stats(r->engine, &st);
    log_info("runs", "engine stopped; unfinished runs resume at the next start", "{s:I}",
             "runs_active", (json_int_t)st.runs_active);
  }
  wf_engine_free(r->engine);
  r->engine = NULL;
  agent_client_free(r->agents);
  r->agents = NULL;
}

static void runs_on_drain(coord_daemon_t *d, void *ud) {
  (void)d;
  runs_stop_engine(ud);
}

static void runs_on_stop(coord_daemon_t *d, void *ud) {
  (void)d;
  coord_runs_t *r = ud;
  runs_stop_engine(r);
  if (r->sighup_started) {
    uv_signal_stop(&r->sighup);
    uv_close((uv_handle_t *)&r->sighup, NULL);
    r->sighup_started = false;
  }
}

static void runs_on_exit(coord_daemon_t *d, void *ud) {
  (void)d;
  coord_runs_t *r = ud;
  wf_registry_free(r->registry);
  free(r);
}

int coord__runs_attach(coord_daemon_t *d) {
  const coord_config_t *cfg = d->cfg;
  if (!d->streams_hub || !d->streams_store) {
    log_error("runs", "the runs module needs the streams module", NULL);
    return -EINVAL;
  }
  coord_runs_t *r = xcalloc(1, sizeof *r);
  r->d = d;
  r->jwt.secret = (const unsigned char *)cfg->auth.jwt_secret;
  r->jwt.secret_len = strlen(cfg->auth.jwt_secret);
  r->jwt.leeway_s = COORD_AUTH_LEEWAY_DEFAULT_S;
  /* From here the hooks own r: a failure below still ends in runs_on_exit. */
  coord_daemon_on_drain(d, runs_on_drain, r);
  coord_daemon_on_stop(d, runs_on_stop, r);
  coord_daemon_on_exit(d, runs_on_exit, r);

  size_t rejected;
  int folder_rc;
  r->registry = coord__runs_load_registry(r, &rejected, &folder_rc);
  r->rejected_files = rejected;
  json_t *names = runs_names(r->registry);
  log_info("runs", "workflows loaded", "{s:s,s:I,s:O,s:I,s:I}", "workflows_dir", cfg->workflows_dir,
           "loaded", (json_int_t)wf_registry_count(r->registry), "names", names, "rejected_files",
           (json_int_t)rejected, "shared_profiles", (json_int_t)json_object_size(cfg->agents));
  json_decref(names);

  agent_client_config_t ac;
  runs_client_config(cfg, &ac);
  int rc = agent_client_new(d->loop, &ac, &r->agents);
  if (rc < 0) {
    log_error("runs", "cannot create the model client", "{s:s}", "error", strerror(-rc));
    return rc;
  }
  wf_engine_config_t ec = {
      .token_coalesce_ms = cfg->runs.token_coalesce_ms ? cfg->runs.token_coalesce_ms : -1,
      .default_tenant = cfg->runs.default_tenant,
      .max_runs = (size_t)cfg->runs.max_runs,
  };
  wf_engine_options_t eo = {
      .loop = d->loop,
      .store = d->streams_store,
      .hub = d->streams_hub,
      .agents = r->agents,
      .registry = r->registry,
      .config = &ec,
  };
  rc = wf_engine_new(&eo, &r->engine);
  if (rc < 0) {
    log_error("runs", "cannot create the run engine", "{s:s}", "error", strerror(-rc));
    return rc;
  }
  size_t resumed = 0;
  rc = wf_engine_resume(r->engine, &resumed);
  if (rc < 0) {
    log_error("runs", "cannot resume the unfinished runs", "{s:s}", "error", strerror(-rc));
    return rc;
  }
  log_info("runs", "run engine started", "{s:I,s:I,s:I,s:s}", "resumed", (json_int_t)resumed,
           "max_runs", (json_int_t)cfg->runs.max_runs, "token_coalesce_ms",
           (json_int_t)cfg->runs.token_coalesce_ms, "default_tenant", cfg->runs.default_tenant);

  coord_metrics_on_collect(d->metrics, runs_collect, r);
  rc = coord__runs_http_register(r);
  if (rc == 0) rc = coord__tasks_http_register(r);
  if (rc < 0) return rc;

  uv_signal_init(d->loop, &r->sighup);
  r->sighup.data = r;
  uv_signal_start(&r->sighup, runs_on_sighup, SIGHUP);
  uv_unref((uv_handle_t *)&r->sighup);
  r->sighup_started = true;
  return 0;
}
