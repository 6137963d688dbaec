/*  hafl_lora_trainer: see hafl_lora_trainer.h.

    Structure. A batch is split over workers by contiguous runs of sequences; each worker packs
    the valid tokens of its sequences into rows (N = sum of its lengths) and runs the whole
    forward and backward on them with its own activations and its own gradient buffers, with
    single-threaded BLAS. The calling thread is worker 0; the others wait in a small pool. After
    the pass the gradients are summed in worker order on the calling thread, which then runs
    AdamW and the importance update on the trainable entries and the head.

    Gradient layout. All factor entries live in one flat index space: matrix m contributes its
    bt block [R][d_out] at fac_bt[m] and its a block [R][d_in] at fac_a[m]. Gradients, AdamW
    moments and the importance EMAs use that space; the head has its own arrays.

    Backward pruning. Gradients flow only where a trainable entry lies upstream: below the
    lowest layer with a trainable component nothing runs, the input gradient of wq/wk/wv is
    skipped when no layer below trains anything, and matrices without trainable components
    produce no factor gradients (their adapter still passes activation gradients through).
*/
#include "hafl_lora_trainer.h"

#include "hafl_adamw.h"
#include "hafl_attention.h"
#include "hafl_importance.h"
#include "hafl_lora_linear.h"
#include "hafl_pool_head.h"
#include "hafl_rmsnorm.h"
#include "hafl_rope.h"
#include "hafl_simd.h"
#include "hafl_swiglu.h"

#include <cblas.h>
#include <float.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Saved activations of one layer for one worker (rows N of the worker's packed batch).
typedef struct {
    float *x;                    //  [N][C] layer input (residual stream)
    float *xn1;                  //  [N][C] attention RMSNorm output
    float *rstd1;                //  [N]
    float *q;                    //  [N][C] after RoPE
    float *k;                    //  [N][KV] after RoPE
    float *v;                    //  [N][KV]
    float *att;                  //  [sum_b nh len_b^2] attention probabilities
    float *ao;                   //  [N][C] attention output (input of wo)
    float *x2;                   //  [N][C] residual stream after attention
    float *xn2;                  //  [N][C] feed-forward RMSNorm output
    float *rstd2;                //  [N]
    float *h1;                   //  [N][H] w1 output
    float *h3;                   //  [N][H] w3 output
    float *g;                    //  [N][H] SwiGLU output (input of w2)
    float *sig;                  //  [N][H] sigmoid (h1)
    float *u[HAFL_WEIGHT_COUNT]; //  [N][R] LoRA intermediate x A^T per adapted weight
} s_layer_acts_t;

typedef struct {
    struct hafl_lora_trainer_t *owner;
    uint32_t index;
    pthread_t thread;
    bool started;
    //  This pass's share of the batch
    uint32_t b0, nb; //  sequences [b0, b0 + nb)
    size_t N;        //  rows = sum of their lengths
    //  Buffers (one arena, allocated once for max_batch * max_seq rows)
    float *arena;
    uint32_t *pos;        //  [N] position of each row in its sequence
    uint32_t *tok;        //  [N] token of each row
    s_layer_acts_t *acts; //  [L]
    float *xf;            //  [N][C] final layer output
    float *xnf;           //  [N][C] final RMSNorm output
    float *rstdf;         //  [N]
    float *pooled;        //  [B][C]
    float *logits;        //  [B][K]
    float *probs;         //  [B][K]
    float *losses;        //  [B]
    float *tmp;           //  [N][C] forward scratch
    float *dx;            //  [N][C] gradient of the residual stream
    float *dxn;           //  [N][C] gradient of an RMSNorm output
    float *dq;            //  [N][C]
    float *dk;            //  [N][KV]
    float *dv;            //  [N][KV]
    float *dao;           //  [N][C]
    float *dh1;           //  [N][H]
    float *dh3;           //  [N][H]
    float *dg;            //  [N][H]
    float *du;            //  [N][R]
    float *dS;            //  [max_seq][max_seq]
    float *gfac;          //  [n_fac] factor gradients
    float *ghead;         //  [K][C+1] head gradient
} s_worker_t;

typedef enum { S_JOB_FORWARD, S_JOB_TRAIN } s_job_t;

//  What the backward of one layer computes, decided from the roles at load time. A gradient is
//  only needed where something trainable lies upstream of it.
typedef struct {
    bool run;    //  some layer at or below this one trains: the layer's backward runs
    bool gate;   //  gradient wrt the SwiGLU output (dinp of w2) is needed
    bool up_ffn; //  gradient wrt x2 (dinp of w1, w3; RMSNorm backward) is needed
    bool inner;  //  gradient wrt the attention output (dinp of wo) and attention backward
    bool below;  //  a lower layer trains: dinp of wq, wk, wv and the first RMSNorm backward
} s_plan_t;

struct hafl_lora_trainer_t {
    const hafl_checkpoint_t *checkpoint;
    hafl_llama_config_t cfg;
    hafl_targets_t targets;
    hafl_lora_trainer_opts_t opts;
    size_t C, Q, KV, H, L, nh, nkv, hs, R, K; //  dims; Q = q_dim (nh * hs); K = classes
    float scale;
    hafl_adapter_t *adapter;    //  the local adapter
    uint8_t *roles;             //  [n_matrices * R]
    bool *mat_present;          //  [n_matrices] any component not absent
    bool *mat_train;            //  [n_matrices] any component trainable
    s_plan_t *plan;             //  [L] backward plan
    bool head_only;             //  no factor is trainable: the backward stops at the head
    float **eff;                //  [n_matrices] W0 + merged terms, or NULL (use W0)
    float **weff;               //  [n_matrices] (eff or W0) + scale B A, or NULL (no adapter)
    size_t n_fac;               //  total factor entries
    size_t *fac_bt, *fac_a;     //  [n_matrices] offsets in the flat factor space
    float *fac;                 //  [n_fac] scratch: the factor values gathered flat
    float *m_fac, *v_fac;       //  [n_fac] AdamW moments
    float *ibar, *ubar;         //  [n_fac] importance EMAs
    float *m_head, *v_head;     //  [K][C+1]
    uint64_t step;              //  AdamW t
    float *rope_cos, *rope_sin; //  [max_seq][hs/2]
    //  This pass
    const uint32_t *tokens, *labels; //  the caller's, during a pass only
    uint32_t *lengths;               //  [max_batch] copy of the last pass's lengths
    uint32_t B, T;
    float dloss;
    s_job_t job;
    //  Worker pool
    s_worker_t *workers; //  [threads]
    pthread_mutex_t mutex;
    pthread_cond_t start_cond, done_cond;
    bool pool_ready;
    uint64_t generation;
    uint32_t pending;
    bool stopping;
};

//  --------------------------------------------------------------------------------------------
//  Weights and adapter views

