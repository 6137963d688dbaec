/*  hafl_fold: the aggregation context, the common head and score rule, and the four
    factor-averaging strategies. See hafl_fold.h for the contract and hafl_strategy.h for the
    definitions users rely on.
*/
#include "hafl_fold.h"
#include "hafl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The adapter file format refuses more merged terms per matrix than this.
#define S_MAX_MERGED (1u << 16)

hafl_fold_t *hafl_fold_new(const hafl_adapter_t *global, const hafl_upload_t *uploads, size_t n,
                           uint64_t seed, uint32_t round)
{
    hafl_fold_t *self = calloc(1, sizeof(hafl_fold_t));
    if (!self)
        return NULL;
    uint32_t M = global->layout.n_matrices;
    self->global = global;
    self->uploads = uploads;
    self->n = n;
    self->seed = seed;
    self->round = round;
    self->p = malloc((n + 1) * sizeof(double));
    self->merged_mode = calloc(M + 1, 1);
    self->merged_n = calloc(M + 1, sizeof(uint32_t));
    self->merged_bt = calloc(M + 1, sizeof(float *));
    self->merged_a = calloc(M + 1, sizeof(float *));
    self->next = hafl_adapter_new(&global->layout);
    if (!self->p || !self->merged_mode || !self->merged_n || !self->merged_bt || !self->merged_a ||
        !self->next) {
        hafl_fold_destroy(&self);
        return NULL;
    }
    const hafl_layout_t *L = &global->layout;
    for (uint32_t m = 0; m < M; m++) {
        memcpy(self->next->bt[m], global->bt[m], (size_t)L->rank * L->matrices[m].d_out * 4);
        memcpy(self->next->a[m], global->a[m], (size_t)L->rank * L->matrices[m].d_in * 4);
    }
    memcpy(self->next->score, global->score, (size_t)M * L->rank * sizeof(float));
    memcpy(self->next->head, global->head, (size_t)L->head_rows * L->head_cols * sizeof(float));
    double total = 0.0;
    for (size_t i = 0; i < n; i++)
        total += (double)uploads[i].n_samples;
    for (size_t i = 0; i < n; i++)
        self->p[i] = (double)uploads[i].n_samples / total;
    return self;
}

int hafl_fold_same_layout(const hafl_layout_t *have, const hafl_layout_t *want, char *why,
                          size_t whylen)
{
    if (have->n_matrices != want->n_matrices || have->rank != want->rank) {
        snprintf(why, whylen, "%u matrices of rank %u, expected %u of rank %u", have->n_matrices,
                 have->rank, want->n_matrices, want->rank);
        return -1;
    }
    if (have->head_rows != want->head_rows || have->head_cols != want->head_cols) {
        snprintf(why, whylen, "head %ux%u, expected %ux%u", have->head_rows, have->head_cols,
                 want->head_rows, want->head_cols);
        return -1;
    }
    for (uint32_t m = 0; m < want->n_matrices; m++)
        if (have->matrices[m].d_out != want->matrices[m].d_out ||
            have->matrices[m].d_in != want->matrices[m].d_in) {
            snprintf(why, whylen, "matrix %s is %ux%u, expected %ux%u", want->matrices[m].name,
                     have->matrices[m].d_out, have->matrices[m].d_in, want->matrices[m].d_out,
                     want->matrices[m].d_in);
            return -1;
        }
    return 0;
}

uint32_t hafl_fold_longest(const hafl_layout_t *layout)
{
    uint32_t longest = 1;
    for (uint32_t m = 0; m < layout->n_matrices; m++) {
        if (layout->matrices[m].d_out > longest)
            longest = layout->matrices[m].d_out;
        if (layout->matrices[m].d_in > longest)
            longest = layout->matrices[m].d_in;
    }
    return longest;
}

void hafl_fold_destroy(hafl_fold_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_fold_t *self = *self_p;
    if (self->merged_bt && self->merged_a)
        for (uint32_t m = 0; m < self->global->layout.n_matrices; m++) {
            free(self->merged_bt[m]);
            free(self->merged_a[m]);
        }
    free(self->merged_bt);
    free(self->merged_a);
    free(self->merged_n);
    free(self->merged_mode);
    free(self->p);
    hafl_adapter_destroy(&self->next);
    free(self);
    *self_p = NULL;
}

