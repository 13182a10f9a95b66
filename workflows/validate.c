/* Validation of a workflow document, top level: the path-tracking context and its field
 * getters, template name checks (which names a template may read where), the document's
 * own fields, inputs and agent profiles. Steps are in steps.c. Every problem becomes an
 * error with the JSON path, the position of the value in the file and the reason;
 * validation goes on after an error so that one load reports everything. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

/* ---- the context ----------------------------------------------------------------- */

void wf__v_push_key(wf__vctx_t *v, const char *key) {
  /* The depth check before parsing bounds how deep the walk goes. */
  if (v->depth < BASE_ARRAY_SIZE(v->path)) v->path[v->depth] = (wf__path_comp_t){.key = key};
  v->depth++;
}

void wf__v_push_index(wf__vctx_t *v, size_t index) {
  if (v->depth < BASE_ARRAY_SIZE(v->path)) v->path[v->depth] = (wf__path_comp_t){.index = index};
  v->depth++;
}

void wf__v_pop(wf__vctx_t *v) { v->depth--; }

static void add_error_at(wf_errors_t *errs, const wf_workflow_t *wf, const wf__path_comp_t *comps,
                         size_t n, const char *reason) {
  int line = 0, column = 0;
  if (wf->text) wf__json_locate(wf->text, wf->text_len, comps, n, &line, &column);
  char *path = wf__path_format(comps, n);
  wf__errors_add(errs, wf->file, path, line, column, "%s", reason);
  free(path);
}

void wf__v_error(wf__vctx_t *v, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *reason = NULL;
  if (vasprintf(&reason, fmt, ap) < 0) abort();
  va_end(ap);
  if (key) wf__v_push_key(v, key);
  size_t n = v->depth < BASE_ARRAY_SIZE(v->path) ? v->depth : BASE_ARRAY_SIZE(v->path);
  add_error_at(v->errs, v->wf, v->path, n, reason);
  if (key) wf__v_pop(v);
  free(reason);
}

void wf__error_at(const wf_workflow_t *wf, const wf__path_comp_t *comps, size_t n,
                  wf_errors_t *errs, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *reason = NULL;
  if (vasprintf(&reason, fmt, ap) < 0) abort();
  va_end(ap);
  add_error_at(errs, wf, comps, n, reason);
  free(reason);
}

void wf__error_at_step(const wf_workflow_t *wf, const wf__step_t *s, const char *field,
                       wf_errors_t *errs, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *reason = NULL;
  if (vasprintf(&reason, fmt, ap) < 0) abort();
  va_end(ap);
  wf__path_comp_t *comps = xcalloc(s->ncomps + 1, sizeof(*comps));
  memcpy(comps, s->comps, s->ncomps * sizeof(*comps));
  size_t n = s->ncomps;
  if (field) comps[n++] = (wf__path_comp_t){.key = field};
  add_error_at(errs, wf, comps, n, reason);
  free(comps);
  free(reason);
}

const char *wf__v_type_name(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

bool wf__v_known_keys(wf__vctx_t *v, const json_t *obj, const char *const *allowed, size_t n) {
  bool ok = true;
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)obj, key, val) {
    size_t i = 0;
    while (i < n && strcmp(allowed[i], key)) i++;
    if (i < n) continue;
    const char *hint = wf__closest(key, allowed, n);
    if (hint)
      wf__v_error(v, key, "unknown field (did you mean %s?)", WF__Q(hint));
    else
      wf__v_error(v, key, "unknown field");
    ok = false;
  }
  return ok;
}

static const json_t *field(wf__vctx_t *v, const json_t *obj, const char *key, bool required) {
  const json_t *f = json_object_get(obj, key);
  if (!f && required) wf__v_error(v, key, "missing required field");
  return f;
}

bool wf__v_string(wf__vctx_t *v, const json_t *obj, const char *key, bool required,
                  const char **out) {
  const json_t *f = field(v, obj, key, required);
  if (!f) return false;
  if (!json_is_string(f)) {
    wf__v_error(v, key, "expected a string, got %s", wf__v_type_name(f));
    return false;
  }
  *out = json_string_value(f);
  return true;
}

