/*  hafl_gguf: the GGUF reader. See hafl_gguf.h for the format and the checks.

    Parsing is one pass over the file with a cursor that knows how many bytes remain; every
    read goes through s_take, which refuses to step past the end, so a length or count is always
    compared with the bytes left before it is used. Counts that size an allocation (metadata
    entries, tensor infos) are capped and then bounded by the smallest encoding each could have,
    so a short file cannot make the reader allocate much. Values are decoded by one recursive
    function (s_value_read) that both validates at open and serves later accessors. Keys and
    tensor names are checked to be printable ASCII before any message quotes them, so every
    error stays on one line. Lookups by name go through arrays of pointers sorted by name, which
    also find duplicates; a second sort by offset finds overlapping tensors.
*/
#include "hafl_gguf.h"
#include "hafl_quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_HEADER_BYTES     24
#define S_MAX_ARCHITECTURE 64
//  The smallest possible encodings: a key of 1 byte with a 1-byte value (8 + 1 + 4 + 1), and
//  a tensor info with a 1-byte name and one dimension (8 + 1 + 4 + 8 + 4 + 8).
#define S_MIN_KV_BYTES     14
#define S_MIN_TENSOR_BYTES 33
//  The smallest array elements of variable size: an empty string (its length), an empty array
//  (element type and count).
#define S_MIN_STRING_BYTES 8
#define S_MIN_ARRAY_BYTES  12

struct hafl_gguf_t {
    char *path;           //  owned; NULL for a memory buffer
    const uint8_t *bytes; //  the whole file
    size_t size;
    bool mapped;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    char *architecture;  //  owned, or NULL
    hafl_gguf_kv_t *kvs; //  [n_kv] in file order; keys owned
    size_t n_kv;
    const hafl_gguf_kv_t **kv_by_key; //  [n_kv] sorted by key
    hafl_gguf_tensor_t *tensors;      //  [n_tensors] in file order; names owned
    size_t n_tensors;
    const hafl_gguf_tensor_t **tensor_by_name; //  [n_tensors] sorted by name
};

typedef struct {
    const uint8_t *p;
    uint64_t left;
} s_cursor_t;

//  What an empty file or buffer points at, so no cursor ever holds NULL.
static const uint8_t s_no_bytes[1];

static const char *s_type_names[HAFL_GGUF_TYPE_COUNT] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64"};

const char *hafl_gguf_type_name(uint32_t type)
{
    return type < HAFL_GGUF_TYPE_COUNT ? s_type_names[type] : "unknown";
}

