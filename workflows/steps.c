/* Validation of steps: the common fields (id, type, timeout_ms, retry, catch), each step
 * kind's fields, nested step lists and the scopes their templates see, and catch
 * targets. Builds the wf__step_t tree the run engine reads. The document-level checks
 * and the field getters are in validate.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

#define MAX_TIMEOUT_MS 604800000 /* ms: 7 days, for approvals that wait on people */
#define MAX_BACKOFF_MS 3600000   /* ms */
#define MAX_BRANCHES 64
#define MAX_ATTEMPTS 20

const char *const wf__step_kind_names[WF_STEP__COUNT] = {
    [WF_STEP_LLM] = "llm",           [WF_STEP_AGENT] = "agent",       [WF_STEP_PARALLEL] = "parallel",
    [WF_STEP_MAP] = "map",           [WF_STEP_SWITCH] = "switch",     [WF_STEP_LOOP] = "loop",
    [WF_STEP_APPROVAL] = "approval", [WF_STEP_WORKFLOW] = "workflow", [WF_STEP_TRANSFORM] = "transform",
};

static const char *const common_keys[] = {"id", "type", "description", "timeout_ms", "retry", "catch"};

#define KIND_MAX_KEYS 4
static const char *const kind_keys[WF_STEP__COUNT][KIND_MAX_KEYS] = {
    [WF_STEP_LLM] = {"agent", "prompt", "output_schema", "stream"},
    [WF_STEP_AGENT] = {"topic", "input", "heartbeat_ms", "group"},
    [WF_STEP_PARALLEL] = {"branches", "join"},
    [WF_STEP_MAP] = {"over", "steps", "concurrency", "tolerated_failures"},
    [WF_STEP_SWITCH] = {"value", "cases", "default"},
    [WF_STEP_LOOP] = {"steps", "max_iterations", "until"},
    [WF_STEP_APPROVAL] = {"prompt"},
    [WF_STEP_WORKFLOW] = {"workflow", "input"},
    [WF_STEP_TRANSFORM] = {"value"},
};

static const char *const retry_keys[] = {"max_attempts", "backoff_ms", "max_backoff_ms",
                                         "jitter", "on", "after_partial_output"};
static const char *const catch_keys[] = {"goto", "action", "output"};
static const char *const retry_classes[] = {"rate_limited", "timeout",     "server_error",
                                            "network",      "invalid_output", "stream_error",
                                            "agent_error",  "any"};

size_t wf__step_keys(wf_step_kind_t kind, const char **out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < BASE_ARRAY_SIZE(common_keys) && n < max; i++) out[n++] = common_keys[i];
  for (size_t i = 0; i < KIND_MAX_KEYS && kind_keys[kind][i] && n < max; i++)
    out[n++] = kind_keys[kind][i];
  return n;
}

const char *const *wf__step_names(const char *table, size_t *n) {
  if (!strcmp(table, "retry")) {
    *n = BASE_ARRAY_SIZE(retry_keys);
    return retry_keys;
  }
  if (!strcmp(table, "catch")) {
    *n = BASE_ARRAY_SIZE(catch_keys);
    return catch_keys;
  }
  if (!strcmp(table, "retry_class")) {
    *n = BASE_ARRAY_SIZE(retry_classes);
    return retry_classes;
  }
  if (!strcmp(table, "step_type")) {
    *n = WF_STEP__COUNT;
    return wf__step_kind_names;
  }
  *n = 0;
  return NULL;
}

static void steps_list(wf__vctx_t *v, const json_t *arr, wf__scope_kind_t kind, const char *owner,
                       wf__steps_t *out);

static bool id_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return false;
  }
  return true;
}

/* A consumer group name (streams.h: STREAM_GROUP_NAME_MAX). */
static bool group_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return false;
  }
  return true;
}

static void default_retry(wf__step_t *s, bool declared) {
  bool remote = s->kind == WF_STEP_LLM || s->kind == WF_STEP_AGENT;
  s->retry = (wf__retry_t){
      .max_attempts = declared || remote ? 3 : 1,
      .backoff_ms = 1000,
      .max_backoff_ms = 30000,
      .jitter = 0.2,
      .on = WF_RETRY_RATE_LIMITED | WF_RETRY_TIMEOUT | WF_RETRY_SERVER_ERROR | WF_RETRY_NETWORK,
  };
}

