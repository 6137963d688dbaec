/*  hafl_rmsnorm: RMSNorm over the channels of packed rows, forward and backward.

    out[n][c] = weight[c] * (rstd[n] * inp[n][c]),  rstd[n] = 1 / sqrt(mean_c inp[n][c]^2 + eps),
    computed in the same float order as llama2.c (whose eps is 1e-5; a GGUF file states its own).
    Backward accumulates into dinp (callers zero it or pass a residual gradient to add to).
*/
#ifndef HAFL_RMSNORM_H
#define HAFL_RMSNORM_H

#include <stddef.h>

//  out [N][C], rstd [N] (saved for backward), inp [N][C], weight [C]; eps > 0
void hafl_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, size_t N,
                          size_t C, float eps);
//  dinp [N][C] (+=), dout [N][C], inp [N][C], weight [C], rstd [N]
void hafl_rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *weight,
                           const float *rstd, size_t N, size_t C);

#endif
