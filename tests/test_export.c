/*  test_export: `hafl export` (tools/cmd_export.c), its GGUF read back through the project's
    own reader and compared with the adapter it came from.

    Modes:
      test_export                      (ctest "export") synthetic runs, no assets: a tiny
                                       llama2.c checkpoint with grouped-query attention
                                       (dim 16, 4 heads, 2 kv heads, hidden 24, 2 layers) and an
                                       adapter on all seven weights, rank 3, scale 2.5 (so B / s
                                       rounds), with 0, 2 or 5 merged terms per matrix, and
                                       the same without merged terms, and the merged one on
                                       a qwen2 GGUF of the same shape (q/k/v biases, NeoX
                                       RoPE, separate output). Each is exported and checked as
                                       below (qwen2 with and without --model: the architecture
                                       is the base's, llama when none is given); then the
                                       command's failures (exit status and the words of its
                                       one-line reason).
      test_export --make-run DIR [--no-merged] [--qwen2]   writes such a run folder
                                       (DIR/final_adapter.bin) and its checkpoint, DIR/model.bin
                                       (llama2.c) or with --qwen2 DIR/model.gguf, for the shell
                                       test.
      test_export --check-gguf RUN_DIR OUT.gguf [MODEL]   checks an export of
                                       RUN_DIR/final_adapter.bin whose base is MODEL (a path or
                                       asset name; without it the export had no --model).
      test_export --dump RUN_DIR MODEL OUT.json  the adapter, the head counts of MODEL (a
                                       path or asset name) and its RoPE pairing ("rope":
                                       "adjacent" for llama, "neox" for qwen2) as JSON for
                                       tests/test_export_peft.py (floats in %.9g, exact for
                                       float32).

    The GGUF check: keys (general.architecture the base's: qwen2 when it rotates NeoX pairs,
    else llama, and llama without a base; general.type adapter, adapter.type lora,
    adapter.lora.alpha stored as float32), exactly two F32 tensors per matrix named
    blk.N.<t>.weight.lora_a / .lora_b with dims {d_in, r} and {r, d_out}, one r for all, and
    alpha / r equal to the run's scale to 1e-6. Without merged terms anywhere: r = R, alpha the
    run's and every factor bit-identical. Always: the live components bit-identical, the
    merged A rows bit-identical, padding zero, and the effective delta (alpha / r) B A equal to
    merged + s B A within 1e-6 of the sum of the absolute values of the products (the bound of
    float rounding; a misplaced value is far outside it).
*/
#include "hafl_adapter.h"
#include "hafl_asset.h"
#include "hafl_gguf.h"
#include "hafl_gguf_writer.h"
#include "hafl_quant.h"
#include "hafl_targets.h"
#include "hafl_test.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *s_gguf_tensor[HAFL_WEIGHT_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up"};

//  The synthetic model: small, GQA, every weight shape distinct from its transpose.
static const hafl_llama_config_t s_config = {.dim = 16,
                                             .hidden_dim = 24,
                                             .n_layers = 2,
                                             .n_heads = 4,
                                             .n_kv_heads = 2,
                                             .vocab_size = 8,
                                             .seq_len = 4,
                                             .shared_classifier = true};

//  "L<N>.<w>" -> N, w (the test's own parse, so a wrong name in the exporter shows).
static void s_parse(const char *name, uint32_t *layer, hafl_weight_t *weight)
{
    char w[8];
    CHECKF(sscanf(name, "L%u.%7s", layer, w) == 2, "matrix name '%s'", name);
    for (int k = 0; k < HAFL_WEIGHT_COUNT; k++)
        if (strcmp(w, hafl_weight_name((hafl_weight_t)k)) == 0) {
            *weight = (hafl_weight_t)k;
            return;
        }
    CHECKF(0, "matrix name '%s'", name);
}

static bool s_same_bits(float x, float y)
{
    return memcmp(&x, &y, sizeof x) == 0;
}

//  ---------------------------------------------------------------- the GGUF check

