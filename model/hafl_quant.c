/*  hafl_quant: ggml type table and dequantisers. See hafl_quant.h for every block layout.

    Blocks are decoded from bytes at fixed offsets (never by laying a struct over file data),
    so a tensor may sit at any alignment in a mapping. Each value's arithmetic is written as
    separate statements in ggml's order so that it rounds exactly as ggml's reference decoders
    do; C only contracts a*b - c into a fused multiply-add inside one expression.
*/
#include "hafl_quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define S_QK_K 256 //  values per K-quant super-block

static const hafl_quant_traits_t s_traits[HAFL_QUANT_TYPE_LIMIT] = {
    [HAFL_QUANT_F32] = {"F32", 1, 4, true},
    [HAFL_QUANT_F16] = {"F16", 1, 2, true},
    [HAFL_QUANT_Q4_0] = {"Q4_0", 32, 18, true},
    [HAFL_QUANT_Q4_1] = {"Q4_1", 32, 20, false},
    [HAFL_QUANT_Q5_0] = {"Q5_0", 32, 22, false},
    [HAFL_QUANT_Q5_1] = {"Q5_1", 32, 24, false},
    [HAFL_QUANT_Q8_0] = {"Q8_0", 32, 34, true},
    [HAFL_QUANT_Q8_1] = {"Q8_1", 32, 36, false},
    [HAFL_QUANT_Q2_K] = {"Q2_K", S_QK_K, 84, false},
    [HAFL_QUANT_Q3_K] = {"Q3_K", S_QK_K, 110, false},
    [HAFL_QUANT_Q4_K] = {"Q4_K", S_QK_K, 144, true},
    [HAFL_QUANT_Q5_K] = {"Q5_K", S_QK_K, 176, true},
    [HAFL_QUANT_Q6_K] = {"Q6_K", S_QK_K, 210, true},
    [HAFL_QUANT_Q8_K] = {"Q8_K", S_QK_K, 292, false},
    [HAFL_QUANT_IQ2_XXS] = {"IQ2_XXS", S_QK_K, 66, false},
    [HAFL_QUANT_IQ2_XS] = {"IQ2_XS", S_QK_K, 74, false},
    [HAFL_QUANT_IQ3_XXS] = {"IQ3_XXS", S_QK_K, 98, false},
    [HAFL_QUANT_IQ1_S] = {"IQ1_S", S_QK_K, 50, false},
    [HAFL_QUANT_IQ4_NL] = {"IQ4_NL", 32, 18, false},
    [HAFL_QUANT_IQ3_S] = {"IQ3_S", S_QK_K, 110, false},
    [HAFL_QUANT_IQ2_S] = {"IQ2_S", S_QK_K, 82, false},
    [HAFL_QUANT_IQ4_XS] = {"IQ4_XS", S_QK_K, 136, false},
    [HAFL_QUANT_I8] = {"I8", 1, 1, false},
    [HAFL_QUANT_I16] = {"I16", 1, 2, false},
    [HAFL_QUANT_I32] = {"I32", 1, 4, false},
    [HAFL_QUANT_I64] = {"I64", 1, 8, false},
    [HAFL_QUANT_F64] = {"F64", 1, 8, false},
    [HAFL_QUANT_IQ1_M] = {"IQ1_M", S_QK_K, 56, false},
    [HAFL_QUANT_BF16] = {"BF16", 1, 2, true},
    [HAFL_QUANT_TQ1_0] = {"TQ1_0", S_QK_K, 54, false},
    [HAFL_QUANT_TQ2_0] = {"TQ2_0", S_QK_K, 66, false},
    [HAFL_QUANT_MXFP4] = {"MXFP4", 32, 17, false},
};

const hafl_quant_traits_t *hafl_quant_traits(uint32_t type)
{
    if (type >= HAFL_QUANT_TYPE_LIMIT || !s_traits[type].name)
        return NULL;
    return &s_traits[type];
}

