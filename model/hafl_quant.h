/*  hafl_quant: ggml's tensor types, their block sizes, and dequantisation to float32.

    A GGUF tensor of type T stores its elements in blocks: block_elements consecutive values
    (along the row, ggml's dimension 0) packed into block_bytes bytes. The table below knows
    every type id ggml has published, so a reader can bound any tensor's byte extent; only the
    types a Llama-family download carries are decoded:

      F32   1 value,   4 bytes: little-endian IEEE binary32.
      F16   1 value,   2 bytes: IEEE binary16.
      BF16  1 value,   2 bytes: the high 16 bits of a binary32.
      Q8_0  32 values, 34 bytes: d (f16), q[32] (int8); x = q * d.
      Q4_0  32 values, 18 bytes: d (f16), qs[16]; value j < 16 is the low nibble of qs[j],
            value j + 16 its high nibble; x = (nibble - 8) * d.
      Q4_K  256 values, 144 bytes: d, dmin (f16), scales[12], qs[128]. Eight sub-blocks of 32
            with a 6-bit scale sc and a 6-bit min m each (packing below); x = d*sc * q - dmin*m
            with q a 4-bit quant. Sub-blocks 2i and 2i+1 share qs[32i .. 32i+31]: the low nibbles
            are sub-block 2i, the high nibbles sub-block 2i+1.
      Q5_K  256 values, 176 bytes: d, dmin (f16), scales[12], qh[32], qs[128]. As Q4_K with a
            fifth bit: value l of sub-block s adds 16 when bit s of qh[l] is set.
      Q6_K  256 values, 210 bytes: ql[128], qh[64], scales[16] (int8), d (f16). Two halves of
            128; in half h, for l < 32 the quants of positions l, l+32, l+64, l+96 are
            ql[64h+l] low, ql[64h+l+32] low, ql[64h+l] high, ql[64h+l+32] high nibble, each
            with two high bits from qh[32h+l] (bits 0-1, 2-3, 4-5, 6-7), minus 32; position p of
            the half has scale scales[8h + p/16]; x = d * scale * q.

    The K-quant 6-bit scale packing (scales[12]): sub-block j < 4 has scale scales[j] & 63 and
    min scales[j+4] & 63; sub-block j >= 4 has scale (scales[j+4] & 15) | (scales[j-4] >> 6) << 4
    and min (scales[j+4] >> 4) | (scales[j] >> 6) << 4.

    Dequantisation is bit-exact to ggml's reference decoders: each value is computed with the
    same float32 operations in the same order (d*sc first, then times the quant, then minus
    dmin*m), one statement each so no compiler fuses them into an FMA. fp16 conversion is
    exact for all 65536 inputs: subnormals are normalised, infinities kept, and a NaN keeps its
    sign and payload with the quiet bit set (as x86's F16C instructions convert it).
*/
#ifndef HAFL_QUANT_H
#define HAFL_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  ggml's type ids as stored in GGUF tensor infos (gaps are ids ggml has retired).
typedef enum {
    HAFL_QUANT_F32 = 0,
    HAFL_QUANT_F16 = 1,
    HAFL_QUANT_Q4_0 = 2,
    HAFL_QUANT_Q4_1 = 3,
    HAFL_QUANT_Q5_0 = 6,
    HAFL_QUANT_Q5_1 = 7,
    HAFL_QUANT_Q8_0 = 8,
    HAFL_QUANT_Q8_1 = 9,
    HAFL_QUANT_Q2_K = 10,
    HAFL_QUANT_Q3_K = 11,
    HAFL_QUANT_Q4_K = 12,
    HAFL_QUANT_Q5_K = 13,
    HAFL_QUANT_Q6_K = 14,
    HAFL_QUANT_Q8_K = 15,
    HAFL_QUANT_IQ2_XXS = 16,
    HAFL_QUANT_IQ2_XS = 17,
    HAFL_QUANT_IQ3_XXS = 18,
    HAFL_QUANT_IQ1_S = 19,
    HAFL_QUANT_IQ4_NL = 20,
    HAFL_QUANT_IQ3_S = 21,
    HAFL_QUANT_IQ2_S = 22,
    HAFL_QUANT_IQ4_XS = 23,
    HAFL_QUANT_I8 = 24,
    HAFL_QUANT_I16 = 25,
    HAFL_QUANT_I32 = 26,
    HAFL_QUANT_I64 = 27,
    HAFL_QUANT_F64 = 28,
    HAFL_QUANT_IQ1_M = 29,
    HAFL_QUANT_BF16 = 30,
    HAFL_QUANT_TQ1_0 = 34,
    HAFL_QUANT_TQ2_0 = 35,
    HAFL_QUANT_MXFP4 = 39,
    HAFL_QUANT_TYPE_LIMIT //  one past the largest id; not a type
} hafl_quant_type_t;

//  One type's storage: `block_bytes` bytes hold `block_elements` values. Static data.
typedef struct {
    const char *name;        //  ggml's name, e.g. "Q4_K"
    uint32_t block_elements; //  1 for plain types, 32 or 256 for quantised ones
    uint32_t block_bytes;
    bool dequantizable; //  hafl_quant_dequantize decodes it
} hafl_quant_traits_t;

//  The traits of type id `type`, or NULL for an id ggml never assigned (or retired).
const hafl_quant_traits_t *hafl_quant_traits(uint32_t type);

//  ggml's name of `type` ("Q6_K"), or "unknown" for an id hafl_quant_traits does not know.
const char *hafl_quant_name(uint32_t type);

//  Bytes that n_elements values of `type` occupy. 0, or -1 when the type is unknown, n is not
//  a whole number of blocks, or the size does not fit in 64 bits.
int hafl_quant_bytes(uint32_t type, uint64_t n_elements, uint64_t *bytes);

//  Decode n values of `type` from `src` (exactly src_bytes bytes, any alignment) into dst[n].
//  0, or -1 with a one-line reason in err: a type it does not decode, n not a whole number of
//  blocks, or src_bytes not exactly the size n values take. Values are not checked for
//  finiteness (a block may scale by an infinite or NaN d).
int hafl_quant_dequantize(uint32_t type, const void *src, size_t src_bytes, float *dst, uint64_t n,
                          char *err, size_t errlen);

//  Encode n float32 values from src into dst (exactly dst_bytes bytes) as `type`, the way
//  ggml's reference quantisers do, for the types a converter writes from floats: F32 (as is),
//  F16 (hafl_quant_fp32_to_fp16), BF16 (hafl_quant_fp32_to_bf16) and Q8_0 (per block of 32:
//  d = max |x| / 127 stored as f16, q = round (x / d) away from zero, 0 when d is 0).
//  0, or -1 with a one-line reason in err: another type, n not a whole number of blocks, or
//  dst_bytes not the size n values take.
int hafl_quant_quantize(uint32_t type, const float *src, uint64_t n, void *dst, size_t dst_bytes,
                        char *err, size_t errlen);

//  IEEE binary16 bits to float32, exact (see above for NaN).
float hafl_quant_fp16_to_fp32(uint16_t h);
//  float32 to the nearest binary16, ties to even; overflow gives infinity, NaN a quiet NaN
//  with the same sign and the payload's top 10 bits.
uint16_t hafl_quant_fp32_to_fp16(float f);
//  bfloat16 bits to float32 (exact: they are its high half).
float hafl_quant_bf16_to_fp32(uint16_t h);
//  float32 to the nearest bfloat16, ties to even (ggml's rounding); NaN stays a quiet NaN.
uint16_t hafl_quant_fp32_to_bf16(float f);

#endif
