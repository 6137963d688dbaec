/*  test_f32le: the float32 payload loops every tensor byte goes through (messages/hafl_f32le).

    For lengths 0 to 100 (every tail length of both vector widths and a few full blocks) and
    every byte misalignment of source and destination, with the AVX2 loops and with the
    portable ones: copying reproduces the bits exactly; a NaN, +inf or -inf at any position
    makes both the copy and the check report it, and first_nonfinite names that position and
    value; the largest finite float, denormals and negative zero pass. Runs under ASan/UBSan.
*/
#include "hafl_f32le.h"
#include "hafl_test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define S_MAX_N 100

static uint32_t s_state = 2463534242u;

static float s_random_finite(void)
{
    s_state ^= s_state << 13, s_state ^= s_state >> 17, s_state ^= s_state << 5;
    switch (s_state % 8) {
    case 0:
        return FLT_MAX;
    case 1:
        return -FLT_MIN / 4; //  a negative denormal
    case 2:
        return -0.0f;
    default:
        return ((float)(s_state >> 8) / 16777216.0f - 0.5f) * 1e3f;
    }
}

//  Store a host float as the wire's little-endian bytes.
static void s_put_le(unsigned char *p, float value)
{
    uint32_t v;
    memcpy(&v, &value, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, 4);
}

typedef bool (*s_copy_fn)(void *restrict, const void *restrict, size_t);
typedef bool (*s_check_fn)(const void *, size_t);

static void s_check_lengths(const char *which, s_copy_fn copy_finite, s_check_fn all_finite)
{
    static const float specials[] = {NAN, INFINITY, -INFINITY};
    unsigned char src_buf[4 * S_MAX_N + 8], dst_buf[4 * S_MAX_N + 8];
    float values[S_MAX_N];
    for (size_t n = 0; n <= S_MAX_N; n++)
        for (size_t src_off = 0; src_off < 4; src_off++)
            for (size_t dst_off = 0; dst_off < 4; dst_off += 3) {
                unsigned char *src = src_buf + src_off, *dst = dst_buf + dst_off;
                for (size_t i = 0; i < n; i++)
                    values[i] = s_random_finite();
                for (size_t i = 0; i < n; i++)
                    s_put_le(src + 4 * i, values[i]);
                memset(dst_buf, 0xa5, sizeof dst_buf);
                CHECKF(copy_finite(dst, src, n), "%s: n %zu finite copy", which, n);
                CHECKF(memcmp(dst, values, 4 * n) == 0, "%s: n %zu bits changed", which, n);
                CHECKF(dst_buf[dst_off + 4 * n] == 0xa5, "%s: n %zu wrote past the end", which,
                       n);
                CHECKF(all_finite(src, n), "%s: n %zu finite check", which, n);
                CHECK(hafl_f32le_first_nonfinite(src, n, NULL) == n);
                //  One special value at each position in turn (all of them for short lengths).
                for (size_t at = 0; at < n; at += n < 40 ? 1 : 7)
                    for (size_t s = 0; s < 3; s++) {
                        s_put_le(src + 4 * at, specials[s]);
                        CHECKF(!copy_finite(dst, src, n), "%s: n %zu %g at %zu copied",
                               which, n, (double)specials[s], at);
                        CHECKF(!all_finite(src, n), "%s: n %zu %g at %zu passed", which,
                               n, (double)specials[s], at);
                        float bad = 0.0f;
                        CHECK(hafl_f32le_first_nonfinite(src, n, &bad) == at);
                        CHECK(isnan(specials[s]) ? isnan(bad) : bad == specials[s]);
                        s_put_le(src + 4 * at, values[at]);
                    }
            }
}

int main(void)
{
    CHECK(hafl_f32le_host_order() == (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__));
    s_check_lengths("dispatched", hafl_f32le_copy_finite, hafl_f32le_all_finite);
    s_check_lengths("portable", hafl_f32le_copy_finite_portable, hafl_f32le_all_finite_portable);
    printf("test_f32le: all passed\n");
    return 0;
}
