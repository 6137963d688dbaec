/*  hafl info FILE: what a GGUF model file holds, read through the strict reader (hafl_gguf).

    Prints, one "label: value" line each: the file (format version, alignment, size), the
    architecture, its hyperparameters from the `<arch>.*` keys (context length, embedding length,
    block count, feed-forward length, head count, head count kv, rope freq base, RMS epsilon,
    vocab size; "absent" for a missing key, with the value a loader would use instead), the
    tokenizer kind (tokenizer.ggml.model and .pre), the tensor count with a count per type, the
    total parameter count, and the LoRA targets: for each of wq wk wv wo w1 w2 w3 (tensors
    blk.N.attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_down, ffn_up) in how many blocks it
    exists, with its [rows][cols] shape and type in the lowest block holding it. A LoRA adapter
    (general.type adapter, as `hafl export --gguf-lora` and llama.cpp write them) is described
    as one instead: its kind, alpha, the lora_a / lora_b pairs, their rank and the blocks they
    adapt, with the tensor summary. FILE is a path or an asset name. A file the reader refuses
    gives its one-line reason on stderr and exit 2.
*/
#include "hafl_asset.h"
#include "hafl_cmd.h"
#include "hafl_gguf.h"
#include "hafl_quant.h"
#include "hafl_targets.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Longest string value shown in full; longer ones are cut with "...".
#define S_SHOWN_STRING 60

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl info FILE\n\n"
            "Reads the GGUF model FILE (a path or an asset name) and prints its architecture,\n"
            "hyperparameters, tokenizer kind, tensor types, parameter count and which LoRA\n"
            "targets (wq wk wv wo w1 w2 w3) exist in its blocks.\n\n"
            "exit codes: 0 ok, 2 bad usage or a file that is missing or not a valid GGUF\n"
            "(one line on stderr naming the key or tensor at fault)\n");
}

//  A string value, printable bytes only (others as '?'), cut to S_SHOWN_STRING.
static void s_print_str(const hafl_gguf_str_t *s)
{
    uint64_t shown = s->len > S_SHOWN_STRING ? S_SHOWN_STRING : s->len;
    for (uint64_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s->data[i];
        putchar(c >= 0x20 && c < 0x7f ? c : '?');
    }
    if (shown < s->len)
        printf("... (%" PRIu64 " bytes)", s->len);
}

static void s_print_value(const hafl_gguf_value_t *v)
{
    switch (v->type) {
    case HAFL_GGUF_UINT8:
    case HAFL_GGUF_UINT16:
    case HAFL_GGUF_UINT32:
    case HAFL_GGUF_UINT64:
        printf("%" PRIu64, v->u);
        break;
    case HAFL_GGUF_INT8:
    case HAFL_GGUF_INT16:
    case HAFL_GGUF_INT32:
    case HAFL_GGUF_INT64:
        printf("%" PRId64, v->i);
        break;
    case HAFL_GGUF_FLOAT32:
        printf("%.9g", (double)v->f32);
        break;
    case HAFL_GGUF_FLOAT64:
        printf("%.17g", v->f64);
        break;
    case HAFL_GGUF_BOOL:
        printf("%s", v->b ? "true" : "false");
        break;
    case HAFL_GGUF_STRING:
        s_print_str(&v->str);
        break;
    default:
        printf("array of %" PRIu64 " %s", v->array.count, hafl_gguf_type_name(v->array.type));
        break;
    }
}

//  "label: value" for the key "<arch>.<suffix>", or "label: absent<fallback>".
static void s_print_hyper(const hafl_gguf_t *g, const char *arch, const char *label,
                          const char *suffix, const char *fallback)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const hafl_gguf_kv_t *kv = hafl_gguf_find(g, key);
    printf("%s: ", label);
    if (kv)
        s_print_value(&kv->value);
    else
        printf("absent%s", fallback);
    putchar('\n');
}

static void s_print_hyperparameters(const hafl_gguf_t *g, const char *arch)
{
    char fallback[160];
    s_print_hyper(g, arch, "context length", "context_length", "");
    s_print_hyper(g, arch, "embedding length", "embedding_length", "");
    s_print_hyper(g, arch, "block count", "block_count", "");
    s_print_hyper(g, arch, "feed-forward length", "feed_forward_length", "");
    s_print_hyper(g, arch, "head count", "attention.head_count", "");
    s_print_hyper(g, arch, "head count kv", "attention.head_count_kv",
                  " (the head count: no grouped-query attention)");
    s_print_hyper(g, arch, "rope freq base", "rope.freq_base", " (10000 by default)");
    s_print_hyper(g, arch, "rms epsilon", "attention.layer_norm_rms_epsilon", "");
    const hafl_gguf_kv_t *tokens = hafl_gguf_find(g, "tokenizer.ggml.tokens");
    if (tokens && tokens->value.type == HAFL_GGUF_ARRAY)
        snprintf(fallback, sizeof fallback, " (%" PRIu64 " tokens in tokenizer.ggml.tokens)",
                 tokens->value.array.count);
    else
        snprintf(fallback, sizeof fallback, " (and no tokenizer.ggml.tokens)");
    s_print_hyper(g, arch, "vocab size", "vocab_size", fallback);
}