static const float *s_base_weight(const hafl_lora_trainer_t *self, size_t l, hafl_weight_t w)
{
    const hafl_llama_weights_t *W = &self->checkpoint->weights;
    size_t C = self->C, Q = self->Q, KV = self->KV, H = self->H;
    switch (w) {
    case HAFL_WEIGHT_WQ:
        return W->wq + l * Q * C;
    case HAFL_WEIGHT_WK:
        return W->wk + l * KV * C;
    case HAFL_WEIGHT_WV:
        return W->wv + l * KV * C;
    case HAFL_WEIGHT_WO:
        return W->wo + l * C * Q;
    case HAFL_WEIGHT_W1:
        return W->w1 + l * H * C;
    case HAFL_WEIGHT_W2:
        return W->w2 + l * C * H;
    default:
        return W->w3 + l * H * C;
    }
}

//  The linear view of weight w of layer l; *m gets its adapter matrix id or -1.
static hafl_lora_linear_t s_view(const hafl_lora_trainer_t *self, size_t l, hafl_weight_t w,
                                 int32_t *m)
{
    hafl_lora_linear_t view = {0};
    uint32_t d_out, d_in;
    hafl_weight_shape(&self->cfg, w, &d_out, &d_in);
    view.d_out = d_out, view.d_in = d_in, view.R = self->R, view.scale = self->scale;
    *m = hafl_targets_matrix(&self->targets, (int)l, w);
    view.w = s_base_weight(self, l, w);
    if (*m >= 0) {
        if (self->weff[*m])
            view.w = self->weff[*m];
        else if (self->eff[*m])
            view.w = self->eff[*m];
        if (self->mat_train[*m]) {
            view.bt = self->adapter->bt[*m];
            view.a = self->adapter->a[*m];
        }
    }
    return view;
}

//  --------------------------------------------------------------------------------------------
//  Worker buffers

typedef struct {
    char *base;
    size_t used;
} s_bump_t;

//  Reserve n floats (64-byte aligned) in the arena; base NULL only measures.
static float *s_take(s_bump_t *bump, size_t n)
{
    size_t at = bump->used;
    bump->used += (n * sizeof(float) + 63) & ~(size_t)63;
    return bump->base ? (float *)(bump->base + at) : NULL;
}

static void s_worker_layout(hafl_lora_trainer_t *self, s_worker_t *w, s_bump_t *bump)
{
    size_t N = (size_t)self->opts.max_batch * self->opts.max_seq;
    size_t B = self->opts.max_batch, C = self->C, Q = self->Q, KV = self->KV, H = self->H;
    size_t R = self->R;
    size_t att = self->nh * B * self->opts.max_seq * self->opts.max_seq;
    w->pos = (uint32_t *)s_take(bump, N);
    w->tok = (uint32_t *)s_take(bump, N);
    for (size_t l = 0; l < self->L; l++) {
        s_layer_acts_t *a = &w->acts[l];
        a->x = s_take(bump, N * C);
        a->xn1 = s_take(bump, N * C);
        a->rstd1 = s_take(bump, N);
        a->q = s_take(bump, N * Q);
        a->k = s_take(bump, N * KV);
        a->v = s_take(bump, N * KV);
        a->att = s_take(bump, att);
        a->ao = s_take(bump, N * Q);
        a->x2 = s_take(bump, N * C);
        a->xn2 = s_take(bump, N * C);
        a->rstd2 = s_take(bump, N);
        a->h1 = s_take(bump, N * H);
        a->h3 = s_take(bump, N * H);
        a->g = s_take(bump, N * H);
        a->sig = s_take(bump, N * H);
        for (int wt = 0; wt < HAFL_WEIGHT_COUNT; wt++)
            a->u[wt] = self->targets.slot[wt] >= 0 ? s_take(bump, N * R) : NULL;
    }
    w->xf = s_take(bump, N * C);
    w->xnf = s_take(bump, N * C);
    w->rstdf = s_take(bump, N);
    w->pooled = s_take(bump, B * C);
    w->logits = s_take(bump, B * self->K);
    w->probs = s_take(bump, B * self->K);
    w->losses = s_take(bump, B);
    w->tmp = s_take(bump, N * C);
    w->dx = s_take(bump, N * C);
    w->dxn = s_take(bump, N * C);
    w->dq = s_take(bump, N * Q);
    w->dk = s_take(bump, N * KV);
    w->dv = s_take(bump, N * KV);
    w->dao = s_take(bump, N * Q);
    w->dh1 = s_take(bump, N * H);
    w->dh3 = s_take(bump, N * H);
    w->dg = s_take(bump, N * H);
    w->du = s_take(bump, N * R);
    w->dS = s_take(bump, (size_t)self->opts.max_seq * self->opts.max_seq);
    w->gfac = s_take(bump, self->n_fac);
    w->ghead = s_take(bump, self->K * (C + 1));
}

//  Allocate the arena: measured first, then laid out for real. Pages a pass never touches
//  (rows beyond the batches actually seen) are never made resident.
static int s_worker_alloc(hafl_lora_trainer_t *self, s_worker_t *w)
{
    w->acts = calloc(self->L, sizeof *w->acts);
    if (!w->acts)
        return -1;
    s_bump_t bump = {NULL, 0};
    s_worker_layout(self, w, &bump);
    if (posix_memalign((void **)&w->arena, 64, bump.used))
        return -1;
    bump.base = (char *)w->arena, bump.used = 0;
    s_worker_layout(self, w, &bump);
    return 0;
}

//  --------------------------------------------------------------------------------------------
//  Forward and backward on one worker's share

