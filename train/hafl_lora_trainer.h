/*  hafl_lora_trainer: LoRA fine-tuning of a frozen Llama-family model with a classification head.

    The trainer owns one local adapter (hafl_adapter_t of the layout given to _new), the AdamW
    moments, the importance EMAs (docs/METHOD.md section 2) and the activation buffers for batches of
    up to max_batch sequences of up to max_seq tokens. The model is a llama2.c transformer
    (token embedding, RMSNorm with the config's eps, RoPE with the config's base on adjacent
    pairs as llama2.c or on NeoX pairs as qwen2, frozen q/k/v biases when the config has them,
    grouped-query causal attention, SwiGLU feed-forward, final RMSNorm) whose adapted matrices
    compute
        y = W x + scale * B (A x),   W = W0 + sum_j mb_j ma_j^T (the adapter's merged terms)
    followed by a mean over the valid positions of the final RMSNorm output and the head
    logits = head[:, :dim] pooled + head[:, dim] (bias last column), trained with cross-entropy.
    The [vocab] classifier of the checkpoint is never used.

    Batches: tokens [B][T] row-major, lengths [B] with 1 <= lengths[b] <= T, labels [B] < classes.
    Positions t >= lengths[b] are padding: they are never computed (rows are packed), so any
    amount of padding gives bit-identical results. Every token must be < vocab_size and every
    length <= the checkpoint's seq_len (RoPE range).

    Roles (hafl_lora_trainer_load): per component k of matrix m, roles[m * R + k] is
    HAFL_ROLE_ABSENT (zeroed in the local adapter, contributes nothing, never updated),
    HAFL_ROLE_FROZEN (in the forward pass with its received values, never changed, no optimiser
    state) or HAFL_ROLE_TRAINABLE. The head is always trainable. Only LoRA factors and the head
    get gradients; the frozen base gets activation gradients only.

    Step: forward, backward, AdamW (PyTorch semantics: decoupled weight decay p -= lr*wd*p,
    betas 0.9/0.999, eps 1e-8, bias-corrected with the trainer's step counter) on the trainable
    entries and the head (decay on every trained entry, the head's bias included, as PyTorch
    does for a single parameter group), then the importance update of every trainable entry
    with the step's gradient g and the updated value w:
        I = |w g|, Ibar = 0.85 Ibar + 0.15 I, Ubar = 0.85 Ubar + 0.15 |I - Ibar|,
        s = Ibar * Ubar (or Ibar alone, see opts),
    and the adapter's score[m * R + k] = mean of s over b_k + mean of s over a_k for each
    trainable component. Scores of other components keep the value last loaded. Importance
    EMAs persist for the trainer's lifetime (across loads); AdamW moments persist until
    hafl_lora_trainer_reset_optimizer.

    Threads and determinism: the trainer splits each batch over opts.threads workers (contiguous
    runs of sequences, balanced by token count; the calling thread is worker 0) and runs BLAS
    single-threaded inside each worker; it sets OpenBLAS to one thread process-wide when created.
    Per-worker gradients are summed in worker order, so for a fixed thread count the results
    are bit-identical across runs (on CPUs where OpenBLAS picks other kernels the last bits may
    differ). A trainer belongs to one thread at a time.

    Ownership: _new returns a trainer the caller owns; the checkpoint must outlive it (its
    weights are read in place). Each adapted matrix with components present also gets a private
    effective weight W0 + merged + scale B A (d_out x d_in floats), rebuilt at load and after
    each step, so the forward and the input gradient take one product each. _destroy frees the
    trainer and nulls the pointer. Functions returning int give 0, or -1 with a one-line reason
    in err.
*/
#ifndef HAFL_LORA_TRAINER_H
#define HAFL_LORA_TRAINER_H

#include "hafl_adapter.h"
#include "hafl_checkpoint.h"
#include "hafl_targets.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hafl_lora_trainer_t hafl_lora_trainer_t;

typedef struct {
    uint32_t max_batch;   //  B capacity of step/evaluate (>= 1)
    uint32_t max_seq;     //  T capacity (>= 1, <= checkpoint seq_len)
    uint32_t threads;     //  worker threads (>= 1); results depend on it, bit-exactly
    bool score_ibar_only; //  importance s = Ibar instead of Ibar * Ubar
} hafl_lora_trainer_opts_t;

//  Result of a forward pass over one batch.
typedef struct {
    float loss;       //  mean cross-entropy over the batch
    uint32_t correct; //  sequences whose argmax logit (lowest index on ties) is the label
} hafl_lora_batch_stats_t;

//  A trainer for this checkpoint; layout must be the one hafl_targets_layout builds for
//  (targets, checkpoint config) (checked: matrix count, names and shapes, head shape). The
//  local adapter starts zeroed (all components present, trainable); call _load to install a
//  received state.
hafl_lora_trainer_t *hafl_lora_trainer_new(const hafl_checkpoint_t *checkpoint,
                                           const hafl_targets_t *targets,
                                           const hafl_layout_t *layout,
                                           const hafl_lora_trainer_opts_t *opts, char *err,
                                           size_t errlen);
