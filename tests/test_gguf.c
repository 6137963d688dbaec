/*  test_gguf: the GGUF reader (model/hafl_gguf), the dequantisers (model/hafl_quant), the
    writer (model/hafl_gguf_writer) and `hafl info`.

    - fp16 -> fp32 for all 65536 inputs against an independent formula (ldexp of the fields),
      and fp32 -> fp16 rounding against its definition (nearest, ties to even) and round trips;
      bf16 for all inputs.
    - Every decoded type against blocks built here: literal blocks whose values are worked out
      by hand in the comments, and seeded random blocks packed by this file's own packers (written
      from the layout description, as inverses of the decoders) whose expected values are
      computed in double from the logical scales, mins and quants. The inputs keep every product
      exact in double, so the float result must match bit for bit.
    - Writer -> reader round trips of every metadata type (scalars at their extremes, strings
      with NUL bytes, arrays of each type, empty and nested arrays) and of tensors of several
      types, at several alignments, and as GGUF version 2.
    - Malformed files: a small valid file truncated at every byte, and patched or hand-built
      files with a wrong magic, version 1, big-endian, huge counts, huge string lengths, unknown
      types, bad bools, deep nesting, duplicate keys and names, misaligned, out-of-range and
      overlapping offsets, zero and overflowing dimensions, partial blocks and bad alignments;
      each must fail with one line naming the key or tensor.
    - `hafl info` on a valid and on a bad file (exit 2, one line on stderr).
    With --asset: stories260K.gguf (through the asset lookup; exit 77 when it, stories260K.bin or
    tok512.bin is missing) has the architecture, shapes and float32 weights of stories260K.bin,
    `hafl info` describes it, hafl_checkpoint opens it with the .bin's config (but seq_len, the
    GGUF's context_length) and weights, and the tokenizer in its metadata is tok512.bin's.
*/
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_gguf.h"
#include "hafl_gguf_writer.h"
#include "hafl_quant.h"
#include "hafl_test.h"
#include "hafl_tokenizer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_tmp[512]; //  scratch folder for files and command output

//  ---------------------------------------------------------------- helpers

