/*  hafl_gguf: a strict reader of GGUF files (llama.cpp's model format), versions 2 and 3.

    Layout (all little-endian; "str" is a u64 byte length then that many bytes, no NUL):
      header    "GGUF", u32 version, u64 tensor_count, u64 kv_count
      kv_count  metadata entries: str key, u32 value type, value
      tensor_count infos: str name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset
      padding   to a multiple of the alignment (u32 `general.alignment`, default 32)
      data      each tensor's bytes at data start + its offset
    A value is a fixed-size scalar (u8 i8 u16 i16 u32 i32 f32 bool u64 i64 f64), a str, or an
    array: u32 element type, u64 element count, then the elements (arrays may nest). dims[0] is
    the fastest-varying dimension: a [rows][cols] matrix has dims {cols, rows}. Version 1 (32-bit
    counts) and byte-swapped (big-endian) files are refused.

    Everything in the file is untrusted. Opening validates the whole structure before anything
    is used: every count, length and offset against the bytes that remain and against the caps
    below (so no allocation exceeds what the file could describe), every value type, every bool
    (0 or 1), array nesting depth, keys and tensor names (non-empty printable ASCII, unique),
    n_dims (1..4), each dimension (non-zero) and their product (no overflow), the tensor type
    (hafl_quant_traits), rows that are a whole number of blocks, the byte extent of each tensor
    (aligned, inside the file, not overlapping another), and the alignment (a power of two).
    A file that fails gets one line in err, prefixed by its path, naming the key or tensor at
    fault and why ("PATH: tensor 'blk.0.attn_q.weight': offset 100 is not a multiple of the
    alignment 32"). After a successful open no accessor can read outside the file.

    hafl_gguf_open maps the file read-only (MAP_SHARED, so every in-process reader shares the
    pages); hafl_gguf_open_memory reads a caller's buffer, which must outlive the reader. String
    values, arrays and tensor data are views into that memory (strings are not NUL-terminated);
    keys and tensor names are NUL-terminated copies the reader owns. A reader is immutable after
    opening, so threads may share it.
*/
#ifndef HAFL_GGUF_H
#define HAFL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Caps, well above any published model, that bound what a file may ask for.
#define HAFL_GGUF_MAX_KV            65536     //  metadata entries
#define HAFL_GGUF_MAX_TENSORS       (1 << 20) //  tensor infos
#define HAFL_GGUF_MAX_KEY           65535     //  bytes in a key (the spec's limit)
#define HAFL_GGUF_MAX_NAME          255       //  bytes in a tensor name
#define HAFL_GGUF_MAX_STRING        (1 << 24) //  bytes in a string value
#define HAFL_GGUF_MAX_DIMS          4         //  tensor dimensions
#define HAFL_GGUF_MAX_DEPTH         4         //  arrays nested inside arrays
#define HAFL_GGUF_MAX_ALIGNMENT     (1 << 20)
#define HAFL_GGUF_DEFAULT_ALIGNMENT 32

typedef enum {
    HAFL_GGUF_UINT8 = 0,
    HAFL_GGUF_INT8 = 1,
    HAFL_GGUF_UINT16 = 2,
    HAFL_GGUF_INT16 = 3,
    HAFL_GGUF_UINT32 = 4,
    HAFL_GGUF_INT32 = 5,
    HAFL_GGUF_FLOAT32 = 6,
    HAFL_GGUF_BOOL = 7,
    HAFL_GGUF_STRING = 8,
    HAFL_GGUF_ARRAY = 9,
    HAFL_GGUF_UINT64 = 10,
    HAFL_GGUF_INT64 = 11,
    HAFL_GGUF_FLOAT64 = 12,
    HAFL_GGUF_TYPE_COUNT
} hafl_gguf_type_t;

//  A string value: len bytes at data, not NUL-terminated, may hold any bytes.
typedef struct {
    const char *data;
    uint64_t len;
} hafl_gguf_str_t;

//  An array value: count elements of one type, encoded as in the file (size bytes at data,
//  unaligned). Fixed-size elements lie back to back; read any element with
//  hafl_gguf_array_get, or a whole array with the typed getters below.
typedef struct {
    hafl_gguf_type_t type;
    uint64_t count;
    const uint8_t *data;
    uint64_t size;
} hafl_gguf_array_t;

//  A decoded value; the member that `type` names is set.
typedef struct {
    hafl_gguf_type_t type;
    union {
        uint64_t u;              //  UINT8, UINT16, UINT32, UINT64 (zero-extended)
        int64_t i;               //  INT8, INT16, INT32, INT64 (sign-extended)
        float f32;               //  FLOAT32
        double f64;              //  FLOAT64
        bool b;                  //  BOOL
        hafl_gguf_str_t str;     //  STRING
        hafl_gguf_array_t array; //  ARRAY
    };
} hafl_gguf_value_t;

typedef struct {
    const char *key; //  NUL-terminated, owned by the reader
    hafl_gguf_value_t value;
} hafl_gguf_kv_t;

