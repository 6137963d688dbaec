/*  hafl_pool_head: see hafl_pool_head.h.

    dlogits = dloss (probs - onehot (label)); dhead[k] += dlogits[k] [pooled, 1];
    dpooled = head[:, :C]^T dlogits; every row of sequence b gets dpooled / len_b.
*/
#include "hafl_pool_head.h"

#include <math.h>
#include <string.h>

void hafl_pool_head_forward(float *pooled, float *logits, float *probs, float *losses,
                            const float *inp, const uint32_t *lengths, const float *head,
                            const uint32_t *labels, size_t B, size_t C, size_t K)
{
    size_t o = 0;
    for (size_t b = 0; b < B; b++) {
        size_t T = lengths[b];
        float *p = pooled + b * C; //  [C]
        memset(p, 0, C * sizeof(float));
        for (size_t t = 0; t < T; t++) {
            const float *row = inp + (o + t) * C; //  [C]
            for (size_t c = 0; c < C; c++)
                p[c] += row[c];
        }
        for (size_t c = 0; c < C; c++)
            p[c] /= (float)T;
        float *l = logits + b * K; //  [K]
        float max = -INFINITY;
        for (size_t k = 0; k < K; k++) {
            const float *hk = head + k * (C + 1); //  [C+1]
            float z = hk[C];
            for (size_t c = 0; c < C; c++)
                z += hk[c] * p[c];
            l[k] = z;
            if (z > max)
                max = z;
        }
        float *pr = probs + b * K; //  [K]
        float sum = 0.0f;
        for (size_t k = 0; k < K; k++) {
            pr[k] = expf(l[k] - max);
            sum += pr[k];
        }
        for (size_t k = 0; k < K; k++)
            pr[k] /= sum;
        losses[b] = labels ? max + logf(sum) - l[labels[b]] : 0.0f;
        o += T;
    }
}

void hafl_pool_head_backward(float *dinp, float *dhead, const float *pooled, const float *probs,
                             const uint32_t *labels, const uint32_t *lengths, const float *head,
                             float dloss, size_t B, size_t C, size_t K)
{
    size_t o = 0;
    for (size_t b = 0; b < B; b++) {
        size_t T = lengths[b];
        const float *p = pooled + b * C; //  [C]
        const float *pr = probs + b * K; //  [K]
        float dpooled_buf[64];
        //  dpooled [C] accumulated in chunks so no allocation is needed for any C
        for (size_t c0 = 0; c0 < C; c0 += 64) {
            size_t c1 = c0 + 64 < C ? c0 + 64 : C;
            memset(dpooled_buf, 0, sizeof dpooled_buf);
            for (size_t k = 0; k < K; k++) {
                float dl = dloss * (pr[k] - (k == labels[b] ? 1.0f : 0.0f));
                const float *hk = head + k * (C + 1);
                for (size_t c = c0; c < c1; c++)
                    dpooled_buf[c - c0] += hk[c] * dl;
            }
            for (size_t t = 0; t < T; t++) {
                float *row = dinp + (o + t) * C;
                for (size_t c = c0; c < c1; c++)
                    row[c] += dpooled_buf[c - c0] / (float)T;
            }
        }
        for (size_t k = 0; k < K; k++) {
            float dl = dloss * (pr[k] - (k == labels[b] ? 1.0f : 0.0f));
            float *dk = dhead + k * (C + 1); //  [C+1]
            for (size_t c = 0; c < C; c++)
                dk[c] += dl * p[c];
            dk[C] += dl;
        }
        o += T;
    }
}
