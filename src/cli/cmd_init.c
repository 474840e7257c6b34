#include "cli/cli.h"
int cmd_init(int argc, char **argv) { fprintf(stderr, "not yet\n"); return 1; }
