/*  fuzz_gguf: libFuzzer target for the GGUF reader (model/hafl_gguf.c) and the dequantisers.

    The input is a whole file, opened with hafl_gguf_open_memory. A refusal must come with a
    non-empty one-line reason. An accepted file must behave: every key and tensor name is found
    again by lookup; every array element is readable and the whole-array getters agree with the
    element reader; every typed getter on every key either succeeds or gives a one-line reason;
    every tensor's data lies inside the input, its size is what its shape takes, and the types
    hafl decodes dequantise. Then the file is copied through the writer (every entry by value,
    every tensor by its bytes, the same alignment) and the copy must open with the same entries
    and tensors; copying the copy must give the same bytes (the writer's output is a fixpoint).
    Any violation traps, which libFuzzer reports as a crash; so do ASan/UBSan findings.

    Built a second time with -DHAFL_FUZZ_SEEDS, the file is instead a program that writes a few
    valid small GGUFs (built with the writer: a tiny llama-like model with every decoded tensor
    type, an alignment-64 file with every value type and nested arrays, an empty file, and the
    first one as version 2) into the folder named by its argument; tests/gguf.cmake runs it
    before the brief fuzzing run.
*/
#include "hafl_gguf.h"
#include "hafl_gguf_writer.h"
#include "hafl_quant.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HAFL_FUZZ_SEEDS

static void s_one_line(const char *err)
{
    if (!err[0] || strchr(err, '\n'))
        __builtin_trap();
}

//  Encodings equal: type and the bytes of the value.
static bool s_same_value(const hafl_gguf_value_t *a, const hafl_gguf_value_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case HAFL_GGUF_STRING:
        return a->str.len == b->str.len && memcmp(a->str.data, b->str.data, a->str.len) == 0;
    case HAFL_GGUF_ARRAY:
        return a->array.type == b->array.type && a->array.count == b->array.count &&
               a->array.size == b->array.size &&
               memcmp(a->array.data, b->array.data, a->array.size) == 0;
    case HAFL_GGUF_FLOAT32:
        return memcmp(&a->f32, &b->f32, 4) == 0;
    case HAFL_GGUF_FLOAT64:
        return memcmp(&a->f64, &b->f64, 8) == 0;
    case HAFL_GGUF_BOOL:
        return a->b == b->b;
    case HAFL_GGUF_INT8:
    case HAFL_GGUF_INT16:
    case HAFL_GGUF_INT32:
    case HAFL_GGUF_INT64:
        return a->i == b->i;
    default:
        return a->u == b->u;
    }
}

static void s_check_array(const hafl_gguf_t *g, const hafl_gguf_kv_t *kv)
{
    const hafl_gguf_array_t *a = &kv->value.array;
    char err[512];
    uint64_t n;
    //  The first elements, the last, and one past it.
    uint64_t checked = a->count < 64 ? a->count : 64;
    hafl_gguf_value_t e;
    for (uint64_t i = 0; i < checked; i++)
        if (hafl_gguf_array_get(a, i, &e) != 0 || e.type != a->type)
            __builtin_trap();
    if (a->count && hafl_gguf_array_get(a, a->count - 1, &e) != 0)
        __builtin_trap();
    if (hafl_gguf_array_get(a, a->count, &e) == 0)
        __builtin_trap();
    if (e.type == HAFL_GGUF_ARRAY && a->count && e.array.count)
        (void)hafl_gguf_array_get(&e.array, e.array.count - 1, &e);
    if (a->type == HAFL_GGUF_STRING) {
        hafl_gguf_str_t *strings;
        if (hafl_gguf_get_strings(g, kv->key, &strings, &n, err, sizeof err) != 0 || n != a->count)
            __builtin_trap();
        for (uint64_t i = 0; i < checked; i++)
            if (hafl_gguf_array_get(a, i, &e) != 0 || e.str.len != strings[i].len ||
                e.str.data != strings[i].data)
                __builtin_trap();
        free(strings);
    } else if (a->type == HAFL_GGUF_FLOAT32) {
        float *values;
        if (hafl_gguf_get_f32s(g, kv->key, &values, &n, err, sizeof err) != 0 || n != a->count)
            __builtin_trap();
        for (uint64_t i = 0; i < checked; i++)
            if (hafl_gguf_array_get(a, i, &e) != 0 || memcmp(&e.f32, &values[i], 4) != 0)
                __builtin_trap();
        free(values);
    } else if (a->type == HAFL_GGUF_INT32) {
        int32_t *values;
        if (hafl_gguf_get_i32s(g, kv->key, &values, &n, err, sizeof err) != 0 || n != a->count)
            __builtin_trap();
        for (uint64_t i = 0; i < checked; i++)
            if (hafl_gguf_array_get(a, i, &e) != 0 || e.i != values[i])
                __builtin_trap();
        free(values);
    }
}

