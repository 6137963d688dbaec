/*  test_train_layers: finite-difference checks of every layer's backward in train/.

    Each layer runs in float. The objective is L = sum_i w_i out_i with fixed random weights w
    (or, for the pooling head, the mean cross-entropy itself), accumulated in double. The
    analytic gradient comes from the layer's backward with dout = w; the numeric one is the
    central difference (L(x + h) - L(x - h)) / 2h with h = 2e-3. Tolerance per entry:
    |analytic - numeric| <= 2e-3 + 1e-2 |numeric|, and over all entries of one tensor
    ||analytic - numeric|| <= 1e-3 ||numeric|| + 1e-3 (relative error norm). Also checks that
    every backward accumulates (adds to what the gradient buffer held).
*/
#include "hafl_test.h"

#include "hafl_attention.h"
#include "hafl_lora_linear.h"
#include "hafl_pool_head.h"
#include "hafl_rmsnorm.h"
#include "hafl_rng.h"
#include "hafl_rope.h"
#include "hafl_swiglu.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define FD_H 2e-3f

static hafl_rng_t s_rng;

static float *s_randn(size_t n, float scale)
{
    float *x = malloc(n * sizeof(float));
    CHECK(x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)hafl_rng_normal(&s_rng);
    return x;
}

static float *s_zeros(size_t n)
{
    float *x = calloc(n, sizeof(float));
    CHECK(x);
    return x;
}

static double s_dot(const float *a, const float *w, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)a[i] * (double)w[i];
    return sum;
}

//  A layer under test: evaluate the objective for the current inputs.
typedef double (*s_objective_fn)(void *ctx);

//  Compare analytic [n] with central differences of f wrt x [n].
static void s_check_grad(const char *what, float *x, const float *analytic, size_t n,
                         s_objective_fn f, void *ctx)
{
    double diff2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + FD_H;
        double up = f(ctx);
        x[i] = keep - FD_H;
        double down = f(ctx);
        x[i] = keep;
        //  the actual step is what float made of keep +- h
        double numeric = (up - down) / ((double)(keep + FD_H) - (double)(keep - FD_H));
        double err = fabs(analytic[i] - numeric);
        CHECKF(err <= 2e-3 + 1e-2 * fabs(numeric), "%s[%zu]: analytic %.6g numeric %.6g", what, i,
               analytic[i], numeric);
        diff2 += err * err;
        ref2 += numeric * numeric;
    }
    CHECKF(sqrt(diff2) <= 1e-3 * sqrt(ref2) + 1e-3, "%s: error norm %.3g vs gradient norm %.3g",
           what, sqrt(diff2), sqrt(ref2));
    printf("  %-24s %5zu entries, error norm %.2e, gradient norm %.2e\n", what, n, sqrt(diff2),
           sqrt(ref2));
}

//  Backward functions accumulate: running them twice must double the gradient.
static void s_check_accumulates(const char *what, const float *once, const float *twice, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECKF(fabsf(twice[i] - 2.0f * once[i]) <= 1e-5f * (1.0f + fabsf(once[i])),
               "%s[%zu] does not accumulate", what, i);
}

//  ---- RMSNorm ------------------------------------------------------------------------------

typedef struct {
    size_t N, C;
    float eps;
    float *x, *weight, *out, *rstd, *w;
} s_rms_t;

static double s_rms_objective(void *ctx)
{
    s_rms_t *t = ctx;
    hafl_rmsnorm_forward(t->out, t->rstd, t->x, t->weight, t->N, t->C, t->eps);
    return s_dot(t->out, t->w, t->N * t->C);
}

