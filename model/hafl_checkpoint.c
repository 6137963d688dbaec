/*  hafl_checkpoint: opening llama2.c and GGUF checkpoints and building random ones. See
    hafl_checkpoint.h.

    A llama2.c file and a random checkpoint produce the same memory image: the 28-byte header
    followed by the float32 tensors in file order (random ones with biases add them at the end),
    so the weight pointers are laid over it by one function and the digest is the SHA-256 of
    that image (for a file, of the file itself; for random settings the header cannot express,
    of the image and the name that spells them). The header is untrusted: every field is
    range-checked and the size it implies is computed in 64 bits from capped values before the
    file size is compared with it, so no product can overflow.
*/
#include "hafl_checkpoint.h"
#include "hafl_gguf.h"
#include "hafl_gguf_writer.h"
#include "hafl_quant.h"
#include "hafl_rng.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llama2.c checkpoints are little-endian and hafl maps them directly"
#endif

#define S_HEADER_BYTES 28
//  Caps well above any model this project runs, low enough that size arithmetic stays in range.
#define S_MAX_DIM    (1 << 16)
#define S_MAX_HIDDEN (1 << 18)
#define S_MAX_LAYERS 1024
#define S_MAX_HEADS  1024
#define S_MAX_VOCAB  (1 << 20)
#define S_MAX_SEQ    (1 << 20)
#define S_MAX_HEAD   4096

//  Check a config for sane values; 0, or -1 with a reason (prefixed by what) in err.
static int s_config_check(const hafl_llama_config_t *c, const char *what, char *err, size_t errlen)
{
    struct {
        const char *name;
        int value;
        int cap;
    } fields[] = {{"dim", c->dim, S_MAX_DIM},
                  {"hidden_dim", c->hidden_dim, S_MAX_HIDDEN},
                  {"n_layers", c->n_layers, S_MAX_LAYERS},
                  {"n_heads", c->n_heads, S_MAX_HEADS},
                  {"n_kv_heads", c->n_kv_heads, S_MAX_HEADS},
                  {"vocab_size", c->vocab_size, S_MAX_VOCAB},
                  {"seq_len", c->seq_len, S_MAX_SEQ}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].value <= 0 || fields[i].value > fields[i].cap) {
            snprintf(err, errlen, "%s: header nonsense: %s = %d (must be in 1..%d)", what,
                     fields[i].name, fields[i].value, fields[i].cap);
            return -1;
        }
    //  Without a head size of its own (llama2.c files always), heads split dim evenly.
    if (c->head_size == 0 && c->dim % c->n_heads != 0) {
        snprintf(err, errlen, "%s: header nonsense: n_heads = %d does not divide dim = %d", what,
                 c->n_heads, c->dim);
        return -1;
    }
    if (c->head_size < 0 || c->head_size > S_MAX_HEAD ||
        (int64_t)c->n_heads * hafl_llama_head_size(c) > S_MAX_HIDDEN) {
        snprintf(err, errlen, "%s: head size %d with %d heads is out of range", what,
                 hafl_llama_head_size(c), c->n_heads);
        return -1;
    }
    if (c->n_heads % c->n_kv_heads != 0) {
        snprintf(err, errlen, "%s: header nonsense: n_kv_heads = %d does not divide n_heads = %d",
                 what, c->n_kv_heads, c->n_heads);
        return -1;
    }
    //  RoPE rotates pairs inside a head, so a head needs an even width.
    if (hafl_llama_head_size(c) % 2 != 0) {
        snprintf(err, errlen, "%s: header nonsense: head size %d is odd", what,
                 hafl_llama_head_size(c));
        return -1;
    }
    //  Written so that NaN fails too.
    if (!(c->rope_base > 1.0f && c->rope_base < 1e12f)) {
        snprintf(err, errlen, "%s: RoPE base %g is not in (1, 1e12)", what, (double)c->rope_base);
        return -1;
    }
    if (!(c->rms_eps > 0.0f && c->rms_eps < 1.0f)) {
        snprintf(err, errlen, "%s: RMSNorm epsilon %g is not in (0, 1)", what, (double)c->rms_eps);
        return -1;
    }
    return 0;
}

//  Floats of the q, k and v biases (none unless qkv_bias); they follow everything else.
static uint64_t s_bias_floats(const hafl_llama_config_t *c)
{
    if (!c->qkv_bias)
        return 0;
    return (uint64_t)c->n_layers *
           ((uint64_t)hafl_llama_q_dim(c) + 2 * (uint64_t)hafl_llama_kv_dim(c));
}

