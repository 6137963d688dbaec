/*  hafl_fold_flora: FLoRA (arXiv 2409.05976) over the hafl adapter state.

    Stacking B = [B_1 .. B_K], A = [p_1 A_1; ..; p_K A_K] means the round's product
        sum_i p_i s B_i A_i
    is merged into the base, exactly, as rank-1 terms. Client i's full local adapter is the
    global adapter with the components it trained replaced by its uploads, so per matrix the
    appended terms are, in this order:
      - for each global component k with b_k != 0 that not every client trained:
        (rest_k s b_k, a_k) with rest_k = sum of p_i over the clients that did not train k
        (nothing in a normal FLoRA round, where the adapter was fresh and B = 0);
      - for each client i in ascending order, each component k it trained:
        (p_i s b_ik, a_ik).
    Terms whose b is exactly zero add nothing and are skipped. Then the live adapter restarts
    from a fresh one (B = 0, new A from the seed and round), so the global model is W0 plus the
    merged terms and a later strategy can keep training on top of them.
    The stack would grow by up to K R terms per round without bound; once a matrix would hold
    more than min(d_out, d_in) terms, more than its rank can need, the whole set is replaced by
    its SVD terms (mb_j = sigma_j u_j, ma_j = v_j over every nonzero singular value), which is
    the same matrix to rounding.
*/
#include "hafl_fold.h"
#include "hafl_lowrank.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  One rank-1 term c x y^T, pointing into the global adapter or an upload.
typedef struct {
    double c;
    const float *x; //  [d_out]
    const float *y; //  [d_in]
} s_term_t;

static int s_nonzero(const float *x, uint32_t d)
{
    for (uint32_t i = 0; i < d; i++)
        if (x[i] != 0.0f)
            return 1;
    return 0;
}

//  Collect matrix m's new terms into terms [R + n R]; returns their count.
static size_t s_collect(const hafl_fold_t *self, uint32_t m, s_term_t *terms)
{
    const hafl_adapter_t *g = self->global;
    const hafl_layout_t *L = &g->layout;
    uint32_t d_out = L->matrices[m].d_out;
    size_t count = 0;
    for (uint32_t k = 0; k < L->rank; k++) {
        double rest = 0.0;
        for (size_t i = 0; i < self->n; i++)
            if (!hafl_fold_trained(self, i, m, k))
                rest += self->p[i];
        const float *b_k = hafl_adapter_b(g, m, k);
        if (rest > 0.0 && s_nonzero(b_k, d_out))
            terms[count++] = (s_term_t){rest * L->scale, b_k, hafl_adapter_a(g, m, k)};
    }
    for (size_t i = 0; i < self->n; i++) {
        const hafl_adapter_t *up = self->uploads[i].adapter;
        for (uint32_t k = 0; k < L->rank; k++) {
            const float *b_k = hafl_adapter_b(up, m, k);
            if (hafl_fold_trained(self, i, m, k) && s_nonzero(b_k, d_out))
                terms[count++] = (s_term_t){self->p[i] * L->scale, b_k, hafl_adapter_a(up, m, k)};
        }
    }
    return count;
}

static int s_append(hafl_fold_t *self, uint32_t m, const s_term_t *terms, size_t count)
{
    const hafl_layout_t *L = &self->global->layout;
    size_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
    float *bt = malloc((count * d_out + 1) * sizeof(float));
    float *a = malloc((count * d_in + 1) * sizeof(float));
    int rc = -1;
    if (count == 0)
        rc = 0; //  nothing to stack: the merged terms stay as they are
    else if (bt && a) {
        for (size_t t = 0; t < count; t++) {
            for (size_t x = 0; x < d_out; x++)
                bt[t * d_out + x] = (float)(terms[t].c * (double)terms[t].x[x]);
            memcpy(a + t * d_in, terms[t].y, d_in * sizeof(float));
        }
        rc = hafl_fold_merged(self, m, HAFL_FOLD_MERGED_APPEND, (uint32_t)count, bt, a);
    }
    free(bt);
    free(a);
    return rc;
}

static int s_compact(hafl_fold_t *self, uint32_t m, const s_term_t *terms, size_t count, char *err,
                     size_t errlen)
{
    const hafl_adapter_t *g = self->global;
    size_t d_out = g->layout.matrices[m].d_out, d_in = g->layout.matrices[m].d_in;
    hafl_lowrank_t *svd =
        hafl_lowrank_new((uint32_t)d_out, (uint32_t)d_in, (uint32_t)(g->n_merged[m] + count));
    int rc = -1;
    if (!svd) {
        snprintf(err, errlen, "flora: out of memory compacting %s", g->layout.matrices[m].name);
        return -1;
    }
    for (uint32_t j = 0; j < g->n_merged[m]; j++)
        hafl_lowrank_add(svd, 1.0, g->mbt[m] + j * d_out, g->ma[m] + j * d_in);
    for (size_t t = 0; t < count; t++)
        hafl_lowrank_add(svd, terms[t].c, terms[t].x, terms[t].y);
    if (hafl_lowrank_factor(svd, err, errlen) == 0) {
        rc = hafl_fold_merged_from_svd(self, m, svd);
        if (rc)
            snprintf(err, errlen, "flora: out of memory storing %s", g->layout.matrices[m].name);
    }
    hafl_lowrank_destroy(&svd);
    return rc;
}

int hafl_fold_flora(hafl_fold_t *self, char *err, size_t errlen)
{
    const hafl_layout_t *L = &self->global->layout;
    s_term_t *terms = malloc(((self->n + 1) * L->rank + 1) * sizeof(s_term_t));
    if (!terms) {
        snprintf(err, errlen, "flora: out of memory");
        return -1;
    }
    int rc = 0;
    for (uint32_t m = 0; m < L->n_matrices && rc == 0; m++) {
        size_t count = s_collect(self, m, terms);
        uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
        size_t cap = d_out < d_in ? d_out : d_in;
        if (self->global->n_merged[m] + count <= cap) {
            rc = s_append(self, m, terms, count);
            if (rc)
                snprintf(err, errlen, "flora: out of memory stacking %s", L->matrices[m].name);
        } else
            rc = s_compact(self, m, terms, count, err, errlen);
    }
    free(terms);
    if (rc == 0)
        hafl_fold_fresh_factors(self);
    return rc;
}
