/* cmd_init.c - `raftlm init [DIR] [--force]`: writes DIR/raftlm.yaml with every key, its
 * default and a comment, from the config schema. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/config.h"

int cmd_init(int argc, char **argv) {
    static const struct option opts[] = {{"force", no_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int force = 0, c;
    while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
        if (c == 'f') force = 1;
        else if (c == 'h') {
            printf("usage: raftlm init [DIR] [--force]\n\nWrites DIR/raftlm.yaml (DIR defaults to the current folder) with every\n"
                   "setting, its default and what it does. --force overwrites an existing file.\n");
            return 0;
        } else return cli_usage("init", "[DIR] [--force]");
    }
    const char *dir = optind < argc ? argv[optind] : ".";
    rl_error err = {0};
    if (rl_mkdir_p(dir, &err)) return cli_report(&err);
    char *path = rl_path_join(dir, "raftlm.yaml");
    if (rl_path_exists(path) && !force) {
        fprintf(stderr, "raftlm: %s already exists (use --force to overwrite)\n", path);
        free(path);
        return 1;
    }
    char *text = rl_config_template();
    rl_status s = rl_file_write_atomic(path, text, strlen(text), &err);
    free(text);
    if (s) {
        free(path);
        return cli_report(&err);
    }
    rl_info("wrote %s: put your documents in %s/docs and run `raftlm ingest -c %s`", path, dir, path);
    free(path);
    return 0;
}
