/*  hafl_llama_ref: the naive reference forward. See hafl_llama_ref.h for the contract.

    Dimension letters: C = dim, H = hidden_dim, KV = kv_dim, hs = head_size, V = vocab, R = rank.
    Every function has a float path (llama2.c's order of operations) and an exact path (double
    accumulation); the two are kept side by side so it is plain they compute the same formula.
*/
#include "hafl_llama_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _hafl_llama_ref_t {
    const hafl_checkpoint_t *checkpoint;
    hafl_llama_config_t config;
    int max_T;
    bool exact;
    const hafl_adapter_t *adapter; //  borrowed, NULL for the base model
    hafl_targets_t targets;
    const uint8_t *present; //  [n_matrices * R] or NULL
    float *x;               //  [C] residual stream
    float *xb;              //  [C]
    float *xb2;             //  [C]
    float *q;               //  [C]
    float *hb;              //  [H]
    float *hb2;             //  [H]
    float *att;             //  [max_T] scores of one head
    float *key_cache;       //  [L][max_T][KV]
    float *value_cache;     //  [L][max_T][KV]
    float *logits;          //  [V]
    double *acc;            //  [max (V, H, C)] exact-mode accumulators
};

hafl_llama_ref_t *hafl_llama_ref_new(const hafl_checkpoint_t *checkpoint, int max_T, bool exact,
                                     char *err, size_t errlen)
{
    if (!checkpoint || max_T <= 0 || max_T > (1 << 20)) {
        snprintf(err, errlen, "reference forward: max_T = %d must be in 1..%d", max_T, 1 << 20);
        return NULL;
    }
    hafl_llama_ref_t *self = calloc(1, sizeof(hafl_llama_ref_t));
    if (!self)
        goto nomem;
    const hafl_llama_config_t *c = &checkpoint->config;
    self->checkpoint = checkpoint;
    self->config = *c;
    self->max_T = max_T;
    self->exact = exact;
    size_t C = (size_t)c->dim, H = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    size_t Q = (size_t)hafl_llama_q_dim(c);
    size_t cache = (size_t)c->n_layers * (size_t)max_T * (size_t)hafl_llama_kv_dim(c);
    size_t widest = V > H ? V : H;
    widest = widest > C ? widest : C;
    widest = widest > Q ? widest : Q;
    self->x = calloc(C, sizeof(float));
    self->xb = calloc(C > Q ? C : Q, sizeof(float)); //  normed x [C], or attention out [Q]
    self->xb2 = calloc(C, sizeof(float));
    self->q = calloc(Q, sizeof(float));
    self->hb = calloc(H, sizeof(float));
    self->hb2 = calloc(H, sizeof(float));
    self->att = calloc((size_t)max_T, sizeof(float));
    self->key_cache = calloc(cache, sizeof(float));
    self->value_cache = calloc(cache, sizeof(float));
    self->logits = calloc(V, sizeof(float));
    self->acc = calloc(widest, sizeof(double));
    if (!self->x || !self->xb || !self->xb2 || !self->q || !self->hb || !self->hb2 || !self->att ||
        !self->key_cache || !self->value_cache || !self->logits || !self->acc)
        goto nomem;
    return self;
nomem:
    snprintf(err, errlen, "reference forward: out of memory");
    hafl_llama_ref_destroy(&self);
    return NULL;
}

void hafl_llama_ref_destroy(hafl_llama_ref_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_llama_ref_t *self = *self_p;
    free(self->x);
    free(self->xb);
    free(self->xb2);
    free(self->q);
    free(self->hb);
    free(self->hb2);
    free(self->att);
    free(self->key_cache);
    free(self->value_cache);
    free(self->logits);
    free(self->acc);
    free(self);
    *self_p = NULL;
}

