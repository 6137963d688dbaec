/*  hafl_gguf_writer: the GGUF writer. See hafl_gguf_writer.h.

    Metadata is encoded as it is added into one growing buffer (key, type, value, exactly as it
    will sit in the file); tensors are kept as copies with their shapes. The file is assembled
    only at the end, when the offsets are known: header, the alignment entry if any, the
    metadata buffer, tensor infos, padding, then each tensor's data padded to the alignment.
*/
#include "hafl_gguf_writer.h"
#include "hafl_file.h"
#include "hafl_quant.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hafl_gguf_writer copies host arrays as GGUF's little-endian encoding"
#endif

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
} s_buffer_t;

typedef struct {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t dims[HAFL_GGUF_MAX_DIMS];
    uint8_t *data; //  [size]
    size_t size;
} s_tensor_t;

struct hafl_gguf_writer_t {
    uint32_t alignment;
    s_buffer_t metadata; //  the encoded entries, in order
    char **keys;         //  [n_kv] for the uniqueness check
    size_t n_kv;
    s_tensor_t *tensors; //  [n_tensors]
    size_t n_tensors;
    bool failed;
    char error[512];
};

static int s_fail(hafl_gguf_writer_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static int s_fail(hafl_gguf_writer_t *self, const char *format, ...)
{
    if (!self->failed) {
        va_list args;
        va_start(args, format);
        vsnprintf(self->error, sizeof self->error, format, args);
        va_end(args);
        self->failed = true;
    }
    return -1;
}

static bool s_reserve(s_buffer_t *b, size_t more)
{
    if (more > SIZE_MAX - b->size)
        return false;
    if (b->size + more <= b->capacity)
        return true;
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < b->size + more)
        capacity = capacity > SIZE_MAX / 2 ? b->size + more : capacity * 2;
    uint8_t *grown = realloc(b->data, capacity);
    if (!grown)
        return false;
    b->data = grown;
    b->capacity = capacity;
    return true;
}

static bool s_put(s_buffer_t *b, const void *data, size_t n)
{
    if (!s_reserve(b, n))
        return false;
    if (n)
        memcpy(b->data + b->size, data, n);
    b->size += n;
    return true;
}

static bool s_put_u32(s_buffer_t *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return s_put(b, le, 4);
}

static bool s_put_u64(s_buffer_t *b, uint64_t v)
{
    return s_put_u32(b, (uint32_t)v) && s_put_u32(b, (uint32_t)(v >> 32));
}

static bool s_put_str(s_buffer_t *b, const char *data, uint64_t len)
{
    return s_put_u64(b, len) && s_put(b, data, (size_t)len);
}

hafl_gguf_writer_t *hafl_gguf_writer_new(uint32_t alignment)
{
    if (alignment == 0)
        alignment = HAFL_GGUF_DEFAULT_ALIGNMENT;
    if ((alignment & (alignment - 1)) != 0 || alignment > HAFL_GGUF_MAX_ALIGNMENT)
        return NULL;
    hafl_gguf_writer_t *self = calloc(1, sizeof(hafl_gguf_writer_t));
    if (self)
        self->alignment = alignment;
    return self;
}

void hafl_gguf_writer_destroy(hafl_gguf_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_gguf_writer_t *self = *self_p;
    for (size_t i = 0; i < self->n_kv; i++)
        free(self->keys[i]);
    free(self->keys);
    for (size_t i = 0; i < self->n_tensors; i++) {
        free(self->tensors[i].name);
        free(self->tensors[i].data);
    }
    free(self->tensors);
    free(self->metadata.data);
    free(self);
    *self_p = NULL;
}

const char *hafl_gguf_writer_error(const hafl_gguf_writer_t *self)
{
    return self->failed ? self->error : NULL;
}

//  1..cap printable ASCII bytes, as the reader requires of keys and tensor names.
static bool s_name_ok(const char *name, size_t cap)
{
    size_t len = name ? strnlen(name, cap + 1) : 0;
    if (len == 0 || len > cap)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
            return false;
    return true;
}

