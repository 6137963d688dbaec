/*  test_train_model: the LoRA trainer on a tiny random llama model, end to end.

    - Gradient check of the whole model: every LoRA factor entry of every trainable component
      and every head entry against central differences of the mean cross-entropy, computed in
      double from the trainer's float logits (h = 1e-2 on the entry). Tolerance per entry
      |analytic - numeric| <= 1e-3 + 2e-2 |numeric|; over all entries the error norm must be
      below 1e-2 of the gradient norm. Run for several role patterns (all trainable; a random
      mix of absent, frozen and trainable; one feed-forward matrix of the first layer only;
      the head only) and for one and two threads, so the backward pruning is covered; and for
      each architecture option the engine has (llama2.c's constants; Llama 3's RoPE base and
      epsilon; qwen2's NeoX RoPE, q/k/v biases and separate output matrix; a head size of
      its own, q_dim 24 over dim 16).
    - After a step, frozen components are bitwise unchanged, absent ones stay exactly zero.
    - A truncated client's forward equals the forward of the adapter with those components
      zeroed; padding (longer T, arbitrary tokens after each length) changes nothing, bitwise.
    - Same thread count, same result, bitwise, across runs; one vs two threads agree to 1e-5.
    - Malformed batches and loads are rejected with a reason.
*/
#include "test_train_fixture.h"

#include <stdio.h>

static float s_eval_loss(hafl_lora_trainer_t *t, const fixture_t *f, double *loss_out,
                         float *logits)
{
    char err[256];
    CHECKF(hafl_lora_trainer_evaluate(t, f->tokens, f->lengths, f->labels, f->B, f->T, logits, NULL,
                                      err, sizeof err) == 0,
           "%s", err);
    *loss_out = fixture_loss(logits, f->labels, f->B, f->layout.head_rows);
    return (float)*loss_out;
}

//  Perturb one entry, reload, and return the double loss.
static double s_loss_at(hafl_lora_trainer_t *t, const fixture_t *f, hafl_adapter_t *work,
                        const uint8_t *roles, float *entry, float value, float *logits)
{
    char err[256];
    float keep = *entry;
    *entry = value;
    CHECKF(hafl_lora_trainer_load(t, work, roles, err, sizeof err) == 0, "%s", err);
    double loss;
    s_eval_loss(t, f, &loss, logits);
    *entry = keep;
    return loss;
}

typedef struct {
    double diff2, ref2;
    size_t count;
} s_acc_t;

static void s_check_entry(const char *what, size_t index, float *entry, float analytic,
                          hafl_lora_trainer_t *t, const fixture_t *f, hafl_adapter_t *work,
                          const uint8_t *roles, float *logits, s_acc_t *acc)
{
    const float h = 1e-2f;
    float keep = *entry;
    double up = s_loss_at(t, f, work, roles, entry, keep + h, logits);
    double down = s_loss_at(t, f, work, roles, entry, keep - h, logits);
    double numeric = (up - down) / ((double)(keep + h) - (double)(keep - h));
    double err = fabs(analytic - numeric);
    CHECKF(err <= 1e-3 + 2e-2 * fabs(numeric), "%s entry %zu: analytic %.6g numeric %.6g", what,
           index, analytic, numeric);
    acc->diff2 += err * err;
    acc->ref2 += numeric * numeric;
    acc->count++;
}