static uint64_t s_rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t s_rand(void)
{
    s_rng_state ^= s_rng_state >> 12;
    s_rng_state ^= s_rng_state << 25;
    s_rng_state ^= s_rng_state >> 27;
    return (uint32_t)((s_rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static uint32_t s_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float s_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

//  A growable byte string for hand-built files and encodings.
typedef struct {
    uint8_t *data;
    size_t size;
} s_bytes_t;

static void s_put(s_bytes_t *b, const void *data, size_t n)
{
    b->data = realloc(b->data, b->size + n + 1);
    CHECK(b->data);
    memcpy(b->data + b->size, data, n);
    b->size += n;
}

static void s_put_u16(s_bytes_t *b, uint16_t v)
{
    uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    s_put(b, le, 2);
}

static void s_put_u32(s_bytes_t *b, uint32_t v)
{
    s_put_u16(b, (uint16_t)v);
    s_put_u16(b, (uint16_t)(v >> 16));
}

static void s_put_u64(s_bytes_t *b, uint64_t v)
{
    s_put_u32(b, (uint32_t)v);
    s_put_u32(b, (uint32_t)(v >> 32));
}

static void s_put_str(s_bytes_t *b, const char *s)
{
    s_put_u64(b, strlen(s));
    s_put(b, s, strlen(s));
}

static void s_patch_u32(uint8_t *at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        at[i] = (uint8_t)(v >> (8 * i));
}

static void s_patch_u64(uint8_t *at, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        at[i] = (uint8_t)(v >> (8 * i));
}

//  Offset of the one GGUF string `text` (its u64 length and bytes) in data; fails if absent.
static size_t s_find_str(const uint8_t *data, size_t size, const char *text)
{
    s_bytes_t needle = {0};
    s_put_str(&needle, text);
    for (size_t i = 0; i + needle.size <= size; i++)
        if (memcmp(data + i, needle.data, needle.size) == 0) {
            free(needle.data);
            return i;
        }
    CHECKF(false, "'%s' not in the file", text);
    return 0;
}

//  Open from memory and require a refusal whose one-line reason holds want and also (if not
//  NULL).
static void s_expect_fail(const uint8_t *data, size_t size, const char *want, const char *also)
{
    char err[512] = "";
    hafl_gguf_t *g = hafl_gguf_open_memory(data, size, err, sizeof err);
    CHECKF(!g, "accepted a file that should fail with '%s'", want);
    CHECKF(err[0] && !strchr(err, '\n'), "reason '%s' is not one non-empty line", err);
    CHECKF(strstr(err, want) && (!also || strstr(err, also)), "reason '%s' lacks '%s' / '%s'", err,
           want, also ? also : "");
}

static hafl_gguf_t *s_open(const uint8_t *data, size_t size)
{
    char err[512];
    hafl_gguf_t *g = hafl_gguf_open_memory(data, size, err, sizeof err);
    CHECKF(g, "%s", err);
    return g;
}

static void s_to_memory(hafl_gguf_writer_t *w, uint8_t **out, size_t *size)
{
    char err[512];
    CHECKF(hafl_gguf_writer_to_memory(w, out, size, err, sizeof err) == 0, "%s", err);
}

static void s_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    CHECKF(f, "cannot write %s", path);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);
}

//  ---------------------------------------------------------------- floating point

//  binary16 by its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m for e = 0.
static double s_half_value(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return sign ? -v : v;
}

static void s_test_fp16(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hafl_quant_fp16_to_fp32((uint16_t)h);
        int e = (h >> 10) & 31, m = h & 1023;
        CHECKF(!!signbit(f) == !!(h & 0x8000), "sign of %04x", h);
        if (e == 31 && m == 0) {
            CHECKF(isinf(f), "%04x is infinite", h);
        } else if (e == 31) {
            //  NaN: quiet, the payload's 10 bits on top of the float's mantissa.
            CHECKF(isnan(f), "%04x is NaN", h);
            CHECKF((s_bits(f) & 0x7fffff) == (((uint32_t)m << 13) | 0x400000), "payload of %04x",
                   h);
            CHECK(hafl_quant_fp32_to_fp16(f) == (uint16_t)(h | 0x200));
        } else {
            CHECKF((double)f == s_half_value((uint16_t)h), "%04x -> %.9g, expected %.9g", h,
                   (double)f, s_half_value((uint16_t)h));
            CHECKF(hafl_quant_fp32_to_fp16(f) == h, "round trip of %04x", h);
        }
    }
    //  fp32 -> fp16 is the nearest half, ties to the even one: check against both neighbours.
    for (int i = 0; i < 2000000; i++) {
        uint32_t bits = s_rand();
        //  Mostly the half range (exponents 2^-26 .. 2^16), some of everything.
        if (i % 8)
            bits = (bits & 0x807fffff) | ((101 + s_rand() % 42) << 23);
        float x = s_float(bits);
        uint16_t h = hafl_quant_fp32_to_fp16(x);
        if (isnan(x)) {
            CHECK((h & 0x7c00) == 0x7c00 && (h & 0x3ff) && !!(h & 0x8000) == !!signbit(x));
            continue;
        }
        double ax = fabs((double)x);
        uint16_t mag = h & 0x7fff;
        CHECKF(!!(h & 0x8000) == !!signbit(x), "sign of %.9g", (double)x);
        if (ax >= 65520.0) { //  halfway past 65504 and beyond: infinity
            CHECKF(mag == 0x7c00, "%.9g -> %04x, expected infinity", (double)x, h);
            continue;
        }
        CHECKF(mag < 0x7c00, "%.9g -> %04x overflowed", (double)x, h);
        double v = s_half_value(mag);
        double below = mag > 0 ? s_half_value((uint16_t)(mag - 1)) : -1.0;
        double above = s_half_value((uint16_t)(mag + 1));
        double d = fabs(ax - v);
        CHECKF(d <= ax - below || mag == 0, "%.9g -> %04x: the half below is nearer", (double)x, h);
        CHECKF(d <= above - ax, "%.9g -> %04x: the half above is nearer", (double)x, h);
        if (d == ax - below || d == above - ax)
            CHECKF((mag & 1) == 0, "%.9g -> %04x: a tie must go to the even half", (double)x, h);
    }
    //  Named cases: ties at 1 + 2^-11 (to 1), 1 + 3*2^-11 (up), 65519 (down), 65520 (inf), the
    //  smallest subnormal, and half of it (tie to zero) and a bit more (up).
    CHECK(hafl_quant_fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);
    CHECK(hafl_quant_fp32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    CHECK(hafl_quant_fp32_to_fp16(65519.0f) == 0x7bff);
    CHECK(hafl_quant_fp32_to_fp16(65520.0f) == 0x7c00);
    CHECK(hafl_quant_fp32_to_fp16(-INFINITY) == 0xfc00);
    CHECK(hafl_quant_fp32_to_fp16(0x1p-24f) == 0x0001);
    CHECK(hafl_quant_fp32_to_fp16(0x1p-25f) == 0x0000);
    CHECK(hafl_quant_fp32_to_fp16(0x1.000002p-25f) == 0x0001);
    CHECK(hafl_quant_fp32_to_fp16(0x1.ff8p-15f) == 0x03ff); //  the largest subnormal
    CHECK(hafl_quant_fp32_to_fp16(0x1.ffcp-15f) == 0x0400); //  a tie, up into the normals
    CHECK(hafl_quant_fp32_to_fp16(-0.0f) == 0x8000);

    for (uint32_t h = 0; h < 65536; h++)
        CHECK(s_bits(hafl_quant_bf16_to_fp32((uint16_t)h)) == h << 16);
    CHECK(hafl_quant_bf16_to_fp32(0x3f80) == 1.0f && hafl_quant_bf16_to_fp32(0xc040) == -3.0f);
}

//  ---------------------------------------------------------------- quantised blocks

//  A random half with a moderate exponent (2^-10 .. 2^5) and either sign: products of it with
//  the small integers of a block stay exact in double.
static uint16_t s_rand_half(void)
{
    return (uint16_t)((s_rand() & 0x8000) | (5 + s_rand() % 16) << 10 | (s_rand() & 0x3ff));
}

static void s_decode(uint32_t type, const s_bytes_t *block, uint64_t n, float *out)
{
    char err[256];
    CHECKF(hafl_quant_dequantize(type, block->data, block->size, out, n, err, sizeof err) == 0,
           "%s", err);
}

static void s_expect_values(const char *what, const float *got, const double *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECKF(s_bits(got[i]) == s_bits((float)want[i]), "%s value %zu: %.9g, expected %.9g", what,
               i, (double)got[i], want[i]);
}

//  Q8_0: d, then 32 int8 quants.
static void s_pack_q8_0(s_bytes_t *b, uint16_t d, const int8_t *q)
{
    s_put_u16(b, d);
    s_put(b, q, 32);
}

//  Q4_0: d, then value j in the low nibble of byte j and value j+16 in its high nibble.
static void s_pack_q4_0(s_bytes_t *b, uint16_t d, const uint8_t *q)
{
    s_put_u16(b, d);
    for (int j = 0; j < 16; j++) {
        uint8_t byte = (uint8_t)(q[j] | q[j + 16] << 4);
        s_put(b, &byte, 1);
    }
}

//  The 12 bytes holding eight 6-bit scales and mins: bytes 0-3 and 4-7 hold the scales and
//  mins of sub-blocks 0-3 in their low 6 bits and the top 2 bits of those of sub-blocks 4-7 in
//  their top 2 bits; bytes 8-11 hold the low 4 bits of sub-blocks 4-7 (scale low, min high).
static void s_pack_k_scales(uint8_t *out, const uint8_t *sc, const uint8_t *m)
{
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        out[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        out[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

//  Q4_K (qh NULL) and Q5_K: d, dmin, scales, [qh], qs. Value l of sub-block s sits in
//  qs[32*(s/2) + l], low nibble for even s, high for odd; Q5_K's fifth bit is bit s of qh[l].
static void s_pack_k45(s_bytes_t *b, bool five, uint16_t d, uint16_t dmin, const uint8_t *sc,
                       const uint8_t *m, const uint8_t *q)
{
    uint8_t scales[12], qh[32] = {0}, qs[128] = {0};
    s_pack_k_scales(scales, sc, m);
    for (int s = 0; s < 8; s++)
        for (int l = 0; l < 32; l++) {
            uint8_t v = q[32 * s + l];
            qs[32 * (s / 2) + l] |= (uint8_t)((v & 15) << (s % 2 ? 4 : 0));
            if (v & 16)
                qh[l] |= (uint8_t)(1u << s);
        }
    s_put_u16(b, d);
    s_put_u16(b, dmin);
    s_put(b, scales, 12);
    if (five)
        s_put(b, qh, 32);
    s_put(b, qs, 128);
}

//  Q6_K: ql, qh, scales, d. Position r of half h (r = 32g + l) keeps its low 4 bits in
//  ql[64h + l + 32*(g%2)] (low nibble for g < 2, high for g >= 2) and its high 2 bits in bits
//  2g..2g+1 of qh[32h + l]; its scale is scales[8h + r/16]. q is stored as q + 32.
static void s_pack_q6_k(s_bytes_t *b, uint16_t d, const int8_t *sc, const int8_t *q)
{
    uint8_t ql[128] = {0}, qh[64] = {0};
    for (int p = 0; p < 256; p++) {
        int h = p / 128, r = p % 128, g = r / 32, l = r % 32;
        uint8_t v = (uint8_t)(q[p] + 32);
        ql[64 * h + l + 32 * (g % 2)] |= (uint8_t)((v & 15) << (g >= 2 ? 4 : 0));
        qh[32 * h + l] |= (uint8_t)((v >> 4) << (2 * g));
    }
    s_put(b, ql, 128);
    s_put(b, qh, 64);
    s_put(b, sc, 16);
    s_put_u16(b, d);
}

static void s_test_quant_literal(void)
{
    float y[256];
    //  Q4_0, d = 0.5 (0x3800): byte 0 = 0x1f puts 15 at value 0 and 1 at value 16:
    //  (15 - 8) * 0.5 = 3.5 and (1 - 8) * 0.5 = -3.5; the other bytes 0x88 give 0.
    s_bytes_t b = {0};
    uint8_t q4[32];
    memset(q4, 8, 32);
    q4[0] = 15, q4[16] = 1;
    s_pack_q4_0(&b, 0x3800, q4);
    CHECK(b.size == 18 && b.data[2] == 0x1f && b.data[3] == 0x88);
    s_decode(HAFL_QUANT_Q4_0, &b, 32, y);
    CHECK(y[0] == 3.5f && y[16] == -3.5f && y[1] == 0.0f && y[31] == 0.0f);
    free(b.data), b = (s_bytes_t){0};

    //  Q8_0, d = -2 (0xc000): q = -128 at 0 and 127 at 31 give 256 and -254.
    int8_t q8[32] = {0};
    q8[0] = -128, q8[31] = 127, q8[5] = 3;
    s_pack_q8_0(&b, 0xc000, q8);
    s_decode(HAFL_QUANT_Q8_0, &b, 32, y);
    CHECK(y[0] == 256.0f && y[31] == -254.0f && y[5] == -6.0f && y[1] == -0.0f);
    free(b.data), b = (s_bytes_t){0};

    //  Q4_K by hand, bytes set directly: d = 1 (0x3c00), dmin = 0.5 (0x3800). Sub-block 5
    //  (values 160..191, high nibbles of qs[64..95]) gets scale 33 = 0b10'0001 (low 4 bits in
    //  scales[9] low nibble, top 2 in scales[1] bits 6-7) and min 17 = 0b01'0001 (scales[9] high
    //  nibble, scales[5] bits 6-7). Sub-block 1 (values 32..63, high nibbles of qs[0..31]) gets
    //  scale 2 and min 3 from the low 6 bits of scales[1] and scales[5].
    uint8_t k4[144] = {0};
    k4[0] = 0x00, k4[1] = 0x3c, k4[2] = 0x00, k4[3] = 0x38;
    uint8_t *scales = k4 + 4, *qs = k4 + 16;
    scales[1] = 0x80 | 2, scales[5] = 0x40 | 3, scales[9] = 0x11;
    qs[64] = 0x90; //  value 160: q = 9 -> 1*33*9 - 0.5*17 = 288.5; value 128: q = 0
    qs[0] = 0x70;  //  value 32: q = 7 -> 1*2*7 - 0.5*3 = 12.5; value 0: 0*... - 0 = 0
    qs[95] = 0xf0; //  value 191: q = 15 -> 495 - 8.5 = 486.5
    b = (s_bytes_t){0};
    s_put(&b, k4, sizeof k4);
    s_decode(HAFL_QUANT_Q4_K, &b, 256, y);
    CHECK(y[160] == 288.5f && y[32] == 12.5f && y[0] == 0.0f && y[191] == 486.5f);
    CHECK(y[161] == -8.5f && y[33] == -1.5f && y[128] == 0.0f);
    free(b.data);

    //  Q5_K: the same scales, plus qh[0] bit 5 (sub-block 5's fifth bit at l = 0): value 160
    //  has q = 9 + 16 = 25 -> 33*25 - 8.5 = 816.5; qh[3] bit 1 makes value 35 q = 16 -> 30.5.
    uint8_t k5[176] = {0};
    memcpy(k5, k4, 16);
    k5[16 + 0] = 1 << 5, k5[16 + 3] = 1 << 1;
    memcpy(k5 + 48, qs, 128);
    b = (s_bytes_t){0};
    s_put(&b, k5, sizeof k5);
    s_decode(HAFL_QUANT_Q5_K, &b, 256, y);
    CHECK(y[160] == 816.5f && y[35] == 30.5f && y[32] == 12.5f && y[191] == 486.5f);
    free(b.data);

    //  Q6_K: d = 0.25 (0x3400). Value 200 is half 1, r = 72, g = 2, l = 8: low bits in the high
    //  nibble of ql[64 + 8], high bits in bits 4-5 of qh[32 + 8], scale scales[8 + 72/16 = 12].
    //  Stored 45 = 0b10'1101 (q = 13) with scale -3 -> 0.25 * -3 * 13 = -9.75. Every other
    //  stored value is 0 (q = -32), so value 0 (scale scales[0] = 1) is 0.25 * 1 * -32 = -8.
    uint8_t k6[210] = {0};
    k6[64 + 8] = 0xd0, k6[128 + 32 + 8] = 0x20;
    k6[192 + 0] = 1, k6[192 + 12] = (uint8_t)-3;
    k6[208] = 0x00, k6[209] = 0x34;
    b = (s_bytes_t){0};
    s_put(&b, k6, sizeof k6);
    s_decode(HAFL_QUANT_Q6_K, &b, 256, y);
    CHECK(y[200] == -9.75f && y[0] == -8.0f && y[16] == 0.0f && y[201] == 24.0f); //  -3 * -32 / 4
    free(b.data);

    //  Plain types: F16 0x3555 is 0x1.554p-2; BF16 0xbfc0 is -1.5; F32 bytes as they are.
    uint8_t plain[4] = {0x55, 0x35, 0xc0, 0xbf};
    b = (s_bytes_t){0};
    s_put(&b, plain, 2);
    s_decode(HAFL_QUANT_F16, &b, 1, y);
    CHECK(y[0] == 0x1.554p-2f);
    free(b.data), b = (s_bytes_t){0};
    s_put(&b, plain + 2, 2);
    s_decode(HAFL_QUANT_BF16, &b, 1, y);
    CHECK(y[0] == -1.5f);
    free(b.data), b = (s_bytes_t){0};
    float f = -0x1.234568p+100f;
    s_put(&b, &f, 4);
    s_decode(HAFL_QUANT_F32, &b, 1, y);
    CHECK(s_bits(y[0]) == s_bits(f));
    free(b.data);
}

static void s_test_quant_random(void)
{
    enum { S_BLOCKS = 3 };
    float y[256 * S_BLOCKS];
    double want[256 * S_BLOCKS];
    for (int round = 0; round < 400; round++) {
        s_bytes_t b = {0};
        //  Q8_0 and Q4_0, three blocks each.
        for (int k = 0; k < S_BLOCKS; k++) {
            uint16_t d = s_rand_half();
            int8_t q[32];
            for (int j = 0; j < 32; j++) {
                q[j] = (int8_t)s_rand();
                want[32 * k + j] = (double)q[j] * s_half_value(d);
            }
            s_pack_q8_0(&b, d, q);
        }
        s_decode(HAFL_QUANT_Q8_0, &b, 32 * S_BLOCKS, y);
        s_expect_values("Q8_0", y, want, 32 * S_BLOCKS);
        free(b.data), b = (s_bytes_t){0};
        for (int k = 0; k < S_BLOCKS; k++) {
            uint16_t d = s_rand_half();
            uint8_t q[32];
            for (int j = 0; j < 32; j++) {
                q[j] = (uint8_t)(s_rand() & 15);
                want[32 * k + j] = (double)(q[j] - 8) * s_half_value(d);
            }
            s_pack_q4_0(&b, d, q);
        }
        s_decode(HAFL_QUANT_Q4_0, &b, 32 * S_BLOCKS, y);
        s_expect_values("Q4_0", y, want, 32 * S_BLOCKS);
        free(b.data), b = (s_bytes_t){0};

        //  Q4_K and Q5_K: x = d * scale * q - dmin * min per sub-block of 32.
        for (int five = 0; five < 2; five++) {
            for (int k = 0; k < S_BLOCKS; k++) {
                uint16_t d = s_rand_half(), dmin = s_rand_half();
                uint8_t sc[8], m[8], q[256];
                for (int s = 0; s < 8; s++) {
                    sc[s] = (uint8_t)(s_rand() % 64), m[s] = (uint8_t)(s_rand() % 64);
                    if (round == 0) //  the extremes of every field once
                        sc[s] = (uint8_t)(s % 2 ? 63 : 0), m[s] = (uint8_t)(s % 2 ? 0 : 63);
                }
                for (int p = 0; p < 256; p++) {
                    q[p] = (uint8_t)(s_rand() % (five ? 32 : 16));
                    int s = p / 32;
                    want[256 * k + p] = s_half_value(d) * sc[s] * q[p] - s_half_value(dmin) * m[s];
                }
                s_pack_k45(&b, five, d, dmin, sc, m, q);
            }
            s_decode(five ? HAFL_QUANT_Q5_K : HAFL_QUANT_Q4_K, &b, 256 * S_BLOCKS, y);
            s_expect_values(five ? "Q5_K" : "Q4_K", y, want, 256 * S_BLOCKS);
            free(b.data), b = (s_bytes_t){0};
        }

        //  Q6_K: x = d * scale * q, a signed 8-bit scale per 16 values, q in -32..31.
        for (int k = 0; k < S_BLOCKS; k++) {
            uint16_t d = s_rand_half();
            int8_t sc[16], q[256];
            for (int s = 0; s < 16; s++)
                sc[s] = round == 0 ? (int8_t)(s % 2 ? 127 : -128) : (int8_t)s_rand();
            for (int p = 0; p < 256; p++) {
                q[p] = (int8_t)((int)(s_rand() % 64) - 32);
                want[256 * k + p] = s_half_value(d) * sc[(p / 128) * 8 + (p % 128) / 16] * q[p];
            }
            s_pack_q6_k(&b, d, sc, q);
        }
        s_decode(HAFL_QUANT_Q6_K, &b, 256 * S_BLOCKS, y);
        s_expect_values("Q6_K", y, want, 256 * S_BLOCKS);
        free(b.data), b = (s_bytes_t){0};

        //  F16: any finite bit pattern (infinities and NaNs are covered by s_test_fp16).
        for (int i = 0; i < 64; i++) {
            uint16_t h;
            do
                h = (uint16_t)s_rand();
            while ((h & 0x7c00) == 0x7c00);
            s_put_u16(&b, h);
            want[i] = s_half_value(h);
        }
        s_decode(HAFL_QUANT_F16, &b, 64, y);
        s_expect_values("F16", y, want, 64);
        free(b.data);
    }
}

//  hafl_quant_quantize: the encoders a converter uses, against hand-worked values and their
//  decoders, and its refusals.
static void s_test_quantize(void)
{
    char err[256];
    //  bfloat16: ties to even, NaN kept quiet.
    CHECK(hafl_quant_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(hafl_quant_fp32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);     //  a tie, down to even
    CHECK(hafl_quant_fp32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82); //  a tie, up to even
    CHECK(hafl_quant_fp32_to_bf16(1.0f + 0x1.8p-8f) == 0x3f81);   //  above half: up
    CHECK(hafl_quant_fp32_to_bf16(-2.0f) == 0xc000);
    uint16_t nan = hafl_quant_fp32_to_bf16(s_float(0x7f800001u)); //  a signalling NaN
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x0040));
    //  Q8_0 of one block: x = j - 16, so d = 16 / 127 and q = round (x * 127 / 16), halves
    //  away from zero as ggml's roundf.
    float x[32], back[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    uint8_t block[34];
    CHECK(hafl_quant_quantize(HAFL_QUANT_Q8_0, x, 32, block, sizeof block, err, sizeof err) == 0);
    float d = 16.0f / 127.0f;
    CHECK(block[0] == (uint8_t)hafl_quant_fp32_to_fp16(d) &&
          block[1] == (uint8_t)(hafl_quant_fp32_to_fp16(d) >> 8));
    for (int j = 0; j < 32; j++)
        CHECKF((int8_t)block[2 + j] == (int8_t)roundf(x[j] * (1.0f / d)), "q[%d] = %d", j,
               (int8_t)block[2 + j]);
    CHECK((int8_t)block[2] == -127 && (int8_t)block[2 + 16] == 0);
    CHECK(hafl_quant_dequantize(HAFL_QUANT_Q8_0, block, sizeof block, back, 32, err, sizeof err) ==
          0);
    for (int j = 0; j < 32; j++)
        CHECK(fabsf(back[j] - x[j]) <= 0.5f * d * 1.001f);
    //  All zero: d = 0 and every q 0.
    float zero[32] = {0};
    CHECK(hafl_quant_quantize(HAFL_QUANT_Q8_0, zero, 32, block, sizeof block, err, sizeof err) ==
          0);
    for (int j = 0; j < 34; j++)
        CHECK(block[j] == 0);
    //  F32 as is, F16 and BF16 through their rounding.
    uint8_t f32[16], f16[8], bf16[8];
    float four[4] = {1.0f, -0.5f, 65504.0f, 0x1p-24f};
    CHECK(hafl_quant_quantize(HAFL_QUANT_F32, four, 4, f32, 16, err, sizeof err) == 0 &&
          memcmp(f32, four, 16) == 0);
    CHECK(hafl_quant_quantize(HAFL_QUANT_F16, four, 4, f16, 8, err, sizeof err) == 0);
    CHECK(hafl_quant_quantize(HAFL_QUANT_BF16, four, 4, bf16, 8, err, sizeof err) == 0);
    for (int i = 0; i < 4; i++) {
        CHECK((uint16_t)(f16[2 * i] | f16[2 * i + 1] << 8) == hafl_quant_fp32_to_fp16(four[i]));
        CHECK((uint16_t)(bf16[2 * i] | bf16[2 * i + 1] << 8) == hafl_quant_fp32_to_bf16(four[i]));
    }
    //  Refused: a type with no encoder, a partial block, a wrong destination size.
    CHECK(hafl_quant_quantize(HAFL_QUANT_Q4_K, x, 32, block, 34, err, sizeof err) == -1 &&
          strstr(err, "Q4_K") && strstr(err, "cannot be quantised"));
    CHECK(hafl_quant_quantize(HAFL_QUANT_Q8_0, x, 31, block, 34, err, sizeof err) == -1 &&
          strstr(err, "whole blocks of 32"));
    CHECK(hafl_quant_quantize(HAFL_QUANT_F16, four, 4, f16, 7, err, sizeof err) == -1);
    //  The writer passes an encoder's refusal on, naming the tensor.
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(w);
    uint64_t dims[2] = {256, 1};
    float row[256] = {0};
    CHECK(hafl_gguf_writer_add_tensor_floats(w, "k", HAFL_QUANT_Q4_K, 2, dims, row) == -1);
    CHECKF(strstr(hafl_gguf_writer_error(w), "tensor 'k'") &&
               strstr(hafl_gguf_writer_error(w), "cannot be quantised"),
           "%s", hafl_gguf_writer_error(w));
    hafl_gguf_writer_destroy(&w);
}

static void s_test_quant_table(void)
{
    struct {
        uint32_t type;
        const char *name;
        uint32_t block, bytes;
        bool decoded;
    } table[] = {
        {HAFL_QUANT_F32, "F32", 1, 4, true},       {HAFL_QUANT_F16, "F16", 1, 2, true},
        {HAFL_QUANT_BF16, "BF16", 1, 2, true},     {HAFL_QUANT_Q8_0, "Q8_0", 32, 34, true},
        {HAFL_QUANT_Q4_0, "Q4_0", 32, 18, true},   {HAFL_QUANT_Q4_K, "Q4_K", 256, 144, true},
        {HAFL_QUANT_Q5_K, "Q5_K", 256, 176, true}, {HAFL_QUANT_Q6_K, "Q6_K", 256, 210, true},
        {HAFL_QUANT_Q2_K, "Q2_K", 256, 84, false}, {HAFL_QUANT_Q3_K, "Q3_K", 256, 110, false},
        {HAFL_QUANT_Q4_1, "Q4_1", 32, 20, false},  {HAFL_QUANT_F64, "F64", 1, 8, false}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const hafl_quant_traits_t *t = hafl_quant_traits(table[i].type);
        CHECK(t && strcmp(t->name, table[i].name) == 0 && t->block_elements == table[i].block);
        CHECK(t->block_bytes == table[i].bytes && t->dequantizable == table[i].decoded);
        CHECK(strcmp(hafl_quant_name(table[i].type), table[i].name) == 0);
    }
    CHECK(!hafl_quant_traits(4) && !hafl_quant_traits(5) && !hafl_quant_traits(31));
    CHECK(!hafl_quant_traits(HAFL_QUANT_TYPE_LIMIT) && !hafl_quant_traits(UINT32_MAX));
    CHECK(strcmp(hafl_quant_name(4), "unknown") == 0);
    uint64_t bytes;
    CHECK(hafl_quant_bytes(HAFL_QUANT_Q4_K, 512, &bytes) == 0 && bytes == 288);
    CHECK(hafl_quant_bytes(HAFL_QUANT_Q4_K, 100, &bytes) != 0);
    CHECK(hafl_quant_bytes(HAFL_QUANT_F64, 1ull << 62, &bytes) != 0); //  2^65 bytes
    CHECK(hafl_quant_bytes(99, 1, &bytes) != 0);

    float y[256];
    uint8_t zero[210] = {0};
    char err[256];
    CHECK(hafl_quant_dequantize(HAFL_QUANT_Q2_K, zero, 84, y, 256, err, sizeof err) != 0);
    CHECKF(strstr(err, "Q2_K") && strstr(err, "cannot be dequantised"), "%s", err);
    CHECK(hafl_quant_dequantize(HAFL_QUANT_Q6_K, zero, 210, y, 255, err, sizeof err) != 0);
    CHECKF(strstr(err, "not a whole number of Q6_K blocks"), "%s", err);
    CHECK(hafl_quant_dequantize(HAFL_QUANT_Q6_K, zero, 209, y, 256, err, sizeof err) != 0);
    CHECKF(strstr(err, "take 210 bytes, given 209"), "%s", err);
}

//  ---------------------------------------------------------------- writer and reader

//  Two arrays of int16 inside an array: {{1, -2}, {-32768}}, in GGUF encoding.
static s_bytes_t s_nested_encoding(void)
{
    s_bytes_t b = {0};
    int16_t first[2] = {1, -2}, second[1] = {-32768};
    s_put_u32(&b, HAFL_GGUF_INT16);
    s_put_u64(&b, 2);
    s_put(&b, first, sizeof first);
    s_put_u32(&b, HAFL_GGUF_INT16);
    s_put_u64(&b, 1);
    s_put(&b, second, sizeof second);
    return b;
}

typedef struct {
    float f32[12]; //  [3][4]
    float f16[16]; //  [2][8], exact in binary16
    uint8_t q4k[144 * 2];
    uint8_t bf16[16];
} s_tensor_data_t;

static hafl_gguf_writer_t *s_full_writer(uint32_t alignment, s_tensor_data_t *td)
{
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(alignment);
    CHECK(w);
    hafl_gguf_value_t v;
    v = (hafl_gguf_value_t){.type = HAFL_GGUF_UINT8, .u = 255};
    CHECK(hafl_gguf_writer_add_value(w, "t.u8", &v) == 0);
    v = (hafl_gguf_value_t){.type = HAFL_GGUF_INT8, .i = -128};
    CHECK(hafl_gguf_writer_add_value(w, "t.i8", &v) == 0);
    v = (hafl_gguf_value_t){.type = HAFL_GGUF_UINT16, .u = 65535};
    CHECK(hafl_gguf_writer_add_value(w, "t.u16", &v) == 0);
    v = (hafl_gguf_value_t){.type = HAFL_GGUF_INT16, .i = -32768};
    CHECK(hafl_gguf_writer_add_value(w, "t.i16", &v) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, "t.u32", UINT32_MAX) == 0);
    CHECK(hafl_gguf_writer_add_i32(w, "t.i32", INT32_MIN) == 0);
    CHECK(hafl_gguf_writer_add_f32(w, "t.f32", 0x1p-149f) == 0); //  the smallest subnormal
    CHECK(hafl_gguf_writer_add_bool(w, "t.true", true) == 0);
    CHECK(hafl_gguf_writer_add_bool(w, "t.false", false) == 0);
    v = (hafl_gguf_value_t){.type = HAFL_GGUF_STRING, .str = {"a\0b\xc3\xa9", 5}};
    CHECK(hafl_gguf_writer_add_value(w, "t.string", &v) == 0);
    CHECK(hafl_gguf_writer_add_string(w, "t.empty", "") == 0);
    CHECK(hafl_gguf_writer_add_u64(w, "t.u64", UINT64_MAX) == 0);
    v = (hafl_gguf_value_t){.type = HAFL_GGUF_INT64, .i = INT64_MIN};
    CHECK(hafl_gguf_writer_add_value(w, "t.i64", &v) == 0);
    v = (hafl_gguf_value_t){.type = HAFL_GGUF_FLOAT64, .f64 = -0.1};
    CHECK(hafl_gguf_writer_add_value(w, "t.f64", &v) == 0);
    CHECK(hafl_gguf_writer_add_string(w, "general.architecture", "llama") == 0);

    uint8_t u8s[3] = {0, 7, 255}, bools[3] = {1, 0, 1};
    int8_t i8s[2] = {-1, 127};
    uint16_t u16s[2] = {1, 65535};
    int16_t i16s[2] = {-300, 300};
    uint32_t u32s[2] = {0, 4000000000u};
    int32_t i32s[3] = {-7, 0, 2147483647};
    float f32s[3] = {1.5f, -2.25f, 0x1p-126f};
    uint64_t u64s[1] = {1ull << 63};
    int64_t i64s[2] = {-5, INT64_MAX};
    double f64s[2] = {1e300, -0.0};
    CHECK(hafl_gguf_writer_add_array(w, "a.u8", HAFL_GGUF_UINT8, u8s, 3) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.i8", HAFL_GGUF_INT8, i8s, 2) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.u16", HAFL_GGUF_UINT16, u16s, 2) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.i16", HAFL_GGUF_INT16, i16s, 2) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.u32", HAFL_GGUF_UINT32, u32s, 2) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.i32", HAFL_GGUF_INT32, i32s, 3) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.f32", HAFL_GGUF_FLOAT32, f32s, 3) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.bool", HAFL_GGUF_BOOL, bools, 3) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.u64", HAFL_GGUF_UINT64, u64s, 1) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.i64", HAFL_GGUF_INT64, i64s, 2) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.f64", HAFL_GGUF_FLOAT64, f64s, 2) == 0);
    CHECK(hafl_gguf_writer_add_array(w, "a.empty", HAFL_GGUF_UINT32, NULL, 0) == 0);
    const char *strings[3] = {"", "x", "h\xc3\xa9llo"};
    CHECK(hafl_gguf_writer_add_strings(w, "a.strings", strings, 3) == 0);
    s_bytes_t nested = s_nested_encoding();
    v = (hafl_gguf_value_t){.type = HAFL_GGUF_ARRAY,
                            .array = {HAFL_GGUF_ARRAY, 2, nested.data, nested.size}};
    CHECK(hafl_gguf_writer_add_value(w, "a.nested", &v) == 0);
    free(nested.data);

    for (int i = 0; i < 12; i++)
        td->f32[i] = (float)(i * i) - 10.25f;
    for (int i = 0; i < 16; i++)
        td->f16[i] = (float)i / 8.0f - 1.0f;
    for (size_t i = 0; i < sizeof td->q4k; i++)
        td->q4k[i] = (uint8_t)s_rand();
    td->q4k[1] = td->q4k[3] = td->q4k[145] = td->q4k[147] = 0x3c; //  finite d, dmin
    for (size_t i = 0; i < sizeof td->bf16; i++)
        td->bf16[i] = (uint8_t)(i * 37);
    uint64_t d_f32[2] = {4, 3}, d_f16[2] = {8, 2}, d_q4k[2] = {256, 2}, d_bf16[3] = {2, 2, 2};
    CHECK(hafl_gguf_writer_add_tensor(w, "m.f32", HAFL_QUANT_F32, 2, d_f32, td->f32, 48) == 0);
    CHECK(hafl_gguf_writer_add_tensor_floats(w, "m.f16", HAFL_QUANT_F16, 2, d_f16, td->f16) == 0);
    CHECK(hafl_gguf_writer_add_tensor(w, "m.q4k", HAFL_QUANT_Q4_K, 2, d_q4k, td->q4k, 288) == 0);
    CHECK(hafl_gguf_writer_add_tensor(w, "m.bf16", HAFL_QUANT_BF16, 3, d_bf16, td->bf16, 16) == 0);
    CHECK(hafl_gguf_writer_error(w) == NULL);
    return w;
}

