/* The registry of loaded workflows (by name) and the two ways to fill it from files: a
 * folder (daemon start and SIGHUP) and a list of paths (`coordinator validate`). Both
 * check what one file cannot check alone: unique names across files, sub-workflow
 * references that resolve, and no sub-workflow cycles. A file that fails is left out
 * and reported; the others still load. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"
#include "internal.h"

/* Invariant: v[0..n) is sorted by name, names unique; each entry holds a reference. */
struct wf_registry {
  wf_workflow_t **v; /* owned array; each element ref */
  size_t n, cap;
  json_t *profiles; /* owned copy of the shared profiles, or NULL (refs unchecked) */
};

wf_registry_t *wf_registry_new(const json_t *shared_profiles) {
  wf_registry_t *reg = xcalloc(1, sizeof(*reg));
  if (shared_profiles) reg->profiles = json_deep_copy(shared_profiles);
  return reg;
}

void wf_registry_free(wf_registry_t *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->n; i++) wf_workflow_unref(&reg->v[i]);
  free(reg->v);
  json_decref(reg->profiles);
  free(reg);
}

const json_t *wf__registry_profiles(const wf_registry_t *reg) { return reg->profiles; }

/* Index of name, or of where it would be inserted (with *found false). */
static size_t registry_search(const wf_registry_t *reg, const char *name, bool *found) {
  size_t lo = 0, hi = reg->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(reg->v[mid]->name, name);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

int wf_registry_add(wf_registry_t *reg, wf_workflow_t *wf) {
  bool found;
  size_t at = registry_search(reg, wf->name, &found);
  if (found) return -EEXIST;
  if (reg->n == reg->cap) {
    reg->cap = reg->cap ? reg->cap * 2 : 16;
    reg->v = xrealloc(reg->v, reg->cap * sizeof(*reg->v));
  }
  memmove(&reg->v[at + 1], &reg->v[at], (reg->n - at) * sizeof(*reg->v));
  reg->v[at] = wf_workflow_ref(wf);
  reg->n++;
  return 0;
}

wf_workflow_t *wf_registry_find(const wf_registry_t *reg, const char *name) {
  bool found;
  size_t at = registry_search(reg, name, &found);
  return found ? reg->v[at] : NULL;
}

size_t wf_registry_count(const wf_registry_t *reg) { return reg->n; }

wf_workflow_t *wf_registry_at(const wf_registry_t *reg, size_t i) {
  return i < reg->n ? reg->v[i] : NULL;
}

/* ---- checks across files --------------------------------------------------------- */

/* Candidates from several files: wfs[i] is NULL when file i failed to load or was
 * rejected by a cross-file check; errs[i] collects file i's errors. */
typedef struct fileset {
  size_t n;
  char **paths;          /* owned */
  wf_workflow_t **wfs;   /* ref each */
  wf_errors_t **errs;    /* owned each */
} fileset_t;

static long set_find(const fileset_t *fs, const char *name) {
  for (size_t i = 0; i < fs->n; i++)
    if (fs->wfs[i] && strcmp(fs->wfs[i]->name, name) == 0) return (long)i;
  return -1;
}

static void set_reject(fileset_t *fs, size_t i) { wf_workflow_unref(&fs->wfs[i]); }

static void check_duplicates(fileset_t *fs) {
  static const wf__path_comp_t name_path[] = {{.key = "name"}};
  for (size_t i = 0; i < fs->n; i++) {
    if (!fs->wfs[i]) continue;
    for (size_t j = 0; j < i; j++) {
      if (!fs->wfs[j] || strcmp(fs->wfs[j]->name, fs->wfs[i]->name) != 0) continue;
      wf__error_at(fs->wfs[i], name_path, 1, fs->errs[i], "workflow %s is already defined in %s",
                   WF__Q(fs->wfs[i]->name), fs->paths[j]);
      set_reject(fs, i);
      break;
    }
  }
}

typedef struct ref_walk {
  fileset_t *fs;
  size_t self;
  const char *const *was_rejected; /* names that failed (for the message), by index */
  bool bad;
} ref_walk_t;

static void check_step_ref(void *arg, const wf__step_t *s) {
  ref_walk_t *w = arg;
  if (s->kind != WF_STEP_WORKFLOW || !s->u.workflow.name) return;
  if (set_find(w->fs, s->u.workflow.name) >= 0) return;
  wf_workflow_t *wf = w->fs->wfs[w->self];
  bool known = false;
  for (size_t i = 0; i < w->fs->n; i++)
    if (w->was_rejected[i] && strcmp(w->was_rejected[i], s->u.workflow.name) == 0) known = true;
  if (known)
    wf__error_at_step(wf, s, "workflow", w->fs->errs[w->self],
                      "workflow %s was rejected (see its errors)", WF__Q(s->u.workflow.name));
  else
    wf__error_at_step(wf, s, "workflow", w->fs->errs[w->self], "unknown workflow %s",
                      WF__Q(s->u.workflow.name));
  w->bad = true;
}

/* Depth-first search for a cycle through sub-workflow steps; on finding one reports it
 * at the step that closes it and returns the index of that workflow, else -1. */
typedef struct cycle_walk {
  fileset_t *fs;
  size_t *stack;
  size_t depth;
  char *state; /* 0 unvisited, 1 on stack, 2 done */
  long found;
} cycle_walk_t;

static void cycle_dfs(cycle_walk_t *c, size_t i);

static void cycle_step(void *arg, const wf__step_t *s) {
  cycle_walk_t *c = arg;
  if (c->found >= 0 || s->kind != WF_STEP_WORKFLOW || !s->u.workflow.name) return;
  long t = set_find(c->fs, s->u.workflow.name);
  if (t < 0) return;
  if (c->state[t] == 1) {
    size_t self = c->stack[c->depth - 1];
    char *chain = xstrdup("");
    bool on = false;
    for (size_t k = 0; k < c->depth; k++) {
      if (c->stack[k] == (size_t)t) on = true;
      if (!on) continue;
      char *next = xasprintf("%s%s -> ", chain, c->fs->wfs[c->stack[k]]->name);
      free(chain);
      chain = next;
    }
    wf__error_at_step(c->fs->wfs[self], s, "workflow", c->fs->errs[self],
                      "sub-workflow cycle: %s%s", chain, s->u.workflow.name);
    free(chain);
    c->found = (long)self;
    return;
  }
  if (c->state[t] == 0) cycle_dfs(c, (size_t)t);
}

static void cycle_dfs(cycle_walk_t *c, size_t i) {
  c->state[i] = 1;
  c->stack[c->depth++] = i;
  wf__steps_walk(&c->fs->wfs[i]->steps, cycle_step, c);
  c->depth--;
  c->state[i] = 2;
}

static void check_references(fileset_t *fs) {
  const char **rejected = xcalloc(fs->n + 1, sizeof(char *));
  char **names = xcalloc(fs->n + 1, sizeof(char *));
  for (size_t i = 0; i < fs->n; i++)
    if (fs->wfs[i]) names[i] = xstrdup(fs->wfs[i]->name);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < fs->n; i++)
      if (!fs->wfs[i]) rejected[i] = names[i];
    for (size_t i = 0; i < fs->n; i++) {
      if (!fs->wfs[i]) continue;
      ref_walk_t w = {.fs = fs, .self = i, .was_rejected = rejected};
      wf__steps_walk(&fs->wfs[i]->steps, check_step_ref, &w);
      if (w.bad) {
        set_reject(fs, i);
        rejected[i] = names[i];
        changed = true;
      }
    }
    if (changed) continue;
    cycle_walk_t c = {.fs = fs, .stack = xcalloc(fs->n + 1, sizeof(size_t)),
                      .state = xcalloc(fs->n + 1, 1), .found = -1};
    for (size_t i = 0; i < fs->n && c.found < 0; i++)
      if (fs->wfs[i] && !c.state[i]) cycle_dfs(&c, i);
    if (c.found >= 0) {
      set_reject(fs, (size_t)c.found);
      changed = true;
    }
    free(c.stack);
    free(c.state);
  }
  for (size_t i = 0; i < fs->n; i++) free(names[i]);
  free(names);
  free(rejected);
}

