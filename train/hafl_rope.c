/*  hafl_rope: see hafl_rope.h. */
#include "hafl_rope.h"

#include "hafl_simd.h"

#include <math.h>

void hafl_rope_tables(float *cos_t, float *sin_t, size_t seq_len, size_t hs)
{
    size_t half = hs / 2;
    for (size_t p = 0; p < seq_len; p++)
        for (size_t i = 0; i < half; i++) {
            //  llama2.c: head_dim = i % head_size (even), freq = 1 / 10000^(head_dim / hs)
            float freq = 1.0f / powf(10000.0f, (float)(2 * i) / (float)hs);
            float val = (float)p * freq;
            cos_t[p * half + i] = cosf(val);
            sin_t[p * half + i] = sinf(val);
        }
}

//  sign +1 rotates forward, -1 rotates back (the transpose)
HAFL_SIMD_CLONES static void s_rotate(float *x, const uint32_t *pos, const float *cos_t,
                                      const float *sin_t, size_t N, size_t C, size_t hs, float sign)
{
    size_t half = hs / 2;
    for (size_t n = 0; n < N; n++) {
        const float *fc = cos_t + (size_t)pos[n] * half; //  [hs/2]
        const float *fs = sin_t + (size_t)pos[n] * half; //  [hs/2]
        float *row = x + n * C;                          //  [C]
        for (size_t h = 0; h < C; h += hs)
            for (size_t i = 0; i < half; i++) {
                float c = fc[i], s = sign * fs[i];
                float v0 = row[h + 2 * i], v1 = row[h + 2 * i + 1];
                row[h + 2 * i] = v0 * c - v1 * s;
                row[h + 2 * i + 1] = v0 * s + v1 * c;
            }
    }
}

void hafl_rope_forward(float *x, const uint32_t *pos, const float *cos_t, const float *sin_t,
                       size_t N, size_t C, size_t hs)
{
    s_rotate(x, pos, cos_t, sin_t, N, C, hs, 1.0f);
}

void hafl_rope_backward(float *dx, const uint32_t *pos, const float *cos_t, const float *sin_t,
                        size_t N, size_t C, size_t hs)
{
    s_rotate(dx, pos, cos_t, sin_t, N, C, hs, -1.0f);
}