//  Floats of the two legacy RoPE tables a llama2.c file carries (GGUF files have none).
static uint64_t s_rope_floats(const hafl_llama_config_t *c)
{
    return 2 * (uint64_t)c->seq_len * ((uint64_t)hafl_llama_head_size(c) / 2);
}

//  Float count of everything after the header, for a checked config; rope says whether the
//  legacy RoPE tables are part of it.
static uint64_t s_float_count(const hafl_llama_config_t *c, bool rope)
{
    uint64_t dim = (uint64_t)c->dim, hidden = (uint64_t)c->hidden_dim;
    uint64_t layers = (uint64_t)c->n_layers, vocab = (uint64_t)c->vocab_size;
    uint64_t kv = (uint64_t)hafl_llama_kv_dim(c), q = (uint64_t)hafl_llama_q_dim(c);
    uint64_t n = vocab * dim;                               //  token_embedding
    n += layers * (dim + q * dim + 2 * kv * dim + dim * q); //  rms_att wq wk wv wo
    n += layers * (dim + 3 * hidden * dim);                 //  rms_ffn w1 w2 w3
    n += dim;                                               //  rms_final
    n += rope ? s_rope_floats(c) : 0;                       //  legacy RoPE tables
    if (!c->shared_classifier)
        n += vocab * dim; //  wcls
    n += s_bias_floats(c);
    return n;
}

//  Lay the weight pointers over the floats that follow the header (rope: as in s_float_count).
static void s_weights_map(hafl_llama_weights_t *w, const hafl_llama_config_t *c, const float *p,
                          bool rope)
{
    size_t dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim, layers = (size_t)c->n_layers;
    size_t kv = (size_t)hafl_llama_kv_dim(c), q = (size_t)hafl_llama_q_dim(c);
    w->token_embedding = p, p += (size_t)c->vocab_size * dim;
    w->rms_att = p, p += layers * dim;
    w->wq = p, p += layers * q * dim;
    w->wk = p, p += layers * kv * dim;
    w->wv = p, p += layers * kv * dim;
    w->wo = p, p += layers * dim * q;
    w->rms_ffn = p, p += layers * dim;
    w->w1 = p, p += layers * hidden * dim;
    w->w2 = p, p += layers * dim * hidden;
    w->w3 = p, p += layers * hidden * dim;
    w->rms_final = p, p += dim;
    p += rope ? (size_t)s_rope_floats(c) : 0;
    w->wcls = c->shared_classifier ? w->token_embedding : p;
    p += c->shared_classifier ? 0 : (size_t)c->vocab_size * dim;
    w->bq = w->bk = w->bv = NULL;
    if (c->qkv_bias) {
        w->bq = p, p += layers * q;
        w->bk = p, p += layers * kv;
        w->bv = p;
    }
}

static void s_header_write(uint8_t *image, const hafl_llama_config_t *c)
{
    int32_t header[7] = {c->dim,        c->hidden_dim,
                         c->n_layers,   c->n_heads,
                         c->n_kv_heads, c->shared_classifier ? c->vocab_size : -c->vocab_size,
                         c->seq_len};
    memcpy(image, header, sizeof header);
}

static int s_digest(hafl_checkpoint_t *self, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "%s: libsodium failed to initialise", self->path);
        return -1;
    }
    const hafl_llama_config_t *c = &self->config;
    bool implicit = c->rope_base == HAFL_LLAMA2C_ROPE_BASE && c->rms_eps == HAFL_LLAMA2C_RMS_EPS &&
                    !c->rope_neox && !c->qkv_bias && c->head_size == 0;
    if (implicit || self->mapped) {
        crypto_hash_sha256(self->digest, self->memory, self->size);
        return 0;
    }
    //  A random checkpoint whose RoPE or norm settings are not llama2.c's: two such models with
    //  the same floats must not share a digest, and the name spells the settings.
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, self->memory, self->size);
    crypto_hash_sha256_update(&st, (const uint8_t *)self->path, strlen(self->path));
    crypto_hash_sha256_final(&st, self->digest);
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  GGUF checkpoints of architecture llama or qwen2

//  GGUF hyperparameters are `<arch>.<name>`. Each reader below fails with a reason naming
//  the key; an optional key that is absent leaves *out as it is (the caller's default).

