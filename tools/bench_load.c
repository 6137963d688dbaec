/*  hafl bench load: what loading a GGUF model costs, in time and resident memory.

    A llama2.c checkpoint (--checkpoint, a path or asset name) or random weights of a shape
    (--shape dim,hidden,layers,heads,kv_heads,vocab,seq) are written to a temporary GGUF with
    every matrix in --type (f32, f16, bf16 or q8_0; norms stay F32 as llama.cpp writes them) by
    hafl_checkpoint_write_gguf. The GGUF is then opened --repeat
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

#include <czmq.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Monotonic seconds.
static double s_now(void)
{
    return (double)zclock_usecs() * 1e-6;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl bench load (--checkpoint FILE | --shape D,H,L,NH,NKV,V,S) [--type "
            "f32|f16|bf16|q8_0]\n"
            "                       [--repeat N] [--estimate PARAMS]\n"
            "  Writes the model as a GGUF of --type (default q8_0), opens it N times (default 3)\n"
            "  and prints the load time and resident memory, the memory-mapped llama2.c file's\n"
            "  beside it, and a linear estimate for a model of PARAMS parameters (default 1e9).\n");
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
                    : strcmp(type_name, "bf16") == 0 ? HAFL_QUANT_BF16
                    : strcmp(type_name, "q8_0") == 0 ? HAFL_QUANT_Q8_0
                                                     : UINT32_MAX;
    if (type == UINT32_MAX || !checkpoint == !shape) {
        fprintf(stderr,
                "hafl bench load: give --checkpoint or --shape, and --type f32, f16, bf16 or "
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
    hafl_gguf_writer_t *writer = hafl_gguf_writer_new(0);
    if (!writer || hafl_checkpoint_write_gguf(source, writer, type) != 0 ||
        hafl_gguf_writer_save(writer, gguf, err, sizeof err) != 0) {
        fprintf(stderr, "hafl bench load: %s\n",
                !writer                          ? "out of memory"
                : hafl_gguf_writer_error(writer) ? hafl_gguf_writer_error(writer)
                                                 : err);
        hafl_gguf_writer_destroy(&writer);
        goto done;
    }
    hafl_gguf_writer_destroy(&writer);
    double params = 0; //  the loaded image's floats: every weight, nothing else
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
        params = (double)loaded->size / sizeof(float);
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
