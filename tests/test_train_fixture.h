/*  test_train_fixture: a tiny random llama model with an adapter and a batch, shared by the
    train tests. Weights are N(0, 0.02) from hafl_checkpoint_random, then scaled up (and the
    RMSNorm weights randomised) so that every path carries gradients well above float noise.
    Header-only on purpose: each test is one executable.
*/
#ifndef TEST_TRAIN_FIXTURE_H
#define TEST_TRAIN_FIXTURE_H

#include "hafl_test.h"

#include "hafl_adapter.h"
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_llama_ref.h"
#include "hafl_lora_trainer.h"
#include "hafl_rng.h"
#include "hafl_targets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    hafl_checkpoint_t *ckpt;
    hafl_targets_t targets;
    hafl_layout_t layout;
    hafl_adapter_t *adapter; //  B and A both random, head random
    uint32_t B, T;
    uint32_t *tokens;  //  [B][T], padding filled with arbitrary valid tokens
    uint32_t *lengths; //  [B]
    uint32_t *labels;  //  [B]
} fixture_t;

//  The architecture options a fixture model exercises.
typedef enum {
    FIXTURE_LLAMA2C, //  llama2.c's constants: RoPE base 10000, epsilon 1e-5, shared classifier
    FIXTURE_LLAMA3,  //  Llama 3's: RoPE base 500000, epsilon 1e-6
    FIXTURE_QWEN2,   //  qwen2's: NeoX RoPE base 1e6, epsilon 1e-6, q/k/v biases, separate output
    FIXTURE_WIDE,    //  qwen2's, with heads of 6 (q_dim 24 over dim 16: a head size of its own)
} fixture_arch_t;

static inline const char *fixture_arch_name(fixture_arch_t arch)
{
    return arch == FIXTURE_WIDE     ? "qwen2 head size 6"
           : arch == FIXTURE_QWEN2  ? "qwen2"
           : arch == FIXTURE_LLAMA3 ? "llama3"
                                    : "llama2.c";
}

//  dim 16, hidden 24, 2 layers, 4 heads, 2 kv heads (grouped-query attention), vocab 32,
//  seq 16; rank 3, 3 classes.
static inline void fixture_init_arch(fixture_t *f, const char *targets, uint64_t seed,
                                     fixture_arch_t arch)
{
    memset(f, 0, sizeof *f);
    hafl_llama_config_t cfg = {
        16,    24,    2, 4, 2, 32, 16, true, HAFL_LLAMA2C_ROPE_BASE, HAFL_LLAMA2C_RMS_EPS,
        false, false, 0};
    if (arch == FIXTURE_LLAMA3)
        cfg.rope_base = 500000.0f, cfg.rms_eps = 1e-6f;
    if (arch == FIXTURE_QWEN2 || arch == FIXTURE_WIDE)
        cfg.rope_base = 1e6f, cfg.rms_eps = 1e-6f, cfg.rope_neox = true, cfg.qkv_bias = true,
        cfg.shared_classifier = false;
    if (arch == FIXTURE_WIDE)
        cfg.head_size = 6;
    char err[256];
    f->ckpt = hafl_checkpoint_random(&cfg, seed, err, sizeof err);
    CHECKF(f->ckpt, "%s", err);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, 99, 0);
    //  Test-only: the random checkpoint's memory is ours; make it less degenerate.
    hafl_llama_weights_t *w = &f->ckpt->weights;
    size_t C = 16, H = 24, L = 2;
    size_t Q = (size_t)hafl_llama_q_dim(&cfg), KV = (size_t)hafl_llama_kv_dim(&cfg);
    float *mats[7] = {(float *)w->wq, (float *)w->wk, (float *)w->wv, (float *)w->wo,
                      (float *)w->w1, (float *)w->w2, (float *)w->w3};
    size_t sizes[7] = {L * Q * C, L * KV * C, L * KV * C, L * C * Q,
                       L * H * C, L * C * H,  L * H * C};
    for (int m = 0; m < 7; m++)
        for (size_t i = 0; i < sizes[m]; i++)
            mats[m][i] *= 12.0f;
    //  Biases large enough to move the projections well past float noise.
    float *biases[3] = {(float *)w->bq, (float *)w->bk, (float *)w->bv};
    size_t bias_sizes[3] = {L * Q, L * KV, L * KV};
    for (int b = 0; b < 3 && cfg.qkv_bias; b++)
        for (size_t i = 0; i < bias_sizes[b]; i++)
            biases[b][i] *= 25.0f;
    for (size_t i = 0; i < 32 * C; i++)
        ((float *)w->token_embedding)[i] *= 40.0f;
    for (size_t i = 0; i < L * C; i++) {
        ((float *)w->rms_att)[i] = 0.5f + (float)hafl_rng_uniform(&rng);
        ((float *)w->rms_ffn)[i] = 0.5f + (float)hafl_rng_uniform(&rng);
    }
    for (size_t i = 0; i < C; i++)
        ((float *)w->rms_final)[i] = 0.5f + (float)hafl_rng_uniform(&rng);
    CHECKF(hafl_targets_parse(targets, &f->targets, err, sizeof err) == 0, "%s", err);
    CHECK(hafl_targets_layout(&f->targets, &f->ckpt->config, 3, 6.0f, 3, &f->layout) == 0);
    f->adapter = hafl_adapter_new(&f->layout);
    CHECK(f->adapter);
    hafl_adapter_init(f->adapter, seed);
    for (uint32_t m = 0; m < f->layout.n_matrices; m++) {
        size_t nb = (size_t)f->layout.rank * f->layout.matrices[m].d_out;
        for (size_t i = 0; i < nb; i++)
            f->adapter->bt[m][i] = 0.2f * (float)hafl_rng_normal(&rng);
    }
    for (size_t i = 0; i < (size_t)f->layout.head_rows * f->layout.head_cols; i++)
        f->adapter->head[i] = 0.5f * (float)hafl_rng_normal(&rng);
    static const uint32_t lengths[3] = {9, 5, 7}, labels[3] = {2, 0, 1};
    f->B = 3, f->T = 9;
    f->tokens = malloc(sizeof(uint32_t) * f->B * f->T);
    f->lengths = malloc(sizeof lengths);
    f->labels = malloc(sizeof labels);
    CHECK(f->tokens && f->lengths && f->labels);
    memcpy(f->lengths, lengths, sizeof lengths);
    memcpy(f->labels, labels, sizeof labels);
    for (uint32_t i = 0; i < f->B * f->T; i++)
        f->tokens[i] = (uint32_t)hafl_rng_below(&rng, 32);
}

