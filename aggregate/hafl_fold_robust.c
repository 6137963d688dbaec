/*  hafl_fold_robust: the coordinate-wise robust strategies, median and trimmed-mean. See
    hafl_strategy.h for the definitions users rely on and hafl_fold.h for the fold context.

    For one coordinate the values of the voters (the clients in C_k for a factor or a score,
    every upload for the head) are gathered, sorted in a total order (-0 before +0, the values
    are finite after validation), and reduced: the median, or the mean of what is left after
    dropping `cut` values at each end, summed in double in sorted order. The sorted sequence is
    the same whatever order the uploads came in, so the result is too, bit for bit.

    Shapes: one scratch vector of n floats (the values of one coordinate) and one of n indices
    (the voters of one component); nothing else is allocated per round.
*/
#include "hafl_fold.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Ascending, with -0 before +0, so equal-comparing values still have one order.
static int s_compare(const void *x_, const void *y_)
{
    float x = *(const float *)x_, y = *(const float *)y_;
    if (x < y)
        return -1;
    if (x > y)
        return 1;
    return (int)(signbit(y) != 0) - (int)(signbit(x) != 0);
}

//  Values dropped at each end for count voters: floor(trim * count), never so many that
//  nothing is left. trim is a float read from decimal text (0.35 is 0.3499999940...), so the
//  product gets a relative allowance of 1e-6, far above float rounding and far below the gap
//  to the next whole number for any count a federation can have.
static size_t s_cut(hafl_fold_robust_t rule, float trim, size_t count)
{
    if (rule != HAFL_FOLD_TRIMMED_MEAN || count < 3 || !(trim > 0.0f))
        return 0;
    double want = floor((double)trim * (double)count * (1.0 + 1e-6));
    size_t cut = want > 0.0 ? (size_t)want : 0;
    size_t most = (count - 1) / 2;
    return cut < most ? cut : most;
}

//  The robust location of v [count >= 1], sorted in place.
static float s_locate(float *v, size_t count, hafl_fold_robust_t rule, size_t cut)
{
    if (count > 1)
        qsort(v, count, sizeof(float), s_compare);
    if (rule == HAFL_FOLD_MEDIAN) {
        if (count % 2)
            return v[count / 2];
        return (float)(((double)v[count / 2 - 1] + (double)v[count / 2]) / 2.0);
    }
    double sum = 0.0;
    for (size_t j = cut; j < count - cut; j++)
        sum += (double)v[j];
    return (float)(sum / (double)(count - 2 * cut));
}

int hafl_fold_robust(hafl_fold_t *self, hafl_fold_robust_t rule, float trim, char *err,
                     size_t errlen)
{
    const hafl_layout_t *L = &self->global->layout;
    float *v = malloc((self->n + 1) * sizeof(float));
    size_t *voters = malloc((self->n + 1) * sizeof(size_t));
    if (!v || !voters) {
        free(v);
        free(voters);
        snprintf(err, errlen, "aggregate: out of memory");
        return -1;
    }
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
        for (uint32_t k = 0; k < L->rank; k++) {
            size_t count = 0;
            for (size_t i = 0; i < self->n; i++)
                if (hafl_fold_trained(self, i, m, k))
                    voters[count++] = i;
            if (count == 0)
                continue; //  next holds global's b_k, a_k and score: kept bit for bit
            size_t cut = s_cut(rule, trim, count);
            float *b = hafl_adapter_b(self->next, m, k), *a = hafl_adapter_a(self->next, m, k);
            for (uint32_t x = 0; x < d_out; x++) {
                for (size_t j = 0; j < count; j++)
                    v[j] = hafl_adapter_b(self->uploads[voters[j]].adapter, m, k)[x];
                b[x] = s_locate(v, count, rule, cut);
            }
            for (uint32_t x = 0; x < d_in; x++) {
                for (size_t j = 0; j < count; j++)
                    v[j] = hafl_adapter_a(self->uploads[voters[j]].adapter, m, k)[x];
                a[x] = s_locate(v, count, rule, cut);
            }
            size_t at = (size_t)m * L->rank + k;
            for (size_t j = 0; j < count; j++)
                v[j] = self->uploads[voters[j]].adapter->score[at];
            self->next->score[at] = s_locate(v, count, rule, cut);
        }
    }
    //  Every upload carries a head: the voters are all of P.
    size_t cells = (size_t)L->head_rows * L->head_cols;
    size_t cut = s_cut(rule, trim, self->n);
    for (size_t c = 0; c < cells; c++) {
        for (size_t i = 0; i < self->n; i++)
            v[i] = self->uploads[i].adapter->head[c];
        self->next->head[c] = s_locate(v, self->n, rule, cut);
    }
    free(v);
    free(voters);
    return 0;
}
