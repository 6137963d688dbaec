/*  hafl_lora_linear: a frozen linear map with a rank-R LoRA adapter, forward and backward.

    y = x W^T + scale * (x A^T) B^T over packed rows x [N][d_in], with W [d_out][d_in] the frozen
    weight (including any merged terms), the adapter stored component-major as in
    hafl_adapter_t: bt = B^T [R][d_out], a = A [R][d_in]. The forward saves u = x A^T [N][R].
    The backward gives gradients for the factors and for the input, never for W:
        dbt += scale u^T dy,  du = scale dy B,  da += du^T x,  dx += dy W + du A
    A view with bt == NULL is a plain frozen linear map (no adapter in the forward).
*/
#ifndef HAFL_LORA_LINEAR_H
#define HAFL_LORA_LINEAR_H

#include <stddef.h>

typedef struct {
    const float *w;  //  [d_out][d_in]
    const float *bt; //  [R][d_out], or NULL: no adapter
    const float *a;  //  [R][d_in]
    size_t d_out;
    size_t d_in;
    size_t R;
    float scale; //  alpha / R
} hafl_lora_linear_t;

//  out [N][d_out], u [N][R] (saved; unused without adapter), inp [N][d_in]
void hafl_lora_linear_forward(const hafl_lora_linear_t *self, float *out, float *u,
                              const float *inp, size_t N);
//  dinp [N][d_in] (+=, or NULL when no input gradient is needed), dbt [R][d_out] and
//  da [R][d_in] (+=, or both NULL for a frozen adapter), du [N][R] scratch, dout [N][d_out],
//  inp [N][d_in], u [N][R] from the forward
void hafl_lora_linear_backward(const hafl_lora_linear_t *self, float *dinp, float *dbt, float *da,
                               float *du, const float *dout, const float *inp, const float *u,
                               size_t N);

#endif