int hafl_llama_ref_set_adapter(hafl_llama_ref_t *self, const hafl_adapter_t *adapter,
                               const hafl_targets_t *targets, const uint8_t *present, char *err,
                               size_t errlen)
{
    if (!adapter) {
        self->adapter = NULL;
        self->present = NULL;
        return 0;
    }
    if (!targets) {
        snprintf(err, errlen, "reference forward: an adapter needs its LoRA targets");
        return -1;
    }
    const hafl_layout_t *layout = &adapter->layout;
    uint32_t expected = (uint32_t)self->config.n_layers * targets->per_layer;
    if (layout->n_matrices != expected) {
        snprintf(err, errlen, "adapter has %u matrices, the model and targets need %u",
                 layout->n_matrices, expected);
        return -1;
    }
    for (int l = 0; l < self->config.n_layers; l++)
        for (uint32_t s = 0; s < targets->per_layer; s++) {
            hafl_weight_t w = targets->order[s];
            int32_t m = hafl_targets_matrix(targets, l, w);
            uint32_t d_out, d_in;
            hafl_weight_shape(&self->config, w, &d_out, &d_in);
            const hafl_matrix_info_t *info = &layout->matrices[m];
            if (info->d_out != d_out || info->d_in != d_in) {
                snprintf(err, errlen, "adapter matrix %d (%s) is %ux%u, L%d.%s is %ux%u", m,
                         info->name, info->d_out, info->d_in, l, hafl_weight_name(w), d_out, d_in);
                return -1;
            }
        }
    self->adapter = adapter;
    self->targets = *targets;
    self->present = present;
    return 0;
}

