/* What each step kind does inside one attempt, except llm (run_llm.c) and agent
 * (run_agent.c): transform, approval, the containers (parallel, map, switch, loop,
 * workflow) with their child lists.
 *
 * Child lists get keys under their container: "<key>/" for parallel branches, switch
 * cases and sub-workflows, "<key>[i]/" for map items, "<key>#i/" for loop iterations,
 * with "@<attempt>" after the key from the second attempt of the container on, so every
 * step instance of a run has its own key (and its own stored row). The attempt flow
 * (events, rows, retry, catch) is run_exec.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine_internal.h"

/* ---- helpers ---- */

static char *child_prefix(const wf__sx_t *s, const char *suffix) {
  if (s->attempt > 1) return xasprintf("%s@%d%s", s->key, s->attempt, suffix);
  return xasprintf("%s%s", s->key, suffix);
}

static void fail_render(wf__sx_t *s, char *err) {
  wf__sx_fail(s, "template", err ? err : xstrdup("template render failed"), -1, false);
}

/* Starts kid slot with a list over steps. */
static void kid_start(wf__sx_t *s, size_t slot, const wf__steps_t *steps, json_t *ctx_take,
                      const char *suffix) {
  char *prefix = child_prefix(s, suffix);
  wf__list_t *l = wf__list_new(s->n.run, &s->n, steps, ctx_take, prefix);
  free(prefix);
  l->n.slot = slot;
  s->kids[slot] = &l->n;
  s->active++;
  wf__node_start(&l->n);
}

static void kids_alloc(wf__sx_t *s, size_t n) {
  free(s->kids);
  s->kids = xcalloc(n ? n : 1, sizeof *s->kids);
  s->nkids = n;
  s->active = s->finished = s->failures = s->next = 0;
  json_decref(s->results);
  s->results = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(s->results, json_null());
  json_decref(s->error);
  s->error = NULL;
}

/* A child list failed: the container's attempt fails with the child's class. */
static void fail_from_child(wf__sx_t *s, const json_t *err) {
  const char *cls = json_string_value(json_object_get(err, "class"));
  const char *msg = json_string_value(json_object_get(err, "message"));
  const char *step = json_string_value(json_object_get(err, "step"));
  int64_t ra = -1;
  wf__sx_fail(s, cls ? cls : "internal", xasprintf("%s: %s", step ? step : "?", msg ? msg : ""), ra,
              false);
}

/* ---- simple kinds ---- */

static void transform_start(wf__sx_t *s) {
  json_t *out = NULL;
  char *err = NULL;
  if (wf__vtmpl_render(s->step->u.transform.value, s->ctx, &out, &err) < 0) {
    fail_render(s, err);
    return;
  }
  wf__sx_ok(s, out, NULL);
}

static void approval_start(wf__sx_t *s) {
  wf__run_t *r = s->n.run;
  wf_engine_t *e = r->e;
  json_t *prompt = NULL;
  char *err = NULL;
  if (wf__tmpl_render(s->step->u.approval.prompt, s->ctx, &prompt, &err) < 0) {
    fail_render(s, err);
    return;
  }
  json_decref(s->prompt);
  s->prompt = prompt;
  int64_t now = wf__now_ms(e);
  if (s->deadline_ms == 0 && s->step->timeout_ms > 0) s->deadline_ms = now + s->step->timeout_ms;
  s->phase = WF__SX_WAIT;
  base_queue_insert_tail(&r->approvals, &s->wait_link);
  json_t *extra = wf__sx_extra(s);
  wf__sx_save(s, "waiting", now, NULL, NULL, NULL, extra, NULL);
  json_decref(extra);
  json_t *d = json_pack("{s:O,s:I}", "prompt", s->prompt, "ts", (json_int_t)now);
  if (s->deadline_ms) json_object_set_new(d, "deadline_ms", json_integer(s->deadline_ms));
  char *id = wf__sx_event_id(s, "approval");
  json_object_set_new(d, "step", json_string(s->key));
  json_object_set_new(d, "attempt", json_integer(s->attempt));
  wf__emit(r, "approval.requested", id, STREAM_LANE_CONTROL, d);
  free(id);
  if (s->deadline_ms)
    wf__tmr_start(e, &s->timeout, s->deadline_ms > now ? s->deadline_ms - now : 0);
}

