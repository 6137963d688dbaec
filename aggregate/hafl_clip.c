/*  hafl_clip: per-update norm bounds. See hafl_clip.h. */
#include "hafl_clip.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

//  Finite float inputs cannot overflow the double sum.
double hafl_clip_distance_sq(const float *x, const float *g, size_t count)
{
    double sq = 0.0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)x[i] - (double)g[i];
        sq += d * d;
    }
    return sq;
}

//  out = g + factor (x - g), in double, rounded once.
static void s_scale(float *out, const float *x, const float *g, size_t count, double factor)
{
    for (size_t i = 0; i < count; i++)
        out[i] = (float)((double)g[i] + factor * ((double)x[i] - (double)g[i]));
}

//  The factor that brings a delta of squared length sq to length bound, or 0 when it is
//  within the bound already.
static double s_factor(double sq, double bound)
{
    double norm = sqrt(sq);
    return norm > bound ? bound / norm : 0.0;
}

//  Whether upload up, given what it started from, has any part over the bound.
static bool s_over(const hafl_upload_t *up, const hafl_adapter_t *given, double bound)
{
    const hafl_layout_t *L = &given->layout;
    const hafl_adapter_t *x = up->adapter;
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < L->rank; k++) {
            if (!up->trained[(size_t)m * L->rank + k])
                continue;
            double sq = hafl_clip_distance_sq(hafl_adapter_b(x, m, k), hafl_adapter_b(given, m, k),
                                              L->matrices[m].d_out) +
                        hafl_clip_distance_sq(hafl_adapter_a(x, m, k), hafl_adapter_a(given, m, k),
                                              L->matrices[m].d_in);
            if (s_factor(sq, bound) > 0.0)
                return true;
        }
    size_t cells = (size_t)L->head_rows * L->head_cols;
    return s_factor(hafl_clip_distance_sq(x->head, given->head, cells), bound) > 0.0;
}

//  A copy of up's factors, scores and head with every part over the bound scaled down.
static hafl_adapter_t *s_clipped(hafl_clip_t *self, const hafl_upload_t *up,
                                 const hafl_adapter_t *given, double bound)
{
    const hafl_layout_t *L = &given->layout;
    const hafl_adapter_t *x = up->adapter;
    hafl_adapter_t *out = hafl_adapter_new(L);
    if (!out)
        return NULL;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
        memcpy(out->bt[m], x->bt[m], (size_t)L->rank * d_out * sizeof(float));
        memcpy(out->a[m], x->a[m], (size_t)L->rank * d_in * sizeof(float));
        for (uint32_t k = 0; k < L->rank; k++) {
            if (!up->trained[(size_t)m * L->rank + k])
                continue;
            const float *xb = hafl_adapter_b(x, m, k), *gb = hafl_adapter_b(given, m, k);
            const float *xa = hafl_adapter_a(x, m, k), *ga = hafl_adapter_a(given, m, k);
            double factor = s_factor(
                hafl_clip_distance_sq(xb, gb, d_out) + hafl_clip_distance_sq(xa, ga, d_in), bound);
            if (factor == 0.0)
                continue;
            s_scale(hafl_adapter_b(out, m, k), xb, gb, d_out, factor);
            s_scale(hafl_adapter_a(out, m, k), xa, ga, d_in, factor);
            self->components++;
        }
    }
    memcpy(out->score, x->score, (size_t)L->n_matrices * L->rank * sizeof(float));
    size_t cells = (size_t)L->head_rows * L->head_cols;
    double factor = s_factor(hafl_clip_distance_sq(x->head, given->head, cells), bound);
    if (factor > 0.0) {
        s_scale(out->head, x->head, given->head, cells, factor);
        self->heads++;
    } else
        memcpy(out->head, x->head, cells * sizeof(float));
    return out;
}

hafl_clip_t *hafl_clip_new(const hafl_upload_t *uploads, size_t n,
                           const hafl_adapter_t *const *given, float clip_norm)
{
    hafl_clip_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n;
    self->uploads = malloc((n + 1) * sizeof(hafl_upload_t));
    self->owned = calloc(n + 1, sizeof(hafl_adapter_t *));
    if (!self->uploads || !self->owned) {
        hafl_clip_destroy(&self);
        return NULL;
    }
    double bound = (double)clip_norm;
    for (size_t i = 0; i < n; i++) {
        self->uploads[i] = uploads[i];
        if (!s_over(&uploads[i], given[i], bound))
            continue;
        self->owned[i] = s_clipped(self, &uploads[i], given[i], bound);
        if (!self->owned[i]) {
            hafl_clip_destroy(&self);
            return NULL;
        }
        self->uploads[i].adapter = self->owned[i];
    }
    return self;
}

void hafl_clip_destroy(hafl_clip_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_clip_t *self = *self_p;
    for (size_t i = 0; self->owned && i < self->n; i++)
        hafl_adapter_destroy(&self->owned[i]);
    free(self->owned);
    free(self->uploads);
    free(self);
    *self_p = NULL;
}
