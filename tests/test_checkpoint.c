/*  test_checkpoint: llama2.c checkpoint loading and random checkpoints.

    A random checkpoint's memory image is exactly a checkpoint file, so writing it out and
    opening it must give the same config, weights and digest. Damaged copies (truncated, bad
    header values, trailing bytes) and a missing file must each be refused with a reason that
    names the file and the fault. The real stories260K asset must hash to its published SHA-256.

    GGUF: a random checkpoint written as a llama GGUF (by hafl_gguf_writer, tied or separate
    output, matrices in F32, F16 or Q8_0) opens with the same config (seq_len from
    context_length), weights equal to the dequantised tensors in the .bin layout, and the file's
    SHA-256 as digest; a missing head_count_kv means no grouping. Files that ask for what the
    engine does not compute (another architecture, RMS epsilon, RoPE base or rotary width) or
    whose tensors are missing, misshapen or unknown are refused naming the key or tensor.
*/
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_gguf_writer.h"
#include "hafl_quant.h"
#include "hafl_test.h"
#include "hafl_test_model.h"

#include <math.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char path[512];
} s_tmp_t;

static void s_tmp_write(s_tmp_t *tmp, const void *data, size_t size)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : P_tmpdir;
    snprintf(tmp->path, sizeof tmp->path, "%s/hafl_ckpt_XXXXXX", dir);
    int fd = mkstemp(tmp->path);
    CHECK(fd >= 0);
    CHECK(write(fd, data, size) == (ssize_t)size);
    CHECK(close(fd) == 0);
}

//  Open a damaged image and require a refusal whose reason names the file and says why.
static void s_expect_refused(const void *data, size_t size, const char *reason)
{
    s_tmp_t tmp;
    s_tmp_write(&tmp, data, size);
    char err[512] = "";
    hafl_checkpoint_t *c = hafl_checkpoint_open(tmp.path, err, sizeof err);
    CHECKF(c == NULL, "accepted a checkpoint that should fail with '%s'", reason);
    CHECKF(strstr(err, tmp.path) && strstr(err, reason), "error '%s' lacks '%s' or the path", err,
           reason);
    unlink(tmp.path);
}

static void s_header_edit(uint8_t *image, int field, int32_t value)
{
    memcpy(image + 4 * field, &value, 4);
}

