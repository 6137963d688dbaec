/*  hafl_mpreader: a bounds-checked, allocation-free MessagePack pull reader over one buffer.

    The wire decoder (hafl_msg.c) reads untrusted frames with it. Each call consumes exactly one
    value header (and, for str/bin/ext, its payload) or fails without moving the cursor past the
    end of the buffer; it never reads a byte outside [data, data + size). Arrays and maps return
    only their element count: the caller reads the elements that follow. Strings and bins come
    back as pointers into the buffer (nothing is copied). Integers are read in any MessagePack
    width and returned as signed or unsigned 64-bit values; floats in either width.

    The reader holds no resources; it is a plain struct on the caller's stack.
*/
#ifndef HAFL_MPREADER_H
#define HAFL_MPREADER_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    HAFL_MP_NIL = 1,
    HAFL_MP_BOOL,
    HAFL_MP_UINT,  //  u is set (every non-negative integer, whatever its encoding)
    HAFL_MP_INT,   //  i is set (negative integers only)
    HAFL_MP_FLOAT, //  f is set; wide tells float 64 from float 32
    HAFL_MP_STR,   //  ptr, len
    HAFL_MP_BIN,   //  ptr, len
    HAFL_MP_ARRAY, //  len elements follow
    HAFL_MP_MAP,   //  len key/value pairs follow
    HAFL_MP_EXT,   //  ptr, len (payload), ext_type
} hafl_mp_kind_t;

typedef enum {
    HAFL_MP_OK = 0,
    HAFL_MP_ETRUNCATED = -1, //  the buffer ends inside the value
    HAFL_MP_EINVALID = -2,   //  byte 0xc1, which MessagePack never uses
    HAFL_MP_EDEPTH = -3,     //  hafl_mpreader_skip: nesting deeper than allowed
} hafl_mp_status_t;

typedef struct {
    hafl_mp_kind_t kind;
    uint8_t tag; //  the first byte of the value, for error messages
    int wide;    //  FLOAT: 1 for float 64
    int8_t ext_type;
    uint32_t len;
    uint64_t u;
    int64_t i;
    double f;
    const uint8_t *ptr;
} hafl_mp_item_t;

typedef struct {
    const uint8_t *p;   //  next byte to read
    const uint8_t *end; //  one past the last byte
} hafl_mpreader_t;

static inline void hafl_mpreader_init(hafl_mpreader_t *self, const void *data, size_t size)
{
    self->p = (const uint8_t *)data;
    self->end = self->p + size;
}

//  Bytes not consumed yet.
static inline size_t hafl_mpreader_remaining(const hafl_mpreader_t *self)
{
    return (size_t)(self->end - self->p);
}

//  Read one value header into item. Returns HAFL_MP_OK or a negative hafl_mp_status_t; on
//  failure the cursor is left where it was.
int hafl_mpreader_next(hafl_mpreader_t *self, hafl_mp_item_t *item);

//  Skip one whole value, nested arrays and maps included, at most max_depth levels deep.
//  Work is linear in the bytes skipped. Returns HAFL_MP_OK or a negative hafl_mp_status_t.
int hafl_mpreader_skip(hafl_mpreader_t *self, int max_depth);

#endif
