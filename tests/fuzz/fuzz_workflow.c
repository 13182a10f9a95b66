/* Fuzz target for workflow files (workflows/load.c, validate.c, steps.c, jsonpos.c,
 * template.c, schema.c): the input is a workflow document given to wf_load_buffer.
 * Invariants:
 *   - no memory or UB error, no leak; the return code is 0, -EINVAL or -EMSGSIZE, and 0
 *     exactly when a workflow came back and no error was reported;
 *   - every error names the file as given and a reason; an error about a part of the
 *     document names its JSON path and has a line and column (the document parsed, so the
 *     value or its nearest parent exists); only errors about the whole document (not JSON,
 *     too deep, too large, not an object) have an empty path;
 *   - no path or reason holds a control character (document strings are quoted with
 *     wf__quote), wf_errors_format gives one line per error (plus the truncation line),
 *     and wf_errors_json one object per error;
 *   - every template found renders or fails with a message: each string of the document
 *     is compiled as a template and rendered against a sample context, and a valid
 *     workflow's own compiled templates (prompts, systems, values, outputs) are rendered
 *     against a context with every step's output.
 * Inputs of odd length are loaded against a registry (shared profile "shared_writer",
 * sub-workflow "child") so that refs and sub-workflow names are checked too. */
#include <errno.h>
#include <jansson.h>

#include "fuzz_common.h"
#include "internal.h"

#define FZ_NAME "fuzz.json"

/* Formerly open (docs/parsers.md, corpus/fuzz_workflow/crash-fuzz_workflow-1): reasons
 * quoted document strings raw ("unknown step type \"x<LF>...\""), so a string with a
 * newline split an error of wf_errors_format over several lines and could forge a line of
 * `coordinator validate`. The validator now quotes with wf__quote; 1 tolerates raw newlines
 * again (to replay against an old build), 0 (the default) checks that no path or reason
 * holds a control character and that each error is exactly one line. */
#ifndef FZ_KNOWN_RAW_NEWLINES
#define FZ_KNOWN_RAW_NEWLINES 0
#endif

static bool fz_has_control(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7F) return true;
  return false;
}

static void fz_fail(const char *what, const char *detail) {
  fprintf(stderr, "fuzz invariant broken: %s\n%s\n", what, detail ? detail : "");
  abort();
}

static bool fz_starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static void fz_check_errors(const wf_errors_t *errs, int rc) {
  size_t n = wf_errors_count(errs);
  if ((rc == 0) != (n == 0)) fz_fail("return code and error count disagree", NULL);
  for (size_t i = 0; i < n; i++) {
    const wf_error_t *e = wf_errors_at(errs, i);
    if (!e || !e->file || !e->path || !e->reason) fz_fail("error with a NULL part", NULL);
    if (strcmp(e->file, FZ_NAME) != 0) fz_fail("error names another file", e->file);
    if (!e->reason[0]) fz_fail("error without a reason", e->path);
#if !FZ_KNOWN_RAW_NEWLINES
    if (fz_has_control(e->reason) || fz_has_control(e->path))
      fz_fail("error with a raw control character", e->reason);
#endif
    if (!e->path[0]) {
      if (!fz_starts(e->reason, "invalid JSON") && !fz_starts(e->reason, "nesting deeper") &&
          !fz_starts(e->reason, "file is") && !fz_starts(e->reason, "a workflow is a JSON object"))
        fz_fail("error about a part of the document without a path", e->reason);
    } else if (e->line < 1 || e->column < 1) {
      char buf[512];
      snprintf(buf, sizeof buf, "%s: %s (line %d column %d)", e->path, e->reason, e->line, e->column);
      fz_fail("error with a path but no position", buf);
    }
  }
  char *text = wf_errors_format(errs);
  if (!text) fz_fail("wf_errors_format returned NULL", NULL);
  size_t lines = 0, want = n + (wf_errors_truncated(errs) ? 1 : 0);
  for (const char *p = text; *p; p++) lines += *p == '\n';
  if (text[0] && text[strlen(text) - 1] != '\n') lines++;
#if FZ_KNOWN_RAW_NEWLINES
  for (size_t i = 0; i < n; i++)
    for (const char *p = wf_errors_at(errs, i)->reason; *p; p++) want += *p == '\n';
#endif
  if (lines != want) fz_fail("formatted errors are not one line each", text);
  free(text);
  json_t *j = wf_errors_json(errs);
  if (!json_is_array(j) || json_array_size(j) != n) fz_fail("wf_errors_json is not one object per error", NULL);
  json_decref(j);
}