static void s_check_getters(const hafl_gguf_t *g, const char *key)
{
    char err[512];
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    float f;
    bool b;
    hafl_gguf_str_t s;
    hafl_gguf_str_t *strings = NULL;
    float *floats = NULL;
    int32_t *ints = NULL;
    uint64_t n;
    if (hafl_gguf_get_u32(g, key, &u32, err, sizeof err) != 0)
        s_one_line(err);
    if (hafl_gguf_get_u64(g, key, &u64, err, sizeof err) != 0)
        s_one_line(err);
    if (hafl_gguf_get_i32(g, key, &i32, err, sizeof err) != 0)
        s_one_line(err);
    if (hafl_gguf_get_f32(g, key, &f, err, sizeof err) != 0)
        s_one_line(err);
    if (hafl_gguf_get_bool(g, key, &b, err, sizeof err) != 0)
        s_one_line(err);
    if (hafl_gguf_get_str(g, key, &s, err, sizeof err) != 0)
        s_one_line(err);
    if (hafl_gguf_get_strings(g, key, &strings, &n, err, sizeof err) != 0)
        s_one_line(err);
    if (hafl_gguf_get_f32s(g, key, &floats, &n, err, sizeof err) != 0)
        s_one_line(err);
    if (hafl_gguf_get_i32s(g, key, &ints, &n, err, sizeof err) != 0)
        s_one_line(err);
    free(strings);
    free(floats);
    free(ints);
}

static void s_check_tensors(const hafl_gguf_t *g)
{
    size_t size;
    const uint8_t *bytes = hafl_gguf_bytes(g, &size);
    char err[512];
    for (size_t i = 0; i < hafl_gguf_tensor_count(g); i++) {
        const hafl_gguf_tensor_t *t = hafl_gguf_tensor_at(g, i);
        uint64_t n_bytes;
        if (hafl_gguf_tensor(g, t->name) != t || hafl_gguf_tensor_at(g, i) != t)
            __builtin_trap();
        if (t->data < bytes || t->n_bytes > size ||
            t->data - bytes > (ptrdiff_t)(size - t->n_bytes))
            __builtin_trap();
        if (hafl_quant_bytes(t->type, t->n_elements, &n_bytes) != 0 || n_bytes != t->n_bytes ||
            t->offset % hafl_gguf_alignment(g) != 0)
            __builtin_trap();
        const hafl_quant_traits_t *traits = hafl_quant_traits(t->type);
        if (!traits)
            __builtin_trap();
        if (!traits->dequantizable)
            continue;
        float *values = malloc((size_t)t->n_elements * sizeof(float));
        if (!values)
            __builtin_trap();
        if (hafl_quant_dequantize(t->type, t->data, (size_t)t->n_bytes, values, t->n_elements, err,
                                  sizeof err) != 0)
            __builtin_trap();
        free(values);
    }
}

//  The file copied through the writer; NULL never (a failure traps). Caller frees.
static uint8_t *s_copy(const hafl_gguf_t *g, size_t *size)
{
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(hafl_gguf_alignment(g));
    if (!w)
        __builtin_trap();
    for (size_t i = 0; i < hafl_gguf_kv_count(g); i++) {
        const hafl_gguf_kv_t *kv = hafl_gguf_kv_at(g, i);
        if (strcmp(kv->key, "general.alignment") != 0 &&
            hafl_gguf_writer_add_value(w, kv->key, &kv->value) != 0)
            __builtin_trap();
    }
    for (size_t i = 0; i < hafl_gguf_tensor_count(g); i++) {
        const hafl_gguf_tensor_t *t = hafl_gguf_tensor_at(g, i);
        if (hafl_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->dims, t->data,
                                        (size_t)t->n_bytes) != 0)
            __builtin_trap();
    }
    uint8_t *out;
    char err[512];
    if (hafl_gguf_writer_to_memory(w, &out, size, err, sizeof err) != 0)
        __builtin_trap();
    hafl_gguf_writer_destroy(&w);
    return out;
}

