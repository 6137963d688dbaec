/*  hafl_cmd: the contract between the `hafl` dispatcher and its subcommands.
    A subcommand is `int hafl_cmd_NAME (int argc, char **argv)` where argv[0] is the command
    name; it returns one of the exit codes below and prints its own --help. Each lives in
    tools/cmd_NAME.c and is listed once in hafl_cmd_list.h.
*/
#ifndef HAFL_CMD_H
#define HAFL_CMD_H

enum { HAFL_EXIT_OK = 0, HAFL_EXIT_FAILURE = 1, HAFL_EXIT_USAGE = 2 };

typedef struct {
    const char *name;
    int (*run) (int argc, char **argv);
    const char *summary;
} hafl_cmd_t;

//  Parse a flag's unsigned decimal value in 0..max into *out; on error print
//  "hafl CMD: FLAG: expected 0..MAX" and return -1 (callers exit with HAFL_EXIT_USAGE).
int hafl_cmd_parse_count (const char *cmd, const char *flag, const char *text, unsigned long max,
                          unsigned *out);

//  qsort comparator for ascending doubles (the benchmarks' medians).
int hafl_cmd_cmp_double (const void *a, const void *b);

#define HAFL_CMD(name, fn, summary) int fn (int argc, char **argv);
#include "hafl_cmd_list.h"
#undef HAFL_CMD

#endif