uint64_t hafl_gguf_type_size(uint32_t type)
{
    switch (type) {
    case HAFL_GGUF_UINT8:
    case HAFL_GGUF_INT8:
    case HAFL_GGUF_BOOL:
        return 1;
    case HAFL_GGUF_UINT16:
    case HAFL_GGUF_INT16:
        return 2;
    case HAFL_GGUF_UINT32:
    case HAFL_GGUF_INT32:
    case HAFL_GGUF_FLOAT32:
        return 4;
    case HAFL_GGUF_UINT64:
    case HAFL_GGUF_INT64:
    case HAFL_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static bool s_take(s_cursor_t *c, uint64_t n, const uint8_t **out)
{
    if (n > c->left)
        return false;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

static uint16_t s_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t s_le64(const uint8_t *p)
{
    return (uint64_t)s_le32(p) | (uint64_t)s_le32(p + 4) << 32;
}

static bool s_u32(s_cursor_t *c, uint32_t *v)
{
    const uint8_t *p;
    if (!s_take(c, 4, &p))
        return false;
    *v = s_le32(p);
    return true;
}

static bool s_u64(s_cursor_t *c, uint64_t *v)
{
    const uint8_t *p;
    if (!s_take(c, 8, &p))
        return false;
    *v = s_le64(p);
    return true;
}

static int s_value_read(s_cursor_t *c, uint32_t type, int depth, hafl_gguf_value_t *out, char *why,
                        size_t whylen);

//  The elements of an array whose header (element type, count) has been read: validates all
//  count of them and advances past them. depth is the nesting level of the array itself.
static int s_array_body_read(s_cursor_t *c, uint32_t type, uint64_t count, int depth,
                             hafl_gguf_array_t *out, char *why, size_t whylen)
{
    if (type >= HAFL_GGUF_TYPE_COUNT) {
        snprintf(why, whylen, "unknown array element type %u", type);
        return -1;
    }
    const uint8_t *start = c->p;
    uint64_t fixed = hafl_gguf_type_size(type);
    if (fixed) {
        const uint8_t *elements;
        if (count > c->left / fixed || !s_take(c, count * fixed, &elements)) {
            snprintf(why, whylen, "truncated: array of %llu %s needs more than the %llu bytes left",
                     (unsigned long long)count, s_type_names[type], (unsigned long long)c->left);
            return -1;
        }
        if (type == HAFL_GGUF_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (elements[i] > 1) {
                    snprintf(why, whylen, "element %llu: bool value %u is neither 0 nor 1",
                             (unsigned long long)i, elements[i]);
                    return -1;
                }
    } else {
        uint64_t smallest = type == HAFL_GGUF_STRING ? S_MIN_STRING_BYTES : S_MIN_ARRAY_BYTES;
        if (count > c->left / smallest) {
            snprintf(why, whylen, "truncated: array of %llu %ss cannot fit in the %llu bytes left",
                     (unsigned long long)count, s_type_names[type], (unsigned long long)c->left);
            return -1;
        }
        for (uint64_t i = 0; i < count; i++) {
            hafl_gguf_value_t element;
            char inner[192];
            if (s_value_read(c, type, depth + 1, &element, inner, sizeof inner) != 0) {
                snprintf(why, whylen, "element %llu: %s", (unsigned long long)i, inner);
                return -1;
            }
        }
    }
    *out = (hafl_gguf_array_t){(hafl_gguf_type_t)type, count, start, (uint64_t)(c->p - start)};
    return 0;
}

//  Decode one value of `type` at the cursor and advance past it. depth counts the arrays this
//  value sits in. 0, or -1 with the reason in why.
static int s_value_read(s_cursor_t *c, uint32_t type, int depth, hafl_gguf_value_t *out, char *why,
                        size_t whylen)
{
    memset(out, 0, sizeof *out);
    out->type = (hafl_gguf_type_t)type;
    const uint8_t *p;
    uint64_t fixed = hafl_gguf_type_size(type);
    if (fixed) {
        if (!s_take(c, fixed, &p)) {
            snprintf(why, whylen, "truncated %s value", s_type_names[type]);
            return -1;
        }
        uint32_t bits32;
        uint64_t bits64;
        switch (type) {
        case HAFL_GGUF_UINT8:
            out->u = p[0];
            break;
        case HAFL_GGUF_INT8:
            out->i = (int8_t)p[0];
            break;
        case HAFL_GGUF_UINT16:
            out->u = s_le16(p);
            break;
        case HAFL_GGUF_INT16:
            out->i = (int16_t)s_le16(p);
            break;
        case HAFL_GGUF_UINT32:
            out->u = s_le32(p);
            break;
        case HAFL_GGUF_INT32:
            out->i = (int32_t)s_le32(p);
            break;
        case HAFL_GGUF_FLOAT32:
            bits32 = s_le32(p);
            memcpy(&out->f32, &bits32, 4);
            break;
        case HAFL_GGUF_BOOL:
            if (p[0] > 1) {
                snprintf(why, whylen, "bool value %u is neither 0 nor 1", p[0]);
                return -1;
            }
            out->b = p[0] == 1;
            break;
        case HAFL_GGUF_UINT64:
            out->u = s_le64(p);
            break;
        case HAFL_GGUF_INT64:
            out->i = (int64_t)s_le64(p);
            break;
        default: //  HAFL_GGUF_FLOAT64
            bits64 = s_le64(p);
            memcpy(&out->f64, &bits64, 8);
            break;
        }
        return 0;
    }
    if (type == HAFL_GGUF_STRING) {
        uint64_t len;
        if (!s_u64(c, &len)) {
            snprintf(why, whylen, "truncated string length");
            return -1;
        }
        if (len > HAFL_GGUF_MAX_STRING) {
            snprintf(why, whylen, "string of %llu bytes exceeds the cap of %d",
                     (unsigned long long)len, HAFL_GGUF_MAX_STRING);
            return -1;
        }
        if (!s_take(c, len, &p)) {
            snprintf(why, whylen, "truncated: string of %llu bytes, %llu left",
                     (unsigned long long)len, (unsigned long long)c->left);
            return -1;
        }
        out->str = (hafl_gguf_str_t){(const char *)p, len};
        return 0;
    }
    if (type == HAFL_GGUF_ARRAY) {
        if (depth >= HAFL_GGUF_MAX_DEPTH) {
            snprintf(why, whylen, "arrays nested deeper than %d levels", HAFL_GGUF_MAX_DEPTH);
            return -1;
        }
        uint32_t element_type;
        uint64_t count;
        if (!s_u32(c, &element_type) || !s_u64(c, &count)) {
            snprintf(why, whylen, "truncated array header");
            return -1;
        }
        return s_array_body_read(c, element_type, count, depth, &out->array, why, whylen);
    }
    snprintf(why, whylen, "unknown value type %u", type);
    return -1;
}

//  A key or tensor name: 1..cap printable ASCII bytes, returned as a new NUL-terminated copy.
static int s_name_read(s_cursor_t *c, uint64_t cap, char **out, char *why, size_t whylen)
{
    uint64_t len;
    const uint8_t *p;
    if (!s_u64(c, &len)) {
        snprintf(why, whylen, "truncated length");
        return -1;
    }
    if (len == 0) {
        snprintf(why, whylen, "empty");
        return -1;
    }
    if (len > cap) {
        snprintf(why, whylen, "length %llu exceeds the cap of %llu", (unsigned long long)len,
                 (unsigned long long)cap);
        return -1;
    }
    if (!s_take(c, len, &p)) {
        snprintf(why, whylen, "truncated: %llu bytes, %llu left", (unsigned long long)len,
                 (unsigned long long)c->left);
        return -1;
    }
    for (uint64_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] > 0x7e) {
            snprintf(why, whylen, "byte %llu is 0x%02x, not printable ASCII", (unsigned long long)i,
                     p[i]);
            return -1;
        }
    *out = strndup((const char *)p, (size_t)len);
    if (!*out) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

//  A one-line failure, prefixed by the path when there is one. Always returns -1.
static int s_fail(const hafl_gguf_t *self, char *err, size_t errlen, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static int s_fail(const hafl_gguf_t *self, char *err, size_t errlen, const char *format, ...)
{
    if (!err || errlen == 0)
        return -1;
    size_t used = 0;
    if (self->path) {
        int n = snprintf(err, errlen, "%s: ", self->path);
        used = n < 0 ? 0 : ((size_t)n < errlen ? (size_t)n : errlen - 1);
    }
    va_list args;
    va_start(args, format);
    vsnprintf(err + used, errlen - used, format, args);
    va_end(args);
    return -1;
}

static int s_kv_order(const void *a, const void *b)
{
    const hafl_gguf_kv_t *x = *(const hafl_gguf_kv_t *const *)a;
    const hafl_gguf_kv_t *y = *(const hafl_gguf_kv_t *const *)b;
    return strcmp(x->key, y->key);
}

static int s_tensor_order(const void *a, const void *b)
{
    const hafl_gguf_tensor_t *x = *(const hafl_gguf_tensor_t *const *)a;
    const hafl_gguf_tensor_t *y = *(const hafl_gguf_tensor_t *const *)b;
    return strcmp(x->name, y->name);
}

//  By offset; equal offsets (an overlap) by name, so the message does not depend on qsort.
static int s_tensor_offset_order(const void *a, const void *b)
{
    const hafl_gguf_tensor_t *x = *(const hafl_gguf_tensor_t *const *)a;
    const hafl_gguf_tensor_t *y = *(const hafl_gguf_tensor_t *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int s_header_read(hafl_gguf_t *self, s_cursor_t *c, uint64_t *n_tensors, uint64_t *n_kv,
                         char *err, size_t errlen)
{
    if (self->size >= 4 && memcmp(self->bytes, "GGUF", 4) != 0)
        return s_fail(self, err, errlen, "not a GGUF file: magic %02x %02x %02x %02x, not \"GGUF\"",
                      self->bytes[0], self->bytes[1], self->bytes[2], self->bytes[3]);
    if (self->size < S_HEADER_BYTES)
        return s_fail(self, err, errlen, "truncated: %zu bytes, shorter than the %d-byte header",
                      self->size, S_HEADER_BYTES);
    const uint8_t *p = NULL;
    if (!s_take(c, S_HEADER_BYTES, &p)) //  cannot fail after the size check; said for the reader
        return s_fail(self, err, errlen, "truncated: shorter than the %d-byte header",
                      S_HEADER_BYTES);
    self->version = s_le32(p + 4);
    *n_tensors = s_le64(p + 8);
    *n_kv = s_le64(p + 16);
    if (self->version == 0x02000000 || self->version == 0x03000000)
        return s_fail(self, err, errlen,
                      "big-endian GGUF (version %u byte-swapped) is not supported",
                      self->version >> 24);
    if (self->version != 2 && self->version != 3)
        return s_fail(self, err, errlen, "GGUF version %u is not supported (only 2 and 3)",
                      self->version);
    if (*n_kv > HAFL_GGUF_MAX_KV)
        return s_fail(self, err, errlen, "metadata count %llu exceeds the cap of %d",
                      (unsigned long long)*n_kv, HAFL_GGUF_MAX_KV);
    if (*n_tensors > HAFL_GGUF_MAX_TENSORS)
        return s_fail(self, err, errlen, "tensor count %llu exceeds the cap of %d",
                      (unsigned long long)*n_tensors, HAFL_GGUF_MAX_TENSORS);
    //  Both counts are capped, so this sum cannot overflow.
    uint64_t least = *n_kv * S_MIN_KV_BYTES + *n_tensors * S_MIN_TENSOR_BYTES;
    if (least > c->left)
        return s_fail(self, err, errlen,
                      "truncated: %llu metadata entries and %llu tensor infos need at least %llu "
                      "bytes, %llu follow the header",
                      (unsigned long long)*n_kv, (unsigned long long)*n_tensors,
                      (unsigned long long)least, (unsigned long long)c->left);
    return 0;
}

static int s_metadata_read(hafl_gguf_t *self, s_cursor_t *c, uint64_t n_kv, char *err,
                           size_t errlen)
{
    char why[256];
    self->kvs = calloc(n_kv ? n_kv : 1, sizeof(hafl_gguf_kv_t));
    self->kv_by_key = calloc(n_kv ? n_kv : 1, sizeof(hafl_gguf_kv_t *));
    if (!self->kvs || !self->kv_by_key)
        return s_fail(self, err, errlen, "out of memory for %llu metadata entries",
                      (unsigned long long)n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        hafl_gguf_kv_t *kv = &self->kvs[i];
        char *key = NULL;
        if (s_name_read(c, HAFL_GGUF_MAX_KEY, &key, why, sizeof why) != 0)
            return s_fail(self, err, errlen, "metadata entry %llu: key %s", (unsigned long long)i,
                          why);
        kv->key = key;
        self->kv_by_key[i] = kv;
        self->n_kv = (size_t)i + 1;
        uint32_t type;
        if (!s_u32(c, &type))
            return s_fail(self, err, errlen, "key '%s': truncated before its value type", key);
        if (s_value_read(c, type, 0, &kv->value, why, sizeof why) != 0)
            return s_fail(self, err, errlen, "key '%s': %s", key, why);
    }
    qsort(self->kv_by_key, self->n_kv, sizeof(hafl_gguf_kv_t *), s_kv_order);
    for (size_t i = 1; i < self->n_kv; i++)
        if (strcmp(self->kv_by_key[i - 1]->key, self->kv_by_key[i]->key) == 0)
            return s_fail(self, err, errlen, "key '%s' appears twice", self->kv_by_key[i]->key);

    self->alignment = HAFL_GGUF_DEFAULT_ALIGNMENT;
    const hafl_gguf_kv_t *kv = hafl_gguf_find(self, "general.alignment");
    if (kv) {
        if (kv->value.type != HAFL_GGUF_UINT32)
            return s_fail(self, err, errlen,
                          "key 'general.alignment': has type %s, expected uint32",
                          s_type_names[kv->value.type]);
        uint64_t a = kv->value.u;
        if (a == 0 || (a & (a - 1)) != 0 || a > HAFL_GGUF_MAX_ALIGNMENT)
            return s_fail(self, err, errlen,
                          "key 'general.alignment': %llu is not a power of two in 1..%d",
                          (unsigned long long)a, HAFL_GGUF_MAX_ALIGNMENT);
        self->alignment = (uint32_t)a;
    }
    kv = hafl_gguf_find(self, "general.architecture");
    if (kv) {
        if (kv->value.type != HAFL_GGUF_STRING)
            return s_fail(self, err, errlen,
                          "key 'general.architecture': has type %s, expected string",
                          s_type_names[kv->value.type]);
        const hafl_gguf_str_t *s = &kv->value.str;
        bool printable = s->len >= 1 && s->len <= S_MAX_ARCHITECTURE;
        for (uint64_t i = 0; printable && i < s->len; i++)
            printable = s->data[i] > 0x20 && s->data[i] < 0x7f;
        if (!printable)
            return s_fail(self, err, errlen,
                          "key 'general.architecture': not a name of 1 to %d printable characters "
                          "without spaces",
                          S_MAX_ARCHITECTURE);
        self->architecture = strndup(s->data, (size_t)s->len);
        if (!self->architecture)
            return s_fail(self, err, errlen, "out of memory");
    }
    return 0;
}

static int s_tensor_info_read(hafl_gguf_t *self, s_cursor_t *c, uint64_t index, char *err,
                              size_t errlen)
{
    char why[256];
    hafl_gguf_tensor_t *t = &self->tensors[index];
    char *name = NULL;
    if (s_name_read(c, HAFL_GGUF_MAX_NAME, &name, why, sizeof why) != 0)
        return s_fail(self, err, errlen, "tensor %llu: name %s", (unsigned long long)index, why);
    t->name = name;
    self->tensor_by_name[index] = t;
    self->n_tensors = (size_t)index + 1;
    if (!s_u32(c, &t->n_dims))
        return s_fail(self, err, errlen, "tensor '%s': truncated info", name);
    if (t->n_dims == 0 || t->n_dims > HAFL_GGUF_MAX_DIMS)
        return s_fail(self, err, errlen, "tensor '%s': n_dims = %u (1 to %d allowed)", name,
                      t->n_dims, HAFL_GGUF_MAX_DIMS);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < HAFL_GGUF_MAX_DIMS; d++) {
        t->dims[d] = 1;
        if (d >= t->n_dims)
            continue;
        if (!s_u64(c, &t->dims[d]))
            return s_fail(self, err, errlen, "tensor '%s': truncated info", name);
        if (t->dims[d] == 0)
            return s_fail(self, err, errlen, "tensor '%s': dimension %u is 0", name, d);
        //  ggml counts elements in int64_t: the product must stay below 2^63.
        if (t->dims[d] > (uint64_t)INT64_MAX / elements)
            return s_fail(self, err, errlen,
                          "tensor '%s': dimension %u (%llu) makes the element count overflow "
                          "63 bits",
                          name, d, (unsigned long long)t->dims[d]);
        elements *= t->dims[d];
    }
    t->n_elements = elements;
    if (!s_u32(c, &t->type) || !s_u64(c, &t->offset))
        return s_fail(self, err, errlen, "tensor '%s': truncated info", name);
    const hafl_quant_traits_t *traits = hafl_quant_traits(t->type);
    if (!traits)
        return s_fail(self, err, errlen, "tensor '%s': unknown type %u", name, t->type);
    if (t->dims[0] % traits->block_elements != 0)
        return s_fail(self, err, errlen,
                      "tensor '%s': row length %llu is not a multiple of the %s block of %u", name,
                      (unsigned long long)t->dims[0], traits->name, traits->block_elements);
    if (hafl_quant_bytes(t->type, elements, &t->n_bytes) != 0)
        return s_fail(self, err, errlen, "tensor '%s': %llu %s values overflow a 64-bit size", name,
                      (unsigned long long)elements, traits->name);
    return 0;
}

static int s_tensors_read(hafl_gguf_t *self, s_cursor_t *c, uint64_t n_tensors, char *err,
                          size_t errlen)
{
    self->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(hafl_gguf_tensor_t));
    self->tensor_by_name = calloc(n_tensors ? n_tensors : 1, sizeof(hafl_gguf_tensor_t *));
    if (!self->tensors || !self->tensor_by_name)
        return s_fail(self, err, errlen, "out of memory for %llu tensor infos",
                      (unsigned long long)n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++)
        if (s_tensor_info_read(self, c, i, err, errlen) != 0)
            return -1;

    uint64_t end_of_infos = (uint64_t)(c->p - self->bytes);
    self->data_offset =
        end_of_infos + (self->alignment - end_of_infos % self->alignment) % self->alignment;
    uint64_t data_bytes = self->size > self->data_offset ? self->size - self->data_offset : 0;
    for (size_t i = 0; i < self->n_tensors; i++) {
        hafl_gguf_tensor_t *t = &self->tensors[i];
        if (t->offset % self->alignment != 0)
            return s_fail(self, err, errlen,
                          "tensor '%s': offset %llu is not a multiple of the alignment %u", t->name,
                          (unsigned long long)t->offset, self->alignment);
        if (t->offset > data_bytes || t->n_bytes > data_bytes - t->offset)
            return s_fail(self, err, errlen,
                          "tensor '%s': %llu bytes at offset %llu extend past the end of the file "
                          "(data section of %llu bytes)",
                          t->name, (unsigned long long)t->n_bytes, (unsigned long long)t->offset,
                          (unsigned long long)data_bytes);
        t->data = self->bytes + self->data_offset + t->offset;
    }
    if (self->n_tensors == 0)
        return 0;
    qsort(self->tensor_by_name, self->n_tensors, sizeof(hafl_gguf_tensor_t *), s_tensor_order);
    for (size_t i = 1; i < self->n_tensors; i++)
        if (strcmp(self->tensor_by_name[i - 1]->name, self->tensor_by_name[i]->name) == 0)
            return s_fail(self, err, errlen, "tensor '%s' appears twice",
                          self->tensor_by_name[i]->name);
    const hafl_gguf_tensor_t **by_offset = malloc(self->n_tensors * sizeof *by_offset);
    if (!by_offset)
        return s_fail(self, err, errlen, "out of memory");
    memcpy(by_offset, self->tensor_by_name, self->n_tensors * sizeof *by_offset);
    qsort(by_offset, self->n_tensors, sizeof *by_offset, s_tensor_offset_order);
    for (size_t i = 1; i < self->n_tensors; i++) {
        const hafl_gguf_tensor_t *a = by_offset[i - 1], *b = by_offset[i];
        //  Both extents lie inside the file, so the sum cannot overflow.
        if (a->offset + a->n_bytes > b->offset) {
            s_fail(self, err, errlen, "tensor '%s': its data overlaps tensor '%s'", b->name,
                   a->name);
            free(by_offset);
            return -1;
        }
    }
    free(by_offset);
    return 0;
}

static int s_parse(hafl_gguf_t *self, char *err, size_t errlen)
{
    s_cursor_t c = {self->bytes, self->size};
    uint64_t n_tensors = 0, n_kv = 0;
    if (s_header_read(self, &c, &n_tensors, &n_kv, err, errlen) != 0 ||
        s_metadata_read(self, &c, n_kv, err, errlen) != 0 ||
        s_tensors_read(self, &c, n_tensors, err, errlen) != 0)
        return -1;
    return 0;
}

hafl_gguf_t *hafl_gguf_open_memory(const void *data, size_t size, char *err, size_t errlen)
{
    hafl_gguf_t *self = calloc(1, sizeof(hafl_gguf_t));
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->bytes = data ? data : s_no_bytes;
    self->size = data ? size : 0;
    if (s_parse(self, err, errlen) != 0)
        hafl_gguf_destroy(&self);
    return self;
}

hafl_gguf_t *hafl_gguf_open(const char *path, char *err, size_t errlen)
{
    hafl_gguf_t *self = calloc(1, sizeof(hafl_gguf_t));
    if (!self || !(self->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(self);
        return NULL;
    }
    self->bytes = s_no_bytes;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        s_fail(self, err, errlen, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        s_fail(self, err, errlen, "not a regular file");
        goto fail;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        s_fail(self, err, errlen, "too large to map on this machine");
        goto fail;
    }
    if (st.st_size > 0) {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            s_fail(self, err, errlen, "cannot map: %s", strerror(errno));
            goto fail;
        }
        self->bytes = map;
        self->size = (size_t)st.st_size;
        self->mapped = true;
    }
    close(fd);
    fd = -1;
    if (s_parse(self, err, errlen) != 0)
        goto fail;
    return self;
fail:
    if (fd >= 0)
        close(fd);
    hafl_gguf_destroy(&self);
    return NULL;
}

void hafl_gguf_destroy(hafl_gguf_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_gguf_t *self = *self_p;
    for (size_t i = 0; i < self->n_kv; i++)
        free((char *)self->kvs[i].key);
    for (size_t i = 0; i < self->n_tensors; i++)
        free((char *)self->tensors[i].name);
    free(self->kvs);
    free(self->kv_by_key);
    free(self->tensors);
    free(self->tensor_by_name);
    free(self->architecture);
    if (self->mapped)
        munmap((void *)self->bytes, self->size);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const char *hafl_gguf_path(const hafl_gguf_t *self)
{
    return self->path;
}

uint32_t hafl_gguf_version(const hafl_gguf_t *self)
{
    return self->version;
}

uint32_t hafl_gguf_alignment(const hafl_gguf_t *self)
{
    return self->alignment;
}

uint64_t hafl_gguf_data_offset(const hafl_gguf_t *self)
{
    return self->data_offset;
}

const uint8_t *hafl_gguf_bytes(const hafl_gguf_t *self, size_t *size)
{
    *size = self->size;
    return self->bytes;
}

const char *hafl_gguf_architecture(const hafl_gguf_t *self)
{
    return self->architecture;
}

size_t hafl_gguf_kv_count(const hafl_gguf_t *self)
{
    return self->n_kv;
}

const hafl_gguf_kv_t *hafl_gguf_kv_at(const hafl_gguf_t *self, size_t index)
{
    return index < self->n_kv ? &self->kvs[index] : NULL;
}

static int s_key_compare(const void *key, const void *element)
{
    return strcmp(key, (*(const hafl_gguf_kv_t *const *)element)->key);
}

static int s_name_compare(const void *name, const void *element)
{
    return strcmp(name, (*(const hafl_gguf_tensor_t *const *)element)->name);
}

const hafl_gguf_kv_t *hafl_gguf_find(const hafl_gguf_t *self, const char *key)
{
    if (self->n_kv == 0)
        return NULL;
    const hafl_gguf_kv_t *const *found =
        bsearch(key, self->kv_by_key, self->n_kv, sizeof(hafl_gguf_kv_t *), s_key_compare);
    return found ? *found : NULL;
}

size_t hafl_gguf_tensor_count(const hafl_gguf_t *self)
{
    return self->n_tensors;
}

const hafl_gguf_tensor_t *hafl_gguf_tensor_at(const hafl_gguf_t *self, size_t index)
{
    return index < self->n_tensors ? &self->tensors[index] : NULL;
}

const hafl_gguf_tensor_t *hafl_gguf_tensor(const hafl_gguf_t *self, const char *name)
{
    if (self->n_tensors == 0)
        return NULL;
    const hafl_gguf_tensor_t *const *found = bsearch(name, self->tensor_by_name, self->n_tensors,
                                                     sizeof(hafl_gguf_tensor_t *), s_name_compare);
    return found ? *found : NULL;
}

//  The entry for key, or NULL with "key 'KEY': missing".
static const hafl_gguf_kv_t *s_need(const hafl_gguf_t *self, const char *key, char *err,
                                    size_t errlen)
{
    const hafl_gguf_kv_t *kv = hafl_gguf_find(self, key);
    if (!kv)
        s_fail(self, err, errlen, "key '%s': missing", key);
    return kv;
}

static bool s_is_unsigned(hafl_gguf_type_t type)
{
    return type == HAFL_GGUF_UINT8 || type == HAFL_GGUF_UINT16 || type == HAFL_GGUF_UINT32 ||
           type == HAFL_GGUF_UINT64;
}

static bool s_is_signed(hafl_gguf_type_t type)
{
    return type == HAFL_GGUF_INT8 || type == HAFL_GGUF_INT16 || type == HAFL_GGUF_INT32 ||
           type == HAFL_GGUF_INT64;
}

//  An integer entry's value checked against [lo, hi] (lo <= 0 <= hi); into *out as int64 when
//  it is signed-representable, else (a large unsigned value) into *big.
static int s_integer(const hafl_gguf_t *self, const char *key, int64_t lo, uint64_t hi,
                     int64_t *out, uint64_t *big, char *err, size_t errlen)
{
    const hafl_gguf_kv_t *kv = s_need(self, key, err, errlen);
    if (!kv)
        return -1;
    const hafl_gguf_value_t *v = &kv->value;
    if (s_is_unsigned(v->type)) {
        if (v->u > hi)
            return s_fail(self, err, errlen, "key '%s': %llu is out of range (at most %llu)", key,
                          (unsigned long long)v->u, (unsigned long long)hi);
        *big = v->u;
        *out = v->u > (uint64_t)INT64_MAX ? 0 : (int64_t)v->u;
        return 0;
    }
    if (s_is_signed(v->type)) {
        if (v->i < lo || (v->i > 0 && (uint64_t)v->i > hi))
            return s_fail(self, err, errlen, "key '%s': %lld is out of range (%lld to %llu)", key,
                          (long long)v->i, (long long)lo, (unsigned long long)hi);
        *out = v->i;
        *big = v->i < 0 ? 0 : (uint64_t)v->i;
        return 0;
    }
    return s_fail(self, err, errlen, "key '%s': has type %s, expected an integer", key,
                  s_type_names[v->type]);
}

int hafl_gguf_get_u32(const hafl_gguf_t *self, const char *key, uint32_t *out, char *err,
                      size_t errlen)
{
    int64_t value;
    uint64_t big;
    if (s_integer(self, key, 0, UINT32_MAX, &value, &big, err, errlen) != 0)
        return -1;
    *out = (uint32_t)big;
    return 0;
}

int hafl_gguf_get_u64(const hafl_gguf_t *self, const char *key, uint64_t *out, char *err,
                      size_t errlen)
{
    int64_t value;
    return s_integer(self, key, 0, UINT64_MAX, &value, out, err, errlen);
}

int hafl_gguf_get_i32(const hafl_gguf_t *self, const char *key, int32_t *out, char *err,
                      size_t errlen)
{
    int64_t value;
    uint64_t big;
    if (s_integer(self, key, INT32_MIN, INT32_MAX, &value, &big, err, errlen) != 0)
        return -1;
    *out = (int32_t)value;
    return 0;
}

int hafl_gguf_get_f32(const hafl_gguf_t *self, const char *key, float *out, char *err,
                      size_t errlen)
{
    const hafl_gguf_kv_t *kv = s_need(self, key, err, errlen);
    if (!kv)
        return -1;
    if (kv->value.type == HAFL_GGUF_FLOAT32)
        *out = kv->value.f32;
    else if (kv->value.type == HAFL_GGUF_FLOAT64)
        *out = (float)kv->value.f64;
    else
        return s_fail(self, err, errlen, "key '%s': has type %s, expected float32", key,
                      s_type_names[kv->value.type]);
    return 0;
}

//  The entry for key when its value has exactly `type`.
static const hafl_gguf_kv_t *s_typed(const hafl_gguf_t *self, const char *key,
                                     hafl_gguf_type_t type, char *err, size_t errlen)
{
    const hafl_gguf_kv_t *kv = s_need(self, key, err, errlen);
    if (kv && kv->value.type != type) {
        s_fail(self, err, errlen, "key '%s': has type %s, expected %s", key,
               s_type_names[kv->value.type], s_type_names[type]);
        return NULL;
    }
    return kv;
}

int hafl_gguf_get_bool(const hafl_gguf_t *self, const char *key, bool *out, char *err,
                       size_t errlen)
{
    const hafl_gguf_kv_t *kv = s_typed(self, key, HAFL_GGUF_BOOL, err, errlen);
    if (!kv)
        return -1;
    *out = kv->value.b;
    return 0;
}

int hafl_gguf_get_str(const hafl_gguf_t *self, const char *key, hafl_gguf_str_t *out, char *err,
                      size_t errlen)
{
    const hafl_gguf_kv_t *kv = s_typed(self, key, HAFL_GGUF_STRING, err, errlen);
    if (!kv)
        return -1;
    *out = kv->value.str;
    return 0;
}

//  The array under key when its elements have `type`; a new buffer of count elements of
//  element_bytes each in *out (NULL when empty).
static const hafl_gguf_array_t *s_array_of(const hafl_gguf_t *self, const char *key,
                                           hafl_gguf_type_t type, size_t element_bytes, void **out,
                                           char *err, size_t errlen)
{
    *out = NULL;
    const hafl_gguf_kv_t *kv = s_need(self, key, err, errlen);
    if (!kv)
        return NULL;
    const hafl_gguf_value_t *v = &kv->value;
    if (v->type != HAFL_GGUF_ARRAY || v->array.type != type) {
        if (v->type == HAFL_GGUF_ARRAY)
            s_fail(self, err, errlen, "key '%s': has type array of %s, expected array of %s", key,
                   s_type_names[v->array.type], s_type_names[type]);
        else
            s_fail(self, err, errlen, "key '%s': has type %s, expected array of %s", key,
                   s_type_names[v->type], s_type_names[type]);
        return NULL;
    }
    if (v->array.count == 0)
        return &v->array;
    //  Validated: count elements fit in the file, so this product is far below SIZE_MAX.
    if (v->array.count > SIZE_MAX / element_bytes ||
        !(*out = malloc((size_t)v->array.count * element_bytes))) {
        s_fail(self, err, errlen, "key '%s': out of memory for %llu elements", key,
               (unsigned long long)v->array.count);
        return NULL;
    }
    return &v->array;
}

int hafl_gguf_get_strings(const hafl_gguf_t *self, const char *key, hafl_gguf_str_t **out,
                          uint64_t *count, char *err, size_t errlen)
{
    void *buffer;
    *out = NULL;
    *count = 0;
    const hafl_gguf_array_t *a =
        s_array_of(self, key, HAFL_GGUF_STRING, sizeof(hafl_gguf_str_t), &buffer, err, errlen);
    if (!a)
        return -1;
    hafl_gguf_str_t *strings = buffer;
    s_cursor_t c = {a->data, a->size};
    for (uint64_t i = 0; i < a->count; i++) {
        //  Validated at open, so neither read can fail.
        uint64_t len = 0;
        const uint8_t *p = a->data;
        if (!s_u64(&c, &len) || !s_take(&c, len, &p))
            len = 0;
        strings[i] = (hafl_gguf_str_t){(const char *)p, len};
    }
    *out = strings;
    *count = a->count;
    return 0;
}

int hafl_gguf_get_f32s(const hafl_gguf_t *self, const char *key, float **out, uint64_t *count,
                       char *err, size_t errlen)
{
    void *buffer;
    *out = NULL;
    *count = 0;
    const hafl_gguf_array_t *a =
        s_array_of(self, key, HAFL_GGUF_FLOAT32, sizeof(float), &buffer, err, errlen);
    if (!a)
        return -1;
    float *values = buffer;
    for (uint64_t i = 0; i < a->count; i++) {
        uint32_t bits = s_le32(a->data + 4 * i);
        memcpy(&values[i], &bits, 4);
    }
    *out = values;
    *count = a->count;
    return 0;
}

int hafl_gguf_get_i32s(const hafl_gguf_t *self, const char *key, int32_t **out, uint64_t *count,
                       char *err, size_t errlen)
{
    void *buffer;
    *out = NULL;
    *count = 0;
    const hafl_gguf_array_t *a =
        s_array_of(self, key, HAFL_GGUF_INT32, sizeof(int32_t), &buffer, err, errlen);
    if (!a)
        return -1;
    int32_t *values = buffer;
    for (uint64_t i = 0; i < a->count; i++)
        values[i] = (int32_t)s_le32(a->data + 4 * i);
    *out = values;
    *count = a->count;
    return 0;
}

int hafl_gguf_array_get(const hafl_gguf_array_t *array_in, uint64_t index, hafl_gguf_value_t *out)
{
    //  A copy, so out may be the value that holds the array.
    const hafl_gguf_array_t copy = *array_in, *array = &copy;
    if (index >= array->count || array->type >= HAFL_GGUF_TYPE_COUNT)
        return -1;
    char why[256];
    uint64_t fixed = hafl_gguf_type_size(array->type);
    s_cursor_t c = {array->data, array->size};
    if (fixed) {
        if (index >= array->size / fixed)
            return -1;
        c.p += index * fixed;
        c.left -= index * fixed;
        return s_value_read(&c, array->type, 1, out, why, sizeof why);
    }
    //  Variable-size elements: walk to the index-th. Nesting depth was checked when the array
    //  was read, so any depth below the cap will do here.
    for (uint64_t i = 0; i < index; i++)
        if (s_value_read(&c, array->type, 1, out, why, sizeof why) != 0)
            return -1;
    return s_value_read(&c, array->type, 1, out, why, sizeof why);
}

int hafl_gguf_value_check(const hafl_gguf_value_t *value, char *err, size_t errlen)
{
    char why[256];
    switch (value->type) {
    case HAFL_GGUF_STRING:
        if (value->str.len > HAFL_GGUF_MAX_STRING || (value->str.len && !value->str.data)) {
            snprintf(err, errlen, "string of %llu bytes: over the cap of %d or without data",
                     (unsigned long long)value->str.len, HAFL_GGUF_MAX_STRING);
            return -1;
        }
        return 0;
    case HAFL_GGUF_ARRAY: {
        const hafl_gguf_array_t *a = &value->array;
        if (a->size && !a->data) {
            snprintf(err, errlen, "array of %llu bytes without data", (unsigned long long)a->size);
            return -1;
        }
        s_cursor_t c = {a->data ? a->data : s_no_bytes, a->size};
        hafl_gguf_array_t checked;
        if (s_array_body_read(&c, a->type, a->count, 0, &checked, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
        if (c.left != 0) {
            snprintf(err, errlen, "array of %llu %s: %llu bytes left over after the elements",
                     (unsigned long long)a->count, hafl_gguf_type_name(a->type),
                     (unsigned long long)c.left);
            return -1;
        }
        return 0;
    }
    default:
        if (value->type >= HAFL_GGUF_TYPE_COUNT) {
            snprintf(err, errlen, "unknown value type %u", (unsigned)value->type);
            return -1;
        }
        return 0;
    }
}