static void s_check_copy(const hafl_gguf_t *g)
{
    size_t size, size2;
    uint8_t *copy = s_copy(g, &size);
    char err[512];
    hafl_gguf_t *c = hafl_gguf_open_memory(copy, size, err, sizeof err);
    if (!c)
        __builtin_trap();
    //  The copy holds general.alignment exactly when the alignment is not the default.
    size_t extra = hafl_gguf_find(g, "general.alignment") ? 1 : 0;
    size_t added = hafl_gguf_alignment(g) != HAFL_GGUF_DEFAULT_ALIGNMENT ? 1 : 0;
    if (hafl_gguf_kv_count(c) + extra != hafl_gguf_kv_count(g) + added ||
        hafl_gguf_tensor_count(c) != hafl_gguf_tensor_count(g) ||
        hafl_gguf_alignment(c) != hafl_gguf_alignment(g))
        __builtin_trap();
    for (size_t i = 0; i < hafl_gguf_kv_count(g); i++) {
        const hafl_gguf_kv_t *kv = hafl_gguf_kv_at(g, i), *kc = hafl_gguf_find(c, kv->key);
        if (!kc || !s_same_value(&kv->value, &kc->value))
            __builtin_trap();
    }
    for (size_t i = 0; i < hafl_gguf_tensor_count(g); i++) {
        const hafl_gguf_tensor_t *t = hafl_gguf_tensor_at(g, i), *tc = hafl_gguf_tensor_at(c, i);
        if (strcmp(t->name, tc->name) != 0 || t->type != tc->type || t->n_dims != tc->n_dims ||
            memcmp(t->dims, tc->dims, sizeof t->dims) != 0 || t->n_bytes != tc->n_bytes ||
            memcmp(t->data, tc->data, (size_t)t->n_bytes) != 0)
            __builtin_trap();
    }
    uint8_t *copy2 = s_copy(c, &size2);
    if (size2 != size || memcmp(copy, copy2, size) != 0)
        __builtin_trap();
    free(copy2);
    hafl_gguf_destroy(&c);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    hafl_gguf_t *g = hafl_gguf_open_memory(data, size, err, sizeof err);
    if (!g) {
        s_one_line(err);
        return 0;
    }
    for (size_t i = 0; i < hafl_gguf_kv_count(g); i++) {
        const hafl_gguf_kv_t *kv = hafl_gguf_kv_at(g, i);
        if (hafl_gguf_find(g, kv->key) != kv)
            __builtin_trap();
        if (kv->value.type == HAFL_GGUF_ARRAY)
            s_check_array(g, kv);
        s_check_getters(g, kv->key);
    }
    const char *arch = hafl_gguf_architecture(g);
    if (arch && strlen(arch) > 64)
        __builtin_trap();
    s_check_tensors(g);
    s_check_copy(g);
    hafl_gguf_destroy(&g);
    return 0;
}

#else //  HAFL_FUZZ_SEEDS: write the seed corpus

#include "hafl_test.h"

static void s_save(hafl_gguf_writer_t *w, const char *folder, const char *name, int version)
{
    uint8_t *bytes;
    size_t size;
    char err[512], path[4096];
    CHECKF(hafl_gguf_writer_to_memory(w, &bytes, &size, err, sizeof err) == 0, "%s", err);
    bytes[4] = (uint8_t)version;
    snprintf(path, sizeof path, "%s/seed-%s", folder, name);
    FILE *out = fopen(path, "wb");
    CHECKF(out, "cannot write %s", path);
    CHECK(fwrite(bytes, 1, size, out) == size);
    CHECK(fclose(out) == 0);
    free(bytes);
}