static void s_gradient_check(const char *name, const fixture_t *f, const uint8_t *roles,
                             uint32_t threads)
{
    char err[256];
    hafl_lora_trainer_t *t = fixture_trainer(f, threads);
    CHECKF(hafl_lora_trainer_load(t, f->adapter, roles, err, sizeof err) == 0, "%s", err);
    hafl_lora_batch_stats_t stats;
    CHECKF(hafl_lora_trainer_gradient(t, f->tokens, f->lengths, f->labels, f->B, f->T, &stats, err,
                                      sizeof err) == 0,
           "%s", err);
    //  Copy the gradients before the finite differences run more passes.
    const hafl_layout_t *L = &f->layout;
    uint32_t R = L->rank;
    size_t n_head = (size_t)L->head_rows * L->head_cols;
    float *ghead = malloc(n_head * sizeof(float));
    float **gb = calloc(L->n_matrices, sizeof(float *)),
          **ga = calloc(L->n_matrices, sizeof(float *));
    CHECK(ghead && gb && ga);
    memcpy(ghead, hafl_lora_trainer_grad_head(t), n_head * sizeof(float));
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        size_t nb = (size_t)R * L->matrices[m].d_out, na = (size_t)R * L->matrices[m].d_in;
        gb[m] = malloc(nb * sizeof(float)), ga[m] = malloc(na * sizeof(float));
        CHECK(gb[m] && ga[m]);
        memcpy(gb[m], hafl_lora_trainer_grad_bt(t, m), nb * sizeof(float));
        memcpy(ga[m], hafl_lora_trainer_grad_a(t, m), na * sizeof(float));
    }
    //  The work copy carries absent components zeroed, as the trainer sees them.
    hafl_adapter_t *work = hafl_adapter_dup(hafl_lora_trainer_adapter(t));
    CHECK(work);
    float logits[16];
    double base;
    s_eval_loss(t, f, &base, logits);
    CHECK(fabs(base - stats.loss) < 1e-5 * (1.0 + base));
    s_acc_t acc = {0};
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < R; k++) {
            if (roles && roles[m * R + k] != HAFL_ROLE_TRAINABLE)
                continue;
            uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
            for (uint32_t i = 0; i < d_out; i++)
                s_check_entry(L->matrices[m].name, i, hafl_adapter_b(work, m, k) + i,
                              gb[m][(size_t)k * d_out + i], t, f, work, roles, logits, &acc);
            for (uint32_t i = 0; i < d_in; i++)
                s_check_entry(L->matrices[m].name, i, hafl_adapter_a(work, m, k) + i,
                              ga[m][(size_t)k * d_in + i], t, f, work, roles, logits, &acc);
        }
    for (size_t i = 0; i < n_head; i++)
        s_check_entry("head", i, work->head + i, ghead[i], t, f, work, roles, logits, &acc);
    CHECKF(sqrt(acc.diff2) <= 1e-2 * sqrt(acc.ref2), "%s: error norm %.3g, gradient norm %.3g",
           name, sqrt(acc.diff2), sqrt(acc.ref2));
    printf("  gradient check %-28s threads %u: %4zu entries, error norm %.2e, gradient norm %.2e\n",
           name, threads, acc.count, sqrt(acc.diff2), sqrt(acc.ref2));
    for (uint32_t m = 0; m < L->n_matrices; m++)
        free(gb[m]), free(ga[m]);
    free(gb), free(ga), free(ghead);
    hafl_adapter_destroy(&work);
    hafl_lora_trainer_destroy(&t);
}

static void s_gradient_checks(fixture_arch_t arch)
{
    printf("  %s model\n", fixture_arch_name(arch));
    fixture_t f;
    fixture_init_arch(&f, "wq,wk,wv,wo,w1,w2,w3", 7, arch);
    const hafl_layout_t *L = &f.layout;
    size_t n = (size_t)L->n_matrices * L->rank;
    uint8_t *roles = malloc(n);
    CHECK(roles);
    s_gradient_check("all trainable", &f, NULL, 1);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 3, 0, 0);
    for (size_t i = 0; i < n; i++)
        roles[i] = (uint8_t)hafl_rng_below(&rng, 3);
    s_gradient_check("mixed roles", &f, roles, 2);
    //  only L0.w1 trains: the backward must still reach the first layer's feed-forward
    memset(roles, HAFL_ROLE_FROZEN, n);
    for (uint32_t k = 0; k < L->rank; k++)
        roles[4 * L->rank + k] = HAFL_ROLE_TRAINABLE; //  matrix 4 is L0.w1
    CHECK(strcmp(L->matrices[4].name, "L0.w1") == 0);
    s_gradient_check("L0.w1 only", &f, roles, 2);
    //  only L1.wq component 1 trains
    memset(roles, HAFL_ROLE_FROZEN, n);
    roles[7 * L->rank + 1] = HAFL_ROLE_TRAINABLE;
    CHECK(strcmp(L->matrices[7].name, "L1.wq") == 0);
    s_gradient_check("L1.wq component 1 only", &f, roles, 1);
    memset(roles, HAFL_ROLE_FROZEN, n);
    s_gradient_check("head only", &f, roles, 2);
    free(roles);
    fixture_clear(&f);
}

