/*  hafl bench load: what loading a GGUF model costs, in time and resident memory.

    A llama2.c checkpoint (--checkpoint, a path or asset name) or random weights of a shape
    (--shape dim,hidden,layers,heads,kv_heads,vocab,seq) are written to a temporary GGUF with
    every matrix in --type (f32, f16 or q8_0; norms stay F32 as llama.cpp writes them), through
    the same table the loader reads (hafl_llama_gguf_blocks). The GGUF is then opened --repeat
    times with hafl_checkpoint_open, as `hafl run` and `hafl generate` open it: parse, check,
    dequantise every tensor to fp32, hash the file (the run's model digest). Per open it
    measures the wall time and the resident set before and after (/proc/self/statm), and it
    reports the best time and the largest resident growth (the fp32 image; the file's pages are
    unmapped after loading; freed heap is trimmed before each open so it is not reused). The
    llama2.c file itself, memory-mapped, is the reference in the same run: its open time (it is
    hashed too), and its resident growth once every weight is read.

    From the per-parameter figures it extrapolates to a model of --estimate parameters (default
    1e9): resident bytes = params * measured bytes per parameter, load time = params * measured
    seconds per parameter. The estimate is linear: it holds while the file stays in the page
    cache and the fp32 image fits in memory (4 GB for 1B parameters).

    Output: one JSON line per measurement ("gguf", "llama2c") and one "estimate" line.
*/
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_cmd.h"
#include "hafl_gguf_writer.h"
#include "hafl_quant.h"
#include "hafl_resident.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl bench load (--checkpoint FILE | --shape D,H,L,NH,NKV,V,S) [--type "
            "f32|f16|q8_0]\n"
            "                       [--repeat N] [--estimate PARAMS]\n"
            "  Writes the model as a GGUF of --type (default q8_0), opens it N times (default 3)\n"
            "  and prints the load time and resident memory, the memory-mapped llama2.c file's\n"
            "  beside it, and a linear estimate for a model of PARAMS parameters (default 1e9).\n");
}

//  n floats as `type` (F32, F16 or Q8_0 with n a multiple of 32): bytes in *out (caller frees).
static int s_encode(uint32_t type, const float *x, size_t n, uint8_t **out, size_t *bytes)
{
    uint64_t size;
    if (hafl_quant_bytes(type, n, &size) != 0 || !(*out = malloc((size_t)size)))
        return -1;
    uint8_t *o = *out;
    if (type == HAFL_QUANT_F32)
        memcpy(o, x, (size_t)size);
    else if (type == HAFL_QUANT_F16)
        for (size_t i = 0; i < n; i++) {
            uint16_t h = hafl_quant_fp32_to_fp16(x[i]);
            memcpy(o + 2 * i, &h, 2);
        }
    else
        //  Q8_0 blocks of 32: fp16 scale d = max |x| / 127, then round(x / d) as int8.
        for (size_t b = 0; b < n / 32; b++) {
            const float *v = x + 32 * b;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(v[j]));
            float d = amax / 127.0f, inv = d > 0.0f ? 1.0f / d : 0.0f;
            uint16_t h = hafl_quant_fp32_to_fp16(d);
            memcpy(o + 34 * b, &h, 2);
            for (int j = 0; j < 32; j++)
                o[34 * b + 2 + j] = (uint8_t)(int8_t)lrintf(v[j] * inv);
        }
    *bytes = (size_t)size;
    return 0;
}

//  One tensor [rows][cols] (rows 0: a vector, always F32) into the writer.
static int s_add(hafl_gguf_writer_t *w, const char *name, uint32_t type, uint64_t rows,
                 uint64_t cols, const float *x)
{
    uint32_t t = rows ? type : HAFL_QUANT_F32;
    uint8_t *data;
    size_t bytes;
    if (s_encode(t, x, (size_t)((rows ? rows : 1) * cols), &data, &bytes))
        return -1;
    uint64_t dims[2] = {cols, rows};
    int rc = hafl_gguf_writer_add_tensor(w, name, t, rows ? 2 : 1, dims, data, bytes);
    free(data);
    return rc;
}