//  An integer in 1..cap (the caps of s_config_check). 0, or -1.
static int s_gguf_hyper(const hafl_gguf_t *g, const char *arch, const char *name, bool optional,
                        int cap, int *out, char *err, size_t errlen)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    if (optional && !hafl_gguf_find(g, key))
        return 0;
    uint32_t value;
    if (hafl_gguf_get_u32(g, key, &value, err, errlen) != 0)
        return -1;
    if (value < 1 || value > (uint32_t)cap) {
        snprintf(err, errlen, "%s: key '%s': %u is out of range (1..%d)", hafl_gguf_path(g), key,
                 value, cap);
        return -1;
    }
    *out = (int)value;
    return 0;
}

//  An optional integer that, when present, must equal what the engine computes with (`engine`,
//  described by `why`). 0, or -1.
static int s_gguf_expect(const hafl_gguf_t *g, const char *arch, const char *name, int engine,
                         const char *why, char *err, size_t errlen)
{
    int value = engine;
    if (s_gguf_hyper(g, arch, name, true, S_MAX_DIM, &value, err, errlen))
        return -1;
    if (value != engine) {
        snprintf(err, errlen, "%s: key '%s.%s': %d is not supported (%s %d)", hafl_gguf_path(g),
                 arch, name, value, why, engine);
        return -1;
    }
    return 0;
}

//  A float in the open interval (lo, hi) (NaN fails). 0, or -1.
static int s_gguf_float(const hafl_gguf_t *g, const char *arch, const char *name, bool optional,
                        float lo, float hi, float *out, char *err, size_t errlen)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    if (optional && !hafl_gguf_find(g, key))
        return 0;
    float value;
    if (hafl_gguf_get_f32(g, key, &value, err, errlen) != 0)
        return -1;
    if (!(value > lo && value < hi)) {
        snprintf(err, errlen, "%s: key '%s': %g is out of range (%g, %g)", hafl_gguf_path(g), key,
                 (double)value, (double)lo, (double)hi);
        return -1;
    }
    *out = value;
    return 0;
}