//  out [n] = a [n] + b [n] (the residual connections)
HAFL_SIMD_CLONES static void s_add(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

//  y [N][n] += bias [n] on every row.
static void s_add_bias(float *y, const float *bias, size_t N, size_t n)
{
    for (size_t r = 0; r < N; r++)
        for (size_t i = 0; i < n; i++)
            y[r * n + i] += bias[i];
}

static void s_forward(hafl_lora_trainer_t *self, s_worker_t *w)
{
    const hafl_llama_weights_t *W = &self->checkpoint->weights;
    size_t C = self->C, Q = self->Q, KV = self->KV, H = self->H, N = w->N;
    const uint32_t *lengths = self->lengths + w->b0;
    //  Pack the valid tokens: row n is (sequence, position)
    size_t n = 0;
    for (uint32_t b = 0; b < w->nb; b++) {
        const uint32_t *row = self->tokens + (size_t)(w->b0 + b) * self->T;
        for (uint32_t t = 0; t < lengths[b]; t++, n++) {
            w->pos[n] = t;
            w->tok[n] = row[t];
        }
    }
    float *x = w->acts[0].x;
    for (n = 0; n < N; n++)
        memcpy(x + n * C, W->token_embedding + (size_t)w->tok[n] * C, C * sizeof(float));

    for (size_t l = 0; l < self->L; l++) {
        s_layer_acts_t *a = &w->acts[l];
        int32_t m;
        hafl_lora_linear_t view;
        hafl_rmsnorm_forward(a->xn1, a->rstd1, a->x, W->rms_att + l * C, N, C, self->cfg.rms_eps);
        view = s_view(self, l, HAFL_WEIGHT_WQ, &m);
        hafl_lora_linear_forward(&view, a->q, a->u[HAFL_WEIGHT_WQ], a->xn1, N);
        view = s_view(self, l, HAFL_WEIGHT_WK, &m);
        hafl_lora_linear_forward(&view, a->k, a->u[HAFL_WEIGHT_WK], a->xn1, N);
        view = s_view(self, l, HAFL_WEIGHT_WV, &m);
        hafl_lora_linear_forward(&view, a->v, a->u[HAFL_WEIGHT_WV], a->xn1, N);
        if (self->cfg.qkv_bias) {
            //  Frozen biases: they shift the projections but add nothing to any gradient.
            s_add_bias(a->q, W->bq + l * Q, N, Q);
            s_add_bias(a->k, W->bk + l * KV, N, KV);
            s_add_bias(a->v, W->bv + l * KV, N, KV);
        }
        bool neox = self->cfg.rope_neox;
        hafl_rope_forward(a->q, w->pos, self->rope_cos, self->rope_sin, N, Q, self->hs, neox);
        hafl_rope_forward(a->k, w->pos, self->rope_cos, self->rope_sin, N, KV, self->hs, neox);
        hafl_attention_forward(a->ao, a->att, a->q, a->k, a->v, lengths, w->nb, Q, KV, self->nh,
                               self->nkv);
        view = s_view(self, l, HAFL_WEIGHT_WO, &m);
        hafl_lora_linear_forward(&view, w->tmp, a->u[HAFL_WEIGHT_WO], a->ao, N);
        s_add(a->x2, a->x, w->tmp, N * C);

        hafl_rmsnorm_forward(a->xn2, a->rstd2, a->x2, W->rms_ffn + l * C, N, C, self->cfg.rms_eps);
        view = s_view(self, l, HAFL_WEIGHT_W1, &m);
        hafl_lora_linear_forward(&view, a->h1, a->u[HAFL_WEIGHT_W1], a->xn2, N);
        view = s_view(self, l, HAFL_WEIGHT_W3, &m);
        hafl_lora_linear_forward(&view, a->h3, a->u[HAFL_WEIGHT_W3], a->xn2, N);
        hafl_swiglu_forward(a->g, a->sig, a->h1, a->h3, N * H);
        view = s_view(self, l, HAFL_WEIGHT_W2, &m);
        hafl_lora_linear_forward(&view, w->tmp, a->u[HAFL_WEIGHT_W2], a->g, N);
        float *next = l + 1 < self->L ? w->acts[l + 1].x : w->xf;
        s_add(next, a->x2, w->tmp, N * C);
    }
    hafl_rmsnorm_forward(w->xnf, w->rstdf, w->xf, W->rms_final, N, C, self->cfg.rms_eps);
    hafl_pool_head_forward(w->pooled, w->logits, w->probs, w->losses, w->xnf, lengths,
                           self->adapter->head, self->labels ? self->labels + w->b0 : NULL, w->nb,
                           C, self->K);
}

//  Backward of one adapted (or plain) linear map of layer l.
static void s_linear_backward(hafl_lora_trainer_t *self, s_worker_t *w, size_t l, hafl_weight_t wt,
                              float *dinp, const float *dout, const float *inp)
{
    int32_t m;
    hafl_lora_linear_t view = s_view(self, l, wt, &m);
    float *dbt = NULL, *da = NULL;
    if (view.bt) {
        dbt = w->gfac + self->fac_bt[m];
        da = w->gfac + self->fac_a[m];
    }
    hafl_lora_linear_backward(&view, dinp, dbt, da, w->du, dout, inp, w->acts[l].u[wt], w->N);
}

static bool s_trains(const hafl_lora_trainer_t *self, size_t l, hafl_weight_t wt)
{
    int32_t m = hafl_targets_matrix(&self->targets, (int)l, wt);
    return m >= 0 && self->mat_train[m];
}

//  Decide what each layer's backward needs from which matrices train (see s_plan_t).
static void s_make_plan(hafl_lora_trainer_t *self)
{
    bool below = false;
    self->head_only = true;
    for (size_t l = 0; l < self->L; l++) {
        bool qkv = s_trains(self, l, HAFL_WEIGHT_WQ) || s_trains(self, l, HAFL_WEIGHT_WK) ||
                   s_trains(self, l, HAFL_WEIGHT_WV);
        bool attn = qkv || s_trains(self, l, HAFL_WEIGHT_WO);
        bool ffn_in = s_trains(self, l, HAFL_WEIGHT_W1) || s_trains(self, l, HAFL_WEIGHT_W3);
        bool layer = attn || ffn_in || s_trains(self, l, HAFL_WEIGHT_W2);
        s_plan_t *p = &self->plan[l];
        p->below = below;
        p->inner = qkv || below;
        p->up_ffn = attn || below;
        p->gate = p->up_ffn || ffn_in;
        p->run = layer || below;
        below = below || layer;
    }
    self->head_only = !below;
}

static void s_backward(hafl_lora_trainer_t *self, s_worker_t *w)
{
    const hafl_llama_weights_t *W = &self->checkpoint->weights;
    size_t C = self->C, Q = self->Q, KV = self->KV, H = self->H, N = w->N;
    const uint32_t *lengths = self->lengths + w->b0;
    memset(w->gfac, 0, self->n_fac * sizeof(float));
    memset(w->ghead, 0, self->K * (C + 1) * sizeof(float));
    if (w->nb == 0)
        return;
    memset(w->dxn, 0, N * C * sizeof(float));
    hafl_pool_head_backward(w->dxn, w->ghead, w->pooled, w->probs, self->labels + w->b0, lengths,
                            self->adapter->head, self->dloss, w->nb, C, self->K);
    if (self->head_only)
        return;
    memset(w->dx, 0, N * C * sizeof(float));
    hafl_rmsnorm_backward(w->dx, w->dxn, w->xf, W->rms_final, w->rstdf, N, C);

    for (size_t l = self->L; l-- > 0;) {
        const s_plan_t *p = &self->plan[l];
        if (!p->run)
            break;
        s_layer_acts_t *a = &w->acts[l];
        //  Feed-forward: x_{l+1} = x2 + w2 (swiglu (w1 xn2, w3 xn2)), dx holds d x_{l+1}
        if (p->gate)
            memset(w->dg, 0, N * H * sizeof(float));
        s_linear_backward(self, w, l, HAFL_WEIGHT_W2, p->gate ? w->dg : NULL, w->dx, a->g);
        if (!p->gate)
            break;
        memset(w->dh1, 0, N * H * sizeof(float));
        memset(w->dh3, 0, N * H * sizeof(float));
        hafl_swiglu_backward(w->dh1, w->dh3, w->dg, a->h1, a->h3, a->sig, N * H);
        if (p->up_ffn)
            memset(w->dxn, 0, N * C * sizeof(float));
        float *dxn = p->up_ffn ? w->dxn : NULL;
        s_linear_backward(self, w, l, HAFL_WEIGHT_W1, dxn, w->dh1, a->xn2);
        s_linear_backward(self, w, l, HAFL_WEIGHT_W3, dxn, w->dh3, a->xn2);
        if (!p->up_ffn)
            break;
        hafl_rmsnorm_backward(w->dx, w->dxn, a->x2, W->rms_ffn + l * C, a->rstd2, N, C);
        //  Attention: x2 = x + wo (attention (rope (wq xn1), rope (wk xn1), wv xn1))
        if (p->inner)
            memset(w->dao, 0, N * Q * sizeof(float));
        s_linear_backward(self, w, l, HAFL_WEIGHT_WO, p->inner ? w->dao : NULL, w->dx, a->ao);
        if (!p->inner)
            break;
        memset(w->dq, 0, N * Q * sizeof(float));
        memset(w->dk, 0, N * KV * sizeof(float));
        memset(w->dv, 0, N * KV * sizeof(float));
        hafl_attention_backward(w->dq, w->dk, w->dv, w->dS, w->dao, a->q, a->k, a->v, a->att,
                                lengths, w->nb, Q, KV, self->nh, self->nkv);
        bool neox = self->cfg.rope_neox;
        hafl_rope_backward(w->dq, w->pos, self->rope_cos, self->rope_sin, N, Q, self->hs, neox);
        hafl_rope_backward(w->dk, w->pos, self->rope_cos, self->rope_sin, N, KV, self->hs, neox);
        dxn = p->below ? w->dxn : NULL;
        if (dxn)
            memset(dxn, 0, N * C * sizeof(float));
        s_linear_backward(self, w, l, HAFL_WEIGHT_WQ, dxn, w->dq, a->xn1);
        s_linear_backward(self, w, l, HAFL_WEIGHT_WK, dxn, w->dk, a->xn1);
        s_linear_backward(self, w, l, HAFL_WEIGHT_WV, dxn, w->dv, a->xn1);
        if (!dxn)
            break;
        hafl_rmsnorm_backward(w->dx, w->dxn, a->x, W->rms_att + l * C, a->rstd1, N, C);
    }
}

static void s_run_worker(hafl_lora_trainer_t *self, s_worker_t *w)
{
    if (w->nb == 0) {
        memset(w->gfac, 0, self->n_fac * sizeof(float));
        memset(w->ghead, 0, self->K * (self->C + 1) * sizeof(float));
        return;
    }
    s_forward(self, w);
    if (self->job == S_JOB_TRAIN)
        s_backward(self, w);
}

//  --------------------------------------------------------------------------------------------
//  Worker pool

static void *s_pool_thread(void *arg)
{
    s_worker_t *w = arg;
    hafl_lora_trainer_t *self = w->owner;
    uint64_t seen = 0;
    pthread_mutex_lock(&self->mutex);
    while (true) {
        while (!self->stopping && self->generation == seen)
            pthread_cond_wait(&self->start_cond, &self->mutex);
        if (self->stopping)
            break;
        seen = self->generation;
        pthread_mutex_unlock(&self->mutex);
        s_run_worker(self, w);
        pthread_mutex_lock(&self->mutex);
        if (--self->pending == 0)
            pthread_cond_signal(&self->done_cond);
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

//  Split the batch, run every worker, wait for all of them.
static void s_run_pass(hafl_lora_trainer_t *self)
{
    uint32_t W = self->opts.threads;
    uint64_t total = 0;
    for (uint32_t b = 0; b < self->B; b++)
        total += self->lengths[b];
    //  Worker i takes sequences while its cumulative token count stays within i+1 W-ths of
    //  the total (at least one each while any remain); the last takes the rest.
    uint32_t b = 0;
    uint64_t prefix = 0;
    for (uint32_t i = 0; i < W; i++) {
        s_worker_t *w = &self->workers[i];
        w->b0 = b;
        w->N = 0;
        while (b < self->B) {
            bool over = (prefix + self->lengths[b]) * W > total * (i + 1);
            if (i + 1 < W && w->N > 0 && over)
                break;
            prefix += self->lengths[b];
            w->N += self->lengths[b];
            b++;
        }
        w->nb = b - w->b0;
    }
    if (W > 1) {
        pthread_mutex_lock(&self->mutex);
        self->pending = W - 1;
        self->generation++;
        pthread_cond_broadcast(&self->start_cond);
        pthread_mutex_unlock(&self->mutex);
    }
    s_run_worker(self, &self->workers[0]);
    if (W > 1) {
        pthread_mutex_lock(&self->mutex);
        while (self->pending > 0)
            pthread_cond_wait(&self->done_cond, &self->mutex);
        pthread_mutex_unlock(&self->mutex);
    }
}

//  --------------------------------------------------------------------------------------------
//  Construction

static int s_check_layout(const hafl_lora_trainer_t *self, const hafl_layout_t *layout, char *err,
                          size_t errlen)
{
    uint32_t expect = (uint32_t)self->L * self->targets.per_layer;
    if (layout->n_matrices != expect) {
        snprintf(err, errlen, "adapter layout has %u matrices, model and targets need %u",
                 layout->n_matrices, expect);
        return -1;
    }
    if (layout->rank < 1) {
        snprintf(err, errlen, "adapter layout rank must be >= 1");
        return -1;
    }
    if (layout->head_rows < 1 || layout->head_cols != self->C + 1) {
        snprintf(err, errlen, "adapter head is [%u][%u], model needs [classes >= 1][%zu]",
                 layout->head_rows, layout->head_cols, self->C + 1);
        return -1;
    }
    for (uint32_t m = 0; m < layout->n_matrices; m++) {
        size_t l = m / self->targets.per_layer;
        hafl_weight_t wt = self->targets.order[m % self->targets.per_layer];
        uint32_t d_out, d_in;
        hafl_weight_shape(&self->cfg, wt, &d_out, &d_in);
        char name[HAFL_MATRIX_NAME_MAX];
        snprintf(name, sizeof name, "L%zu.%s", l, hafl_weight_name(wt));
        const hafl_matrix_info_t *info = &layout->matrices[m];
        if (strcmp(info->name, name) || info->d_out != d_out || info->d_in != d_in) {
            snprintf(err, errlen, "adapter matrix %u is %s [%u][%u], model needs %s [%u][%u]", m,
                     info->name, info->d_out, info->d_in, name, d_out, d_in);
            return -1;
        }
    }
    return 0;
}

static int s_check_config(const hafl_llama_config_t *c, const hafl_lora_trainer_opts_t *opts,
                          char *err, size_t errlen)
{
    if (c->dim < 2 || c->n_heads < 1 || c->n_kv_heads < 1 || c->n_layers < 1 || c->hidden_dim < 1 ||
        c->vocab_size < 1 || c->seq_len < 1 || (c->head_size == 0 && c->dim % c->n_heads) ||
        c->n_heads % c->n_kv_heads || hafl_llama_head_size(c) < 2 ||
        hafl_llama_head_size(c) % 2) {
        snprintf(err, errlen,
                 "model config unusable for training (dim %d, heads %d, kv heads %d, head size "
                 "%d: need kv_heads | heads and an even head size; without one, heads | dim)",
                 c->dim, c->n_heads, c->n_kv_heads, hafl_llama_head_size(c));
        return -1;
    }
    if (opts->max_batch < 1 || opts->max_seq < 1 || opts->threads < 1 || opts->threads > 256) {
        snprintf(err, errlen, "trainer options need max_batch >= 1, max_seq >= 1, threads 1..256");
        return -1;
    }
    if (opts->max_seq > (uint32_t)c->seq_len) {
        snprintf(err, errlen, "max_seq %u exceeds the model's seq_len %d", opts->max_seq,
                 c->seq_len);
        return -1;
    }
    return 0;
}

hafl_lora_trainer_t *hafl_lora_trainer_new(const hafl_checkpoint_t *checkpoint,
                                           const hafl_targets_t *targets,
                                           const hafl_layout_t *layout,
                                           const hafl_lora_trainer_opts_t *opts, char *err,
                                           size_t errlen)
{
    if (!checkpoint || !targets || !layout || !opts) {
        snprintf(err, errlen, "trainer needs a checkpoint, targets, layout and options");
        return NULL;
    }
    const hafl_llama_config_t *c = &checkpoint->config;
    if (s_check_config(c, opts, err, errlen))
        return NULL;
    hafl_lora_trainer_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory creating the trainer");
        return NULL;
    }
    self->checkpoint = checkpoint;
    self->cfg = *c;
    self->targets = *targets;
    self->opts = *opts;
    self->C = (size_t)c->dim, self->KV = (size_t)hafl_llama_kv_dim(c);
    self->H = (size_t)c->hidden_dim, self->L = (size_t)c->n_layers;
    self->nh = (size_t)c->n_heads, self->nkv = (size_t)c->n_kv_heads;
    self->hs = (size_t)hafl_llama_head_size(c);
    self->Q = self->nh * self->hs;
    if (s_check_layout(self, layout, err, errlen)) {
        free(self);
        return NULL;
    }
    self->R = layout->rank, self->K = layout->head_rows, self->scale = layout->scale;
    size_t M = layout->n_matrices;
    self->adapter = hafl_adapter_new(layout);
    self->roles = malloc(M * self->R);
    self->mat_present = calloc(M, sizeof(bool));
    self->mat_train = calloc(M, sizeof(bool));
    self->eff = calloc(M, sizeof(float *));
    self->weff = calloc(M, sizeof(float *));
    self->fac_bt = calloc(M, sizeof(size_t));
    self->fac_a = calloc(M, sizeof(size_t));
    bool ok = self->adapter && self->roles && self->mat_present && self->mat_train && self->eff &&
              self->weff && self->fac_bt && self->fac_a;
    if (ok) {
        for (size_t m = 0; m < M; m++) {
            self->fac_bt[m] = self->n_fac;
            self->n_fac += self->R * layout->matrices[m].d_out;
            self->fac_a[m] = self->n_fac;
            self->n_fac += self->R * layout->matrices[m].d_in;
        }
        memset(self->roles, HAFL_ROLE_TRAINABLE, M * self->R);
        for (size_t m = 0; m < M; m++)
            self->mat_present[m] = self->mat_train[m] = true;
        self->plan = calloc(self->L, sizeof(s_plan_t));
        size_t nh = self->K * (self->C + 1);
        self->fac = calloc(self->n_fac, sizeof(float));
        self->m_fac = calloc(self->n_fac, sizeof(float));
        self->v_fac = calloc(self->n_fac, sizeof(float));
        self->ibar = calloc(self->n_fac, sizeof(float));
        self->ubar = calloc(self->n_fac, sizeof(float));
        self->m_head = calloc(nh, sizeof(float));
        self->v_head = calloc(nh, sizeof(float));
        size_t half = self->hs / 2;
        self->rope_cos = malloc(opts->max_seq * half * sizeof(float));
        self->rope_sin = malloc(opts->max_seq * half * sizeof(float));
        self->workers = calloc(opts->threads, sizeof(s_worker_t));
        self->lengths = calloc(opts->max_batch, sizeof(uint32_t));
        ok = self->plan && self->fac && self->m_fac && self->v_fac && self->ibar && self->ubar &&
             self->m_head && self->v_head && self->rope_cos && self->rope_sin && self->workers &&
             self->lengths;
    }
    if (ok) {
        s_make_plan(self);
        hafl_rope_tables(self->rope_cos, self->rope_sin, opts->max_seq, self->hs, c->rope_base);
        for (uint32_t i = 0; ok && i < opts->threads; i++) {
            self->workers[i].owner = self;
            self->workers[i].index = i;
            ok = s_worker_alloc(self, &self->workers[i]) == 0;
        }
    }
    if (ok && opts->threads > 1) {
        ok = pthread_mutex_init(&self->mutex, NULL) == 0;
        if (ok && (pthread_cond_init(&self->start_cond, NULL) ||
                   pthread_cond_init(&self->done_cond, NULL)))
            ok = false;
        self->pool_ready = ok;
        for (uint32_t i = 1; ok && i < opts->threads; i++) {
            s_worker_t *w = &self->workers[i];
            ok = pthread_create(&w->thread, NULL, s_pool_thread, w) == 0;
            w->started = ok;
        }
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory or threads creating the trainer");
        hafl_lora_trainer_destroy(&self);
        return NULL;
    }
    //  Each worker is one BLAS thread: the parallelism is ours, and deterministic.
    openblas_set_num_threads(1);
    return self;
}

void hafl_lora_trainer_destroy(hafl_lora_trainer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_lora_trainer_t *self = *self_p;
    if (self->pool_ready) {
        pthread_mutex_lock(&self->mutex);
        self->stopping = true;
        pthread_cond_broadcast(&self->start_cond);
        pthread_mutex_unlock(&self->mutex);
        for (uint32_t i = 1; i < self->opts.threads; i++)
            if (self->workers[i].started)
                pthread_join(self->workers[i].thread, NULL);
        pthread_cond_destroy(&self->start_cond);
        pthread_cond_destroy(&self->done_cond);
        pthread_mutex_destroy(&self->mutex);
    }
    if (self->workers)
        for (uint32_t i = 0; i < self->opts.threads; i++) {
            free(self->workers[i].arena);
            free(self->workers[i].acts);
        }
    free(self->workers);
    if (self->eff && self->weff && self->adapter)
        for (uint32_t m = 0; m < self->adapter->layout.n_matrices; m++)
            free(self->eff[m]), free(self->weff[m]);
    free(self->eff);
    free(self->weff);
    hafl_adapter_destroy(&self->adapter);
    free(self->roles);
    free(self->mat_present);
    free(self->mat_train);
    free(self->plan);
    free(self->fac_bt);
    free(self->fac_a);
    free(self->fac);
    free(self->m_fac);
    free(self->v_fac);
    free(self->ibar);
    free(self->ubar);
    free(self->m_head);
    free(self->v_head);
    free(self->rope_cos);
    free(self->rope_sin);
    free(self->lengths);
    free(self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------------------------
//  Loading

//  The weight matrix m starts from: W0, or W0 + its merged terms.
static const float *s_frozen_weight(const hafl_lora_trainer_t *self, uint32_t m)
{
    if (self->eff[m])
        return self->eff[m];
    return s_base_weight(self, m / self->targets.per_layer,
                         self->targets.order[m % self->targets.per_layer]);
}

//  Rebuild the effective weight of matrix m with its current adapter (see hafl_lora_linear.h);
//  a matrix whose components are all absent uses its frozen weight directly.
static int s_refresh_weff(hafl_lora_trainer_t *self, uint32_t m)
{
    const hafl_matrix_info_t *info = &self->adapter->layout.matrices[m];
    if (!self->mat_present[m]) {
        free(self->weff[m]);
        self->weff[m] = NULL;
        return 0;
    }
    if (!self->weff[m] &&
        !(self->weff[m] = malloc((size_t)info->d_out * info->d_in * sizeof(float))))
        return -1;
    hafl_lora_linear_merge(self->weff[m], s_frozen_weight(self, m), self->adapter->bt[m],
                           self->adapter->a[m], info->d_out, info->d_in, self->R, self->scale);
    return 0;
}

//  Install the merged terms of matrix m (eff = W0 + sum_j mb_j ma_j^T, none when there are
//  none), then its effective weight.
static int s_install_merged(hafl_lora_trainer_t *self, uint32_t m)
{
    const hafl_adapter_t *ad = self->adapter;
    free(self->eff[m]);
    self->eff[m] = NULL;
    uint32_t n = ad->n_merged[m];
    if (n > 0) {
        size_t d_out = ad->layout.matrices[m].d_out, d_in = ad->layout.matrices[m].d_in;
        const float *w0 = s_frozen_weight(self, m); //  eff is unset here: W0
        self->eff[m] = malloc(d_out * d_in * sizeof(float));
        if (!self->eff[m])
            return -1;
        hafl_lora_linear_merge(self->eff[m], w0, ad->mbt[m], ad->ma[m], d_out, d_in, n, 1.0f);
    }
    return s_refresh_weff(self, m);
}

static bool s_same_layout(const hafl_layout_t *a, const hafl_layout_t *b)
{
    if (a->n_matrices != b->n_matrices || a->rank != b->rank || a->head_rows != b->head_rows ||
        a->head_cols != b->head_cols || a->scale != b->scale)
        return false;
    for (uint32_t m = 0; m < a->n_matrices; m++)
        if (a->matrices[m].d_out != b->matrices[m].d_out ||
            a->matrices[m].d_in != b->matrices[m].d_in)
            return false;
    return true;
}

int hafl_lora_trainer_load(hafl_lora_trainer_t *self, const hafl_adapter_t *adapter,
                           const uint8_t *roles, char *err, size_t errlen)
{
    const hafl_layout_t *L = &self->adapter->layout;
    size_t total = (size_t)L->n_matrices * self->R;
    if (!adapter || !s_same_layout(L, &adapter->layout)) {
        snprintf(err, errlen,
                 "adapter to load does not match the trainer's layout (matrices, shapes, rank, "
                 "scale or head)");
        return -1;
    }
    if (roles)
        for (size_t i = 0; i < total; i++)
            if (roles[i] > HAFL_ROLE_TRAINABLE) {
                snprintf(err, errlen, "role %u of component %zu (matrix %s) is not 0, 1 or 2",
                         roles[i], i % self->R, L->matrices[i / self->R].name);
                return -1;
            }
    //  Reloading the trainer's own adapter (to change roles) needs no copy.
    if (adapter != self->adapter && hafl_adapter_copy_from(self->adapter, adapter)) {
        snprintf(err, errlen, "out of memory loading the adapter");
        return -1;
    }
    if (roles)
        memcpy(self->roles, roles, total);
    else
        memset(self->roles, HAFL_ROLE_TRAINABLE, total);
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        self->mat_present[m] = self->mat_train[m] = false;
        for (size_t k = 0; k < self->R; k++) {
            uint8_t role = self->roles[m * self->R + k];
            if (role == HAFL_ROLE_ABSENT) {
                memset(hafl_adapter_b(self->adapter, m, (uint32_t)k), 0,
                       L->matrices[m].d_out * sizeof(float));
                memset(hafl_adapter_a(self->adapter, m, (uint32_t)k), 0,
                       L->matrices[m].d_in * sizeof(float));
            } else
                self->mat_present[m] = true;
            if (role == HAFL_ROLE_TRAINABLE)
                self->mat_train[m] = true;
        }
        if (s_install_merged(self, m)) {
            snprintf(err, errlen, "out of memory merging terms into matrix %s",
                     L->matrices[m].name);
            return -1;
        }
    }
    s_make_plan(self);
    return 0;
}

void hafl_lora_trainer_reset_optimizer(hafl_lora_trainer_t *self)
{
    memset(self->m_fac, 0, self->n_fac * sizeof(float));
    memset(self->v_fac, 0, self->n_fac * sizeof(float));
    memset(self->m_head, 0, self->K * (self->C + 1) * sizeof(float));
    memset(self->v_head, 0, self->K * (self->C + 1) * sizeof(float));
    self->step = 0;
}

void hafl_lora_trainer_reset_importance(hafl_lora_trainer_t *self)
{
    memset(self->ibar, 0, self->n_fac * sizeof(float));
    memset(self->ubar, 0, self->n_fac * sizeof(float));
}

size_t hafl_lora_trainer_importance_size(const hafl_lora_trainer_t *self)
{
    return self->n_fac;
}

void hafl_lora_trainer_get_importance(const hafl_lora_trainer_t *self, float *ibar, float *ubar)
{
    memcpy(ibar, self->ibar, self->n_fac * sizeof(float));
    memcpy(ubar, self->ubar, self->n_fac * sizeof(float));
}

int hafl_lora_trainer_set_importance(hafl_lora_trainer_t *self, const float *ibar,
                                     const float *ubar, size_t n, char *err, size_t errlen)
{
    if (n != self->n_fac) {
        snprintf(err, errlen, "importance state has %zu entries, the trainer %zu", n, self->n_fac);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!(ibar[i] >= 0.0f && ibar[i] <= FLT_MAX) || !(ubar[i] >= 0.0f && ubar[i] <= FLT_MAX)) {
            snprintf(err, errlen, "importance entry %zu (Ibar %g, Ubar %g) is not finite and >= 0",
                     i, (double)ibar[i], (double)ubar[i]);
            return -1;
        }
    memcpy(self->ibar, ibar, n * sizeof(float));
    memcpy(self->ubar, ubar, n * sizeof(float));
    return 0;
}

//  --------------------------------------------------------------------------------------------
//  Passes

static int s_check_batch(const hafl_lora_trainer_t *self, const uint32_t *tokens,
                         const uint32_t *lengths, const uint32_t *labels, uint32_t B, uint32_t T,
                         char *err, size_t errlen)
{
    if (!tokens || !lengths || B < 1 || T < 1 || B > self->opts.max_batch ||
        T > self->opts.max_seq) {
        snprintf(err, errlen, "batch [%u][%u] outside the trainer's capacity [1..%u][1..%u]", B, T,
                 self->opts.max_batch, self->opts.max_seq);
        return -1;
    }
    for (uint32_t b = 0; b < B; b++) {
        if (lengths[b] < 1 || lengths[b] > T) {
            snprintf(err, errlen, "length %u of sequence %u is outside 1..%u", lengths[b], b, T);
            return -1;
        }
        for (uint32_t t = 0; t < lengths[b]; t++)
            if (tokens[(size_t)b * T + t] >= (uint32_t)self->cfg.vocab_size) {
                snprintf(err, errlen, "token %u at sequence %u position %u is >= vocab size %d",
                         tokens[(size_t)b * T + t], b, t, self->cfg.vocab_size);
                return -1;
            }
        if (labels && labels[b] >= self->K) {
            snprintf(err, errlen, "label %u of sequence %u is >= classes %zu", labels[b], b,
                     self->K);
            return -1;
        }
    }
    return 0;
}

//  Loss and correct count from the workers' per-sequence outputs; logits copied out if asked.
static void s_collect(hafl_lora_trainer_t *self, float *logits, hafl_lora_batch_stats_t *stats)
{
    double loss = 0.0;
    uint32_t correct = 0;
    for (uint32_t i = 0; i < self->opts.threads; i++) {
        s_worker_t *w = &self->workers[i];
        for (uint32_t b = 0; b < w->nb; b++) {
            const float *l = w->logits + (size_t)b * self->K;
            if (logits)
                memcpy(logits + (size_t)(w->b0 + b) * self->K, l, self->K * sizeof(float));
            if (!self->labels)
                continue;
            loss += w->losses[b];
            size_t best = 0;
            for (size_t k = 1; k < self->K; k++)
                if (l[k] > l[best])
                    best = k;
            correct += best == self->labels[w->b0 + b];
        }
    }
    if (stats) {
        stats->loss = self->labels ? (float)(loss / self->B) : 0.0f;
        stats->correct = correct;
    }
}

static void s_set_batch(hafl_lora_trainer_t *self, const uint32_t *tokens, const uint32_t *lengths,
                        const uint32_t *labels, uint32_t B, uint32_t T, s_job_t job)
{
    self->tokens = tokens, self->labels = labels;
    memcpy(self->lengths, lengths, B * sizeof(uint32_t));
    self->B = B, self->T = T, self->job = job;
    self->dloss = 1.0f / (float)B;
}

int hafl_lora_trainer_evaluate(hafl_lora_trainer_t *self, const uint32_t *tokens,
                               const uint32_t *lengths, const uint32_t *labels, uint32_t B,
                               uint32_t T, float *logits, hafl_lora_batch_stats_t *stats, char *err,
                               size_t errlen)
{
    if (s_check_batch(self, tokens, lengths, labels, B, T, err, errlen))
        return -1;
    s_set_batch(self, tokens, lengths, labels, B, T, S_JOB_FORWARD);
    s_run_pass(self);
    s_collect(self, logits, stats);
    return 0;
}

//  AdamW and the importance update for the trainable components of matrix m, then its scores.
static void s_update_matrix(hafl_lora_trainer_t *self, uint32_t m, const float *gfac, float lr,
                            float wd)
{
    hafl_adapter_t *ad = self->adapter;
    size_t d_out = ad->layout.matrices[m].d_out, d_in = ad->layout.matrices[m].d_in;
    for (uint32_t k = 0; k < self->R; k++) {
        if (self->roles[m * self->R + k] != HAFL_ROLE_TRAINABLE)
            continue;
        size_t ob = self->fac_bt[m] + k * d_out, oa = self->fac_a[m] + k * d_in;
        float *b = hafl_adapter_b(ad, m, k), *a = hafl_adapter_a(ad, m, k);
        hafl_adamw_update(b, gfac + ob, self->m_fac + ob, self->v_fac + ob, d_out, self->step, lr,
                          wd);
        hafl_adamw_update(a, gfac + oa, self->m_fac + oa, self->v_fac + oa, d_in, self->step, lr,
                          wd);
        hafl_importance_update(self->ibar + ob, self->ubar + ob, b, gfac + ob, d_out);
        hafl_importance_update(self->ibar + oa, self->ubar + oa, a, gfac + oa, d_in);
        bool only = self->opts.score_ibar_only;
        ad->score[m * self->R + k] =
            (float)(hafl_importance_mean(self->ibar + ob, self->ubar + ob, d_out, only) +
                    hafl_importance_mean(self->ibar + oa, self->ubar + oa, d_in, only));
    }
}

//  Forward and backward over the batch, then the worker gradients summed into worker 0's
//  buffers in worker order.
static int s_gradient(hafl_lora_trainer_t *self, const uint32_t *tokens, const uint32_t *lengths,
                      const uint32_t *labels, uint32_t B, uint32_t T,
                      hafl_lora_batch_stats_t *stats, char *err, size_t errlen)
{
    if (!labels) {
        snprintf(err, errlen, "a gradient needs labels");
        return -1;
    }
    if (s_check_batch(self, tokens, lengths, labels, B, T, err, errlen))
        return -1;
    s_set_batch(self, tokens, lengths, labels, B, T, S_JOB_TRAIN);
    s_run_pass(self);
    s_collect(self, NULL, stats);
    s_worker_t *w0 = &self->workers[0];
    size_t nh = self->K * (self->C + 1);
    for (uint32_t i = 1; i < self->opts.threads; i++) {
        const s_worker_t *w = &self->workers[i];
        for (size_t j = 0; j < self->n_fac; j++)
            w0->gfac[j] += w->gfac[j];
        for (size_t j = 0; j < nh; j++)
            w0->ghead[j] += w->ghead[j];
    }
    return 0;
}

int hafl_lora_trainer_gradient(hafl_lora_trainer_t *self, const uint32_t *tokens,
                               const uint32_t *lengths, const uint32_t *labels, uint32_t B,
                               uint32_t T, hafl_lora_batch_stats_t *stats, char *err, size_t errlen)
{
    return s_gradient(self, tokens, lengths, labels, B, T, stats, err, errlen);
}

int hafl_lora_trainer_step(hafl_lora_trainer_t *self, const uint32_t *tokens,
                           const uint32_t *lengths, const uint32_t *labels, uint32_t B, uint32_t T,
                           float lr, float wd, hafl_lora_batch_stats_t *stats, char *err,
                           size_t errlen)
{
    if (!(lr > 0.0f) || !(wd >= 0.0f) || lr > 1e6f || wd > 1e6f) {
        snprintf(err, errlen, "learning rate %g must be > 0 and weight decay %g >= 0", lr, wd);
        return -1;
    }
    if (s_gradient(self, tokens, lengths, labels, B, T, stats, err, errlen))
        return -1;
    const s_worker_t *w0 = &self->workers[0];
    self->step++;
    for (uint32_t m = 0; m < self->adapter->layout.n_matrices; m++)
        if (self->mat_train[m]) {
            s_update_matrix(self, m, w0->gfac, lr, wd);
            if (s_refresh_weff(self, m)) {
                snprintf(err, errlen, "out of memory for the effective weight of %s",
                         self->adapter->layout.matrices[m].name);
                return -1;
            }
        }
    hafl_adamw_update(self->adapter->head, w0->ghead, self->m_head, self->v_head,
                      self->K * (self->C + 1), self->step, lr, wd);
    return 0;
}

//  --------------------------------------------------------------------------------------------
//  Access

const hafl_adapter_t *hafl_lora_trainer_adapter(const hafl_lora_trainer_t *self)
{
    return self->adapter;
}

const float *hafl_lora_trainer_grad_bt(const hafl_lora_trainer_t *self, uint32_t m)
{
    return self->workers[0].gfac + self->fac_bt[m];
}

const float *hafl_lora_trainer_grad_a(const hafl_lora_trainer_t *self, uint32_t m)
{
    return self->workers[0].gfac + self->fac_a[m];
}

const float *hafl_lora_trainer_grad_head(const hafl_lora_trainer_t *self)
{
    return self->workers[0].ghead;
}

int hafl_lora_trainer_final_norm(const hafl_lora_trainer_t *self, uint32_t b, float *out)
{
    for (uint32_t i = 0; i < self->opts.threads; i++) {
        const s_worker_t *w = &self->workers[i];
        if (b < w->b0 || b >= w->b0 + w->nb)
            continue;
        size_t row = 0;
        for (uint32_t j = w->b0; j < b; j++)
            row += self->lengths[j];
        memcpy(out, w->xnf + row * self->C, (size_t)self->lengths[b] * self->C * sizeof(float));
        return 0;
    }
    return -1;
}

const uint8_t *hafl_lora_trainer_roles(const hafl_lora_trainer_t *self)
{
    return self->roles;
}

uint64_t hafl_lora_trainer_steps(const hafl_lora_trainer_t *self)
{
    return self->step;
}

//  FLOPs of the backward of one linear view: input gradient, then dbt, du, da when it trains.
static double s_linear_backward_flops(const hafl_lora_trainer_t *self, size_t l, hafl_weight_t wt,
                                      bool dinp, double N)
{
    int32_t m;
    hafl_lora_linear_t view = s_view(self, l, wt, &m);
    double R = (double)self->R, o = (double)view.d_out, i = (double)view.d_in;
    double flops = dinp ? 2.0 * N * o * i : 0.0;
    if (view.bt)
        flops += 2.0 * N * R * (2.0 * o + i);
    return flops;
}

double hafl_lora_trainer_step_flops(const hafl_lora_trainer_t *self, const uint32_t *lengths,
                                    uint32_t B)
{
    double N = 0.0, pairs = 0.0;
    for (uint32_t b = 0; b < B; b++) {
        N += lengths[b];
        pairs += 0.5 * (double)lengths[b] * ((double)lengths[b] + 1.0);
    }
    //  per attended (query, key) pair and head: q.k and p v, 2 hs each
    double att = 2.0 * pairs * (double)self->hs * (double)self->nh;
    double flops = 0.0;
    for (size_t l = 0; l < self->L; l++) {
        for (int wt = 0; wt < HAFL_WEIGHT_COUNT; wt++) {
            int32_t m;
            hafl_lora_linear_t view = s_view(self, l, (hafl_weight_t)wt, &m);
            flops += 2.0 * N * (double)view.d_out * (double)view.d_in;
            if (view.bt) //  u = x A^T, and the effective weight rebuilt after the update
                flops += 2.0 * N * (double)self->R * (double)view.d_in +
                         2.0 * (double)self->R * (double)view.d_out * (double)view.d_in;
        }
        flops += 2.0 * att;
        const s_plan_t *p = &self->plan[l];
        if (self->head_only || !p->run)
            continue;
        flops += s_linear_backward_flops(self, l, HAFL_WEIGHT_W2, p->gate, N);
        if (p->gate) {
            flops += s_linear_backward_flops(self, l, HAFL_WEIGHT_W1, p->up_ffn, N);
            flops += s_linear_backward_flops(self, l, HAFL_WEIGHT_W3, p->up_ffn, N);
        }
        if (p->up_ffn)
            flops += s_linear_backward_flops(self, l, HAFL_WEIGHT_WO, p->inner, N);
        if (p->inner) {
            flops += 4.0 * att; //  dP, dV, dQ, dK
            flops += s_linear_backward_flops(self, l, HAFL_WEIGHT_WQ, p->below, N);
            flops += s_linear_backward_flops(self, l, HAFL_WEIGHT_WK, p->below, N);
            flops += s_linear_backward_flops(self, l, HAFL_WEIGHT_WV, p->below, N);
        }
    }
    flops += 2.0 * 2.0 * B * (double)self->K * (double)(self->C + 1); //  head fwd + bwd
    return flops;
}
