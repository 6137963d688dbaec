/*  hafl_lora_linear: a frozen linear map with a rank-R LoRA adapter, forward and backward.

    y = x W^T over packed rows x [N][d_in], where W [d_out][d_in] is the effective weight
        W = W0 + sum_j mb_j ma_j^T + scale * B A
    (frozen base, merged terms, adapter), built by the caller whenever the adapter changes
    (hafl_lora_linear_merge). Folding the adapter into W costs one rank-R update per matrix
    and step instead of two thin products per row block, and the input gradient dy W then
    includes the adapter's path exactly: dx = dy W0 + scale (dy B) A.
    The adapter, stored component-major as in hafl_adapter_t (bt = B^T [R][d_out],
    a = A [R][d_in]), is named in the view only when its factors train; the forward then saves
    u = x A^T [N][R] and the backward gives their gradients, never W's:
        dbt += scale u^T dy,  du = scale dy B,  da += du^T x,  dx += dy W
*/
#ifndef HAFL_LORA_LINEAR_H
#define HAFL_LORA_LINEAR_H

#include <stddef.h>

typedef struct {
    const float *w;  //  [d_out][d_in] effective weight (base + merged + scale B A)
    const float *bt; //  [R][d_out], or NULL: no factor gradients wanted
    const float *a;  //  [R][d_in]
    size_t d_out;
    size_t d_in;
    size_t R;
    float scale; //  alpha / R
} hafl_lora_linear_t;

//  weff [d_out][d_in] = base [d_out][d_in] + scale * bt^T a (bt [R][d_out], a [R][d_in]).
void hafl_lora_linear_merge(float *weff, const float *base, const float *bt, const float *a,
                            size_t d_out, size_t d_in, size_t R, float scale);
//  out [N][d_out], u [N][R] (saved when the view has factors), inp [N][d_in]
void hafl_lora_linear_forward(const hafl_lora_linear_t *self, float *out, float *u,
                              const float *inp, size_t N);
//  dinp [N][d_in] (+=, or NULL when no input gradient is needed), dbt [R][d_out] and
//  da [R][d_in] (+=; used when the view has factors), du [N][R] scratch, dout [N][d_out],
//  inp [N][d_in], u [N][R] from the forward
void hafl_lora_linear_backward(const hafl_lora_linear_t *self, float *dinp, float *dbt, float *da,
                               float *du, const float *dout, const float *inp, const float *u,
                               size_t N);

#endif
