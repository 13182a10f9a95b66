/* Tests for workflows/validate.c and workflows/steps.c: every example validates, and a
 * table of invalid documents, each with the exact errors expected (path: reason, in
 * order), plus valid documents that exercise the scope rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <dirent.h>

#include "wf_test_util.h"

#define AG "'agents':{'w':{'provider':'mock'},'writer2':{'provider':'mock'}}"
#define X10 "xxxxxxxxxx"
#define LLM(id, prompt) "{'id':'" id "','type':'llm','agent':'w','prompt':'" prompt "'}"

typedef struct vcase {
  const char *name;
  const char *doc;
  const char *want; /* "" for a valid document */
} vcase_t;

static const vcase_t cases[] = {
    {"minimal valid", "{'name':'t'," AG ",'steps':[" LLM("a", "hi") "]}", ""},
    {"unknown agent profile",
     "{'name':'t'," AG ",'steps':[" LLM("a", "hi") ",{'id':'b','type':'llm','agent':'w','prompt':'x'},"
     "{'id':'c','type':'llm','agent':'reader','prompt':'x'}]}",
     "steps[2].agent: unknown agent profile \"reader\""},
    {"unknown agent profile with a hint",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'writer','prompt':'x'}]}",
     "steps[0].agent: unknown agent profile \"writer\" (did you mean \"writer2\"?)"},
    {"no agents declared",
     "{'name':'t','steps':[{'id':'a','type':'llm','agent':'w','prompt':'x'}]}",
     "steps[0].agent: unknown agent profile \"w\" (the workflow declares no agents)"},
    {"unknown field with a hint and the missing one",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','promt':'x'}]}",
     "steps[0].promt: unknown field (did you mean \"prompt\"?)\n"
     "steps[0].prompt: missing required field"},
    {"unknown top-level field", "{'name':'t','stpes':[]," AG ",'steps':[" LLM("a", "x") "]}",
     "stpes: unknown field (did you mean \"steps\"?)"},
    {"missing name and steps", "{" AG "}",
     "name: missing required field\nsteps: missing required field"},
    {"bad workflow name", "{'name':'Bad Name'," AG ",'steps':[" LLM("a", "x") "]}",
     "name: workflow names are 1 to 64 of a-z, 0-9, _ and -"},
    {"not an object", "[1,2]", "a workflow is a JSON object, got array"},
    {"empty steps", "{'name':'t','steps':[]}", "steps: must contain at least one step"},
    {"steps of the wrong type", "{'name':'t','steps':{}}", "steps: expected an array of steps, got object"},
    {"a step that is not an object", "{'name':'t','steps':[3]}",
     "steps[0]: expected a step object, got integer"},
    {"duplicate step id",
     "{'name':'t'," AG ",'steps':[" LLM("a", "x") ",{'id':'m','type':'map','over':'{{ input.l }}',"
     "'steps':[" LLM("a", "y") "]}],'inputs':{'l':{'type':'array'}}}",
     "steps[1].steps[0].id: duplicate step id \"a\" (first defined at steps[0])"},
    {"bad step id", "{'name':'t'," AG ",'steps':[" LLM("a b", "x") "]}",
     "steps[0].id: step ids are 1 to 64 letters, digits, _ or -"},
    {"unknown step type with a hint", "{'name':'t','steps':[{'id':'a','type':'lmm'}]}",
     "steps[0].type: unknown step type \"lmm\" (did you mean \"llm\"?)"},
    {"unknown step type", "{'name':'t','steps':[{'id':'a','type':'shell'}]}",
     "steps[0].type: unknown step type \"shell\" (expected llm, agent, parallel, map, switch, "
     "loop, approval, workflow or transform)"},
    {"loop without max_iterations",
     "{'name':'t'," AG ",'steps':[{'id':'l','type':'loop','steps':[" LLM("a", "x") "]}]}",
     "steps[0].max_iterations: missing required field"},
    {"loop max_iterations over the bound",
     "{'name':'t'," AG ",'steps':[{'id':'l','type':'loop','max_iterations':5000,'steps':[" LLM("a", "x") "]}]}",
     "steps[0].max_iterations: must be from 1 to 1000, got 5000"},
    {"loop max_iterations of the wrong type",
     "{'name':'t'," AG ",'steps':[{'id':'l','type':'loop','max_iterations':'3','steps':[" LLM("a", "x") "]}]}",
     "steps[0].max_iterations: expected an integer, got string"},
    {"template reads a later step",
     "{'name':'t'," AG ",'steps':[" LLM("a", "{{ steps.b.output }}") "," LLM("b", "x") "]}",
     "steps[0].prompt: step \"b\" has not run at this point in {{ steps.b.output }} (only earlier "
     "steps of this list and of enclosing lists are visible)"},
    {"template reads an unknown step with a hint",
     "{'name':'t'," AG ",'steps':[" LLM("research", "x") "," LLM("b", "{{ steps.reserch.output }}") "]}",
     "steps[1].prompt: unknown step \"reserch\" in {{ steps.reserch.output }} (did you mean \"research\"?)"},
    {"template reads its own step",
     "{'name':'t'," AG ",'steps':[" LLM("a", "{{ steps.a.output }}") "]}",
     "steps[0].prompt: step \"a\" cannot read its own output in {{ steps.a.output }}"},
    {"template reads an enclosing step",
     "{'name':'t'," AG ",'steps':[{'id':'l','type':'loop','max_iterations':2,'steps':["
     LLM("a", "{{ steps.l.output }}") "]}]}",
     "steps[0].steps[0].prompt: step \"l\" encloses this one, its output is not ready in {{ steps.l.output }}"},
    {"template reads a step without .output",
     "{'name':'t'," AG ",'steps':[" LLM("a", "x") "," LLM("b", "{{ steps.a }}") "]}",
     "steps[1].prompt: expected steps.<id>.output in {{ steps.a }}"},
    {"template reads inside a map from outside",
     "{'name':'t'," AG ",'inputs':{'l':{'type':'array'}},'steps':[{'id':'m','type':'map',"
     "'over':'{{ input.l }}','steps':[" LLM("a", "{{ item }}") "]}," LLM("b", "{{ steps.a.output }}") "]}",
     "steps[1].prompt: step \"a\" has not run at this point in {{ steps.a.output }} (only earlier "
     "steps of this list and of enclosing lists are visible)"},
    {"sibling parallel branches cannot see each other",
     "{'name':'t'," AG ",'steps':[{'id':'p','type':'parallel','branches':[[" LLM("a", "x") "],["
     LLM("b", "{{ steps.a.output }}") "]]}]}",
     "steps[0].branches[1][0].prompt: step \"a\" has not run at this point in {{ steps.a.output }} "
     "(only earlier steps of this list and of enclosing lists are visible)"},
    {"item outside a map", "{'name':'t'," AG ",'steps':[" LLM("a", "{{ item }} and {{ index }}") "]}",
     "steps[0].prompt: {{ item }} is only defined inside the steps of a map\n"
     "steps[0].prompt: {{ index }} is only defined inside the steps of a map"},
    {"iteration outside a loop", "{'name':'t'," AG ",'steps':[" LLM("a", "{{ iteration }}") "]}",
     "steps[0].prompt: {{ iteration }} is only defined inside a loop"},
    {"unknown input with a hint",
     "{'name':'t','inputs':{'topic':{'type':'string'}}," AG ",'steps':[" LLM("a", "{{ input.topc }}") "]}",
     "steps[0].prompt: unknown input \"topc\" in {{ input.topc }} (did you mean \"topic\"?)"},
    {"unknown run field", "{'name':'t'," AG ",'steps':[" LLM("a", "{{ run.user }}") "]}",
     "steps[0].prompt: unknown run field \"user\" in {{ run.user }} (expected id or workflow)"},
    {"unterminated template", "{'name':'t'," AG ",'steps':[" LLM("a", "Hello {{ input.x") "]}",
     "steps[0].prompt: bad template: unterminated \"{{\" (at offset 6)"},
    {"unknown template root with a hint", "{'name':'t'," AG ",'steps':[" LLM("a", "{{ inputs.x }}") "]}",
     "steps[0].prompt: bad template: unknown name \"inputs\" (did you mean \"input\"?) (at offset 3)"},
    {"empty template", "{'name':'t'," AG ",'steps':[" LLM("a", "a {{ }}") "]}",
     "steps[0].prompt: bad template: empty \"{{ }}\" (at offset 2)"},
    {"template error inside a value template",
     "{'name':'t','steps':[{'id':'t1','type':'transform','value':{'a':[1,'{{ item }}'],'b':'{{ run.id'}}]}",
     "steps[0].value.a[1]: {{ item }} is only defined inside the steps of a map\n"
     "steps[0].value.b: bad template: unterminated \"{{\" (at offset 0)"},
    {"catch goto an unknown step",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','catch':{'goto':'nope'}}]}",
     "steps[0].catch.goto: unknown step \"nope\""},
    {"catch goto an earlier step",
     "{'name':'t'," AG ",'steps':[" LLM("a", "x") ",{'id':'b','type':'llm','agent':'w','prompt':'x','catch':{'goto':'a'}}]}",
     "steps[1].catch.goto: step \"a\" is not a later step of the same list"},
    {"catch with goto and action",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','catch':{'goto':'b','action':'fail'}}," LLM("b", "x") "]}",
     "steps[0].catch: use either \"goto\" or \"action\", not both"},
    {"catch with an unknown action",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','catch':{'action':'retry'}}]}",
     "steps[0].catch.action: unknown action \"retry\" (expected fail or continue)"},
    {"catch output without continue",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','catch':{'action':'fail','output':1}}]}",
     "steps[0].catch.output: \"output\" needs \"action\": \"continue\""},
    {"retry with an unknown class and a bad cap",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','retry':"
     "{'max_attempts':0,'backoff_ms':500,'max_backoff_ms':100,'on':['rate_limit','boom'],'jitter':2}}]}",
     "steps[0].retry.max_attempts: must be from 1 to 20, got 0\n"
     "steps[0].retry.max_backoff_ms: must be at least backoff_ms (500)\n"
     "steps[0].retry.jitter: expected a number from 0 to 1 or a boolean\n"
     "steps[0].retry.on[0]: unknown error class \"rate_limit\" (did you mean \"rate_limited\"?)\n"
     "steps[0].retry.on[1]: unknown error class (expected rate_limited, timeout, server_error, "
     "network, invalid_output, stream_error, agent_error or any)"},
    {"timeout out of range",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','timeout_ms':0}]}",
     "steps[0].timeout_ms: must be from 1 to 604800000, got 0"},
    {"map over that is not a single expression",
     "{'name':'t'," AG ",'inputs':{'l':{'type':'array'}},'steps':[{'id':'m','type':'map',"
     "'over':'items: {{ input.l }}','concurrency':1000,'steps':[" LLM("a", "x") "]}]}",
     "steps[0].over: must be a single {{ expression }} that yields a list\n"
     "steps[0].concurrency: must be from 1 to 256, got 1000"},
    {"switch without cases",
     "{'name':'t','steps':[{'id':'s','type':'switch','value':'x','cases':{}}]}",
     "steps[0].cases: expected an object of {value: steps} with at least one case"},
    {"switch case that is not a list",
     "{'name':'t','steps':[{'id':'s','type':'switch','value':'x','cases':{'a b':{}}}]}",
     "steps[0].cases[\"a b\"]: expected an array of steps, got object"},
    {"parallel join unknown and empty branch",
     "{'name':'t'," AG ",'steps':[{'id':'p','type':'parallel','join':'first','branches':[[]]}]}",
     "steps[0].branches[0]: must contain at least one step\n"
     "steps[0].join: unknown join \"first\" (expected all or any)"},
    {"workflow step calling itself",
     "{'name':'t','steps':[{'id':'w','type':'workflow','workflow':'t'}]}",
     "steps[0].workflow: a workflow cannot run itself"},
    {"approval without prompt", "{'name':'t','steps':[{'id':'a','type':'approval'}]}",
     "steps[0].prompt: missing required field"},
    {"agent step fields",
     "{'name':'t','steps':[{'id':'a','type':'agent','topic':'acme/tasks','heartbeat_ms':5}]}",
     "steps[0].heartbeat_ms: must be from 100 to 3600000, got 5"},
    {"output schema with an unsupported keyword",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','output_schema':"
     "{'type':'object','properties':{'x':{'type':'string','pattern':'^a'}}}}]}",
     "steps[0].output_schema.properties.x.pattern: unsupported schema keyword"},
    {"output schema with a bad type",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','output_schema':{'type':'text'}}]}",
     "steps[0].output_schema.type: expected a type name (object, array, string, number, integer, "
     "boolean, null) or a list of them"},
    {"input default of the wrong type and unknown type",
     "{'name':'t','inputs':{'n':{'type':'integer','default':'5'},'x':{'type':'date'},'1a':{'type':'string'}},"
     "'steps':[{'id':'a','type':'transform','value':1}]}",
     "inputs.n.default: default must be of type integer, got string\n"
     "inputs.x.type: unknown type \"date\" (expected string, number, integer, boolean, object or array)\n"
     "inputs.1a: input names are letters, digits and _ (not starting with a digit)"},
    {"agent profile problems",
     "{'name':'t','agents':{'a':{'provider':'openai'},'b':{'provider':'gpt'},'c':{'ref':'x','model':'m'},"
     "'d':{'provider':'mock','params':{'temperature':3,'max_tokens':0},'base_url':'ftp://x','concurency':2}},"
     "'steps':[{'id':'s','type':'transform','value':1}]}",
     "agents.a.model: missing required field\n"
     "agents.b.provider: unknown provider \"gpt\" (expected mock, openai, anthropic or ollama)\n"
     "agents.c.model: comes from the shared profile; next to \"ref\" only \"system\" and \"params\" may be given\n"
     "agents.d.concurency: unknown field (did you mean \"concurrency\"?)\n"
     "agents.d.params.temperature: expected a number from 0 to 2\n"
     "agents.d.params.max_tokens: must be from 1 to 1000000, got 0\n"
     "agents.d.base_url: expected an http:// or https:// URL"},
    {"ref profile: own system and params checked, endpoint and unknown keys refused",
     "{'name':'t','agents':{'w':{'ref':'x','system':'{{ steps.a.output }}','params':{'temperature':5},"
     "'base_url':'http://h','colour':1}},'steps':[" LLM("a", "x") "]}",
     "agents.w.base_url: comes from the shared profile; next to \"ref\" only \"system\" and \"params\" may be given\n"
     "agents.w.colour: unknown key \"colour\" (next to \"ref\" only \"system\" and \"params\")\n"
     "agents.w.system: agent profiles cannot read step outputs ({{ steps.a.output }})\n"
     "agents.w.params.temperature: expected a number from 0 to 2"},
    {"agent system prompt reads a step",
     "{'name':'t','agents':{'w':{'provider':'mock','system':'{{ steps.a.output }}'}},'steps':[" LLM("a", "x") "]}",
     "agents.w.system: agent profiles cannot read step outputs ({{ steps.a.output }})"},
    {"output reads an unknown step",
     "{'name':'t'," AG ",'steps':[" LLM("a", "x") "],'output':{'r':'{{ steps.b.output }}'}}",
     "output.r: unknown step \"b\" in {{ steps.b.output }}"},
    /* strings quoted from the document are escaped and shortened (errors.c, wf__quote) */
    {"step type with a newline cannot forge another error line",
     "{'name':'t','steps':[{'id':'a','type':'x\\nt.json:1:1: forged: error'}]}",
     "steps[0].type: unknown step type \"x\\nt.json:1:1: forged: error\" (expected llm, agent, "
     "parallel, map, switch, loop, approval, workflow or transform)"},
    {"step type with a quote, and a hint",
     "{'name':'t','steps':[{'id':'a','type':'ll\\\"m'}]}",
     "steps[0].type: unknown step type \"ll\\\"m\" (did you mean \"llm\"?)"},
    {"overlong step type is cut at 64 bytes",
     "{'name':'t','steps':[{'id':'a','type':'" X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 "'}]}",
     "steps[0].type: unknown step type \"" X10 X10 X10 X10 X10 X10 "xxxx...\" (expected llm, agent, "
     "parallel, map, switch, loop, approval, workflow or transform)"},
    {"agent name with control characters, a backslash and an escape sequence",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'a\\\\b\\u001b[2J\\r\\t','prompt':'x'}]}",
     "steps[0].agent: unknown agent profile \"a\\\\b\\u001B[2J\\r\\t\""},
    {"template text between braces has its newline escaped, its quotes kept",
     "{'name':'t'," AG ",'steps':[" LLM("a", "{{ input[\\n\\\"x\\\"] }}") "]}",
     "steps[0].prompt: unknown input \"x\" in {{ input[\\n\"x\"] }}"},
    {"catch goto with a newline",
     "{'name':'t'," AG ",'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','catch':{'goto':'b\\nc'}}]}",
     "steps[0].catch.goto: unknown step \"b\\nc\""},
    /* valid documents exercising visibility */
    {"valid: parallel branch steps are visible after the parallel",
     "{'name':'t'," AG ",'steps':[{'id':'p','type':'parallel','branches':[[" LLM("a", "x") "],["
     LLM("b", "x") "]]}," LLM("c", "{{ steps.a.output }} {{ steps.b.output }} {{ steps.p.output }}") "]}",
     ""},
    {"valid: loop until sees the body, body sees enclosing earlier steps and iteration",
     "{'name':'t'," AG ",'steps':[" LLM("a", "x") ",{'id':'l','type':'loop','max_iterations':3,"
     "'until':'{{ steps.b.output.done == true }}','steps':[" LLM("b", "{{ steps.a.output }} #{{ iteration }}") "]}]}",
     ""},
    {"valid: map body sees item, index and earlier steps; catch goto a later sibling",
     "{'name':'t'," AG ",'inputs':{'l':{'type':'array','default':[]}},'steps':[" LLM("a", "x") ",{'id':'m','type':'map',"
     "'over':'{{ input.l }}','steps':[{'id':'b','type':'llm','agent':'w','prompt':'{{ item }} {{ index }} {{ steps.a.output }}',"
     "'catch':{'goto':'c'}}," LLM("c", "{{ item.name }}") "]}]}",
     ""},
    {"valid: switch with cases and default, catch continue with an output",
     "{'name':'t'," AG ",'steps':[{'id':'s','type':'switch','value':'{{ run.id }}','cases':{'x':["
     LLM("a", "x") "]},'default':[{'id':'b','type':'approval','prompt':'ok?','timeout_ms':1000,"
     "'catch':{'action':'continue','output':{'approved':false}}}]}],'output':'{{ steps.s.output }}'}",
     ""},
};