//  eps: llama2.c's 1e-5 and, as GGUF files may state, another value (qwen2 uses 1e-6).
static void s_test_rmsnorm(float eps)
{
    s_rms_t t = {.N = 5, .C = 12, .eps = eps};
    size_t n = t.N * t.C;
    t.x = s_randn(n, 1.0f), t.weight = s_randn(t.C, 1.0f), t.w = s_randn(n, 1.0f);
    t.out = s_zeros(n), t.rstd = s_zeros(t.N);
    float *dx = s_zeros(n), *dx2 = s_zeros(n);
    s_rms_objective(&t);
    hafl_rmsnorm_backward(dx, t.w, t.x, t.weight, t.rstd, t.N, t.C);
    s_check_grad("rmsnorm dinp", t.x, dx, n, s_rms_objective, &t);
    s_rms_objective(&t);
    hafl_rmsnorm_backward(dx2, t.w, t.x, t.weight, t.rstd, t.N, t.C);
    hafl_rmsnorm_backward(dx2, t.w, t.x, t.weight, t.rstd, t.N, t.C);
    s_check_accumulates("rmsnorm dinp", dx, dx2, n);
    //  forward against the definition in double
    s_rms_objective(&t);
    for (size_t r = 0; r < t.N; r++) {
        double ss = 0.0;
        for (size_t c = 0; c < t.C; c++)
            ss += (double)t.x[r * t.C + c] * t.x[r * t.C + c];
        double inv = 1.0 / sqrt(ss / (double)t.C + (double)eps);
        for (size_t c = 0; c < t.C; c++)
            CHECK(fabs(t.out[r * t.C + c] - t.weight[c] * inv * t.x[r * t.C + c]) < 1e-5);
    }
    free(t.x), free(t.weight), free(t.w), free(t.out), free(t.rstd), free(dx), free(dx2);
}

//  ---- RoPE ---------------------------------------------------------------------------------

typedef struct {
    size_t N, C, hs;
    bool neox;
    float *x, *work, *w, *cos_t, *sin_t;
    uint32_t *pos;
} s_rope_t;

static double s_rope_objective(void *ctx)
{
    s_rope_t *t = ctx;
    memcpy(t->work, t->x, t->N * t->C * sizeof(float));
    hafl_rope_forward(t->work, t->pos, t->cos_t, t->sin_t, t->N, t->C, t->hs, t->neox);
    return s_dot(t->work, t->w, t->N * t->C);
}

//  base: llama2.c's 10000 or another (Llama 3 uses 500000); neox: qwen2's pairing.
static void s_test_rope(float base, bool neox)
{
    s_rope_t t = {.N = 6, .C = 16, .hs = 8, .neox = neox};
    size_t n = t.N * t.C, seq = 32, half = t.hs / 2;
    t.x = s_randn(n, 1.0f), t.w = s_randn(n, 1.0f), t.work = s_zeros(n);
    t.cos_t = s_zeros(seq * half), t.sin_t = s_zeros(seq * half);
    hafl_rope_tables(t.cos_t, t.sin_t, seq, t.hs, base);
    uint32_t pos[6] = {0, 1, 2, 17, 30, 5};
    t.pos = pos;
    //  the tables are llama2.c's expressions
    for (size_t p = 0; p < seq; p++)
        for (size_t i = 0; i < half; i++) {
            float freq = 1.0f / powf(base, (float)(2 * i) / (float)t.hs);
            CHECK(t.cos_t[p * half + i] == cosf((float)p * freq));
            CHECK(t.sin_t[p * half + i] == sinf((float)p * freq));
        }
    //  the forward against the definition in double: pair i of each head is channels
    //  (2i, 2i+1), or (i, i + hs/2) for neox, rotated by pos * base^(-2i/hs)
    s_rope_objective(&t);
    for (size_t r = 0; r < t.N; r++)
        for (size_t h = 0; h < t.C; h += t.hs)
            for (size_t i = 0; i < half; i++) {
                size_t c0 = h + (neox ? i : 2 * i), c1 = c0 + (neox ? half : 1);
                double angle = (double)pos[r] * pow((double)base, -(double)(2 * i) / (double)t.hs);
                double v0 = t.x[r * t.C + c0], v1 = t.x[r * t.C + c1];
                double y0 = v0 * cos(angle) - v1 * sin(angle);
                double y1 = v0 * sin(angle) + v1 * cos(angle);
                CHECKF(fabs(t.work[r * t.C + c0] - y0) < 1e-4 &&
                           fabs(t.work[r * t.C + c1] - y1) < 1e-4,
                       "rope base %g neox %d: row %zu pair %zu", (double)base, neox, r, i);
            }
    float *dx = s_zeros(n);
    memcpy(dx, t.w, n * sizeof(float));
    hafl_rope_backward(dx, t.pos, t.cos_t, t.sin_t, t.N, t.C, t.hs, t.neox);
    s_check_grad("rope dinp", t.x, dx, n, s_rope_objective, &t);
    free(t.x), free(t.w), free(t.work), free(t.cos_t), free(t.sin_t), free(dx);
}

//  ---- Attention ----------------------------------------------------------------------------

typedef struct {
    size_t B, N, C, KV, nh, nkv;
    uint32_t *lengths;
    float *q, *k, *v, *out, *att, *w;
} s_att_t;

