/*  hafl_rope: rotary position embedding exactly as llama2.c applies it.

    Within each head of size hs, channel pairs (2i, 2i+1) are rotated by the angle
    pos * 10000^(-2i/hs); the tables hold cos and sin of that angle per position and pair,
    computed in llama2.c's float expressions so results match its runner bit for bit.
    Rotation is applied in place; the backward rotates gradients by the opposite angle, also in
    place (the transpose of a rotation), so dout goes in and dinp comes out of the same buffer.
*/
#ifndef HAFL_ROPE_H
#define HAFL_ROPE_H

#include <stddef.h>
#include <stdint.h>

//  cos_t, sin_t [seq_len][hs/2]
void hafl_rope_tables(float *cos_t, float *sin_t, size_t seq_len, size_t hs);
//  x [N][C] rotated in place, C a multiple of hs; pos [N] row positions < seq_len;
//  cos_t, sin_t [seq_len][hs/2]
void hafl_rope_forward(float *x, const uint32_t *pos, const float *cos_t, const float *sin_t,
                       size_t N, size_t C, size_t hs);
//  dx [N][C]: gradient wrt the rotated output on entry, wrt the input on return
void hafl_rope_backward(float *dx, const uint32_t *pos, const float *cos_t, const float *sin_t,
                        size_t N, size_t C, size_t hs);

#endif
