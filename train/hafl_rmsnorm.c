/*  hafl_rmsnorm: see hafl_rmsnorm.h.

    With r = (mean x^2 + eps)^(-1/2) and y_i = w_i r x_i:
        dx_i = r w_i dy_i - r^3 x_i / C * sum_j w_j dy_j x_j
*/
#include "hafl_rmsnorm.h"

#include "hafl_simd.h"

#include <math.h>

HAFL_SIMD_CLONES void hafl_rmsnorm_forward(float *out, float *rstd, const float *inp,
                                           const float *weight, size_t N, size_t C, float eps)
{
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C; //  [C]
        float *y = out + n * C;       //  [C]
        float ss = 0.0f;
        for (size_t c = 0; c < C; c++)
            ss += x[c] * x[c];
        ss /= (float)C;
        ss += eps;
        ss = 1.0f / sqrtf(ss);
        for (size_t c = 0; c < C; c++)
            y[c] = weight[c] * (ss * x[c]);
        rstd[n] = ss;
    }
}

HAFL_SIMD_CLONES void hafl_rmsnorm_backward(float *dinp, const float *dout, const float *inp,
                                            const float *weight, const float *rstd, size_t N,
                                            size_t C)
{
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;   //  [C]
        const float *dy = dout + n * C; //  [C]
        float *dx = dinp + n * C;       //  [C]
        float r = rstd[n];
        float dot = 0.0f; //  sum_j w_j dy_j x_j
        for (size_t c = 0; c < C; c++)
            dot += weight[c] * dy[c] * x[c];
        float k = r * r * r * dot / (float)C;
        for (size_t c = 0; c < C; c++)
            dx[c] += r * weight[c] * dy[c] - k * x[c];
    }
}