static const hafl_gguf_value_t *s_value(const hafl_gguf_t *g, const char *key)
{
    const hafl_gguf_kv_t *kv = hafl_gguf_find(g, key);
    CHECKF(kv && strcmp(kv->key, key) == 0, "key %s missing", key);
    return &kv->value;
}

static void s_check_full(const hafl_gguf_t *g, uint32_t alignment, const s_tensor_data_t *td)
{
    CHECK(hafl_gguf_alignment(g) == alignment);
    bool entry = alignment != HAFL_GGUF_DEFAULT_ALIGNMENT;
    CHECK(hafl_gguf_kv_count(g) == 29 + (entry ? 1 : 0));
    if (entry) {
        const hafl_gguf_kv_t *first = hafl_gguf_kv_at(g, 0);
        CHECK(strcmp(first->key, "general.alignment") == 0);
        CHECK(first->value.type == HAFL_GGUF_UINT32 && first->value.u == alignment);
    }
    CHECK(strcmp(hafl_gguf_kv_at(g, entry)->key, "t.u8") == 0); //  file order kept
    CHECK(hafl_gguf_kv_at(g, 99) == NULL && hafl_gguf_find(g, "t.u9") == NULL);
    const hafl_gguf_value_t *v;
    v = s_value(g, "t.u8");
    CHECK(v->type == HAFL_GGUF_UINT8 && v->u == 255);
    v = s_value(g, "t.i8");
    CHECK(v->type == HAFL_GGUF_INT8 && v->i == -128);
    v = s_value(g, "t.u16");
    CHECK(v->type == HAFL_GGUF_UINT16 && v->u == 65535);
    v = s_value(g, "t.i16");
    CHECK(v->type == HAFL_GGUF_INT16 && v->i == -32768);
    v = s_value(g, "t.u32");
    CHECK(v->type == HAFL_GGUF_UINT32 && v->u == UINT32_MAX);
    v = s_value(g, "t.i32");
    CHECK(v->type == HAFL_GGUF_INT32 && v->i == INT32_MIN);
    v = s_value(g, "t.f32");
    CHECK(v->type == HAFL_GGUF_FLOAT32 && v->f32 == 0x1p-149f);
    v = s_value(g, "t.true");
    CHECK(v->type == HAFL_GGUF_BOOL && v->b);
    v = s_value(g, "t.false");
    CHECK(v->type == HAFL_GGUF_BOOL && !v->b);
    v = s_value(g, "t.string");
    CHECK(v->type == HAFL_GGUF_STRING && v->str.len == 5 &&
          memcmp(v->str.data, "a\0b\xc3\xa9", 5) == 0);
    v = s_value(g, "t.empty");
    CHECK(v->type == HAFL_GGUF_STRING && v->str.len == 0);
    v = s_value(g, "t.u64");
    CHECK(v->type == HAFL_GGUF_UINT64 && v->u == UINT64_MAX);
    v = s_value(g, "t.i64");
    CHECK(v->type == HAFL_GGUF_INT64 && v->i == INT64_MIN);
    v = s_value(g, "t.f64");
    CHECK(v->type == HAFL_GGUF_FLOAT64 && v->f64 == -0.1);
    CHECK(strcmp(hafl_gguf_architecture(g), "llama") == 0);

    //  Arrays, element by element through hafl_gguf_array_get.
    hafl_gguf_value_t e;
    v = s_value(g, "a.u8");
    CHECK(v->type == HAFL_GGUF_ARRAY && v->array.type == HAFL_GGUF_UINT8 && v->array.count == 3);
    CHECK(hafl_gguf_array_get(&v->array, 2, &e) == 0 && e.type == HAFL_GGUF_UINT8 && e.u == 255);
    CHECK(hafl_gguf_array_get(&v->array, 3, &e) != 0);
    v = s_value(g, "a.i8");
    CHECK(hafl_gguf_array_get(&v->array, 0, &e) == 0 && e.i == -1);
    v = s_value(g, "a.u16");
    CHECK(hafl_gguf_array_get(&v->array, 1, &e) == 0 && e.u == 65535);
    v = s_value(g, "a.i16");
    CHECK(hafl_gguf_array_get(&v->array, 0, &e) == 0 && e.i == -300);
    v = s_value(g, "a.u32");
    CHECK(hafl_gguf_array_get(&v->array, 1, &e) == 0 && e.u == 4000000000u);
    v = s_value(g, "a.i32");
    CHECK(hafl_gguf_array_get(&v->array, 2, &e) == 0 && e.i == 2147483647);
    v = s_value(g, "a.f32");
    CHECK(hafl_gguf_array_get(&v->array, 2, &e) == 0 && e.f32 == 0x1p-126f);
    v = s_value(g, "a.bool");
    CHECK(hafl_gguf_array_get(&v->array, 0, &e) == 0 && e.type == HAFL_GGUF_BOOL && e.b);
    CHECK(hafl_gguf_array_get(&v->array, 1, &e) == 0 && !e.b);
    v = s_value(g, "a.u64");
    CHECK(hafl_gguf_array_get(&v->array, 0, &e) == 0 && e.u == 1ull << 63);
    v = s_value(g, "a.i64");
    CHECK(hafl_gguf_array_get(&v->array, 1, &e) == 0 && e.i == INT64_MAX);
    v = s_value(g, "a.f64");
    CHECK(hafl_gguf_array_get(&v->array, 1, &e) == 0 && e.f64 == 0.0 && signbit(e.f64));
    v = s_value(g, "a.empty");
    CHECK(v->array.type == HAFL_GGUF_UINT32 && v->array.count == 0 && v->array.size == 0);
    v = s_value(g, "a.strings");
    CHECK(v->array.type == HAFL_GGUF_STRING && v->array.count == 3);
    CHECK(hafl_gguf_array_get(&v->array, 2, &e) == 0 && e.type == HAFL_GGUF_STRING);
    CHECK(e.str.len == 6 && memcmp(e.str.data, "h\xc3\xa9llo", 6) == 0);
    v = s_value(g, "a.nested");
    CHECK(v->array.type == HAFL_GGUF_ARRAY && v->array.count == 2);
    hafl_gguf_value_t inner;
    CHECK(hafl_gguf_array_get(&v->array, 1, &inner) == 0 && inner.type == HAFL_GGUF_ARRAY);
    CHECK(inner.array.type == HAFL_GGUF_INT16 && inner.array.count == 1);
    CHECK(hafl_gguf_array_get(&inner.array, 0, &e) == 0 && e.i == -32768);
    CHECK(hafl_gguf_array_get(&v->array, 0, &inner) == 0 && inner.array.count == 2);
    CHECK(hafl_gguf_array_get(&inner.array, 1, &e) == 0 && e.i == -2);

    //  Tensors: shapes, sizes, aligned data equal to what was written.
    CHECK(hafl_gguf_tensor_count(g) == 4 && hafl_gguf_tensor_at(g, 4) == NULL);
    size_t size;
    const uint8_t *bytes = hafl_gguf_bytes(g, &size);
    CHECK(hafl_gguf_data_offset(g) % alignment == 0);
    const char *names[4] = {"m.f32", "m.f16", "m.q4k", "m.bf16"};
    for (int i = 0; i < 4; i++) {
        const hafl_gguf_tensor_t *t = hafl_gguf_tensor(g, names[i]);
        CHECK(t && t == hafl_gguf_tensor_at(g, (size_t)i));
        CHECK((size_t)(t->data - bytes) % alignment == 0 && t->offset % alignment == 0);
        CHECK(t->data + t->n_bytes <= bytes + size);
    }
    const hafl_gguf_tensor_t *t = hafl_gguf_tensor(g, "m.f32");
    CHECK(t->type == HAFL_QUANT_F32 && t->n_dims == 2 && t->dims[0] == 4 && t->dims[1] == 3);
    CHECK(t->dims[2] == 1 && t->dims[3] == 1 && t->n_elements == 12 && t->n_bytes == 48);
    CHECK(memcmp(t->data, td->f32, 48) == 0);
    float y[512];
    char err[256];
    t = hafl_gguf_tensor(g, "m.f16");
    CHECK(t->type == HAFL_QUANT_F16 && t->n_bytes == 32);
    CHECK(hafl_quant_dequantize(t->type, t->data, t->n_bytes, y, t->n_elements, err, sizeof err) ==
          0);
    CHECK(memcmp(y, td->f16, sizeof td->f16) == 0);
    t = hafl_gguf_tensor(g, "m.q4k");
    CHECK(t->type == HAFL_QUANT_Q4_K && t->n_elements == 512 && t->n_bytes == 288);
    CHECK(memcmp(t->data, td->q4k, 288) == 0);
    t = hafl_gguf_tensor(g, "m.bf16");
    CHECK(t->n_dims == 3 && t->dims[2] == 2 && t->n_elements == 8 &&
          memcmp(t->data, td->bf16, 16) == 0);
    CHECK(hafl_gguf_tensor(g, "m.f3") == NULL && hafl_gguf_tensor(g, "") == NULL);
}