static void v_retry(wf__vctx_t *v, const json_t *step, wf__step_t *s) {
  const json_t *r = json_object_get(step, "retry");
  default_retry(s, r != NULL);
  if (!r) return;
  wf__v_push_key(v, "retry");
  if (!json_is_object(r)) {
    wf__v_error(v, NULL, "expected an object, got %s", wf__v_type_name(r));
    wf__v_pop(v);
    return;
  }
  wf__v_known_keys(v, r, retry_keys, BASE_ARRAY_SIZE(retry_keys));
  int64_t n;
  if (wf__v_int(v, r, "max_attempts", false, 1, MAX_ATTEMPTS, &n)) s->retry.max_attempts = (int)n;
  wf__v_int(v, r, "backoff_ms", false, 0, MAX_BACKOFF_MS, &s->retry.backoff_ms);
  if (wf__v_int(v, r, "max_backoff_ms", false, 0, MAX_BACKOFF_MS, &s->retry.max_backoff_ms) &&
      s->retry.max_backoff_ms < s->retry.backoff_ms)
    wf__v_error(v, "max_backoff_ms", "must be at least backoff_ms (%lld)",
                (long long)s->retry.backoff_ms);
  const json_t *j = json_object_get(r, "jitter");
  if (json_is_boolean(j)) {
    s->retry.jitter = json_is_true(j) ? 1.0 : 0.0;
  } else if (json_is_number(j) && json_number_value(j) >= 0 && json_number_value(j) <= 1) {
    s->retry.jitter = json_number_value(j);
  } else if (j) {
    wf__v_error(v, "jitter", "expected a number from 0 to 1 or a boolean");
  }
  const json_t *on = json_object_get(r, "on");
  if (on && (!json_is_array(on) || json_array_size(on) == 0)) {
    wf__v_error(v, "on", "expected a non-empty array of error classes");
  } else if (on) {
    s->retry.on = 0;
    wf__v_push_key(v, "on");
    for (size_t i = 0; i < json_array_size(on); i++) {
      const char *c = json_string_value(json_array_get(on, i));
      size_t k = 0;
      while (c && k < BASE_ARRAY_SIZE(retry_classes) && strcmp(c, retry_classes[k])) k++;
      if (c && k < BASE_ARRAY_SIZE(retry_classes)) {
        s->retry.on |= k == BASE_ARRAY_SIZE(retry_classes) - 1 ? (unsigned)WF_RETRY_ANY : 1u << k;
        continue;
      }
      wf__v_push_index(v, i);
      const char *hint = c ? wf__closest(c, retry_classes, BASE_ARRAY_SIZE(retry_classes)) : NULL;
      if (hint)
        wf__v_error(v, NULL, "unknown error class %s (did you mean %s?)", WF__Q(c), WF__Q(hint));
      else
        wf__v_error(v, NULL,
                    "unknown error class (expected rate_limited, timeout, server_error, "
                    "network, invalid_output, stream_error, agent_error or any)");
      wf__v_pop(v);
    }
    wf__v_pop(v);
  }
  wf__v_bool(v, r, "after_partial_output", &s->retry.after_partial_output);
  wf__v_pop(v);
}

static void v_catch(wf__vctx_t *v, const json_t *step, wf__step_t *s) {
  const json_t *c = json_object_get(step, "catch");
  if (!c) return;
  wf__v_push_key(v, "catch");
  if (!json_is_object(c)) {
    wf__v_error(v, NULL, "expected an object, got %s", wf__v_type_name(c));
    goto out;
  }
  wf__v_known_keys(v, c, catch_keys, BASE_ARRAY_SIZE(catch_keys));
  bool has_goto = json_object_get(c, "goto"), has_action = json_object_get(c, "action");
  if (has_goto && has_action) {
    wf__v_error(v, NULL, "use either \"goto\" or \"action\", not both");
    goto out;
  }
  if (!has_goto && !has_action) {
    wf__v_error(v, NULL, "expected \"goto\" (a later step id) or \"action\" (fail or continue)");
    goto out;
  }
  const char *str;
  if (has_goto) {
    if (wf__v_string(v, c, "goto", true, &str)) {
      s->catch_kind = WF_CATCH_GOTO;
      s->catch_goto = str; /* resolved against later siblings by steps_list */
    }
  } else if (wf__v_string(v, c, "action", true, &str)) {
    if (!strcmp(str, "fail")) {
      s->catch_kind = WF_CATCH_FAIL;
    } else if (!strcmp(str, "continue")) {
      s->catch_kind = WF_CATCH_CONTINUE;
    } else {
      wf__v_error(v, "action", "unknown action %s (expected fail or continue)", WF__Q(str));
    }
  }
  if (json_object_get(c, "output")) {
    if (s->catch_kind != WF_CATCH_CONTINUE && has_action)
      wf__v_error(v, "output", "\"output\" needs \"action\": \"continue\"");
    else if (has_goto)
      wf__v_error(v, "output", "\"output\" needs \"action\": \"continue\"");
    else
      wf__v_vtemplate(v, c, "output", false, &s->catch_output);
  }
out:
  wf__v_pop(v);
}