bool wf__v_int(wf__vctx_t *v, const json_t *obj, const char *key, bool required, int64_t min,
               int64_t max, int64_t *out) {
  const json_t *f = field(v, obj, key, required);
  if (!f) return false;
  if (!json_is_integer(f)) {
    wf__v_error(v, key, "expected an integer, got %s", wf__v_type_name(f));
    return false;
  }
  json_int_t n = json_integer_value(f);
  if (n < min || n > max) {
    wf__v_error(v, key, "must be from %lld to %lld, got %lld", (long long)min, (long long)max,
                (long long)n);
    return false;
  }
  *out = n;
  return true;
}

bool wf__v_bool(wf__vctx_t *v, const json_t *obj, const char *key, bool *out) {
  const json_t *f = field(v, obj, key, false);
  if (!f) return false;
  if (!json_is_boolean(f)) {
    wf__v_error(v, key, "expected a boolean, got %s", wf__v_type_name(f));
    return false;
  }
  *out = json_is_true(f);
  return true;
}

/* ---- template names -------------------------------------------------------------- */

static bool visible_after(const wf__step_t *s, const char *id) {
  if (s->id && strcmp(s->id, id) == 0) return true;
  if (s->kind != WF_STEP_PARALLEL) return false;
  for (size_t b = 0; b < s->u.parallel.nbranches; b++)
    for (size_t i = 0; i < s->u.parallel.branches[b].n; i++)
      if (visible_after(&s->u.parallel.branches[b].v[i], id)) return true;
  return false;
}

static bool step_visible(const wf__vctx_t *v, const char *id) {
  for (const wf__scope_t *sc = v->scope; sc; sc = sc->up)
    for (size_t i = 0; i < sc->list->n; i++)
      if (visible_after(&sc->list->v[i], id)) return true;
  return false;
}

static bool scope_has(const wf__vctx_t *v, wf__scope_kind_t kind) {
  for (const wf__scope_t *sc = v->scope; sc; sc = sc->up)
    if (sc->kind == kind) return true;
  return false;
}

static void hint_suffix(char *buf, size_t n, const char *hint) {
  if (hint)
    snprintf(buf, n, " (did you mean %s?)", WF__Q(hint));
  else
    buf[0] = '\0';
}

/* Checks one name a template reads; pos_key is the field holding the template (NULL
 * when the path already points at it). */
