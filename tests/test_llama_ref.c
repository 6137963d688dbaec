/*  test_llama_ref: invariants and hand-checkable cases of the naive reference forward.

    - all layer weights zero: logits are wcls . (rms_final * rmsnorm (embedding)), by hand;
    - causal mask: logits at t do not change when later tokens change;
    - grouped-query attention equals full attention with each kv head duplicated;
    - LoRA with B = 0, or with every component absent, equals no LoRA bit for bit; an absent
      component equals a zero one; LoRA and merged terms equal folding them into the weights;
    - the head ignores padding and matches a hand computation;
    - float (llama2.c order) and double accumulation agree on stories260K, and both decode the
      greedy continuation.
*/
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_llama_ref.h"
#include "hafl_rng.h"
#include "hafl_targets.h"
#include "hafl_test.h"
#include "hafl_test_model.h"

#include <math.h>
#include <string.h>

#define S_T 8

static const hafl_llama_config_t s_config = {
    16, 24, 2, 4, 2, 40, 16, false, HAFL_LLAMA2C_ROPE_BASE, HAFL_LLAMA2C_RMS_EPS, false, false, 0};

static hafl_checkpoint_t *s_random(const hafl_llama_config_t *config, uint64_t seed)
{
    char err[256];
    hafl_checkpoint_t *c = hafl_checkpoint_random(config, seed, err, sizeof err);
    CHECKF(c, "%s", err);
    return c;
}

//  Writable view of a random checkpoint's tensor (random checkpoints live in heap memory).
static float *s_mut(const float *tensor)
{
    return (float *)tensor;
}

static float *s_forward(const hafl_checkpoint_t *c, const hafl_adapter_t *adapter,
                        const hafl_targets_t *targets, const uint8_t *present, bool exact,
                        const int32_t *tokens, int T, float *final_norm)
{
    char err[256];
    hafl_llama_ref_t *ref = hafl_llama_ref_new(c, T, exact, err, sizeof err);
    CHECKF(ref, "%s", err);
    CHECKF(hafl_llama_ref_set_adapter(ref, adapter, targets, present, err, sizeof err) == 0, "%s",
           err);
    float *logits = malloc((size_t)T * c->config.vocab_size * sizeof(float));
    CHECK(logits);
    CHECKF(hafl_llama_ref_forward(ref, tokens, T, logits, final_norm, err, sizeof err) == 0, "%s",
           err);
    hafl_llama_ref_destroy(&ref);
    return logits;
}

static double s_max_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst;
}

static void s_test_zero_layers(void)
{
    hafl_checkpoint_t *c = s_random(&s_config, 3);
    const hafl_llama_weights_t *w = &c->weights;
    size_t C = 16, H = 24, KV = 8, L = 2;
    memset(s_mut(w->wq), 0, L * C * C * 4);
    memset(s_mut(w->wk), 0, L * KV * C * 4);
    memset(s_mut(w->wv), 0, L * KV * C * 4);
    memset(s_mut(w->wo), 0, L * C * C * 4);
    memset(s_mut(w->w1), 0, L * H * C * 4);
    memset(s_mut(w->w2), 0, L * C * H * 4);
    memset(s_mut(w->w3), 0, L * H * C * 4);
    for (size_t i = 0; i < C; i++)
        s_mut(w->rms_final)[i] = 0.5f + (float)i / 16;
    int32_t tokens[3] = {7, 0, 39};
    float *logits = s_forward(c, NULL, NULL, NULL, true, tokens, 3, NULL);
    for (int t = 0; t < 3; t++) {
        const float *e = w->token_embedding + (size_t)tokens[t] * C;
        double ss = 0;
        for (size_t i = 0; i < C; i++)
            ss += (double)e[i] * e[i];
        double inv = 1 / sqrt(ss / C + 1e-5);
        for (int v = 0; v < 40; v++) {
            double want = 0;
            for (size_t i = 0; i < C; i++)
                want += (double)w->wcls[(size_t)v * C + i] * w->rms_final[i] * e[i] * inv;
            CHECKF(fabs(logits[t * 40 + v] - want) < 1e-6, "t %d v %d: %g vs %g", t, v,
                   logits[t * 40 + v], want);
        }
    }
    free(logits);
    hafl_checkpoint_destroy(&c);
}

