/*  The benchmarks of `hafl bench`, one line each: HAFL_BENCH(name, function, summary).
    Included twice by cmd_bench.c by design; no guard. */
HAFL_BENCH ("round", hafl_bench_round, "actor bus: median round latency, memory at scale, wire bytes / float payload")
HAFL_BENCH("codec", hafl_bench_codec, "rank-1 frame encode + decode vs memcpy (--dim, --iters)")
HAFL_BENCH("train", hafl_bench_train, "LoRA training steps/s, FLOP rate vs measured sgemm (same args as the PyTorch peer)")
HAFL_BENCH("load", hafl_bench_load, "GGUF load time and resident memory per type, beside the mapped llama2.c file; 1B estimate")