static void check_ref(wf__vctx_t *v, const char *pos_key, const wf__tmpl_ref_t *r) {
  char hint[WF__QUOTE_SIZE + 32] = "";
  switch (r->root) {
  case WF__ROOT_INPUT: {
    if (!r->name) return;
    const char **names = xcalloc(v->wf->ninputs + 1, sizeof(char *));
    bool found = false;
    for (size_t i = 0; i < v->wf->ninputs; i++) {
      names[i] = v->wf->inputs[i].name;
      if (strcmp(names[i], r->name) == 0) found = true;
    }
    if (!found) {
      hint_suffix(hint, sizeof hint, wf__closest(r->name, names, v->wf->ninputs));
      wf__v_error(v, pos_key, "unknown input %s in {{ %s }}%s", WF__Q(r->name), WF__BARE(r->text),
                  hint);
    }
    free(names);
    return;
  }
  case WF__ROOT_STEPS: {
    if (!r->name || !r->field || strcmp(r->field, "output") != 0) {
      wf__v_error(v, pos_key, "expected steps.<id>.output in {{ %s }}", WF__BARE(r->text));
      return;
    }
    if (v->in_agents) {
      wf__v_error(v, pos_key, "agent profiles cannot read step outputs ({{ %s }})",
                  WF__BARE(r->text));
      return;
    }
    if (step_visible(v, r->name)) return;
    if (!json_object_get(v->ids_all, r->name)) {
      size_t n = json_object_size(v->ids_all), i = 0;
      const char **ids = xcalloc(n + 1, sizeof(char *));
      const char *k;
      json_t *val;
      json_object_foreach(v->ids_all, k, val) ids[i++] = k;
      hint_suffix(hint, sizeof hint, wf__closest(r->name, ids, n));
      free(ids);
      wf__v_error(v, pos_key, "unknown step %s in {{ %s }}%s", WF__Q(r->name), WF__BARE(r->text),
                  hint);
      return;
    }
    if (v->cur_step && strcmp(v->cur_step, r->name) == 0) {
      wf__v_error(v, pos_key, "step %s cannot read its own output in {{ %s }}", WF__Q(r->name),
                  WF__BARE(r->text));
      return;
    }
    for (const wf__scope_t *sc = v->scope; sc; sc = sc->up) {
      if (sc->owner && strcmp(sc->owner, r->name) == 0) {
        wf__v_error(v, pos_key,
                    "step %s encloses this one, its output is not ready in {{ %s }}",
                    WF__Q(r->name), WF__BARE(r->text));
        return;
      }
    }
    wf__v_error(v, pos_key,
                "step %s has not run at this point in {{ %s }} (only earlier steps of "
                "this list and of enclosing lists are visible)",
                WF__Q(r->name), WF__BARE(r->text));
    return;
  }
  case WF__ROOT_ITEM:
  case WF__ROOT_INDEX:
    if (!scope_has(v, WF__SCOPE_MAP))
      wf__v_error(v, pos_key, "{{ %s }} is only defined inside the steps of a map",
                  r->root == WF__ROOT_ITEM ? "item" : "index");
    return;
  case WF__ROOT_ITERATION:
    if (!scope_has(v, WF__SCOPE_LOOP))
      wf__v_error(v, pos_key, "{{ iteration }} is only defined inside a loop");
    return;
  case WF__ROOT_RUN:
    if (r->name && strcmp(r->name, "id") != 0 && strcmp(r->name, "workflow") != 0)
      wf__v_error(v, pos_key, "unknown run field %s in {{ %s }} (expected id or workflow)",
                  WF__Q(r->name), WF__BARE(r->text));
    return;
  }
}

static void check_refs(wf__vctx_t *v, const char *pos_key, const wf__tmpl_t *t) {
  for (size_t i = 0; i < wf__tmpl_ref_count(t); i++) {
    wf__tmpl_ref_t r;
    wf__tmpl_ref_at(t, i, &r);
    check_ref(v, pos_key, &r);
  }
}

bool wf__v_template(wf__vctx_t *v, const json_t *obj, const char *key, bool required,
                    wf__tmpl_t **out) {
  const char *src = NULL;
  if (!wf__v_string(v, obj, key, required, &src)) return false;
  char *err = NULL;
  wf__tmpl_t *t = NULL;
  if (wf__tmpl_compile(src, &t, &err) < 0) {
    wf__v_error(v, key, "bad template: %s", err);
    free(err);
    return false;
  }
  size_t before = wf_errors_count(v->errs);
  check_refs(v, key, t);
  if (wf_errors_count(v->errs) != before) {
    wf__tmpl_free(t);
    return false;
  }
  *out = t;
  return true;
}

static void on_vtmpl(void *arg, const wf__path_comp_t *comps, size_t n, const wf__tmpl_t *t,
                     const char *err) {
  wf__vctx_t *v = arg;
  size_t depth = v->depth;
  for (size_t i = 0; i < n; i++) {
    if (comps[i].key)
      wf__v_push_key(v, comps[i].key);
    else
      wf__v_push_index(v, comps[i].index);
  }
  if (err)
    wf__v_error(v, NULL, "bad template: %s", err);
  else
    check_refs(v, NULL, t);
  v->depth = depth;
}