int hafl_fold_merged(hafl_fold_t *self, uint32_t m, int mode, uint32_t count, const float *bt,
                     const float *a)
{
    const hafl_adapter_t *g = self->global;
    size_t d_out = g->layout.matrices[m].d_out, d_in = g->layout.matrices[m].d_in;
    size_t keep = mode == HAFL_FOLD_MERGED_APPEND ? g->n_merged[m] : 0;
    size_t total = keep + count;
    if (total > S_MAX_MERGED)
        return -1;
    float *nb = malloc((total * d_out + 1) * sizeof(float));
    float *na = malloc((total * d_in + 1) * sizeof(float));
    if (!nb || !na) {
        free(nb);
        free(na);
        return -1;
    }
    if (keep) {
        memcpy(nb, g->mbt[m], keep * d_out * sizeof(float));
        memcpy(na, g->ma[m], keep * d_in * sizeof(float));
    }
    if (count) {
        memcpy(nb + keep * d_out, bt, count * d_out * sizeof(float));
        memcpy(na + keep * d_in, a, count * d_in * sizeof(float));
    }
    free(self->merged_bt[m]);
    free(self->merged_a[m]);
    self->merged_bt[m] = nb;
    self->merged_a[m] = na;
    self->merged_n[m] = (uint32_t)total;
    self->merged_mode[m] = (uint8_t)mode;
    return 0;
}

void hafl_fold_head_scores(hafl_fold_t *self)
{
    const hafl_layout_t *L = &self->global->layout;
    size_t cells = (size_t)L->head_rows * L->head_cols;
    for (size_t c = 0; c < cells; c++) {
        double sum = 0.0;
        for (size_t i = 0; i < self->n; i++)
            sum += self->p[i] * (double)self->uploads[i].adapter->head[c];
        self->next->head[c] = (float)sum;
    }
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < L->rank; k++) {
            size_t at = (size_t)m * L->rank + k;
            double cover = 0.0, sum = 0.0;
            for (size_t i = 0; i < self->n; i++)
                if (hafl_fold_trained(self, i, m, k)) {
                    double n_i = (double)self->uploads[i].n_samples;
                    cover += n_i;
                    sum += n_i * (double)self->uploads[i].adapter->score[at];
                }
            if (cover > 0.0)
                self->next->score[at] = (float)(sum / cover);
        }
}

//  ||B_i A_i||_F of upload i's trained components of matrix m, through the Gram identity
//  ||sum_k b_k a_k^T||_F^2 = sum_{k,l} (b_k . b_l)(a_k . a_l), so no d_out x d_in product.
static double s_product_norm(const hafl_fold_t *self, size_t i, uint32_t m)
{
    const hafl_adapter_t *up = self->uploads[i].adapter;
    uint32_t R = self->global->layout.rank;
    uint32_t d_out = self->global->layout.matrices[m].d_out;
    uint32_t d_in = self->global->layout.matrices[m].d_in;
    double sq = 0.0;
    for (uint32_t k = 0; k < R; k++) {
        if (!hafl_fold_trained(self, i, m, k))
            continue;
        for (uint32_t l = 0; l < R; l++) {
            if (!hafl_fold_trained(self, i, m, l))
                continue;
            const float *bk = hafl_adapter_b(up, m, k), *bl = hafl_adapter_b(up, m, l);
            const float *ak = hafl_adapter_a(up, m, k), *al = hafl_adapter_a(up, m, l);
            double bb = 0.0, aa = 0.0;
            for (uint32_t r = 0; r < d_out; r++)
                bb += (double)bk[r] * bl[r];
            for (uint32_t c = 0; c < d_in; c++)
                aa += (double)ak[c] * al[c];
            sq += bb * aa;
        }
    }
    return sq > 0.0 ? sqrt(sq) : 0.0;
}

//  Per-client weights of matrix m under a rule: n_i for adaptive (normalised per component
//  later), p_i for zeropad and fedavg, HetLoRA's norm weights for zeropad-norm (falling back
//  to p_i when every product in the matrix is zero).
static void s_rule_weights(const hafl_fold_t *self, hafl_fold_rule_t rule, uint32_t m, double *w)
{
    size_t n = self->n;
    for (size_t i = 0; i < n; i++)
        w[i] = rule == HAFL_FOLD_ADAPTIVE ? (double)self->uploads[i].n_samples : self->p[i];
    if (rule != HAFL_FOLD_ZEROPAD_NORM)
        return;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        w[i] = s_product_norm(self, i, m);
        total += w[i];
    }
    for (size_t i = 0; i < n; i++)
        w[i] = total > 0.0 && isfinite(total) ? w[i] / total : self->p[i];
}

