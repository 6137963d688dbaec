/*  hafl_swiglu: the SwiGLU gate of the llama feed-forward, elementwise.

    out = silu (h1) * h3 with silu (x) = x / (1 + exp (-x)) in llama2.c's float order, exp
    being hafl_fastexp.
    Backward accumulates into dh1 and dh3.
*/
#ifndef HAFL_SWIGLU_H
#define HAFL_SWIGLU_H

#include <stddef.h>

//  out [n], h1 [n], h3 [n] (n = N * hidden)
void hafl_swiglu_forward(float *out, const float *h1, const float *h3, size_t n);
//  dh1 [n] (+=), dh3 [n] (+=), dout [n], h1 [n], h3 [n]
void hafl_swiglu_backward(float *dh1, float *dh3, const float *dout, const float *h1,
                          const float *h3, size_t n);

#endif