static void s_print_tokenizer(const hafl_gguf_t *g)
{
    const hafl_gguf_kv_t *model = hafl_gguf_find(g, "tokenizer.ggml.model");
    const hafl_gguf_kv_t *pre = hafl_gguf_find(g, "tokenizer.ggml.pre");
    printf("tokenizer: ");
    if (model)
        s_print_value(&model->value);
    else
        printf("absent");
    printf(" (pre: ");
    if (pre)
        s_print_value(&pre->value);
    else
        printf("absent");
    printf(")\n");
}

static void s_print_tensor_summary(const hafl_gguf_t *g)
{
    size_t n = hafl_gguf_tensor_count(g);
    size_t per_type[HAFL_QUANT_TYPE_LIMIT] = {0};
    uint64_t parameters = 0;
    for (size_t i = 0; i < n; i++) {
        const hafl_gguf_tensor_t *t = hafl_gguf_tensor_at(g, i);
        per_type[t->type]++; //  the reader admits only known types, all below the limit
        parameters += t->n_elements;
    }
    printf("tensors: %zu (", n);
    const char *separator = "";
    for (uint32_t type = 0; type < HAFL_QUANT_TYPE_LIMIT; type++)
        if (per_type[type]) {
            printf("%s%s %zu", separator, hafl_quant_name(type), per_type[type]);
            separator = ", ";
        }
    printf(")\nparameters: %" PRIu64 "\n", parameters);
}

//  The block index N of a tensor named "blk.N.REST" (N plain decimal) and REST, else -1.
static int s_block_of(const char *name, uint64_t *index, const char **rest)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    const char *p = name + 4;
    uint64_t n = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT32_MAX - 9) / 10)
            return -1;
        n = 10 * n + (uint64_t)(*p - '0');
    }
    if (*p != '.')
        return -1;
    *index = n;
    *rest = p + 1;
    return 0;
}

//  A LoRA adapter file: true when general.type says so, and then its description is printed.
//  A pair is a lora_a {d_in, r} with its lora_b beside it; a lora_a without one is counted apart.
static bool s_print_adapter(const hafl_gguf_t *g)
{
    const hafl_gguf_kv_t *type = hafl_gguf_find(g, "general.type");
    if (!type || type->value.type != HAFL_GGUF_STRING || type->value.str.len != 7 ||
        memcmp(type->value.str.data, "adapter", 7) != 0)
        return false;
    const hafl_gguf_kv_t *kind = hafl_gguf_find(g, "adapter.type");
    printf("type: adapter (");
    if (kind)
        s_print_value(&kind->value);
    else
        printf("absent");
    printf(")\n");
    float alpha;
    char err[256];
    if (hafl_gguf_get_f32(g, "adapter.lora.alpha", &alpha, err, sizeof err) == 0)
        printf("lora alpha: %g\n", (double)alpha);
    else
        printf("lora alpha: absent\n");
    size_t pairs = 0, unpaired = 0;
    uint64_t rank = 0, lowest = UINT64_MAX, highest = 0;
    bool ranks_differ = false;
    for (size_t i = 0; i < hafl_gguf_tensor_count(g); i++) {
        const hafl_gguf_tensor_t *t = hafl_gguf_tensor_at(g, i);
        size_t len = strlen(t->name);
        if (len < 7 || strcmp(t->name + len - 7, ".lora_a") != 0 || t->n_dims != 2)
            continue;
        char partner[HAFL_GGUF_MAX_NAME + 1];
        snprintf(partner, sizeof partner, "%.*s.lora_b", (int)(len - 7), t->name);
        if (!hafl_gguf_tensor(g, partner)) {
            unpaired++;
            continue;
        }
        pairs++;
        ranks_differ |= rank && t->dims[1] != rank;
        rank = t->dims[1]; //  lora_a is {d_in, r}
        uint64_t block;
        const char *rest;
        if (s_block_of(t->name, &block, &rest) == 0) {
            lowest = block < lowest ? block : lowest;
            highest = block > highest ? block : highest;
        }
    }
    printf("lora pairs: %zu (lora_a / lora_b)", pairs);
    if (unpaired)
        printf(", %zu lora_a without lora_b", unpaired);
    putchar('\n');
    if (pairs)
        printf("lora rank: %" PRIu64 "%s\n", rank,
               ranks_differ ? " (differs between tensors)" : "");
    if (lowest != UINT64_MAX)
        printf("blocks adapted: %" PRIu64 "..%" PRIu64 "\n", lowest, highest);
    return true;
}

