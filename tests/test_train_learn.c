/*  test_train_learn: the trainer learns. stories260K with LoRA on wq, wk, wv, wo (docs/METHOD.md
    initialisation: B = 0, A random) and a 4-class head is trained on a seeded toy task whose
    label decides which quarter of the vocabulary the tokens come from (lengths 8..32, padded
    to 32). After 200 AdamW steps (lr 3e-3, batch 8) the mean loss of the last 20 steps must be
    below half of the first 5 steps' and their accuracy at least 70% (chance is 25%); every
    component's B factor must have moved off zero and carry a positive importance score.
    Deterministic (seeded data, one thread), so the thresholds are not a matter of luck.
*/
#include "test_train_fixture.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define S_STEPS 200
#define S_B     8
#define S_T     32

int main(void)
{
    char err[512];
    fixture_t f;
    fixture_stories(&f, 4);
    const hafl_layout_t *layout = &f.layout;
    hafl_lora_trainer_opts_t opts = {.max_batch = S_B, .max_seq = S_T, .threads = 1};
    hafl_lora_trainer_t *t =
        hafl_lora_trainer_new(f.ckpt, &f.targets, layout, &opts, err, sizeof err);
    CHECKF(t, "%s", err);
    CHECKF(hafl_lora_trainer_load(t, f.adapter, NULL, err, sizeof err) == 0, "%s", err);
    uint32_t vocab = (uint32_t)f.ckpt->config.vocab_size, quarter = vocab / 4;
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 5, HAFL_STREAM_BATCH, 0);
    uint32_t tokens[S_B * S_T], lengths[S_B], labels[S_B];
    double first = 0.0, last = 0.0;
    uint32_t last_correct = 0;
    for (int s = 0; s < S_STEPS; s++) {
        for (uint32_t b = 0; b < S_B; b++) {
            labels[b] = (uint32_t)hafl_rng_below(&rng, 4);
            lengths[b] = 8 + (uint32_t)hafl_rng_below(&rng, S_T - 8 + 1);
            for (uint32_t i = 0; i < S_T; i++)
                tokens[b * S_T + i] = labels[b] * quarter + (uint32_t)hafl_rng_below(&rng, quarter);
        }
        hafl_lora_batch_stats_t stats;
        CHECKF(hafl_lora_trainer_step(t, tokens, lengths, labels, S_B, S_T, 3e-3f, 0.01f, &stats,
                                      err, sizeof err) == 0,
               "%s", err);
        CHECK(isfinite(stats.loss));
        if (s < 5)
            first += stats.loss / 5.0;
        if (s >= S_STEPS - 20) {
            last += stats.loss / 20.0;
            last_correct += stats.correct;
        }
    }
    double accuracy = (double)last_correct / (20.0 * S_B);
    printf("  loss %.4f (first 5 steps) -> %.4f (last 20), accuracy over the last 20 steps %.3f\n",
           first, last, accuracy);
    CHECKF(last < 0.5 * first, "loss did not halve: %.4f -> %.4f", first, last);
    CHECKF(accuracy >= 0.7, "accuracy %.3f below 0.7", accuracy);
    const hafl_adapter_t *trained = hafl_lora_trainer_adapter(t);
    uint32_t moved = 0, scored = 0;
    for (uint32_t m = 0; m < layout->n_matrices; m++)
        for (uint32_t k = 0; k < layout->rank; k++) {
            const float *b = hafl_adapter_b(trained, m, k);
            for (uint32_t i = 0; i < layout->matrices[m].d_out; i++)
                if (b[i] != 0.0f) {
                    moved++;
                    break;
                }
            scored += trained->score[m * layout->rank + k] > 0.0f;
        }
    uint32_t total = layout->n_matrices * layout->rank;
    CHECKF(moved == total && scored == total, "%u of %u components moved, %u scored", moved, total,
           scored);
    hafl_lora_trainer_destroy(&t);
    fixture_clear(&f);
    printf("train learn: the trainer fits a learnable task\n");
    return 0;
}
