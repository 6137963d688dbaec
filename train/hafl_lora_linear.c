/*  hafl_lora_linear: see hafl_lora_linear.h. Every product is one BLAS call over all N rows. */
#include "hafl_lora_linear.h"

#include <cblas.h>

void hafl_lora_linear_forward(const hafl_lora_linear_t *self, float *out, float *u,
                              const float *inp, size_t N)
{
    int n = (int)N, o = (int)self->d_out, i = (int)self->d_in, r = (int)self->R;
    //  out = x W^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o, i, 1.0f, inp, i, self->w, i, 0.0f,
                out, o);
    if (!self->bt)
        return;
    //  u = x A^T ; out += scale u B^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, i, 1.0f, inp, i, self->a, i, 0.0f, u,
                r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, o, r, self->scale, u, r, self->bt, o,
                1.0f, out, o);
}

void hafl_lora_linear_backward(const hafl_lora_linear_t *self, float *dinp, float *dbt, float *da,
                               float *du, const float *dout, const float *inp, const float *u,
                               size_t N)
{
    int n = (int)N, o = (int)self->d_out, i = (int)self->d_in, r = (int)self->R;
    if (dinp) //  dx += dy W
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, i, o, 1.0f, dout, o, self->w, i,
                    1.0f, dinp, i);
    if (!self->bt || (!dinp && !dbt))
        return;
    if (dbt) //  dbt += scale u^T dy
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, o, n, self->scale, u, r, dout, o,
                    1.0f, dbt, o);
    //  du = scale dy B = scale dy bt^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, o, self->scale, dout, o, self->bt, o,
                0.0f, du, r);
    if (da) //  da += du^T x
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, i, n, 1.0f, du, r, inp, i, 1.0f, da,
                    i);
    if (dinp) //  dx += du A
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, i, r, 1.0f, du, r, self->a, i,
                    1.0f, dinp, i);
}