static void v_output_schema(wf__vctx_t *v, const json_t *step, wf__step_t *s) {
  const json_t *schema = json_object_get(step, "output_schema");
  if (!schema) return;
  char *rel = NULL, *err = NULL;
  if (wf__schema_check(schema, &rel, &err) == 0) {
    s->u.llm.output_schema = schema;
    return;
  }
  /* Push the schema-relative path so the error points inside the schema. */
  size_t depth = v->depth;
  wf__v_push_key(v, "output_schema");
  char *keys = xstrdup(rel), *save = NULL;
  for (char *k = strtok_r(keys, ".", &save); k; k = strtok_r(NULL, ".", &save))
    wf__v_push_key(v, k);
  wf__v_error(v, NULL, "%s", err);
  v->depth = depth;
  free(keys);
  free(rel);
  free(err);
}

static const wf__agent_t *find_agent(wf__vctx_t *v, const char *name) {
  for (size_t i = 0; i < v->wf->nagents; i++)
    if (v->wf->agents[i].name && strcmp(v->wf->agents[i].name, name) == 0) return &v->wf->agents[i];
  return NULL;
}

static void v_llm(wf__vctx_t *v, const json_t *o, wf__step_t *s) {
  const char *agent;
  if (wf__v_string(v, o, "agent", true, &agent)) {
    s->u.llm.agent = find_agent(v, agent);
    if (!s->u.llm.agent) {
      const char **names = xcalloc(v->wf->nagents + 1, sizeof(char *));
      for (size_t i = 0; i < v->wf->nagents; i++) names[i] = v->wf->agents[i].name;
      const char *hint = wf__closest(agent, names, v->wf->nagents);
      free(names);
      if (hint)
        wf__v_error(v, "agent", "unknown agent profile %s (did you mean %s?)", WF__Q(agent),
                    WF__Q(hint));
      else if (v->wf->nagents == 0)
        wf__v_error(v, "agent", "unknown agent profile %s (the workflow declares no agents)",
                    WF__Q(agent));
      else
        wf__v_error(v, "agent", "unknown agent profile %s", WF__Q(agent));
    }
  }
  wf__v_template(v, o, "prompt", true, &s->u.llm.prompt);
  v_output_schema(v, o, s);
  s->u.llm.stream = true;
  wf__v_bool(v, o, "stream", &s->u.llm.stream);
}

static void v_parallel(wf__vctx_t *v, const json_t *o, wf__step_t *s) {
  const json_t *br = json_object_get(o, "branches");
  if (!br) {
    wf__v_error(v, "branches", "missing required field");
  } else if (!json_is_array(br) || json_array_size(br) == 0 || json_array_size(br) > MAX_BRANCHES) {
    wf__v_error(v, "branches", "expected an array of 1 to %d step lists", MAX_BRANCHES);
  } else {
    s->u.parallel.branches = xcalloc(json_array_size(br), sizeof(wf__steps_t));
    wf__v_push_key(v, "branches");
    for (size_t b = 0; b < json_array_size(br); b++) {
      wf__v_push_index(v, b);
      steps_list(v, json_array_get(br, b), WF__SCOPE_LIST, s->id, &s->u.parallel.branches[b]);
      s->u.parallel.nbranches++;
      wf__v_pop(v);
    }
    wf__v_pop(v);
  }
  const char *join;
  if (wf__v_string(v, o, "join", false, &join)) {
    if (!strcmp(join, "any"))
      s->u.parallel.join_any = true;
    else if (strcmp(join, "all") != 0)
      wf__v_error(v, "join", "unknown join %s (expected all or any)", WF__Q(join));
  }
}