//  Read and check the hyperparameters into c; vocab_size comes from token_embd.weight's rows.
static int s_gguf_config(const hafl_gguf_t *g, hafl_llama_config_t *c, char *err, size_t errlen)
{
    const char *path = hafl_gguf_path(g);
    const char *arch = hafl_gguf_architecture(g);
    if (!arch || (strcmp(arch, "llama") != 0 && strcmp(arch, "qwen2") != 0)) {
        snprintf(err, errlen,
                 "%s: key 'general.architecture': %s%s%s is not supported (llama or qwen2)", path,
                 arch ? "'" : "", arch ? arch : "missing", arch ? "'" : "");
        return -1;
    }
    bool qwen2 = strcmp(arch, "qwen2") == 0;
    //  Absent: llama.cpp's defaults (no grouping, base 10000, dim / n_heads wide heads); the
    //  epsilon has none there either. The ranges are s_config_check's.
    c->rope_base = HAFL_LLAMA2C_ROPE_BASE;
    c->head_size = 0;
    if (s_gguf_hyper(g, arch, "embedding_length", false, S_MAX_DIM, &c->dim, err, errlen) ||
        s_gguf_hyper(g, arch, "feed_forward_length", false, S_MAX_HIDDEN, &c->hidden_dim, err,
                     errlen) ||
        s_gguf_hyper(g, arch, "block_count", false, S_MAX_LAYERS, &c->n_layers, err, errlen) ||
        s_gguf_hyper(g, arch, "attention.head_count", false, S_MAX_HEADS, &c->n_heads, err,
                     errlen) ||
        s_gguf_hyper(g, arch, "context_length", false, S_MAX_SEQ, &c->seq_len, err, errlen))
        return -1;
    c->n_kv_heads = c->n_heads;
    if (s_gguf_hyper(g, arch, "attention.head_count_kv", true, S_MAX_HEADS, &c->n_kv_heads, err,
                     errlen) ||
        s_gguf_hyper(g, arch, "attention.key_length", true, S_MAX_HEAD, &c->head_size, err,
                     errlen) ||
        s_gguf_float(g, arch, "rope.freq_base", true, 1.0f, 1e12f, &c->rope_base, err, errlen) ||
        s_gguf_float(g, arch, "attention.layer_norm_rms_epsilon", false, 0.0f, 1.0f, &c->rms_eps,
                     err, errlen))
        return -1;
    c->rope_neox = qwen2;
    const hafl_gguf_tensor_t *embd = hafl_gguf_tensor(g, "token_embd.weight");
    if (!embd) {
        snprintf(err, errlen, "%s: tensor 'token_embd.weight': missing", path);
        return -1;
    }
    //  The vocabulary is the embedding's row count (dims[1]); the rest of its shape is checked
    //  on reading.
    if (embd->n_dims != 2 || embd->dims[1] > S_MAX_VOCAB) {
        snprintf(err, errlen,
                 "%s: tensor 'token_embd.weight': %u dimensions with %llu rows, expected 2 "
                 "dimensions with at most %d rows (the vocabulary)",
                 path, embd->n_dims, (unsigned long long)embd->dims[1], S_MAX_VOCAB);
        return -1;
    }
    c->vocab_size = (int)embd->dims[1];
    c->shared_classifier = hafl_gguf_tensor(g, "output.weight") == NULL;
    //  Biases come as a set: the first decides, s_gguf_weights requires the others.
    c->qkv_bias = hafl_gguf_tensor(g, "blk.0.attn_q.bias") != NULL;
    if (c->qkv_bias && !qwen2) {
        snprintf(err, errlen, "%s: tensor 'blk.0.attn_q.bias': llama has no projection biases",
                 path);
        return -1;
    }
    if (s_config_check(c, path, err, errlen) != 0)
        return -1;
    int vocab = c->vocab_size;
    if (s_gguf_hyper(g, arch, "vocab_size", true, S_MAX_VOCAB, &vocab, err, errlen))
        return -1;
    if (vocab != c->vocab_size) {
        snprintf(err, errlen, "%s: key '%s.vocab_size': %d, but token_embd.weight has %d rows",
                 path, arch, vocab, c->vocab_size);
        return -1;
    }
    //  Values as wide as keys, and RoPE over whole heads: other value widths and partial
    //  rotary embeddings are refused.
    int hs = hafl_llama_head_size(c);
    if (s_gguf_expect(g, arch, "attention.value_length", hs,
                      "the engine's value heads are as wide as its key heads,", err, errlen) ||
        s_gguf_expect(g, arch, "rope.dimension_count", hs, "the engine rotates whole heads of", err,
                      errlen))
        return -1;
    //  Scaled RoPE (linear, YaRN, Llama 3's frequency table) changes the rotation angles.
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (hafl_gguf_find(g, key)) {
        hafl_gguf_str_t scaling;
        if (hafl_gguf_get_str(g, key, &scaling, err, errlen))
            return -1;
        if (scaling.len != 4 || memcmp(scaling.data, "none", 4) != 0) {
            snprintf(err, errlen, "%s: key '%s': '%.*s' is not supported", path, key,
                     (int)(scaling.len > 32 ? 32 : scaling.len), scaling.data);
            return -1;
        }
    }
    return 0;
}

//  Dequantise tensor `name` (`blk.<layer>.name` when layer >= 0) of shape [rows][cols] (rows 0:
//  a vector of cols) into dst[rows * cols]. The GGUF shape is {cols, rows}, dims[0] fastest.
static int s_gguf_tensor(const hafl_gguf_t *g, int layer, const char *name, uint64_t rows,
                         uint64_t cols, float *dst, char *err, size_t errlen)
{
    char full[96];
    if (layer >= 0)
        snprintf(full, sizeof full, "blk.%d.%s", layer, name);
    else
        snprintf(full, sizeof full, "%s", name);
    const hafl_gguf_tensor_t *t = hafl_gguf_tensor(g, full);
    const char *path = hafl_gguf_path(g);
    if (!t) {
        snprintf(err, errlen, "%s: tensor '%s': missing", path, full);
        return -1;
    }
    uint32_t want_dims = rows ? 2 : 1;
    if (t->n_dims != want_dims || t->dims[0] != cols || (rows && t->dims[1] != rows)) {
        char shape[96], want[48];
        int used = snprintf(shape, sizeof shape, "{%llu", (unsigned long long)t->dims[0]);
        for (uint32_t d = 1; d < t->n_dims && used > 0 && (size_t)used < sizeof shape; d++)
            used += snprintf(shape + used, sizeof shape - (size_t)used, ", %llu",
                             (unsigned long long)t->dims[d]);
        if (rows)
            snprintf(want, sizeof want, "{%llu, %llu}", (unsigned long long)cols,
                     (unsigned long long)rows);
        else
            snprintf(want, sizeof want, "{%llu}", (unsigned long long)cols);
        snprintf(err, errlen, "%s: tensor '%s': shape %s}, the hyperparameters imply %s", path,
                 full, shape, want);
        return -1;
    }
    char why[256];
    if (hafl_quant_dequantize(t->type, t->data, (size_t)t->n_bytes, dst, t->n_elements, why,
                              sizeof why) != 0) {
        snprintf(err, errlen, "%s: tensor '%s': %s", path, full, why);
        return -1;
    }
    return 0;
}

