/* Command line: `coordinator [--config FILE] [--listen HOST:PORT] [--data-dir DIR]
 * [--log-level L]`, --help, --version, and a table of subcommands (`coordinator NAME ...`:
 * `validate [--config FILE] FILE...`). Owns argv parsing and the order in which configuration sources
 * apply (defaults < file < environment < flags); exits 2 on bad usage or configuration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "coordinator.h"
#include "internal.h"
#include "workflows.h"

#define EXIT_USAGE 2

typedef struct cli_flag {
  const char *name;  /* "--listen" */
  const char *key;   /* config key it sets; NULL for --config */
  const char *value; /* placeholder in usage */
  const char *help;
} cli_flag_t;

static const cli_flag_t cli_flags[] = {
    {"--config", NULL, "FILE", "JSON configuration file (see docs/configuration.md)"},
    {"--listen", "listen", "HOST:PORT", "address to serve on (default 127.0.0.1:8080)"},
    {"--data-dir", "data_dir", "DIR", "directory for data files (default ./data)"},
    {"--log-level", "log_level", "LEVEL", "debug | info | warn | error | off (default info)"},
};

/* Subcommands: `coordinator NAME args...`; argv[0] is NAME. */
typedef struct cli_command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *usage;
  const char *help;
} cli_command_t;

static int cli_validate(int argc, char **argv);
static const char *cli_getenv(const char *name, void *ud);

static const cli_command_t cli_commands[] = {
    {"validate", cli_validate, "validate [--config FILE] FILE...",
     "check workflow files and exit: 0 all valid, 1 some invalid (each error as "
     "file:line:col: path: reason), 2 bad usage; --config resolves shared profiles"},
    {NULL, NULL, NULL, NULL},
};

#define CLI_VALIDATE_USAGE "usage: coordinator validate [--config FILE] FILE...\n"

/* `coordinator validate [--config FILE] [--] FILE...`: the files are loaded and checked
 * like the daemon does (sub-workflow references among them included). With --config, the
 * file's `agents` (and COORDINATOR_AGENTS from the environment, as the daemon applies
 * it) resolve `{"ref": ...}` profiles; without it refs are not checked. Every result
 * goes to stdout; usage and configuration errors to stderr. */
static int cli_validate(int argc, char **argv) {
  const char *config_path = NULL;
  int first = 1;
  for (; first < argc && argv[first][0] == '-' && argv[first][1]; first++) {
    const char *arg = argv[first];
    if (strcmp(arg, "--") == 0) {
      first++;
      break;
    }
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      printf(CLI_VALIDATE_USAGE "\n"
             "Checks workflow files (docs/workflows.md) without starting the daemon. Prints\n"
             "\"FILE: ok (workflow \\\"name\\\")\" for a valid file and one line per error\n"
             "(\"file:line:col: path: reason\") otherwise. Shared agent profiles ({\"ref\": ...})\n"
             "are checked against the `agents` of the --config file (and of COORDINATOR_AGENTS);\n"
             "without --config they are not checked.\n\n"
             "Exit status: 0 every file is valid, 1 some file is invalid or unreadable, 2 bad\n"
             "usage or configuration.\n");
      return 0;
    }
    if (strcmp(arg, "--config") == 0 && first + 1 < argc) {
      config_path = argv[++first];
      continue;
    }
    if (strncmp(arg, "--config=", 9) == 0) {
      config_path = arg + 9;
      continue;
    }
    fprintf(stderr, "coordinator validate: %s '%s'\n" CLI_VALIDATE_USAGE,
            strcmp(arg, "--config") == 0 ? "a value is needed after" : "unknown option", arg);
    return EXIT_USAGE;
  }
  if (first >= argc) {
    fprintf(stderr, "coordinator validate: no file given\n" CLI_VALIDATE_USAGE);
    return EXIT_USAGE;
  }
  coord_config_t cfg;
  coord_config_error_t err;
  coord_config_defaults(&cfg);
  if (config_path && (coord_config_apply_file(&cfg, config_path, &err) < 0 ||
                      coord_config_apply_env(&cfg, cli_getenv, NULL, &err) < 0)) {
    fprintf(stderr, "coordinator validate: invalid configuration: %s\n", err.text);
    coord_config_close(&cfg);
    return EXIT_USAGE;
  }
  int code = wf_validate_files((const char *const *)(argv + first), (size_t)(argc - first),
                               config_path ? cfg.agents : NULL, stdout);
  fflush(stdout);
  coord_config_close(&cfg);
  return code;
}

