/*  hafl bench train: LoRA training steps of the llama trainer, timed, with the machine's sgemm
    rate measured in the same run.

    Arguments mirror the PyTorch peer's (torch_lora_bench.py) so the two run on the same work:
    --checkpoint PATH (or a bare asset name) or --shape dim,hidden,layers,heads,kv_heads,vocab,seq
    (random weights), --rank R, --alpha A, --classes K, --batch B, --seq T, --steps N,
    --warmup W, --threads P (0: every core), plus --targets LIST (default wq,wk,wv,wo, as the
    peer). The batch is B random sequences of T tokens (every length T, as the peer's) with
    random labels; the adapter starts as docs/METHOD.md initialises it (B = 0, A random); AdamW lr
    1e-3, weight decay 0.01 (the peer's PyTorch defaults).

    The sgemm reference is OpenBLAS on P threads multiplying two 1536 x 1536 matrices, best of
    several runs, timed before and after the training steps (the better of the two counts).
    FLOPs per step are the trainer's count of its matrix products
    (hafl_lora_trainer_step_flops); mfu is achieved FLOP/s over the sgemm rate. Peak memory is
    the process's peak RSS at the end of the steps. cpu_ms_per_step (CPU time of all threads)
    tells, next to step_ms, how much of the machine the run actually had. Prints one JSON line.
*/
#include "hafl_blas.h"
#include "hafl_cmd.h"

#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_lora_trainer.h"
#include "hafl_rng.h"
#include "hafl_targets.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define S_SGEMM_N 1536

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

//  CPU time of the whole process (every thread), for a figure that contention cannot inflate.
static double s_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl bench train (--checkpoint PATH | --shape d,h,L,H,KV,V,S) [--rank R]\n"
            "         [--alpha A] [--classes K] [--batch B] [--seq T] [--steps N] [--warmup W]\n"
            "         [--threads P] [--targets LIST]\n"
            "  LoRA training steps (forward, backward, AdamW) on random tokens; prints one JSON\n"
            "  line: tokens_per_s, step_ms, peak_rss_mb, flops_per_step, gflops, sgemm_gflops,\n"
            "  mfu, cpu_ms_per_step. Defaults: rank 8, alpha 16, classes 20, batch 8, seq 128,\n"
            "  steps 20, warmup 3, threads 0 (all cores), targets wq,wk,wv,wo.\n");
}

//  Best GFLOP/s of an N x N x N sgemm on the current OpenBLAS thread count.
static double s_sgemm_gflops(void)
{
    size_t n = S_SGEMM_N;
    float *a = malloc(n * n * sizeof(float)), *b = malloc(n * n * sizeof(float));
    float *c = malloc(n * n * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0.0;
    }
    for (size_t i = 0; i < n * n; i++) {
        a[i] = (float)((i * 7) % 13) * 0.01f;
        b[i] = (float)((i * 5) % 11) * 0.01f;
    }
    double best = 0.0;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = s_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a,
                    (int)n, b, (int)n, 0.0f, c, (int)n);
        double dt = s_now() - t0;
        double rate = 2.0 * (double)n * n * n / dt * 1e-9;
        if (rep > 0 && rate > best) //  the first run warms up the thread pool
            best = rate;
    }
    free(a), free(b), free(c);
    return best;
}