const char *hafl_quant_name(uint32_t type)
{
    const hafl_quant_traits_t *t = hafl_quant_traits(type);
    return t ? t->name : "unknown";
}

int hafl_quant_bytes(uint32_t type, uint64_t n_elements, uint64_t *bytes)
{
    const hafl_quant_traits_t *t = hafl_quant_traits(type);
    if (!t || n_elements % t->block_elements != 0)
        return -1;
    uint64_t blocks = n_elements / t->block_elements;
    if (blocks > UINT64_MAX / t->block_bytes)
        return -1;
    *bytes = blocks * t->block_bytes;
    return 0;
}

static float s_f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint32_t s_bits_from_f32(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return bits;
}

float hafl_quant_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    if (exponent == 0x1f) //  infinity, or a NaN made quiet with its payload kept
        return s_f32_from_bits(sign | 0x7f800000 | (mantissa ? 0x400000 : 0) | (mantissa << 13));
    if (exponent != 0) //  normal: rebias 15 -> 127
        return s_f32_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
    if (mantissa == 0)
        return s_f32_from_bits(sign);
    //  Subnormal m * 2^-24: shift the leading one up to bit 10, which is 2^(-14 - shift).
    uint32_t shift = 0;
    while (!(mantissa & 0x400)) {
        mantissa <<= 1;
        shift++;
    }
    return s_f32_from_bits(sign | ((113 - shift) << 23) | ((mantissa & 0x3ff) << 13));
}

uint16_t hafl_quant_fp32_to_fp16(float f)
{
    uint32_t x = s_bits_from_f32(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffff;
    if (x > 0x7f800000) //  NaN
        return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff));
    if (x >= 0x477ff000) //  >= 65520, halfway past the largest half 65504: rounds to infinity
        return (uint16_t)(sign | 0x7c00);
    if (x >= 0x38800000) { //  >= 2^-14: a normal half
        uint32_t h = ((x >> 23) - 112) << 10 | ((x >> 13) & 0x3ff);
        uint32_t rest = x & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
            h++; //  a carry into the exponent is the correctly rounded result
        return (uint16_t)(sign | h);
    }
    if (x <= 0x33000000) //  <= 2^-25, half the smallest subnormal: ties to the even zero
        return sign;
    //  Subnormal: count units of 2^-24. The float is (2^23 + m) * 2^(e - 150), so the count is
    //  that significand shifted right by 126 - e (between 14 and 24 here).
    uint32_t significand = (x & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - (x >> 23);
    uint32_t h = significand >> shift;
    uint32_t rest = significand & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

float hafl_quant_bf16_to_fp32(uint16_t h)
{
    return s_f32_from_bits((uint32_t)h << 16);
}

uint16_t hafl_quant_fp32_to_bf16(float f)
{
    uint32_t x = s_bits_from_f32(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) //  NaN: keep sign and top payload, force quiet
        return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1))) >> 16);
}

static uint16_t s_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static float s_f16_at(const uint8_t *p)
{
    return hafl_quant_fp16_to_fp32(s_u16(p));
}

//  Each decoder turns `blocks` consecutive blocks at src into their values at y.

static void s_decode_f32(const uint8_t *src, uint64_t blocks, float *y)
{
    memcpy(y, src, (size_t)blocks * 4);
}

static void s_decode_f16(const uint8_t *src, uint64_t blocks, float *y)
{
    for (uint64_t i = 0; i < blocks; i++)
        y[i] = s_f16_at(src + 2 * i);
}

static void s_decode_bf16(const uint8_t *src, uint64_t blocks, float *y)
{
    for (uint64_t i = 0; i < blocks; i++)
        y[i] = hafl_quant_bf16_to_fp32(s_u16(src + 2 * i));
}