static inline void fixture_init(fixture_t *f, const char *targets, uint64_t seed)
{
    fixture_init_arch(f, targets, seed, FIXTURE_LLAMA2C);
}

//  stories260K (through the asset lookup) with LoRA rank 8, alpha 16 on wq, wk, wv, wo, a head
//  of `classes` rows and the adapter as hafl_adapter_init(1) makes it; no batch.
static inline void fixture_stories(fixture_t *f, uint32_t classes)
{
    memset(f, 0, sizeof *f);
    char err[512];
    char *path = hafl_asset_find("stories260K.bin", err, sizeof err);
    CHECKF(path, "%s", err);
    f->ckpt = hafl_checkpoint_open(path, err, sizeof err);
    free(path);
    CHECKF(f->ckpt, "%s", err);
    CHECK(hafl_targets_parse("wq,wk,wv,wo", &f->targets, err, sizeof err) == 0);
    CHECK(hafl_targets_layout(&f->targets, &f->ckpt->config, 8, 16.0f, classes, &f->layout) == 0);
    f->adapter = hafl_adapter_new(&f->layout);
    CHECK(f->adapter);
    hafl_adapter_init(f->adapter, 1);
}

static inline void fixture_clear(fixture_t *f)
{
    hafl_adapter_destroy(&f->adapter);
    hafl_layout_clear(&f->layout);
    hafl_checkpoint_destroy(&f->ckpt);
    free(f->tokens), free(f->lengths), free(f->labels);
}

static inline hafl_lora_trainer_t *fixture_trainer(const fixture_t *f, uint32_t threads)
{
    hafl_lora_trainer_opts_t opts = {.max_batch = 4, .max_seq = 16, .threads = threads};
    char err[256];
    hafl_lora_trainer_t *t =
        hafl_lora_trainer_new(f->ckpt, &f->targets, &f->layout, &opts, err, sizeof err);
    CHECKF(t, "%s", err);
    return t;
}

