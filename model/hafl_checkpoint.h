/*  hafl_checkpoint: a frozen llama2.c model, memory-mapped read-only.

    File format (llama2.c "version 0"): seven int32 (dim, hidden_dim, n_layers, n_heads,
    n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate classifier), then
    float32 tensors in this order: token_embedding [vocab][dim], rms_att [L][dim],
    wq [L][dim][dim], wk [L][kv_dim][dim], wv [L][kv_dim][dim], wo [L][dim][dim],
    rms_ffn [L][dim], w1 [L][hidden][dim], w2 [L][dim][hidden], w3 [L][hidden][dim],
    rms_final [dim], two legacy RoPE tables [seq_len][head_size/2] each (skipped), and, when not
    shared, wcls [vocab][dim]. Matrices are row-major [d_out][d_in], so y = W x.
    head_size = dim / n_heads, kv_dim = n_kv_heads * head_size (q_dim = dim).

    Opening checks the header for sane values and the exact file size the header implies, and
    fails with a one-line reason naming the file. The mapping is shared by every in-process
    client and never written. hafl_checkpoint_random builds the same structure with seeded
    random weights in memory (for benchmarks on shapes that have no file).

    A file that starts with the magic "GGUF" is read through hafl_gguf instead. Its
    `general.architecture` is llama or qwen2 (ARCH below); the config comes from
    `ARCH.embedding_length` (dim), `feed_forward_length`, `block_count`, `attention.head_count`,
    `attention.head_count_kv` (absent: n_heads), `context_length` (seq_len),
    `attention.layer_norm_rms_epsilon` (required), `rope.freq_base` (absent: 10000) and
    token_embd.weight's rows (vocab; must equal `ARCH.vocab_size` when present). The head size
    hs is `attention.key_length` (absent: dim / n_heads); `attention.value_length` and
    `rope.dimension_count`, when present, must equal it (values as wide as keys, RoPE over whole
    heads), and `rope.scaling.type` must be none; other values are refused naming the key.
    q_dim = n_heads * hs, kv_dim = n_kv_heads * hs. llama rotates adjacent channel pairs, qwen2
    NeoX pairs (train/hafl_rope.h). Tensors (GGUF shapes are {cols, rows}): token_embd
    [vocab][dim], blk.N.attn_norm / ffn_norm [dim], attn_q [q_dim][dim], attn_k / attn_v
    [kv_dim][dim], attn_output [dim][q_dim], ffn_gate / ffn_up [hidden][dim], ffn_down
    [dim][hidden], output_norm [dim], output [vocab][dim] (absent: shared with token_embd), and
    for qwen2 the biases blk.N.attn_q.bias [q_dim], attn_k.bias / attn_v.bias [kv_dim] (all
    three or none). Each is checked against the config (a one-line error naming
    the tensor) and dequantised to float32 into one allocation (any hafl_quant type it decodes);
    a tensor outside this list is refused. The GGUF's RoPE tables do not exist, so the image is
    the floats only (biases after the classifier), and the digest is the SHA-256 of the whole
    GGUF file.
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
    //  What llama2.c files leave implicit and GGUF files state. Zero in a config given to
    //  hafl_checkpoint_random means llama2.c's value; an opened checkpoint always holds the
    //  values it computes with.
    float rope_base;    //  RoPE frequency base (llama2.c: 10000)
    float rms_eps;      //  RMSNorm epsilon (llama2.c: 1e-5)
    bool rope_neox;     //  RoPE pairs (i, i + hs/2) as qwen2, not (2i, 2i+1) as llama
    bool qkv_bias;      //  q, k and v projections add a bias (qwen2)
    int head_size;      //  hs, the width of one attention head; 0 means dim / n_heads (always
                        //  so in llama2.c files; a GGUF may say otherwise with key_length)
} hafl_llama_config_t;

#define HAFL_LLAMA2C_ROPE_BASE 10000.0f
#define HAFL_LLAMA2C_RMS_EPS   1e-5f

typedef struct {
    const float *token_embedding;   //  [vocab][dim]
    const float *rms_att;           //  [L][dim]
    const float *wq;                //  [L][q_dim][dim] (q_dim = dim in llama2.c files)
    const float *wk;                //  [L][kv_dim][dim]
    const float *wv;                //  [L][kv_dim][dim]
    const float *wo;                //  [L][dim][q_dim]
    const float *rms_ffn;           //  [L][dim]
    const float *w1;                //  [L][hidden][dim]
    const float *w2;                //  [L][dim][hidden]
    const float *w3;                //  [L][hidden][dim]
    const float *rms_final;         //  [dim]
    const float *wcls;              //  [vocab][dim] (== token_embedding when shared)
    const float *bq;                //  [L][q_dim]   q bias, NULL unless config.qkv_bias
    const float *bk;                //  [L][kv_dim]
    const float *bv;                //  [L][kv_dim]
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
//  Random weights N(0, 0.02^2), RMSNorm weights 1, biases N(0, 0.02^2) when config.qkv_bias,
//  seeded; config.seq_len as given.
hafl_checkpoint_t *hafl_checkpoint_random (const hafl_llama_config_t *config, uint64_t seed,
                                           char *err, size_t errlen);
void hafl_checkpoint_destroy (hafl_checkpoint_t **self_p);

//  hs: the config's head_size, or dim / n_heads when it is 0.
static inline int
hafl_llama_head_size (const hafl_llama_config_t *c)
{
    return c->head_size > 0 ? c->head_size : c->dim / c->n_heads;
}
//  Width of q and of the attention output: n_heads * hs (dim unless the head size says not).
static inline int
hafl_llama_q_dim (const hafl_llama_config_t *c)
{
    return c->n_heads * hafl_llama_head_size (c);
}
//  Width of k and v: n_kv_heads * hs.
static inline int
hafl_llama_kv_dim (const hafl_llama_config_t *c)
{
    return c->n_kv_heads * hafl_llama_head_size (c);
}

//  The per-block tensors of a llama or qwen2 GGUF (blk.N.<name>) and where each lives in hafl's
//  layout: one layer's slice of the weights, rows x cols (rows 0: a vector of cols). The
//  loader reads through this table and writers of test files through the same one.
typedef struct {
    const char *name;   //  attn_norm.weight, attn_q.weight, attn_k.weight, attn_v.weight,
                        //  attn_output.weight, ffn_norm.weight, ffn_gate.weight,
                        //  ffn_down.weight, ffn_up.weight; with qkv_bias also attn_q.bias,
                        //  attn_k.bias, attn_v.bias
    const float *slice; //  layer `layer`'s part of the matching hafl_llama_weights_t array
    uint64_t rows, cols;
} hafl_llama_gguf_block_t;
#define HAFL_LLAMA_GGUF_BLOCKS 12
//  Fills out[] and returns how many entries apply to c (9, or 12 with qkv_bias).
size_t hafl_llama_gguf_blocks(const hafl_llama_config_t *c, const hafl_llama_weights_t *w,
                              int layer, hafl_llama_gguf_block_t out[HAFL_LLAMA_GGUF_BLOCKS]);

typedef struct hafl_gguf_writer_t hafl_gguf_writer_t;
//  Add the model to a GGUF writer as llama.cpp's converters lay it out: general.architecture
//  (qwen2 when the config rotates NeoX pairs, else llama), the <arch>.* hyperparameters the
//  loader reads (key_length and value_length too when the head size is not dim / n_heads), and
//  every tensor under its GGUF name, matrices in `type` (any hafl_quant_quantize encodes) and
//  norms and biases in F32. A tokenizer is the caller's to add. 0, or -1 when the writer has
//  failed (hafl_gguf_writer_error says why, e.g. rows that are not whole blocks of `type`).
int hafl_checkpoint_write_gguf(const hafl_checkpoint_t *self, hafl_gguf_writer_t *writer,
                               uint32_t type);

#endif
