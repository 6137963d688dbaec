/*  hafl_swiglu: see hafl_swiglu.h.

    With g = sigmoid (h1): d silu (h1) / d h1 = g (1 + h1 (1 - g)).
*/
#include "hafl_swiglu.h"

#include "hafl_fastexp.h"
#include "hafl_simd.h"

HAFL_SIMD_CLONES void hafl_swiglu_forward(float *out, float *sig, const float *h1, const float *h3,
                                          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float val = h1[i];
        float g = 1.0f / (1.0f + hafl_fastexp(-val));
        sig[i] = g;
        val *= g;
        val *= h3[i];
        out[i] = val;
    }
}

HAFL_SIMD_CLONES void hafl_swiglu_backward(float *dh1, float *dh3, const float *dout,
                                           const float *h1, const float *h3, const float *sig,
                                           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = h1[i], g = sig[i];
        dh1[i] += dout[i] * h3[i] * g * (1.0f + x * (1.0f - g));
        dh3[i] += dout[i] * x * g;
    }
}
