/*  test_gguf_models: tiny GGUF models of every architecture option and tensor type the engine
    loads, written here, opened through hafl_checkpoint_open and run by the trainer against the
    naive reference.

    Each model is dim 256, hidden 512, 2 layers, 8 heads over 2 kv heads (grouped-query
    attention), vocab 48 (widths that every block size divides, so the K-quants' 256-value
    blocks fit a row). Two architectures:
      - llama with Llama 3's RoPE base 500000 and epsilon 1e-6, output shared with the embedding;
      - qwen2 with NeoX RoPE base 1e6, epsilon 1e-6, q/k/v biases and a separate output matrix.
    For each tensor type (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) the embedding and every
    matrix are stored in that type as seeded random blocks (the scale fields set so values are
    of the order of trained weights), norms and biases as F32, the way llama.cpp's quantiser
    leaves them. The test then requires:
      - every loaded tensor to equal, bit for bit, hafl_quant_dequantize of the bytes written
        (the decoders themselves are checked against hand-built blocks in test_gguf);
      - the trainer's forward with LoRA on all seven targets (non-zero B) to agree with the
        naive reference (double accumulation) within 1e-5 relative, per position and per
        head logit.
*/
#include "test_train_fixture.h"

#include "hafl_gguf_writer.h"
#include "hafl_quant.h"

#include <stdio.h>
#include <unistd.h>

#define S_DIM    256
#define S_HIDDEN 512
#define S_LAYERS 2
#define S_HEADS  8
#define S_KV     2
#define S_VOCAB  48
#define S_SEQ    32

//  One tensor as written: its name, type, bytes and element count.
typedef struct {
    char name[64];
    uint32_t type;
    uint8_t *bytes;
    size_t n_bytes;
    uint64_t n;
} s_tensor_t;

typedef struct {
    s_tensor_t t[64];
    size_t count;
} s_written_t;

static void s_put_f16(uint8_t *at, float value)
{
    uint16_t h = hafl_quant_fp32_to_fp16(value);
    memcpy(at, &h, 2);
}

//  n values of `type` as seeded random bytes whose scale fields give values of about
//  `sigma`; float types hold N(0, sigma^2) values. Caller frees.
static uint8_t *s_random_tensor(uint32_t type, uint64_t n, float sigma, hafl_rng_t *rng,
                                size_t *n_bytes)
{
    uint64_t size;
    CHECK(hafl_quant_bytes(type, n, &size) == 0);
    uint8_t *out = malloc(size);
    CHECK(out);
    *n_bytes = (size_t)size;
    if (type == HAFL_QUANT_F32 || type == HAFL_QUANT_F16 || type == HAFL_QUANT_BF16) {
        float *values = malloc(n * sizeof(float));
        CHECK(values);
        for (uint64_t i = 0; i < n; i++)
            values[i] = sigma * (float)hafl_rng_normal(rng);
        char err[256];
        CHECKF(hafl_quant_quantize(type, values, n, out, *n_bytes, err, sizeof err) == 0, "%s",
               err);
        free(values);
        return out;
    }
    for (size_t i = 0; i < *n_bytes; i++)
        out[i] = (uint8_t)hafl_rng_below(rng, 256);
    const hafl_quant_traits_t *tr = hafl_quant_traits(type);
    size_t blocks = *n_bytes / tr->block_bytes;
    for (size_t b = 0; b < blocks; b++) {
        uint8_t *blk = out + b * tr->block_bytes;
        //  Scales so that |value| is about sigma: value = d * q (Q8_0, |q| <= 127),
        //  d * (q - 8) (Q4_0), d * sc * q - dmin * m (Q4_K and Q5_K: 6-bit sc and m, q up to 15
        //  or 31), d * sc * (q - 32) (Q6_K: int8 sc).
        float jitter = 0.75f + 0.5f * (float)hafl_rng_uniform(rng);
        switch (type) {
        case HAFL_QUANT_Q8_0:
            s_put_f16(blk, jitter * sigma / 64.0f);
            break;
        case HAFL_QUANT_Q4_0:
            s_put_f16(blk, jitter * sigma / 4.0f);
            break;
        case HAFL_QUANT_Q4_K:
            s_put_f16(blk, jitter * sigma / 240.0f);
            s_put_f16(blk + 2, jitter * sigma / 60.0f);
            break;
        case HAFL_QUANT_Q5_K:
            s_put_f16(blk, jitter * sigma / 480.0f);
            s_put_f16(blk + 2, jitter * sigma / 60.0f);
            break;
        case HAFL_QUANT_Q6_K:
            s_put_f16(blk + 208, jitter * sigma / 1024.0f);
            break;
        default:
            CHECKF(false, "no block generator for %s", hafl_quant_name(type));
        }
    }
    return out;
}

