/*  hafl_rope: see hafl_rope.h. */
#include "hafl_rope.h"

#include "hafl_simd.h"

#include <math.h>

void hafl_rope_tables(float *cos_t, float *sin_t, size_t seq_len, size_t hs, float base)
{
    size_t half = hs / 2;
    for (size_t p = 0; p < seq_len; p++)
        for (size_t i = 0; i < half; i++) {
            //  llama2.c: head_dim = i % head_size (even), freq = 1 / base^(head_dim / hs)
            float freq = 1.0f / powf(base, (float)(2 * i) / (float)hs);
            float val = (float)p * freq;
            cos_t[p * half + i] = cosf(val);
            sin_t[p * half + i] = sinf(val);
        }
}

//  sign +1 rotates forward, -1 rotates back (the transpose). The second channel of pair i is
//  `stride` channels after the first: 1 for adjacent pairs (first channel 2i), hs/2 for neox
//  (first channel i).
HAFL_SIMD_CLONES static void s_rotate(float *x, const uint32_t *pos, const float *cos_t,
                                      const float *sin_t, size_t N, size_t C, size_t hs, bool neox,
                                      float sign)
{
    size_t half = hs / 2;
    size_t step = neox ? 1 : 2, stride = neox ? half : 1;
    for (size_t n = 0; n < N; n++) {
        const float *fc = cos_t + (size_t)pos[n] * half; //  [hs/2]
        const float *fs = sin_t + (size_t)pos[n] * half; //  [hs/2]
        float *row = x + n * C;                          //  [C]
        for (size_t h = 0; h < C; h += hs)
            for (size_t i = 0; i < half; i++) {
                float c = fc[i], s = sign * fs[i];
                float *p0 = row + h + step * i, *p1 = p0 + stride;
                float v0 = *p0, v1 = *p1;
                *p0 = v0 * c - v1 * s;
                *p1 = v0 * s + v1 * c;
            }
    }
}

void hafl_rope_forward(float *x, const uint32_t *pos, const float *cos_t, const float *sin_t,
                       size_t N, size_t C, size_t hs, bool neox)
{
    s_rotate(x, pos, cos_t, sin_t, N, C, hs, neox, 1.0f);
}

void hafl_rope_backward(float *dx, const uint32_t *pos, const float *cos_t, const float *sin_t,
                        size_t N, size_t C, size_t hs, bool neox)
{
    s_rotate(dx, pos, cos_t, sin_t, N, C, hs, neox, -1.0f);
}