static json_t *fz_sample(void) {
  return json_pack("{s:s,s:[s,s,i],s:f,s:b,s:{s:s},s:n}", "text", "hello", "items", "a", "b", 3, "score", 0.5,
                   "ok", 1, "obj", "k", "v", "nothing");
}

/* The context templates render against; steps gets every id of ids (may be NULL). */
static json_t *fz_context(json_t *input, json_t *ids) {
  json_t *steps = json_object();
  const char *id;
  json_t *v;
  if (ids) json_object_foreach(ids, id, v) json_object_set_new(steps, id, json_pack("{s:o}", "output", fz_sample()));
  return json_pack("{s:o,s:o,s:o,s:i,s:i,s:{s:s,s:s}}", "input", input, "steps", steps, "item", fz_sample(),
                   "index", 1, "iteration", 2, "run", "id", "r_fuzz", "workflow", "w");
}

static void fz_render(const wf__tmpl_t *t, const json_t *ctx) {
  if (!t) return;
  json_t *out = NULL;
  char *err = NULL;
  int rc = wf__tmpl_render(t, ctx, &out, &err);
  if (rc == 0 && (!out || err)) fz_fail("template rendered without a value", wf__tmpl_source(t));
  if (rc != 0 && (rc != -EINVAL || !err || !err[0] || out)) fz_fail("template failed without a message", wf__tmpl_source(t));
  if (out) {
    (void)wf__json_truthy(out);
    free(wf__switch_key(out));
  }
  json_decref(out);
  free(err);
}

static void fz_vrender(const wf__vtmpl_t *vt, const json_t *ctx) {
  if (!vt) return;
  json_t *out = NULL;
  char *err = NULL;
  int rc = wf__vtmpl_render(vt, ctx, &out, &err);
  if (rc == 0 && (!out || err)) fz_fail("value template rendered without a value", NULL);
  if (rc != 0 && (!err || !err[0] || out)) fz_fail("value template failed without a message", NULL);
  json_decref(out);
  free(err);
}

/* Every string of v, compiled as a template and rendered. */
static void fz_strings(const json_t *v, const json_t *ctx, int depth) {
  if (depth > WF_MAX_JSON_DEPTH + 2) return;
  size_t i;
  const char *k;
  json_t *x;
  if (json_is_string(v)) {
    wf__tmpl_t *t = NULL;
    char *err = NULL;
    int rc = wf__tmpl_compile(json_string_value(v), &t, &err);
    if (rc == 0) {
      if (!t || err) fz_fail("template compiled with an error", json_string_value(v));
      for (size_t r = 0; r < wf__tmpl_ref_count(t); r++) {
        wf__tmpl_ref_t ref;
        wf__tmpl_ref_at(t, r, &ref);
        if (!ref.text) fz_fail("template reference without its text", json_string_value(v));
      }
      fz_render(t, ctx);
      wf__tmpl_free(t);
    } else if (rc != -EINVAL || t || !err || !err[0]) {
      fz_fail("template syntax error without a message", json_string_value(v));
    }
    free(err);
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, x) fz_strings(x, ctx, depth + 1);
  } else if (json_is_object(v)) {
    json_object_foreach((json_t *)v, k, x) fz_strings(x, ctx, depth + 1);
  }
}

static void fz_collect_id(void *arg, const wf__step_t *s) {
  if (s->id) json_object_set_new(arg, s->id, json_true());
}

