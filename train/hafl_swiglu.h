/*  hafl_swiglu: the SwiGLU gate of the llama feed-forward, elementwise.

    out = silu (h1) * h3 with silu (x) = x sigmoid (x) = x / (1 + exp (-x)), in llama2.c's
    float order, exp being hafl_fastexp. The forward saves sigmoid (h1) so the backward needs
    no exponential. Backward accumulates into dh1 and dh3.
*/
#ifndef HAFL_SWIGLU_H
#define HAFL_SWIGLU_H

#include <stddef.h>

//  out [n], sig [n] (saved sigmoid (h1)), h1 [n], h3 [n] (n = N * hidden)
void hafl_swiglu_forward(float *out, float *sig, const float *h1, const float *h3, size_t n);
//  dh1 [n] (+=), dh3 [n] (+=), dout [n], h1 [n], h3 [n], sig [n] from the forward
void hafl_swiglu_backward(float *dh1, float *dh3, const float *dout, const float *h1,
                          const float *h3, const float *sig, size_t n);

#endif