static void s_test_round_trip(bool shared)
{
    hafl_llama_config_t config = {
        16,    40,    2, 4, 2, 37, 8, shared, HAFL_LLAMA2C_ROPE_BASE, HAFL_LLAMA2C_RMS_EPS,
        false, false, 0};
    char err[512];
    hafl_checkpoint_t *r = hafl_checkpoint_random(&config, 7, err, sizeof err);
    CHECKF(r, "%s", err);
    s_tmp_t tmp;
    s_tmp_write(&tmp, r->memory, r->size);
    hafl_checkpoint_t *c = hafl_checkpoint_open(tmp.path, err, sizeof err);
    CHECKF(c, "%s", err);
    CHECK(c->mapped && !r->mapped);
    //  Field by field: the struct has padding bytes.
    const hafl_llama_config_t *a = &c->config, *b = &r->config;
    CHECK(a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers);
    CHECK(a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads);
    CHECK(a->vocab_size == b->vocab_size && a->seq_len == b->seq_len);
    CHECK(a->shared_classifier == b->shared_classifier);
    CHECK(memcmp(c->digest, r->digest, 32) == 0);
    CHECK(c->size == r->size);
    //  Same offsets from the start of each image, tensor by tensor.
    const float *const *wc = (const float *const *)&c->weights;
    const float *const *wr = (const float *const *)&r->weights;
    for (size_t i = 0; i < sizeof(hafl_llama_weights_t) / sizeof(float *); i++) {
        //  A llama2.c image has no biases: those pointers are NULL in both.
        CHECK((wc[i] == NULL) == (wr[i] == NULL));
        if (wc[i])
            CHECK((const uint8_t *)wc[i] - (const uint8_t *)c->memory ==
                  (const uint8_t *)wr[i] - (const uint8_t *)r->memory);
    }
    CHECK(!c->weights.bq && !c->weights.bk && !c->weights.bv);
    CHECK(a->rope_base == 10000.0f && a->rms_eps == 1e-5f && !a->rope_neox && !a->qkv_bias);
    CHECK((c->weights.wcls == c->weights.token_embedding) == shared);
    //  The separate classifier ends the file; with a shared one the RoPE tables do.
    size_t kv = 8, dim = 16, hidden = 40, L = 2, V = 37, seq = 8, head = 4;
    size_t floats = V * dim + L * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim) +
                    dim + seq * head + (shared ? 0 : V * dim);
    CHECK(c->size == 28 + 4 * floats);

    //  Damaged copies of this valid image.
    uint8_t *image = malloc(r->size + 8);
    CHECK(image);
    memcpy(image, r->memory, r->size);
    s_expect_refused(image, r->size - 4, "truncated");
    s_expect_refused(image, 20, "truncated");
    s_expect_refused(image, 0, "truncated");
    memset(image + r->size, 0, 8);
    s_expect_refused(image, r->size + 4, "4 trailing bytes");
    int32_t vocab_field = shared ? 37 : -37;
    s_header_edit(image, 5, -vocab_field); //  flips shared/separate: size no longer matches
    s_expect_refused(image, r->size, shared ? "truncated" : "trailing");
    s_header_edit(image, 5, vocab_field);
    struct {
        int field;
        int32_t value;
        const char *reason;
    } bad[] = {{0, 0, "dim = 0"},
               {0, -16, "dim = -16"},
               {1, 0, "hidden_dim = 0"},
               {2, -1, "n_layers = -1"},
               {3, 3, "n_heads = 3 does not divide dim = 16"},
               {4, 3, "n_kv_heads = 3 does not divide n_heads = 4"},
               {4, 0, "n_kv_heads = 0"},
               {5, 0, "vocab_size = 0"},
               {5, INT32_MIN, "vocab_size = 0"},
               {6, 0, "seq_len = 0"},
               {0, 1 << 30, "dim = 1073741824"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_header_edit(image, bad[i].field, bad[i].value);
        s_expect_refused(image, r->size, bad[i].reason);
        memcpy(image, r->memory, 28);
    }
    //  dim 16 with 16 heads gives head size 1: odd, so RoPE pairs would straddle heads.
    s_header_edit(image, 3, 16);
    s_header_edit(image, 4, 16);
    s_expect_refused(image, r->size, "head size 1 is odd");
    memcpy(image, r->memory, 28);
    //  A header that is fine but claims more layers than the file holds.
    s_header_edit(image, 2, 3);
    s_expect_refused(image, r->size, "truncated");
    free(image);
    unlink(tmp.path);
    hafl_checkpoint_destroy(&c);
    hafl_checkpoint_destroy(&r);
    CHECK(c == NULL && r == NULL);
    hafl_checkpoint_destroy(&c); //  idempotent
}

static void s_test_random(void)
{
    hafl_llama_config_t config = {
        64,    96,    3, 8, 4, 100, 32, true, HAFL_LLAMA2C_ROPE_BASE, HAFL_LLAMA2C_RMS_EPS,
        false, false, 0};
    char err[512];
    hafl_checkpoint_t *a = hafl_checkpoint_random(&config, 1, err, sizeof err);
    hafl_checkpoint_t *b = hafl_checkpoint_random(&config, 1, err, sizeof err);
    hafl_checkpoint_t *c = hafl_checkpoint_random(&config, 2, err, sizeof err);
    CHECK(a && b && c);
    CHECK(memcmp(a->digest, b->digest, 32) == 0);
    CHECK(memcmp(a->memory, b->memory, a->size) == 0);
    CHECK(memcmp(a->digest, c->digest, 32) != 0);
    CHECK(strncmp(a->path, "random:", 7) == 0);
    //  Header in the image matches the config.
    int32_t header[7];
    memcpy(header, a->memory, sizeof header);
    CHECK(header[0] == 64 && header[1] == 96 && header[2] == 3 && header[3] == 8);
    CHECK(header[4] == 4 && header[5] == 100 && header[6] == 32);
    //  Gains are 1; weight matrices look N(0, 0.02^2).
    for (int i = 0; i < 3 * 64; i++)
        CHECK(a->weights.rms_att[i] == 1.0f && a->weights.rms_ffn[i] == 1.0f);
    for (int i = 0; i < 64; i++)
        CHECK(a->weights.rms_final[i] == 1.0f);
    double sum = 0, sumsq = 0;
    size_t n = 3 * 64 * 64;
    for (size_t i = 0; i < n; i++) {
        sum += a->weights.wq[i];
        sumsq += (double)a->weights.wq[i] * a->weights.wq[i];
    }
    double mean = sum / n, std = sqrt(sumsq / n - mean * mean);
    CHECKF(fabs(mean) < 0.002 && fabs(std - 0.02) < 0.001, "mean %g std %g", mean, std);
    //  Invalid configs are refused by the same checks as file headers.
    hafl_llama_config_t bad = config;
    bad.n_kv_heads = 3;
    CHECK(hafl_checkpoint_random(&bad, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "n_kv_heads = 3 does not divide n_heads = 8"));
    hafl_checkpoint_destroy(&a);
    hafl_checkpoint_destroy(&b);
    hafl_checkpoint_destroy(&c);
}