static void v_map(wf__vctx_t *v, const json_t *o, wf__step_t *s) {
  if (wf__v_template(v, o, "over", true, &s->u.map.over) && !wf__tmpl_is_whole(s->u.map.over))
    wf__v_error(v, "over", "must be a single {{ expression }} that yields a list");
  wf__v_steps(v, o, "steps", WF__SCOPE_MAP, s->id, &s->u.map.steps);
  int64_t n;
  s->u.map.concurrency = 4;
  if (wf__v_int(v, o, "concurrency", false, 1, WF_MAX_MAP_CONCURRENCY, &n)) s->u.map.concurrency = (int)n;
  if (wf__v_int(v, o, "tolerated_failures", false, 0, 1000000, &n)) s->u.map.tolerated_failures = (int)n;
}

static void v_switch(wf__vctx_t *v, const json_t *o, wf__step_t *s) {
  wf__v_template(v, o, "value", true, &s->u.sw.value);
  const json_t *cases = json_object_get(o, "cases");
  if (!cases) {
    wf__v_error(v, "cases", "missing required field");
  } else if (!json_is_object(cases) || json_object_size(cases) == 0) {
    wf__v_error(v, "cases", "expected an object of {value: steps} with at least one case");
  } else {
    s->u.sw.cases = xcalloc(json_object_size(cases), sizeof(wf__case_t));
    wf__v_push_key(v, "cases");
    const char *k;
    json_t *list;
    json_object_foreach((json_t *)cases, k, list) {
      wf__case_t *c = &s->u.sw.cases[s->u.sw.ncases++];
      c->value = k;
      wf__v_push_key(v, k);
      steps_list(v, list, WF__SCOPE_LIST, s->id, &c->steps);
      wf__v_pop(v);
    }
    wf__v_pop(v);
  }
  if (json_object_get(o, "default")) {
    s->u.sw.has_default = true;
    wf__v_steps(v, o, "default", WF__SCOPE_LIST, s->id, &s->u.sw.deflt);
  }
}

static void v_loop(wf__vctx_t *v, const json_t *o, wf__step_t *s) {
  int64_t n;
  if (wf__v_int(v, o, "max_iterations", true, 1, WF_MAX_LOOP_ITERATIONS, &n))
    s->u.loop.max_iterations = (int)n;
  wf__v_steps(v, o, "steps", WF__SCOPE_LOOP, s->id, &s->u.loop.steps);
  /* until runs after the body: every body step is visible, as is iteration. */
  wf__scope_t body = {.up = v->scope, .list = &s->u.loop.steps, .kind = WF__SCOPE_LOOP, .owner = s->id};
  v->scope = &body;
  wf__v_template(v, o, "until", false, &s->u.loop.until);
  v->scope = body.up;
}

static void v_workflow(wf__vctx_t *v, const json_t *o, wf__step_t *s) {
  const char *name;
  if (wf__v_string(v, o, "workflow", true, &name)) {
    s->u.workflow.name = name;
    if (v->wf->name && strcmp(name, v->wf->name) == 0)
      wf__v_error(v, "workflow", "a workflow cannot run itself");
    else if (v->has_workflow && !v->has_workflow(v->hw_arg, name))
      wf__v_error(v, "workflow", "unknown workflow %s", WF__Q(name));
  }
  wf__v_vtemplate(v, o, "input", false, &s->u.workflow.input);
}

static void v_kind(wf__vctx_t *v, const json_t *o, wf__step_t *s) {
  int64_t n;
  switch (s->kind) {
  case WF_STEP_LLM: v_llm(v, o, s); break;
  case WF_STEP_AGENT:
    wf__v_template(v, o, "topic", true, &s->u.agent.topic);
    wf__v_vtemplate(v, o, "input", false, &s->u.agent.input);
    if (wf__v_int(v, o, "heartbeat_ms", false, 100, MAX_BACKOFF_MS, &n)) s->u.agent.heartbeat_ms = n;
    if (wf__v_string(v, o, "group", false, &s->u.agent.group) && !group_name_ok(s->u.agent.group))
      wf__v_error(v, "group", "must match [A-Za-z0-9_.-]{1,64}");
    break;
  case WF_STEP_PARALLEL: v_parallel(v, o, s); break;
  case WF_STEP_MAP: v_map(v, o, s); break;
  case WF_STEP_SWITCH: v_switch(v, o, s); break;
  case WF_STEP_LOOP: v_loop(v, o, s); break;
  case WF_STEP_APPROVAL: wf__v_template(v, o, "prompt", true, &s->u.approval.prompt); break;
  case WF_STEP_WORKFLOW: v_workflow(v, o, s); break;
  case WF_STEP_TRANSFORM: wf__v_vtemplate(v, o, "value", true, &s->u.transform.value); break;
  case WF_STEP__COUNT: break;
  }
}