int wf__approval_decide(wf__sx_t *s, bool approve, const char *comment) {
  if (s->phase != WF__SX_WAIT) return -ESRCH;
  base_queue_remove(&s->wait_link);
  json_t *out = json_pack("{s:b,s:o}", "approved", approve, "comment",
                          comment ? wf__json_text(comment, strlen(comment)) : json_null());
  wf__sx_ok(s, out, NULL);
  return 0;
}

/* ---- containers ---- */

static void parallel_start(wf__sx_t *s) {
  size_t n = s->step->u.parallel.nbranches;
  kids_alloc(s, n);
  /* Branches share the enclosing context: their outputs are visible after the step. */
  for (size_t i = 0; i < n && s->phase == WF__SX_RUN; i++)
    kid_start(s, i, &s->step->u.parallel.branches[i], json_incref(s->ctx), "/");
}

static void map_fill(wf__sx_t *s) {
  int cap = s->step->u.map.concurrency > 0 ? s->step->u.map.concurrency : 4;
  while (s->next < s->nkids && s->active < (size_t)cap && s->phase == WF__SX_RUN) {
    size_t i = s->next++;
    json_t *ctx = wf__ctx_child(s->ctx);
    json_object_set(ctx, "item", json_array_get(s->items, i));
    json_object_set_new(ctx, "index", json_integer((json_int_t)i));
    char suffix[32];
    snprintf(suffix, sizeof suffix, "[%zu]/", i);
    kid_start(s, i, &s->step->u.map.steps, ctx, suffix);
  }
}

static void map_start(wf__sx_t *s) {
  json_t *items = NULL;
  char *err = NULL;
  if (wf__tmpl_render(s->step->u.map.over, s->ctx, &items, &err) < 0) {
    fail_render(s, err);
    return;
  }
  if (!json_is_array(items)) {
    const char *t = json_is_object(items)   ? "object"
                    : json_is_string(items) ? "string"
                                            : "non-array";
    json_decref(items);
    wf__sx_fail(s, "invalid_input", xasprintf("over: expected an array, got %s", t), -1, false);
    return;
  }
  kids_alloc(s, json_array_size(items));
  json_decref(s->items);
  s->items = items;
  if (s->nkids == 0) {
    wf__sx_ok(s, json_array(), NULL);
    return;
  }
  map_fill(s);
}

static void switch_start(wf__sx_t *s) {
  json_t *v = NULL;
  char *err = NULL;
  if (wf__tmpl_render(s->step->u.sw.value, s->ctx, &v, &err) < 0) {
    fail_render(s, err);
    return;
  }
  char *key = wf__switch_key(v);
  json_decref(v);
  const wf__steps_t *chosen = NULL;
  for (size_t i = 0; i < s->step->u.sw.ncases && !chosen; i++)
    if (!strcmp(s->step->u.sw.cases[i].value, key)) chosen = &s->step->u.sw.cases[i].steps;
  free(key);
  if (!chosen && s->step->u.sw.has_default) chosen = &s->step->u.sw.deflt;
  if (!chosen) {
    wf__sx_ok(s, json_null(), NULL);
    return;
  }
  kids_alloc(s, 1);
  kid_start(s, 0, chosen, wf__ctx_child(s->ctx), "/");
}

static void loop_iterate(wf__sx_t *s) {
  json_t *ctx = wf__ctx_child(s->ctx);
  json_object_set_new(ctx, "iteration", json_integer(s->iteration));
  char suffix[32];
  snprintf(suffix, sizeof suffix, "#%d/", s->iteration);
  kid_start(s, 0, &s->step->u.loop.steps, ctx, suffix);
}

static void loop_start(wf__sx_t *s) {
  kids_alloc(s, 1);
  s->iteration = 0;
  loop_iterate(s);
}