//  ---------------------------------------------------------------- GGUF checkpoints

//  n values as `type` bytes (hafl_quant_quantize; F32, F16 or Q8_0 here); caller frees.
static uint8_t *s_encode(uint32_t type, const float *x, size_t n, size_t *bytes)
{
    uint64_t size;
    char err[256];
    CHECK(hafl_quant_bytes(type, n, &size) == 0);
    uint8_t *out = malloc(size);
    CHECK(out);
    CHECKF(hafl_quant_quantize(type, x, n, out, (size_t)size, err, sizeof err) == 0, "%s", err);
    *bytes = size;
    return out;
}

typedef struct {
    uint32_t type;       //  matrices' type (norms are F32, as llama.cpp writes them)
    const char *arch;    //  general.architecture
    float eps;           //  <arch>.attention.layer_norm_rms_epsilon (<arch>: llama or qwen2)
    float rope_base;     //  <arch>.rope.freq_base, 0: absent
    uint32_t rope_dims;  //  <arch>.rope.dimension_count, 0: absent
    bool kv_absent;      //  leave out <arch>.attention.head_count_kv
    const char *skip;    //  a tensor to leave out
    const char *reshape; //  a matrix written with its dimensions swapped
    const char *extra;   //  an extra vector tensor of dim floats
    uint32_t key_length; //  <arch>.attention.key_length, 0: absent
} s_gguf_opts_t;

static void s_gguf_add(hafl_gguf_writer_t *w, const s_gguf_opts_t *o, const char *name,
                       uint64_t rows, uint64_t cols, const float *x)
{
    if (o->skip && strcmp(o->skip, name) == 0)
        return;
    uint32_t type = rows ? o->type : HAFL_QUANT_F32;
    bool swap = o->reshape && strcmp(o->reshape, name) == 0;
    uint64_t dims[2] = {swap ? rows : cols, swap ? cols : rows};
    CHECK(hafl_gguf_writer_add_tensor_floats(w, name, type, rows ? 2 : 1, dims, x) == 0);
}