static void s_test_getters(const hafl_gguf_t *g)
{
    char err[512];
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    float f;
    bool b;
    hafl_gguf_str_t s;
    CHECK(hafl_gguf_get_u32(g, "t.u8", &u32, err, sizeof err) == 0 && u32 == 255);
    CHECK(hafl_gguf_get_u32(g, "t.u32", &u32, err, sizeof err) == 0 && u32 == UINT32_MAX);
    CHECK(hafl_gguf_get_u64(g, "t.u64", &u64, err, sizeof err) == 0 && u64 == UINT64_MAX);
    CHECK(hafl_gguf_get_i32(g, "t.i16", &i32, err, sizeof err) == 0 && i32 == -32768);
    CHECK(hafl_gguf_get_i32(g, "t.i32", &i32, err, sizeof err) == 0 && i32 == INT32_MIN);
    CHECK(hafl_gguf_get_f32(g, "t.f32", &f, err, sizeof err) == 0 && f == 0x1p-149f);
    CHECK(hafl_gguf_get_f32(g, "t.f64", &f, err, sizeof err) == 0 && f == -0.1f);
    CHECK(hafl_gguf_get_bool(g, "t.true", &b, err, sizeof err) == 0 && b);
    CHECK(hafl_gguf_get_str(g, "t.string", &s, err, sizeof err) == 0 && s.len == 5);

    CHECK(hafl_gguf_get_u32(g, "t.i8", &u32, err, sizeof err) != 0);
    CHECKF(strstr(err, "key 't.i8': -128 is out of range"), "%s", err);
    CHECK(hafl_gguf_get_u32(g, "t.u64", &u32, err, sizeof err) != 0);
    CHECKF(strstr(err, "key 't.u64'") && strstr(err, "out of range"), "%s", err);
    CHECK(hafl_gguf_get_i32(g, "t.u32", &i32, err, sizeof err) != 0);
    CHECKF(strstr(err, "key 't.u32'"), "%s", err);
    CHECK(hafl_gguf_get_u64(g, "t.i64", &u64, err, sizeof err) != 0);
    CHECK(hafl_gguf_get_u32(g, "t.string", &u32, err, sizeof err) != 0);
    CHECKF(strstr(err, "key 't.string': has type string, expected an integer"), "%s", err);
    CHECK(hafl_gguf_get_u32(g, "no.such", &u32, err, sizeof err) != 0);
    CHECKF(strcmp(err, "key 'no.such': missing") == 0, "%s", err);
    CHECK(hafl_gguf_get_f32(g, "t.u8", &f, err, sizeof err) != 0);
    CHECKF(strstr(err, "key 't.u8': has type uint8, expected float32"), "%s", err);
    CHECK(hafl_gguf_get_bool(g, "t.u8", &b, err, sizeof err) != 0);
    CHECK(hafl_gguf_get_str(g, "t.u8", &s, err, sizeof err) != 0);
    CHECKF(strstr(err, "expected string"), "%s", err);

    hafl_gguf_str_t *strings;
    float *floats;
    int32_t *ints;
    uint64_t n;
    CHECK(hafl_gguf_get_strings(g, "a.strings", &strings, &n, err, sizeof err) == 0 && n == 3);
    CHECK(strings[0].len == 0 && strings[1].len == 1 && strings[1].data[0] == 'x');
    CHECK(strings[2].len == 6 && memcmp(strings[2].data, "h\xc3\xa9llo", 6) == 0);
    free(strings);
    CHECK(hafl_gguf_get_f32s(g, "a.f32", &floats, &n, err, sizeof err) == 0 && n == 3);
    CHECK(floats[0] == 1.5f && floats[1] == -2.25f && floats[2] == 0x1p-126f);
    free(floats);
    CHECK(hafl_gguf_get_i32s(g, "a.i32", &ints, &n, err, sizeof err) == 0 && n == 3);
    CHECK(ints[0] == -7 && ints[1] == 0 && ints[2] == 2147483647);
    free(ints);
    CHECK(hafl_gguf_get_f32s(g, "a.i32", &floats, &n, err, sizeof err) != 0 && !floats);
    CHECKF(strstr(err, "key 'a.i32': has type array of int32, expected array of float32"), "%s",
           err);
    CHECK(hafl_gguf_get_strings(g, "t.u8", &strings, &n, err, sizeof err) != 0);
    CHECKF(strstr(err, "key 't.u8': has type uint8, expected array of string"), "%s", err);
    CHECK(hafl_gguf_get_i32s(g, "gone", &ints, &n, err, sizeof err) != 0);
    CHECKF(strstr(err, "'gone': missing"), "%s", err);
}