//  Dot product of n floats, float or double accumulation.
static inline double s_dot(const float *a, const float *b, int n, bool exact)
{
    if (exact) {
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += (double)a[i] * (double)b[i];
        return sum;
    }
    float sum = 0.0f;
    for (int i = 0; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

//  out [C] = weight * x / rms (x), x [C]. out may alias x.
static void s_rmsnorm(float *out, const float *x, const float *weight, int C, float eps, bool exact)
{
    if (exact) {
        double ss = s_dot(x, x, C, true) / C + (double)eps;
        double inv = 1.0 / sqrt(ss);
        for (int i = 0; i < C; i++)
            out[i] = (float)((double)weight[i] * (inv * (double)x[i]));
        return;
    }
    float ss = (float)s_dot(x, x, C, false);
    ss /= (float)C;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    for (int i = 0; i < C; i++)
        out[i] = weight[i] * (ss * x[i]);
}

void hafl_llama_softmax(float *x, int n)
{
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

//  In-place softmax of x [n]: llama2.c's float one, or with double sums.
static void s_softmax(float *x, int n, bool exact)
{
    if (!exact) {
        hafl_llama_softmax(x, n);
        return;
    }
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - max);
    for (int i = 0; i < n; i++)
        x[i] = (float)(exp((double)x[i] - max) / sum);
}

//  out [d_out] = W x + bias (+ the adapter's terms when (layer, weight) is adapted);
//  W [d_out][d_in], x [d_in], bias [d_out] or NULL. layer < 0 means never adapted (the
//  classifier).
static void s_linear(hafl_llama_ref_t *self, float *out, const float *x, const float *W,
                     const float *bias, int d_out, int d_in, int layer, hafl_weight_t weight)
{
    const hafl_adapter_t *ad = self->adapter;
    int32_t m = ad && layer >= 0 ? hafl_targets_matrix(&self->targets, layer, weight) : -1;
    bool exact = self->exact;
    double *acc = self->acc;
    for (int i = 0; i < d_out; i++) {
        double v = s_dot(W + (size_t)i * d_in, x, d_in, exact);
        if (exact)
            acc[i] = v + (bias ? (double)bias[i] : 0.0);
        else
            out[i] = bias ? (float)v + bias[i] : (float)v;
    }
    if (m < 0)
        goto done;
    for (uint32_t j = 0; j < ad->n_merged[m]; j++) {
        const float *mb = ad->mbt[m] + (size_t)j * d_out; //  [d_out]
        const float *ma = ad->ma[m] + (size_t)j * d_in;   //  [d_in]
        double t = s_dot(ma, x, d_in, exact);
        for (int i = 0; i < d_out; i++) {
            if (exact)
                acc[i] += (double)mb[i] * t;
            else
                out[i] += mb[i] * (float)t;
        }
    }
    uint32_t R = ad->layout.rank;
    float scale = ad->layout.scale;
    for (uint32_t k = 0; k < R; k++) {
        if (self->present && !self->present[(size_t)m * R + k])
            continue;
        const float *b = hafl_adapter_b(ad, (uint32_t)m, k); //  [d_out]
        const float *a = hafl_adapter_a(ad, (uint32_t)m, k); //  [d_in]
        double u = s_dot(a, x, d_in, exact);
        for (int i = 0; i < d_out; i++) {
            if (exact)
                acc[i] += (double)scale * (double)b[i] * u;
            else
                out[i] += scale * b[i] * (float)u;
        }
    }
done:
    if (exact)
        for (int i = 0; i < d_out; i++)
            out[i] = (float)acc[i];
}

//  Rotate q [C] and k [KV] by position. Adjacent pairs (2i, 2i+1) exactly as llama2.c run.c;
//  neox pairs (i, i + head_size/2) of each head with the same angle for pair i.
static void s_rope(float *q, float *k, int pos, int C, int KV, int head_size, float base, bool neox)
{
    if (neox) {
        int half = head_size / 2;
        for (int h = 0; h < C; h += head_size)
            for (int i = 0; i < half; i++) {
                float freq = 1.0f / powf(base, (float)(2 * i) / (float)head_size);
                float val = pos * freq;
                float fcr = cosf(val), fci = sinf(val);
                int rotn = h < KV ? 2 : 1;
                for (int v = 0; v < rotn; v++) {
                    float *vec = v == 0 ? q : k;
                    float v0 = vec[h + i], v1 = vec[h + i + half];
                    vec[h + i] = v0 * fcr - v1 * fci;
                    vec[h + i + half] = v0 * fci + v1 * fcr;
                }
            }
        return;
    }
    for (int i = 0; i < C; i += 2) {
        int head_dim = i % head_size;
        float freq = 1.0f / powf(base, head_dim / (float)head_size);
        float val = pos * freq;
        float fcr = cosf(val), fci = sinf(val);
        int rotn = i < KV ? 2 : 1; //  q always, k only within its narrower width
        for (int v = 0; v < rotn; v++) {
            float *vec = v == 0 ? q : k;
            float v0 = vec[i], v1 = vec[i + 1];
            vec[i] = v0 * fcr - v1 * fci;
            vec[i + 1] = v0 * fci + v1 * fcr;
        }
    }
}

//  Attention of every head at position pos over cached positions 0..pos of layer l:
//  xb [Q] = concat over heads h of sum_t softmax_t (q_h . k_t / sqrt (hs)) v_t.
static void s_attention(hafl_llama_ref_t *self, int l, int pos)
{
    const hafl_llama_config_t *c = &self->config;
    int KV = hafl_llama_kv_dim(c), hs = hafl_llama_head_size(c);
    int kv_mul = c->n_heads / c->n_kv_heads;
    bool exact = self->exact;
    size_t layer_off = (size_t)l * self->max_T * KV;
    for (int h = 0; h < c->n_heads; h++) {
        const float *q = self->q + (size_t)h * hs; //  [hs]
        size_t kv_off = (size_t)(h / kv_mul) * hs;
        for (int t = 0; t <= pos; t++) {
            const float *k = self->key_cache + layer_off + (size_t)t * KV + kv_off; //  [hs]
            if (exact)
                self->att[t] = (float)(s_dot(q, k, hs, true) / sqrt((double)hs));
            else
                self->att[t] = (float)s_dot(q, k, hs, false) / sqrtf((float)hs);
        }
        s_softmax(self->att, pos + 1, exact);
        float *xb = self->xb + (size_t)h * hs; //  [hs]
        for (int i = 0; i < hs; i++) {
            if (exact) {
                double sum = 0.0;
                for (int t = 0; t <= pos; t++)
                    sum += (double)self->att[t] *
                           self->value_cache[layer_off + (size_t)t * KV + kv_off + i];
                xb[i] = (float)sum;
            } else {
                //  llama2.c adds position by position into a zeroed head output; per element
                //  that is the same left-to-right float sum over t.
                float sum = 0.0f;
                for (int t = 0; t <= pos; t++)
                    sum +=
                        self->att[t] * self->value_cache[layer_off + (size_t)t * KV + kv_off + i];
                xb[i] = sum;
            }
        }
    }
}

//  hb [H] = silu (hb) * hb2.
static void s_swiglu(float *hb, const float *hb2, int H, bool exact)
{
    for (int i = 0; i < H; i++) {
        if (exact) {
            double v = hb[i];
            hb[i] = (float)(v / (1.0 + exp(-v)) * hb2[i]);
        } else {
            float v = hb[i];
            v *= 1.0f / (1.0f + expf(-v));
            v *= hb2[i];
            hb[i] = v;
        }
    }
}

const float *hafl_llama_ref_step(hafl_llama_ref_t *self, int32_t token, int pos)
{
    const hafl_llama_config_t *c = &self->config;
    const hafl_llama_weights_t *w = &self->checkpoint->weights;
    if (token < 0 || token >= c->vocab_size || pos < 0 || pos >= self->max_T)
        return NULL;
    int C = c->dim, H = c->hidden_dim, KV = hafl_llama_kv_dim(c), hs = hafl_llama_head_size(c);
    int Q = hafl_llama_q_dim(c);
    bool exact = self->exact;
    memcpy(self->x, w->token_embedding + (size_t)token * C, (size_t)C * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        size_t cache_off = ((size_t)l * self->max_T + (size_t)pos) * KV;
        float *k = self->key_cache + cache_off;   //  [KV]
        float *v = self->value_cache + cache_off; //  [KV]
        size_t L = (size_t)l;
        float eps = c->rms_eps;
        const float *bq = w->bq ? w->bq + L * Q : NULL;  //  [Q]
        const float *bk = w->bk ? w->bk + L * KV : NULL; //  [KV]
        const float *bv = w->bv ? w->bv + L * KV : NULL; //  [KV]
        s_rmsnorm(self->xb, self->x, w->rms_att + L * C, C, eps, exact);
        s_linear(self, self->q, self->xb, w->wq + L * Q * C, bq, Q, C, l, HAFL_WEIGHT_WQ);
        s_linear(self, k, self->xb, w->wk + L * KV * C, bk, KV, C, l, HAFL_WEIGHT_WK);
        s_linear(self, v, self->xb, w->wv + L * KV * C, bv, KV, C, l, HAFL_WEIGHT_WV);
        s_rope(self->q, k, pos, Q, KV, hs, c->rope_base, c->rope_neox);
        s_attention(self, l, pos);
        s_linear(self, self->xb2, self->xb, w->wo + L * C * Q, NULL, C, Q, l, HAFL_WEIGHT_WO);
        for (int i = 0; i < C; i++)
            self->x[i] += self->xb2[i];
        s_rmsnorm(self->xb, self->x, w->rms_ffn + L * C, C, eps, exact);
        s_linear(self, self->hb, self->xb, w->w1 + L * H * C, NULL, H, C, l, HAFL_WEIGHT_W1);
        s_linear(self, self->hb2, self->xb, w->w3 + L * H * C, NULL, H, C, l, HAFL_WEIGHT_W3);
        s_swiglu(self->hb, self->hb2, H, exact);
        s_linear(self, self->xb, self->hb, w->w2 + L * C * H, NULL, C, H, l, HAFL_WEIGHT_W2);
        for (int i = 0; i < C; i++)
            self->x[i] += self->xb[i];
    }
    s_rmsnorm(self->x, self->x, w->rms_final, C, c->rms_eps, exact);
    s_linear(self, self->logits, self->x, w->wcls, NULL, c->vocab_size, C, -1, HAFL_WEIGHT_WQ);
    return self->logits;
}

const float *hafl_llama_ref_final(const hafl_llama_ref_t *self)
{
    return self->x;
}

int hafl_llama_ref_forward(hafl_llama_ref_t *self, const int32_t *tokens, int T, float *logits,
                           float *final_norm, char *err, size_t errlen)
{
    const hafl_llama_config_t *c = &self->config;
    if (T < 1 || T > self->max_T) {
        snprintf(err, errlen, "reference forward: T = %d must be in 1..%d", T, self->max_T);
        return -1;
    }
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size) {
            snprintf(err, errlen, "reference forward: token %d at position %d is outside 0..%d",
                     tokens[t], t, c->vocab_size - 1);
            return -1;
        }
    for (int t = 0; t < T; t++) {
        const float *out = hafl_llama_ref_step(self, tokens[t], t);
        if (logits)
            memcpy(logits + (size_t)t * c->vocab_size, out, (size_t)c->vocab_size * sizeof(float));
        if (final_norm)
            memcpy(final_norm + (size_t)t * c->dim, self->x, (size_t)c->dim * sizeof(float));
    }
    return 0;
}

int hafl_llama_ref_head(const float *final_norm, int T, int length, int dim, const float *head,
                        int classes, float *out)
{
    if (length < 1 || length > T || dim < 1 || classes < 0)
        return -1;
    for (int k = 0; k < classes; k++) {
        const float *row = head + (size_t)k * (dim + 1); //  [dim + 1], bias last
        double sum = row[dim];
        for (int i = 0; i < dim; i++) {
            double mean = 0.0;
            for (int t = 0; t < length; t++)
                mean += final_norm[(size_t)t * dim + i];
            sum += (double)row[i] * (mean / length);
        }
        out[k] = (float)sum;
    }
    return 0;
}