//  The GGUF of checkpoint r under options o, written to tmp.
static void s_gguf_write(const hafl_checkpoint_t *r, const s_gguf_opts_t *o, s_tmp_t *tmp)
{
    const hafl_llama_config_t *c = &r->config;
    const hafl_llama_weights_t *wt = &r->weights;
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(w);
    hafl_gguf_writer_add_string(w, "general.architecture", o->arch);
    //  Hyperparameters under the architecture's prefix (qwen2 files say qwen2.*).
    const char *prefix = strcmp(o->arch, "qwen2") == 0 ? "qwen2" : "llama";
    char key[96];
#define S_KEY(name) (snprintf(key, sizeof key, "%s.%s", prefix, name), key)
    hafl_gguf_writer_add_u32(w, S_KEY("context_length"), (uint32_t)c->seq_len);
    hafl_gguf_writer_add_u32(w, S_KEY("embedding_length"), (uint32_t)c->dim);
    hafl_gguf_writer_add_u32(w, S_KEY("feed_forward_length"), (uint32_t)c->hidden_dim);
    hafl_gguf_writer_add_u32(w, S_KEY("block_count"), (uint32_t)c->n_layers);
    hafl_gguf_writer_add_u32(w, S_KEY("attention.head_count"), (uint32_t)c->n_heads);
    if (!o->kv_absent)
        hafl_gguf_writer_add_u32(w, S_KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    hafl_gguf_writer_add_f32(w, S_KEY("attention.layer_norm_rms_epsilon"), o->eps);
    if (o->rope_base)
        hafl_gguf_writer_add_f32(w, S_KEY("rope.freq_base"), o->rope_base);
    if (o->rope_dims)
        hafl_gguf_writer_add_u32(w, S_KEY("rope.dimension_count"), o->rope_dims);
    if (o->key_length)
        hafl_gguf_writer_add_u32(w, S_KEY("attention.key_length"), o->key_length);
#undef S_KEY
    uint64_t dim = (uint64_t)c->dim, vocab = (uint64_t)c->vocab_size;
    s_gguf_add(w, o, "token_embd.weight", vocab, dim, wt->token_embedding);
    for (int l = 0; l < c->n_layers; l++) {
        hafl_llama_gguf_block_t blocks[HAFL_LLAMA_GGUF_BLOCKS];
        size_t n = hafl_llama_gguf_blocks(c, wt, l, blocks);
        for (size_t b = 0; b < n; b++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s", l, blocks[b].name);
            s_gguf_add(w, o, name, blocks[b].rows, blocks[b].cols, blocks[b].slice);
        }
    }
    s_gguf_add(w, o, "output_norm.weight", 0, dim, wt->rms_final);
    if (!c->shared_classifier)
        s_gguf_add(w, o, "output.weight", vocab, dim, wt->wcls);
    if (o->extra)
        s_gguf_add(w, o, o->extra, 0, dim, wt->rms_final);
    uint8_t *file;
    size_t size;
    char err[512];
    CHECKF(hafl_gguf_writer_to_memory(w, &file, &size, err, sizeof err) == 0, "%s", err);
    s_tmp_write(tmp, file, size);
    free(file);
    hafl_gguf_writer_destroy(&w);
}

static const s_gguf_opts_t s_gguf_plain = {.type = HAFL_QUANT_F32, .arch = "llama", .eps = 1e-5f};

//  The architectures a GGUF may carry, as the round trip writes them.
typedef enum {
    S_LLAMA,  //  llama2.c's constants, stated in the file
    S_LLAMA3, //  llama with RoPE base 500000 and epsilon 1e-6 (Llama 3's)
    S_QWEN2,  //  qwen2: NeoX RoPE base 1e6, epsilon 1e-6, q/k/v biases
    S_WIDE,   //  qwen2 with heads of 12 over dim 32 (q_dim 48, key_length 12), biases
} s_arch_t;

//  r as a GGUF with matrices of `type` opens as r with each matrix through that type.
static void s_test_gguf_round_trip(bool shared, uint32_t type, s_arch_t arch)
{
    hafl_llama_config_t config = {
        32,    64,    2, 4, 2, 37, 24, shared, HAFL_LLAMA2C_ROPE_BASE, HAFL_LLAMA2C_RMS_EPS,
        false, false, 0};
    if (arch == S_LLAMA3)
        config.rope_base = 500000.0f, config.rms_eps = 1e-6f;
    if (arch == S_QWEN2 || arch == S_WIDE)
        config.rope_base = 1e6f, config.rms_eps = 1e-6f, config.rope_neox = true,
        config.qkv_bias = true;
    if (arch == S_WIDE)
        config.head_size = 12;
    char err[512];
    hafl_checkpoint_t *r = hafl_checkpoint_random(&config, 11, err, sizeof err);
    CHECKF(r, "%s", err);
    s_gguf_opts_t o = s_gguf_plain;
    o.type = type;
    o.arch = arch == S_QWEN2 || arch == S_WIDE ? "qwen2" : "llama";
    o.rope_base = config.rope_base;
    o.eps = config.rms_eps;
    o.rope_dims = (uint32_t)hafl_llama_head_size(&config);
    o.key_length = o.rope_dims;
    s_tmp_t tmp;
    s_gguf_write(r, &o, &tmp);
    hafl_checkpoint_t *c = hafl_checkpoint_open(tmp.path, err, sizeof err);
    CHECKF(c, "%s", err);
    CHECK(c->gguf && !c->mapped && !r->gguf);
    const hafl_llama_config_t *a = &c->config;
    CHECK(a->dim == 32 && a->hidden_dim == 64 && a->n_layers == 2 && a->n_heads == 4);
    CHECK(a->n_kv_heads == 2 && a->vocab_size == 37 && a->seq_len == 24);
    CHECK(a->shared_classifier == shared);
    CHECK((c->weights.wcls == c->weights.token_embedding) == shared);
    CHECK(a->rope_base == config.rope_base && a->rms_eps == config.rms_eps);
    CHECK(a->rope_neox == config.rope_neox && a->qkv_bias == config.qkv_bias);
    CHECK((c->weights.bq != NULL) == config.qkv_bias && (c->weights.bv != NULL) == config.qkv_bias);
    CHECK(hafl_llama_head_size(a) == hafl_llama_head_size(&config));
    //  Tensor by tensor in hafl_llama_weights_t order; norms and biases are always F32.
    size_t dim = 32, hidden = 64, L = 2, V = 37;
    size_t q = (size_t)hafl_llama_q_dim(&config), kv = (size_t)hafl_llama_kv_dim(&config);
    size_t counts[] = {V * dim,
                       L * dim,
                       L * q * dim,
                       L * kv * dim,
                       L * kv * dim,
                       L * dim * q,
                       L * dim,
                       L * hidden * dim,
                       L * dim * hidden,
                       L * hidden * dim,
                       dim,
                       V * dim,
                       L * q,
                       L * kv,
                       L * kv};
    bool norm[] = {false, true,  false, false, false, false, true, false,
                   false, false, true,  false, true,  true,  true};
    const float *const *wc = (const float *const *)&c->weights;
    const float *const *wr = (const float *const *)&r->weights;
    size_t fields = config.qkv_bias ? 15 : 12;
    CHECK(sizeof counts / sizeof counts[0] == sizeof(hafl_llama_weights_t) / sizeof(float *));
    for (size_t i = 0; i < fields; i++) {
        size_t bytes;
        uint8_t *encoded = s_encode(norm[i] ? HAFL_QUANT_F32 : type, wr[i], counts[i], &bytes);
        float *want = malloc(counts[i] * sizeof(float));
        CHECK(want);
        CHECK(hafl_quant_dequantize(norm[i] ? HAFL_QUANT_F32 : type, encoded, bytes, want,
                                    counts[i], err, sizeof err) == 0);
        CHECKF(memcmp(wc[i], want, counts[i] * sizeof(float)) == 0, "weights field %zu, type %s", i,
               hafl_quant_name(type));
        if (type == HAFL_QUANT_F32)
            CHECK(memcmp(wc[i], wr[i], counts[i] * sizeof(float)) == 0);
        free(encoded);
        free(want);
    }
    //  The digest is the file's SHA-256.
    FILE *file = fopen(tmp.path, "rb");
    CHECK(file);
    uint8_t *bytes = malloc(1 << 20);
    CHECK(bytes);
    size_t size = fread(bytes, 1, 1 << 20, file);
    fclose(file);
    uint8_t digest[32];
    CHECK(sodium_init() >= 0);
    crypto_hash_sha256(digest, bytes, size);
    CHECK(memcmp(digest, c->digest, 32) == 0);
    free(bytes);
    unlink(tmp.path);
    hafl_checkpoint_destroy(&c);
    hafl_checkpoint_destroy(&r);
}

//  A GGUF of a checkpoint under options that the loader must refuse, and the reason it gives.
typedef struct {
    s_gguf_opts_t o;
    const char *reason;
} s_gguf_case_t;

//  Each case's file is refused with one line that starts with its path and holds its reason.
static void s_expect_gguf_refused(const hafl_checkpoint_t *r, const s_gguf_case_t *cases, size_t n)
{
    char err[512];
    for (size_t i = 0; i < n; i++) {
        s_tmp_t tmp;
        s_gguf_write(r, &cases[i].o, &tmp);
        hafl_checkpoint_t *c = hafl_checkpoint_open(tmp.path, err, sizeof err);
        CHECKF(!c, "case '%s' accepted", cases[i].reason);
        CHECKF(strstr(err, tmp.path) == err && strstr(err, cases[i].reason) && !strchr(err, '\n'),
               "'%s' lacks '%s'", err, cases[i].reason);
        unlink(tmp.path);
    }
}

static void s_test_gguf_refused(void)
{
    hafl_llama_config_t config = {
        32,    64,    2, 4, 2, 37, 24, true, HAFL_LLAMA2C_ROPE_BASE, HAFL_LLAMA2C_RMS_EPS,
        false, false, 0};
    char err[512];
    hafl_checkpoint_t *r = hafl_checkpoint_random(&config, 12, err, sizeof err);
    CHECKF(r, "%s", err);
    const s_gguf_case_t bad[] = {
        {{HAFL_QUANT_F32, "gpt2", 1e-5f, 0, 0, false, NULL, NULL, NULL, 0},
         "key 'general.architecture': 'gpt2' is not supported"},
        {{HAFL_QUANT_F32, "llama", -1e-6f, 0, 0, false, NULL, NULL, NULL, 0},
         "key 'llama.attention.layer_norm_rms_epsilon': -1e-06 is out of range"},
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0.5f, 0, false, NULL, NULL, NULL, 0},
         "key 'llama.rope.freq_base': 0.5 is out of range"},
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0, 4, false, NULL, NULL, NULL, 0},
         "key 'llama.rope.dimension_count': 4 is not supported"},
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0, 0, false, NULL, NULL, NULL, 16},
         "tensor 'blk.0.attn_q.weight': shape {32, 32}, the hyperparameters imply {32, 64}"},
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0, 0, false, "blk.1.ffn_up.weight", NULL, NULL, 0},
         "tensor 'blk.1.ffn_up.weight': missing"},
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0, 0, false, NULL, "blk.1.attn_k.weight", NULL, 0},
         "tensor 'blk.1.attn_k.weight': shape {16, 32}, the hyperparameters imply {32, 16}"},
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0, 0, false, NULL, NULL, "rope_freqs.weight", 0},
         "tensor 'rope_freqs.weight': not part of the llama architecture"},
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0, 0, false, NULL, NULL, "blk.2.attn_norm.weight", 0},
         "tensor 'blk.2.attn_norm.weight': not part of the llama architecture"},
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0, 0, false, NULL, NULL, "blk.0.attn_output.bias", 0},
         "tensor 'blk.0.attn_output.bias': not part of the llama architecture"},
        //  Without head_count_kv the file means 4 kv heads, so wk and wv are the wrong shape.
        {{HAFL_QUANT_F32, "llama", 1e-5f, 0, 0, true, NULL, NULL, NULL, 0},
         "tensor 'blk.0.attn_k.weight': shape {32, 16}, the hyperparameters imply {32, 32}"},
    };
    s_expect_gguf_refused(r, bad, sizeof bad / sizeof bad[0]);
    //  A damaged file fails in the reader, naming the file.
    s_tmp_t tmp;
    s_gguf_write(r, &s_gguf_plain, &tmp);
    CHECK(truncate(tmp.path, 200) == 0);
    hafl_checkpoint_t *c = hafl_checkpoint_open(tmp.path, err, sizeof err);
    CHECKF(!c && strstr(err, tmp.path) == err, "%s", err);
    unlink(tmp.path);
    hafl_checkpoint_destroy(&r);

    //  No head_count_kv with as many kv heads as heads: accepted, ungrouped.
    hafl_llama_config_t mha = {
        32,    64,    1, 4, 4, 37, 24, true, HAFL_LLAMA2C_ROPE_BASE, HAFL_LLAMA2C_RMS_EPS,
        false, false, 0};
    r = hafl_checkpoint_random(&mha, 13, err, sizeof err);
    CHECKF(r, "%s", err);
    s_gguf_opts_t o = s_gguf_plain;
    o.kv_absent = true;
    s_gguf_write(r, &o, &tmp);
    c = hafl_checkpoint_open(tmp.path, err, sizeof err);
    CHECKF(c, "%s", err);
    CHECK(c->config.n_kv_heads == 4 && memcmp(c->weights.wv, r->weights.wv, 32 * 32 * 4) == 0);
    unlink(tmp.path);
    hafl_checkpoint_destroy(&c);
    hafl_checkpoint_destroy(&r);

    //  Biases: llama has none, and qwen2's come as a set of three per layer.
    hafl_llama_config_t biased = {32, 64, 2, 4, 2, 37, 24, true, 1e6f, 1e-6f, true, true, 0};
    r = hafl_checkpoint_random(&biased, 14, err, sizeof err);
    CHECKF(r, "%s", err);
    const s_gguf_case_t bias_bad[] = {
        {{HAFL_QUANT_F32, "llama", 1e-6f, 0, 0, false, NULL, NULL, NULL, 0},
         "tensor 'blk.0.attn_q.bias': llama has no projection biases"},
        {{HAFL_QUANT_F32, "qwen2", 1e-6f, 0, 0, false, "blk.1.attn_v.bias", NULL, NULL, 0},
         "tensor 'blk.1.attn_v.bias': missing"},
        {{HAFL_QUANT_F32, "qwen2", 1e-6f, 0, 0, false, NULL, NULL, "blk.0.attn_output.bias", 0},
         "tensor 'blk.0.attn_output.bias': not part of the qwen2 architecture"},
    };
    s_expect_gguf_refused(r, bias_bad, sizeof bias_bad / sizeof bias_bad[0]);
    hafl_checkpoint_destroy(&r);
}