static void s_test_round_trip(void)
{
    uint32_t alignments[] = {0, 1, 8, 64, 4096};
    for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
        s_tensor_data_t td;
        hafl_gguf_writer_t *w = s_full_writer(alignments[i], &td);
        uint8_t *file;
        size_t size;
        s_to_memory(w, &file, &size);
        uint32_t alignment = alignments[i] ? alignments[i] : HAFL_GGUF_DEFAULT_ALIGNMENT;
        hafl_gguf_t *g = s_open(file, size);
        CHECK(hafl_gguf_version(g) == 3 && hafl_gguf_path(g) == NULL);
        s_check_full(g, alignment, &td);
        if (i == 0)
            s_test_getters(g);
        //  Every tensor is padded like ggml's writer pads: the file ends on the alignment.
        CHECK(size % alignment == 0);
        hafl_gguf_destroy(&g);
        CHECK(g == NULL);
        hafl_gguf_destroy(&g);
        //  Version 2 has the same layout.
        file[4] = 2;
        g = s_open(file, size);
        CHECK(hafl_gguf_version(g) == 2);
        s_check_full(g, alignment, &td);
        hafl_gguf_destroy(&g);
        free(file);
        hafl_gguf_writer_destroy(&w);
        CHECK(w == NULL);
    }

    //  A file written to disk opens mapped, with its path in the reasons.
    s_tensor_data_t td;
    hafl_gguf_writer_t *w = s_full_writer(0, &td);
    char path[600], err[1024];
    snprintf(path, sizeof path, "%s/full.gguf", s_tmp);
    CHECKF(hafl_gguf_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    hafl_gguf_writer_destroy(&w);
    hafl_gguf_t *g = hafl_gguf_open(path, err, sizeof err);
    CHECKF(g, "%s", err);
    CHECK(strcmp(hafl_gguf_path(g), path) == 0);
    s_check_full(g, 32, &td);
    uint32_t u32;
    CHECK(hafl_gguf_get_u32(g, "missing.key", &u32, err, sizeof err) != 0);
    CHECKF(strstr(err, path) == err && strstr(err, ": key 'missing.key': missing"), "%s", err);
    hafl_gguf_destroy(&g);
    CHECK(truncate(path, 30) == 0);
    CHECK(!hafl_gguf_open(path, err, sizeof err));
    CHECKF(strstr(err, path) == err && strstr(err, "truncated"), "%s", err);
    CHECK(truncate(path, 0) == 0);
    CHECK(!hafl_gguf_open(path, err, sizeof err));
    CHECKF(strstr(err, "truncated: 0 bytes"), "%s", err);
    unlink(path);
    CHECK(!hafl_gguf_open(path, err, sizeof err));
    CHECKF(strstr(err, path) && strstr(err, "cannot open"), "%s", err);
    CHECK(!hafl_gguf_open(s_tmp, err, sizeof err));
    CHECKF(strstr(err, "not a regular file"), "%s", err);

    //  An empty writer is a valid file with nothing in it.
    w = hafl_gguf_writer_new(0);
    uint8_t *file;
    size_t size;
    s_to_memory(w, &file, &size);
    g = s_open(file, size);
    CHECK(hafl_gguf_kv_count(g) == 0 && hafl_gguf_tensor_count(g) == 0);
    CHECK(!hafl_gguf_architecture(g) && !hafl_gguf_find(g, "x") && !hafl_gguf_tensor(g, "x"));
    hafl_gguf_destroy(&g);
    free(file);
    hafl_gguf_writer_destroy(&w);
}

