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
#include "hafl_lora_trainer.h"
#include "hafl_rng.h"
#include "hafl_targets.h"

#include <math.h>
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

//  dim 16, hidden 24, 2 layers, 4 heads, 2 kv heads, vocab 32, seq 16; rank 3, 3 classes.
static inline void fixture_init(fixture_t *f, const char *targets, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    hafl_llama_config_t cfg = {16, 24, 2, 4, 2, 32, 16, true};
    char err[256];
    f->ckpt = hafl_checkpoint_random(&cfg, seed, err, sizeof err);
    CHECKF(f->ckpt, "%s", err);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, 99, 0);
    //  Test-only: the random checkpoint's memory is ours; make it less degenerate.
    hafl_llama_weights_t *w = &f->ckpt->weights;
    size_t C = 16, H = 24, KV = 8, L = 2;
    float *mats[7] = {(float *)w->wq, (float *)w->wk, (float *)w->wv, (float *)w->wo,
                      (float *)w->w1, (float *)w->w2, (float *)w->w3};
    size_t sizes[7] = {L * C * C, L * KV * C, L * KV * C, L * C * C,
                       L * H * C, L * C * H,  L * H * C};
    for (int m = 0; m < 7; m++)
        for (size_t i = 0; i < sizes[m]; i++)
            mats[m][i] *= 12.0f;
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

#endif