static const float *s_tensor(const hafl_gguf_t *g, const char *name, uint64_t d0, uint64_t d1)
{
    const hafl_gguf_tensor_t *t = hafl_gguf_tensor(g, name);
    CHECKF(t, "no tensor %s", name);
    CHECKF(t->type == HAFL_QUANT_F32 && t->n_dims == 2 && t->dims[0] == d0 && t->dims[1] == d1,
           "%s: type %u, %u dims {%llu, %llu}, expected F32 {%llu, %llu}", name, t->type, t->n_dims,
           (unsigned long long)t->dims[0], (unsigned long long)t->dims[1], (unsigned long long)d0,
           (unsigned long long)d1);
    //  Aligned to 32 in the file, which the writer and reader guarantee; copy to be safe.
    float *copy = malloc(t->n_bytes);
    CHECK(copy);
    memcpy(copy, t->data, t->n_bytes);
    return copy;
}

static void s_check_string(const hafl_gguf_t *g, const char *key, const char *want)
{
    char err[256];
    hafl_gguf_str_t s;
    CHECKF(hafl_gguf_get_str(g, key, &s, err, sizeof err) == 0, "%s", err);
    CHECKF(s.len == strlen(want) && memcmp(s.data, want, s.len) == 0, "%s is '%.*s', not '%s'", key,
           (int)s.len, s.data, want);
}