bool wf__v_vtemplate(wf__vctx_t *v, const json_t *obj, const char *key, bool required,
                     wf__vtmpl_t **out) {
  const json_t *f = field(v, obj, key, required);
  if (!f) return false;
  wf__v_push_key(v, key);
  size_t before = wf_errors_count(v->errs);
  wf__vtmpl_t *vt = NULL;
  int rc = wf__vtmpl_compile(f, &vt, on_vtmpl, v);
  wf__v_pop(v);
  if (rc < 0 || wf_errors_count(v->errs) != before) {
    wf__vtmpl_free(vt);
    return false;
  }
  *out = vt;
  return true;
}

/* ---- inputs and agents ----------------------------------------------------------- */

static bool name_ok(const char *s, bool lower_only, bool ident) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  if (ident && !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (ident ? !(isalnum(c) || c == '_')
              : !(islower(c) || isdigit(c) || c == '_' || c == '-' || (!lower_only && isupper(c))))
      return false;
  }
  return true;
}

static const char *const input_keys[] = {"type", "required", "default", "description"};
static const char *const input_types[] = {"string", "number", "integer", "boolean", "object", "array"};

bool wf__input_type_matches(const char *type, const json_t *j) {
  if (!strcmp(type, "string")) return json_is_string(j);
  if (!strcmp(type, "number")) return json_is_number(j);
  if (!strcmp(type, "integer")) return json_is_integer(j);
  if (!strcmp(type, "boolean")) return json_is_boolean(j);
  if (!strcmp(type, "object")) return json_is_object(j);
  if (!strcmp(type, "array")) return json_is_array(j);
  return false;
}

static void validate_inputs(wf__vctx_t *v, const json_t *inputs) {
  if (!json_is_object(inputs)) {
    wf__v_error(v, NULL, "expected an object of inputs, got %s", wf__v_type_name(inputs));
    return;
  }
  v->wf->inputs = xcalloc(json_object_size(inputs) + 1, sizeof(wf__input_t));
  const char *name;
  json_t *spec;
  json_object_foreach((json_t *)inputs, name, spec) {
    wf__v_push_key(v, name);
    wf__input_t in = {.name = name};
    if (!name_ok(name, false, true))
      wf__v_error(v, NULL, "input names are letters, digits and _ (not starting with a digit)");
    if (!json_is_object(spec)) {
      wf__v_error(v, NULL, "expected an object, got %s", wf__v_type_name(spec));
      wf__v_pop(v);
      continue;
    }
    wf__v_known_keys(v, spec, input_keys, BASE_ARRAY_SIZE(input_keys));
    if (wf__v_string(v, spec, "type", true, &in.type)) {
      size_t i = 0;
      while (i < BASE_ARRAY_SIZE(input_types) && strcmp(input_types[i], in.type)) i++;
      if (i == BASE_ARRAY_SIZE(input_types)) {
        wf__v_error(v, "type",
                    "unknown type %s (expected string, number, integer, boolean, object "
                    "or array)", WF__Q(in.type));
        in.type = NULL;
      }
    }
    wf__v_bool(v, spec, "required", &in.required);
    const char *desc;
    wf__v_string(v, spec, "description", false, &desc);
    in.deflt = json_object_get(spec, "default");
    if (in.deflt && in.type && !wf__input_type_matches(in.type, in.deflt))
      wf__v_error(v, "default", "default must be of type %s, got %s", in.type,
                  wf__v_type_name(in.deflt));
    /* Kept even when invalid (the load fails anyway), so templates reading it do not
     * add "unknown input" errors on top. */
    v->wf->inputs[v->wf->ninputs++] = in;
    wf__v_pop(v);
  }
}

static const char *const providers[] = {"mock", "openai", "anthropic", "ollama"};
static const char *const agent_keys[] = {"provider", "model",    "system",     "params",
                                         "concurrency", "base_url", "api_key_env"};