static bool s_same_floats(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void s_frozen_and_absent(void)
{
    fixture_t f;
    fixture_init(&f, "wq,wk,wv,wo", 11);
    const hafl_layout_t *L = &f.layout;
    uint32_t R = L->rank;
    size_t n = (size_t)L->n_matrices * R;
    uint8_t *roles = malloc(n);
    CHECK(roles);
    for (size_t i = 0; i < n; i++)
        roles[i] = (uint8_t)(i % 3);
    char err[256];
    hafl_lora_trainer_t *t = fixture_trainer(&f, 2);
    CHECKF(hafl_lora_trainer_load(t, f.adapter, roles, err, sizeof err) == 0, "%s", err);
    hafl_adapter_t *before = hafl_adapter_dup(hafl_lora_trainer_adapter(t));
    CHECK(before);
    for (int s = 0; s < 3; s++)
        CHECKF(hafl_lora_trainer_step(t, f.tokens, f.lengths, f.labels, f.B, f.T, 1e-2f, 0.01f,
                                      NULL, err, sizeof err) == 0,
               "%s", err);
    const hafl_adapter_t *after = hafl_lora_trainer_adapter(t);
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < R; k++) {
            uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
            const float *b0 = hafl_adapter_b(before, m, k), *b1 = hafl_adapter_b(after, m, k);
            const float *a0 = hafl_adapter_a(before, m, k), *a1 = hafl_adapter_a(after, m, k);
            uint8_t role = roles[m * R + k];
            if (role == HAFL_ROLE_FROZEN) {
                CHECKF(s_same_floats(b0, b1, d_out) && s_same_floats(a0, a1, d_in),
                       "frozen %s component %u changed", L->matrices[m].name, k);
                CHECK(after->score[m * R + k] == f.adapter->score[m * R + k]);
            } else if (role == HAFL_ROLE_ABSENT) {
                for (uint32_t i = 0; i < d_out; i++)
                    CHECK(b1[i] == 0.0f);
                for (uint32_t i = 0; i < d_in; i++)
                    CHECK(a1[i] == 0.0f);
            } else {
                CHECKF(!s_same_floats(b0, b1, d_out) && !s_same_floats(a0, a1, d_in),
                       "trainable %s component %u did not change", L->matrices[m].name, k);
                CHECK(after->score[m * R + k] > 0.0f);
            }
        }
    CHECK(!s_same_floats(before->head, after->head, (size_t)L->head_rows * L->head_cols));
    CHECK(hafl_lora_trainer_steps(t) == 3);
    hafl_lora_trainer_reset_optimizer(t);
    CHECK(hafl_lora_trainer_steps(t) == 0);
    hafl_adapter_destroy(&before);
    hafl_lora_trainer_destroy(&t);
    free(roles);
    fixture_clear(&f);
}