static void test_validate_reports_the_exact_errors_of_each_table_case(void **state) {
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < BASE_ARRAY_SIZE(cases); i++) {
    char *got = wft_errors_of(cases[i].doc, NULL);
    if (strcmp(got, cases[i].want) != 0) {
      print_error("case \"%s\":\n  want: %s\n  got:  %s\n", cases[i].name, cases[i].want, got);
      failed++;
    }
    free(got);
  }
  assert_int_equal(failed, 0);
}

/* The fuzz reproducer: a step type holding a newline and text shaped like an error line. */
static void test_validate_formats_the_forged_line_reproducer_as_one_escaped_line(void **state) {
  (void)state;
  char *path = wft_path("tests/fuzz/corpus/fuzz_workflow/crash-fuzz_workflow-1");
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_load_file(path, NULL, &wf, &errs), -EINVAL);
  assert_null(wf);
  char *text = wf_errors_format(errs);
  char *want = xasprintf("%s:1:45: steps[0].type: unknown step type \"x\\nfuzz.json:1:1: forged: "
                         "error\" (expected llm, agent, parallel, map, switch, loop, approval, "
                         "workflow or transform)\n", path);
  assert_string_equal(text, want);
  free(want);
  free(text);
  wf_errors_free(errs);
  free(path);
}