static double s_att_objective(void *ctx)
{
    s_att_t *t = ctx;
    hafl_attention_forward(t->out, t->att, t->q, t->k, t->v, t->lengths, t->B, t->C, t->KV, t->nh,
                           t->nkv);
    return s_dot(t->out, t->w, t->N * t->C);
}

//  Naive causal GQA attention in double for one row, against the forward.
static void s_att_reference(const s_att_t *t)
{
    size_t hs = t->C / t->nh, o = 0;
    for (size_t b = 0; b < t->B; b++) {
        for (size_t i = 0; i < t->lengths[b]; i++)
            for (size_t h = 0; h < t->nh; h++) {
                size_t kvh = h / (t->nh / t->nkv);
                double sc[64], max = -1e300, sum = 0.0;
                for (size_t j = 0; j <= i; j++) {
                    double d = 0.0;
                    for (size_t c = 0; c < hs; c++)
                        d += (double)t->q[(o + i) * t->C + h * hs + c] *
                             t->k[(o + j) * t->KV + kvh * hs + c];
                    sc[j] = d / sqrt((double)hs);
                    max = sc[j] > max ? sc[j] : max;
                }
                for (size_t j = 0; j <= i; j++)
                    sum += (sc[j] = exp(sc[j] - max));
                for (size_t c = 0; c < hs; c++) {
                    double y = 0.0;
                    for (size_t j = 0; j <= i; j++)
                        y += sc[j] / sum * t->v[(o + j) * t->KV + kvh * hs + c];
                    CHECKF(fabs(y - t->out[(o + i) * t->C + h * hs + c]) < 1e-5,
                           "attention forward seq %zu pos %zu head %zu", b, i, h);
                }
            }
        o += t->lengths[b];
    }
}

static void s_test_attention(void)
{
    //  one sequence longer than a 32-row block, so the blocked causal products are exercised
    uint32_t lengths[3] = {37, 4, 1};
    s_att_t t = {.B = 3, .C = 8, .KV = 4, .nh = 4, .nkv = 2, .lengths = lengths};
    t.N = 42;
    t.q = s_randn(t.N * t.C, 1.0f), t.k = s_randn(t.N * t.KV, 1.0f);
    t.v = s_randn(t.N * t.KV, 1.0f), t.w = s_randn(t.N * t.C, 1.0f);
    t.out = s_zeros(t.N * t.C);
    t.att = s_zeros(hafl_attention_att_floats(lengths, t.B, t.nh));
    float *dq = s_zeros(t.N * t.C), *dk = s_zeros(t.N * t.KV), *dv = s_zeros(t.N * t.KV);
    float *scratch = s_zeros(37 * 37);
    s_att_objective(&t);
    s_att_reference(&t);
    hafl_attention_backward(dq, dk, dv, scratch, t.w, t.q, t.k, t.v, t.att, lengths, t.B, t.C, t.KV,
                            t.nh, t.nkv);
    s_check_grad("attention dq", t.q, dq, t.N * t.C, s_att_objective, &t);
    s_check_grad("attention dk", t.k, dk, t.N * t.KV, s_att_objective, &t);
    s_check_grad("attention dv", t.v, dv, t.N * t.KV, s_att_objective, &t);
    float *dq2 = s_zeros(t.N * t.C), *dk2 = s_zeros(t.N * t.KV), *dv2 = s_zeros(t.N * t.KV);
    s_att_objective(&t);
    for (int rep = 0; rep < 2; rep++)
        hafl_attention_backward(dq2, dk2, dv2, scratch, t.w, t.q, t.k, t.v, t.att, lengths, t.B,
                                t.C, t.KV, t.nh, t.nkv);
    s_check_accumulates("attention dq", dq, dq2, t.N * t.C);
    s_check_accumulates("attention dk", dk, dk2, t.N * t.KV);
    s_check_accumulates("attention dv", dv, dv2, t.N * t.KV);
    free(t.q), free(t.k), free(t.v), free(t.w), free(t.out), free(t.att);
    free(dq), free(dk), free(dv), free(dq2), free(dk2), free(dv2), free(scratch);
}

//  ---- SwiGLU -------------------------------------------------------------------------------

typedef struct {
    size_t n;
    float *h1, *h3, *out, *sig, *w;
} s_swiglu_t;

static double s_swiglu_objective(void *ctx)
{
    s_swiglu_t *t = ctx;
    hafl_swiglu_forward(t->out, t->sig, t->h1, t->h3, t->n);
    return s_dot(t->out, t->w, t->n);
}