//  Checks the GGUF at path against the adapter and the base's architecture (llama or qwen2);
//  returns the exported rank.
static uint32_t s_check_gguf(const hafl_adapter_t *ad, const char *path, const char *arch)
{
    char err[1024];
    hafl_gguf_t *g = hafl_gguf_open(path, err, sizeof err);
    CHECKF(g, "%s", err);
    const hafl_layout_t *L = &ad->layout;
    s_check_string(g, "general.architecture", arch);
    s_check_string(g, "general.type", "adapter");
    s_check_string(g, "adapter.type", "lora");
    const hafl_gguf_kv_t *kv = hafl_gguf_find(g, "adapter.lora.alpha");
    CHECKF(kv && kv->value.type == HAFL_GGUF_FLOAT32, "adapter.lora.alpha is not a float32");
    float alpha = kv->value.f32;
    CHECK(hafl_gguf_tensor_count(g) == 2 * (size_t)L->n_matrices);

    uint32_t merged_anywhere = 0, r = 0, merged_most = 0;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        merged_anywhere += ad->n_merged[m];
        merged_most = ad->n_merged[m] > merged_most ? ad->n_merged[m] : merged_most;
    }
    //  The source, recorded: the adapter's digest, its live rank and the merged terms' room.
    char hex[65];
    hafl_adapter_digest_hex(ad, hex);
    s_check_string(g, "hafl.export.adapter_sha256", hex);
    uint32_t live_rank = 0, room = 0;
    CHECKF(hafl_gguf_get_u32(g, "hafl.export.live_rank", &live_rank, err, sizeof err) == 0 &&
               hafl_gguf_get_u32(g, "hafl.export.merged_rank", &room, err, sizeof err) == 0,
           "%s", err);
    CHECKF(live_rank == L->rank && room == merged_most,
           "live_rank %u, merged_rank %u; expected %u, %u", live_rank, room, L->rank, merged_most);
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t layer;
        hafl_weight_t w;
        s_parse(L->matrices[m].name, &layer, &w);
        size_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
        char name_a[96], name_b[96];
        snprintf(name_a, sizeof name_a, "blk.%u.%s.weight.lora_a", layer, s_gguf_tensor[w]);
        snprintf(name_b, sizeof name_b, "blk.%u.%s.weight.lora_b", layer, s_gguf_tensor[w]);
        const hafl_gguf_tensor_t *ta = hafl_gguf_tensor(g, name_a);
        CHECKF(ta && ta->n_dims == 2, "no matrix %s", name_a);
        if (m == 0)
            r = (uint32_t)ta->dims[1];
        CHECKF(ta->dims[1] == r, "%s: rank %llu, another matrix has %u", name_a,
               (unsigned long long)ta->dims[1], r);
        CHECKF(r >= L->rank + ad->n_merged[m], "%s: rank %u holds no room for %u + %u", name_a, r,
               L->rank, ad->n_merged[m]);
        const float *a = s_tensor(g, name_a, d_in, r);  //  [r][d_in]
        const float *b = s_tensor(g, name_b, r, d_out); //  [d_out][r]
        //  Exact placement: live components, merged A rows, zero padding.
        for (uint32_t k = 0; k < r; k++) {
            bool live = k < L->rank, merged = !live && k < L->rank + ad->n_merged[m];
            for (size_t j = 0; j < d_in; j++) {
                float want = live     ? hafl_adapter_a(ad, m, k)[j]
                             : merged ? ad->ma[m][(k - L->rank) * d_in + j]
                                      : 0.0f;
                CHECKF(s_same_bits(a[k * d_in + j], want), "%s[%u][%zu] = %.9g, expected %.9g",
                       name_a, k, j, (double)a[k * d_in + j], (double)want);
            }
            for (size_t i = 0; i < d_out; i++) {
                if (merged)
                    continue; //  mb / s, checked through the delta below
                float want = live ? hafl_adapter_b(ad, m, k)[i] : 0.0f;
                CHECKF(s_same_bits(b[i * r + k], want), "%s[%zu][%u] = %.9g, expected %.9g", name_b,
                       i, k, (double)b[i * r + k], (double)want);
            }
        }
        //  The effective delta, in double: the exporter's against the run's.
        double scale = (double)alpha / r;
        for (size_t i = 0; i < d_out; i++)
            for (size_t j = 0; j < d_in; j++) {
                double have = 0, want = 0, bound = 0;
                for (uint32_t k = 0; k < r; k++) {
                    have += scale * (double)b[i * r + k] * a[k * d_in + j];
                    bound += fabs(scale * (double)b[i * r + k] * a[k * d_in + j]);
                }
                for (uint32_t k = 0; k < L->rank; k++) {
                    double term = (double)L->scale * hafl_adapter_b(ad, m, k)[i] *
                                  hafl_adapter_a(ad, m, k)[j];
                    want += term;
                    bound += fabs(term);
                }
                for (uint32_t k = 0; k < ad->n_merged[m]; k++) {
                    double term = (double)ad->mbt[m][k * d_out + i] * ad->ma[m][k * d_in + j];
                    want += term;
                    bound += fabs(term);
                }
                CHECKF(fabs(have - want) <= 1e-6 * bound + 1e-30,
                       "%s: delta[%zu][%zu] = %.9g, expected %.9g", L->matrices[m].name, i, j, have,
                       want);
            }
        free((void *)a);
        free((void *)b);
    }
    CHECKF(fabs((double)alpha / r - L->scale) <= 1e-6 * L->scale, "alpha %g / r %u != scale %g",
           (double)alpha, r, (double)L->scale);
    if (merged_anywhere == 0) {
        CHECKF(r == L->rank, "rank %u without merged terms, expected %u", r, L->rank);
        CHECKF(s_same_bits(alpha, (float)((double)L->scale * L->rank)), "alpha %.9g",
               (double)alpha);
    }
    hafl_gguf_destroy(&g);
    return r;
}

//  ---------------------------------------------------------------- synthetic runs

static float s_uniform(uint64_t *state) //  in [-1, 1), a fixed LCG stream
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*state >> 40) / (double)(1ULL << 23) - 1.0);
}

static void s_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    CHECKF(f, "%s: %s", path, strerror(errno));
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);
}

//  A model of config c at path (only its shapes matter here): a random checkpoint's image,
//  which is a llama2.c file, or for a GGUF path the same laid out by hafl_checkpoint_write_gguf.
static void s_write_model(const char *path, const hafl_llama_config_t *c)
{
    char err[1024];
    hafl_checkpoint_t *r = hafl_checkpoint_random(c, 5, err, sizeof err);
    CHECKF(r, "%s", err);
    size_t len = strlen(path);
    if (len < 5 || strcmp(path + len - 5, ".gguf") != 0) {
        s_write_file(path, r->memory, r->size);
    } else {
        hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
        CHECK(w);
        CHECKF(hafl_checkpoint_write_gguf(r, w, HAFL_QUANT_F32) == 0, "%s",
               hafl_gguf_writer_error(w));
        CHECKF(hafl_gguf_writer_save(w, path, err, sizeof err) == 0, "%s", err);
        hafl_gguf_writer_destroy(&w);
    }
    hafl_checkpoint_destroy(&r);
}