//  Whether a new key may be added: valid, not reserved, not there yet, under the cap. Only
//  after this passes may a message quote the key.
static int s_key_check(hafl_gguf_writer_t *self, const char *key)
{
    if (self->failed)
        return -1;
    if (!s_name_ok(key, HAFL_GGUF_MAX_KEY))
        return s_fail(self, "a key is not 1 to %d printable ASCII bytes", HAFL_GGUF_MAX_KEY);
    if (strcmp(key, "general.alignment") == 0)
        return s_fail(self, "key 'general.alignment': set by hafl_gguf_writer_new");
    if (self->n_kv + 1 >= HAFL_GGUF_MAX_KV) //  one entry is kept for general.alignment
        return s_fail(self, "key '%s': more than %d metadata entries", key, HAFL_GGUF_MAX_KV - 1);
    for (size_t i = 0; i < self->n_kv; i++)
        if (strcmp(self->keys[i], key) == 0)
            return s_fail(self, "key '%s' added twice", key);
    return 0;
}

//  Records a checked key and encodes it; the caller then encodes type and value.
static int s_key_write(hafl_gguf_writer_t *self, const char *key)
{
    char **keys = realloc(self->keys, (self->n_kv + 1) * sizeof(char *));
    if (!keys)
        return s_fail(self, "key '%s': out of memory", key);
    self->keys = keys;
    if (!(keys[self->n_kv] = strdup(key)))
        return s_fail(self, "key '%s': out of memory", key);
    self->n_kv++;
    if (!s_put_str(&self->metadata, key, strlen(key)))
        return s_fail(self, "key '%s': out of memory", key);
    return 0;
}

//  The encoding of a checked value (after its type tag).
static bool s_put_value(s_buffer_t *b, const hafl_gguf_value_t *v)
{
    uint8_t byte;
    uint32_t bits32;
    uint64_t bits64;
    switch (v->type) {
    case HAFL_GGUF_UINT8:
    case HAFL_GGUF_INT8:
        byte = (uint8_t)(v->type == HAFL_GGUF_UINT8 ? v->u : (uint64_t)v->i);
        return s_put(b, &byte, 1);
    case HAFL_GGUF_BOOL:
        byte = v->b ? 1 : 0;
        return s_put(b, &byte, 1);
    case HAFL_GGUF_UINT16:
    case HAFL_GGUF_INT16:
        bits32 = (uint32_t)(v->type == HAFL_GGUF_UINT16 ? v->u : (uint64_t)v->i);
        return s_put(b, (uint8_t[]){(uint8_t)bits32, (uint8_t)(bits32 >> 8)}, 2);
    case HAFL_GGUF_UINT32:
        return s_put_u32(b, (uint32_t)v->u);
    case HAFL_GGUF_INT32:
        return s_put_u32(b, (uint32_t)v->i);
    case HAFL_GGUF_FLOAT32:
        memcpy(&bits32, &v->f32, 4);
        return s_put_u32(b, bits32);
    case HAFL_GGUF_UINT64:
        return s_put_u64(b, v->u);
    case HAFL_GGUF_INT64:
        return s_put_u64(b, (uint64_t)v->i);
    case HAFL_GGUF_FLOAT64:
        memcpy(&bits64, &v->f64, 8);
        return s_put_u64(b, bits64);
    case HAFL_GGUF_STRING:
        return s_put_str(b, v->str.data, v->str.len);
    default: //  HAFL_GGUF_ARRAY
        return s_put_u32(b, v->array.type) && s_put_u64(b, v->array.count) &&
               s_put(b, v->array.data, (size_t)v->array.size);
    }
}