static void fileset_load(fileset_t *fs, const json_t *profiles) {
  for (size_t i = 0; i < fs->n; i++) {
    wf_errors_t *list = wf__errors_new();
    wf_workflow_t *wf = NULL;
    char *text = NULL;
    size_t len = 0;
    /* Sub-workflow names are checked across the whole set afterwards. */
    if (wf__read_file(fs->paths[i], &text, &len, list) == 0) {
      if (wf__load(text, len, fs->paths[i], profiles, NULL, NULL, &wf, list) < 0) wf = NULL;
      free(text);
    }
    fs->wfs[i] = wf;
    fs->errs[i] = list;
  }
  check_duplicates(fs);
  check_references(fs);
}

static void fileset_free(fileset_t *fs) {
  for (size_t i = 0; i < fs->n; i++) {
    free(fs->paths[i]);
    wf_workflow_unref(&fs->wfs[i]);
    wf_errors_free(fs->errs[i]);
  }
  free(fs->paths);
  free(fs->wfs);
  free(fs->errs);
}

static void fileset_init(fileset_t *fs, size_t n) {
  fs->n = n;
  fs->paths = xcalloc(n + 1, sizeof(char *));
  fs->wfs = xcalloc(n + 1, sizeof(wf_workflow_t *));
  fs->errs = xcalloc(n + 1, sizeof(wf_errors_t *));
}

