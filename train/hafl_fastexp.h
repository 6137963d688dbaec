/*  hafl_fastexp: a branch-free float exp that compilers vectorise, for softmax and SiLU.

    exp(x) = 2^n exp(r) with n = round(x / ln 2) and r = x - n ln 2 (Cody-Waite split), exp(r)
    by the Cephes minimax polynomial, 2^n built in the exponent bits. Relative error is within
    2 ulp over the clamped range; inputs are clamped to [-87, 88] so the result is a normal
    float (exp(-87) = 1.6e-38 stands in for anything smaller, which no softmax or sigmoid here
    can tell from zero). NaN propagates. The rounding uses the 1.5 * 2^23 trick instead of a
    float-to-int conversion, so no input is undefined behaviour.
*/
#ifndef HAFL_FASTEXP_H
#define HAFL_FASTEXP_H

#include <stdint.h>
#include <string.h>

static inline float hafl_fastexp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float magic = 12582912.0f; //  1.5 * 2^23: adding it rounds to an integer
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f; //  ln 2, high part (exact in float)
    r = r + n * 2.12194440e-4f;     //  ln 2, low part
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23; //  low bits of t hold n; n + 127 is the exponent
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