static void s_truncation_and_padding(void)
{
    fixture_t f;
    fixture_init(&f, "wq,wk,wv,wo,w1,w2,w3", 5);
    const hafl_layout_t *L = &f.layout;
    uint32_t R = L->rank, K = L->head_rows;
    size_t n = (size_t)L->n_matrices * R;
    uint8_t *roles = malloc(n);
    CHECK(roles);
    //  truncated: keep components 0..m%R of each matrix, a whole matrix absent too
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < R; k++)
            roles[m * R + k] = (k <= m % R && m != 5) ? HAFL_ROLE_TRAINABLE : HAFL_ROLE_ABSENT;
    char err[256];
    hafl_lora_trainer_t *t = fixture_trainer(&f, 1);
    CHECKF(hafl_lora_trainer_load(t, f.adapter, roles, err, sizeof err) == 0, "%s", err);
    float truncated[16], zeroed[16], full[16];
    double loss;
    s_eval_loss(t, &f, &loss, truncated);
    //  the same adapter with the absent components zeroed by hand, all present
    hafl_adapter_t *z = hafl_adapter_dup(f.adapter);
    CHECK(z);
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < R; k++)
            if (roles[m * R + k] == HAFL_ROLE_ABSENT) {
                memset(hafl_adapter_b(z, m, k), 0, L->matrices[m].d_out * sizeof(float));
                memset(hafl_adapter_a(z, m, k), 0, L->matrices[m].d_in * sizeof(float));
            }
    CHECKF(hafl_lora_trainer_load(t, z, NULL, err, sizeof err) == 0, "%s", err);
    s_eval_loss(t, &f, &loss, zeroed);
    CHECKF(hafl_lora_trainer_load(t, f.adapter, NULL, err, sizeof err) == 0, "%s", err);
    s_eval_loss(t, &f, &loss, full);
    bool differs = false;
    for (uint32_t i = 0; i < f.B * K; i++) {
        CHECKF(truncated[i] == zeroed[i], "truncated forward differs at %u", i);
        differs = differs || truncated[i] != full[i];
    }
    CHECK(differs); //  the absent components did carry something

    //  padding: the same sequences in [B][16] rows with arbitrary tokens after each length
    uint32_t *padded = malloc(sizeof(uint32_t) * f.B * 16);
    CHECK(padded);
    for (uint32_t b = 0; b < f.B; b++)
        for (uint32_t i = 0; i < 16; i++)
            padded[b * 16 + i] = i < f.lengths[b] ? f.tokens[b * f.T + i] : (b * 7 + i * 13) % 32;
    float padded_logits[16];
    CHECKF(hafl_lora_trainer_evaluate(t, padded, f.lengths, f.labels, f.B, 16, padded_logits, NULL,
                                      err, sizeof err) == 0,
           "%s", err);
    CHECK(s_same_floats(full, padded_logits, f.B * K));
    //  and a training step on each gives bit-identical adapters
    hafl_lora_trainer_t *t2 = fixture_trainer(&f, 1);
    CHECKF(hafl_lora_trainer_load(t2, f.adapter, NULL, err, sizeof err) == 0, "%s", err);
    CHECK(hafl_lora_trainer_step(t, f.tokens, f.lengths, f.labels, f.B, f.T, 1e-2f, 0.0f, NULL, err,
                                 sizeof err) == 0);
    CHECK(hafl_lora_trainer_step(t2, padded, f.lengths, f.labels, f.B, 16, 1e-2f, 0.0f, NULL, err,
                                 sizeof err) == 0);
    char h1[65], h2[65];
    hafl_adapter_digest_hex(hafl_lora_trainer_adapter(t), h1);
    hafl_adapter_digest_hex(hafl_lora_trainer_adapter(t2), h2);
    CHECKF(strcmp(h1, h2) == 0, "padding changed the step: %s vs %s", h1, h2);
    free(padded);
    hafl_adapter_destroy(&z);
    hafl_lora_trainer_destroy(&t);
    hafl_lora_trainer_destroy(&t2);
    free(roles);
    fixture_clear(&f);
}

//  Three steps with this thread count; returns the trainer (caller destroys).
static hafl_lora_trainer_t *s_train3(const fixture_t *f, uint32_t threads)
{
    char err[256];
    hafl_lora_trainer_t *t = fixture_trainer(f, threads);
    CHECKF(hafl_lora_trainer_load(t, f->adapter, NULL, err, sizeof err) == 0, "%s", err);
    for (int s = 0; s < 3; s++)
        CHECKF(hafl_lora_trainer_step(t, f->tokens, f->lengths, f->labels, f->B, f->T, 1e-2f, 0.01f,
                                      NULL, err, sizeof err) == 0,
               "%s", err);
    return t;
}