static void fz_render_step(void *arg, const wf__step_t *s) {
  const json_t *ctx = arg;
  fz_vrender(s->catch_output, ctx);
  switch (s->kind) {
  case WF_STEP_LLM: fz_render(s->u.llm.prompt, ctx); break;
  case WF_STEP_AGENT:
    fz_render(s->u.agent.topic, ctx);
    fz_vrender(s->u.agent.input, ctx);
    break;
  case WF_STEP_MAP: fz_render(s->u.map.over, ctx); break;
  case WF_STEP_SWITCH: fz_render(s->u.sw.value, ctx); break;
  case WF_STEP_LOOP: fz_render(s->u.loop.until, ctx); break;
  case WF_STEP_APPROVAL: fz_render(s->u.approval.prompt, ctx); break;
  case WF_STEP_WORKFLOW: fz_vrender(s->u.workflow.input, ctx); break;
  case WF_STEP_TRANSFORM: fz_vrender(s->u.transform.value, ctx); break;
  default: break;
  }
}

static void fz_valid(wf_workflow_t *wf) {
  if (!wf_workflow_name(wf) || strcmp(wf_workflow_file(wf), FZ_NAME) != 0) fz_fail("valid workflow without its name", NULL);
  json_t *sum = wf_workflow_summary(wf);
  if (!json_is_object(sum)) fz_fail("summary is not an object", NULL);
  json_decref(sum);

  json_t *resolved = NULL;
  wf_errors_t *errs = NULL;
  json_t *empty = json_object();
  int rc = wf_inputs_resolve(wf, empty, &resolved, &errs);
  json_decref(empty);
  if (rc != 0 && rc != -EINVAL) fz_fail("wf_inputs_resolve returned an unexpected code", NULL);
  for (size_t i = 0; i < wf_errors_count(errs); i++)
    if (!fz_starts(wf_errors_at(errs, i)->path, "input")) fz_fail("input error outside input", wf_errors_at(errs, i)->path);
  wf_errors_free(errs);

  json_t *ids = json_object();
  wf__steps_walk(&wf->steps, fz_collect_id, ids);
  json_t *ctx = fz_context(resolved ? resolved : json_object(), ids);
  json_decref(ids);
  for (size_t i = 0; i < wf->nagents; i++) fz_render(wf->agents[i].system, ctx);
  wf__steps_walk(&wf->steps, fz_render_step, ctx);
  fz_vrender(wf->output, ctx);
  json_decref(ctx);
}

static wf_registry_t *fz_registry(void) {
  json_t *shared = json_pack("{s:{s:s,s:s}}", "shared_writer", "provider", "mock", "model", "m");
  wf_registry_t *reg = wf_registry_new(shared);
  json_decref(shared);
  static const char child[] = "{\"name\":\"child\",\"steps\":[{\"id\":\"t\",\"type\":\"transform\",\"value\":1}]}";
  wf_workflow_t *wf = NULL;
  if (wf_load_buffer(child, sizeof child - 1, "child.json", NULL, &wf, NULL) != 0) fz_fail("child failed to load", NULL);
  if (wf_registry_add(reg, wf) != 0) abort();
  wf_free(wf);
  return reg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wf_registry_t *reg = (size & 1) ? fz_registry() : NULL;
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  int rc = wf_load_buffer((const char *)data, size, FZ_NAME, reg, &wf, &errs);
  if (rc != 0 && rc != -EINVAL && rc != -EMSGSIZE) fz_fail("wf_load_buffer returned an unexpected code", NULL);
  if ((rc == 0) != (wf != NULL)) fz_fail("return code and workflow disagree", NULL);
  fz_check_errors(errs, rc);
  wf_errors_free(errs);
  if (wf) fz_valid(wf);
  wf_free(wf);
  wf_registry_free(reg);

  /* every string of the document as a template, valid workflow or not */
  json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
  if (doc) {
    json_t *ctx = fz_context(json_pack("{s:s,s:i,s:[i,i]}", "topic", "t", "n", 3, "list", 1, 2), NULL);
    fz_strings(doc, ctx, 0);
    json_decref(ctx);
    json_decref(doc);
  }
  return 0;
}