//  A two-block llama-like model whose matrices use each decoded type.
static hafl_gguf_writer_t *s_tiny_model(void)
{
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(w);
    hafl_gguf_writer_add_string(w, "general.architecture", "llama");
    hafl_gguf_writer_add_u32(w, "llama.context_length", 64);
    hafl_gguf_writer_add_u32(w, "llama.embedding_length", 256);
    hafl_gguf_writer_add_u32(w, "llama.block_count", 1);
    hafl_gguf_writer_add_u32(w, "llama.feed_forward_length", 256);
    hafl_gguf_writer_add_u32(w, "llama.attention.head_count", 4);
    hafl_gguf_writer_add_u32(w, "llama.attention.head_count_kv", 2);
    hafl_gguf_writer_add_f32(w, "llama.rope.freq_base", 500000.0f);
    hafl_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    hafl_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2");
    hafl_gguf_writer_add_string(w, "tokenizer.ggml.pre", "llama-bpe");
    const char *tokens[4] = {"<s>", "</s>", "a", "\xc4\xa0\x62"}; //  U+0120 then b: GPT-2 spells " b" so
    hafl_gguf_writer_add_strings(w, "tokenizer.ggml.tokens", tokens, 4);
    const char *merges[1] = {"\xc4\xa0 b"};
    hafl_gguf_writer_add_strings(w, "tokenizer.ggml.merges", merges, 1);
    int32_t types[4] = {3, 3, 1, 1};
    hafl_gguf_writer_add_array(w, "tokenizer.ggml.token_type", HAFL_GGUF_INT32, types, 4);
    float scores[4] = {0, 0, -1, -2};
    hafl_gguf_writer_add_array(w, "tokenizer.ggml.scores", HAFL_GGUF_FLOAT32, scores, 4);
    hafl_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);

    static uint8_t blocks[1024]; //  enough for 512 values of any decoded type but F32
    for (size_t i = 0; i < sizeof blocks; i++)
        blocks[i] = (uint8_t)(i * 131 + 7);
    static float values[256 * 2];
    for (size_t i = 0; i < 512; i++)
        values[i] = (float)i / 256.0f - 1.0f;
    struct {
        const char *name;
        uint32_t type;
    } mats[] = {
        {"blk.0.attn_q.weight", HAFL_QUANT_Q4_K},   {"blk.0.attn_k.weight", HAFL_QUANT_Q5_K},
        {"blk.0.attn_v.weight", HAFL_QUANT_Q6_K},   {"blk.0.attn_output.weight", HAFL_QUANT_Q8_0},
        {"blk.0.ffn_gate.weight", HAFL_QUANT_Q4_0}, {"blk.0.ffn_down.weight", HAFL_QUANT_BF16},
        {"blk.0.ffn_up.weight", HAFL_QUANT_F16},    {"token_embd.weight", HAFL_QUANT_F32}};
    uint64_t dims[2] = {256, 2};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        uint64_t bytes;
        CHECK(hafl_quant_bytes(mats[i].type, 512, &bytes) == 0);
        const void *data = mats[i].type == HAFL_QUANT_F32 ? (const void *)values : blocks;
        if (mats[i].type == HAFL_QUANT_F16)
            hafl_gguf_writer_add_tensor_floats(w, mats[i].name, HAFL_QUANT_F16, 2, dims, values);
        else
            hafl_gguf_writer_add_tensor(w, mats[i].name, mats[i].type, 2, dims, data,
                                        (size_t)bytes);
    }
    uint64_t norm_dims[1] = {256};
    hafl_gguf_writer_add_tensor(w, "output_norm.weight", HAFL_QUANT_F32, 1, norm_dims, values,
                                1024);
    CHECKF(!hafl_gguf_writer_error(w), "%s", hafl_gguf_writer_error(w));
    return w;
}

//  Every value type, nested arrays, alignment 64, one small tensor.
static hafl_gguf_writer_t *s_all_values(void)
{
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(64);
    CHECK(w);
    for (int type = 0; type < HAFL_GGUF_TYPE_COUNT; type++) {
        char key[32];
        snprintf(key, sizeof key, "v.%s", hafl_gguf_type_name((uint32_t)type));
        hafl_gguf_value_t v = {.type = (hafl_gguf_type_t)type};
        uint8_t nested[12 + 2 * 2] = {
            HAFL_GGUF_INT16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0xff, 0xff};
        if (type == HAFL_GGUF_STRING)
            v.str = (hafl_gguf_str_t){"text", 4};
        else if (type == HAFL_GGUF_ARRAY)
            v.array = (hafl_gguf_array_t){HAFL_GGUF_ARRAY, 1, nested, sizeof nested};
        else
            v.u = 1;
        CHECK(hafl_gguf_writer_add_value(w, key, &v) == 0);
    }
    uint8_t bools[2] = {0, 1};
    hafl_gguf_writer_add_array(w, "a.bool", HAFL_GGUF_BOOL, bools, 2);
    double doubles[2] = {0.5, -1e300};
    hafl_gguf_writer_add_array(w, "a.f64", HAFL_GGUF_FLOAT64, doubles, 2);
    float one[32] = {1};
    uint64_t dims[1] = {32};
    hafl_gguf_writer_add_tensor(w, "t", HAFL_QUANT_F32, 1, dims, one, sizeof one);
    CHECKF(!hafl_gguf_writer_error(w), "%s", hafl_gguf_writer_error(w));
    return w;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FOLDER\n", argv[0]);
        return 2;
    }
    hafl_gguf_writer_t *w = s_tiny_model();
    s_save(w, argv[1], "tiny-model", 3);
    s_save(w, argv[1], "tiny-model-v2", 2);
    hafl_gguf_writer_destroy(&w);
    w = s_all_values();
    s_save(w, argv[1], "all-values", 3);
    hafl_gguf_writer_destroy(&w);
    w = hafl_gguf_writer_new(0);
    s_save(w, argv[1], "empty", 3);
    hafl_gguf_writer_destroy(&w);
    return 0;
}

#endif
