/*  hafl_checkpoint: opening llama2.c checkpoints and building random ones. See hafl_checkpoint.h.

    Both paths produce the same memory image: the 28-byte header followed by the float32 tensors
    in file order, so the weight pointers are laid over it by one function and the digest is the
    SHA-256 of that image (for a file, of the file itself). The header is untrusted: every field
    is range-checked and the size it implies is computed in 64 bits from capped values before the
    file size is compared with it, so no product can overflow.
*/
#include "hafl_checkpoint.h"
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
    if (c->dim % c->n_heads != 0) {
        snprintf(err, errlen, "%s: header nonsense: n_heads = %d does not divide dim = %d", what,
                 c->n_heads, c->dim);
        return -1;
    }
    if (c->n_heads % c->n_kv_heads != 0) {
        snprintf(err, errlen, "%s: header nonsense: n_kv_heads = %d does not divide n_heads = %d",
                 what, c->n_kv_heads, c->n_heads);
        return -1;
    }
    //  RoPE rotates adjacent pairs inside a head, so a head needs an even width.
    if ((c->dim / c->n_heads) % 2 != 0) {
        snprintf(err, errlen, "%s: header nonsense: head size dim / n_heads = %d is odd", what,
                 c->dim / c->n_heads);
        return -1;
    }
    return 0;
}

//  Float count of everything after the header, for a checked config.
static uint64_t s_float_count(const hafl_llama_config_t *c)
{
    uint64_t dim = (uint64_t)c->dim, hidden = (uint64_t)c->hidden_dim;
    uint64_t layers = (uint64_t)c->n_layers, vocab = (uint64_t)c->vocab_size;
    uint64_t kv = (uint64_t)hafl_llama_kv_dim(c), head = dim / (uint64_t)c->n_heads;
    uint64_t n = vocab * dim;                                   //  token_embedding
    n += layers * (dim + dim * dim + 2 * kv * dim + dim * dim); //  rms_att wq wk wv wo
    n += layers * (dim + 3 * hidden * dim);                     //  rms_ffn w1 w2 w3
    n += dim;                                                   //  rms_final
    n += 2 * (uint64_t)c->seq_len * (head / 2);                 //  legacy RoPE tables
    if (!c->shared_classifier)
        n += vocab * dim; //  wcls
    return n;
}

//  Lay the weight pointers over the floats that follow the header.
static void s_weights_map(hafl_llama_weights_t *w, const hafl_llama_config_t *c, const float *p)
{
    size_t dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim, layers = (size_t)c->n_layers;
    size_t kv = (size_t)hafl_llama_kv_dim(c), head = dim / (size_t)c->n_heads;
    w->token_embedding = p, p += (size_t)c->vocab_size * dim;
    w->rms_att = p, p += layers * dim;
    w->wq = p, p += layers * dim * dim;
    w->wk = p, p += layers * kv * dim;
    w->wv = p, p += layers * kv * dim;
    w->wo = p, p += layers * dim * dim;
    w->rms_ffn = p, p += layers * dim;
    w->w1 = p, p += layers * hidden * dim;
    w->w2 = p, p += layers * dim * hidden;
    w->w3 = p, p += layers * hidden * dim;
    w->rms_final = p, p += dim;
    p += 2 * (size_t)c->seq_len * (head / 2);
    w->wcls = c->shared_classifier ? w->token_embedding : p;
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
    crypto_hash_sha256(self->digest, self->memory, self->size);
    return 0;
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
    //  llama2.c's convention: a negative vocab size marks a separate classifier matrix.
    c->shared_classifier = header[5] > 0;
    c->vocab_size = header[5] == INT32_MIN ? 0 : (header[5] < 0 ? -header[5] : header[5]);
    if (s_config_check(c, path, err, errlen) != 0)
        goto fail;
    uint64_t expected = S_HEADER_BYTES + 4 * s_float_count(c);
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
                  (const float *)((const uint8_t *)self->memory + S_HEADER_BYTES));
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
    char name[160];
    snprintf(name, sizeof name, "random:%d,%d,%d,%d,%d,%d,%d%s", config->dim, config->hidden_dim,
             config->n_layers, config->n_heads, config->n_kv_heads, config->vocab_size,
             config->seq_len, config->shared_classifier ? "" : ",separate");
    if (s_config_check(config, name, err, errlen) != 0)
        return NULL;
    hafl_checkpoint_t *self = calloc(1, sizeof(hafl_checkpoint_t));
    if (!self || !(self->path = strdup(name))) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto fail;
    }
    self->config = *config;
    uint64_t floats = s_float_count(config);
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
    s_weights_map(&self->weights, config, base);

    //  Every float is drawn in file order from one stream, then the RMSNorm gains are set to 1,
    //  so a given (config, seed) always yields the same image whatever changes elsewhere.
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, HAFL_STREAM_SYNTH, 0);
    const hafl_llama_weights_t *w = &self->weights;
    size_t dim = (size_t)config->dim, layers = (size_t)config->n_layers;
    float *rope_begin = (float *)w->rms_final + dim;
    float *rope_end = (float *)(config->shared_classifier ? base + floats : w->wcls);
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