typedef struct {
    const char *name;                  //  NUL-terminated, owned by the reader
    uint32_t n_dims;                   //  1..HAFL_GGUF_MAX_DIMS
    uint64_t dims[HAFL_GGUF_MAX_DIMS]; //  dims[0] fastest (row length); unused ones are 1
    uint32_t type;                     //  ggml type id (hafl_quant_type_t)
    uint64_t offset;                   //  from the start of the data section
    uint64_t n_elements;               //  product of dims, < 2^63
    uint64_t n_bytes;                  //  exact byte length of its data
    const uint8_t *data;               //  its n_bytes in the file's memory (any alignment)
} hafl_gguf_tensor_t;

typedef struct hafl_gguf_t hafl_gguf_t;

//  Map and validate the file at path. The reader is the caller's (hafl_gguf_destroy); NULL with
//  a one-line reason prefixed by the path on failure.
hafl_gguf_t *hafl_gguf_open(const char *path, char *err, size_t errlen);
//  Validate size bytes at data (borrowed: must outlive the reader). Errors have no prefix.
hafl_gguf_t *hafl_gguf_open_memory(const void *data, size_t size, char *err, size_t errlen);
void hafl_gguf_destroy(hafl_gguf_t **self_p);

//  The path it was opened from, or NULL for a memory buffer.
const char *hafl_gguf_path(const hafl_gguf_t *self);
uint32_t hafl_gguf_version(const hafl_gguf_t *self);
uint32_t hafl_gguf_alignment(const hafl_gguf_t *self);
//  Byte offset of the data section in the file.
uint64_t hafl_gguf_data_offset(const hafl_gguf_t *self);
//  The whole file's bytes (for digests); its length in *size.
const uint8_t *hafl_gguf_bytes(const hafl_gguf_t *self, size_t *size);
//  `general.architecture` (NUL-terminated, at most 64 printable characters), or NULL if absent.
const char *hafl_gguf_architecture(const hafl_gguf_t *self);

//  Metadata in file order; index < hafl_gguf_kv_count.
size_t hafl_gguf_kv_count(const hafl_gguf_t *self);
const hafl_gguf_kv_t *hafl_gguf_kv_at(const hafl_gguf_t *self, size_t index);
//  The entry with this key, or NULL (O(log n)).
const hafl_gguf_kv_t *hafl_gguf_find(const hafl_gguf_t *self, const char *key);

//  Typed getters: 0, or -1 with a one-line reason naming the key when it is missing, has
//  another type, or its value does not fit. Integer getters accept any integer type whose value
//  is in range; hafl_gguf_get_f32 accepts FLOAT32, or FLOAT64 rounded to float.
int hafl_gguf_get_u32(const hafl_gguf_t *self, const char *key, uint32_t *out, char *err,
                      size_t errlen);
int hafl_gguf_get_u64(const hafl_gguf_t *self, const char *key, uint64_t *out, char *err,
                      size_t errlen);
int hafl_gguf_get_i32(const hafl_gguf_t *self, const char *key, int32_t *out, char *err,
                      size_t errlen);
int hafl_gguf_get_f32(const hafl_gguf_t *self, const char *key, float *out, char *err,
                      size_t errlen);
int hafl_gguf_get_bool(const hafl_gguf_t *self, const char *key, bool *out, char *err,
                       size_t errlen);
int hafl_gguf_get_str(const hafl_gguf_t *self, const char *key, hafl_gguf_str_t *out, char *err,
                      size_t errlen);
//  Whole arrays of one element type, into a new array the caller frees (*out is NULL and
//  *count 0 for an empty array and on failure). Strings stay views into the file.
int hafl_gguf_get_strings(const hafl_gguf_t *self, const char *key, hafl_gguf_str_t **out,
                          uint64_t *count, char *err, size_t errlen);
int hafl_gguf_get_f32s(const hafl_gguf_t *self, const char *key, float **out, uint64_t *count,
                       char *err, size_t errlen);
int hafl_gguf_get_i32s(const hafl_gguf_t *self, const char *key, int32_t **out, uint64_t *count,
                       char *err, size_t errlen);

//  Element `index` of an array (which came from an opened reader or passed hafl_gguf_value_check).
//  O(1) for fixed-size elements, O(index) for strings and arrays. 0, or -1 when out of range.
int hafl_gguf_array_get(const hafl_gguf_array_t *array, uint64_t index, hafl_gguf_value_t *out);
//  Whether a value built by hand (e.g. for the writer) is well-formed: a known type, a valid
//  bool, and for arrays an encoding of exactly count elements in exactly size bytes, within the
//  caps. 0, or -1 with a reason.
int hafl_gguf_value_check(const hafl_gguf_value_t *value, char *err, size_t errlen);
//  The spec's name of a value type ("uint32", "array"), or "unknown".
const char *hafl_gguf_type_name(uint32_t type);
//  Bytes of one value of a fixed-size type (1 for UINT8, INT8, BOOL; 2; 4; 8), 0 for STRING,
//  ARRAY and unknown types.
uint64_t hafl_gguf_type_size(uint32_t type);

//  Tensors in file order; index < hafl_gguf_tensor_count.
size_t hafl_gguf_tensor_count(const hafl_gguf_t *self);
const hafl_gguf_tensor_t *hafl_gguf_tensor_at(const hafl_gguf_t *self, size_t index);
//  The tensor with this name, or NULL (O(log n)).
const hafl_gguf_tensor_t *hafl_gguf_tensor(const hafl_gguf_t *self, const char *name);

#endif