static void s_decode_q8_0(const uint8_t *src, uint64_t blocks, float *y)
{
    for (uint64_t b = 0; b < blocks; b++, src += 34, y += 32) {
        const float d = s_f16_at(src);
        const int8_t *q = (const int8_t *)(src + 2);
        for (int j = 0; j < 32; j++)
            y[j] = (float)q[j] * d;
    }
}

static void s_decode_q4_0(const uint8_t *src, uint64_t blocks, float *y)
{
    for (uint64_t b = 0; b < blocks; b++, src += 18, y += 32) {
        const float d = s_f16_at(src);
        const uint8_t *qs = src + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((qs[j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

//  Scale and min of K-quant sub-block j (0..7) from the 12 packed bytes.
static void s_k_scale_min(int j, const uint8_t *scales, uint8_t *scale, uint8_t *min)
{
    if (j < 4) {
        *scale = scales[j] & 63;
        *min = scales[j + 4] & 63;
    } else {
        *scale = (uint8_t)((scales[j + 4] & 0x0f) | (scales[j - 4] >> 6) << 4);
        *min = (uint8_t)((scales[j + 4] >> 4) | (scales[j] >> 6) << 4);
    }
}

//  One Q4_K or Q5_K super-block (they differ only by the fifth bit; qh is NULL for Q4_K).
static void s_decode_k45_block(const uint8_t *block, const uint8_t *qh, const uint8_t *qs,
                               float *y) //  y[256]
{
    const float d = s_f16_at(block);
    const float dmin = s_f16_at(block + 2);
    const uint8_t *scales = block + 4;
    for (int pair = 0; pair < 4; pair++) { //  sub-blocks 2*pair (low nibbles), 2*pair+1 (high)
        uint8_t sc, m;
        s_k_scale_min(2 * pair, scales, &sc, &m);
        const float d1 = d * (float)sc;
        const float m1 = dmin * (float)m;
        s_k_scale_min(2 * pair + 1, scales, &sc, &m);
        const float d2 = d * (float)sc;
        const float m2 = dmin * (float)m;
        const uint8_t *q = qs + 32 * pair;
        const uint8_t bit_lo = (uint8_t)(1u << (2 * pair)), bit_hi = (uint8_t)(2u << (2 * pair));
        float *y_lo = y + 64 * pair, *y_hi = y_lo + 32;
        for (int l = 0; l < 32; l++) {
            int q_lo = q[l] & 0x0f, q_hi = q[l] >> 4;
            if (qh) {
                q_lo += (qh[l] & bit_lo) ? 16 : 0;
                q_hi += (qh[l] & bit_hi) ? 16 : 0;
            }
            const float scaled_lo = d1 * (float)q_lo;
            y_lo[l] = scaled_lo - m1;
            const float scaled_hi = d2 * (float)q_hi;
            y_hi[l] = scaled_hi - m2;
        }
    }
}

static void s_decode_q4_k(const uint8_t *src, uint64_t blocks, float *y)
{
    for (uint64_t b = 0; b < blocks; b++, src += 144, y += S_QK_K)
        s_decode_k45_block(src, NULL, src + 16, y);
}

static void s_decode_q5_k(const uint8_t *src, uint64_t blocks, float *y)
{
    for (uint64_t b = 0; b < blocks; b++, src += 176, y += S_QK_K)
        s_decode_k45_block(src, src + 16, src + 48, y);
}

static void s_decode_q6_k(const uint8_t *src, uint64_t blocks, float *y)
{
    for (uint64_t b = 0; b < blocks; b++, src += 210, y += S_QK_K) {
        const float d = s_f16_at(src + 208);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = src + 64 * half;
            const uint8_t *qh = src + 128 + 32 * half;
            const int8_t *sc = (const int8_t *)(src + 192 + 8 * half);
            float *yh = y + 128 * half;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                yh[l] = d * (float)sc[is + 0] * (float)q1;
                yh[l + 32] = d * (float)sc[is + 2] * (float)q2;
                yh[l + 64] = d * (float)sc[is + 4] * (float)q3;
                yh[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

typedef void (*s_decoder_fn)(const uint8_t *src, uint64_t blocks, float *y);

static s_decoder_fn s_decoder(uint32_t type)
{
    switch (type) {
    case HAFL_QUANT_F32:
        return s_decode_f32;
    case HAFL_QUANT_F16:
        return s_decode_f16;
    case HAFL_QUANT_BF16:
        return s_decode_bf16;
    case HAFL_QUANT_Q8_0:
        return s_decode_q8_0;
    case HAFL_QUANT_Q4_0:
        return s_decode_q4_0;
    case HAFL_QUANT_Q4_K:
        return s_decode_q4_k;
    case HAFL_QUANT_Q5_K:
        return s_decode_q5_k;
    case HAFL_QUANT_Q6_K:
        return s_decode_q6_k;
    default:
        return NULL;
    }
}

int hafl_quant_dequantize(uint32_t type, const void *src, size_t src_bytes, float *dst, uint64_t n,
                          char *err, size_t errlen)
{
    const hafl_quant_traits_t *t = hafl_quant_traits(type);
    s_decoder_fn decode = s_decoder(type);
    if (!t || !decode) {
        snprintf(err, errlen, "tensor type %s (%u) cannot be dequantised", hafl_quant_name(type),
                 type);
        return -1;
    }
    uint64_t bytes;
    if (hafl_quant_bytes(type, n, &bytes) != 0) {
        snprintf(err, errlen, "%llu values are not a whole number of %s blocks of %u",
                 (unsigned long long)n, t->name, t->block_elements);
        return -1;
    }
    if (bytes != src_bytes) {
        snprintf(err, errlen, "%llu %s values take %llu bytes, given %zu", (unsigned long long)n,
                 t->name, (unsigned long long)bytes, src_bytes);
        return -1;
    }
    decode(src, n / t->block_elements, dst);
    return 0;
}

//  Little-endian 16-bit store (the encoders write unaligned bytes).
static void s_store16(uint8_t *at, uint16_t v)
{
    at[0] = (uint8_t)v;
    at[1] = (uint8_t)(v >> 8);
}

int hafl_quant_quantize(uint32_t type, const float *src, uint64_t n, void *dst, size_t dst_bytes,
                        char *err, size_t errlen)
{
    uint64_t bytes;
    if (type != HAFL_QUANT_F32 && type != HAFL_QUANT_F16 && type != HAFL_QUANT_BF16 &&
        type != HAFL_QUANT_Q8_0) {
        snprintf(err, errlen, "tensor type %s (%u) cannot be quantised from floats",
                 hafl_quant_name(type), type);
        return -1;
    }
    if (hafl_quant_bytes(type, n, &bytes) != 0 || bytes != dst_bytes) {
        snprintf(err, errlen, "%llu values do not fill %zu bytes of %s (whole blocks of %u)",
                 (unsigned long long)n, dst_bytes, hafl_quant_name(type),
                 hafl_quant_traits(type)->block_elements);
        return -1;
    }
    uint8_t *out = dst;
    if (type == HAFL_QUANT_F32) {
        memcpy(out, src, (size_t)bytes);
        return 0;
    }
    if (type == HAFL_QUANT_F16 || type == HAFL_QUANT_BF16) {
        for (uint64_t i = 0; i < n; i++)
            s_store16(out + 2 * i, type == HAFL_QUANT_F16 ? hafl_quant_fp32_to_fp16(src[i])
                                                          : hafl_quant_fp32_to_bf16(src[i]));
        return 0;
    }
    for (uint64_t b = 0; b < n / 32; b++) { //  Q8_0, as ggml's quantize_row_q8_0_ref
        const float *x = src + 32 * b;
        uint8_t *block = out + 34 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        s_store16(block, hafl_quant_fp32_to_fp16(d));
        for (int j = 0; j < 32; j++)
            block[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
    return 0;
}