int hafl_gguf_writer_add_value(hafl_gguf_writer_t *self, const char *key,
                               const hafl_gguf_value_t *value)
{
    if (s_key_check(self, key) != 0)
        return -1;
    char why[256];
    if (hafl_gguf_value_check(value, why, sizeof why) != 0)
        return s_fail(self, "key '%s': %s", key, why);
    if (value->type == HAFL_GGUF_ARRAY && value->array.size > SIZE_MAX)
        return s_fail(self, "key '%s': array too large", key);
    if (s_key_write(self, key) != 0)
        return -1;
    if (!s_put_u32(&self->metadata, value->type) || !s_put_value(&self->metadata, value))
        return s_fail(self, "key '%s': out of memory", key);
    return 0;
}

int hafl_gguf_writer_add_u32(hafl_gguf_writer_t *self, const char *key, uint32_t value)
{
    hafl_gguf_value_t v = {.type = HAFL_GGUF_UINT32, .u = value};
    return hafl_gguf_writer_add_value(self, key, &v);
}

int hafl_gguf_writer_add_i32(hafl_gguf_writer_t *self, const char *key, int32_t value)
{
    hafl_gguf_value_t v = {.type = HAFL_GGUF_INT32, .i = value};
    return hafl_gguf_writer_add_value(self, key, &v);
}

int hafl_gguf_writer_add_u64(hafl_gguf_writer_t *self, const char *key, uint64_t value)
{
    hafl_gguf_value_t v = {.type = HAFL_GGUF_UINT64, .u = value};
    return hafl_gguf_writer_add_value(self, key, &v);
}

int hafl_gguf_writer_add_f32(hafl_gguf_writer_t *self, const char *key, float value)
{
    hafl_gguf_value_t v = {.type = HAFL_GGUF_FLOAT32, .f32 = value};
    return hafl_gguf_writer_add_value(self, key, &v);
}

int hafl_gguf_writer_add_bool(hafl_gguf_writer_t *self, const char *key, bool value)
{
    hafl_gguf_value_t v = {.type = HAFL_GGUF_BOOL, .b = value};
    return hafl_gguf_writer_add_value(self, key, &v);
}

int hafl_gguf_writer_add_string(hafl_gguf_writer_t *self, const char *key, const char *value)
{
    if (s_key_check(self, key) != 0)
        return -1;
    if (!value)
        return s_fail(self, "key '%s': NULL string", key);
    hafl_gguf_value_t v = {.type = HAFL_GGUF_STRING, .str = {value, strlen(value)}};
    return hafl_gguf_writer_add_value(self, key, &v);
}

int hafl_gguf_writer_add_array(hafl_gguf_writer_t *self, const char *key,
                               hafl_gguf_type_t element_type, const void *elements, uint64_t count)
{
    if (s_key_check(self, key) != 0)
        return -1;
    size_t bytes = (size_t)hafl_gguf_type_size(element_type);
    if (!bytes)
        return s_fail(self, "key '%s': %s is not a fixed-size element type", key,
                      hafl_gguf_type_name(element_type));
    if (count > SIZE_MAX / bytes)
        return s_fail(self, "key '%s': array of %llu elements too large", key,
                      (unsigned long long)count);
    hafl_gguf_value_t v = {.type = HAFL_GGUF_ARRAY,
                           .array = {element_type, count, elements, count * bytes}};
    return hafl_gguf_writer_add_value(self, key, &v);
}

int hafl_gguf_writer_add_strings(hafl_gguf_writer_t *self, const char *key,
                                 const char *const *strings, uint64_t count)
{
    if (s_key_check(self, key) != 0 || s_key_write(self, key) != 0)
        return -1;
    s_buffer_t *b = &self->metadata;
    if (!s_put_u32(b, HAFL_GGUF_ARRAY) || !s_put_u32(b, HAFL_GGUF_STRING) || !s_put_u64(b, count))
        return s_fail(self, "key '%s': out of memory", key);
    for (uint64_t i = 0; i < count; i++) {
        size_t len = strlen(strings[i]);
        if (len > HAFL_GGUF_MAX_STRING)
            return s_fail(self, "key '%s': string %llu of %zu bytes exceeds the cap of %d", key,
                          (unsigned long long)i, len, HAFL_GGUF_MAX_STRING);
        if (!s_put_str(b, strings[i], len))
            return s_fail(self, "key '%s': out of memory", key);
    }
    return 0;
}