static void validate_params(wf__vctx_t *v, const json_t *params) {
  if (!json_is_object(params)) {
    wf__v_error(v, NULL, "expected an object, got %s", wf__v_type_name(params));
    return;
  }
  const json_t *t;
  if ((t = json_object_get(params, "temperature")) &&
      (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 2))
    wf__v_error(v, "temperature", "expected a number from 0 to 2");
  if ((t = json_object_get(params, "top_p")) &&
      (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 1))
    wf__v_error(v, "top_p", "expected a number from 0 to 1");
  int64_t n;
  wf__v_int(v, params, "max_tokens", false, 1, 1000000, &n);
  wf__v_int(v, params, "seed", false, INT64_MIN, INT64_MAX, &n);
  if ((t = json_object_get(params, "stop"))) {
    bool ok = json_is_string(t) || json_is_array(t);
    for (size_t i = 0; json_is_array(t) && i < json_array_size(t); i++)
      ok = ok && json_is_string(json_array_get(t, i));
    if (!ok) wf__v_error(v, "stop", "expected a string or an array of strings");
  }
}

/* Keys a workflow may give next to "ref": what the step asks of the model. The endpoint
 * (provider, model, base_url, api_key_env, concurrency) comes from the configuration
 * only, so that switching a workflow from mock to a real endpoint edits no workflow. */
static const char *const ref_keys[] = {"ref", "system", "params"};

/* A {"ref": name, "system"?, "params"?} profile. The workflow's own fields are checked
 * even when refs are unchecked (v->shared NULL); when the ref resolves, the shared
 * profile is kept by reference and its fields are applied: provider, model, base_url,
 * concurrency, api_key_env (read from node at call time), system unless the workflow
 * gives its own, params merged key by key with the workflow's keys winning. */
static void validate_ref(wf__vctx_t *v, const json_t *prof, wf__agent_t *a) {
  const char *k;
  json_t *val;
  json_object_foreach((json_t *)prof, k, val) {
    size_t i = 0;
    while (i < BASE_ARRAY_SIZE(ref_keys) && strcmp(ref_keys[i], k)) i++;
    if (i < BASE_ARRAY_SIZE(ref_keys)) continue;
    size_t j = 0;
    while (j < BASE_ARRAY_SIZE(agent_keys) && strcmp(agent_keys[j], k)) j++;
    if (j < BASE_ARRAY_SIZE(agent_keys))
      wf__v_error(v, k,
                  "comes from the shared profile; next to \"ref\" only \"system\" and "
                  "\"params\" may be given");
    else
      wf__v_error(v, k, "unknown key %s (next to \"ref\" only \"system\" and \"params\")",
                  WF__Q(k));
  }
  bool have_ref = wf__v_string(v, prof, "ref", true, &a->ref);
  v->in_agents = true;
  wf__v_template(v, prof, "system", false, &a->system);
  v->in_agents = false;
  const json_t *own_params = json_object_get(prof, "params");
  if (own_params) {
    wf__v_push_key(v, "params");
    validate_params(v, own_params);
    wf__v_pop(v);
  }
  a->params = own_params;
  if (!have_ref || !v->shared) return; /* refs are checked when the registry loads */
  json_t *shared = json_object_get(v->shared, a->ref);
  if (!json_is_object(shared)) {
    wf__v_error(v, "ref", "unknown shared profile %s", WF__Q(a->ref));
    return;
  }
  a->shared = json_incref(shared);
  a->node = shared;
  a->provider = json_string_value(json_object_get(shared, "provider"));
  a->model = json_string_value(json_object_get(shared, "model"));
  a->base_url = json_string_value(json_object_get(shared, "base_url"));
  a->concurrency = (int)json_integer_value(json_object_get(shared, "concurrency"));
  const json_t *sp = json_object_get(shared, "params");
  if (json_is_object(sp) && json_is_object(own_params)) {
    a->owned_params = json_copy((json_t *)sp);
    json_object_update(a->owned_params, (json_t *)own_params);
    a->params = a->owned_params;
  } else if (!own_params) {
    a->params = sp;
  }
  if (!a->system && json_object_get(shared, "system")) {
    /* Checked by the configuration already; compiled here, where it may read run only
     * (a shared profile serves workflows with different inputs). */
    v->in_agents = true;
    wf__v_template(v, shared, "system", false, &a->system);
    v->in_agents = false;
  }
}