//  Add tensor `name` of shape {cols, rows} (rows 0: a vector) to the writer and remember it.
static void s_add(hafl_gguf_writer_t *w, s_written_t *written, const char *name, uint32_t type,
                  uint64_t rows, uint64_t cols, float sigma, hafl_rng_t *rng)
{
    CHECK(written->count < sizeof written->t / sizeof written->t[0]);
    s_tensor_t *t = &written->t[written->count++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n = (rows ? rows : 1) * cols;
    t->bytes = s_random_tensor(type, t->n, sigma, rng, &t->n_bytes);
    uint64_t dims[2] = {cols, rows};
    CHECK(hafl_gguf_writer_add_tensor(w, name, type, rows ? 2 : 1, dims, t->bytes, t->n_bytes) ==
          0);
}

//  Norm gains near 1, as F32 (random in 0.5..1.5 so that they matter).
static void s_add_norm(hafl_gguf_writer_t *w, s_written_t *written, const char *name,
                       hafl_rng_t *rng)
{
    CHECK(written->count < sizeof written->t / sizeof written->t[0]);
    s_tensor_t *t = &written->t[written->count++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = HAFL_QUANT_F32;
    t->n = S_DIM;
    t->n_bytes = S_DIM * sizeof(float);
    t->bytes = malloc(t->n_bytes);
    CHECK(t->bytes);
    for (size_t i = 0; i < S_DIM; i++) {
        float v = 0.5f + (float)hafl_rng_uniform(rng);
        memcpy(t->bytes + 4 * i, &v, 4);
    }
    uint64_t dims[1] = {S_DIM};
    CHECK(hafl_gguf_writer_add_tensor(w, name, HAFL_QUANT_F32, 1, dims, t->bytes, t->n_bytes) ==
          0);
}

//  Write the model of `arch` (FIXTURE_LLAMA3 or FIXTURE_QWEN2) with matrices of `type` to path.
static void s_write_model(const char *path, fixture_arch_t arch, uint32_t type,
                          s_written_t *written)
{
    bool qwen2 = arch == FIXTURE_QWEN2;
    const char *prefix = qwen2 ? "qwen2" : "llama";
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(w);
    char key[96];
#define S_KEY(name) (snprintf(key, sizeof key, "%s.%s", prefix, name), key)
    CHECK(hafl_gguf_writer_add_string(w, "general.architecture", prefix) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, S_KEY("context_length"), S_SEQ) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, S_KEY("embedding_length"), S_DIM) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, S_KEY("feed_forward_length"), S_HIDDEN) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, S_KEY("block_count"), S_LAYERS) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, S_KEY("attention.head_count"), S_HEADS) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, S_KEY("attention.head_count_kv"), S_KV) == 0);
    CHECK(hafl_gguf_writer_add_f32(w, S_KEY("attention.layer_norm_rms_epsilon"), 1e-6f) == 0);
    CHECK(hafl_gguf_writer_add_f32(w, S_KEY("rope.freq_base"), qwen2 ? 1e6f : 500000.0f) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, S_KEY("rope.dimension_count"), S_DIM / S_HEADS) == 0);
#undef S_KEY
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 2024 + type, qwen2, 0);
    written->count = 0;
    s_add(w, written, "token_embd.weight", type, S_VOCAB, S_DIM, 1.0f, &rng);
    uint64_t kv = S_DIM / S_HEADS * S_KV;
    for (int l = 0; l < S_LAYERS; l++) {
        char name[64];
#define S_NAME(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
        s_add_norm(w, written, S_NAME("attn_norm.weight"), &rng);
        s_add(w, written, S_NAME("attn_q.weight"), type, S_DIM, S_DIM, 0.06f, &rng);
        s_add(w, written, S_NAME("attn_k.weight"), type, kv, S_DIM, 0.06f, &rng);
        s_add(w, written, S_NAME("attn_v.weight"), type, kv, S_DIM, 0.06f, &rng);
        if (qwen2) {
            s_add(w, written, S_NAME("attn_q.bias"), HAFL_QUANT_F32, 0, S_DIM, 0.1f, &rng);
            s_add(w, written, S_NAME("attn_k.bias"), HAFL_QUANT_F32, 0, kv, 0.1f, &rng);
            s_add(w, written, S_NAME("attn_v.bias"), HAFL_QUANT_F32, 0, kv, 0.1f, &rng);
        }
        s_add(w, written, S_NAME("attn_output.weight"), type, S_DIM, S_DIM, 0.06f, &rng);
        s_add_norm(w, written, S_NAME("ffn_norm.weight"), &rng);
        s_add(w, written, S_NAME("ffn_gate.weight"), type, S_HIDDEN, S_DIM, 0.06f, &rng);
        s_add(w, written, S_NAME("ffn_up.weight"), type, S_HIDDEN, S_DIM, 0.06f, &rng);
        s_add(w, written, S_NAME("ffn_down.weight"), type, S_DIM, S_HIDDEN, 0.045f, &rng);
#undef S_NAME
    }
    s_add_norm(w, written, "output_norm.weight", &rng);
    if (qwen2)
        s_add(w, written, "output.weight", type, S_VOCAB, S_DIM, 0.1f, &rng);
    char err[512];
    CHECKF(hafl_gguf_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    hafl_gguf_writer_destroy(&w);
}