static void s_test_causal(bool exact)
{
    hafl_checkpoint_t *c = s_random(&s_config, 4);
    int32_t a[S_T] = {1, 5, 9, 13, 17, 21, 25, 29}, b[S_T];
    memcpy(b, a, sizeof a);
    b[5] = 2, b[6] = 30, b[7] = 39;
    float *la = s_forward(c, NULL, NULL, NULL, exact, a, S_T, NULL);
    float *lb = s_forward(c, NULL, NULL, NULL, exact, b, S_T, NULL);
    CHECK(memcmp(la, lb, 5 * 40 * sizeof(float)) == 0);
    CHECK(memcmp(la + 5 * 40, lb + 5 * 40, 40 * sizeof(float)) != 0);
    //  Running it again gives the same bits (the cache is rebuilt, not reused).
    float *la2 = s_forward(c, NULL, NULL, NULL, exact, a, S_T, NULL);
    CHECK(memcmp(la, la2, S_T * 40 * sizeof(float)) == 0);
    free(la);
    free(lb);
    free(la2);
    hafl_checkpoint_destroy(&c);
}

static void s_test_gqa(void)
{
    hafl_llama_config_t full_config = s_config;
    full_config.n_kv_heads = 4;
    hafl_checkpoint_t *g = s_random(&s_config, 5);
    hafl_checkpoint_t *f = s_random(&full_config, 6);
    const hafl_llama_weights_t *gw = &g->weights, *fw = &f->weights;
    size_t C = 16, H = 24, L = 2, hs = 4, V = 40;
    memcpy(s_mut(fw->token_embedding), gw->token_embedding, V * C * 4);
    memcpy(s_mut(fw->rms_att), gw->rms_att, L * C * 4);
    memcpy(s_mut(fw->wq), gw->wq, L * C * C * 4);
    memcpy(s_mut(fw->wo), gw->wo, L * C * C * 4);
    memcpy(s_mut(fw->rms_ffn), gw->rms_ffn, L * C * 4);
    memcpy(s_mut(fw->w1), gw->w1, L * H * C * 4);
    memcpy(s_mut(fw->w2), gw->w2, L * C * H * 4);
    memcpy(s_mut(fw->w3), gw->w3, L * H * C * 4);
    memcpy(s_mut(fw->rms_final), gw->rms_final, C * 4);
    memcpy(s_mut(fw->wcls), gw->wcls, V * C * 4);
    //  Query head h reads kv head h / 2 in the grouped model: give the full model's kv head h
    //  the rows of grouped kv head h / 2.
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < 4; h++) {
            size_t src = (l * 8 + (h / 2) * hs) * C, dst = (l * 16 + h * hs) * C;
            memcpy(s_mut(fw->wk) + dst, gw->wk + src, hs * C * 4);
            memcpy(s_mut(fw->wv) + dst, gw->wv + src, hs * C * 4);
        }
    int32_t tokens[S_T] = {3, 1, 4, 1, 5, 9, 2, 6};
    float *lg = s_forward(g, NULL, NULL, NULL, false, tokens, S_T, NULL);
    float *lf = s_forward(f, NULL, NULL, NULL, false, tokens, S_T, NULL);
    CHECK(memcmp(lg, lf, S_T * V * sizeof(float)) == 0);
    free(lg);
    free(lf);
    hafl_checkpoint_destroy(&g);
    hafl_checkpoint_destroy(&f);
}