//  The qwen2 twin of s_config: the same shapes (so the same adapter fits), q/k/v biases, NeoX
//  RoPE, a separate output matrix, qwen2's RoPE base and epsilon.
static hafl_llama_config_t s_qwen2_config(void)
{
    hafl_llama_config_t c = s_config;
    c.shared_classifier = false;
    c.rope_base = 1e6f;
    c.rms_eps = 1e-6f;
    c.rope_neox = true;
    c.qkv_bias = true;
    return c;
}

//  The checkpoint MODEL names (a path or an asset name, never downloaded).
static hafl_checkpoint_t *s_open_model(const char *model)
{
    char err[1024];
    char *path = hafl_asset_find_local(model, err, sizeof err);
    CHECKF(path, "%s", err);
    hafl_checkpoint_t *ckpt = hafl_checkpoint_open(path, err, sizeof err);
    CHECKF(ckpt, "%s", err);
    free(path);
    return ckpt;
}

//  general.architecture of an adapter for MODEL: told apart by RoPE pairing, as the engine does.
static const char *s_model_arch(const char *model)
{
    hafl_checkpoint_t *ckpt = s_open_model(model);
    const char *arch = ckpt->config.rope_neox ? "qwen2" : "llama";
    hafl_checkpoint_destroy(&ckpt);
    return arch;
}

//  The synthetic adapter: all seven weights, rank 3, alpha 7.5 (scale 2.5), random factors
//  and head, merged terms 0, 2 or 5 by matrix (none with no_merged).
static hafl_adapter_t *s_make_adapter(bool no_merged)
{
    hafl_targets_t targets;
    char err[256];
    CHECKF(hafl_targets_parse("wq,wk,wv,wo,w1,w2,w3", &targets, err, sizeof err) == 0, "%s", err);
    hafl_layout_t layout;
    CHECK(hafl_targets_layout(&targets, &s_config, 3, 7.5f, 5, &layout) == 0);
    CHECK(layout.scale == 2.5f);
    hafl_adapter_t *ad = hafl_adapter_new(&layout);
    CHECK(ad);
    uint64_t rng = 42;
    for (uint32_t m = 0; m < layout.n_matrices; m++) {
        size_t d_out = layout.matrices[m].d_out, d_in = layout.matrices[m].d_in;
        for (size_t i = 0; i < layout.rank * d_out; i++)
            ad->bt[m][i] = s_uniform(&rng);
        for (size_t i = 0; i < layout.rank * d_in; i++)
            ad->a[m][i] = s_uniform(&rng);
        uint32_t n = no_merged ? 0 : (uint32_t[]){0, 2, 5}[m % 3];
        if (n) {
            float *mbt = malloc(n * d_out * sizeof *mbt), *ma = malloc(n * d_in * sizeof *ma);
            CHECK(mbt && ma);
            for (size_t i = 0; i < n * d_out; i++)
                mbt[i] = 0.1f * s_uniform(&rng);
            for (size_t i = 0; i < n * d_in; i++)
                ma[i] = s_uniform(&rng);
            CHECK(hafl_adapter_set_merged(ad, m, n, mbt, ma) == 0);
            free(mbt);
            free(ma);
        }
    }
    for (size_t i = 0; i < (size_t)layout.head_rows * layout.head_cols; i++)
        ad->head[i] = s_uniform(&rng);
    hafl_layout_clear(&layout);
    return ad;
}