//  Blocks: the block_count key when it is a usable integer, else one past the largest N of the
//  tensors named blk.N.*.
static uint64_t s_block_count(const hafl_gguf_t *g, const char *arch)
{
    char key[160], err[256];
    uint32_t count;
    if (arch) {
        snprintf(key, sizeof key, "%s.block_count", arch);
        if (hafl_gguf_get_u32(g, key, &count, err, sizeof err) == 0)
            return count;
    }
    uint64_t blocks = 0, index;
    const char *rest;
    for (size_t i = 0; i < hafl_gguf_tensor_count(g); i++)
        if (s_block_of(hafl_gguf_tensor_at(g, i)->name, &index, &rest) == 0 && index + 1 > blocks)
            blocks = index + 1;
    return blocks;
}

static void s_print_lora_targets(const hafl_gguf_t *g, const char *arch)
{
    enum { S_TARGETS = HAFL_WEIGHT_COUNT }; //  wq .. w3, as blk.N.<hafl_weight_gguf_name>.weight
    uint64_t blocks = s_block_count(g, arch), found[S_TARGETS] = {0};
    //  Per target, the tensor of the lowest block (its shape and type are shown).
    const hafl_gguf_tensor_t *first[S_TARGETS] = {NULL};
    uint64_t first_block[S_TARGETS] = {0};
    //  One pass over the tensors (a file's block count is untrusted, so never loop over it).
    for (size_t i = 0; i < hafl_gguf_tensor_count(g); i++) {
        const hafl_gguf_tensor_t *t = hafl_gguf_tensor_at(g, i);
        uint64_t index;
        const char *rest;
        if (s_block_of(t->name, &index, &rest) != 0 || index >= blocks)
            continue;
        //  rest is "<gguf name>.weight"; stem is the name's length.
        size_t len = strlen(rest), stem = len - strlen(".weight");
        if (len <= strlen(".weight") || strcmp(rest + stem, ".weight") != 0)
            continue;
        for (size_t k = 0; k < S_TARGETS; k++) {
            const char *name = hafl_weight_gguf_name((hafl_weight_t)k);
            if (strlen(name) == stem && memcmp(rest, name, stem) == 0) {
                found[k]++; //  names are unique, so each block counts once
                if (!first[k] || index < first_block[k]) {
                    first[k] = t;
                    first_block[k] = index;
                }
            }
        }
    }
    printf("lora targets:");
    size_t complete = 0;
    for (size_t k = 0; k < S_TARGETS; k++)
        if (blocks > 0 && found[k] == blocks) {
            printf(" %s", hafl_weight_name((hafl_weight_t)k));
            complete++;
        }
    printf("%s\n", complete ? "" : " none");
    for (size_t k = 0; k < S_TARGETS; k++) {
        printf("  %s (%s): %" PRIu64 " of %" PRIu64 " blocks", hafl_weight_name((hafl_weight_t)k),
               hafl_weight_gguf_name((hafl_weight_t)k), found[k], blocks);
        const hafl_gguf_tensor_t *t = first[k];
        //  A target is a matrix: dims {cols, rows} in GGUF's fastest-first order.
        if (t && t->n_dims == 2)
            printf(", [%" PRIu64 "][%" PRIu64 "] %s", t->dims[1], t->dims[0],
                   hafl_quant_name(t->type));
        else if (t)
            printf(", not a matrix (%u dimensions)", t->n_dims);
        putchar('\n');
    }
}

int hafl_cmd_info(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
    if (argc != 2 || argv[1][0] == '-') {
        if (argc > 1 && argv[1][0] == '-')
            fprintf(stderr, "hafl info: unknown option '%s'\n", argv[1]);
        s_usage(stderr);
        return HAFL_EXIT_USAGE;
    }
    char err[1024];
    char *path = hafl_asset_find(argv[1], err, sizeof err);
    if (!path) {
        fprintf(stderr, "hafl info: %s\n", err);
        return HAFL_EXIT_USAGE;
    }
    hafl_gguf_t *g = hafl_gguf_open(path, err, sizeof err);
    if (!g) {
        fprintf(stderr, "hafl info: %s\n", err);
        free(path);
        return HAFL_EXIT_USAGE;
    }
    size_t size;
    hafl_gguf_bytes(g, &size);
    printf("file: %s (GGUF version %u, alignment %u, %zu bytes, data at byte %" PRIu64 ")\n", path,
           hafl_gguf_version(g), hafl_gguf_alignment(g), size, hafl_gguf_data_offset(g));
    const char *arch = hafl_gguf_architecture(g);
    printf("architecture: %s\n", arch ? arch : "absent");
    if (s_print_adapter(g)) {
        s_print_tensor_summary(g);
    } else {
        if (arch)
            s_print_hyperparameters(g, arch);
        s_print_tokenizer(g);
        s_print_tensor_summary(g);
        s_print_lora_targets(g, arch);
    }
    hafl_gguf_destroy(&g);
    free(path);
    return HAFL_EXIT_OK;
}