static void s_test_writer_refusals(void)
{
    CHECK(hafl_gguf_writer_new(48) == NULL && hafl_gguf_writer_new(1u << 21) == NULL);
    uint64_t dims[2] = {32, 2};
    float values[64] = {0};
    struct {
        const char *reason;
    } cases[] = {{"added twice"},
                 {"set by hafl_gguf_writer_new"},
                 {"printable"},
                 {"takes 68 bytes of Q8_0, given 100"},
                 {"row length 32 is not a multiple of the Q4_K"},
                 {"dimension 1 (0)"},
                 {"tensor 'x' added twice"},
                 {"n_dims = 5"},
                 {"unknown type 4"},
                 {"bytes left over"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
        CHECK(hafl_gguf_writer_add_u32(w, "k", 1) == 0);
        CHECK(hafl_gguf_writer_add_tensor(w, "x", HAFL_QUANT_F32, 2, dims, values, 256) == 0);
        int rc = 0;
        uint64_t zero[2] = {32, 0}, five[5] = {1, 1, 1, 1, 1};
        uint8_t junk[3] = {1, 2, 3};
        hafl_gguf_value_t bad = {.type = HAFL_GGUF_ARRAY, .array = {HAFL_GGUF_UINT8, 2, junk, 3}};
        switch (i) {
        case 0:
            rc = hafl_gguf_writer_add_string(w, "k", "again");
            break;
        case 1:
            rc = hafl_gguf_writer_add_u32(w, "general.alignment", 64);
            break;
        case 2:
            rc = hafl_gguf_writer_add_u32(w, "bad\nkey", 1);
            break;
        case 3:
            rc = hafl_gguf_writer_add_tensor(w, "y", HAFL_QUANT_Q8_0, 2, dims, values, 100);
            break;
        case 4:
            rc = hafl_gguf_writer_add_tensor(w, "y", HAFL_QUANT_Q4_K, 2, dims, values, 144);
            break;
        case 5:
            rc = hafl_gguf_writer_add_tensor(w, "y", HAFL_QUANT_F32, 2, zero, values, 0);
            break;
        case 6:
            rc = hafl_gguf_writer_add_tensor_floats(w, "x", HAFL_QUANT_F16, 2, dims, values);
            break;
        case 7:
            rc = hafl_gguf_writer_add_tensor(w, "y", HAFL_QUANT_F32, 5, five, values, 4);
            break;
        case 8:
            rc = hafl_gguf_writer_add_tensor(w, "y", 4, 2, dims, values, 64);
            break;
        default:
            rc = hafl_gguf_writer_add_value(w, "y", &bad);
            break;
        }
        CHECKF(rc != 0, "case %zu accepted", i);
        const char *reason = hafl_gguf_writer_error(w);
        CHECKF(reason && strstr(reason, cases[i].reason), "case %zu: '%s'", i, reason);
        //  The first failure sticks: later adds fail and so does the output.
        CHECK(hafl_gguf_writer_add_u32(w, "fine", 2) != 0);
        uint8_t *file;
        size_t size;
        char err[512];
        CHECK(hafl_gguf_writer_to_memory(w, &file, &size, err, sizeof err) != 0 && !file);
        CHECKF(strcmp(err, reason) == 0, "%s", err);
        hafl_gguf_writer_destroy(&w);
    }
}

//  ---------------------------------------------------------------- malformed files

//  A small valid file: a few entries and three tensors, the last one quantised.
static void s_base_file(uint8_t **file, size_t *size)
{
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(hafl_gguf_writer_add_string(w, "general.architecture", "llama") == 0);
    CHECK(hafl_gguf_writer_add_string(w, "general.name", "tiny") == 0);
    CHECK(hafl_gguf_writer_add_u32(w, "llama.block_count", 1) == 0);
    CHECK(hafl_gguf_writer_add_bool(w, "flag.ok", true) == 0);
    CHECK(hafl_gguf_writer_add_u32(w, "general.alignmenx", 64) == 0); //  renamed by some cases
    const char *tokens[3] = {"a", "bb", "ccc"};
    CHECK(hafl_gguf_writer_add_strings(w, "tokenizer.ggml.tokens", tokens, 3) == 0);
    float scores[3] = {0.5f, -1.0f, 2.0f};
    CHECK(hafl_gguf_writer_add_array(w, "tokenizer.ggml.scores", HAFL_GGUF_FLOAT32, scores, 3) ==
          0);
    float values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t d8[2] = {4, 2}, d32[1] = {32};
    uint8_t q80[34] = {0x00, 0x3c};
    CHECK(hafl_gguf_writer_add_tensor(w, "w.f32", HAFL_QUANT_F32, 2, d8, values, 32) == 0);
    CHECK(hafl_gguf_writer_add_tensor(w, "w.two", HAFL_QUANT_F32, 2, d8, values, 32) == 0);
    CHECK(hafl_gguf_writer_add_tensor(w, "w.q80", HAFL_QUANT_Q8_0, 1, d32, q80, 34) == 0);
    s_to_memory(w, file, size);
    hafl_gguf_writer_destroy(&w);
}

//  Where tensor `name`'s info fields sit in the file.
typedef struct {
    size_t n_dims, dims, type, offset;
} s_info_at_t;

static s_info_at_t s_info_at(const uint8_t *file, size_t size, const char *name, uint32_t n_dims)
{
    size_t at = s_find_str(file, size, name) + 8 + strlen(name);
    return (s_info_at_t){at, at + 4, at + 4 + 8 * n_dims, at + 8 + 8 * n_dims};
}

//  A copy of the base file for one patch.
static uint8_t *s_copy(const uint8_t *file, size_t size)
{
    uint8_t *copy = malloc(size);
    CHECK(copy);
    memcpy(copy, file, size);
    return copy;
}

static void s_test_truncation(const uint8_t *file, size_t size)
{
    hafl_gguf_t *g = s_open(file, size);
    uint64_t end = 0;
    for (size_t i = 0; i < hafl_gguf_tensor_count(g); i++) {
        const hafl_gguf_tensor_t *t = hafl_gguf_tensor_at(g, i);
        if (hafl_gguf_data_offset(g) + t->offset + t->n_bytes > end)
            end = hafl_gguf_data_offset(g) + t->offset + t->n_bytes;
    }
    hafl_gguf_destroy(&g);
    CHECK(end > 200 && end <= size);
    //  Every cut before the last tensor's last byte loses something the file declares.
    for (size_t cut = 0; cut < end; cut++) {
        uint8_t *copy =
            s_copy(file, cut ? cut : 1); //  an exact-size buffer, so ASan sees overreads
        char err[512] = "";
        g = hafl_gguf_open_memory(copy, cut, err, sizeof err);
        CHECKF(!g, "accepted the file cut at %zu of %zu bytes", cut, size);
        CHECKF(err[0] && !strchr(err, '\n'), "cut at %zu: reason '%s'", cut, err);
        CHECKF(strstr(err, "truncated") || strstr(err, "extend past the end"),
               "cut at %zu: reason '%s'", cut, err);
        free(copy);
    }
    //  Only the last tensor's padding may go.
    for (size_t cut = end; cut <= size; cut++) {
        uint8_t *copy = s_copy(file, cut);
        g = s_open(copy, cut);
        hafl_gguf_destroy(&g);
        free(copy);
    }
    //  The reason names what was cut: a key inside its value, a tensor inside its info. (Cuts
    //  before the smallest size the header's counts allow are refused by that bound first.)
    size_t at = s_find_str(file, size, "tokenizer.ggml.scores");
    s_expect_fail(file, at + 8 + 21 + 4 + 4 + 8 + 5,
                  "key 'tokenizer.ggml.scores': truncated: array of 3 float32", NULL);
    at = s_find_str(file, size, "w.two");
    s_expect_fail(file, at + 8 + 5 + 6, "tensor 'w.two': truncated info", NULL);
    at = s_find_str(file, size, "tokenizer.ggml.tokens"); //  cut in the third string's bytes
    s_expect_fail(file, at + 8 + 21 + 4 + 4 + 8 + 9 + 10 + 8 + 1,
                  "key 'tokenizer.ggml.tokens': element 2: truncated: string of 3 bytes, 1 left",
                  NULL);
}

static void s_test_patched(const uint8_t *file, size_t size)
{
    uint8_t *c;
#define S_PATCHED(edit, want, also)                                                                \
    do {                                                                                           \
        c = s_copy(file, size);                                                                    \
        edit;                                                                                      \
        s_expect_fail(c, size, want, also);                                                        \
        free(c);                                                                                   \
    } while (0)

    S_PATCHED(c[0] = 'g', "not a GGUF file", NULL);
    S_PATCHED(s_patch_u32(c + 4, 1), "GGUF version 1 is not supported", NULL);
    S_PATCHED(s_patch_u32(c + 4, 4), "GGUF version 4 is not supported", NULL);
    S_PATCHED(s_patch_u32(c + 4, 0x03000000), "big-endian", NULL);
    S_PATCHED(s_patch_u64(c + 8, 1ull << 63), "tensor count 9223372036854775808 exceeds the cap",
              NULL);
    S_PATCHED(s_patch_u64(c + 16, 1ull << 40), "metadata count 1099511627776 exceeds the cap",
              NULL);
    S_PATCHED(s_patch_u64(c + 16, 60000), "truncated: 60000 metadata entries", NULL);
    S_PATCHED(s_patch_u64(c + 8, 100000), "100000 tensor infos need at least", NULL);

    //  Keys: a huge length, an empty one, a control byte.
    size_t name = s_find_str(file, size, "general.name");
    S_PATCHED(s_patch_u64(c + name, 1ull << 62), "metadata entry 1: key length 4611686018427387904",
              "exceeds");
    S_PATCHED(s_patch_u64(c + name, 100000), "metadata entry 1: key length 100000 exceeds", NULL);
    S_PATCHED(s_patch_u64(c + name, 0), "metadata entry 1: key empty", NULL);
    S_PATCHED(c[name + 8 + 3] = '\n', "metadata entry 1: key byte 3 is 0x0a", NULL);
    //  Values: an unknown type, a huge string, a string past the end, a bad bool.
    size_t type = name + 8 + 12, value = type + 4;
    S_PATCHED(s_patch_u32(c + type, 13), "key 'general.name': unknown value type 13", NULL);
    S_PATCHED(s_patch_u64(c + value, UINT64_MAX), "key 'general.name': string of",
              "exceeds the cap");
    S_PATCHED(s_patch_u64(c + value, 1u << 20), "key 'general.name': truncated: string of 1048576",
              NULL);
    size_t flag = s_find_str(file, size, "flag.ok") + 8 + 7 + 4;
    S_PATCHED(c[flag] = 2, "key 'flag.ok': bool value 2 is neither 0 nor 1", NULL);
    //  Arrays: a huge count, an unknown element type, a huge element string.
    size_t tokens = s_find_str(file, size, "tokenizer.ggml.tokens") + 8 + 21 + 4;
    S_PATCHED(s_patch_u64(c + tokens + 4, 1ull << 61), "key 'tokenizer.ggml.tokens': truncated",
              "2305843009213693952 strings");
    S_PATCHED(s_patch_u32(c + tokens, 99),
              "key 'tokenizer.ggml.tokens': unknown array element "
              "type 99",
              NULL);
    S_PATCHED(s_patch_u64(c + tokens + 12 + 9, 1ull << 40),
              "key 'tokenizer.ggml.tokens': element 1: string of 1099511627776 bytes", NULL);
    size_t scores = s_find_str(file, size, "tokenizer.ggml.scores") + 8 + 21 + 4;
    S_PATCHED(s_patch_u64(c + scores + 4, 1ull << 62), "key 'tokenizer.ggml.scores': truncated",
              NULL);
    //  Duplicate keys; general.alignment of another value or type; the architecture's type.
    size_t block = s_find_str(file, size, "llama.block_count");
    S_PATCHED(memcpy(c + block + 8, "general.name", 12); s_patch_u64(c + block, 12);
              memmove(c + block + 20, c + block + 25, size - block - 25),
              "key 'general.name' appears twice", NULL);
    size_t align = s_find_str(file, size, "general.alignmenx") + 8;
    S_PATCHED(c[align + 16] = 't'; s_patch_u32(c + align + 17 + 4, 48),
                                   "key 'general.alignment': 48 is not a power of two", NULL);
    S_PATCHED(c[align + 16] = 't'; s_patch_u32(c + align + 17 + 4, 0),
                                   "key 'general.alignment': 0 is not a power of two", NULL);
    S_PATCHED(c[align + 16] = 't'; s_patch_u32(c + align + 17, HAFL_GGUF_INT32),
                                   "key 'general.alignment': has type int32, expected uint32",
                                   NULL);
    size_t arch = s_find_str(file, size, "general.architecture") + 8 + 20;
    S_PATCHED(c[arch + 4 + 8 + 2] = ' ', "key 'general.architecture': not a name", NULL);

    //  Tensor infos.
    s_info_at_t f32 = s_info_at(file, size, "w.f32", 2), two = s_info_at(file, size, "w.two", 2);
    s_info_at_t q80 = s_info_at(file, size, "w.q80", 1);
    size_t f32_name = s_find_str(file, size, "w.f32");
    S_PATCHED(s_patch_u64(c + f32_name, 1000), "tensor 0: name length 1000 exceeds the cap of 255",
              NULL);
    S_PATCHED(s_patch_u64(c + f32_name, 0), "tensor 0: name empty", NULL);
    S_PATCHED(c[f32_name + 8] = 0x80, "tensor 0: name byte 0 is 0x80", NULL);
    S_PATCHED(s_patch_u32(c + f32.n_dims, 5), "tensor 'w.f32': n_dims = 5 (1 to 4 allowed)", NULL);
    S_PATCHED(s_patch_u32(c + f32.n_dims, 0), "tensor 'w.f32': n_dims = 0", NULL);
    S_PATCHED(s_patch_u64(c + f32.dims + 8, 0), "tensor 'w.f32': dimension 1 is 0", NULL);
    S_PATCHED(s_patch_u64(c + f32.dims, 1ull << 32);
              s_patch_u64(c + f32.dims + 8, 1ull << 32),
              "tensor 'w.f32': dimension 1 (4294967296) makes the element count overflow", NULL);
    S_PATCHED(s_patch_u64(c + f32.dims, UINT64_MAX), "tensor 'w.f32': dimension 0", "overflow");
    //  2^62 F32 values are 2^64 bytes: a count that fits but a size that does not.
    S_PATCHED(s_patch_u64(c + f32.dims, 1ull << 61), "tensor 'w.f32':", "overflow a 64-bit size");
    S_PATCHED(s_patch_u32(c + f32.type, 99), "tensor 'w.f32': unknown type 99", NULL);
    S_PATCHED(s_patch_u32(c + f32.type, 4), "tensor 'w.f32': unknown type 4", NULL);
    S_PATCHED(s_patch_u64(c + q80.dims, 16),
              "tensor 'w.q80': row length 16 is not a multiple of the Q8_0 block of 32", NULL);
    S_PATCHED(s_patch_u64(c + two.offset, 36),
              "tensor 'w.two': offset 36 is not a multiple of the alignment 32", NULL);
    S_PATCHED(s_patch_u64(c + q80.offset, 1ull << 40),
              "tensor 'w.q80': 34 bytes at offset "
              "1099511627776 extend past the end of the file",
              NULL);
    S_PATCHED(s_patch_u64(c + q80.offset, UINT64_MAX - 31),
              "tensor 'w.q80':", "extend past the end of the file");
    S_PATCHED(s_patch_u64(c + q80.offset, 96), "tensor 'w.q80':", "extend past the end");
    S_PATCHED(s_patch_u64(c + two.offset, 0), "tensor 'w.two': its data overlaps tensor 'w.f32'",
              NULL);
    S_PATCHED(s_patch_u64(c + f32.dims + 8, 8), "tensor 'w.two': its data overlaps tensor 'w.f32'",
              NULL); //  32 -> 128 bytes
    S_PATCHED(memcpy(c + two.n_dims - 3, "f32", 3), "tensor 'w.f32' appears twice", NULL);
#undef S_PATCHED
}

//  Files built byte by byte: what the writer refuses to make.
static void s_test_hand_built(void)
{
    //  One entry holding arrays nested five deep, and the same four deep (the cap).
    for (int depth = 4; depth <= 5; depth++) {
        s_bytes_t b = {0};
        s_put(&b, "GGUF", 4);
        s_put_u32(&b, 3);
        s_put_u64(&b, 0);
        s_put_u64(&b, 1);
        s_put_str(&b, "deep");
        s_put_u32(&b, HAFL_GGUF_ARRAY);
        for (int level = 1; level < depth; level++) {
            s_put_u32(&b, HAFL_GGUF_ARRAY);
            s_put_u64(&b, 1);
        }
        s_put_u32(&b, HAFL_GGUF_UINT8);
        s_put_u64(&b, 1);
        s_put(&b, "\x07", 1);
        if (depth == 4) {
            hafl_gguf_t *g = s_open(b.data, b.size);
            hafl_gguf_value_t v = s_value(g, "deep")[0];
            for (int level = 1; level < depth; level++)
                CHECK(hafl_gguf_array_get(&v.array, 0, &v) == 0 && v.type == HAFL_GGUF_ARRAY);
            hafl_gguf_value_t e;
            CHECK(hafl_gguf_array_get(&v.array, 0, &e) == 0 && e.u == 7);
            hafl_gguf_destroy(&g);
        } else {
            s_expect_fail(b.data, b.size, "key 'deep': element 0: element 0: element 0: element 0:",
                          "arrays nested deeper than 4 levels");
        }
        free(b.data);
    }
    //  A header alone, one byte short, and with no tensors and no padding: the last is valid.
    s_bytes_t b = {0};
    s_put(&b, "GGUF", 4);
    s_put_u32(&b, 3);
    s_put_u64(&b, 0);
    s_put_u64(&b, 0);
    hafl_gguf_t *g = s_open(b.data, b.size);
    CHECK(hafl_gguf_data_offset(g) == 32);
    hafl_gguf_destroy(&g);
    s_expect_fail(b.data, 23, "truncated: 23 bytes, shorter than the 24-byte header", NULL);
    s_expect_fail(b.data, 3, "truncated: 3 bytes", NULL);
    s_expect_fail(NULL, 0, "truncated: 0 bytes", NULL);
    free(b.data);

    //  general.architecture of another type: written under another name, then renamed.
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(hafl_gguf_writer_add_u32(w, "general.architecturx", 7) == 0);
    uint8_t *file;
    size_t size;
    s_to_memory(w, &file, &size);
    hafl_gguf_writer_destroy(&w);
    file[s_find_str(file, size, "general.architecturx") + 8 + 19] = 'e';
    s_expect_fail(file, size, "key 'general.architecture': has type uint32, expected string", NULL);
    free(file);

    //  hafl_gguf_value_check on hand-made arrays.
    char err[256];
    uint8_t two_bytes[2] = {1, 2};
    hafl_gguf_value_t v = {.type = HAFL_GGUF_ARRAY, .array = {HAFL_GGUF_BOOL, 2, two_bytes, 2}};
    CHECK(hafl_gguf_value_check(&v, err, sizeof err) != 0 && strstr(err, "bool value 2"));
    v.array.type = HAFL_GGUF_UINT16, v.array.count = 2;
    CHECK(hafl_gguf_value_check(&v, err, sizeof err) != 0 && strstr(err, "truncated"));
    v.array.count = 1;
    CHECK(hafl_gguf_value_check(&v, err, sizeof err) == 0);
    v.array.type = 77;
    CHECK(hafl_gguf_value_check(&v, err, sizeof err) != 0 && strstr(err, "unknown array element"));
    v.type = 20;
    CHECK(hafl_gguf_value_check(&v, err, sizeof err) != 0 && strstr(err, "unknown value type"));
    CHECK(strcmp(hafl_gguf_type_name(HAFL_GGUF_FLOAT64), "float64") == 0);
    CHECK(strcmp(hafl_gguf_type_name(13), "unknown") == 0);
}

//  ---------------------------------------------------------------- hafl info

typedef struct {
    int status;
    char *out, *err;
} s_run_t;

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    CHECK(f);
    char *text = calloc(1, 1 << 16);
    CHECK(text);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}

