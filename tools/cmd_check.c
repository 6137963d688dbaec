/*  hafl check FILE [--set KEY=VALUE]...: loads a topology exactly as `hafl run` would (overrides,
    defaults, every check, asset lookup) and prints the resolved settings, one "key = value"
    line each. Invalid: prints the one-line error "FILE:LINE: KEY: reason" and exits 2.
*/
#include "hafl_cmd.h"
#include "hafl_placement.h"
#include "hafl_topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl check FILE [--set KEY=VALUE]...\n\n"
            "Validates the topology FILE with the overrides applied (the same key paths as in\n"
            "the file, e.g. --set server/rounds=5 --set clients/ranks=2,4,8) and prints every\n"
            "resolved setting as `key = value`. topologies/README.md documents the keys.\n\n"
            "exit codes: 0 valid, 2 invalid (one line FILE:LINE: KEY: reason on stderr;\n"
            "LINE is 0 for overrides and defaults) or bad usage\n");
}

int hafl_cmd_check(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
    const char **overrides = NULL;
    size_t n_overrides = 0;
    hafl_topology_error_t err;
    if (hafl_topology_take_overrides(&argc, argv, &overrides, &n_overrides, &err)) {
        fprintf(stderr, "hafl check: %s\n", err.text);
        return HAFL_EXIT_USAGE;
    }
    if (argc != 2 || argv[1][0] == '-') {
        if (argc > 1 && argv[1][0] == '-')
            fprintf(stderr, "hafl check: unknown option '%s'\n", argv[1]);
        s_usage(stderr);
        free(overrides);
        return HAFL_EXIT_USAGE;
    }
    hafl_topology_t *topology = hafl_topology_load(argv[1], overrides, n_overrides, &err);
    free(overrides);
    if (!topology) {
        fprintf(stderr, "%s\n", err.text);
        return HAFL_EXIT_USAGE;
    }
    char why[512];
    if (hafl_placement_check_limits(topology, false, why, sizeof why)) {
        fprintf(stderr, "%s\n", why);
        hafl_topology_destroy(&topology);
        return HAFL_EXIT_USAGE;
    }
    hafl_topology_print(topology, stdout);
    hafl_topology_destroy(&topology);
    return HAFL_EXIT_OK;
}
