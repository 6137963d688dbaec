/*  The benchmarks of `hafl bench`, one line each: HAFL_BENCH(name, function, summary).
    Included twice by cmd_bench.c by design; no guard. */