//  `hafl info FILE`, its exit status, stdout and stderr.
static s_run_t s_info(const char *file)
{
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary && *binary, "HAFL_BINARY is not set (run through ctest)");
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/info.out", s_tmp);
    snprintf(err_path, sizeof err_path, "%s/info.err", s_tmp);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen(err_path, "w", stderr) ||
            setenv("HAFL_OFFLINE", "1", 1) != 0)
            _exit(127);
        execl(binary, "hafl", "info", file, (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    s_run_t run = {WEXITSTATUS(status), s_slurp(out_path), s_slurp(err_path)};
    CHECKF(run.status != 127, "could not run %s", binary);
    return run;
}

static void s_test_info_command(const uint8_t *file, size_t size)
{
    char path[600];
    snprintf(path, sizeof path, "%s/base.gguf", s_tmp);
    s_write_file(path, file, size);
    s_run_t run = s_info(path);
    CHECKF(run.status == 0, "status %d: %s", run.status, run.err);
    const char *lines[] = {
        "architecture: llama\n",        "block count: 1\n",
        "head count: absent\n",         "vocab size: absent (3 tokens in tokenizer.ggml.tokens)\n",
        "tensors: 3 (F32 2, Q8_0 1)\n", "parameters: 48\n",
        "lora targets: none\n",         "  wq (attn_q): 0 of 1 blocks\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        CHECKF(strstr(run.out, lines[i]), "no '%s' in:\n%s", lines[i], run.out);
    free(run.out), free(run.err);

    s_write_file(path, file, 100);
    run = s_info(path);
    CHECKF(run.status == 2 && run.out[0] == 0, "status %d", run.status);
    char *newline = strchr(run.err, '\n');
    CHECKF(newline && newline[1] == 0 && strstr(run.err, "hafl info: ") == run.err &&
               strstr(run.err, path) && strstr(run.err, "truncated"),
           "stderr: %s", run.err);
    free(run.out), free(run.err);
    unlink(path);
    run = s_info(path);
    CHECKF(run.status == 2 && strchr(run.err, '\n') == run.err + strlen(run.err) - 1, "%s",
           run.err);
    free(run.out), free(run.err);
}

//  ---------------------------------------------------------------- the real asset

//  Tensor `name` is F32 with dims {cols, rows} (rows 0: a vector) and equals `want`.
static void s_expect_tensor(const hafl_gguf_t *g, const char *name, uint64_t cols, uint64_t rows,
                            const float *want)
{
    const hafl_gguf_tensor_t *t = hafl_gguf_tensor(g, name);
    CHECKF(t, "no tensor %s", name);
    CHECKF(t->type == HAFL_QUANT_F32 && t->n_dims == (rows ? 2u : 1u) && t->dims[0] == cols &&
               t->dims[1] == (rows ? rows : 1),
           "%s: type %u, %u dims {%llu, %llu}", name, t->type, t->n_dims,
           (unsigned long long)t->dims[0], (unsigned long long)t->dims[1]);
    CHECKF(memcmp(t->data, want, t->n_bytes) == 0, "%s differs from stories260K.bin", name);
}

static int s_test_asset(void)
{
    char err[1024];
    char *gguf_path = hafl_asset_find_local("stories260K.gguf", err, sizeof err);
    char *bin_path = gguf_path ? hafl_asset_find_local("stories260K.bin", err, sizeof err) : NULL;
    char *tok_path = bin_path ? hafl_asset_find_local("tok512.bin", err, sizeof err) : NULL;
    if (!gguf_path || !bin_path || !tok_path) {
        printf("skipped: %s\n", err);
        free(gguf_path);
        free(bin_path);
        return 77;
    }
    hafl_gguf_t *g = hafl_gguf_open(gguf_path, err, sizeof err);
    CHECKF(g, "%s", err);
    hafl_checkpoint_t *c = hafl_checkpoint_open(bin_path, err, sizeof err);
    CHECKF(c, "%s", err);
    const hafl_llama_config_t *cfg = &c->config;
    CHECK(strcmp(hafl_gguf_architecture(g), "llama") == 0);
    struct {
        const char *key;
        int want;
    } hyper[] = {{"llama.embedding_length", cfg->dim},
                 {"llama.feed_forward_length", cfg->hidden_dim},
                 {"llama.block_count", cfg->n_layers},
                 {"llama.attention.head_count", cfg->n_heads},
                 {"llama.attention.head_count_kv", cfg->n_kv_heads}};
    for (size_t i = 0; i < sizeof hyper / sizeof hyper[0]; i++) {
        uint32_t v;
        CHECKF(hafl_gguf_get_u32(g, hyper[i].key, &v, err, sizeof err) == 0, "%s", err);
        CHECKF(v == (uint32_t)hyper[i].want, "%s = %u, the .bin says %d", hyper[i].key, v,
               hyper[i].want);
    }
    //  The converter wrote its default context (2048), not the .bin's seq_len (512).
    uint32_t context;
    CHECK(hafl_gguf_get_u32(g, "llama.context_length", &context, err, sizeof err) == 0);
    float eps;
    CHECK(hafl_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, err, sizeof err) ==
              0 &&
          eps == 1e-5f);
    hafl_gguf_str_t *tokens;
    uint64_t n_tokens;
    CHECKF(hafl_gguf_get_strings(g, "tokenizer.ggml.tokens", &tokens, &n_tokens, err, sizeof err) ==
               0,
           "%s", err);
    CHECK(n_tokens == (uint64_t)cfg->vocab_size);
    CHECK(tokens[1].len == 3 && memcmp(tokens[1].data, "<s>", 3) == 0);
    free(tokens);
    hafl_gguf_str_t model;
    CHECK(hafl_gguf_get_str(g, "tokenizer.ggml.model", &model, err, sizeof err) == 0);
    CHECK(model.len == 5 && memcmp(model.data, "llama", 5) == 0);

    //  Every weight, byte for byte; the .bin's shared classifier is the GGUF's output.weight.
    uint64_t dim = (uint64_t)cfg->dim, hidden = (uint64_t)cfg->hidden_dim;
    uint64_t kv = (uint64_t)hafl_llama_kv_dim(cfg), vocab = (uint64_t)cfg->vocab_size;
    const hafl_llama_weights_t *w = &c->weights;
    CHECK(hafl_gguf_tensor_count(g) == 3 + 9 * (size_t)cfg->n_layers);
    s_expect_tensor(g, "token_embd.weight", dim, vocab, w->token_embedding);
    s_expect_tensor(g, "output.weight", dim, vocab, w->wcls);
    s_expect_tensor(g, "output_norm.weight", dim, 0, w->rms_final);
    for (int l = 0; l < cfg->n_layers; l++) {
        char name[64];
        size_t L = (size_t)l;
#define S_LAYER(suffix, cols, rows, base)                                                          \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, suffix);                                \
        s_expect_tensor(g, name, cols, rows, base + L * (cols) * ((rows) ? (rows) : 1));           \
    } while (0)
        S_LAYER("attn_norm", dim, 0, w->rms_att);
        S_LAYER("attn_q", dim, dim, w->wq);
        S_LAYER("attn_k", dim, kv, w->wk);
        S_LAYER("attn_v", dim, kv, w->wv);
        S_LAYER("attn_output", dim, dim, w->wo);
        S_LAYER("ffn_norm", dim, 0, w->rms_ffn);
        S_LAYER("ffn_gate", dim, hidden, w->w1);
        S_LAYER("ffn_down", hidden, dim, w->w2);
        S_LAYER("ffn_up", dim, hidden, w->w3);
#undef S_LAYER
    }
    hafl_checkpoint_destroy(&c);
    hafl_gguf_destroy(&g);

    s_run_t run = s_info("stories260K.gguf");
    CHECKF(run.status == 0, "status %d: %s", run.status, run.err);
    const char *lines[] = {"architecture: llama\n",
                           "embedding length: 64\n",
                           "block count: 5\n",
                           "feed-forward length: 172\n",
                           "head count: 8\n",
                           "head count kv: 4\n",
                           "tokenizer: llama (pre: absent)\n",
                           "tensors: 48 (F32 48)\n",
                           "parameters: 292800\n",
                           "lora targets: wq wk wv wo w1 w2 w3\n",
                           "  wk (attn_k): 5 of 5 blocks, [32][64] F32\n",
                           "  w2 (ffn_down): 5 of 5 blocks, [64][172] F32\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        CHECKF(strstr(run.out, lines[i]), "no '%s' in:\n%s", lines[i], run.out);
    free(run.out), free(run.err);

    //  hafl_checkpoint reads the GGUF into the .bin's layout: same config but the context length
    //  the converter wrote, every weight equal, the output matrix a copy (the file has one).
    hafl_checkpoint_t *bin = hafl_checkpoint_open(bin_path, err, sizeof err);
    CHECKF(bin, "%s", err);
    hafl_checkpoint_t *gg = hafl_checkpoint_open(gguf_path, err, sizeof err);
    CHECKF(gg, "%s", err);
    const hafl_llama_config_t *a = &gg->config, *b = &bin->config;
    CHECK(gg->gguf && !bin->gguf && a->seq_len == 2048 && b->seq_len == 512);
    CHECK(a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
          a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads &&
          a->vocab_size == b->vocab_size && !a->shared_classifier && b->shared_classifier);
    size_t D = (size_t)b->dim, H = (size_t)b->hidden_dim, L = (size_t)b->n_layers;
    size_t K = (size_t)hafl_llama_kv_dim(b), V = (size_t)b->vocab_size;
    size_t counts[] = {V * D, L * D,     L * D * D, L * K * D, L * K * D, L * D * D,
                       L * D, L * H * D, L * D * H, L * H * D, D,         V * D};
    const float *const *wa = (const float *const *)&gg->weights;
    const float *const *wb = (const float *const *)&bin->weights;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        CHECKF(memcmp(wa[i], wb[i], counts[i] * sizeof(float)) == 0, "weights field %zu differs",
               i);
    CHECK(memcmp(gg->digest, bin->digest, 32) != 0); //  each names its own file

    //  Its metadata tokenizer is tok512.bin, piece by piece.
    hafl_tokenizer_t *own = hafl_tokenizer_load(gguf_path, a->vocab_size, err, sizeof err);
    CHECKF(own, "%s", err);
    hafl_tokenizer_t *tok = hafl_tokenizer_load(tok_path, b->vocab_size, err, sizeof err);
    CHECKF(tok, "%s", err);
    for (int32_t id = 0; id < b->vocab_size; id++)
        CHECKF(strcmp(hafl_tokenizer_piece(own, id), hafl_tokenizer_piece(tok, id)) == 0 &&
                   hafl_tokenizer_score(own, id) == hafl_tokenizer_score(tok, id),
               "token %d: '%s' vs tok512's '%s'", id, hafl_tokenizer_piece(own, id),
               hafl_tokenizer_piece(tok, id));
    hafl_tokenizer_destroy(&own);
    hafl_tokenizer_destroy(&tok);
    hafl_checkpoint_destroy(&gg);
    hafl_checkpoint_destroy(&bin);
    free(gguf_path);
    free(bin_path);
    free(tok_path);
    return 0;
}

static void s_cleanup(void)
{
    char path[600];
    const char *files[] = {"info.out", "info.err", "base.gguf", "full.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", s_tmp, files[i]);
        unlink(path);
    }
    rmdir(s_tmp);
}

int main(int argc, char **argv)
{
    const char *tmpdir = getenv("TMPDIR");
    snprintf(s_tmp, sizeof s_tmp, "%s/hafl-gguf-XXXXXX", tmpdir && *tmpdir ? tmpdir : P_tmpdir);
    CHECK(mkdtemp(s_tmp));
    atexit(s_cleanup);
    if (argc == 2 && strcmp(argv[1], "--asset") == 0)
        return s_test_asset();
    CHECKF(argc == 1, "usage: test_gguf [--asset]");

    s_test_fp16();
    s_test_quant_table();
    s_test_quantize();
    s_test_quant_literal();
    s_test_quant_random();
    s_test_round_trip();
    s_test_writer_refusals();
    uint8_t *file;
    size_t size;
    s_base_file(&file, &size);
    s_test_truncation(file, size);
    s_test_patched(file, size);
    s_test_hand_built();
    s_test_info_command(file, size);
    free(file);
    return 0;
}