//  Fill an adapter's B factors (and optionally merged terms) with random values.
static void s_randomise(hafl_adapter_t *ad, uint64_t seed, bool merged)
{
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, HAFL_STREAM_SYNTH, 1);
    for (uint32_t m = 0; m < ad->layout.n_matrices; m++) {
        uint32_t d_out = ad->layout.matrices[m].d_out, d_in = ad->layout.matrices[m].d_in;
        for (size_t i = 0; i < (size_t)ad->layout.rank * d_out; i++)
            ad->bt[m][i] = (float)(0.05 * hafl_rng_normal(&rng));
        if (!merged || m % 3 != 0)
            continue;
        float bt[2 * 64], a[2 * 64];
        for (uint32_t i = 0; i < 2 * d_out; i++)
            bt[i] = (float)(0.05 * hafl_rng_normal(&rng));
        for (uint32_t i = 0; i < 2 * d_in; i++)
            a[i] = (float)(0.05 * hafl_rng_normal(&rng));
        CHECK(hafl_adapter_set_merged(ad, m, 2, bt, a) == 0);
    }
}

//  A copy of base whose adapted weights have the adapter folded in (computed in double).
static hafl_checkpoint_t *s_fold(const hafl_checkpoint_t *base, uint64_t seed,
                                 const hafl_adapter_t *ad, const hafl_targets_t *targets,
                                 const uint8_t *present)
{
    hafl_checkpoint_t *f = s_random(&base->config, seed);
    memcpy((uint8_t *)f->memory, base->memory, base->size);
    const float *weights[HAFL_WEIGHT_COUNT] = {f->weights.wq, f->weights.wk, f->weights.wv,
                                               f->weights.wo, f->weights.w1, f->weights.w2,
                                               f->weights.w3};
    uint32_t R = ad->layout.rank;
    for (int l = 0; l < base->config.n_layers; l++)
        for (uint32_t s = 0; s < targets->per_layer; s++) {
            hafl_weight_t wt = targets->order[s];
            uint32_t m = (uint32_t)hafl_targets_matrix(targets, l, wt), d_out, d_in;
            hafl_weight_shape(&base->config, wt, &d_out, &d_in);
            float *W = s_mut(weights[wt]) + (size_t)l * d_out * d_in;
            for (uint32_t i = 0; i < d_out; i++)
                for (uint32_t j = 0; j < d_in; j++) {
                    double v = W[(size_t)i * d_in + j];
                    for (uint32_t k = 0; k < R; k++)
                        if (!present || present[m * R + k])
                            v += (double)ad->layout.scale * hafl_adapter_b(ad, m, k)[i] *
                                 hafl_adapter_a(ad, m, k)[j];
                    for (uint32_t k = 0; k < ad->n_merged[m]; k++)
                        v += (double)ad->mbt[m][(size_t)k * d_out + i] *
                             ad->ma[m][(size_t)k * d_in + j];
                    W[(size_t)i * d_in + j] = (float)v;
                }
        }
    return f;
}

