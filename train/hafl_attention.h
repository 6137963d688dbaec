/*  hafl_attention: grouped-query causal self-attention over packed sequences.

    Rows are packed: sequence b occupies rows [o_b, o_b + len_b) of q, k, v and out, with
    o_b = sum of the earlier lengths; a query only sees keys of its own sequence at positions
    <= its own, so padding never exists here. C is the width of q and out (nh heads of hs =
    C / nh, which need not be the model width). Head h reads key/value head
    h / (nh / nkv), as llama2.c does. Scores are (q . k) / sqrt(hs) (the scale applied inside
    the product), softmax as max, exp (hafl_fastexp), sum, times 1 / sum. The products run
    through BLAS in row blocks, so only the causal part of each score matrix is computed (plus
    the diagonal blocks).

    att saves the probabilities for the backward: sequence b's block is [nh][len_b][len_b]
    (row-major; entries above the diagonal are unspecified and never read), the blocks one
    after another; its size is hafl_attention_att_floats. Backward accumulates into dq, dk, dv.
*/
#ifndef HAFL_ATTENTION_H
#define HAFL_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

//  Floats of att for these lengths [B] and nh heads.
size_t hafl_attention_att_floats(const uint32_t *lengths, size_t B, size_t nh);

//  out [N][C], att [see above], q [N][C], k [N][KV], v [N][KV], lengths [B]
void hafl_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                            const uint32_t *lengths, size_t B, size_t C, size_t KV, size_t nh,
                            size_t nkv);
//  dq [N][C] (+=), dk [N][KV] (+=), dv [N][KV] (+=), scratch [max len_b][max len_b],
//  dout [N][C], q, k, v, att as saved by the forward, lengths [B]
void hafl_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                             const float *q, const float *k, const float *v, const float *att,
                             const uint32_t *lengths, size_t B, size_t C, size_t KV, size_t nh,
                             size_t nkv);

#endif
