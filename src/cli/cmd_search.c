#include "cli/cli.h"
int cmd_search(int argc, char **argv) { fprintf(stderr, "not yet\n"); return 1; }