static void s_test_lora(void)
{
    hafl_checkpoint_t *c = s_random(&s_config, 7);
    char err[256];
    hafl_targets_t targets;
    CHECKF(hafl_targets_parse("wq,wk,wv,wo,w1,w2,w3", &targets, err, sizeof err) == 0, "%s", err);
    hafl_layout_t layout;
    CHECK(hafl_targets_layout(&targets, &c->config, 4, 8.0f, 3, &layout) == 0);
    hafl_adapter_t *ad = hafl_adapter_new(&layout);
    CHECK(ad);
    hafl_adapter_init(ad, 99); //  B = 0, A random
    int32_t tokens[S_T] = {2, 7, 1, 8, 2, 8, 18, 28};
    size_t n = S_T * 40;
    for (int exact = 0; exact < 2; exact++) {
        float *base = s_forward(c, NULL, NULL, NULL, exact, tokens, S_T, NULL);
        float *zero_b = s_forward(c, ad, &targets, NULL, exact, tokens, S_T, NULL);
        CHECK(memcmp(base, zero_b, n * sizeof(float)) == 0);
        free(base);
        free(zero_b);
    }
    s_randomise(ad, 5, false);
    size_t flags = (size_t)layout.n_matrices * 4;
    uint8_t *none = calloc(flags, 1), *some = malloc(flags);
    CHECK(none && some);
    for (size_t i = 0; i < flags; i++)
        some[i] = (uint8_t)(i % 3 == 1 ? HAFL_ROLE_ABSENT
                                       : (i % 2 ? HAFL_ROLE_FROZEN : HAFL_ROLE_TRAINABLE));
    float *base = s_forward(c, NULL, NULL, NULL, false, tokens, S_T, NULL);
    float *absent = s_forward(c, ad, &targets, none, false, tokens, S_T, NULL);
    CHECK(memcmp(base, absent, n * sizeof(float)) == 0);
    //  Absent components behave exactly like zero ones.
    float *partial = s_forward(c, ad, &targets, some, false, tokens, S_T, NULL);
    hafl_adapter_t *zeroed = hafl_adapter_dup(ad);
    CHECK(zeroed);
    for (uint32_t m = 0; m < layout.n_matrices; m++)
        for (uint32_t k = 0; k < 4; k++)
            if (!some[m * 4 + k])
                memset(hafl_adapter_b(zeroed, m, k), 0, layout.matrices[m].d_out * sizeof(float));
    float *zero_comp = s_forward(c, zeroed, &targets, NULL, false, tokens, S_T, NULL);
    CHECK(memcmp(partial, zero_comp, n * sizeof(float)) == 0);
    CHECK(s_max_diff(base, partial, n) > 1e-3); //  the adapter does something

    //  Folding into the weights: same function up to float rounding of the folded weights.
    s_randomise(ad, 6, true);
    hafl_checkpoint_t *folded = s_fold(c, 8, ad, &targets, some);
    float *with = s_forward(c, ad, &targets, some, true, tokens, S_T, NULL);
    float *fold = s_forward(folded, NULL, NULL, NULL, true, tokens, S_T, NULL);
    double diff = s_max_diff(with, fold, n);
    CHECKF(diff < 1e-5, "adapter vs folded weights: %g", diff);
    CHECK(s_max_diff(with, partial, n) > 1e-3);

    //  A layout that does not fit the model is refused.
    hafl_targets_t fewer;
    CHECK(hafl_targets_parse("wq,wv", &fewer, err, sizeof err) == 0);
    hafl_llama_ref_t *ref = hafl_llama_ref_new(c, 4, false, err, sizeof err);
    CHECK(ref);
    CHECK(hafl_llama_ref_set_adapter(ref, ad, &fewer, NULL, err, sizeof err) == -1);
    CHECK(strstr(err, "matrices"));
    //  Bad inputs to the forward are refused, not run.
    int32_t bad[2] = {1, 40};
    CHECK(hafl_llama_ref_forward(ref, bad, 2, NULL, NULL, err, sizeof err) == -1);
    CHECK(strstr(err, "token 40 at position 1"));
    CHECK(hafl_llama_ref_forward(ref, tokens, 5, NULL, NULL, err, sizeof err) == -1);
    CHECK(hafl_llama_ref_step(ref, 0, 4) == NULL && hafl_llama_ref_step(ref, -1, 0) == NULL);
    hafl_llama_ref_destroy(&ref);

    free(base);
    free(absent);
    free(partial);
    free(zero_comp);
    free(with);
    free(fold);
    free(none);
    free(some);
    hafl_checkpoint_destroy(&folded);
    hafl_adapter_destroy(&zeroed);
    hafl_adapter_destroy(&ad);
    hafl_layout_clear(&layout);
    hafl_checkpoint_destroy(&c);
}

