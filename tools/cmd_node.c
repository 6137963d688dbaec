/*  hafl node: run the actors a topology places on one host (placement/hosts/NAME), or one of
    the implicit groups ("server", "evaluator", "clients-0", "clients-1") that `hafl run
    --processes` starts. The node hosting the server prints the final adapter digest at the end.
*/
#include "hafl_cmd.h"
#include "hafl_node.h"
#include "hafl_signals.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_usage(FILE *out)
{
    fprintf(out, "usage: hafl node FILE --host NAME [--set KEY=VALUE]... [--run-dir DIR]\n"
                 "                 [--run-id ID] [--resume RUNDIR] [--slots N]\n"
                 "\n"
                 "Run the actors placed on host NAME (placement/hosts/NAME) until the federation\n"
                 "ends. Without placement/hosts the groups are server, evaluator, clients-0 and\n"
                 "clients-1.\n"
                 "\n"
                 "options:\n"
                 "  --host NAME      the host or group to run (required)\n"
                 "  --set KEY=VALUE  override a topology key\n"
                 "  --run-dir DIR    run folder to use (default: a new one on the server's\n"
                 "                   host, and on a client host for its clients' state)\n"
                 "  --run-id ID      run id (default: the run folder's name)\n"
                 "  --resume RUNDIR  continue from an earlier run folder of this host: the\n"
                 "                   server's checkpoint, the clients' state files\n"
                 "  --slots N        compute slots (default: number of cores)\n"
                 "  --child          started by `hafl run` (which prints the digest itself)\n"
                 "  --help           this text\n"
                 "\n"
                 "exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error\n");
}

int hafl_cmd_node(int argc, char **argv)
{
    hafl_signals_catch();
    const char **overrides = NULL;
    size_t n_overrides = 0;
    hafl_topology_error_t terr;
    if (hafl_topology_take_overrides(&argc, argv, &overrides, &n_overrides, &terr)) {
        fprintf(stderr, "hafl node: %s\n", terr.text);
        return HAFL_EXIT_USAGE;
    }
    const char *file = NULL, *host = NULL, *run_dir = NULL, *run_id = NULL, *resume = NULL;
    bool child = false;
    unsigned slots = 0;
    int rc = HAFL_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
            s_usage(stdout);
            free(overrides);
            return HAFL_EXIT_OK;
        } else if (streq(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (streq(argv[i], "--run-dir") && i + 1 < argc)
            run_dir = argv[++i];
        else if (streq(argv[i], "--run-id") && i + 1 < argc)
            run_id = argv[++i];
        else if (streq(argv[i], "--resume") && i + 1 < argc)
            resume = argv[++i];
        else if (streq(argv[i], "--child"))
            child = true;
        else if (streq(argv[i], "--slots") && i + 1 < argc) {
            if (hafl_cmd_parse_count("node", "--slots", argv[++i], 1024, &slots)) {
                free(overrides);
                return HAFL_EXIT_USAGE;
            }
        } else if (argv[i][0] == '-' || file) {
            fprintf(stderr, "hafl node: unexpected argument '%s'\n", argv[i]);
            s_usage(stderr);
            free(overrides);
            return HAFL_EXIT_USAGE;
        } else
            file = argv[i];
    }
    if (!file || !host) {
        s_usage(stderr);
        free(overrides);
        return HAFL_EXIT_USAGE;
    }
    hafl_topology_t *t = hafl_topology_load(file, overrides, n_overrides, &terr);
    if (!t) {
        fprintf(stderr, "%s\n", terr.text);
        free(overrides);
        return HAFL_EXIT_USAGE;
    }
    char err[512], hex[65], reason[512];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.group = host;
    opts.run_dir = run_dir;
    opts.run_id = run_id;
    opts.resume = resume;
    opts.progress = stdout;
    opts.slots = slots;
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    if (!node) {
        fprintf(stderr, "hafl node %s: %s\n", host, err);
        rc = strstr(err, "placement") ? HAFL_EXIT_USAGE : HAFL_EXIT_FAILURE;
    } else {
        if (hafl_node_run_dir(node)[0] && !child) {
            printf("folder %s\n", hafl_node_run_dir(node));
            fflush(stdout);
        }
        int wrc = hafl_node_wait(node, hex, reason, sizeof reason);
        if (hex[0] && !child)
            printf("final adapter sha256 %s\n", hex);
        if (hafl_node_run_dir(node)[0] && !child)
            printf("run folder %s\n", hafl_node_run_dir(node));
        if (wrc)
            fprintf(stderr, "hafl node %s: %s\n", host, reason);
        hafl_node_destroy(&node);
        rc = wrc ? HAFL_EXIT_FAILURE : HAFL_EXIT_OK;
    }
    hafl_topology_destroy(&t);
    free(overrides);
    return rc;
}
