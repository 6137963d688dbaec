/*  hafl_rope: rotary position embedding, in llama2.c's arithmetic.

    Within each head of size hs, pair i (0 <= i < hs/2) is rotated by the angle
    pos * base^(-2i/hs). Which channels form pair i depends on the architecture:
      - adjacent (llama, llama2.c, GGUF's "normal" RoPE): channels (2i, 2i+1);
      - neox (qwen2, GGUF's "NeoX" RoPE): channels (i, i + hs/2).
    The tables hold cos and sin of the angle per position and pair, computed in llama2.c's float
    expressions (base 10000 there), so results match its runner bit for bit.
    Rotation is applied in place; the backward rotates gradients by the opposite angle, also in
    place (the transpose of a rotation), so dout goes in and dinp comes out of the same buffer.
*/
#ifndef HAFL_ROPE_H
#define HAFL_ROPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  cos_t, sin_t [seq_len][hs/2]; base > 1 (10000 for llama2.c models)
void hafl_rope_tables(float *cos_t, float *sin_t, size_t seq_len, size_t hs, float base);
//  x [N][C] rotated in place, C a multiple of hs; pos [N] row positions < seq_len;
//  cos_t, sin_t [seq_len][hs/2]; neox picks the pairing (see above)
void hafl_rope_forward(float *x, const uint32_t *pos, const float *cos_t, const float *sin_t,
                       size_t N, size_t C, size_t hs, bool neox);
//  dx [N][C]: gradient wrt the rotated output on entry, wrt the input on return
void hafl_rope_backward(float *dx, const uint32_t *pos, const float *cos_t, const float *sin_t,
                        size_t N, size_t C, size_t hs, bool neox);

#endif
