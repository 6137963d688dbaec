/*  hafl_fold_flexlora: FlexLoRA (arXiv 2402.11505) over the hafl adapter state.

    The global update of a matrix is everything above the frozen base,
        D = sum_j mb_j ma_j^T + s B A              (merged terms plus the live adapter).
    Client view for budget r: the SVD D = sum_j sigma_j u_j v_j^T gives component k < r the
    factors b_k = sigma_k u_k / s, a_k = v_k (singular values on the B side, so s b_k a_k^T is
    the k-th singular term); components at or past min(r, rank D) get b_k = 0 and the global
    a_k, so a client whose update is rank-deficient (round 1, where D = 0) starts from a
    standard LoRA initialisation instead of dead zero pairs. The view has no merged terms: the
    client trains W0 + s B A with B A ~ D / s, the best rank-r approximation by Eckart-Young.
    Components past r are ignored by the product, so the view is meant for truncate-prefix (as
    in FlexLoRA); under other schemes a selected component past r starts as b = 0, a = a_k.
    Aggregation: each client's full local adapter is its view with the trained components
    replaced by its uploads; the new update D' = sum_i p_i s B_i A_i is stored exactly as its
    SVD terms (mb_j = sigma_j u_j, ma_j = v_j for every nonzero singular value), replacing the
    merged terms, and the live adapter is reset to B = 0 with a fresh A (hafl_fold_fresh_factors)
    so the global model W0 + D' + s B A equals W0 + D' and a later strategy can train on top.
*/
#include "hafl_fold.h"
#include "hafl_lowrank.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  SVD of matrix m's global update D = sum_j mb_j ma_j^T + s sum_k b_k a_k^T.
static hafl_lowrank_t *s_global_svd(const hafl_adapter_t *g, uint32_t m, char *err, size_t errlen)
{
    const hafl_layout_t *L = &g->layout;
    hafl_lowrank_t *svd =
        hafl_lowrank_new(L->matrices[m].d_out, L->matrices[m].d_in, g->n_merged[m] + L->rank);
    if (!svd) {
        snprintf(err, errlen, "flexlora: out of memory for the SVD of %s", L->matrices[m].name);
        return NULL;
    }
    size_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
    for (uint32_t j = 0; j < g->n_merged[m]; j++)
        hafl_lowrank_add(svd, 1.0, g->mbt[m] + j * d_out, g->ma[m] + j * d_in);
    for (uint32_t k = 0; k < L->rank; k++)
        hafl_lowrank_add(svd, L->scale, hafl_adapter_b(g, m, k), hafl_adapter_a(g, m, k));
    if (hafl_lowrank_factor(svd, err, errlen))
        hafl_lowrank_destroy(&svd);
    return svd;
}

//  The view's factors of matrix m for budget r: bt [R][d_out], a [R][d_in].
static void s_view_factors(const hafl_adapter_t *g, uint32_t m, const hafl_lowrank_t *svd,
                           uint32_t r, float *bt, float *a)
{
    const hafl_layout_t *L = &g->layout;
    uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
    uint32_t rank = hafl_lowrank_rank(svd);
    for (uint32_t k = 0; k < L->rank; k++) {
        float *b_k = bt + (size_t)k * d_out, *a_k = a + (size_t)k * d_in;
        if (k < r && k < rank) {
            double factor = hafl_lowrank_sigma(svd, k) / (double)L->scale;
            const double *u = hafl_lowrank_u(svd, k), *v = hafl_lowrank_v(svd, k);
            for (uint32_t x = 0; x < d_out; x++)
                b_k[x] = (float)(factor * u[x]);
            for (uint32_t x = 0; x < d_in; x++)
                a_k[x] = (float)v[x];
        } else {
            memset(b_k, 0, d_out * sizeof(float));
            memcpy(a_k, hafl_adapter_a(g, m, k), d_in * sizeof(float));
        }
    }
}

int hafl_fold_flexlora_view(const hafl_adapter_t *global, uint32_t rank_budget,
                            hafl_adapter_t *view, char *err, size_t errlen)
{
    const hafl_layout_t *L = &global->layout;
    if (hafl_fold_same_layout(&view->layout, L, err, errlen))
        return -1;
    uint32_t r = rank_budget < L->rank ? rank_budget : L->rank;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        hafl_lowrank_t *svd = s_global_svd(global, m, err, errlen);
        if (!svd)
            return -1;
        s_view_factors(global, m, svd, r, view->bt[m], view->a[m]);
        hafl_lowrank_destroy(&svd);
        free(view->mbt[m]);
        free(view->ma[m]);
        view->mbt[m] = view->ma[m] = NULL;
        view->n_merged[m] = 0;
    }
    memcpy(view->score, global->score, (size_t)L->n_matrices * L->rank * sizeof(float));
    memcpy(view->head, global->head, (size_t)L->head_rows * L->head_cols * sizeof(float));
    //  The view's (empty) merged set is not a continuation of global's, so its epoch differs.
    view->merged_epoch = global->merged_epoch + 1;
    return 0;
}