//  A run folder: final_adapter.bin and DIR/model.bin, or with qwen2 DIR/model.gguf (opened
//  here, so a file the loader refuses fails now rather than inside the export).
static void s_make_run(const char *dir, bool no_merged, bool qwen2)
{
    char path[4200], err[1024];
    CHECKF(mkdir(dir, 0755) == 0 || errno == EEXIST, "%s: %s", dir, strerror(errno));
    hafl_adapter_t *ad = s_make_adapter(no_merged);
    snprintf(path, sizeof path, "%s/final_adapter.bin", dir);
    CHECKF(hafl_adapter_save(ad, path, err, sizeof err) == 0, "%s", err);
    hafl_adapter_destroy(&ad);
    if (!qwen2) {
        snprintf(path, sizeof path, "%s/model.bin", dir);
        s_write_model(path, &s_config);
        return;
    }
    hafl_llama_config_t want = s_qwen2_config();
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    s_write_model(path, &want);
    hafl_checkpoint_t *ckpt = hafl_checkpoint_open(path, err, sizeof err);
    CHECKF(ckpt, "%s", err);
    const hafl_llama_config_t *c = &ckpt->config;
    CHECK(c->dim == want.dim && c->hidden_dim == want.hidden_dim && c->n_layers == want.n_layers);
    CHECK(c->n_heads == want.n_heads && c->n_kv_heads == want.n_kv_heads);
    CHECK(c->vocab_size == want.vocab_size && c->seq_len == want.seq_len);
    CHECK(c->rope_neox && c->qkv_bias && !c->shared_classifier);
    hafl_checkpoint_destroy(&ckpt);
}

static hafl_adapter_t *s_load_run(const char *run_dir)
{
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/final_adapter.bin", run_dir);
    hafl_adapter_t *ad = hafl_adapter_load(path, err, sizeof err);
    CHECKF(ad, "%s", err);
    return ad;
}

//  ---------------------------------------------------------------- the JSON dump

static void s_floats(FILE *f, const float *v, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%.9g", i ? "," : "", (double)v[i]);
    fputc(']', f);
}

//  Rows of a [rows][cols] block as a JSON list of lists.
static void s_rows(FILE *f, const float *v, size_t rows, size_t cols)
{
    fputc('[', f);
    for (size_t i = 0; i < rows; i++) {
        fputs(i ? "," : "", f);
        s_floats(f, v + i * cols, cols);
    }
    fputc(']', f);
}

static void s_dump(const char *run_dir, const char *model_path, const char *out)
{
    hafl_adapter_t *ad = s_load_run(run_dir);
    hafl_checkpoint_t *model = s_open_model(model_path);
    const hafl_layout_t *L = &ad->layout;
    FILE *f = fopen(out, "w");
    CHECKF(f, "%s: %s", out, strerror(errno));
    fprintf(f,
            "{\"scale\": %.9g, \"rank\": %u, \"n_heads\": %d, \"n_kv_heads\": %d, "
            "\"rope\": \"%s\",\n",
            (double)L->scale, L->rank, model->config.n_heads, model->config.n_kv_heads,
            model->config.rope_neox ? "neox" : "adjacent");
    fprintf(f, "\"head\": ");
    s_rows(f, ad->head, L->head_rows, L->head_cols);
    fprintf(f, ",\n\"matrices\": [");
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        size_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
        fprintf(f, "%s\n{\"name\": \"%s\", \"d_out\": %zu, \"d_in\": %zu, \"b\": ", m ? "," : "",
                L->matrices[m].name, d_out, d_in);
        s_rows(f, ad->bt[m], L->rank, d_out);
        fprintf(f, ", \"a\": ");
        s_rows(f, ad->a[m], L->rank, d_in);
        fprintf(f, ", \"mb\": ");
        s_rows(f, ad->mbt[m], ad->n_merged[m], d_out);
        fprintf(f, ", \"ma\": ");
        s_rows(f, ad->ma[m], ad->n_merged[m], d_in);
        fputc('}', f);
    }
    fprintf(f, "]}\n");
    CHECK(fclose(f) == 0);
    hafl_checkpoint_destroy(&model);
    hafl_adapter_destroy(&ad);
}