//  Whether `name` is one of the tensors s_gguf_weights reads, so a file carrying anything else
//  (rope_freqs, output biases, experts) is refused instead of run without it.
static bool s_gguf_known(const char *name, const hafl_llama_config_t *c)
{
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "output_norm.weight") == 0 ||
        (!c->shared_classifier && strcmp(name, "output.weight") == 0))
        return true;
    int layer, end = 0;
    char suffix[40];
    if (sscanf(name, "blk.%d.%39[a-z_.]%n", &layer, suffix, &end) != 2 || name[end] != '\0' ||
        layer < 0 || layer >= c->n_layers)
        return false;
    char canonical[96];
    snprintf(canonical, sizeof canonical, "blk.%d.%s", layer, suffix);
    if (strcmp(canonical, name) != 0)
        return false;
    //  Any layer's table has the same names; layer 0 of null weights is enough to list them.
    hafl_llama_weights_t none = {0};
    hafl_llama_gguf_block_t blocks[HAFL_LLAMA_GGUF_BLOCKS];
    size_t n = hafl_llama_gguf_blocks(c, &none, 0, blocks);
    for (size_t i = 0; i < n; i++)
        if (strcmp(suffix, blocks[i].name) == 0)
            return true;
    return false;
}

//  Dequantise every tensor into the float image s_weights_map lays out (no RoPE tables).
static int s_gguf_weights(const hafl_gguf_t *g, hafl_checkpoint_t *self, char *err, size_t errlen)
{
    const hafl_llama_config_t *c = &self->config;
    for (size_t i = 0; i < hafl_gguf_tensor_count(g); i++) {
        const char *name = hafl_gguf_tensor_at(g, i)->name;
        if (!s_gguf_known(name, c)) {
            snprintf(err, errlen, "%s: tensor '%s': not part of the %s architecture hafl runs",
                     hafl_gguf_path(g), name, hafl_gguf_architecture(g));
            return -1;
        }
    }
    uint64_t floats = s_float_count(c, false);
    if (floats > SIZE_MAX / 4) {
        snprintf(err, errlen, "%s: too large for this machine", self->path);
        return -1;
    }
    self->size = 4 * (size_t)floats;
    if (!(self->memory = malloc(self->size))) {
        snprintf(err, errlen, "%s: out of memory for %zu bytes of weights", self->path, self->size);
        return -1;
    }
    s_weights_map(&self->weights, c, self->memory, false);
    const hafl_llama_weights_t *w = &self->weights;
    uint64_t dim = (uint64_t)c->dim, vocab = (uint64_t)c->vocab_size;
    //  The weight pointers are const for users; this function fills what it allocated.
    if (s_gguf_tensor(g, -1, "token_embd.weight", vocab, dim, (float *)w->token_embedding, err,
                      errlen) ||
        s_gguf_tensor(g, -1, "output_norm.weight", 0, dim, (float *)w->rms_final, err, errlen) ||
        (!c->shared_classifier &&
         s_gguf_tensor(g, -1, "output.weight", vocab, dim, (float *)w->wcls, err, errlen)))
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        hafl_llama_gguf_block_t blocks[HAFL_LLAMA_GGUF_BLOCKS];
        size_t n = hafl_llama_gguf_blocks(c, w, l, blocks);
        for (size_t b = 0; b < n; b++)
            if (s_gguf_tensor(g, l, blocks[b].name, blocks[b].rows, blocks[b].cols,
                              (float *)blocks[b].slice, err, errlen))
                return -1;
    }
    return 0;
}

