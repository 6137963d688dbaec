/*  hafl_f32le: copy and check little-endian float32 payloads. See hafl_f32le.h. */
#include "hafl_f32le.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define S_HAVE_AVX2_PATH 1
#include <immintrin.h>
#endif

#define S_NONFINITE 0x7f800000u //  smallest magnitude bits of inf / NaN
#define S_MAGNITUDE 0x7fffffffu

static inline uint32_t s_load_bits(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint32_t s_max(uint32_t x, uint32_t y)
{
    return x > y ? x : y;
}

//  Portable loops: the 16-lane inner block has a fixed trip count, so compilers vectorise it.
static bool s_copy_portable(unsigned char *restrict d, const unsigned char *restrict s, size_t n)
{
    uint32_t top[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t j = 0; j < 16; j++) {
            uint32_t v = s_load_bits(s + 4 * (i + j));
            top[j] = s_max(top[j], v & S_MAGNITUDE);
            memcpy(d + 4 * (i + j), &v, 4);
        }
    for (; i < n; i++) {
        uint32_t v = s_load_bits(s + 4 * i);
        top[0] = s_max(top[0], v & S_MAGNITUDE);
        memcpy(d + 4 * i, &v, 4);
    }
    uint32_t all = 0;
    for (size_t j = 0; j < 16; j++)
        all = s_max(all, top[j]);
    return all < S_NONFINITE;
}

static bool s_check_portable(const unsigned char *s, size_t n)
{
    uint32_t top[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t j = 0; j < 16; j++)
            top[j] = s_max(top[j], s_load_bits(s + 4 * (i + j)) & S_MAGNITUDE);
    for (; i < n; i++)
        top[0] = s_max(top[0], s_load_bits(s + 4 * i) & S_MAGNITUDE);
    uint32_t all = 0;
    for (size_t j = 0; j < 16; j++)
        all = s_max(all, top[j]);
    return all < S_NONFINITE;
}

#ifdef S_HAVE_AVX2_PATH
//  AVX2: 16 floats per step in two 256-bit lanes (copy), 32 per step in four (check), so
//  the loads of one step do not wait on the maximum of the step before.
__attribute__((target("avx2"))) static uint32_t s_reduce(__m256i top)
{
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, top);
    uint32_t all = 0;
    for (int j = 0; j < 8; j++)
        all = s_max(all, lanes[j]);
    return all;
}

__attribute__((target("avx2"))) static bool s_copy_avx2(unsigned char *restrict d,
                                                       const unsigned char *restrict s, size_t n)
{
    const __m256i mask = _mm256_set1_epi32((int)S_MAGNITUDE);
    __m256i t0 = _mm256_setzero_si256(), t1 = t0, t2 = t0, t3 = t0;
    uint32_t all = 0;
    size_t i = 0;
    //  Single floats until the destination is 32-byte aligned (when it can be), so the wide
    //  stores below never straddle a cache line.
    for (; i < n && ((uintptr_t)(d + 4 * i) & 31) != 0; i++) {
        uint32_t v = s_load_bits(s + 4 * i);
        all = s_max(all, v & S_MAGNITUDE);
        memcpy(d + 4 * i, &v, 4);
    }
    for (; i + 32 <= n; i += 32) {
        const unsigned char *p = s + 4 * i;
        unsigned char *q = d + 4 * i;
        __m256i v0 = _mm256_loadu_si256((const __m256i *)p);
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(p + 32));
        __m256i v2 = _mm256_loadu_si256((const __m256i *)(p + 64));
        __m256i v3 = _mm256_loadu_si256((const __m256i *)(p + 96));
        _mm256_storeu_si256((__m256i *)q, v0);
        _mm256_storeu_si256((__m256i *)(q + 32), v1);
        _mm256_storeu_si256((__m256i *)(q + 64), v2);
        _mm256_storeu_si256((__m256i *)(q + 96), v3);
        t0 = _mm256_max_epu32(t0, _mm256_and_si256(v0, mask));
        t1 = _mm256_max_epu32(t1, _mm256_and_si256(v1, mask));
        t2 = _mm256_max_epu32(t2, _mm256_and_si256(v2, mask));
        t3 = _mm256_max_epu32(t3, _mm256_and_si256(v3, mask));
    }
    all = s_max(all, s_reduce(_mm256_max_epu32(_mm256_max_epu32(t0, t1), _mm256_max_epu32(t2, t3))));
    for (; i < n; i++) {
        uint32_t v = s_load_bits(s + 4 * i);
        all = s_max(all, v & S_MAGNITUDE);
        memcpy(d + 4 * i, &v, 4);
    }
    return all < S_NONFINITE;
}

__attribute__((target("avx2"))) static bool s_check_avx2(const unsigned char *s, size_t n)
{
    const __m256i mask = _mm256_set1_epi32((int)S_MAGNITUDE);
    __m256i t0 = _mm256_setzero_si256(), t1 = t0, t2 = t0, t3 = t0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const unsigned char *p = s + 4 * i;
        t0 = _mm256_max_epu32(t0, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)p), mask));
        t1 = _mm256_max_epu32(t1,
                              _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 32)), mask));
        t2 = _mm256_max_epu32(t2,
                              _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 64)), mask));
        t3 = _mm256_max_epu32(t3,
                              _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 96)), mask));
    }
    uint32_t all = s_reduce(_mm256_max_epu32(_mm256_max_epu32(t0, t1), _mm256_max_epu32(t2, t3)));
    for (; i < n; i++)
        all = s_max(all, s_load_bits(s + 4 * i) & S_MAGNITUDE);
    return all < S_NONFINITE;
}

static bool s_avx2(void)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}
#endif

bool hafl_f32le_copy_finite(void *restrict dst, const void *restrict src, size_t n)
{
#ifdef S_HAVE_AVX2_PATH
    if (s_avx2())
        return s_copy_avx2(dst, src, n);
#endif
    return s_copy_portable(dst, src, n);
}

bool hafl_f32le_all_finite(const void *src, size_t n)
{
#ifdef S_HAVE_AVX2_PATH
    if (s_avx2())
        return s_check_avx2(src, n);
#endif
    return s_check_portable(src, n);
}

size_t hafl_f32le_first_nonfinite(const void *src, size_t n, float *value)
{
    const unsigned char *s = src;
    size_t i = 0;
    uint32_t v = 0;
    for (; i < n; i++) {
        v = s_load_bits(s + 4 * i);
        if ((v & S_MAGNITUDE) >= S_NONFINITE)
            break;
    }
    if (value) {
        float f = 0.0f;
        if (i < n)
            memcpy(&f, &v, 4);
        *value = f;
    }
    return i;
}

bool hafl_f32le_copy_finite_portable(void *restrict dst, const void *restrict src, size_t n)
{
    return s_copy_portable(dst, src, n);
}

bool hafl_f32le_all_finite_portable(const void *src, size_t n)
{
    return s_check_portable(src, n);
}

bool hafl_f32le_host_order(void)
{
    return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
}
