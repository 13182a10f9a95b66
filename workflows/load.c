/* Loading one workflow: reading the file within the size limit, the nesting-depth check,
 * parsing with jansson (duplicate keys rejected, syntax errors with line/column), then
 * validation (validate.c); the workflow object's lifetime and accessors; and checking a
 * run's input against the declared inputs. Folders of files are registry.c's. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"
#include "internal.h"

static void workflow_destroy(wf_workflow_t *wf) {
  wf__model_free(wf);
  json_decref(wf->doc);
  free(wf->text);
  free(wf->file);
  free(wf);
}

wf_workflow_t *wf_workflow_ref(wf_workflow_t *wf) {
  wf->refs++;
  return wf;
}

void wf_workflow_unref(wf_workflow_t **wf) {
  if (!*wf) return;
  if (--(*wf)->refs == 0) workflow_destroy(*wf);
  *wf = NULL;
}

void wf_free(wf_workflow_t *wf) { wf_workflow_unref(&wf); }

int wf__load(const char *text, size_t len, const char *name, const json_t *shared,
             bool (*has_workflow)(void *arg, const char *name), void *arg, wf_workflow_t **out,
             wf_errors_t *errs) {
  *out = NULL;
  if (len > WF_MAX_FILE_BYTES) {
    wf__errors_add(errs, name, "", 0, 0, "file is %zu bytes, the limit is %d", len,
                   WF_MAX_FILE_BYTES);
    return -EMSGSIZE;
  }
  wf_workflow_t *wf = xcalloc(1, sizeof(*wf));
  wf->refs = 1;
  wf->file = xstrdup(name);
  wf->text = xmalloc(len + 1);
  memcpy(wf->text, text, len);
  wf->text[len] = '\0';
  wf->text_len = len;
  int rc = -EINVAL, line = 0, column = 0;
  if (wf__json_depth_check(wf->text, len, WF_MAX_JSON_DEPTH, &line, &column) < 0) {
    wf__errors_add(errs, name, "", line, column, "nesting deeper than %d levels",
                   WF_MAX_JSON_DEPTH);
    goto fail;
  }
  json_error_t jerr;
  wf->doc = json_loadb(wf->text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!wf->doc) {
    /* jansson counts columns from 0 before the first character of a line. */
    wf__errors_add(errs, name, "", jerr.line > 0 ? jerr.line : 0,
                   jerr.line > 0 ? (jerr.column > 0 ? jerr.column : 1) : 0, "invalid JSON: %s",
                   jerr.text);
    goto fail;
  }
  rc = wf__validate(wf, shared, has_workflow, arg, errs);
  if (rc < 0) goto fail;
  *out = wf;
  return 0;
fail:
  workflow_destroy(wf);
  return rc;
}

/* Reads at most WF_MAX_FILE_BYTES + 1 bytes so a file growing under us is still caught. */
int wf__read_file(const char *path, char **text, size_t *len, wf_errors_t *errs) {
  *text = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    wf__errors_add(errs, path, "", 0, 0, "cannot open: %s", strerror(e));
    return -e;
  }
  int rc = 0;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    rc = -errno;
    wf__errors_add(errs, path, "", 0, 0, "cannot stat: %s", strerror(-rc));
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = -EINVAL;
    wf__errors_add(errs, path, "", 0, 0, "not a regular file");
    goto out;
  }
  if (st.st_size > WF_MAX_FILE_BYTES) {
    rc = -EMSGSIZE;
    wf__errors_add(errs, path, "", 0, 0, "file is %lld bytes, the limit is %d",
                   (long long)st.st_size, WF_MAX_FILE_BYTES);
    goto out;
  }
  size_t cap = (size_t)st.st_size + 1, n = 0;
  char *buf = xmalloc(cap + 1);
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = -errno;
      wf__errors_add(errs, path, "", 0, 0, "cannot read: %s", strerror(-rc));
      free(buf);
      goto out;
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n == cap) {
      if (cap > WF_MAX_FILE_BYTES) {
        rc = -EMSGSIZE;
        wf__errors_add(errs, path, "", 0, 0, "file is over the limit of %d bytes",
                       WF_MAX_FILE_BYTES);
        free(buf);
        goto out;
      }
      cap = cap * 2 > (size_t)WF_MAX_FILE_BYTES + 1 ? (size_t)WF_MAX_FILE_BYTES + 1 : cap * 2;
      buf = xrealloc(buf, cap + 1);
    }
  }
  *text = buf;
  *len = n;
out:
  close(fd);
  return rc;
}

static bool registry_has(void *arg, const char *name) {
  return wf_registry_find(arg, name) != NULL;
}

