/*  hafl_checkpoint: a frozen llama2.c model, memory-mapped read-only.

    File format (llama2.c "version 0"): seven int32 (dim, hidden_dim, n_layers, n_heads,
    n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate classifier), then
    float32 tensors in this order: token_embedding [vocab][dim], rms_att [L][dim],
    wq [L][dim][dim], wk [L][kv_dim][dim], wv [L][kv_dim][dim], wo [L][dim][dim],
    rms_ffn [L][dim], w1 [L][hidden][dim], w2 [L][dim][hidden], w3 [L][hidden][dim],
    rms_final [dim], two legacy RoPE tables [seq_len][head_size/2] each (skipped), and, when not
    shared, wcls [vocab][dim]. Matrices are row-major [d_out][d_in], so y = W x.
    kv_dim = dim * n_kv_heads / n_heads, head_size = dim / n_heads.

    Opening checks the header for sane values and the exact file size the header implies, and
    fails with a one-line reason naming the file. The mapping is shared by every in-process
    client and never written. hafl_checkpoint_random builds the same structure with seeded
    random weights in memory (for benchmarks on shapes that have no file).
*/
#ifndef HAFL_CHECKPOINT_H
#define HAFL_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int dim;            //  C, model width
    int hidden_dim;     //  feed-forward width
    int n_layers;       //  L
    int n_heads;
    int n_kv_heads;
    int vocab_size;
    int seq_len;        //  longest sequence RoPE tables were made for
    bool shared_classifier;
} hafl_llama_config_t;

typedef struct {
    const float *token_embedding;   //  [vocab][dim]
    const float *rms_att;           //  [L][dim]
    const float *wq;                //  [L][dim][dim]
    const float *wk;                //  [L][kv_dim][dim]
    const float *wv;                //  [L][kv_dim][dim]
    const float *wo;                //  [L][dim][dim]
    const float *rms_ffn;           //  [L][dim]
    const float *w1;                //  [L][hidden][dim]
    const float *w2;                //  [L][dim][hidden]
    const float *w3;                //  [L][hidden][dim]
    const float *rms_final;         //  [dim]
    const float *wcls;              //  [vocab][dim] (== token_embedding when shared)
} hafl_llama_weights_t;

typedef struct {
    hafl_llama_config_t config;
    hafl_llama_weights_t weights;
    uint8_t digest[32];             //  SHA-256 of the whole file (or of the random weights)
    char *path;                     //  owned; "random:<shape>" for random weights
    void *memory;                   //  the mapping or allocation behind weights
    size_t size;
    bool mapped;
} hafl_checkpoint_t;

hafl_checkpoint_t *hafl_checkpoint_open (const char *path, char *err, size_t errlen);
//  Random weights N(0, 0.02^2), RMSNorm weights 1, seeded; config.seq_len as given.
hafl_checkpoint_t *hafl_checkpoint_random (const hafl_llama_config_t *config, uint64_t seed,
                                           char *err, size_t errlen);
void hafl_checkpoint_destroy (hafl_checkpoint_t **self_p);

static inline int
hafl_llama_kv_dim (const hafl_llama_config_t *c)
{
    return c->dim * c->n_kv_heads / c->n_heads;
}

#endif
