/* Tool-call assembler: collects TOOL_CALL deltas into complete calls {id, name, arguments}.
 *
 * Fragments are grouped by index; a fragment without one (index < 0) is matched by id, and
 * one with neither continues the last call. Calls keep the order in which they first
 * appeared. The assembler checks sizes as it grows and validates the arguments only at
 * finish, since a fragment is rarely valid JSON on its own. It does not run tools. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

/* Invariants: calls[0..n) in order of first appearance, distinct indices; args of each
 * call never longer than max_args; n <= max_calls. */
struct agent_tools {
  agent_tool_call_t *calls; /* owned, cap entries */
  agent__buf_t *args;       /* owned, parallel to calls */
  size_t n, cap;
  size_t max_calls;
  size_t max_args; /* bytes */
  int last;        /* position in calls of the last fragment's call, -1 before any */
};

int agent_tools_new(size_t max_calls, size_t max_args, agent_tools_t **out) {
  if (!out) return -EINVAL;
  agent_tools_t *t = xcalloc(1, sizeof *t);
  t->max_calls = max_calls ? max_calls : 64;
  t->max_args = max_args ? max_args : 1024 * 1024;
  t->last = -1;
  *out = t;
  return 0;
}

void agent_tools_free(agent_tools_t *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) {
    free(t->calls[i].id);
    free(t->calls[i].name);
    agent__buf_free(&t->args[i]);
  }
  free(t->calls);
  free(t->args);
  free(t);
}

static int tools_find(const agent_tools_t *t, const agent_delta_t *d) {
  if (d->index >= 0) {
    for (size_t i = 0; i < t->n; i++)
      if (t->calls[i].index == d->index) return (int)i;
    return -1;
  }
  if (d->tool_id) {
    for (size_t i = 0; i < t->n; i++)
      if (t->calls[i].id && strcmp(t->calls[i].id, d->tool_id) == 0) return (int)i;
    return -1;
  }
  return t->last;
}

int agent_tools_add(agent_tools_t *t, const agent_delta_t *d) {
  if (d->kind != AGENT_DELTA_TOOL_CALL) return 0;
  int pos = tools_find(t, d);
  if (pos < 0) {
    if (t->n == t->max_calls) return -E2BIG;
    if (t->n == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 4;
      t->calls = xrealloc(t->calls, t->cap * sizeof *t->calls);
      t->args = xrealloc(t->args, t->cap * sizeof *t->args);
    }
    pos = (int)t->n++;
    agent_tool_call_t *c = &t->calls[pos];
    memset(c, 0, sizeof *c);
    memset(&t->args[pos], 0, sizeof t->args[pos]);
    if (d->index >= 0) {
      c->index = d->index;
    } else { /* no index from the provider: one past the largest so far */
      c->index = 0;
      for (size_t i = 0; i + 1 < t->n; i++)
        if (t->calls[i].index >= c->index) c->index = t->calls[i].index + 1;
    }
  }
  agent_tool_call_t *c = &t->calls[pos];
  agent__buf_t *a = &t->args[pos];
  if (a->len + d->text_len > t->max_args) return -EMSGSIZE;
  if (d->tool_id && *d->tool_id && !c->id) c->id = xstrdup(d->tool_id);
  if (d->tool_name && *d->tool_name && !c->name) c->name = xstrdup(d->tool_name);
  agent__buf_append(a, d->text, d->text_len);
  c->args = a->p;
  c->args_len = a->len;
  t->last = pos;
  return 0;
}

int agent_tools_finish(agent_tools_t *t, char *err, size_t errlen) {
  char perr[200];
  for (size_t i = 0; i < t->n; i++) {
    agent_tool_call_t *c = &t->calls[i];
    agent__buf_t *a = &t->args[i];
    size_t ws = 0;
    while (ws < a->len && strchr(" \t\r\n", a->p[ws])) ws++;
    if (ws == a->len) agent__buf_set(a, "{}", 2);
    c->args = a->p;
    c->args_len = a->len;
    if (!c->name) {
      if (err) snprintf(err, errlen, "tool_calls[%zu].name: missing", i);
      return -EBADMSG;
    }
    json_t *doc;
    if (agent__json_parse(a->p, a->len, 0, &doc, perr, sizeof perr) < 0) {
      if (err) snprintf(err, errlen, "tool_calls[%zu].arguments: %s", i, perr);
      return -EBADMSG;
    }
    bool obj = json_is_object(doc);
    json_decref(doc);
    if (!obj) {
      if (err) snprintf(err, errlen, "tool_calls[%zu].arguments: not a JSON object", i);
      return -EBADMSG;
    }
  }
  return 0;
}

size_t agent_tools_count(const agent_tools_t *t) { return t->n; }

const agent_tool_call_t *agent_tools_get(const agent_tools_t *t, size_t i) {
  return i < t->n ? &t->calls[i] : NULL;
}