//  out = (base * g + sum_{i trained k} w_i x_ik) / denom over one factor vector of length d;
//  side 0 is b_k, side 1 is a_k.
static void s_mix(hafl_fold_t *self, uint32_t m, uint32_t k, int side, const double *w, double base,
                  double denom, double *acc)
{
    const hafl_layout_t *L = &self->global->layout;
    uint32_t d = side ? L->matrices[m].d_in : L->matrices[m].d_out;
    const float *g = side ? hafl_adapter_a(self->global, m, k) : hafl_adapter_b(self->global, m, k);
    for (uint32_t x = 0; x < d; x++)
        acc[x] = base * (double)g[x];
    for (size_t i = 0; i < self->n; i++) {
        if (!hafl_fold_trained(self, i, m, k))
            continue;
        const hafl_adapter_t *up = self->uploads[i].adapter;
        const float *v = side ? hafl_adapter_a(up, m, k) : hafl_adapter_b(up, m, k);
        for (uint32_t x = 0; x < d; x++)
            acc[x] += w[i] * (double)v[x];
    }
    float *out = side ? hafl_adapter_a(self->next, m, k) : hafl_adapter_b(self->next, m, k);
    for (uint32_t x = 0; x < d; x++)
        out[x] = (float)(acc[x] / denom);
}

int hafl_fold_factors(hafl_fold_t *self, hafl_fold_rule_t rule, char *err, size_t errlen)
{
    const hafl_layout_t *L = &self->global->layout;
    uint32_t longest = hafl_fold_longest(L);
    double *w = malloc((self->n + 1) * sizeof(double));
    double *acc = malloc((size_t)longest * sizeof(double));
    if (!w || !acc) {
        free(w);
        free(acc);
        snprintf(err, errlen, "aggregate: out of memory");
        return -1;
    }
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        s_rule_weights(self, rule, m, w);
        for (uint32_t k = 0; k < L->rank; k++) {
            double cover = 0.0, rest = 0.0;
            size_t trainers = 0;
            for (size_t i = 0; i < self->n; i++)
                if (hafl_fold_trained(self, i, m, k)) {
                    cover += w[i];
                    trainers++;
                } else
                    rest += w[i];
            //  Adaptive and fedavg leave a component nobody trained bit for bit as it was;
            //  the zero-padding rules average it with zeros, which makes it zero.
            if (trainers == 0 && (rule == HAFL_FOLD_ADAPTIVE || rule == HAFL_FOLD_FEDAVG))
                continue;
            double base = rule == HAFL_FOLD_FEDAVG ? rest : 0.0;
            double denom = rule == HAFL_FOLD_ADAPTIVE ? cover : 1.0;
            s_mix(self, m, k, 0, w, base, denom, acc);
            s_mix(self, m, k, 1, w, base, denom, acc);
        }
    }
    free(w);
    free(acc);
    return 0;
}

void hafl_fold_fresh_factors(hafl_fold_t *self)
{
    const hafl_layout_t *L = &self->global->layout;
    hafl_rng_t rng;
    hafl_rng_seed(&rng, self->seed, HAFL_STREAM_INIT, self->round);
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t d_in = L->matrices[m].d_in;
        memset(self->next->bt[m], 0, (size_t)L->rank * L->matrices[m].d_out * sizeof(float));
        double bound = 1.0 / sqrt((double)d_in);
        for (size_t i = 0; i < (size_t)L->rank * d_in; i++)
            self->next->a[m][i] = (float)((2.0 * hafl_rng_uniform(&rng) - 1.0) * bound);
    }
}

void hafl_fold_commit(hafl_fold_t *self, hafl_adapter_t *global)
{
    const hafl_layout_t *L = &global->layout;
    int replaced = 0;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        memcpy(global->bt[m], self->next->bt[m], (size_t)L->rank * L->matrices[m].d_out * 4);
        memcpy(global->a[m], self->next->a[m], (size_t)L->rank * L->matrices[m].d_in * 4);
        if (self->merged_mode[m] == HAFL_FOLD_MERGED_KEEP)
            continue;
        replaced |= self->merged_mode[m] == HAFL_FOLD_MERGED_REPLACE;
        free(global->mbt[m]);
        free(global->ma[m]);
        global->n_merged[m] = self->merged_n[m];
        global->mbt[m] = self->merged_n[m] ? self->merged_bt[m] : NULL;
        global->ma[m] = self->merged_n[m] ? self->merged_a[m] : NULL;
        if (!self->merged_n[m]) {
            free(self->merged_bt[m]);
            free(self->merged_a[m]);
        }
        self->merged_bt[m] = self->merged_a[m] = NULL;
        self->merged_mode[m] = HAFL_FOLD_MERGED_KEEP;
    }
    memcpy(global->score, self->next->score, (size_t)L->n_matrices * L->rank * sizeof(float));
    memcpy(global->head, self->next->head, (size_t)L->head_rows * L->head_cols * sizeof(float));
    if (replaced)
        global->merged_epoch++;
}