//  ---------------------------------------------------------------- running the command

static char s_tmp[256];

typedef struct {
    int status;
    char err[4096];
} s_run_t;

//  `hafl export ARGS...` (NULL-terminated), its status and stderr.
static s_run_t s_export(const char *first, ...)
{
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary && *binary, "HAFL_BINARY is not set (run through ctest)");
    const char *argv[16] = {"hafl", "export", first};
    int argc = 3;
    va_list args;
    va_start(args, first);
    const char *arg;
    while (first && (arg = va_arg(args, const char *))) {
        CHECKF(argc < 15, "s_export: more than 12 arguments after RUN_DIR");
        argv[argc++] = arg;
    }
    va_end(args);
    argv[first ? argc : 2] = NULL;
    char err_path[300];
    snprintf(err_path, sizeof err_path, "%s/export.err", s_tmp);
    fflush(stdout); //  else the child's freopen writes our buffered lines again
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen(err_path, "w", stderr) ||
            setenv("HAFL_OFFLINE", "1", 1) != 0)
            _exit(127);
        execv(binary, (char *const *)argv);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    s_run_t run = {WEXITSTATUS(status), ""};
    CHECKF(run.status != 127, "could not run %s", binary);
    FILE *f = fopen(err_path, "r");
    CHECK(f);
    size_t n = fread(run.err, 1, sizeof run.err - 1, f);
    run.err[n] = 0;
    fclose(f);
    return run;
}

//  The run failed with status, and the first line of its stderr holds every one of the
//  NULL-terminated words; only a usage error (usage) may print more lines (the usage text).
static void s_expect(s_run_t run, int status, bool usage, const char *word, ...)
{
    CHECKF(run.status == status, "status %d, expected %d: %s", run.status, status, run.err);
    char *newline = strchr(run.err, '\n');
    CHECKF(newline && (usage || newline[1] == 0), "not one line: '%s'", run.err);
    *newline = 0;
    va_list args;
    va_start(args, word);
    for (const char *w = word; w; w = va_arg(args, const char *))
        CHECKF(strstr(run.err, w), "no '%s' in: %s", w, run.err);
    va_end(args);
}

static void s_synthetic(void)
{
    char merged[300], plain[300], qwen2[300], path[400], out[600], model[400];
    snprintf(merged, sizeof merged, "%s/merged", s_tmp);
    snprintf(plain, sizeof plain, "%s/plain", s_tmp);
    snprintf(qwen2, sizeof qwen2, "%s/qwen2", s_tmp);
    s_make_run(merged, false, false);
    s_make_run(plain, true, false);
    s_make_run(qwen2, false, true);
    snprintf(model, sizeof model, "%s/model.bin", merged);

    //  Merged terms: rank 3 + 5, delta within rounding.
    snprintf(out, sizeof out, "%s/merged.gguf", s_tmp);
    snprintf(path, sizeof path, "%s/merged-peft", s_tmp);
    s_run_t run = s_export(merged, "--gguf-lora", out, "--peft", path, "--model", model, NULL);
    CHECKF(run.status == 0, "status %d: %s", run.status, run.err);
    hafl_adapter_t *ad = s_load_run(merged);
    CHECK(s_check_gguf(ad, out, "llama") == 8);
    hafl_adapter_destroy(&ad);
    //  No merged terms: the factors bit for bit, no base model needed for the GGUF.
    snprintf(out, sizeof out, "%s/plain.gguf", s_tmp);
    run = s_export(plain, "--gguf-lora", out, NULL);
    CHECKF(run.status == 0, "status %d: %s", run.status, run.err);
    ad = s_load_run(plain);
    CHECK(s_check_gguf(ad, out, "llama") == 3);
    hafl_adapter_destroy(&ad);
    //  A qwen2 base: its architecture in the GGUF (llama.cpp refuses a mismatch); without
    //  --model the exporter cannot know it and writes llama, as documented.
    snprintf(model, sizeof model, "%s/model.gguf", qwen2);
    snprintf(out, sizeof out, "%s/qwen2.gguf", s_tmp);
    snprintf(path, sizeof path, "%s/qwen2-peft", s_tmp);
    run = s_export(qwen2, "--gguf-lora", out, "--peft", path, "--model", model, NULL);
    CHECKF(run.status == 0, "status %d: %s", run.status, run.err);
    ad = s_load_run(qwen2);
    CHECK(s_check_gguf(ad, out, "qwen2") == 8);
    snprintf(out, sizeof out, "%s/qwen2-unknown.gguf", s_tmp);
    run = s_export(qwen2, "--gguf-lora", out, NULL);
    CHECKF(run.status == 0, "status %d: %s", run.status, run.err);
    CHECK(s_check_gguf(ad, out, "llama") == 8);
    hafl_adapter_destroy(&ad);
    snprintf(model, sizeof model, "%s/model.bin", merged);
    //  --base-model names the base in adapter_config.json, as a JSON string.
    snprintf(path, sizeof path, "%s/named-peft", s_tmp);
    run =
        s_export(plain, "--peft", path, "--model", model, "--base-model", "my \"hf\\ model", NULL);
    CHECKF(run.status == 0, "status %d: %s", run.status, run.err);
    snprintf(out, sizeof out, "%s/adapter_config.json", path);
    FILE *f = fopen(out, "r");
    CHECK(f);
    char config[2048];
    config[fread(config, 1, sizeof config - 1, f)] = 0;
    fclose(f);
    CHECKF(strstr(config, "\"base_model_name_or_path\": \"my \\\"hf\\\\ model\",\n"), "%s", config);
    printf("ok   synthetic exports (rank 3 + 5 merged on llama and qwen2, and rank 3) read back "
           "exactly\n");
}