static void s_determinism(void)
{
    fixture_t f;
    fixture_init(&f, "wq,wk,wv,wo", 13);
    hafl_lora_trainer_t *a = s_train3(&f, 2), *b = s_train3(&f, 2), *c = s_train3(&f, 1);
    char ha[65], hb[65];
    hafl_adapter_digest_hex(hafl_lora_trainer_adapter(a), ha);
    hafl_adapter_digest_hex(hafl_lora_trainer_adapter(b), hb);
    CHECKF(strcmp(ha, hb) == 0, "two runs with 2 threads differ");
    const hafl_adapter_t *x = hafl_lora_trainer_adapter(a), *y = hafl_lora_trainer_adapter(c);
    for (uint32_t m = 0; m < f.layout.n_matrices; m++) {
        size_t nb = (size_t)f.layout.rank * f.layout.matrices[m].d_out;
        for (size_t i = 0; i < nb; i++)
            CHECK(fabsf(x->bt[m][i] - y->bt[m][i]) <= 1e-5f * (1.0f + fabsf(x->bt[m][i])));
    }
    hafl_lora_trainer_destroy(&a);
    hafl_lora_trainer_destroy(&b);
    hafl_lora_trainer_destroy(&c);
    fixture_clear(&f);
}

static void s_rejects(void)
{
    fixture_t f;
    fixture_init(&f, "wq,wk,wv,wo", 17);
    hafl_lora_trainer_t *t = fixture_trainer(&f, 1);
    char err[256] = "";
    uint32_t lengths[3] = {9, 0, 7};
    CHECK(hafl_lora_trainer_evaluate(t, f.tokens, lengths, f.labels, 3, 9, NULL, NULL, err,
                                     sizeof err) == -1);
    CHECK(strstr(err, "length 0"));
    lengths[1] = 10;
    CHECK(hafl_lora_trainer_evaluate(t, f.tokens, lengths, f.labels, 3, 9, NULL, NULL, err,
                                     sizeof err) == -1);
    f.tokens[4] = 32;
    CHECK(hafl_lora_trainer_step(t, f.tokens, f.lengths, f.labels, 3, 9, 1e-3f, 0.0f, NULL, err,
                                 sizeof err) == -1);
    CHECK(strstr(err, "vocab"));
    f.tokens[4] = 1;
    uint32_t labels[3] = {0, 3, 0};
    CHECK(hafl_lora_trainer_step(t, f.tokens, f.lengths, labels, 3, 9, 1e-3f, 0.0f, NULL, err,
                                 sizeof err) == -1);
    CHECK(strstr(err, "label"));
    CHECK(hafl_lora_trainer_step(t, f.tokens, f.lengths, f.labels, 5, 9, 1e-3f, 0.0f, NULL, err,
                                 sizeof err) == -1);
    CHECK(hafl_lora_trainer_step(t, f.tokens, f.lengths, f.labels, 3, 17, 1e-3f, 0.0f, NULL, err,
                                 sizeof err) == -1);
    CHECK(hafl_lora_trainer_step(t, f.tokens, f.lengths, f.labels, 3, 9, -1.0f, 0.0f, NULL, err,
                                 sizeof err) == -1);
    uint8_t roles[24] = {0};
    roles[5] = 7;
    CHECK(hafl_lora_trainer_load(t, f.adapter, roles, err, sizeof err) == -1);
    CHECK(strstr(err, "role"));
    //  an adapter of another layout
    hafl_layout_t other;
    CHECK(hafl_targets_layout(&f.targets, &f.ckpt->config, 2, 6.0f, 3, &other) == 0);
    hafl_adapter_t *wrong = hafl_adapter_new(&other);
    CHECK(wrong);
    CHECK(hafl_lora_trainer_load(t, wrong, NULL, err, sizeof err) == -1);
    hafl_lora_trainer_opts_t opts = {.max_batch = 4, .max_seq = 16, .threads = 1};
    other.head_cols = 7; //  not dim + 1
    CHECK(!hafl_lora_trainer_new(f.ckpt, &f.targets, &other, &opts, err, sizeof err));
    CHECK(strstr(err, "head"));
    other.head_cols = 17;
    opts.max_seq = 17; //  beyond the model's seq_len
    CHECK(!hafl_lora_trainer_new(f.ckpt, &f.targets, &f.layout, &opts, err, sizeof err));
    CHECK(strstr(err, "seq_len"));
    hafl_adapter_destroy(&wrong);
    hafl_layout_clear(&other);
    hafl_lora_trainer_destroy(&t);
    CHECK(t == NULL);
    hafl_lora_trainer_destroy(&t);
    fixture_clear(&f);
}