static void test_validate_accepts_every_example_workflow(void **state) {
  (void)state;
  char *dir = wft_path("examples/workflows");
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  wf_registry_t *reg = NULL;
  wf_errors_t *errs = NULL;
  /* Loaded as a folder so sub-workflow references resolve. */
  int rc = wf_registry_load_dir(dir, NULL, &reg, &errs);
  if (rc != 0) {
    char *text = wf_errors_format(errs);
    print_error("%s", text);
    free(text);
  }
  assert_int_equal(rc, 0);
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
    char *path = xasprintf("%s/%s", dir, de->d_name);
    wf_workflow_t *wf = NULL;
    wf_errors_t *e = NULL;
    int lrc = wf_load_file(path, reg, &wf, &e);
    if (lrc != 0) {
      char *text = wf_errors_format(e);
      print_error("%s", text);
      free(text);
    }
    assert_int_equal(lrc, 0);
    assert_null(e);
    wf_free(wf);
    free(path);
    n++;
  }
  closedir(d);
  assert_true(n >= 4);
  assert_int_equal(wf_registry_count(reg), n);
  wf_registry_free(reg);
  free(dir);
}

static void test_validate_reports_line_and_column_of_the_offending_value(void **state) {
  (void)state;
  const char *doc = "{\n"
                    "  \"name\": \"t\",\n"
                    "  \"agents\": {\"w\": {\"provider\": \"mock\"}},\n"
                    "  \"steps\": [\n"
                    "    {\"id\": \"a\", \"type\": \"llm\", \"agent\": \"w\", \"prompt\": \"x\"},\n"
                    "    {\"id\": \"b\", \"type\": \"llm\",\n"
                    "     \"agent\": \"writer\", \"prompt\": \"x\"},\n"
                    "    {\"id\": \"c\", \"type\": \"llm\", \"agent\": \"w\"}\n"
                    "  ]\n"
                    "}\n";
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_load_buffer(doc, strlen(doc), "x/t.json", NULL, &wf, &errs), -EINVAL);
  assert_null(wf);
  char *text = wf_errors_format(errs);
  /* A wrong value points at the value; a missing field at the object that lacks it. */
  assert_string_equal(text,
                      "x/t.json:7:15: steps[1].agent: unknown agent profile \"writer\"\n"
                      "x/t.json:8:5: steps[2].prompt: missing required field\n");
  free(text);
  wf_errors_free(errs);
}