int hafl_fold_merged_from_svd(hafl_fold_t *self, uint32_t m, const hafl_lowrank_t *svd)
{
    const hafl_layout_t *L = &self->global->layout;
    size_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
    uint32_t rank = hafl_lowrank_rank(svd);
    float *bt = malloc(((size_t)rank * d_out + 1) * sizeof(float));
    float *a = malloc(((size_t)rank * d_in + 1) * sizeof(float));
    int rc = -1;
    if (bt && a) {
        for (uint32_t j = 0; j < rank; j++) {
            double sigma = hafl_lowrank_sigma(svd, j);
            const double *u = hafl_lowrank_u(svd, j), *v = hafl_lowrank_v(svd, j);
            for (size_t x = 0; x < d_out; x++)
                bt[j * d_out + x] = (float)(sigma * u[x]);
            for (size_t x = 0; x < d_in; x++)
                a[j * d_in + x] = (float)v[x];
        }
        rc = hafl_fold_merged(self, m, HAFL_FOLD_MERGED_REPLACE, rank, bt, a);
    }
    free(bt);
    free(a);
    return rc;
}

//  D' of matrix m: sum over clients of p_i s (view with trained components replaced).
static int s_fold_matrix(hafl_fold_t *self, uint32_t m, float *vbt, float *va, char *err,
                         size_t errlen)
{
    const hafl_adapter_t *g = self->global;
    const hafl_layout_t *L = &g->layout;
    hafl_lowrank_t *before = s_global_svd(g, m, err, errlen);
    if (!before)
        return -1;
    uint64_t terms = (uint64_t)self->n * L->rank;
    hafl_lowrank_t *after =
        terms <= UINT32_MAX
            ? hafl_lowrank_new(L->matrices[m].d_out, L->matrices[m].d_in, (uint32_t)terms)
            : NULL;
    int rc = -1;
    if (!after) {
        snprintf(err, errlen, "flexlora: out of memory for the update of %s", L->matrices[m].name);
        goto done;
    }
    for (size_t i = 0; i < self->n; i++) {
        const hafl_upload_t *up = &self->uploads[i];
        uint32_t r = up->rank_budget < L->rank ? up->rank_budget : L->rank;
        s_view_factors(g, m, before, r, vbt, va);
        double c = self->p[i] * (double)L->scale;
        for (uint32_t k = 0; k < L->rank; k++) {
            int own = hafl_fold_trained(self, i, m, k);
            const float *b_k =
                own ? hafl_adapter_b(up->adapter, m, k) : vbt + (size_t)k * L->matrices[m].d_out;
            const float *a_k =
                own ? hafl_adapter_a(up->adapter, m, k) : va + (size_t)k * L->matrices[m].d_in;
            hafl_lowrank_add(after, c, b_k, a_k);
        }
    }
    if (hafl_lowrank_factor(after, err, errlen))
        goto done;
    if (hafl_fold_merged_from_svd(self, m, after)) {
        snprintf(err, errlen, "flexlora: cannot store the update of %s (memory or term cap)",
                 L->matrices[m].name);
        goto done;
    }
    rc = 0;
done:
    hafl_lowrank_destroy(&before);
    hafl_lowrank_destroy(&after);
    return rc;
}

int hafl_fold_flexlora(hafl_fold_t *self, char *err, size_t errlen)
{
    const hafl_layout_t *L = &self->global->layout;
    size_t longest = hafl_fold_longest(L);
    float *vbt = malloc((size_t)L->rank * longest * sizeof(float) + 4);
    float *va = malloc((size_t)L->rank * longest * sizeof(float) + 4);
    int rc = 0;
    if (!vbt || !va) {
        snprintf(err, errlen, "flexlora: out of memory");
        rc = -1;
    }
    for (uint32_t m = 0; m < L->n_matrices && rc == 0; m++)
        rc = s_fold_matrix(self, m, vbt, va, err, errlen);
    free(vbt);
    free(va);
    if (rc == 0)
        hafl_fold_fresh_factors(self);
    return rc;
}