/* Validates one step object at the current path into s (zeroed by the caller). An
 * unknown type leaves s->kind at WF_STEP__COUNT, and only the common fields are read. */
static void v_step(wf__vctx_t *v, const json_t *o, wf__step_t *s) {
  s->kind = WF_STEP__COUNT;
  s->path = wf__path_format(v->path, v->depth);
  s->ncomps = v->depth;
  s->comps = xcalloc(v->depth + 1, sizeof(wf__path_comp_t));
  memcpy(s->comps, v->path, v->depth * sizeof(wf__path_comp_t));
  s->node = o;
  if (!json_is_object(o)) {
    wf__v_error(v, NULL, "expected a step object, got %s", wf__v_type_name(o));
    return;
  }
  if (v->nsteps++ == WF_MAX_STEPS) wf__v_error(v, NULL, "too many steps (limit %d)", WF_MAX_STEPS);
  const char *id;
  if (wf__v_string(v, o, "id", true, &id)) {
    if (!id_ok(id)) {
      wf__v_error(v, "id", "step ids are 1 to 64 letters, digits, _ or -");
    } else if (json_object_get(v->ids_seen, id)) {
      wf__v_error(v, "id", "duplicate step id %s (first defined at %s)", WF__Q(id),
                  json_string_value(json_object_get(v->ids_seen, id)));
    } else {
      json_object_set_new(v->ids_seen, id, json_string(s->path));
      s->id = id;
    }
  }
  const char *type;
  if (wf__v_string(v, o, "type", true, &type)) {
    int k = 0;
    while (k < WF_STEP__COUNT && strcmp(type, wf__step_kind_names[k])) k++;
    if (k == WF_STEP__COUNT) {
      const char *hint = wf__closest(type, wf__step_kind_names, WF_STEP__COUNT);
      if (hint)
        wf__v_error(v, "type", "unknown step type %s (did you mean %s?)", WF__Q(type), WF__Q(hint));
      else
        wf__v_error(v, "type",
                    "unknown step type %s (expected llm, agent, parallel, map, switch, "
                    "loop, approval, workflow or transform)", WF__Q(type));
    }
    s->kind = (wf_step_kind_t)k;
  }
  const char *allowed[BASE_ARRAY_SIZE(common_keys) + KIND_MAX_KEYS];
  size_t nallowed = s->kind < WF_STEP__COUNT
                        ? wf__step_keys(s->kind, allowed, BASE_ARRAY_SIZE(allowed))
                        : 0;
  if (nallowed) wf__v_known_keys(v, o, allowed, nallowed);
  const char *desc;
  wf__v_string(v, o, "description", false, &desc);
  wf__v_int(v, o, "timeout_ms", false, 1, MAX_TIMEOUT_MS, &s->timeout_ms);
  const char *saved = v->cur_step;
  v->cur_step = s->id;
  v_retry(v, o, s);
  v_catch(v, o, s);
  if (s->kind < WF_STEP__COUNT) v_kind(v, o, s);
  v->cur_step = saved;
}

static const wf__step_t *find_sibling(const wf__steps_t *list, size_t from, const char *id) {
  for (size_t j = from; j < list->n; j++)
    if (list->v[j].id && strcmp(list->v[j].id, id) == 0) return &list->v[j];
  return NULL;
}