static void s_test_head(void)
{
    //  Hand case: mean of the first two rows is (2, 3); the third row is padding.
    const float final_norm[3 * 2] = {1, 2, 3, 4, 100, -100};
    const float head[2 * 3] = {1, 0, 0.5f, 0, -1, 0};
    float out[2];
    CHECK(hafl_llama_ref_head(final_norm, 3, 2, 2, head, 2, out) == 0);
    CHECK(out[0] == 2.5f && out[1] == -3.0f);
    CHECK(hafl_llama_ref_head(final_norm, 3, 0, 2, head, 2, out) == -1);
    CHECK(hafl_llama_ref_head(final_norm, 3, 4, 2, head, 2, out) == -1);

    //  Through the model: padding tokens beyond the length change nothing.
    hafl_checkpoint_t *c = s_random(&s_config, 9);
    int32_t a[S_T] = {1, 2, 3, 4, 5, 0, 0, 0}, b[S_T] = {1, 2, 3, 4, 5, 17, 33, 9};
    float fa[S_T * 16], fb[S_T * 16], ha[3], hb[3], hfull[3];
    float head_w[3 * 17];
    for (int i = 0; i < 3 * 17; i++)
        head_w[i] = (float)((i * 37 % 11) - 5) / 10;
    free(s_forward(c, NULL, NULL, NULL, true, a, S_T, fa));
    free(s_forward(c, NULL, NULL, NULL, true, b, S_T, fb));
    CHECK(hafl_llama_ref_head(fa, S_T, 5, 16, head_w, 3, ha) == 0);
    CHECK(hafl_llama_ref_head(fb, S_T, 5, 16, head_w, 3, hb) == 0);
    CHECK(memcmp(ha, hb, sizeof ha) == 0);
    CHECK(hafl_llama_ref_head(fb, S_T, S_T, 16, head_w, 3, hfull) == 0);
    CHECK(memcmp(ha, hfull, sizeof ha) != 0);
    hafl_checkpoint_destroy(&c);
}

static void s_test_stories(void)
{
    hafl_checkpoint_t *c = hafl_test_checkpoint("stories260K.bin");
    char err[512];
    enum { T = 48 };
    int32_t tokens[T + 1] = {1};
    hafl_llama_ref_t *ref = hafl_llama_ref_new(c, T, false, err, sizeof err);
    CHECK(ref);
    for (int t = 0; t < T; t++) {
        const float *logits = hafl_llama_ref_step(ref, tokens[t], t);
        int best = 0;
        for (int v = 1; v < 512; v++)
            if (logits[v] > logits[best])
                best = v;
        tokens[t + 1] = best;
    }
    hafl_llama_ref_destroy(&ref);
    float final_f[T * 64], final_x[T * 64];
    float *lf = s_forward(c, NULL, NULL, NULL, false, tokens, T, final_f);
    float *lx = s_forward(c, NULL, NULL, NULL, true, tokens, T, final_x);
    double diff = s_max_diff(lf, lx, (size_t)T * 512);
    CHECKF(diff < 1e-4, "float vs double accumulation: %g", diff);
    CHECK(s_max_diff(final_f, final_x, T * 64) < 1e-4);
    for (int t = 0; t < T; t++) {
        int bf = 0, bx = 0;
        for (int v = 1; v < 512; v++) {
            bf = lf[t * 512 + v] > lf[t * 512 + bf] ? v : bf;
            bx = lx[t * 512 + v] > lx[t * 512 + bx] ? v : bx;
        }
        CHECK(bf == tokens[t + 1] && bx == tokens[t + 1]);
    }
    free(lf);
    free(lx);
    hafl_checkpoint_destroy(&c);
}

int main(void)
{
    s_test_zero_layers();
    s_test_causal(false);
    s_test_causal(true);
    s_test_gqa();
    s_test_lora();
    s_test_head();
    s_test_stories();
    printf("llama_ref: ok\n");
    return 0;
}
