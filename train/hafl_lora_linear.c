/*  hafl_lora_linear: see hafl_lora_linear.h. Every product is one BLAS call over all N rows. */
#include "hafl_lora_linear.h"

#include <cblas.h>
#include <string.h>

void hafl_lora_linear_merge(float *weff, const float *base, const float *bt, const float *a,
                            size_t d_out, size_t d_in, size_t R, float scale)
{
    if (weff != base)
        memcpy(weff, base, d_out * d_in * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d_out, (int)d_in, (int)R, scale, bt,
                (int)d_out, a, (int)d_in, 1.0f, weff, (int)d_in);
}

void hafl_lora_linear_forward(const hafl_lora_linear_t *self, float *out, float *u,
                              const float *inp, size_t N)
{
    int n = (int)N, o = (int)self->d_out, i = (int)self->d_in, r = (int)self->R;
    //  out = x W^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o, i, 1.0f, inp, i, self->w, i, 0.0f,
                out, o);
    if (self->bt && u) //  u = x A^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, i, 1.0f, inp, i, self->a, i,
                    0.0f, u, r);
}

void hafl_lora_linear_backward(const hafl_lora_linear_t *self, float *dinp, float *dbt, float *da,
                               float *du, const float *dout, const float *inp, const float *u,
                               size_t N)
{
    int n = (int)N, o = (int)self->d_out, i = (int)self->d_in, r = (int)self->R;
    if (dinp) //  dx += dy W
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, i, o, 1.0f, dout, o, self->w, i,
                    1.0f, dinp, i);
    if (!self->bt)
        return;
    //  dbt += scale u^T dy
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, o, n, self->scale, u, r, dout, o, 1.0f,
                dbt, o);
    //  du = scale dy B = scale dy bt^T ; da += du^T x
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, o, self->scale, dout, o, self->bt, o,
                0.0f, du, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, i, n, 1.0f, du, r, inp, i, 1.0f, da, i);
}