//  The FLOP count against the hand formula: with every component frozen only the forward and
//  the head's backward remain.
static void s_flops(void)
{
    fixture_t f;
    fixture_init(&f, "wq,wk,wv,wo", 19);
    hafl_lora_trainer_t *t = fixture_trainer(&f, 1);
    size_t n = (size_t)f.layout.n_matrices * f.layout.rank;
    uint8_t *roles = malloc(n);
    CHECK(roles);
    memset(roles, HAFL_ROLE_FROZEN, n);
    char err[256];
    CHECKF(hafl_lora_trainer_load(t, f.adapter, roles, err, sizeof err) == 0, "%s", err);
    //  dim 16, hidden 24, kv 8, 2 layers, 4 heads of 4, 3 classes; lengths 9, 5, 7
    double N = 21, pairs = 45 + 15 + 28, C = 16, H = 24, KV = 8, K = 3;
    double per_layer = 2 * N * (C * C * 2 + KV * C * 2 + H * C * 3) + 2 * 2 * pairs * 4 * 4;
    double expect = 2 * per_layer + 2 * 2 * 3 * K * (C + 1);
    double got = hafl_lora_trainer_step_flops(t, f.lengths, f.B);
    CHECKF(fabs(got - expect) < 0.5, "frozen flops %.0f, expected %.0f", got, expect);
    //  all trainable: add u = x A^T, the effective-weight rebuild and the backward
    CHECKF(hafl_lora_trainer_load(t, f.adapter, NULL, err, sizeof err) == 0, "%s", err);
    double R = 3, lora = 0, back = 0;
    double dims[4][2] = {{C, C}, {KV, C}, {KV, C}, {C, C}};
    for (int w = 0; w < 4; w++) {
        double o = dims[w][0], i = dims[w][1];
        lora += 2 * N * R * i + 2 * R * o * i;
        back += 2 * N * R * (2 * o + i); //  dbt, du, da
    }
    //  layer 1: every input gradient; layer 0: none for q, k, v
    double base1 = 2 * N * (C * C * 2 + KV * C * 2 + H * C * 3);
    double base0 = 2 * N * (C * C + H * C * 3);
    expect += 2 * lora + 2 * back + base1 + base0 + 2 * (4 * 2 * pairs * 4 * 4); //  + attention
    got = hafl_lora_trainer_step_flops(t, f.lengths, f.B);
    CHECKF(fabs(got - expect) < 0.5, "trainable flops %.0f, expected %.0f", got, expect);
    free(roles);
    hafl_lora_trainer_destroy(&t);
    fixture_clear(&f);
}

int main(void)
{
    s_flops();
    s_gradient_checks(FIXTURE_LLAMA2C);
    s_gradient_checks(FIXTURE_LLAMA3);
    s_gradient_checks(FIXTURE_QWEN2);
    s_gradient_checks(FIXTURE_WIDE);
    s_frozen_and_absent();
    s_truncation_and_padding();
    s_determinism();
    s_rejects();
    printf("train model: gradients, roles, truncation, padding, determinism and validation ok\n");
    return 0;
}