static int load_common(const char *text, size_t len, const char *name,
                       const wf_registry_t *registry, wf_workflow_t **out, wf_errors_t **errs,
                       wf_errors_t *list) {
  int rc = wf__load(text, len, name, registry ? wf__registry_profiles(registry) : NULL,
                    registry ? registry_has : NULL, (void *)registry, out, list);
  if (errs && wf_errors_count(list) > 0) {
    *errs = list;
  } else {
    wf_errors_free(list);
  }
  return rc;
}

int wf_load_buffer(const char *text, size_t len, const char *name,
                   const wf_registry_t *registry, wf_workflow_t **out, wf_errors_t **errs) {
  if (errs) *errs = NULL;
  return load_common(text, len, name, registry, out, errs, wf__errors_new());
}

int wf_load_file(const char *path, const wf_registry_t *registry, wf_workflow_t **out,
                 wf_errors_t **errs) {
  if (errs) *errs = NULL;
  *out = NULL;
  wf_errors_t *list = wf__errors_new();
  char *text = NULL;
  size_t len = 0;
  int rc = wf__read_file(path, &text, &len, list);
  if (rc < 0) {
    if (errs)
      *errs = list;
    else
      wf_errors_free(list);
    return rc;
  }
  rc = load_common(text, len, path, registry, out, errs, list);
  free(text);
  return rc;
}

const char *wf_workflow_name(const wf_workflow_t *wf) { return wf->name; }
const char *wf_workflow_file(const wf_workflow_t *wf) { return wf->file; }
const json_t *wf_workflow_doc(const wf_workflow_t *wf) { return wf->doc; }

json_t *wf_workflow_summary(const wf_workflow_t *wf) {
  json_t *agents = json_array();
  for (size_t i = 0; i < wf->nagents; i++) json_array_append_new(agents, json_string(wf->agents[i].name));
  json_t *inputs = json_object_get(wf->doc, "inputs");
  return json_pack("{s:s,s:s?,s:s,s:o,s:o,s:I}", "name", wf->name, "description",
                   wf->description, "file", wf->file,
                   "inputs", inputs ? json_incref(inputs) : json_object(),
                   "agents", agents, "steps", (json_int_t)wf->nsteps_total);
}

/* "input.name", or input["odd key"] for a key the caller sent (wf__path_format escapes). */
static char *input_path(const char *name) {
  const wf__path_comp_t comps[] = {{.key = "input"}, {.key = name}};
  return wf__path_format(comps, 2);
}

int wf_inputs_resolve(const wf_workflow_t *wf, const json_t *input, json_t **out,
                      wf_errors_t **errs) {
  *out = NULL;
  if (errs) *errs = NULL;
  wf_errors_t *list = wf__errors_new();
  json_t *res = json_object();
  if (input && !json_is_object(input)) {
    wf__errors_add(list, "", "input", 0, 0, "expected an object, got %s", wf__v_type_name(input));
    goto done;
  }
  const char **names = xcalloc(wf->ninputs + 1, sizeof(char *));
  for (size_t i = 0; i < wf->ninputs; i++) names[i] = wf->inputs[i].name;
  const char *k;
  json_t *val;
  if (input) {
    json_object_foreach((json_t *)input, k, val) {
      size_t i = 0;
      while (i < wf->ninputs && strcmp(names[i], k)) i++;
      char *path = input_path(k);
      if (i == wf->ninputs) {
        const char *hint = wf__closest(k, names, wf->ninputs);
        if (hint)
          wf__errors_add(list, "", path, 0, 0, "unknown input (did you mean %s?)", WF__Q(hint));
        else
          wf__errors_add(list, "", path, 0, 0, "unknown input");
      } else if (!wf__input_type_matches(wf->inputs[i].type, val)) {
        wf__errors_add(list, "", path, 0, 0, "expected %s, got %s", wf->inputs[i].type,
                       wf__v_type_name(val));
      } else {
        json_object_set(res, k, val);
      }
      free(path);
    }
  }
  for (size_t i = 0; i < wf->ninputs; i++) {
    const wf__input_t *in = &wf->inputs[i];
    if (input && json_object_get(input, in->name)) continue;
    if (in->required) {
      char *path = input_path(in->name);
      wf__errors_add(list, "", path, 0, 0, "missing required input");
      free(path);
    } else if (in->deflt) {
      json_object_set_new(res, in->name, json_deep_copy(in->deflt));
    }
  }
  free(names);
done:
  if (wf_errors_count(list) > 0) {
    json_decref(res);
    if (errs)
      *errs = list;
    else
      wf_errors_free(list);
    return -EINVAL;
  }
  wf_errors_free(list);
  *out = res;
  return 0;
}
