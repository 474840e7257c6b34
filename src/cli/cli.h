/* cli.h - internal header of src/cli: one function per verb (cmd_<verb>.c), each taking the
 * arguments after the verb (argv[0] is the verb) and returning the process exit code. */
#ifndef RL_CLI_H
#define RL_CLI_H

#include "core/core.h"

typedef struct rl_cli_verb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} rl_cli_verb;

int cmd_init(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Prints "raftlm: <msg>" to stderr and returns the exit code for that status (1; 2 for usage). */
int cli_report(const rl_error *err);
/* Exit code 2 with a usage line. */
int cli_usage(const char *verb, const char *usage);

#endif