//  Checks a new tensor's name and shape; its byte size into *bytes.
static int s_tensor_check(hafl_gguf_writer_t *self, const char *name, uint32_t type,
                          uint32_t n_dims, const uint64_t *dims, uint64_t *bytes)
{
    if (self->failed)
        return -1;
    if (!s_name_ok(name, HAFL_GGUF_MAX_NAME))
        return s_fail(self, "a tensor name is not 1 to %d printable ASCII bytes",
                      HAFL_GGUF_MAX_NAME);
    for (size_t i = 0; i < self->n_tensors; i++)
        if (strcmp(self->tensors[i].name, name) == 0)
            return s_fail(self, "tensor '%s' added twice", name);
    if (self->n_tensors >= HAFL_GGUF_MAX_TENSORS)
        return s_fail(self, "tensor '%s': more than %d tensors", name, HAFL_GGUF_MAX_TENSORS);
    const hafl_quant_traits_t *traits = hafl_quant_traits(type);
    if (!traits)
        return s_fail(self, "tensor '%s': unknown type %u", name, type);
    if (n_dims == 0 || n_dims > HAFL_GGUF_MAX_DIMS)
        return s_fail(self, "tensor '%s': n_dims = %u (1 to %d allowed)", name, n_dims,
                      HAFL_GGUF_MAX_DIMS);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (dims[d] == 0 || dims[d] > (uint64_t)INT64_MAX / elements)
            return s_fail(self, "tensor '%s': dimension %u (%llu) is 0 or overflows", name, d,
                          (unsigned long long)dims[d]);
        elements *= dims[d];
    }
    if (dims[0] % traits->block_elements != 0)
        return s_fail(self, "tensor '%s': row length %llu is not a multiple of the %s block of %u",
                      name, (unsigned long long)dims[0], traits->name, traits->block_elements);
    if (hafl_quant_bytes(type, elements, bytes) != 0 || *bytes > SIZE_MAX)
        return s_fail(self, "tensor '%s': too large", name);
    return 0;
}

//  Appends a checked tensor, taking ownership of data (freed on failure).
static int s_tensor_append(hafl_gguf_writer_t *self, const char *name, uint32_t type,
                           uint32_t n_dims, const uint64_t *dims, uint8_t *data, size_t size)
{
    s_tensor_t *tensors = realloc(self->tensors, (self->n_tensors + 1) * sizeof(s_tensor_t));
    char *copy = strdup(name);
    if (tensors)
        self->tensors = tensors;
    if (!tensors || !copy) {
        free(copy);
        free(data);
        return s_fail(self, "tensor '%s': out of memory", name);
    }
    s_tensor_t *t = &self->tensors[self->n_tensors++];
    *t = (s_tensor_t){copy, type, n_dims, {1, 1, 1, 1}, data, size};
    memcpy(t->dims, dims, n_dims * sizeof(uint64_t));
    return 0;
}

