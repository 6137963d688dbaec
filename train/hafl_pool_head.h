/*  hafl_pool_head: mean pooling over each sequence, the linear classification head and the
    cross-entropy loss, forward and backward.

    Rows are packed (sequence b is rows [o_b, o_b + len_b)). pooled[b] = mean of its rows;
    logits[b][k] = head[k][C] + sum_c head[k][c] pooled[b][c] (head [K][C+1], bias last);
    probs = softmax (logits); losses[b] = -log probs[b][labels[b]]. The backward takes the
    weight of each sequence's loss in the objective (1 / batch for a mean) and accumulates
    into dinp and dhead.
*/
#ifndef HAFL_POOL_HEAD_H
#define HAFL_POOL_HEAD_H

#include <stddef.h>
#include <stdint.h>

//  pooled [B][C], logits [B][K], probs [B][K], losses [B] (zero when labels is NULL),
//  inp [N][C], lengths [B] (>= 1), head [K][C+1], labels [B] (< K) or NULL
void hafl_pool_head_forward(float *pooled, float *logits, float *probs, float *losses,
                            const float *inp, const uint32_t *lengths, const float *head,
                            const uint32_t *labels, size_t B, size_t C, size_t K);
//  dinp [N][C] (+=), dhead [K][C+1] (+=), pooled [B][C], probs [B][K], labels [B],
//  lengths [B], head [K][C+1], dloss: d objective / d losses[b]
void hafl_pool_head_backward(float *dinp, float *dhead, const float *pooled, const float *probs,
                             const uint32_t *labels, const uint32_t *lengths, const float *head,
                             float dloss, size_t B, size_t C, size_t K);

#endif