//  The checkpoint as a llama GGUF of `type` at path. 0, or -1 with a reason in err.
static int s_write_gguf(const hafl_checkpoint_t *ck, uint32_t type, const char *path, char *err,
                        size_t errlen)
{
    const hafl_llama_config_t *c = &ck->config;
    const hafl_llama_weights_t *wt = &ck->weights;
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int bad = hafl_gguf_writer_add_string(w, "general.architecture", "llama");
    bad |= hafl_gguf_writer_add_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    bad |= hafl_gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    bad |= hafl_gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    bad |= hafl_gguf_writer_add_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    bad |= hafl_gguf_writer_add_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    bad |= hafl_gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    bad |= hafl_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", c->rms_eps);
    bad |= hafl_gguf_writer_add_f32(w, "llama.rope.freq_base", c->rope_base);
    uint64_t dim = (uint64_t)c->dim, vocab = (uint64_t)c->vocab_size;
    bad |= s_add(w, "token_embd.weight", type, vocab, dim, wt->token_embedding);
    for (int l = 0; l < c->n_layers && !bad; l++) {
        hafl_llama_gguf_block_t blocks[HAFL_LLAMA_GGUF_BLOCKS];
        size_t n = hafl_llama_gguf_blocks(c, wt, l, blocks);
        for (size_t b = 0; b < n && !bad; b++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s", l, blocks[b].name);
            bad |= s_add(w, name, type, blocks[b].rows, blocks[b].cols, blocks[b].slice);
        }
    }
    bad |= s_add(w, "output_norm.weight", type, 0, dim, wt->rms_final);
    if (!c->shared_classifier)
        bad |= s_add(w, "output.weight", type, vocab, dim, wt->wcls);
    int rc = -1;
    if (bad)
        snprintf(err, errlen, "cannot encode the weights as %s (rows must be whole blocks)",
                 hafl_quant_name(type));
    else
        rc = hafl_gguf_writer_save(w, path, err, errlen);
    hafl_gguf_writer_destroy(&w);
    return rc;
}

//  Parameter count of a config (every float of the model, the classifier when separate).
static double s_params(const hafl_llama_config_t *c)
{
    double dim = c->dim, hidden = c->hidden_dim, layers = c->n_layers, vocab = c->vocab_size;
    double kv = hafl_llama_kv_dim(c);
    double n = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim);
    return n + dim + (c->shared_classifier ? 0 : vocab * dim);
}

//  Sum every weight (so a mapped file's pages are all read); the value is printed so the
//  compiler cannot drop the reads.
static double s_touch(const hafl_checkpoint_t *ck)
{
    const float *p = (const float *)ck->weights.token_embedding;
    const float *end = (const float *)((const char *)ck->memory + ck->size);
    double sum = 0.0;
    for (; p < end; p += 1024 / sizeof(float))
        sum += *p;
    return sum;
}