int hafl_gguf_writer_add_tensor(hafl_gguf_writer_t *self, const char *name, uint32_t type,
                                uint32_t n_dims, const uint64_t *dims, const void *data,
                                size_t size)
{
    uint64_t bytes;
    if (s_tensor_check(self, name, type, n_dims, dims, &bytes) != 0)
        return -1;
    if (bytes != size)
        return s_fail(self, "tensor '%s': its shape takes %llu bytes of %s, given %zu", name,
                      (unsigned long long)bytes, hafl_quant_name(type), size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return s_fail(self, "tensor '%s': out of memory", name);
    memcpy(copy, data, size);
    return s_tensor_append(self, name, type, n_dims, dims, copy, size);
}

int hafl_gguf_writer_add_tensor_floats(hafl_gguf_writer_t *self, const char *name, uint32_t type,
                                       uint32_t n_dims, const uint64_t *dims, const float *values)
{
    uint64_t bytes;
    if (s_tensor_check(self, name, type, n_dims, dims, &bytes) != 0)
        return -1;
    uint8_t *encoded = malloc(bytes ? (size_t)bytes : 1);
    if (!encoded)
        return s_fail(self, "tensor '%s': out of memory", name);
    char why[256];
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        n *= dims[d]; //  bounded by s_tensor_check
    if (hafl_quant_quantize(type, values, n, encoded, (size_t)bytes, why, sizeof why) != 0) {
        free(encoded);
        return s_fail(self, "tensor '%s': %s", name, why);
    }
    return s_tensor_append(self, name, type, n_dims, dims, encoded, (size_t)bytes);
}

static uint64_t s_padded(uint64_t n, uint32_t alignment)
{
    return n + (alignment - n % alignment) % alignment;
}

int hafl_gguf_writer_to_memory(const hafl_gguf_writer_t *self, uint8_t **out, size_t *size,
                               char *err, size_t errlen)
{
    *out = NULL;
    *size = 0;
    if (self->failed) {
        snprintf(err, errlen, "%s", self->error);
        return -1;
    }
    bool alignment_entry = self->alignment != HAFL_GGUF_DEFAULT_ALIGNMENT;
    s_buffer_t b = {0};
    bool ok = s_put(&b, "GGUF", 4) && s_put_u32(&b, 3) && s_put_u64(&b, self->n_tensors) &&
              s_put_u64(&b, self->n_kv + (alignment_entry ? 1 : 0));
    if (ok && alignment_entry) {
        static const char key[] = "general.alignment";
        ok = s_put_str(&b, key, sizeof key - 1) && s_put_u32(&b, HAFL_GGUF_UINT32) &&
             s_put_u32(&b, self->alignment);
    }
    ok = ok && s_put(&b, self->metadata.data, self->metadata.size);
    uint64_t offset = 0;
    for (size_t i = 0; ok && i < self->n_tensors; i++) {
        const s_tensor_t *t = &self->tensors[i];
        ok = s_put_str(&b, t->name, strlen(t->name)) && s_put_u32(&b, t->n_dims);
        for (uint32_t d = 0; ok && d < t->n_dims; d++)
            ok = s_put_u64(&b, t->dims[d]);
        ok = ok && s_put_u32(&b, t->type) && s_put_u64(&b, offset);
        offset += s_padded(t->size, self->alignment);
    }
    //  Padding after the infos, then each tensor followed by its own padding.
    uint64_t data_start = s_padded(b.size, self->alignment);
    ok = ok && data_start + offset <= SIZE_MAX &&
         s_reserve(&b, (size_t)(data_start + offset - b.size));
    if (ok) {
        memset(b.data + b.size, 0, (size_t)(data_start + offset - b.size));
        b.size = (size_t)data_start;
        for (size_t i = 0; i < self->n_tensors; i++) {
            const s_tensor_t *t = &self->tensors[i];
            memcpy(b.data + b.size, t->data, t->size);
            b.size += (size_t)s_padded(t->size, self->alignment);
        }
    }
    if (!ok) {
        free(b.data);
        snprintf(err, errlen, "out of memory building a GGUF file");
        return -1;
    }
    *out = b.data;
    *size = b.size;
    return 0;
}

int hafl_gguf_writer_save(const hafl_gguf_writer_t *self, const char *path, char *err,
                          size_t errlen)
{
    uint8_t *bytes;
    size_t size;
    if (hafl_gguf_writer_to_memory(self, &bytes, &size, err, errlen) != 0)
        return -1;
    int rc = hafl_file_write_atomic(path, bytes, size, err, errlen);
    free(bytes);
    return rc;
}
