/*  hafl bench NAME [ARGS]: the benchmarks. Each prints JSON lines with its measured figures and
    the reference it is compared against in the same run; none of them is a test. The list lives
    in hafl_bench_list.h; each benchmark is `int hafl_bench_NAME (int argc, char **argv)`
    (argv[0] is NAME) in tools/bench_NAME.c and returns a HAFL_EXIT_* code.
*/
#include "hafl_cmd.h"

#include <stdio.h>
#include <string.h>

#define HAFL_BENCH(name, fn, summary) int fn (int argc, char **argv);
#include "hafl_bench_list.h"
#undef HAFL_BENCH

static const hafl_cmd_t s_benches[] = {
#define HAFL_BENCH(name, fn, summary) {name, fn, summary},
#include "hafl_bench_list.h"
#undef HAFL_BENCH
};

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: hafl bench NAME [ARGS]   (hafl bench NAME --help for details)\n\n");
    for (size_t i = 0; i < sizeof s_benches / sizeof s_benches[0]; i++)
        fprintf (out, "  %-8s %s\n", s_benches[i].name, s_benches[i].summary);
}

int
hafl_cmd_bench (int argc, char **argv)
{
    if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? HAFL_EXIT_USAGE : HAFL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof s_benches / sizeof s_benches[0]; i++)
        if (strcmp (argv[1], s_benches[i].name) == 0)
            return s_benches[i].run (argc - 1, argv + 1);
    fprintf (stderr, "hafl bench: unknown benchmark '%s'\n", argv[1]);
    s_usage (stderr);
    return HAFL_EXIT_USAGE;
}