static void test_validate_collects_all_errors_up_to_the_bound(void **state) {
  (void)state;
  char *doc = xstrdup("{\"name\":\"t\",\"steps\":[");
  for (int i = 0; i < 70; i++) {
    char *next = xasprintf("%s%s{\"id\":\"s%d\",\"type\":\"nope\"}", doc, i ? "," : "", i);
    free(doc);
    doc = next;
  }
  char *full = xasprintf("%s]}", doc);
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_load_buffer(full, strlen(full), "t.json", NULL, &wf, &errs), -EINVAL);
  assert_int_equal(wf_errors_count(errs), WF_MAX_ERRORS);
  assert_true(wf_errors_truncated(errs));
  char *text = wf_errors_format(errs);
  assert_non_null(strstr(text, "t.json: more errors omitted (only the first 50 are reported)\n"));
  free(text);
  json_t *arr = wf_errors_json(errs);
  assert_int_equal(json_array_size(arr), WF_MAX_ERRORS);
  assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "path")),
                      "steps[0].type");
  json_decref(arr);
  wf_errors_free(errs);
  free(doc);
  free(full);
}

static void test_validate_rejects_steps_nested_too_deep(void **state) {
  (void)state;
  /* Nine nested loops: the ninth body is past WF_MAX_STEP_DEPTH. */
  char *inner = xstrdup("{'id':'t','type':'transform','value':1}");
  for (int i = 0; i < 9; i++) {
    char *next = xasprintf("{'id':'l%d','type':'loop','max_iterations':1,'steps':[%s]}", i, inner);
    free(inner);
    inner = next;
  }
  char *doc = xasprintf("{'name':'t','steps':[%s]}", inner);
  char *got = wft_errors_of(doc, NULL);
  assert_string_equal(got, "steps[0].steps[0].steps[0].steps[0].steps[0].steps[0].steps[0]"
                           ".steps[0].steps: steps nested deeper than 8 levels");
  free(got);
  free(doc);
  free(inner);
}

