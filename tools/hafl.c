/*  hafl: the single binary. `hafl COMMAND [ARGS]` dispatches to one of the subcommands in
    tools/cmd_*.c. Exit codes, for every command: 0 success; 1 runtime failure; 2 usage or
    configuration error (bad flags, invalid topology, missing asset).
*/
#include "hafl_blas.h"
#include "hafl_signals.h"
#include "hafl_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const hafl_cmd_t s_commands[] = {
#define HAFL_CMD(name, fn, summary) {name, fn, summary},
#include "hafl_cmd_list.h"
#undef HAFL_CMD
};
static const size_t s_command_count = sizeof s_commands / sizeof s_commands[0];

int
hafl_cmd_parse_count (const char *cmd, const char *flag, const char *text, unsigned long max,
                      unsigned *out)
{
    char *end = NULL;
    unsigned long value = strtoul (text, &end, 10);
    if (!end || end == text || *end || text[0] == '-' || value > max) {
        fprintf (stderr, "hafl %s: %s: expected 0..%lu\n", cmd, flag, max);
        return -1;
    }
    *out = (unsigned) value;
    return 0;
}

int
hafl_cmd_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: hafl COMMAND [ARGS]   (hafl COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < s_command_count; i++)
        fprintf (out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf (out, "\nexit codes: 0 ok, 1 runtime failure, 2 usage or configuration error\n");
}

int
main (int argc, char **argv)
{
    hafl_blas_choose_kernels (argv);
    //  Before any thread or ZeroMQ context exists, so that every thread inherits the mask.
    hafl_signals_start ();
    if (argc < 2) {
        s_usage (stderr);
        return HAFL_EXIT_USAGE;
    }
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "help") == 0) {
        s_usage (stdout);
        return HAFL_EXIT_OK;
    }
    for (size_t i = 0; i < s_command_count; i++)
        if (strcmp (argv[1], s_commands[i].name) == 0)
            return s_commands[i].run (argc - 1, argv + 1);
    fprintf (stderr, "hafl: unknown command '%s'\n", argv[1]);
    s_usage (stderr);
    return HAFL_EXIT_USAGE;
}