static void workflow_start(wf__sx_t *s) {
  wf__run_t *r = s->n.run;
  const wf_registry_t *reg = r->e->registry;
  wf_workflow_t *sub = reg ? wf_registry_find(reg, s->step->u.workflow.name) : NULL;
  if (!sub) {
    wf__sx_fail(s, "workflow_missing",
                xasprintf("workflow \"%s\" is not loaded", s->step->u.workflow.name), -1, false);
    return;
  }
  wf_workflow_unref(&s->sub);
  s->sub = wf_workflow_ref(sub);
  json_t *input = NULL, *resolved = NULL;
  char *err = NULL;
  if (s->step->u.workflow.input &&
      wf__vtmpl_render(s->step->u.workflow.input, s->ctx, &input, &err) < 0) {
    fail_render(s, err);
    return;
  }
  wf_errors_t *errs = NULL;
  if (wf_inputs_resolve(sub, input, &resolved, &errs) < 0) {
    char *msg = wf_errors_format(errs);
    wf_errors_free(errs);
    json_decref(input);
    wf__sx_fail(s, "invalid_input", xasprintf("sub-workflow input: %s", msg), -1, false);
    free(msg);
    return;
  }
  json_decref(input);
  json_t *ctx = json_pack("{s:o,s:{},s:{s:s,s:s}}", "input", resolved, "steps", "run", "id", r->id,
                          "workflow", wf_workflow_name(sub));
  kids_alloc(s, 1);
  kid_start(s, 0, &sub->steps, ctx, "/");
}

void wf__kind_start(wf__sx_t *s) {
  switch (s->step->kind) {
    case WF_STEP_LLM:
      wf__llm_start(s);
      break;
    case WF_STEP_TRANSFORM:
      transform_start(s);
      break;
    case WF_STEP_APPROVAL:
      approval_start(s);
      break;
    case WF_STEP_PARALLEL:
      parallel_start(s);
      break;
    case WF_STEP_MAP:
      map_start(s);
      break;
    case WF_STEP_SWITCH:
      switch_start(s);
      break;
    case WF_STEP_LOOP:
      loop_start(s);
      break;
    case WF_STEP_WORKFLOW:
      workflow_start(s);
      break;
    case WF_STEP_AGENT:
      wf__ext_start(s);
      break;
    default:
      wf__sx_fail(s, "not_implemented", xstrdup("unknown step type"), -1, false);
      break;
  }
}

void wf__kind_stop(wf__sx_t *s) {
  if (s->llm) wf__llm_stop(s);
  if (s->ext) wf__ext_stop(s);
  base_queue_remove(&s->wait_link);
  for (size_t i = 0; i < s->nkids; i++) {
    if (!s->kids[i]) continue;
    wf__node_cancel(s->kids[i]);
    wf__node_free(s->kids[i]);
    s->kids[i] = NULL;
  }
  s->active = 0;
}

const char *wf__kind_text(const wf__sx_t *s) {
  if (s->step->kind == WF_STEP_LLM) {
    const char *text = NULL;
    wf__llm_streamed(s, &text, NULL);
    return text;
  }
  if (s->step->kind == WF_STEP_AGENT) return wf__ext_text(s);
  return NULL;
}

bool wf__kind_partial(const wf__sx_t *s) {
  if (s->step->kind == WF_STEP_LLM) return wf__llm_partial(s);
  if (s->step->kind == WF_STEP_AGENT) return wf__ext_partial(s);
  return false;
}

json_t *wf__sx_extra(const wf__sx_t *s) {
  if (s->step->kind == WF_STEP_AGENT) return wf__ext_extra(s);
  if (s->step->kind == WF_STEP_LLM) {
    json_t *extra = NULL;
    wf__llm_streamed(s, NULL, &extra);
    return extra;
  }
  if (s->step->kind == WF_STEP_APPROVAL && s->prompt) {
    json_t *x = json_pack("{s:O}", "prompt", s->prompt);
    if (s->deadline_ms) json_object_set_new(x, "deadline_ms", json_integer(s->deadline_ms));
    return x;
  }
  return NULL;
}