//  Mean cross-entropy of logits [B][K] in double.
static inline double fixture_loss(const float *logits, const uint32_t *labels, uint32_t B,
                                  uint32_t K)
{
    double total = 0.0;
    for (uint32_t b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        double max = z[0], sum = 0.0;
        for (uint32_t k = 1; k < K; k++)
            max = z[k] > max ? z[k] : max;
        for (uint32_t k = 0; k < K; k++)
            sum += exp((double)z[k] - max);
        total += max + log(sum) - z[labels[b]];
    }
    return total / B;
}

//  The trainer's batched forward (evaluate, `threads` workers) against the naive reference with
//  double accumulation, per valid position: final RMSNorm outputs and head logits must agree
//  within tol max (1, |ref|). Prints and returns the largest scaled difference seen.
static inline double fixture_compare_ref(const char *name, double tol,
                                         const hafl_checkpoint_t *ckpt,
                                         const hafl_targets_t *targets,
                                         const hafl_adapter_t *adapter, const uint8_t *roles,
                                         const uint32_t *tokens, const uint32_t *lengths,
                                         uint32_t B, uint32_t T, uint32_t threads)
{
    char err[256];
    const hafl_layout_t *L = &adapter->layout;
    hafl_lora_trainer_opts_t opts = {.max_batch = B, .max_seq = T, .threads = threads};
    hafl_lora_trainer_t *t = hafl_lora_trainer_new(ckpt, targets, L, &opts, err, sizeof err);
    CHECKF(t, "%s", err);
    CHECKF(hafl_lora_trainer_load(t, adapter, roles, err, sizeof err) == 0, "%s", err);
    uint32_t K = L->head_rows, C = (uint32_t)ckpt->config.dim;
    float *logits = malloc(sizeof(float) * B * K);
    CHECK(logits);
    CHECKF(hafl_lora_trainer_evaluate(t, tokens, lengths, NULL, B, T, logits, NULL, err,
                                      sizeof err) == 0,
           "%s", err);
    hafl_llama_ref_t *ref = hafl_llama_ref_new(ckpt, (int)T, true, err, sizeof err);
    CHECKF(ref, "%s", err);
    CHECKF(hafl_llama_ref_set_adapter(ref, adapter, targets, roles, err, sizeof err) == 0, "%s",
           err);
    float *mine = malloc(sizeof(float) * T * C), *theirs = malloc(sizeof(float) * T * C);
    int32_t *seq = malloc(sizeof(int32_t) * T);
    float *ref_logits = malloc(sizeof(float) * K);
    CHECK(mine && theirs && seq && ref_logits);
    double worst = 0.0, worst_logit = 0.0;
    for (uint32_t b = 0; b < B; b++) {
        for (uint32_t i = 0; i < lengths[b]; i++)
            seq[i] = (int32_t)tokens[(size_t)b * T + i];
        CHECKF(hafl_llama_ref_forward(ref, seq, (int)lengths[b], NULL, theirs, err, sizeof err) ==
                   0,
               "%s", err);
        CHECK(hafl_lora_trainer_final_norm(t, b, mine) == 0);
        for (uint32_t i = 0; i < lengths[b]; i++)
            for (uint32_t c = 0; c < C; c++) {
                double d = fabs((double)mine[i * C + c] - theirs[i * C + c]);
                double rel = d / fmax(1.0, fabs(theirs[i * C + c]));
                worst = rel > worst ? rel : worst;
                CHECKF(d <= tol * fmax(1.0, fabs(theirs[i * C + c])),
                       "%s: sequence %u position %u channel %u: %.8g vs reference %.8g", name, b, i,
                       c, mine[i * C + c], theirs[i * C + c]);
            }
        CHECK(hafl_llama_ref_head(theirs, (int)lengths[b], (int)lengths[b], (int)C, adapter->head,
                                  (int)K, ref_logits) == 0);
        for (uint32_t k = 0; k < K; k++) {
            double d = fabs((double)logits[b * K + k] - ref_logits[k]);
            d /= fmax(1.0, fabs(ref_logits[k]));
            worst_logit = d > worst_logit ? d : worst_logit;
            CHECKF(d <= tol, "%s: sequence %u logit %u: %.8g vs reference %.8g", name, b, k,
                   logits[b * K + k], ref_logits[k]);
        }
    }
    printf("  %-34s threads %u: max scaled |diff| final norm %.2e, logits %.2e\n", name, threads,
           worst, worst_logit);
    free(mine), free(theirs), free(seq), free(ref_logits), free(logits);
    hafl_llama_ref_destroy(&ref);
    hafl_lora_trainer_destroy(&t);
    return worst;
}

#endif