static int s_parse_long(const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!end || *end || end == text || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int s_parse_shape(const char *text, hafl_llama_config_t *c)
{
    int v[7];
    char tail;
    if (sscanf(text, "%d,%d,%d,%d,%d,%d,%d%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &tail) != 7)
        return -1;
    *c = (hafl_llama_config_t){.dim = v[0],
                               .hidden_dim = v[1],
                               .n_layers = v[2],
                               .n_heads = v[3],
                               .n_kv_heads = v[4],
                               .vocab_size = v[5],
                               .seq_len = v[6],
                               .shared_classifier = true,
                               .rope_base = HAFL_LLAMA2C_ROPE_BASE,
                               .rms_eps = HAFL_LLAMA2C_RMS_EPS};
    return 0;
}

int hafl_bench_train(int argc, char **argv)
{
    const char *checkpoint = NULL, *shape = NULL, *target_list = "wq,wk,wv,wo";
    long rank = 8, classes = 20, batch = 8, seq = 128, steps = 20, warmup = 3, threads = 0;
    double alpha = 16.0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "hafl bench train: '%s' needs a value\n", arg);
            return HAFL_EXIT_USAGE;
        }
        const char *val = argv[++i];
        int bad = 0;
        if (strcmp(arg, "--checkpoint") == 0)
            checkpoint = val;
        else if (strcmp(arg, "--shape") == 0)
            shape = val;
        else if (strcmp(arg, "--targets") == 0)
            target_list = val;
        else if (strcmp(arg, "--rank") == 0)
            bad = s_parse_long(val, 1, 4096, &rank);
        else if (strcmp(arg, "--classes") == 0)
            bad = s_parse_long(val, 1, 100000, &classes);
        else if (strcmp(arg, "--batch") == 0)
            bad = s_parse_long(val, 1, 4096, &batch);
        else if (strcmp(arg, "--seq") == 0)
            bad = s_parse_long(val, 1, 1 << 20, &seq);
        else if (strcmp(arg, "--steps") == 0)
            bad = s_parse_long(val, 1, 1000000, &steps);
        else if (strcmp(arg, "--warmup") == 0)
            bad = s_parse_long(val, 0, 1000000, &warmup);
        else if (strcmp(arg, "--threads") == 0)
            bad = s_parse_long(val, 0, 256, &threads);
        else if (strcmp(arg, "--alpha") == 0) {
            char *end = NULL;
            alpha = strtod(val, &end);
            bad = !end || *end || !(alpha > 0.0);
        } else {
            fprintf(stderr, "hafl bench train: unknown option '%s'\n", arg);
            s_usage(stderr);
            return HAFL_EXIT_USAGE;
        }
        if (bad) {
            fprintf(stderr, "hafl bench train: bad value '%s' for %s\n", val, arg);
            return HAFL_EXIT_USAGE;
        }
    }
    if (!checkpoint == !shape) {
        fprintf(stderr, "hafl bench train: give exactly one of --checkpoint and --shape\n");
        s_usage(stderr);
        return HAFL_EXIT_USAGE;
    }
    if (threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? cores : 1;
    }
    char err[512];
    hafl_targets_t targets;
    if (hafl_targets_parse(target_list, &targets, err, sizeof err)) {
        fprintf(stderr, "hafl bench train: --targets: %s\n", err);
        return HAFL_EXIT_USAGE;
    }
    hafl_checkpoint_t *ckpt = NULL;
    if (shape) {
        hafl_llama_config_t cfg;
        if (s_parse_shape(shape, &cfg)) {
            fprintf(stderr, "hafl bench train: --shape wants dim,hidden,layers,heads,kv_heads,"
                            "vocab,seq\n");
            return HAFL_EXIT_USAGE;
        }
        ckpt = hafl_checkpoint_random(&cfg, 0, err, sizeof err);
    } else {
        char *path = hafl_asset_find(checkpoint, err, sizeof err);
        if (path)
            ckpt = hafl_checkpoint_open(path, err, sizeof err);
        free(path);
    }
    if (!ckpt) {
        fprintf(stderr, "hafl bench train: %s\n", err);
        return HAFL_EXIT_FAILURE;
    }

    //  The machine's sgemm rate on the same number of threads, before the trainer pins BLAS
    //  to one thread per worker.
    openblas_set_num_threads((int)threads);
    double sgemm = s_sgemm_gflops();

    int rc = HAFL_EXIT_FAILURE;
    hafl_layout_t layout = {0};
    hafl_adapter_t *adapter = NULL;
    hafl_lora_trainer_t *trainer = NULL;
    uint32_t B = (uint32_t)batch, T = (uint32_t)seq;
    uint32_t *tokens = malloc(sizeof(uint32_t) * B * T);
    uint32_t *lengths = malloc(sizeof(uint32_t) * B), *labels = malloc(sizeof(uint32_t) * B);
    if (!tokens || !lengths || !labels) {
        fprintf(stderr, "hafl bench train: out of memory\n");
        goto done;
    }
    if (hafl_targets_layout(&targets, &ckpt->config, (uint32_t)rank, (float)alpha,
                            (uint32_t)classes, &layout)) {
        fprintf(stderr, "hafl bench train: out of memory building the layout\n");
        goto done;
    }
    adapter = hafl_adapter_new(&layout);
    hafl_lora_trainer_opts_t opts = {.max_batch = B, .max_seq = T, .threads = (uint32_t)threads};
    trainer = hafl_lora_trainer_new(ckpt, &targets, &layout, &opts, err, sizeof err);
    if (!adapter || !trainer) {
        fprintf(stderr, "hafl bench train: %s\n", adapter ? err : "out of memory");
        goto done;
    }
    hafl_adapter_init(adapter, 0);
    if (hafl_lora_trainer_load(trainer, adapter, NULL, err, sizeof err)) {
        fprintf(stderr, "hafl bench train: %s\n", err);
        goto done;
    }
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 1, HAFL_STREAM_BATCH, 0);
    for (uint32_t i = 0; i < B * T; i++)
        tokens[i] = (uint32_t)hafl_rng_below(&rng, (uint64_t)ckpt->config.vocab_size);
    for (uint32_t b = 0; b < B; b++) {
        lengths[b] = T;
        labels[b] = (uint32_t)hafl_rng_below(&rng, (uint64_t)classes);
    }
    hafl_lora_batch_stats_t stats = {0};
    double t0 = 0.0, c0 = 0.0;
    for (long s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            t0 = s_now();
            c0 = s_cpu();
        }
        if (hafl_lora_trainer_step(trainer, tokens, lengths, labels, B, T, 1e-3f, 0.01f, &stats,
                                   err, sizeof err)) {
            fprintf(stderr, "hafl bench train: %s\n", err);
            goto done;
        }
    }
    double dt = s_now() - t0, cpu = s_cpu() - c0;
    struct rusage ru; //  peak RSS of the training, before the second sgemm's buffers
    getrusage(RUSAGE_SELF, &ru);
    //  Measure sgemm again after the steps and keep the better figure, so a busy moment at
    //  the start cannot flatter the ratio.
    openblas_set_num_threads((int)threads);
    double again = s_sgemm_gflops();
    sgemm = again > sgemm ? again : sgemm;
    double flops = hafl_lora_trainer_step_flops(trainer, lengths, B);
    double step_s = dt / (double)steps;
    double gflops = flops / step_s * 1e-9;
    const hafl_llama_config_t *c = &ckpt->config;
    printf("{\"bench\": \"train\", \"engine\": \"hafl\", \"model\": \"%s\", "
           "\"shape\": [%d, %d, %d, %d, %d, %d, %d], \"targets\": \"%s\", \"rank\": %ld, "
           "\"batch\": %u, \"seq\": %u, \"threads\": %ld, \"steps\": %ld, "
           "\"tokens_per_s\": %.1f, \"step_ms\": %.3f, \"peak_rss_mb\": %.1f, "
           "\"flops_per_step\": %.0f, \"gflops\": %.2f, \"sgemm_gflops\": %.2f, "
           "\"mfu\": %.4f, \"cpu_ms_per_step\": %.3f, \"loss\": %.6f, \"blas_core\": \"%s\"}\n",
           ckpt->path, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
           c->seq_len, target_list, rank, B, T, threads, steps, (double)B * T * (double)steps / dt,
           step_s * 1e3, (double)ru.ru_maxrss / 1024.0, flops, gflops, sgemm,
           sgemm > 0.0 ? gflops / sgemm : 0.0, cpu / (double)steps * 1e3, (double)stats.loss,
           hafl_blas_core());
    rc = HAFL_EXIT_OK;
done:
    hafl_lora_trainer_destroy(&trainer);
    hafl_adapter_destroy(&adapter);
    hafl_layout_clear(&layout);
    hafl_checkpoint_destroy(&ckpt);
    free(tokens), free(lengths), free(labels);
    return rc;
}