static void test_validate_checks_sub_workflows_and_refs_against_a_registry(void **state) {
  (void)state;
  json_t *profiles = json_pack("{s:{s:s,s:s}}", "shared_writer", "provider", "openai", "model", "gpt-x");
  wf_registry_t *reg = wf_registry_new(profiles);
  json_decref(profiles);
  char *got = wft_errors_of("{'name':'t','agents':{'a':{'ref':'shared_writer'},'b':{'ref':'nobody'}},"
                            "'steps':[{'id':'w','type':'workflow','workflow':'child'},"
                            "{'id':'l','type':'llm','agent':'a','prompt':'x'}]}",
                            reg);
  assert_string_equal(got, "agents.b.ref: unknown shared profile \"nobody\"\n"
                           "steps[0].workflow: unknown workflow \"child\"");
  free(got);
  char *child = wft_q("{'name':'child','steps':[{'id':'x','type':'transform','value':1}]}");
  wf_workflow_t *wf = NULL;
  assert_int_equal(wf_load_buffer(child, strlen(child), "child.json", reg, &wf, NULL), 0);
  assert_int_equal(wf_registry_add(reg, wf), 0);
  assert_int_equal(wf_registry_add(reg, wf), -EEXIST);
  wf_free(wf);
  free(child);
  got = wft_errors_of("{'name':'t','agents':{'a':{'ref':'shared_writer'}},"
                      "'steps':[{'id':'w','type':'workflow','workflow':'child'},"
                      "{'id':'l','type':'llm','agent':'a','prompt':'x'}]}",
                      reg);
  assert_string_equal(got, "");
  free(got);
  wf_registry_free(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_validate_reports_the_exact_errors_of_each_table_case),
      cmocka_unit_test(test_validate_formats_the_forged_line_reproducer_as_one_escaped_line),
      cmocka_unit_test(test_validate_accepts_every_example_workflow),
      cmocka_unit_test(test_validate_reports_line_and_column_of_the_offending_value),
      cmocka_unit_test(test_validate_collects_all_errors_up_to_the_bound),
      cmocka_unit_test(test_validate_rejects_steps_nested_too_deep),
      cmocka_unit_test(test_validate_checks_sub_workflows_and_refs_against_a_registry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