int hafl_bench_load(int argc, char **argv)
{
    const char *checkpoint = NULL, *shape = NULL, *type_name = "q8_0";
    long repeat = 3;
    double estimate = 1e9;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "hafl bench load: %s needs a value\n", arg);
            return HAFL_EXIT_USAGE;
        }
        const char *value = argv[++i];
        char *end = NULL;
        if (strcmp(arg, "--checkpoint") == 0)
            checkpoint = value;
        else if (strcmp(arg, "--shape") == 0)
            shape = value;
        else if (strcmp(arg, "--type") == 0)
            type_name = value;
        else if (strcmp(arg, "--repeat") == 0 && (repeat = strtol(value, &end, 10), *end == 0) &&
                 repeat >= 1 && repeat <= 100)
            ;
        else if (strcmp(arg, "--estimate") == 0 && (estimate = strtod(value, &end), *end == 0) &&
                 estimate >= 1)
            ;
        else {
            fprintf(stderr, "hafl bench load: bad option or value: %s %s\n", arg, value);
            s_usage(stderr);
            return HAFL_EXIT_USAGE;
        }
    }
    uint32_t type = strcmp(type_name, "f32") == 0    ? HAFL_QUANT_F32
                    : strcmp(type_name, "f16") == 0  ? HAFL_QUANT_F16
                    : strcmp(type_name, "q8_0") == 0 ? HAFL_QUANT_Q8_0
                                                     : UINT32_MAX;
    if (type == UINT32_MAX || !checkpoint == !shape) {
        fprintf(stderr, "hafl bench load: give --checkpoint or --shape, and --type f32, f16 or "
                        "q8_0\n");
        return HAFL_EXIT_USAGE;
    }
    char err[1024];
    hafl_checkpoint_t *source = NULL;
    char *path = NULL;
    if (checkpoint) {
        if (!(path = hafl_asset_find(checkpoint, err, sizeof err))) {
            fprintf(stderr, "hafl bench load: %s\n", err);
            return HAFL_EXIT_USAGE;
        }
        source = hafl_checkpoint_open(path, err, sizeof err);
    } else {
        hafl_llama_config_t c = {0};
        c.shared_classifier = true;
        if (sscanf(shape, "%d,%d,%d,%d,%d,%d,%d", &c.dim, &c.hidden_dim, &c.n_layers, &c.n_heads,
                   &c.n_kv_heads, &c.vocab_size, &c.seq_len) != 7) {
            fprintf(stderr, "hafl bench load: --shape needs seven integers\n");
            return HAFL_EXIT_USAGE;
        }
        source = hafl_checkpoint_random(&c, 1, err, sizeof err);
    }
    if (!source) {
        fprintf(stderr, "hafl bench load: %s\n", err);
        free(path);
        return HAFL_EXIT_USAGE;
    }
    char gguf[] = "/tmp/hafl-bench-load-XXXXXX";
    int fd = mkstemp(gguf);
    if (fd < 0) {
        fprintf(stderr, "hafl bench load: cannot create a temporary file\n");
        hafl_checkpoint_destroy(&source);
        free(path);
        return HAFL_EXIT_FAILURE;
    }
    close(fd);
    int rc = HAFL_EXIT_FAILURE;
    if (s_write_gguf(source, type, gguf, err, sizeof err)) {
        fprintf(stderr, "hafl bench load: %s\n", err);
        goto done;
    }
    double params = s_params(&source->config);
    FILE *f = fopen(gguf, "rb");
    long file_bytes = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        file_bytes = ftell(f);
    if (f)
        fclose(f);

    double best = 1e30, grown = 0.0;
    for (long r = 0; r < repeat; r++) {
        //  Freed heap (the encoder's buffers, the last open's image) goes back to the system
        //  first, so that the image is new resident memory, not reused pages.
        malloc_trim(0);
        double before = hafl_resident_mib(), t0 = s_now();
        hafl_checkpoint_t *loaded = hafl_checkpoint_open(gguf, err, sizeof err);
        double dt = s_now() - t0;
        if (!loaded) {
            fprintf(stderr, "hafl bench load: %s\n", err);
            goto done;
        }
        //  The first open shows the image's cost; later ones may reuse the heap it freed.
        double growth = hafl_resident_mib() - before;
        grown = growth > grown ? growth : grown;
        best = dt < best ? dt : best;
        hafl_checkpoint_destroy(&loaded);
    }
    printf("{\"bench\": \"load\", \"format\": \"gguf\", \"type\": \"%s\", \"model\": \"%s\", "
           "\"params\": %.0f, \"file_mib\": %.2f, \"load_ms\": %.2f, \"resident_mib\": %.2f, "
           "\"resident_bytes_per_param\": %.3f, \"ms_per_mparam\": %.3f}\n",
           hafl_quant_name(type), source->path, params, (double)file_bytes / 1048576.0, best * 1e3,
           grown, grown * 1048576.0 / params, best * 1e3 / (params / 1e6));

    if (path) {
        //  The reference: the llama2.c file, memory-mapped, all its pages read once.
        double before = hafl_resident_mib(), t0 = s_now();
        hafl_checkpoint_t *mapped = hafl_checkpoint_open(path, err, sizeof err);
        double open_s = s_now() - t0;
        if (!mapped) {
            fprintf(stderr, "hafl bench load: %s\n", err);
            goto done;
        }
        double sum = s_touch(mapped);
        double touched = hafl_resident_mib() - before;
        printf(
            "{\"bench\": \"load\", \"format\": \"llama2c\", \"model\": \"%s\", \"open_ms\": %.2f, "
            "\"resident_after_reading_mib\": %.2f, \"checksum\": %.3g}\n",
            path, open_s * 1e3, touched, sum);
        hafl_checkpoint_destroy(&mapped);
    }
    printf("{\"bench\": \"load\", \"estimate_params\": %.3g, \"type\": \"%s\", "
           "\"est_resident_gib\": %.2f, \"est_load_s\": %.2f, \"est_file_gib\": %.2f}\n",
           estimate, hafl_quant_name(type), grown * 1048576.0 / params * estimate / 1073741824.0,
           best / params * estimate, (double)file_bytes / params * estimate / 1073741824.0);
    rc = HAFL_EXIT_OK;
done:
    unlink(gguf);
    hafl_checkpoint_destroy(&source);
    free(path);
    return rc;
}