static void s_test_swiglu(void)
{
    s_swiglu_t t = {.n = 40};
    t.h1 = s_randn(t.n, 2.0f), t.h3 = s_randn(t.n, 1.0f), t.w = s_randn(t.n, 1.0f);
    t.out = s_zeros(t.n), t.sig = s_zeros(t.n);
    s_swiglu_objective(&t);
    float *d1 = s_zeros(t.n), *d3 = s_zeros(t.n), *e1 = s_zeros(t.n), *e3 = s_zeros(t.n);
    hafl_swiglu_backward(d1, d3, t.w, t.h1, t.h3, t.sig, t.n);
    s_check_grad("swiglu dh1", t.h1, d1, t.n, s_swiglu_objective, &t);
    s_check_grad("swiglu dh3", t.h3, d3, t.n, s_swiglu_objective, &t);
    s_swiglu_objective(&t);
    hafl_swiglu_backward(e1, e3, t.w, t.h1, t.h3, t.sig, t.n);
    hafl_swiglu_backward(e1, e3, t.w, t.h1, t.h3, t.sig, t.n);
    s_check_accumulates("swiglu dh1", d1, e1, t.n);
    s_check_accumulates("swiglu dh3", d3, e3, t.n);
    free(t.h1), free(t.h3), free(t.w), free(t.out), free(t.sig), free(d1), free(d3), free(e1),
        free(e3);
}

//  ---- LoRA linear --------------------------------------------------------------------------

typedef struct {
    hafl_lora_linear_t view;
    size_t N;
    float *x, *out, *u, *w, *W, *weff, *bt, *a;
    bool adapter;
} s_lora_t;

//  The effective weight from W and the factors, naively, then the forward.
static double s_lora_objective(void *ctx)
{
    s_lora_t *t = ctx;
    size_t o = t->view.d_out, i = t->view.d_in, R = t->view.R;
    for (size_t r = 0; r < o; r++)
        for (size_t c = 0; c < i; c++) {
            double v = t->W[r * i + c];
            for (size_t k = 0; t->adapter && k < R; k++)
                v += (double)t->view.scale * t->bt[k * o + r] * t->a[k * i + c];
            t->weff[r * i + c] = (float)v;
        }
    hafl_lora_linear_forward(&t->view, t->out, t->u, t->x, t->N);
    return s_dot(t->out, t->w, t->N * o);
}

static void s_test_lora_linear(bool adapter)
{
    size_t N = 7, o = 9, i = 6, R = 3;
    s_lora_t t = {.N = N, .adapter = adapter};
    t.W = s_randn(o * i, 0.5f), t.bt = s_randn(R * o, 0.5f), t.a = s_randn(R * i, 0.5f);
    t.weff = s_zeros(o * i);
    t.view = (hafl_lora_linear_t){t.weff, adapter ? t.bt : NULL, t.a, o, i, R, 16.0f / 3.0f};
    t.x = s_randn(N * i, 1.0f), t.w = s_randn(N * o, 1.0f);
    t.out = s_zeros(N * o), t.u = s_zeros(N * R);
    float *dx = s_zeros(N * i), *dbt = s_zeros(R * o), *da = s_zeros(R * i), *du = s_zeros(N * R);
    s_lora_objective(&t);
    hafl_lora_linear_backward(&t.view, dx, dbt, da, du, t.w, t.x, t.u, N);
    s_check_grad(adapter ? "lora linear dinp" : "plain linear dinp", t.x, dx, N * i,
                 s_lora_objective, &t);
    if (adapter) {
        s_check_grad("lora linear dbt", t.bt, dbt, R * o, s_lora_objective, &t);
        s_check_grad("lora linear da", t.a, da, R * i, s_lora_objective, &t);
        //  the merge helper builds the same effective weight
        float *merged = s_zeros(o * i);
        s_lora_objective(&t);
        hafl_lora_linear_merge(merged, t.W, t.bt, t.a, o, i, R, t.view.scale);
        for (size_t j = 0; j < o * i; j++)
            CHECK(fabsf(merged[j] - t.weff[j]) <= 1e-5f * (1.0f + fabsf(t.weff[j])));
        //  gradients accumulate
        float *dx2 = s_zeros(N * i), *dbt2 = s_zeros(R * o), *da2 = s_zeros(R * i);
        for (int rep = 0; rep < 2; rep++)
            hafl_lora_linear_backward(&t.view, dx2, dbt2, da2, du, t.w, t.x, t.u, N);
        s_check_accumulates("lora linear dinp", dx, dx2, N * i);
        s_check_accumulates("lora linear dbt", dbt, dbt2, R * o);
        s_check_accumulates("lora linear da", da, da2, R * i);
        free(merged), free(dx2), free(dbt2), free(da2);
    }
    free(t.W), free(t.bt), free(t.a), free(t.weff), free(t.x), free(t.w), free(t.out), free(t.u);
    free(dx), free(dbt), free(da), free(du);
}