static void validate_agent(wf__vctx_t *v, const char *name, const json_t *prof, wf__agent_t *a) {
  a->name = name;
  a->node = prof;
  if (!name_ok(name, false, false))
    wf__v_error(v, NULL, "profile names are 1 to 64 letters, digits, _ or -");
  if (!json_is_object(prof)) {
    wf__v_error(v, NULL, "expected an object, got %s", wf__v_type_name(prof));
    return;
  }
  if (json_object_get(prof, "ref")) {
    validate_ref(v, prof, a);
    return;
  }
  wf__v_known_keys(v, prof, agent_keys, BASE_ARRAY_SIZE(agent_keys));
  if (wf__v_string(v, prof, "provider", true, &a->provider)) {
    size_t i = 0;
    while (i < BASE_ARRAY_SIZE(providers) && strcmp(providers[i], a->provider)) i++;
    if (i == BASE_ARRAY_SIZE(providers)) {
      wf__v_error(v, "provider",
                  "unknown provider %s (expected mock, openai, anthropic or ollama)",
                  WF__Q(a->provider));
      a->provider = NULL;
    }
  }
  /* Only a known, non-mock provider needs a model; an unknown one was reported. */
  bool need_model = a->provider && strcmp(a->provider, "mock") != 0;
  if (wf__v_string(v, prof, "model", need_model, &a->model) && !a->model[0])
    wf__v_error(v, "model", "must not be empty");
  v->in_agents = true;
  wf__v_template(v, prof, "system", false, &a->system);
  v->in_agents = false;
  if ((a->params = json_object_get(prof, "params"))) {
    wf__v_push_key(v, "params");
    validate_params(v, a->params);
    wf__v_pop(v);
  }
  int64_t n;
  if (wf__v_int(v, prof, "concurrency", false, 1, 1024, &n)) a->concurrency = (int)n;
  if (wf__v_string(v, prof, "base_url", false, &a->base_url) &&
      strncmp(a->base_url, "http://", 7) != 0 && strncmp(a->base_url, "https://", 8) != 0)
    wf__v_error(v, "base_url", "expected an http:// or https:// URL");
  const char *env;
  if (wf__v_string(v, prof, "api_key_env", false, &env)) {
    bool ok = env[0] && !isdigit((unsigned char)env[0]);
    for (const char *c = env; *c; c++) ok = ok && (isupper((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_');
    if (!ok) wf__v_error(v, "api_key_env", "expected an environment variable name (A-Z, 0-9, _)");
  }
}

static void validate_agents(wf__vctx_t *v, const json_t *agents) {
  if (!json_is_object(agents)) {
    wf__v_error(v, NULL, "expected an object of agent profiles, got %s", wf__v_type_name(agents));
    return;
  }
  v->wf->agents = xcalloc(json_object_size(agents) + 1, sizeof(wf__agent_t));
  const char *name;
  json_t *prof;
  json_object_foreach((json_t *)agents, name, prof) {
    wf__v_push_key(v, name);
    validate_agent(v, name, prof, &v->wf->agents[v->wf->nagents++]);
    wf__v_pop(v);
  }
}

/* ---- the document ---------------------------------------------------------------- */

/* Every step id in the document, valid or not, so that a template naming a later step
 * is told so rather than "unknown". */
static void collect_ids(json_t *ids, const json_t *list, int depth) {
  if (!json_is_array(list) || depth > WF_MAX_STEP_DEPTH + 1) return;
  size_t i;
  json_t *s;
  json_array_foreach(list, i, s) {
    const char *id = json_string_value(json_object_get(s, "id"));
    if (id) json_object_set_new(ids, id, json_true());
    collect_ids(ids, json_object_get(s, "steps"), depth + 1);
    collect_ids(ids, json_object_get(s, "default"), depth + 1);
    const json_t *br = json_object_get(s, "branches");
    for (size_t b = 0; json_is_array(br) && b < json_array_size(br); b++)
      collect_ids(ids, json_array_get(br, b), depth + 1);
    const char *k;
    json_t *c;
    const json_t *cases = json_object_get(s, "cases");
    if (json_is_object(cases)) json_object_foreach((json_t *)cases, k, c) collect_ids(ids, c, depth + 1);
  }
}

static const char *const workflow_keys[] = {"$schema", "name",  "description", "inputs",
                                            "agents",  "steps", "output"};

const char *const *wf__names(const char *table, size_t *n) {
  static const struct {
    const char *name;
    const char *const *v;
    size_t n;
  } tables[] = {
      {"workflow", workflow_keys, BASE_ARRAY_SIZE(workflow_keys)},
      {"input", input_keys, BASE_ARRAY_SIZE(input_keys)},
      {"input_type", input_types, BASE_ARRAY_SIZE(input_types)},
      {"agent", agent_keys, BASE_ARRAY_SIZE(agent_keys)},
      {"provider", providers, BASE_ARRAY_SIZE(providers)},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(tables); i++) {
    if (strcmp(tables[i].name, table) == 0) {
      *n = tables[i].n;
      return tables[i].v;
    }
  }
  return wf__step_names(table, n);
}

int wf__validate(wf_workflow_t *wf, const json_t *shared,
                 bool (*has_workflow)(void *arg, const char *name), void *arg,
                 wf_errors_t *errs) {
  wf__vctx_t v = {.wf = wf, .errs = errs, .shared = shared, .has_workflow = has_workflow,
                  .hw_arg = arg, .ids_all = json_object(), .ids_seen = json_object()};
  size_t before = wf_errors_count(errs);
  const json_t *doc = wf->doc;
  if (!json_is_object(doc)) {
    wf__v_error(&v, NULL, "a workflow is a JSON object, got %s", wf__v_type_name(doc));
    goto out;
  }
  wf__v_known_keys(&v, doc, workflow_keys, BASE_ARRAY_SIZE(workflow_keys));
  const char *s;
  wf__v_string(&v, doc, "$schema", false, &s);
  if (wf__v_string(&v, doc, "name", true, &wf->name) && !name_ok(wf->name, true, false)) {
    wf__v_error(&v, "name", "workflow names are 1 to 64 of a-z, 0-9, _ and -");
  }
  wf__v_string(&v, doc, "description", false, &wf->description);
  const json_t *f;
  if ((f = json_object_get(doc, "inputs"))) {
    wf__v_push_key(&v, "inputs");
    validate_inputs(&v, f);
    wf__v_pop(&v);
  }
  if ((f = json_object_get(doc, "agents"))) {
    wf__v_push_key(&v, "agents");
    validate_agents(&v, f);
    wf__v_pop(&v);
  }
  collect_ids(v.ids_all, json_object_get(doc, "steps"), 0);
  wf__v_steps(&v, doc, "steps", WF__SCOPE_LIST, NULL, &wf->steps);
  wf->nsteps_total = v.nsteps;
  if (json_object_get(doc, "output")) {
    wf__scope_t top = {.list = &wf->steps, .kind = WF__SCOPE_LIST};
    v.scope = &top;
    wf__v_vtemplate(&v, doc, "output", false, &wf->output);
    v.scope = NULL;
  }
out:
  json_decref(v.ids_all);
  json_decref(v.ids_seen);
  return wf_errors_count(errs) != before || wf_errors_truncated(errs) ? -EINVAL : 0;
}

void wf__model_free(wf_workflow_t *wf) {
  for (size_t i = 0; i < wf->nagents; i++) {
    wf__tmpl_free(wf->agents[i].system);
    json_decref(wf->agents[i].shared);
    json_decref(wf->agents[i].owned_params);
  }
  free(wf->agents);
  free(wf->inputs);
  wf__steps_free(&wf->steps);
  wf__vtmpl_free(wf->output);
  wf->agents = NULL;
  wf->inputs = NULL;
  wf->output = NULL;
  wf->nagents = wf->ninputs = 0;
}