//  hafl_checkpoint_write_gguf: a model written by the library opens as itself, every weight
//  bit for bit in F32 and through the type's encoding otherwise, for each architecture option.
static void s_test_write_gguf(void)
{
    const hafl_llama_config_t configs[] = {
        {32, 64, 2, 4, 2, 37, 24, true, HAFL_LLAMA2C_ROPE_BASE, HAFL_LLAMA2C_RMS_EPS, false, false,
         0},
        {32, 64, 2, 4, 2, 37, 24, false, 1e6f, 1e-6f, true, true, 16},
    };
    const uint32_t types[] = {HAFL_QUANT_F32, HAFL_QUANT_Q8_0};
    char err[512];
    for (size_t k = 0; k < 2; k++)
        for (size_t t = 0; t < 2; t++) {
            hafl_checkpoint_t *r = hafl_checkpoint_random(&configs[k], 21, err, sizeof err);
            CHECKF(r, "%s", err);
            hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
            CHECK(w);
            CHECKF(hafl_checkpoint_write_gguf(r, w, types[t]) == 0, "%s",
                   hafl_gguf_writer_error(w));
            uint8_t *file;
            size_t size;
            CHECK(hafl_gguf_writer_to_memory(w, &file, &size, err, sizeof err) == 0);
            hafl_gguf_writer_destroy(&w);
            s_tmp_t tmp;
            s_tmp_write(&tmp, file, size);
            free(file);
            hafl_checkpoint_t *c = hafl_checkpoint_open(tmp.path, err, sizeof err);
            CHECKF(c, "%s", err);
            unlink(tmp.path);
            const hafl_llama_config_t *a = &c->config, *b = &r->config;
            CHECK(a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers);
            CHECK(a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads);
            CHECK(a->vocab_size == b->vocab_size && a->seq_len == b->seq_len);
            CHECK(a->shared_classifier == b->shared_classifier && a->qkv_bias == b->qkv_bias);
            CHECK(a->rope_base == b->rope_base && a->rms_eps == b->rms_eps);
            CHECK(a->rope_neox == b->rope_neox);
            CHECK(hafl_llama_head_size(a) == hafl_llama_head_size(b));
            //  Block tensors through the shared table; matrices in the type, vectors in F32.
            for (int l = 0; l < a->n_layers; l++) {
                hafl_llama_gguf_block_t got[HAFL_LLAMA_GGUF_BLOCKS], want[HAFL_LLAMA_GGUF_BLOCKS];
                size_t n = hafl_llama_gguf_blocks(a, &c->weights, l, got);
                CHECK(hafl_llama_gguf_blocks(b, &r->weights, l, want) == n);
                for (size_t i = 0; i < n; i++) {
                    size_t count = (size_t)((want[i].rows ? want[i].rows : 1) * want[i].cols);
                    uint32_t type = want[i].rows ? types[t] : HAFL_QUANT_F32;
                    size_t bytes;
                    uint8_t *encoded = s_encode(type, want[i].slice, count, &bytes);
                    float *expect = malloc(count * sizeof(float));
                    CHECK(expect && hafl_quant_dequantize(type, encoded, bytes, expect, count, err,
                                                          sizeof err) == 0);
                    CHECKF(memcmp(got[i].slice, expect, count * sizeof(float)) == 0,
                           "config %zu type %s: blk.%d.%s", k, hafl_quant_name(types[t]), l,
                           want[i].name);
                    free(encoded), free(expect);
                }
            }
            CHECK(memcmp(c->weights.rms_final, r->weights.rms_final, 32 * sizeof(float)) == 0);
            hafl_checkpoint_destroy(&c);
            hafl_checkpoint_destroy(&r);
        }
    //  A type the rows cannot hold: the writer's reason names the tensor.
    hafl_llama_config_t odd = configs[0];
    hafl_checkpoint_t *r = hafl_checkpoint_random(&odd, 22, err, sizeof err);
    CHECKF(r, "%s", err);
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(w && hafl_checkpoint_write_gguf(r, w, HAFL_QUANT_Q4_K) == -1);
    CHECKF(strstr(hafl_gguf_writer_error(w), "token_embd.weight"), "%s", hafl_gguf_writer_error(w));
    hafl_gguf_writer_destroy(&w);
    hafl_checkpoint_destroy(&r);
}

