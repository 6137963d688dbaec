/*  hafl_llama_ref: the naive reference forward pass of a llama2.c model, with optional LoRA.

    Plain loops, one position at a time with a KV cache, written to be read and trusted: it is
    the oracle the BLAS forward is tested against and the engine behind `hafl generate`. Per
    layer: RMSNorm (the config's eps; 1e-5 for llama2.c), q/k/v projections (plus their biases
    when the config has them), RoPE exactly as llama2.c (adjacent pairs (2i, 2i+1) of every
    head rotated by pos * base^(-2i/head_size), base 10000 for llama2.c; with rope_neox the pairs
    (i, i + head_size/2) of each head, qwen2's layout), grouped-query attention
    over positions 0..pos (the causal mask), output projection and residual, RMSNorm, SwiGLU
    feed-forward (w2 (silu (w1 x) * w3 x)) and residual; then the final RMSNorm and the
    classifier. Running positions 0..T-1 in order is the causal forward of a T-token sequence.

    Adapted matrices (hafl_targets.h numbering) compute, for input x,
        y = W0 x + sum_j mb_j (ma_j . x) + scale * sum_k b_k (a_k . x)
    over the adapter's merged terms j and its components k; a component whose present flag is 0
    is left out (pass the ROUND roles bytes: HAFL_ROLE_ABSENT is 0).

    Arithmetic: with exact = false every sum is a float accumulated left to right in the order
    llama2.c run.c uses, so greedy generation reproduces the llama2.c runner bit for bit. With
    exact = true dot products, norms, softmax and attention sums accumulate in double and are
    rounded to float once per output, which makes the oracle closer to the true value than any
    float BLAS path (use it when comparing against another implementation). RoPE angles use
    llama2.c's float powf/cosf/sinf in both modes. The KV cache and the residual stream are float
    in both modes.

    Ownership: the checkpoint, adapter, targets and present flags are borrowed and must outlive
    the reference (or the next set_adapter call); outputs returned as pointers belong to self.
*/
#ifndef HAFL_LLAMA_REF_H
#define HAFL_LLAMA_REF_H

#include "hafl_adapter.h"
#include "hafl_checkpoint.h"
#include "hafl_targets.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hafl_llama_ref_t hafl_llama_ref_t;

//  A reference for sequences of up to max_T positions (any positive value; RoPE does not need
//  max_T <= seq_len). Returns NULL with a reason in err on bad arguments or no memory.
hafl_llama_ref_t *hafl_llama_ref_new(const hafl_checkpoint_t *checkpoint, int max_T, bool exact,
                                     char *err, size_t errlen);
void hafl_llama_ref_destroy(hafl_llama_ref_t **self_p);

//  Apply this adapter from now on (NULL: the plain base model). targets says which matrices are
//  adapted; present is [n_matrices * R] (NULL: every component present). The layout must match
//  the model: n_matrices = n_layers * targets->per_layer with each matrix shaped like its
//  weight. 0, or -1 with a reason naming the mismatch.
int hafl_llama_ref_set_adapter(hafl_llama_ref_t *self, const hafl_adapter_t *adapter,
                               const hafl_targets_t *targets, const uint8_t *present, char *err,
                               size_t errlen);

//  Run token at position pos, attending to the cached positions 0..pos-1, which must have been
//  run before (in order, with the same adapter). Returns the logits [vocab], valid until the
//  next call, or NULL when token or pos is out of range.
const float *hafl_llama_ref_step(hafl_llama_ref_t *self, int32_t token, int pos);
//  The final RMSNorm output [dim] of the last step.
const float *hafl_llama_ref_final(const hafl_llama_ref_t *self);

//  Causal forward of tokens [T] (1 <= T <= max_T): logits [T][vocab] and final RMSNorm output
//  [T][dim] (either may be NULL). 0, or -1 with a reason (bad token id, bad T).
int hafl_llama_ref_forward(hafl_llama_ref_t *self, const int32_t *tokens, int T, float *logits,
                           float *final_norm, char *err, size_t errlen);

//  Classification head: mean of final_norm [T][dim] over positions 0..length-1 (the rest is
//  padding and ignored), then out [classes] = head [classes][dim + 1] applied with the last
//  column as bias. Accumulates in double. 0, or -1 when length is not in 1..T.
int hafl_llama_ref_head(const float *final_norm, int T, int length, int dim, const float *head,
                        int classes, float *out);

//  llama2.c's float softmax of x [n] in place (max subtracted, left-to-right float sum); the
//  reference uses it for attention and samplers use it on logits.
void hafl_llama_softmax(float *x, int n);

#endif