static void steps_list(wf__vctx_t *v, const json_t *arr, wf__scope_kind_t kind, const char *owner,
                       wf__steps_t *out) {
  if (!json_is_array(arr)) {
    wf__v_error(v, NULL, "expected an array of steps, got %s", wf__v_type_name(arr));
    return;
  }
  if (json_array_size(arr) == 0) {
    wf__v_error(v, NULL, "must contain at least one step");
    return;
  }
  if (v->step_depth >= WF_MAX_STEP_DEPTH) {
    wf__v_error(v, NULL, "steps nested deeper than %d levels", WF_MAX_STEP_DEPTH);
    return;
  }
  out->v = xcalloc(json_array_size(arr), sizeof(wf__step_t));
  wf__scope_t frame = {.up = v->scope, .list = out, .kind = kind, .owner = owner};
  v->scope = &frame;
  v->step_depth++;
  for (size_t i = 0; i < json_array_size(arr); i++) {
    wf__v_push_index(v, i);
    /* Built in place; counted (and so visible to later steps) once finished. */
    v_step(v, json_array_get(arr, i), &out->v[out->n]);
    out->n++;
    wf__v_pop(v);
  }
  v->step_depth--;
  v->scope = frame.up;
  for (size_t i = 0; i < out->n; i++) {
    const wf__step_t *s = &out->v[i];
    if (s->catch_kind != WF_CATCH_GOTO || find_sibling(out, i + 1, s->catch_goto)) continue;
    wf__v_push_index(v, i);
    wf__v_push_key(v, "catch");
    if (find_sibling(out, 0, s->catch_goto) || json_object_get(v->ids_all, s->catch_goto))
      wf__v_error(v, "goto", "step %s is not a later step of the same list", WF__Q(s->catch_goto));
    else
      wf__v_error(v, "goto", "unknown step %s", WF__Q(s->catch_goto));
    wf__v_pop(v);
    wf__v_pop(v);
  }
}

void wf__v_steps(wf__vctx_t *v, const json_t *obj, const char *key, wf__scope_kind_t kind,
                 const char *owner, wf__steps_t *out) {
  const json_t *arr = json_object_get(obj, key);
  if (!arr) {
    wf__v_error(v, key, "missing required field");
    return;
  }
  wf__v_push_key(v, key);
  steps_list(v, arr, kind, owner, out);
  wf__v_pop(v);
}

static void step_free(wf__step_t *s) {
  free(s->path);
  free(s->comps);
  wf__vtmpl_free(s->catch_output);
  switch (s->kind) {
  case WF_STEP_LLM: wf__tmpl_free(s->u.llm.prompt); break;
  case WF_STEP_AGENT:
    wf__tmpl_free(s->u.agent.topic);
    wf__vtmpl_free(s->u.agent.input);
    break;
  case WF_STEP_PARALLEL:
    for (size_t b = 0; b < s->u.parallel.nbranches; b++) wf__steps_free(&s->u.parallel.branches[b]);
    free(s->u.parallel.branches);
    break;
  case WF_STEP_MAP:
    wf__tmpl_free(s->u.map.over);
    wf__steps_free(&s->u.map.steps);
    break;
  case WF_STEP_SWITCH:
    wf__tmpl_free(s->u.sw.value);
    for (size_t c = 0; c < s->u.sw.ncases; c++) wf__steps_free(&s->u.sw.cases[c].steps);
    free(s->u.sw.cases);
    wf__steps_free(&s->u.sw.deflt);
    break;
  case WF_STEP_LOOP:
    wf__steps_free(&s->u.loop.steps);
    wf__tmpl_free(s->u.loop.until);
    break;
  case WF_STEP_APPROVAL: wf__tmpl_free(s->u.approval.prompt); break;
  case WF_STEP_WORKFLOW: wf__vtmpl_free(s->u.workflow.input); break;
  case WF_STEP_TRANSFORM: wf__vtmpl_free(s->u.transform.value); break;
  case WF_STEP__COUNT: break;
  }
}

void wf__steps_free(wf__steps_t *steps) {
  for (size_t i = 0; i < steps->n; i++) step_free(&steps->v[i]);
  free(steps->v);
  steps->v = NULL;
  steps->n = 0;
}

void wf__steps_walk(const wf__steps_t *steps, void (*fn)(void *arg, const wf__step_t *s), void *arg) {
  for (size_t i = 0; i < steps->n; i++) {
    const wf__step_t *s = &steps->v[i];
    fn(arg, s);
    switch (s->kind) {
    case WF_STEP_PARALLEL:
      for (size_t b = 0; b < s->u.parallel.nbranches; b++) wf__steps_walk(&s->u.parallel.branches[b], fn, arg);
      break;
    case WF_STEP_MAP: wf__steps_walk(&s->u.map.steps, fn, arg); break;
    case WF_STEP_SWITCH:
      for (size_t c = 0; c < s->u.sw.ncases; c++) wf__steps_walk(&s->u.sw.cases[c].steps, fn, arg);
      wf__steps_walk(&s->u.sw.deflt, fn, arg);
      break;
    case WF_STEP_LOOP: wf__steps_walk(&s->u.loop.steps, fn, arg); break;
    default: break;
    }
  }
}
