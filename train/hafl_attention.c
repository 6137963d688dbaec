/*  hafl_attention: see hafl_attention.h.

    For one sequence and head with Q [T][hs], K [T][hs], V [T][hs] (strided views of the packed
    rows) and s = 1 / sqrt(hs):
        S = s Q K^T (causal), P = softmax_rows (S), O = P V
    backward:
        dP = dO V^T, dV += P^T dO, dS = P * (dP - rowsum (P * dP)),
        dQ += s dS K, dK += s dS^T Q
    Row block [r0, r1) only touches keys [0, r1), which is what makes the products causal.
*/
#include "hafl_attention.h"

#include "hafl_fastexp.h"
#include "hafl_simd.h"

#include <cblas.h>
#include <math.h>

//  Rows per block: small enough to skip most of the upper triangle, large enough for BLAS.
#define S_BLOCK 32

size_t hafl_attention_att_floats(const uint32_t *lengths, size_t B, size_t nh)
{
    size_t total = 0;
    for (size_t b = 0; b < B; b++)
        total += nh * (size_t)lengths[b] * lengths[b];
    return total;
}

//  Softmax of rows [r0, r1) of P [T][T] over keys [0, r1), causal: keys <= t count, the rest of
//  the block becomes zero. The scores arrive already scaled by 1 / sqrt(hs). Max and sum use
//  eight partial accumulators so the loops vectorise.
HAFL_SIMD_CLONES static void s_softmax_rows(float *P, size_t T, size_t r0, size_t r1)
{
    for (size_t t = r0; t < r1; t++) {
        float *row = P + t * T; //  [T], keys [0, r1) valid
        size_t n = t + 1, s = 0;
        float part[8];
        for (int j = 0; j < 8; j++)
            part[j] = -INFINITY;
        for (; s + 8 <= n; s += 8)
            for (int j = 0; j < 8; j++)
                part[j] = row[s + j] > part[j] ? row[s + j] : part[j];
        float max = -INFINITY;
        for (int j = 0; j < 8; j++)
            max = part[j] > max ? part[j] : max;
        for (; s < n; s++)
            max = row[s] > max ? row[s] : max;
        for (s = 0; s < n; s++)
            row[s] = hafl_fastexp(row[s] - max);
        for (int j = 0; j < 8; j++)
            part[j] = 0.0f;
        for (s = 0; s + 8 <= n; s += 8)
            for (int j = 0; j < 8; j++)
                part[j] += row[s + j];
        float sum = 0.0f;
        for (int j = 0; j < 8; j++)
            sum += part[j];
        for (; s < n; s++)
            sum += row[s];
        float inv = 1.0f / sum;
        for (s = 0; s < n; s++)
            row[s] *= inv;
        for (s = n; s < r1; s++)
            row[s] = 0.0f;
    }
}

void hafl_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                            const uint32_t *lengths, size_t B, size_t C, size_t KV, size_t nh,
                            size_t nkv)
{
    size_t hs = C / nh, kv_mul = nh / nkv;
    float scale = 1.0f / sqrtf((float)hs);
    size_t o = 0; //  first row of sequence b
    for (size_t b = 0; b < B; b++) {
        size_t T = lengths[b];
        for (size_t h = 0; h < nh; h++) {
            const float *qh = q + o * C + h * hs;             //  [T][hs] stride C
            const float *kh = k + o * KV + (h / kv_mul) * hs; //  [T][hs] stride KV
            const float *vh = v + o * KV + (h / kv_mul) * hs; //  [T][hs] stride KV
            float *oh = out + o * C + h * hs;                 //  [T][hs] stride C
            float *P = att + h * T * T;                       //  [T][T]
            for (size_t r0 = 0; r0 < T; r0 += S_BLOCK) {
                size_t r1 = r0 + S_BLOCK < T ? r0 + S_BLOCK : T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)r1,
                            (int)hs, scale, qh + r0 * C, (int)C, kh, (int)KV, 0.0f, P + r0 * T,
                            (int)T);
                s_softmax_rows(P, T, r0, r1);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)hs,
                            (int)r1, 1.0f, P + r0 * T, (int)T, vh, (int)KV, 0.0f, oh + r0 * C,
                            (int)C);
            }
        }
        att += nh * T * T;
        o += T;
    }
}

//  dS = P * (dP - rowsum (P * dP)) in place of dP, rows [r0, r1) of [T][T], causal; zero past
//  the diagonal within the block.
HAFL_SIMD_CLONES static void s_softmax_backward_rows(float *dS, const float *P, size_t T, size_t r0,
                                                     size_t r1)
{
    for (size_t t = r0; t < r1; t++) {
        const float *p = P + t * T; //  [T]
        float *d = dS + t * T;      //  [T]
        float dot = 0.0f;
        for (size_t s = 0; s <= t; s++)
            dot += p[s] * d[s];
        for (size_t s = 0; s <= t; s++)
            d[s] = p[s] * (d[s] - dot);
        for (size_t s = t + 1; s < r1; s++)
            d[s] = 0.0f;
    }
}

void hafl_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                             const float *q, const float *k, const float *v, const float *att,
                             const uint32_t *lengths, size_t B, size_t C, size_t KV, size_t nh,
                             size_t nkv)
{
    size_t hs = C / nh, kv_mul = nh / nkv;
    float scale = 1.0f / sqrtf((float)hs);
    size_t o = 0;
    for (size_t b = 0; b < B; b++) {
        size_t T = lengths[b];
        for (size_t h = 0; h < nh; h++) {
            size_t kvo = (h / kv_mul) * hs;
            const float *qh = q + o * C + h * hs;     //  [T][hs] stride C
            const float *kh = k + o * KV + kvo;       //  [T][hs] stride KV
            const float *vh = v + o * KV + kvo;       //  [T][hs] stride KV
            const float *doh = dout + o * C + h * hs; //  [T][hs] stride C
            float *dqh = dq + o * C + h * hs;         //  [T][hs] stride C
            float *dkh = dk + o * KV + kvo;           //  [T][hs] stride KV
            float *dvh = dv + o * KV + kvo;           //  [T][hs] stride KV
            const float *P = att + h * T * T;         //  [T][T]
            float *dS = scratch;                      //  [T][T]
            for (size_t r0 = 0; r0 < T; r0 += S_BLOCK) {
                size_t r1 = r0 + S_BLOCK < T ? r0 + S_BLOCK : T;
                int m = (int)(r1 - r0);
                //  dP [r0:r1][0:r1] = dO V^T
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, (int)r1, (int)hs, 1.0f,
                            doh + r0 * C, (int)C, vh, (int)KV, 0.0f, dS + r0 * T, (int)T);
                //  dV [0:r1] += P^T dO
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r1, (int)hs, m, 1.0f,
                            P + r0 * T, (int)T, doh + r0 * C, (int)C, 1.0f, dvh, (int)KV);
                s_softmax_backward_rows(dS, P, T, r0, r1);
                //  dQ [r0:r1] += scale dS K ; dK [0:r1] += scale dS^T Q
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, (int)hs, (int)r1, scale,
                            dS + r0 * T, (int)T, kh, (int)KV, 1.0f, dqh + r0 * C, (int)C);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r1, (int)hs, m, scale,
                            dS + r0 * T, (int)T, qh + r0 * C, (int)C, 1.0f, dkh, (int)KV);
            }
        }
        att += nh * T * T;
        o += T;
    }
}