//  The GGUF branch of hafl_checkpoint_open: self has its path; the weights are allocated and
//  dequantised to float32, and the digest is the SHA-256 of the whole file.
static int s_gguf_open(hafl_checkpoint_t *self, char *err, size_t errlen)
{
    hafl_gguf_t *g = hafl_gguf_open(self->path, err, errlen);
    if (!g)
        return -1;
    int rc = -1;
    if (s_gguf_config(g, &self->config, err, errlen) || s_gguf_weights(g, self, err, errlen))
        goto done;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "%s: libsodium failed to initialise", self->path);
        goto done;
    }
    size_t size;
    const uint8_t *bytes = hafl_gguf_bytes(g, &size);
    crypto_hash_sha256(self->digest, bytes, size);
    self->gguf = true;
    rc = 0;
done:
    hafl_gguf_destroy(&g);
    return rc;
}

hafl_checkpoint_t *hafl_checkpoint_open(const char *path, char *err, size_t errlen)
{
    hafl_checkpoint_t *self = calloc(1, sizeof(hafl_checkpoint_t));
    int fd = -1;
    if (!self || !(self->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot open checkpoint: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    //  GGUF by its magic; a llama2.c header never starts so (dim would be above its cap).
    char magic[4];
    if (st.st_size >= 4 && pread(fd, magic, 4, 0) == 4 && memcmp(magic, "GGUF", 4) == 0) {
        close(fd);
        fd = -1;
        if (s_gguf_open(self, err, errlen) != 0)
            goto fail;
        return self;
    }
    if (st.st_size < S_HEADER_BYTES) {
        snprintf(err, errlen, "%s: truncated: %lld bytes, shorter than the 28-byte header", path,
                 (long long)st.st_size);
        goto fail;
    }
    int32_t header[7];
    if (pread(fd, header, sizeof header, 0) != (ssize_t)sizeof header) {
        snprintf(err, errlen, "%s: cannot read header: %s", path, strerror(errno));
        goto fail;
    }
    hafl_llama_config_t *c = &self->config;
    c->dim = header[0], c->hidden_dim = header[1], c->n_layers = header[2];
    c->n_heads = header[3], c->n_kv_heads = header[4], c->seq_len = header[6];
    c->rope_base = HAFL_LLAMA2C_ROPE_BASE, c->rms_eps = HAFL_LLAMA2C_RMS_EPS;
    //  llama2.c's convention: a negative vocab size marks a separate classifier matrix.
    c->shared_classifier = header[5] > 0;
    c->vocab_size = header[5] == INT32_MIN ? 0 : (header[5] < 0 ? -header[5] : header[5]);
    if (s_config_check(c, path, err, errlen) != 0)
        goto fail;
    uint64_t expected = S_HEADER_BYTES + 4 * s_float_count(c, true);
    if ((uint64_t)st.st_size < expected) {
        snprintf(err, errlen,
                 "%s: truncated: %lld bytes, the header (dim %d, hidden %d, layers %d, heads %d, "
                 "kv heads %d, vocab %d, seq %d, %s classifier) implies %llu",
                 path, (long long)st.st_size, c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                 c->n_kv_heads, c->vocab_size, c->seq_len,
                 c->shared_classifier ? "shared" : "separate", (unsigned long long)expected);
        goto fail;
    }
    if ((uint64_t)st.st_size > expected) {
        snprintf(err, errlen, "%s: %llu trailing bytes after the %llu bytes the header implies",
                 path, (unsigned long long)((uint64_t)st.st_size - expected),
                 (unsigned long long)expected);
        goto fail;
    }
    self->size = (size_t)expected;
    self->memory = mmap(NULL, self->size, PROT_READ, MAP_SHARED, fd, 0);
    if (self->memory == MAP_FAILED) {
        self->memory = NULL;
        snprintf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    self->mapped = true;
    close(fd);
    fd = -1;
    s_weights_map(&self->weights, c,
                  (const float *)((const uint8_t *)self->memory + S_HEADER_BYTES), true);
    if (s_digest(self, err, errlen) != 0)
        goto fail;
    return self;
fail:
    if (fd >= 0)
        close(fd);
    hafl_checkpoint_destroy(&self);
    return NULL;
}

hafl_checkpoint_t *hafl_checkpoint_random(const hafl_llama_config_t *config, uint64_t seed,
                                          char *err, size_t errlen)
{
    //  Zero rope_base / rms_eps mean llama2.c's values.
    hafl_llama_config_t c = *config;
    if (c.rope_base == 0.0f)
        c.rope_base = HAFL_LLAMA2C_ROPE_BASE;
    if (c.rms_eps == 0.0f)
        c.rms_eps = HAFL_LLAMA2C_RMS_EPS;
    config = &c;
    char name[224];
    int used =
        snprintf(name, sizeof name, "random:%d,%d,%d,%d,%d,%d,%d%s", config->dim,
                 config->hidden_dim, config->n_layers, config->n_heads, config->n_kv_heads,
                 config->vocab_size, config->seq_len, config->shared_classifier ? "" : ",separate");
    if (used > 0 && (size_t)used < sizeof name &&
        (config->rope_base != HAFL_LLAMA2C_ROPE_BASE || config->rms_eps != HAFL_LLAMA2C_RMS_EPS ||
         config->rope_neox || config->qkv_bias || config->head_size))
        snprintf(name + used, sizeof name - (size_t)used, ",base=%g,eps=%g%s%s,hs=%d",
                 (double)config->rope_base, (double)config->rms_eps,
                 config->rope_neox ? ",neox" : "", config->qkv_bias ? ",bias" : "",
                 hafl_llama_head_size(config));
    if (s_config_check(config, name, err, errlen) != 0)
        return NULL;
    hafl_checkpoint_t *self = calloc(1, sizeof(hafl_checkpoint_t));
    if (!self || !(self->path = strdup(name))) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto fail;
    }
    self->config = *config;
    uint64_t floats = s_float_count(config, true);
    if (floats > (SIZE_MAX - S_HEADER_BYTES) / 4) {
        snprintf(err, errlen, "%s: too large for this machine", name);
        goto fail;
    }
    self->size = S_HEADER_BYTES + 4 * (size_t)floats;
    //  calloc so the skipped RoPE tables hash as zeros.
    self->memory = calloc(1, self->size);
    if (!self->memory) {
        snprintf(err, errlen, "%s: out of memory for %zu bytes", name, self->size);
        goto fail;
    }
    s_header_write(self->memory, config);
    float *base = (float *)((uint8_t *)self->memory + S_HEADER_BYTES);
    s_weights_map(&self->weights, config, base, true);

    //  Every float is drawn in file order from one stream, then the RMSNorm gains are set to 1,
    //  so a given (config, seed) always yields the same image whatever changes elsewhere.
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, HAFL_STREAM_SYNTH, 0);
    const hafl_llama_weights_t *w = &self->weights;
    size_t dim = (size_t)config->dim, layers = (size_t)config->n_layers;
    float *rope_begin = (float *)w->rms_final + dim;
    float *rope_end = rope_begin + s_rope_floats(config);
    for (float *p = base; p < base + floats; p++)
        if (p < rope_begin || p >= rope_end)
            *p = (float)(0.02 * hafl_rng_normal(&rng));
    float *gains[] = {(float *)w->rms_att, (float *)w->rms_ffn, (float *)w->rms_final};
    size_t counts[] = {layers * dim, layers * dim, dim};
    for (int g = 0; g < 3; g++)
        for (size_t i = 0; i < counts[g]; i++)
            gains[g][i] = 1.0f;
    if (s_digest(self, err, errlen) != 0)
        goto fail;
    return self;
fail:
    hafl_checkpoint_destroy(&self);
    return NULL;
}

void hafl_checkpoint_destroy(hafl_checkpoint_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_checkpoint_t *self = *self_p;
    if (self->memory) {
        if (self->mapped)
            munmap(self->memory, self->size);
        else
            free(self->memory);
    }
    free(self->path);
    free(self);
    *self_p = NULL;
}

size_t hafl_llama_gguf_blocks(const hafl_llama_config_t *c, const hafl_llama_weights_t *w,
                              int layer, hafl_llama_gguf_block_t out[HAFL_LLAMA_GGUF_BLOCKS])
{
    uint64_t dim = (uint64_t)c->dim, hidden = (uint64_t)c->hidden_dim;
    uint64_t kv = (uint64_t)hafl_llama_kv_dim(c), q = (uint64_t)hafl_llama_q_dim(c);
    const hafl_llama_gguf_block_t table[HAFL_LLAMA_GGUF_BLOCKS] = {
        {"attn_norm.weight", w->rms_att, 0, dim},
        {"attn_q.weight", w->wq, q, dim},
        {"attn_k.weight", w->wk, kv, dim},
        {"attn_v.weight", w->wv, kv, dim},
        {"attn_output.weight", w->wo, dim, q},
        {"ffn_norm.weight", w->rms_ffn, 0, dim},
        {"ffn_gate.weight", w->w1, hidden, dim},
        {"ffn_down.weight", w->w2, dim, hidden},
        {"ffn_up.weight", w->w3, hidden, dim},
        {"attn_q.bias", w->bq, 0, q},
        {"attn_k.bias", w->bk, 0, kv},
        {"attn_v.bias", w->bv, 0, kv}};
    size_t n = c->qkv_bias ? HAFL_LLAMA_GGUF_BLOCKS : HAFL_LLAMA_GGUF_BLOCKS - 3;
    for (size_t b = 0; b < n; b++) {
        out[b] = table[b];
        uint64_t per_layer = (table[b].rows ? table[b].rows : 1) * table[b].cols;
        out[b].slice = table[b].slice ? table[b].slice + (size_t)layer * per_layer : NULL;
    }
    return n;
}

//  One tensor [rows][cols] (rows 0: a vector, always F32) into the writer.
static void s_gguf_put(hafl_gguf_writer_t *w, const char *name, uint32_t type, uint64_t rows,
                       uint64_t cols, const float *values)
{
    uint64_t dims[2] = {cols, rows};
    hafl_gguf_writer_add_tensor_floats(w, name, rows ? type : HAFL_QUANT_F32, rows ? 2 : 1, dims,
                                       values);
}

int hafl_checkpoint_write_gguf(const hafl_checkpoint_t *self, hafl_gguf_writer_t *w, uint32_t type)
{
    const hafl_llama_config_t *c = &self->config;
    const hafl_llama_weights_t *wt = &self->weights;
    const char *arch = c->rope_neox ? "qwen2" : "llama";
    char key[96];
    //  The writer keeps its first failure, so every add is made and the result checked once.
#define S_KEY(name) (snprintf(key, sizeof key, "%s.%s", arch, name), key)
    hafl_gguf_writer_add_string(w, "general.architecture", arch);
    hafl_gguf_writer_add_u32(w, S_KEY("context_length"), (uint32_t)c->seq_len);
    hafl_gguf_writer_add_u32(w, S_KEY("embedding_length"), (uint32_t)c->dim);
    hafl_gguf_writer_add_u32(w, S_KEY("feed_forward_length"), (uint32_t)c->hidden_dim);
    hafl_gguf_writer_add_u32(w, S_KEY("block_count"), (uint32_t)c->n_layers);
    hafl_gguf_writer_add_u32(w, S_KEY("attention.head_count"), (uint32_t)c->n_heads);
    hafl_gguf_writer_add_u32(w, S_KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    hafl_gguf_writer_add_f32(w, S_KEY("attention.layer_norm_rms_epsilon"), c->rms_eps);
    hafl_gguf_writer_add_f32(w, S_KEY("rope.freq_base"), c->rope_base);
    if (hafl_llama_head_size(c) * c->n_heads != c->dim) {
        hafl_gguf_writer_add_u32(w, S_KEY("attention.key_length"),
                                 (uint32_t)hafl_llama_head_size(c));
        hafl_gguf_writer_add_u32(w, S_KEY("attention.value_length"),
                                 (uint32_t)hafl_llama_head_size(c));
    }
#undef S_KEY
    uint64_t dim = (uint64_t)c->dim, vocab = (uint64_t)c->vocab_size;
    s_gguf_put(w, "token_embd.weight", type, vocab, dim, wt->token_embedding);
    for (int l = 0; l < c->n_layers; l++) {
        hafl_llama_gguf_block_t blocks[HAFL_LLAMA_GGUF_BLOCKS];
        size_t n = hafl_llama_gguf_blocks(c, wt, l, blocks);
        for (size_t b = 0; b < n; b++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", l, blocks[b].name);
            s_gguf_put(w, name, type, blocks[b].rows, blocks[b].cols, blocks[b].slice);
        }
    }
    s_gguf_put(w, "output_norm.weight", type, 0, dim, wt->rms_final);
    if (!c->shared_classifier)
        s_gguf_put(w, "output.weight", type, vocab, dim, wt->wcls);
    return hafl_gguf_writer_error(w) ? -1 : 0;
}
