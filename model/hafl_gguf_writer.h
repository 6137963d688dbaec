/*  hafl_gguf_writer: builds a GGUF version 3 file (the layout hafl_gguf.h describes) in memory
    and hands it out as bytes or writes it atomically to disk.

    Metadata entries are written in the order they are added; tensor infos in the order tensors
    are added, each tensor's data at the next multiple of the alignment after the previous one,
    zero-padded to a multiple of the alignment as ggml's writer does, so every file it makes is
    one hafl_gguf_open accepts and llama.cpp's reader expects. An alignment other than the
    default 32 is recorded as the first entry, `general.alignment` (uint32); callers do not add
    that key themselves.

    Every add checks its input the way the reader would (key and tensor names non-empty
    printable ASCII within the caps and unique, known value and tensor types, array encodings,
    1..4 non-zero dimensions, rows a whole number of blocks, data exactly the size its shape
    takes) and copies what it is given. The first failure is kept: that add and every later one
    return -1, and hafl_gguf_writer_to_memory / _save fail with that reason, so a caller may add
    everything and check once at the end.
*/
#ifndef HAFL_GGUF_WRITER_H
#define HAFL_GGUF_WRITER_H

#include "hafl_gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hafl_gguf_writer_t hafl_gguf_writer_t;

//  A new, empty writer (caller destroys). alignment 0 means the default 32; otherwise a power
//  of two up to HAFL_GGUF_MAX_ALIGNMENT. NULL for another alignment or out of memory.
hafl_gguf_writer_t *hafl_gguf_writer_new(uint32_t alignment);
void hafl_gguf_writer_destroy(hafl_gguf_writer_t **self_p);

//  Any value. A string is copied from str.data; an array from its encoding (array.data holds
//  exactly array.count elements of array.type in array.size bytes, as a reader's array views
//  do; hafl_gguf_value_check is applied), so nested arrays and copies of another file's
//  metadata are written as they are.
int hafl_gguf_writer_add_value(hafl_gguf_writer_t *self, const char *key,
                               const hafl_gguf_value_t *value);
int hafl_gguf_writer_add_u32(hafl_gguf_writer_t *self, const char *key, uint32_t value);
int hafl_gguf_writer_add_i32(hafl_gguf_writer_t *self, const char *key, int32_t value);
int hafl_gguf_writer_add_u64(hafl_gguf_writer_t *self, const char *key, uint64_t value);
int hafl_gguf_writer_add_f32(hafl_gguf_writer_t *self, const char *key, float value);
int hafl_gguf_writer_add_bool(hafl_gguf_writer_t *self, const char *key, bool value);
//  A NUL-terminated string.
int hafl_gguf_writer_add_string(hafl_gguf_writer_t *self, const char *key, const char *value);
//  An array of a fixed-size type from a C array of it: uint8_t[] .. int64_t[], float[],
//  double[], or uint8_t[] of 0/1 for BOOL.
int hafl_gguf_writer_add_array(hafl_gguf_writer_t *self, const char *key,
                               hafl_gguf_type_t element_type, const void *elements, uint64_t count);
//  An array of count NUL-terminated strings.
int hafl_gguf_writer_add_strings(hafl_gguf_writer_t *self, const char *key,
                                 const char *const *strings, uint64_t count);

//  A tensor of ggml type `type` (hafl_quant_type_t) with dims[0] fastest: `data` holds exactly
//  the size bytes its shape takes in that type (little-endian floats for F32, binary16 for F16,
//  ggml's blocks for quantised types, written as given).
int hafl_gguf_writer_add_tensor(hafl_gguf_writer_t *self, const char *name, uint32_t type,
                                uint32_t n_dims, const uint64_t *dims, const void *data,
                                size_t size);
//  A tensor of `type` from float32 values, encoded by hafl_quant_quantize (F32, F16, BF16 or
//  Q8_0; F16 and BF16 round to nearest, ties to even).
int hafl_gguf_writer_add_tensor_floats(hafl_gguf_writer_t *self, const char *name, uint32_t type,
                                       uint32_t n_dims, const uint64_t *dims, const float *values);

//  The first failure's reason, or NULL while every add has succeeded.
const char *hafl_gguf_writer_error(const hafl_gguf_writer_t *self);

//  The whole file as a new buffer (caller frees) of *size bytes. 0, or -1 with the reason.
int hafl_gguf_writer_to_memory(const hafl_gguf_writer_t *self, uint8_t **out, size_t *size,
                               char *err, size_t errlen);
//  The whole file written atomically to path (hafl_file_write_atomic). 0, or -1 with a reason.
int hafl_gguf_writer_save(const hafl_gguf_writer_t *self, const char *path, char *err,
                          size_t errlen);

#endif