//  Where tensor `name` landed in the loaded checkpoint, or NULL.
static const float *s_loaded(const hafl_checkpoint_t *c, const char *name)
{
    const hafl_llama_weights_t *w = &c->weights;
    if (strcmp(name, "token_embd.weight") == 0)
        return w->token_embedding;
    if (strcmp(name, "output_norm.weight") == 0)
        return w->rms_final;
    if (strcmp(name, "output.weight") == 0)
        return w->wcls;
    int layer, end = 0;
    if (sscanf(name, "blk.%d.%n", &layer, &end) != 1 || end == 0)
        return NULL;
    hafl_llama_gguf_block_t blocks[HAFL_LLAMA_GGUF_BLOCKS];
    size_t n = hafl_llama_gguf_blocks(&c->config, w, layer, blocks);
    for (size_t b = 0; b < n; b++)
        if (strcmp(blocks[b].name, name + end) == 0)
            return blocks[b].slice;
    return NULL;
}

static void s_check_model(fixture_arch_t arch, uint32_t type)
{
    char path[] = "/tmp/hafl-gguf-model-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    s_written_t written;
    s_write_model(path, arch, type, &written);
    char err[512];
    hafl_checkpoint_t *ckpt = hafl_checkpoint_open(path, err, sizeof err);
    CHECKF(ckpt, "%s", err);
    unlink(path);
    const hafl_llama_config_t *c = &ckpt->config;
    bool qwen2 = arch == FIXTURE_QWEN2;
    CHECK(c->dim == S_DIM && c->hidden_dim == S_HIDDEN && c->n_layers == S_LAYERS);
    CHECK(c->n_heads == S_HEADS && c->n_kv_heads == S_KV && c->vocab_size == S_VOCAB);
    CHECK(c->rope_base == (qwen2 ? 1e6f : 500000.0f) && c->rms_eps == 1e-6f);
    CHECK(c->rope_neox == qwen2 && c->qkv_bias == qwen2 && c->shared_classifier == !qwen2);

    //  Every tensor where the loader put it, equal to the decoded bytes.
    for (size_t i = 0; i < written.count; i++) {
        const s_tensor_t *t = &written.t[i];
        const float *got = s_loaded(ckpt, t->name);
        CHECKF(got, "%s: no place in the checkpoint", t->name);
        float *want = malloc(t->n * sizeof(float));
        CHECK(want);
        CHECKF(hafl_quant_dequantize(t->type, t->bytes, t->n_bytes, want, t->n, err,
                                     sizeof err) == 0,
               "%s", err);
        CHECKF(memcmp(got, want, t->n * sizeof(float)) == 0, "%s (%s) differs after loading",
               t->name, hafl_quant_name(t->type));
        free(want);
        free(t->bytes);
    }

    //  The engine against the reference, LoRA on every target with non-zero B.
    fixture_t f;
    memset(&f, 0, sizeof f);
    f.ckpt = ckpt;
    CHECK(hafl_targets_parse("wq,wk,wv,wo,w1,w2,w3", &f.targets, err, sizeof err) == 0);
    CHECK(hafl_targets_layout(&f.targets, c, 4, 8.0f, 5, &f.layout) == 0);
    f.adapter = hafl_adapter_new(&f.layout);
    CHECK(f.adapter);
    hafl_adapter_init(f.adapter, 3);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 17, type, 0);
    for (uint32_t m = 0; m < f.layout.n_matrices; m++)
        for (size_t i = 0; i < (size_t)f.layout.rank * f.layout.matrices[m].d_out; i++)
            f.adapter->bt[m][i] = 0.05f * (float)hafl_rng_normal(&rng);
    uint32_t B = 3, T = 12, lengths[3] = {12, 7, 3};
    uint32_t tokens[3 * 12];
    for (uint32_t i = 0; i < B * T; i++)
        tokens[i] = (uint32_t)hafl_rng_below(&rng, S_VOCAB);
    char name[96];
    snprintf(name, sizeof name, "%s %s", fixture_arch_name(arch), hafl_quant_name(type));
    fixture_compare_ref(name, 1e-5, ckpt, &f.targets, f.adapter, NULL, tokens, lengths, B, T, 2);
    fixture_clear(&f);
}

int main(void)
{
    const uint32_t types[] = {HAFL_QUANT_F32,  HAFL_QUANT_F16,  HAFL_QUANT_BF16, HAFL_QUANT_Q8_0,
                              HAFL_QUANT_Q4_0, HAFL_QUANT_Q4_K, HAFL_QUANT_Q5_K, HAFL_QUANT_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        s_check_model(FIXTURE_LLAMA3, types[i]);
        s_check_model(FIXTURE_QWEN2, types[i]);
    }
    printf("gguf models: llama (GQA, RoPE base 500000) and qwen2 (biases, NeoX RoPE, separate "
           "output) in 8 tensor types load bit-exact and match the reference\n");
    return 0;
}