//  ---- Pooling, head, cross-entropy ---------------------------------------------------------

typedef struct {
    size_t B, C, K;
    uint32_t *lengths, *labels;
    float *x, *head, *pooled, *logits, *probs, *losses;
} s_head_t;

static double s_head_objective(void *ctx)
{
    s_head_t *t = ctx;
    hafl_pool_head_forward(t->pooled, t->logits, t->probs, t->losses, t->x, t->lengths, t->head,
                           t->labels, t->B, t->C, t->K);
    double sum = 0.0;
    for (size_t b = 0; b < t->B; b++)
        sum += t->losses[b];
    return sum / (double)t->B;
}

static void s_test_pool_head(void)
{
    uint32_t lengths[3] = {4, 1, 6}, labels[3] = {2, 0, 3};
    s_head_t t = {.B = 3, .C = 70, .K = 4, .lengths = lengths, .labels = labels};
    size_t N = 11;
    t.x = s_randn(N * t.C, 1.0f), t.head = s_randn(t.K * (t.C + 1), 0.3f);
    t.pooled = s_zeros(t.B * t.C), t.logits = s_zeros(t.B * t.K), t.probs = s_zeros(t.B * t.K);
    t.losses = s_zeros(t.B);
    float *dx = s_zeros(N * t.C), *dhead = s_zeros(t.K * (t.C + 1));
    s_head_objective(&t);
    //  the loss against a double computation
    for (size_t b = 0, o = 0; b < t.B; o += lengths[b], b++) {
        double z[4], max = -1e300, sum = 0.0;
        for (size_t k = 0; k < t.K; k++) {
            z[k] = t.head[k * (t.C + 1) + t.C];
            for (size_t c = 0; c < t.C; c++) {
                double p = 0.0;
                for (size_t r = 0; r < lengths[b]; r++)
                    p += t.x[(o + r) * t.C + c];
                z[k] += t.head[k * (t.C + 1) + c] * p / lengths[b];
            }
            max = z[k] > max ? z[k] : max;
        }
        for (size_t k = 0; k < t.K; k++)
            sum += exp(z[k] - max);
        CHECK(fabs(t.losses[b] - (max + log(sum) - z[labels[b]])) < 1e-5);
    }
    hafl_pool_head_backward(dx, dhead, t.pooled, t.probs, labels, lengths, t.head,
                            1.0f / (float)t.B, t.B, t.C, t.K);
    s_check_grad("pool+head+ce dinp", t.x, dx, N * t.C, s_head_objective, &t);
    s_check_grad("pool+head+ce dhead", t.head, dhead, t.K * (t.C + 1), s_head_objective, &t);
    float *dx2 = s_zeros(N * t.C), *dhead2 = s_zeros(t.K * (t.C + 1));
    s_head_objective(&t);
    for (int rep = 0; rep < 2; rep++)
        hafl_pool_head_backward(dx2, dhead2, t.pooled, t.probs, labels, lengths, t.head,
                                1.0f / (float)t.B, t.B, t.C, t.K);
    s_check_accumulates("pool+head+ce dinp", dx, dx2, N * t.C);
    s_check_accumulates("pool+head+ce dhead", dhead, dhead2, t.K * (t.C + 1));
    free(t.x), free(t.head), free(t.pooled), free(t.logits), free(t.probs), free(t.losses);
    free(dx), free(dhead), free(dx2), free(dhead2);
}

int main(void)
{
    hafl_rng_seed(&s_rng, 42, 0, 0);
    s_test_rmsnorm(1e-5f);
    s_test_rmsnorm(1e-6f);
    s_test_rope(10000.0f, false);
    s_test_rope(500000.0f, false);
    s_test_rope(1000000.0f, true);
    s_test_attention();
    s_test_swiglu();
    s_test_lora_linear(true);
    s_test_lora_linear(false);
    s_test_pool_head();
    printf("train layers: all backward passes match finite differences\n");
    return 0;
}
