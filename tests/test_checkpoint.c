/*  test_checkpoint: llama2.c checkpoint loading and random checkpoints.

    A random checkpoint's memory image is exactly a checkpoint file, so writing it out and
    opening it must give the same config, weights and digest. Damaged copies (truncated, bad
    header values, trailing bytes) and a missing file must each be refused with a reason that
    names the file and the fault. The real stories260K asset must hash to its published SHA-256.
*/
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_test.h"
#include "hafl_test_model.h"

#include <math.h>
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
    hafl_llama_config_t config = {16, 40, 2, 4, 2, 37, 8, shared};
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
    for (size_t i = 0; i < sizeof(hafl_llama_weights_t) / sizeof(float *); i++)
        CHECK((const uint8_t *)wc[i] - (const uint8_t *)c->memory ==
              (const uint8_t *)wr[i] - (const uint8_t *)r->memory);
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
    s_expect_refused(image, r->size, "head size dim / n_heads = 1 is odd");
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
    hafl_llama_config_t config = {64, 96, 3, 8, 4, 100, 32, true};
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
    s_test_stories();
    printf("checkpoint: ok\n");
    return 0;
}