void hafl_lora_trainer_destroy(hafl_lora_trainer_t **self_p);

//  Install adapter (same layout): factors, scores and head are copied; its merged terms become
//  the base's merged terms (W = W0 + sum mb ma^T, computed once here). roles [n_matrices * R]
//  as above; NULL means every component trainable. Absent components are zeroed.
int hafl_lora_trainer_load(hafl_lora_trainer_t *self, const hafl_adapter_t *adapter,
                           const uint8_t *roles, char *err, size_t errlen);
//  Zero the AdamW moments and the step counter (a fresh optimiser, docs/METHOD.md default per round).
void hafl_lora_trainer_reset_optimizer(hafl_lora_trainer_t *self);
//  Forget the importance EMAs (Ibar, Ubar) of every entry.
void hafl_lora_trainer_reset_importance(hafl_lora_trainer_t *self);
//  The importance EMAs, for saving and restoring them across processes (a resumed run):
//  ibar and ubar are [n] each with n = _importance_size, in the flat factor order (per matrix
//  m: its B^T [R][d_out], then its A [R][d_in]). _set checks n and that every value is finite
//  and >= 0 (they are averages of absolute values); 0, or -1 with the first bad entry in err.
size_t hafl_lora_trainer_importance_size(const hafl_lora_trainer_t *self);
void hafl_lora_trainer_get_importance(const hafl_lora_trainer_t *self, float *ibar, float *ubar);
int hafl_lora_trainer_set_importance(hafl_lora_trainer_t *self, const float *ibar,
                                     const float *ubar, size_t n, char *err, size_t errlen);

//  One optimiser step on a batch: tokens [B][T], lengths [B], labels [B]; lr > 0, wd >= 0.
//  stats (may be NULL) gets the batch's loss and correct count before the update.
int hafl_lora_trainer_step(hafl_lora_trainer_t *self, const uint32_t *tokens,
                           const uint32_t *lengths, const uint32_t *labels, uint32_t B, uint32_t T,
                           float lr, float wd, hafl_lora_batch_stats_t *stats, char *err,
                           size_t errlen);
//  Forward only. logits [B][classes] may be NULL; labels may be NULL (then loss and correct
//  are 0). The adapter is not changed.
int hafl_lora_trainer_evaluate(hafl_lora_trainer_t *self, const uint32_t *tokens,
                               const uint32_t *lengths, const uint32_t *labels, uint32_t B,
                               uint32_t T, float *logits, hafl_lora_batch_stats_t *stats, char *err,
                               size_t errlen);

//  Forward and backward without any update (for checks and tools): afterwards the _grad_*
//  functions give d (mean loss) / d entry for this batch. stats as for _step.
int hafl_lora_trainer_gradient(hafl_lora_trainer_t *self, const uint32_t *tokens,
                               const uint32_t *lengths, const uint32_t *labels, uint32_t B,
                               uint32_t T, hafl_lora_batch_stats_t *stats, char *err,
                               size_t errlen);
//  Gradients of the last _step or _gradient call, valid until the next pass: matrix m's
//  [R][d_out] (bt-shaped) and [R][d_in] (a-shaped), and the head [classes][dim + 1]. Rows of
//  components that are not trainable are unspecified; matrices without a trainable component
//  read as zero.
const float *hafl_lora_trainer_grad_bt(const hafl_lora_trainer_t *self, uint32_t m);
const float *hafl_lora_trainer_grad_a(const hafl_lora_trainer_t *self, uint32_t m);
const float *hafl_lora_trainer_grad_head(const hafl_lora_trainer_t *self);
//  Copy the final RMSNorm output of sequence b of the last pass, out [lengths[b]][dim]
//  (what the head pools). 0, or -1 when b was not in the last batch.
int hafl_lora_trainer_final_norm(const hafl_lora_trainer_t *self, uint32_t b, float *out);

//  The local adapter (factors, head, scores as described above), valid until the next call
//  that changes the trainer. Its merged terms are those last loaded.
const hafl_adapter_t *hafl_lora_trainer_adapter(const hafl_lora_trainer_t *self);
//  The roles last loaded, [n_matrices * R].
const uint8_t *hafl_lora_trainer_roles(const hafl_lora_trainer_t *self);
//  Optimiser steps taken since the last reset_optimizer.
uint64_t hafl_lora_trainer_steps(const hafl_lora_trainer_t *self);
//  FLOPs of one step on a batch with these lengths, as this trainer computes it: matrix
//  products only (elementwise work is not counted), causal attention counted per attended
//  (query, key) pair, backward products only where a gradient is needed, plus the rebuild of
//  each trained matrix's effective weight.
double hafl_lora_trainer_step_flops(const hafl_lora_trainer_t *self, const uint32_t *lengths,
                                    uint32_t B);

#endif
