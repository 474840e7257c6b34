#include "cli/cli.h"
int cmd_ingest(int argc, char **argv) { fprintf(stderr, "not yet\n"); return 1; }