static void s_failures(void)
{
    char merged[300], dir[400], path[400], model[400], file[600];
    snprintf(merged, sizeof merged, "%s/merged", s_tmp);
    snprintf(model, sizeof model, "%s/model.bin", merged);
    snprintf(path, sizeof path, "%s/x.gguf", s_tmp);

    s_expect(s_export(NULL), 2, true, "no RUN_DIR", NULL);
    s_expect(s_export(merged, NULL), 2, false, "nothing to write", "--gguf-lora", "--peft", NULL);
    s_expect(s_export(merged, "--gguf-lora", NULL), 2, false, "--gguf-lora needs a value", NULL);
    s_expect(s_export(merged, "--frobnicate", NULL), 2, true, "unknown option '--frobnicate'",
             NULL);
    s_expect(s_export(merged, "--peft", "a", "--peft", "b", NULL), 2, false, "given twice", NULL);
    snprintf(dir, sizeof dir, "%s/missing", s_tmp);
    s_expect(s_export(dir, "--gguf-lora", path, NULL), 2, false, dir, "No such file", NULL);

    //  A folder without final_adapter.bin; then one whose checkpoints show an unfinished run.
    snprintf(dir, sizeof dir, "%s/empty", s_tmp);
    CHECK(mkdir(dir, 0755) == 0);
    s_expect(s_export(dir, "--gguf-lora", path, NULL), 2, false, "final_adapter.bin: not found",
             "not a finished run folder", NULL);
    snprintf(file, sizeof file, "%s/checkpoint", dir);
    CHECK(mkdir(file, 0755) == 0);
    snprintf(file, sizeof file, "%s/checkpoint/round-7.bin", dir);
    s_write_file(file, "x", 1);
    s_expect(s_export(dir, "--gguf-lora", path, NULL), 2, false, "final_adapter.bin: not found",
             "has not finished", "round 7", "--resume", NULL);

    //  Corrupt adapters: bad magic, truncated.
    snprintf(file, sizeof file, "%s/final_adapter.bin", dir);
    s_write_file(file, "HAFLADPXxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 38);
    s_expect(s_export(dir, "--gguf-lora", path, NULL), 2, false, "final_adapter.bin", "bad magic",
             NULL);
    hafl_adapter_t *ad = s_make_adapter(false);
    char err[1024];
    CHECKF(hafl_adapter_save(ad, file, err, sizeof err) == 0, "%s", err);
    CHECK(truncate(file, 1000) == 0);
    s_expect(s_export(dir, "--gguf-lora", path, NULL), 2, false, "final_adapter.bin",
             "size mismatch", NULL);
    //  A matrix name that maps to no llama tensor.
    snprintf(ad->layout.matrices[3].name, HAFL_MATRIX_NAME_MAX, "L0.wx");
    CHECKF(hafl_adapter_save(ad, file, err, sizeof err) == 0, "%s", err);
    s_expect(s_export(dir, "--gguf-lora", path, NULL), 2, false, "matrix 'L0.wx'", NULL);
    hafl_adapter_destroy(&ad);
    CHECK(access(path, F_OK) != 0); //  nothing written by any failure so far

    //  --peft of wq and wk needs the base model; one of other shapes is refused.
    snprintf(dir, sizeof dir, "%s/peft-none", s_tmp);
    s_expect(s_export(merged, "--peft", dir, NULL), 2, false, "--model FILE", "head counts", NULL);
    CHECK(access(dir, F_OK) != 0);
    snprintf(file, sizeof file, "%s/other.bin", s_tmp);
    hafl_llama_config_t wider = s_config;
    wider.dim = 32;
    s_write_model(file, &wider);
    s_expect(s_export(merged, "--peft", dir, "--model", file, NULL), 2, false, "L0.wq",
             "does not fit the base model", NULL);
    snprintf(file, sizeof file, "%s/no-such-model.bin", s_tmp);
    s_expect(s_export(merged, "--peft", dir, "--model", file, NULL), 2, false, "--model", NULL);

    //  Unwritable outputs: a path under a regular file, and for --peft a folder that is a file.
    snprintf(path, sizeof path, "%s/model.bin/x.gguf", merged);
    s_expect(s_export(merged, "--gguf-lora", path, NULL), 1, false, "x.gguf", "Not a directory",
             NULL);
    s_expect(s_export(merged, "--peft", model, "--model", model, NULL), 1, false, model,
             "not a folder", NULL);
    snprintf(path, sizeof path, "%s/model.bin/peft", merged);
    s_expect(s_export(merged, "--peft", path, "--model", model, NULL), 1, false, "cannot create",
             "Not a directory", NULL);
    printf("ok   usage errors, missing and corrupt adapters, unwritable outputs\n");
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--make-run") == 0) {
        bool no_merged = false, qwen2 = false;
        for (int i = 3; i < argc; i++) {
            bool *flag = strcmp(argv[i], "--no-merged") == 0 ? &no_merged
                         : strcmp(argv[i], "--qwen2") == 0   ? &qwen2
                                                             : NULL;
            CHECKF(flag && !*flag, "--make-run: unexpected '%s'", argv[i]);
            *flag = true;
        }
        s_make_run(argv[2], no_merged, qwen2);
        return 0;
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "--check-gguf") == 0) {
        hafl_adapter_t *ad = s_load_run(argv[2]);
        const char *arch = argc == 5 ? s_model_arch(argv[4]) : "llama";
        uint32_t r = s_check_gguf(ad, argv[3], arch);
        printf("ok   %s: %s, %u matrices, rank %u (live %u), every value checked\n", argv[3], arch,
               ad->layout.n_matrices, r, ad->layout.rank);
        hafl_adapter_destroy(&ad);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "--dump") == 0) {
        s_dump(argv[2], argv[3], argv[4]);
        return 0;
    }
    CHECKF(argc == 1, "usage: test_export [--make-run DIR [--no-merged] [--qwen2] | --check-gguf "
                      "RUN OUT [MODEL] | --dump RUN MODEL OUT.json]");
    snprintf(s_tmp, sizeof s_tmp, "/tmp/hafl-test-export-XXXXXX");
    CHECK(mkdtemp(s_tmp));
    s_synthetic();
    s_failures();
    char command[400];
    snprintf(command, sizeof command, "rm -rf '%s'", s_tmp);
    CHECK(system(command) == 0);
    return 0;
}