static void cli_usage(FILE *out) {
  fprintf(out, "usage: coordinator [--config FILE] [--listen HOST:PORT] [--data-dir DIR] "
               "[--log-level LEVEL]\n");
  for (const cli_command_t *c = cli_commands; c->name; c++) fprintf(out, "       coordinator %s\n", c->usage);
  fprintf(out, "       coordinator --help | --version\n\n"
               "The coordinator daemon: HTTP and WebSocket on one libuv loop.\n\n"
               "options:\n");
  for (size_t i = 0; i < sizeof cli_flags / sizeof cli_flags[0]; i++) {
    char left[48];
    snprintf(left, sizeof left, "%s %s", cli_flags[i].name, cli_flags[i].value);
    fprintf(out, "  %-28s %s\n", left, cli_flags[i].help);
  }
  fprintf(out, "  %-28s %s\n  %-28s %s\n", "-h, --help", "show this help",
          "-V, --version", "print the version");
  fprintf(out, "\ncommands:\n");
  for (const cli_command_t *c = cli_commands; c->name; c++)
    fprintf(out, "  %-28s %s\n", c->usage, c->help);
  fprintf(out, "\nconfiguration keys (file key, default, meaning, environment override):\n");
  coord_config_print_keys(out);
  fprintf(out, "\nPrecedence: command line > environment > file > default.\n"
               "Exit status: 0 after a graceful shutdown, 1 on a runtime failure, 2 on bad usage\n"
               "or configuration, 128+N when a second signal N forces the exit.\n");
}

static int cli_fail(const char *fmt, const char *arg) {
  fprintf(stderr, "coordinator: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'coordinator --help'.\n");
  return EXIT_USAGE;
}

static const char *cli_getenv(const char *name, void *ud) {
  (void)ud;
  return getenv(name);
}

static int cli_config_error(const coord_config_error_t *err) {
  char msg[800];
  snprintf(msg, sizeof msg, "invalid configuration: %s", err->text);
  log_error("config", msg, "{s:s,s:s,s:s}", "key", err->key, "reason", err->reason, "source",
            err->where);
  return EXIT_USAGE;
}

int coord_main(int argc, char **argv) {
  if (argc > 1 && argv[1][0] != '-') {
    for (const cli_command_t *c = cli_commands; c->name; c++)
      if (strcmp(c->name, argv[1]) == 0) return c->run(argc - 1, argv + 1);
    return cli_fail("unknown command '%s'", argv[1]);
  }

  const char *config_path = NULL;
  const char *values[sizeof cli_flags / sizeof cli_flags[0]] = {0};
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      cli_usage(stdout);
      return 0;
    }
    if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
      printf("coordinator %s\n", COORD_VERSION);
      return 0;
    }
    size_t k = 0, nflags = sizeof cli_flags / sizeof cli_flags[0];
    const char *value = NULL;
    for (; k < nflags; k++) {
      size_t n = strlen(cli_flags[k].name);
      if (strcmp(arg, cli_flags[k].name) == 0) {
        if (i + 1 >= argc) return cli_fail("option '%s' needs a value", arg);
        value = argv[++i];
        break;
      }
      if (strncmp(arg, cli_flags[k].name, n) == 0 && arg[n] == '=') {
        value = arg + n + 1;
        break;
      }
    }
    if (k == nflags) {
      if (arg[0] == '-') return cli_fail("unknown option '%s'", arg);
      return cli_fail("unexpected argument '%s'", arg);
    }
    if (!cli_flags[k].key) config_path = value;
    else values[k] = value;
  }

  coord_config_t cfg;
  coord_config_error_t err;
  int code = EXIT_USAGE;
  coord_config_defaults(&cfg);
  if (config_path && coord_config_apply_file(&cfg, config_path, &err) < 0) goto bad;
  if (coord_config_apply_env(&cfg, cli_getenv, NULL, &err) < 0) goto bad;
  for (size_t k = 0; k < sizeof cli_flags / sizeof cli_flags[0]; k++)
    if (values[k] && coord_config_set(&cfg, cli_flags[k].key, values[k], cli_flags[k].name, &err) < 0)
      goto bad;
  if (coord_config_validate(&cfg, &err) < 0) goto bad;
  code = coord__daemon_run(&cfg);
  coord_config_close(&cfg);
  return code;
bad:
  code = cli_config_error(&err);
  coord_config_close(&cfg);
  return code;
}