/* ---- folders and path lists ------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_json_name(const char *name) {
  size_t n = strlen(name);
  return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}

int wf_registry_load_dir(const char *dir, const json_t *shared_profiles, wf_registry_t **out,
                         wf_errors_t **errs) {
  *out = NULL;
  wf_errors_t *all = wf__errors_new();
  if (errs) *errs = NULL;
  DIR *d = opendir(dir);
  if (!d) {
    int rc = -errno;
    wf__errors_add(all, dir, "", 0, 0, "cannot open the workflow folder: %s", strerror(-rc));
    if (errs)
      *errs = all;
    else
      wf_errors_free(all);
    return rc;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  bool too_many = false;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!is_json_name(de->d_name)) continue;
    char *path = xasprintf("%s/%s", dir, de->d_name);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
      free(path);
      continue;
    }
    if (n == WF_MAX_REGISTRY_FILES) {
      too_many = true;
      free(path);
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      names = xrealloc(names, cap * sizeof(char *));
    }
    names[n++] = path;
  }
  closedir(d);
  if (n) qsort(names, n, sizeof(char *), cmp_str);
  if (too_many)
    wf__errors_add(all, dir, "", 0, 0, "more than %d workflow files; the rest are ignored",
                   WF_MAX_REGISTRY_FILES);

  fileset_t fs;
  fileset_init(&fs, n);
  for (size_t i = 0; i < n; i++) fs.paths[i] = names[i];
  free(names);
  fileset_load(&fs, shared_profiles);

  wf_registry_t *reg = wf_registry_new(shared_profiles);
  bool rejected = too_many;
  for (size_t i = 0; i < fs.n; i++) {
    wf__errors_move(all, fs.errs[i]);
    if (!fs.wfs[i]) {
      rejected = true;
      continue;
    }
    int rc = wf_registry_add(reg, fs.wfs[i]);
    (void)rc; /* names are unique after check_duplicates */
  }
  fileset_free(&fs);
  *out = reg;
  if (errs && wf_errors_count(all) > 0)
    *errs = all;
  else
    wf_errors_free(all);
  return rejected ? -EINVAL : 0;
}

int wf_validate_files(const char *const *paths, size_t n, const json_t *shared_profiles,
                      FILE *out) {
  fileset_t fs;
  fileset_init(&fs, n);
  for (size_t i = 0; i < n; i++) fs.paths[i] = xstrdup(paths[i]);
  fileset_load(&fs, shared_profiles);
  int code = 0;
  for (size_t i = 0; i < n; i++) {
    if (fs.wfs[i] && wf_errors_count(fs.errs[i]) == 0) {
      char *file = wf__escape_dup(fs.paths[i]);
      fprintf(out, "%s: ok (workflow %s)\n", file, WF__Q(fs.wfs[i]->name));
      free(file);
      continue;
    }
    code = 1;
    char *text = wf_errors_format(fs.errs[i]);
    fputs(text, out);
    free(text);
  }
  fileset_free(&fs);
  return code;
}
