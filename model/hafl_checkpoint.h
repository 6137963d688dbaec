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

    A file that starts with the magic "GGUF" is read through hafl_gguf instead; its
    `general.architecture` must be llama. The config comes from `llama.embedding_length` (dim),
    `feed_forward_length`, `block_count`, `attention.head_count`, `attention.head_count_kv`
    (absent: n_heads), `context_length` (seq_len) and token_embd.weight's rows (vocab; must equal
    `llama.vocab_size` when present). The engine computes RoPE over whole heads with base 10000
    and RMSNorm with epsilon 1e-5, so `llama.attention.layer_norm_rms_epsilon` must be 1e-5f and
    `llama.rope.freq_base` (when present) 10000, `rope.dimension_count` the head size and
    `rope.scaling.type` none; other values are refused, naming the key. Tensors (GGUF shapes are
    {cols, rows}): token_embd [vocab][dim], blk.N.attn_norm / ffn_norm [dim], attn_q [dim][dim],
    attn_k / attn_v [kv_dim][dim], attn_output [dim][dim], ffn_gate / ffn_up [hidden][dim],
    ffn_down [dim][hidden], output_norm [dim], output [vocab][dim] (absent: shared with
    token_embd). Each is checked against the config (a one-line error naming the tensor) and
    dequantised to float32 into one allocation (any hafl_quant type it decodes); a tensor outside
    this list is refused. The GGUF's RoPE tables do not exist, so the image is the floats only,
    and the digest is the SHA-256 of the whole GGUF file.
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
    void *memory;                   //  the mapping or allocation behind weights (for a GGUF:
                                    //  the dequantised floats, laid out as a .bin's without
                                    //  header and RoPE tables)
    size_t size;
    bool mapped;
    bool gguf;                      //  read from a GGUF file, whose metadata holds a tokenizer
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

//  The nine per-block tensors of a llama GGUF (blk.N.<name>.weight) and where each lives in
//  hafl's layout: one layer's slice of the weights, rows x cols (rows 0: a vector of cols).
//  The loader reads through this table and writers of test files through the same one.
typedef struct {
    const char *name;   //  attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
                        //  ffn_down, ffn_up
    const float *slice; //  layer `layer`'s part of the matching hafl_llama_weights_t array
    uint64_t rows, cols;
} hafl_llama_gguf_block_t;
#define HAFL_LLAMA_GGUF_BLOCKS 9
void hafl_llama_gguf_blocks(const hafl_llama_config_t *c, const hafl_llama_weights_t *w, int layer,
                            hafl_llama_gguf_block_t out[HAFL_LLAMA_GGUF_BLOCKS]);

#endif