static void s_test_missing(void)
{
    char err[512];
    hafl_checkpoint_t *c = hafl_checkpoint_open("no-such-dir/missing.bin", err, sizeof err);
    CHECK(c == NULL);
    CHECKF(strstr(err, "no-such-dir/missing.bin") && strstr(err, "cannot open"), "%s", err);
}

static void s_test_stories(void)
{
    hafl_checkpoint_t *c = hafl_test_checkpoint("stories260K.bin");
    const hafl_llama_config_t *k = &c->config;
    CHECK(k->dim == 64 && k->hidden_dim == 172 && k->n_layers == 5 && k->n_heads == 8);
    CHECK(k->n_kv_heads == 4 && k->vocab_size == 512 && k->seq_len == 512);
    CHECK(k->shared_classifier && c->weights.wcls == c->weights.token_embedding);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", c->digest[i]);
    CHECKF(strcmp(hex, "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696") == 0,
           "digest %s", hex);
    hafl_checkpoint_destroy(&c);
}

int main(void)
{
    s_test_round_trip(true);
    s_test_round_trip(false);
    s_test_random();
    s_test_missing();
    s_test_gguf_round_trip(true, HAFL_QUANT_F32, S_LLAMA);
    s_test_gguf_round_trip(false, HAFL_QUANT_F32, S_LLAMA);
    s_test_gguf_round_trip(false, HAFL_QUANT_F16, S_LLAMA);
    s_test_gguf_round_trip(true, HAFL_QUANT_Q8_0, S_LLAMA);
    s_test_gguf_round_trip(true, HAFL_QUANT_F32, S_LLAMA3);
    s_test_gguf_round_trip(false, HAFL_QUANT_F32, S_QWEN2);
    s_test_gguf_round_trip(true, HAFL_QUANT_F16, S_WIDE);
    s_test_gguf_round_trip(true, HAFL_QUANT_F16, S_QWEN2);
    s_test_gguf_refused();
    s_test_write_gguf();
    s_test_stories();
    printf("checkpoint: ok\n");
    return 0;
}