/* ---- children reporting ---- */

static void parallel_child(wf__sx_t *s, wf__node_t *c, size_t slot) {
  bool any = s->step->u.parallel.join_any;
  if (c->res == WF__RES_FAIL) {
    s->failures++;
    if (!any || s->failures == s->nkids) {
      json_t *err = json_incref(c->error);
      wf__node_free(c);
      fail_from_child(s, err);
      json_decref(err);
      return;
    }
    wf__node_free(c);
    return;
  }
  json_t *out = json_incref(c->output ? c->output : json_null());
  wf__node_free(c);
  if (any) {
    wf__sx_ok(s, out, NULL); /* stops (cancels) the other branches */
    return;
  }
  json_array_set_new(s->results, slot, out);
  if (++s->finished == s->nkids) wf__sx_ok(s, json_copy(s->results), NULL);
}

static void map_child(wf__sx_t *s, wf__node_t *c, size_t slot) {
  if (c->res == WF__RES_FAIL) {
    s->failures++;
    if (s->failures > (size_t)s->step->u.map.tolerated_failures) {
      json_t *err = json_incref(c->error);
      wf__node_free(c);
      fail_from_child(s, err);
      json_decref(err);
      return;
    }
  } else {
    json_array_set(s->results, slot, c->output ? c->output : json_null());
  }
  wf__node_free(c);
  s->finished++;
  if (s->finished == s->nkids) {
    wf__sx_ok(s, json_copy(s->results), NULL);
    return;
  }
  map_fill(s);
}

static void loop_child(wf__sx_t *s, wf__node_t *c) {
  wf__list_t *l = container_of(c, wf__list_t, n);
  json_t *out = json_incref(c->output ? c->output : json_null());
  bool stop = s->iteration + 1 >= s->step->u.loop.max_iterations;
  if (!stop && s->step->u.loop.until) {
    json_t *v = NULL;
    char *err = NULL;
    if (wf__tmpl_render(s->step->u.loop.until, l->ctx, &v, &err) < 0) {
      wf__node_free(c);
      json_decref(out);
      fail_render(s, err);
      return;
    }
    stop = wf__json_truthy(v);
    json_decref(v);
  }
  wf__node_free(c);
  if (stop) {
    wf__sx_ok(s, out, NULL);
    return;
  }
  json_decref(out);
  s->iteration++;
  loop_iterate(s);
}

static void workflow_child(wf__sx_t *s, wf__node_t *c) {
  wf__list_t *l = container_of(c, wf__list_t, n);
  json_t *out = NULL;
  if (s->sub && s->sub->output) {
    char *err = NULL;
    if (wf__vtmpl_render(s->sub->output, l->ctx, &out, &err) < 0) {
      wf__node_free(c);
      fail_render(s, err);
      return;
    }
  } else {
    out = json_incref(c->output ? c->output : json_null());
  }
  wf__node_free(c);
  wf__sx_ok(s, out, NULL);
}

void wf__kind_child_done(wf__sx_t *s, wf__node_t *c) {
  size_t slot = c->slot;
  if (slot < s->nkids && s->kids[slot] == c) s->kids[slot] = NULL;
  if (s->active) s->active--;
  if (s->phase != WF__SX_RUN) {
    wf__node_free(c);
    return;
  }
  switch (s->step->kind) {
    case WF_STEP_PARALLEL:
      parallel_child(s, c, slot);
      return;
    case WF_STEP_MAP:
      map_child(s, c, slot);
      return;
    default:
      break;
  }
  if (c->res == WF__RES_FAIL) {
    json_t *err = json_incref(c->error);
    wf__node_free(c);
    fail_from_child(s, err);
    json_decref(err);
    return;
  }
  if (s->step->kind == WF_STEP_LOOP)
    loop_child(s, c);
  else if (s->step->kind == WF_STEP_WORKFLOW)
    workflow_child(s, c);
  else {
    json_t *out = json_incref(c->output ? c->output : json_null());
    wf__node_free(c);
    wf__sx_ok(s, out, NULL);
  }
}
