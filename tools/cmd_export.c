/*  hafl export RUN_DIR [--gguf-lora OUT.gguf] [--peft DIR] [--model FILE] [--base-model NAME]:
    turn a finished run's global adapter (RUN_DIR/final_adapter.bin) into files that llama.cpp
    and Hugging Face PEFT load.

    What is exported. For each adapted matrix W0 [d_out][d_in] the run's model computes
        W = W0 + sum_j mb_j ma_j^T + s * sum_k b_k a_k^T        (k < R, s = alpha / R)
    where the merged terms (mb_j, ma_j; FLoRA and FlexLoRA keep them, already scaled) belong to
    the base. Both formats apply W0 + (alpha' / r') B' A' with one r' and one alpha' for every
    matrix, so each matrix is exported as r' = R + M components, M the most merged terms any
    matrix holds: first its R live components (b_k, a_k) as they are, then its own n_m merged
    terms as (mb_j / s, ma_j), then M - n_m zero components; alpha' = s * r'. Then
    alpha' / r' = s, the live part is s B A and the merged part s (mb_j / s) ma_j^T = mb_j ma_j^T:
    the exported delta is the run's. Without merged terms r' = R and alpha' = s R (the run's
    alpha): the factors are the run's, bit for bit. The division by s rounds once (exact when s
    is a power of two, as with the default alpha 16 and rank 8). Zero components add nothing;
    they only give every matrix the same rank, which both formats need for one alpha'.

    --gguf-lora OUT.gguf: a llama.cpp LoRA adapter (GGUF v3, F32 tensors) with
    general.architecture = the base model's (llama or qwen2; llama when --model is not given,
    and llama.cpp refuses an adapter whose architecture is not its model's), general.type =
    adapter, adapter.type = lora,
    adapter.lora.alpha = alpha' (float32) and, per matrix L<N>.<w>, the tensors
    blk.N.<t>.weight.lora_a, GGUF dims {d_in, r'} (A' [r'][d_in]), and blk.N.<t>.weight.lora_b,
    dims {r', d_out} (B' [d_out][r']), <t> = attn_q attn_k attn_v attn_output ffn_gate ffn_down
    ffn_up for w = wq wk wv wo w1 w2 w3. llama.cpp scales by alpha' / (lora_a's dims[1]) = s.
    Rows are in GGUF's (llama2.c's) order, which is hafl's. hafl.export.* keys record the
    source (adapter digest, live rank, merged terms). A llama.cpp adapter has no place for a
    classification head, so the head is not in it.

    --peft DIR: DIR/adapter_model.safetensors with, per matrix,
    base_model.model.model.layers.N.<module>.lora_A.weight [r'][d_in] and .lora_B.weight
    [d_out][r'] (F32; <module> = self_attn.q_proj k_proj v_proj o_proj, mlp.gate_proj
    down_proj up_proj), DIR/classifier_head.safetensors ("weight" [classes][dim], "bias"
    [classes]) and DIR/adapter_config.json (peft_type LORA, task_type CAUSAL_LM, r = r',
    lora_alpha = alpha', target_modules, lora_dropout 0, bias none, inference_mode true,
    base_model_name_or_path). safetensors files are written as the reference writer does: a
    u64 little-endian header length, the JSON header (`__metadata__` {"format": "pt"}, then
    each tensor's dtype, shape and data_offsets, names sorted, data in that order) padded with
    spaces to a multiple of 8 bytes, then the data. Hugging Face's llama keeps q_proj and
    k_proj with every head's rows reordered for its rotate-half RoPE (what its converter and
    llama2.c's export apply to wq and wk): HF row h*hs + c*hs/2 + i is GGUF row h*hs + 2i + c
    (head h, head size hs, i < hs/2, c = 0, 1). lora_B of q_proj and k_proj is written in
    that order, which needs the head counts, so the base model must be at hand for wq and wk.
    qwen2 rotates NeoX pairs (rows h*hs + i and h*hs + hs/2 + i) in both formats, so its rows
    are written as they are.
    The files are written one after the other, each atomically, adapter_config.json last: a
    folder without it is no PEFT adapter, so a failure partway never leaves one that loads.

    Base model: a run folder records a digest over the run's model, tokenizer and data, not the
    model's path, so --model FILE names it (a path or an asset name, never downloaded). It is
    required only by --peft when wq or wk is adapted (the head counts); when given, every
    adapter matrix is checked against its shapes, and it is base_model_name_or_path unless
    --base-model NAME says otherwise (else null).

    Errors: one line on stderr naming the file and why. Exit 2 for bad usage and bad input (no
    run folder; no final_adapter.bin, saying so when the run's checkpoints show it unfinished;
    an unreadable adapter or one that maps to no llama tensors; a base model that does not fit
    or cannot be found when needed), 1 when an output cannot be written.
*/
#include "hafl_adapter.h"
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_cmd.h"
#include "hafl_f32le.h"
#include "hafl_file.h"
#include "hafl_gguf_writer.h"
#include "hafl_quant.h"
#include "hafl_server_checkpoint.h"
#include "hafl_targets.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_PATH_MAX 4096

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: hafl export RUN_DIR [--gguf-lora OUT.gguf] [--peft DIR] [--model FILE]\n"
        "                   [--base-model NAME]\n"
        "\n"
        "Writes the global adapter of a finished run (RUN_DIR/final_adapter.bin) in formats\n"
        "other tools load. At least one of --gguf-lora and --peft.\n"
        "\n"
        "options:\n"
        "  --gguf-lora OUT.gguf  a llama.cpp LoRA adapter: llama-cli -m BASE.gguf --lora OUT.gguf\n"
        "                        (no classifier head: llama.cpp adapters have no place for one)\n"
        "  --peft DIR            a Hugging Face PEFT adapter folder (adapter_model.safetensors,\n"
        "                        adapter_config.json) for PeftModel.from_pretrained(model, DIR),\n"
        "                        plus the classifier head in DIR/classifier_head.safetensors\n"
        "                        (\"weight\" [classes][dim], \"bias\" [classes])\n"
        "  --model FILE          the checkpoint the run trained on (path or asset name); its\n"
        "                        shapes are checked and its architecture (llama or qwen2) is\n"
        "                        the adapter's (llama without it). Needed by --peft when wq or\n"
        "                        wk is adapted: Hugging Face's llama orders each head's q_proj\n"
        "                        and k_proj rows for rotate-half RoPE, and lora_B is written in\n"
        "                        that order (qwen2's rows stay as they are)\n"
        "  --base-model NAME     base_model_name_or_path in adapter_config.json, e.g. the HF\n"
        "                        folder of the base (default: FILE of --model, else null)\n"
        "\n"
        "Exact delta: each matrix gets rank r' = R + M (R the run's rank, M the most merged\n"
        "FLoRA/FlexLoRA base terms any matrix holds): its live components as they are, its\n"
        "merged terms with B divided by the scale s = alpha/R, zero components to fill, and\n"
        "alpha' = s * r'. Both loaders scale by alpha'/r' = s, so the exported delta is\n"
        "merged + s*B*A, the run's. Without merged terms the factors and alpha are the run's.\n"
        "\n"
        "exit codes: 0 written, 1 an output cannot be written, 2 bad usage or input (no\n"
        "final_adapter.bin, an adapter or base model that does not fit)\n");
}

//  ---------------------------------------------------------------------------------------------
//  Where each hafl weight goes in PEFT (GGUF's names: hafl_weight_gguf_name). PEFT's
//  target_modules name a module by the
//  last part of its name (q_proj for self_attn.q_proj).

static const char *s_peft_module[HAFL_WEIGHT_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.down_proj",    "mlp.up_proj"};

//  Everything the writers need, checked once. r' = R + M and alpha' = s r' (s_alpha) follow
//  from the adapter and max_merged.
typedef struct {
    const hafl_adapter_t *adapter; //  the run's, borrowed
    uint32_t *layer;               //  [n_matrices] N of "L<N>.<w>"
    hafl_weight_t *weight;         //  [n_matrices] w of "L<N>.<w>"
    uint32_t weights;              //  bit w set when some matrix adapts weight w
    uint32_t max_merged;           //  M, the most merged terms of one matrix
    uint32_t rank;                 //  r' = R + M, the exported rank of every matrix
    int n_heads, n_kv_heads;       //  from the base model, 0 when it was not opened
    //  The base model rotates NeoX pairs (qwen2): general.architecture qwen2, and Hugging Face
    //  keeps q_proj / k_proj rows as they are. Else llama (also without a base model), whose
    //  Hugging Face rows are permuted for rotate-half.
    bool neox;
    const char *base_name; //  base_model_name_or_path, or NULL (JSON null)
} s_export_t;

//  alpha' = s r', rounded once: alpha' / r' is s to the float's precision, and exactly the run's
//  alpha when nothing was merged and alpha / R was exact.
static float s_alpha(const s_export_t *ex)
{
    return (float)((double)ex->adapter->layout.scale * ex->rank);
}

//  ---------------------------------------------------------------------------------------------
//  Files are built in memory (open_memstream, as the logger and the checkpoint settings are),
//  then written atomically.

typedef struct {
    FILE *out; //  the stream; NULL once closed
    char *data;
    size_t size;
    bool failed; //  out of memory: data does not hold all that was written
} s_mem_t;

//  Opens mem; its stream, or NULL (printed) on no memory.
static FILE *s_mem_open(s_mem_t *mem)
{
    *mem = (s_mem_t){0};
    mem->out = open_memstream(&mem->data, &mem->size);
    if (!mem->out)
        fprintf(stderr, "hafl export: out of memory\n");
    return mem->out;
}

//  Closes mem's stream (once): 0 when data / size hold all that was written, else -1.
static int s_mem_close(s_mem_t *mem)
{
    if (mem->out) {
        mem->failed |= ferror(mem->out) != 0;
        mem->failed |= fclose(mem->out) != 0;
        mem->out = NULL;
    }
    mem->failed |= !mem->data;
    return mem->failed ? -1 : 0;
}

//  Closes mem and writes it as path atomically; frees it. 0, or HAFL_EXIT_FAILURE (printed).
static int s_mem_save(s_mem_t *mem, const char *path)
{
    char err[1024];
    int rc = HAFL_EXIT_OK;
    if (s_mem_close(mem)) {
        fprintf(stderr, "hafl export: %s: out of memory\n", path);
        rc = HAFL_EXIT_FAILURE;
    } else if (hafl_file_write_atomic(path, mem->data, mem->size, err, sizeof err)) {
        fprintf(stderr, "hafl export: %s\n", err);
        rc = HAFL_EXIT_FAILURE;
    }
    free(mem->data);
    *mem = (s_mem_t){0};
    return rc;
}

//  text as a JSON string, quotes included (the names are the user's).
static void s_json_string(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(out, "\\u%04x", *c);
        else
            fputc(*c, out);
    }
    fputc('"', out);
}

//  ---------------------------------------------------------------------------------------------
//  The run folder.

//  "L<N>.<w>" with N plain decimal and w one of wq .. w3. 0, or -1.
static int s_parse_matrix_name(const char *name, uint32_t *layer, hafl_weight_t *weight)
{
    if (name[0] != 'L' || name[1] < '0' || name[1] > '9')
        return -1;
    const char *p = name + 1;
    uint32_t n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT32_MAX - 9) / 10 || (n == 0 && p > name + 1))
            return -1; //  too large, or a leading zero
        n = 10 * n + (uint32_t)(*p - '0');
    }
    if (*p++ != '.')
        return -1;
    for (int w = 0; w < HAFL_WEIGHT_COUNT; w++)
        if (strcmp(p, hafl_weight_name((hafl_weight_t)w)) == 0) {
            *layer = n;
            *weight = (hafl_weight_t)w;
            return 0;
        }
    return -1;
}

//  The newest N of RUN/checkpoint/round-N.bin, or 0.
static uint32_t s_newest_round(const char *run_dir)
{
    char folder[S_PATH_MAX];
    snprintf(folder, sizeof folder, "%s/%s", run_dir, HAFL_CHECKPOINT_DIR);
    DIR *dir = opendir(folder);
    if (!dir)
        return 0;
    uint32_t newest = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        unsigned round;
        int n = 0;
        if (sscanf(entry->d_name, "round-%u.bin%n", &round, &n) == 1 && n > 0 &&
            entry->d_name[n] == 0 && round > newest)
            newest = round;
    }
    closedir(dir);
    return newest;
}

//  The run's adapter, or NULL after printing why (exit 2); path gets RUN_DIR/final_adapter.bin.
//  A missing file in a run folder whose checkpoints exist is an unfinished (stopped or still
//  running) run, and is named so.
static hafl_adapter_t *s_load_adapter(const char *run_dir, char *path, size_t pathlen)
{
    struct stat st;
    if (stat(run_dir, &st) != 0) {
        fprintf(stderr, "hafl export: %s: %s\n", run_dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "hafl export: %s: not a folder (RUN_DIR is the run folder `hafl run` "
                "printed)\n",
                run_dir);
        return NULL;
    }
    char err[1024];
    if (snprintf(path, pathlen, "%s/final_adapter.bin", run_dir) >= (int)pathlen) {
        fprintf(stderr, "hafl export: %s: path too long\n", run_dir);
        return NULL;
    }
    if (stat(path, &st) != 0 && errno == ENOENT) {
        uint32_t round = s_newest_round(run_dir);
        if (round)
            fprintf(stderr,
                    "hafl export: %s: not found: the run has not finished (its newest checkpoint "
                    "is round %u: `hafl run FILE --resume %s` continues it)\n",
                    path, round, run_dir);
        else
            fprintf(stderr, "hafl export: %s: not found: not a finished run folder\n", path);
        return NULL;
    }
    hafl_adapter_t *adapter = hafl_adapter_load(path, err, sizeof err);
    if (!adapter)
        fprintf(stderr, "hafl export: %s\n", err);
    return adapter;
}

//  Checks that the adapter maps onto llama tensors and fills the export's plan. 0, or -1
//  after printing why (bad input).
static int s_plan(s_export_t *ex, const hafl_adapter_t *adapter, const char *path)
{
    const hafl_layout_t *L = &adapter->layout;
    ex->adapter = adapter;
    if (L->n_matrices == 0 || L->rank == 0) {
        fprintf(stderr, "hafl export: %s: no adapted matrices (%u matrices, rank %u)\n", path,
                L->n_matrices, L->rank);
        return -1;
    }
    if (!(L->scale > 0) || !isfinite(L->scale)) {
        fprintf(stderr, "hafl export: %s: scale %g is not a positive number\n", path,
                (double)L->scale);
        return -1;
    }
    if (L->head_cols < 2 || L->head_rows == 0) {
        fprintf(stderr, "hafl export: %s: head [%u][%u] is not [classes][dim + 1]\n", path,
                L->head_rows, L->head_cols);
        return -1;
    }
    ex->layer = calloc(L->n_matrices, sizeof *ex->layer);
    ex->weight = calloc(L->n_matrices, sizeof *ex->weight);
    if (!ex->layer || !ex->weight) {
        fprintf(stderr, "hafl export: out of memory\n");
        return -1;
    }
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        const char *name = L->matrices[m].name;
        if (s_parse_matrix_name(name, &ex->layer[m], &ex->weight[m])) {
            fprintf(stderr, "hafl export: %s: matrix '%s' is not L<layer>.<wq|wk|wv|wo|w1|w2|w3>\n",
                    path, name);
            return -1;
        }
        for (uint32_t n = 0; n < m; n++)
            if (ex->layer[n] == ex->layer[m] && ex->weight[n] == ex->weight[m]) {
                fprintf(stderr, "hafl export: %s: matrix '%s' appears twice\n", path, name);
                return -1;
            }
        ex->weights |= 1u << ex->weight[m];
        if (adapter->n_merged[m] > ex->max_merged)
            ex->max_merged = adapter->n_merged[m];
    }
    ex->rank = L->rank + ex->max_merged; //  each at most 2^16, no overflow
    return 0;
}

//  Opens the base model --model FILE (a path or an asset name; never downloaded), checks the
//  adapter's shapes against it and records its head counts. needed: the export cannot do
//  without it (--peft of wq or wk). 0, or -1 after printing why (bad input).
static int s_base_model(s_export_t *ex, const char *run_dir, const char *model_arg, bool needed,
                        const char *adapter_path)
{
    char err[1024];
    if (!model_arg) {
        if (!needed)
            return 0;
        //  A run folder records a digest over model, tokenizer and data, not the model's path.
        fprintf(stderr,
                "hafl export: %s: --peft of wq and wk needs the base model's head counts (Hugging "
                "Face orders q_proj and k_proj rows per head): pass --model FILE, the checkpoint "
                "the run trained on\n",
                run_dir);
        return -1;
    }
    char *path = hafl_asset_find_local(model_arg, err, sizeof err);
    if (!path) {
        fprintf(stderr, "hafl export: --model: %s\n", err);
        return -1;
    }
    hafl_checkpoint_t *base = hafl_checkpoint_open(path, err, sizeof err);
    free(path);
    if (!base) {
        fprintf(stderr, "hafl export: --model: %s\n", err);
        return -1;
    }
    int rc = -1;
    const hafl_llama_config_t *c = &base->config;
    const hafl_layout_t *L = &ex->adapter->layout;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t d_out, d_in;
        hafl_weight_shape(c, ex->weight[m], &d_out, &d_in);
        if (ex->layer[m] >= (uint32_t)c->n_layers || d_out != L->matrices[m].d_out ||
            d_in != L->matrices[m].d_in) {
            fprintf(stderr,
                    "hafl export: %s: matrix %s [%u][%u] does not fit the base model %s (%d "
                    "layers, %s [%u][%u])\n",
                    adapter_path, L->matrices[m].name, L->matrices[m].d_out, L->matrices[m].d_in,
                    base->path, c->n_layers, hafl_weight_name(ex->weight[m]), d_out, d_in);
            goto done;
        }
    }
    //  hafl_checkpoint_open refuses an odd head size, so every head splits into RoPE pairs.
    ex->n_heads = c->n_heads;
    ex->n_kv_heads = c->n_kv_heads;
    //  The engine runs two architectures, told apart by their RoPE pairing: qwen2 rotates NeoX
    //  pairs, so neither its GGUF nor its Hugging Face weights permute q/k rows.
    ex->neox = c->rope_neox;
    rc = 0;
done:
    hafl_checkpoint_destroy(&base);
    return rc;
}

//  ---------------------------------------------------------------------------------------------
//  The exported factors of one matrix.

//  True when every value of v [n] is finite.
static bool s_all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return false;
    return true;
}

//  The factors of matrix m, *a_out [r'][d_in] and *b_out [d_out][r'] (r' = ex->rank, row-major,
//  as both formats store them; the caller frees both): live components, merged terms with B / s,
//  zeros (see the top of the file). hf_order writes b's rows of wq and wk in Hugging Face's
//  rotate-half order when the base is a llama (its head counts at hand). 0, or
//  HAFL_EXIT_FAILURE (no memory) or HAFL_EXIT_USAGE (a value is not finite), printed.
static int s_factors(const s_export_t *ex, uint32_t m, bool hf_order, float **a_out, float **b_out)
{
    const hafl_adapter_t *ad = ex->adapter;
    const hafl_layout_t *L = &ad->layout;
    uint32_t R = L->rank, r = ex->rank, n = ad->n_merged[m];
    size_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
    float *a = calloc((size_t)r * d_in, sizeof *a), *b = calloc((size_t)r * d_out, sizeof *b);
    float *copy = NULL;
    int rc = HAFL_EXIT_FAILURE;
    if (!a || !b) {
        fprintf(stderr, "hafl export: out of memory\n");
        goto done;
    }
    for (uint32_t k = 0; k < R; k++) {
        memcpy(a + k * d_in, hafl_adapter_a(ad, m, k), d_in * sizeof *a);
        const float *bk = hafl_adapter_b(ad, m, k); //  [d_out]
        for (size_t i = 0; i < d_out; i++)
            b[i * r + k] = bk[i];
    }
    for (uint32_t j = 0; j < n; j++) {
        memcpy(a + (size_t)(R + j) * d_in, ad->ma[m] + j * d_in, d_in * sizeof *a);
        const float *mb = ad->mbt[m] + j * d_out; //  [d_out]
        for (size_t i = 0; i < d_out; i++)
            b[i * r + R + j] = mb[i] / L->scale;
    }
    rc = HAFL_EXIT_USAGE;
    if (!s_all_finite(a, (size_t)r * d_in)) {
        fprintf(stderr, "hafl export: matrix %s: A holds a value that is not finite\n",
                L->matrices[m].name);
        goto done;
    }
    if (!s_all_finite(b, (size_t)r * d_out)) {
        fprintf(stderr, "hafl export: matrix %s: B%s holds a value that is not finite\n",
                L->matrices[m].name, n ? " (merged terms divided by the scale)" : "");
        goto done;
    }
    int heads = !hf_order || ex->neox             ? 0
                : ex->weight[m] == HAFL_WEIGHT_WQ ? ex->n_heads
                : ex->weight[m] == HAFL_WEIGHT_WK ? ex->n_kv_heads
                                                  : 0;
    if (heads > 0) {
        //  Row h*hs + c*hs/2 + i of the result is row h*hs + 2i + c of b.
        size_t hs = d_out / (size_t)heads, half = hs / 2;
        copy = malloc((size_t)r * d_out * sizeof *copy);
        if (!copy) {
            fprintf(stderr, "hafl export: out of memory\n");
            rc = HAFL_EXIT_FAILURE;
            goto done;
        }
        memcpy(copy, b, (size_t)r * d_out * sizeof *copy);
        for (size_t h = 0; h < (size_t)heads; h++)
            for (size_t c = 0; c < 2; c++)
                for (size_t i = 0; i < half; i++)
                    memcpy(b + (h * hs + c * half + i) * r, copy + (h * hs + 2 * i + c) * r,
                           r * sizeof *b);
    }
    *a_out = a;
    *b_out = b;
    a = b = NULL;
    rc = HAFL_EXIT_OK;
done:
    free(a);
    free(b);
    free(copy);
    return rc;
}

//  ---------------------------------------------------------------------------------------------
//  --gguf-lora

//  0, 1 (HAFL_EXIT_FAILURE: the file could not be written) or 2 (bad input), printed.
static int s_write_gguf(const s_export_t *ex, const char *out_path)
{
    const hafl_layout_t *L = &ex->adapter->layout;
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    if (!w) {
        fprintf(stderr, "hafl export: out of memory\n");
        return HAFL_EXIT_FAILURE;
    }
    char digest_hex[65], err[1024];
    hafl_adapter_digest_hex(ex->adapter, digest_hex);
    hafl_gguf_writer_add_string(w, "general.architecture", ex->neox ? "qwen2" : "llama");
    hafl_gguf_writer_add_string(w, "general.type", "adapter");
    hafl_gguf_writer_add_string(w, "general.name", "hafl federated LoRA adapter");
    hafl_gguf_writer_add_string(w, "adapter.type", "lora");
    hafl_gguf_writer_add_f32(w, "adapter.lora.alpha", s_alpha(ex));
    hafl_gguf_writer_add_string(w, "hafl.export.adapter_sha256", digest_hex);
    hafl_gguf_writer_add_u32(w, "hafl.export.live_rank", L->rank);
    hafl_gguf_writer_add_u32(w, "hafl.export.merged_rank", ex->max_merged);
    int rc = HAFL_EXIT_OK;
    for (uint32_t m = 0; m < L->n_matrices && rc == HAFL_EXIT_OK; m++) {
        float *a, *b;
        if ((rc = s_factors(ex, m, false, &a, &b)))
            continue;
        char name[96];
        uint64_t dims_a[2] = {L->matrices[m].d_in, ex->rank},
                 dims_b[2] = {ex->rank, L->matrices[m].d_out};
        snprintf(name, sizeof name, "blk.%u.%s.weight.lora_a", ex->layer[m],
                 hafl_weight_gguf_name(ex->weight[m]));
        hafl_gguf_writer_add_tensor_floats(w, name, HAFL_QUANT_F32, 2, dims_a, a);
        snprintf(name, sizeof name, "blk.%u.%s.weight.lora_b", ex->layer[m],
                 hafl_weight_gguf_name(ex->weight[m]));
        hafl_gguf_writer_add_tensor_floats(w, name, HAFL_QUANT_F32, 2, dims_b, b);
        free(a);
        free(b);
    }
    if (rc == HAFL_EXIT_OK && hafl_gguf_writer_error(w)) {
        fprintf(stderr, "hafl export: %s: %s\n", out_path, hafl_gguf_writer_error(w));
        rc = HAFL_EXIT_USAGE;
    } else if (rc == HAFL_EXIT_OK && hafl_gguf_writer_save(w, out_path, err, sizeof err)) {
        fprintf(stderr, "hafl export: %s\n", err);
        rc = HAFL_EXIT_FAILURE;
    }
    hafl_gguf_writer_destroy(&w);
    return rc;
}

//  ---------------------------------------------------------------------------------------------
//  --peft

//  One tensor of a safetensors file: F32 values the file owns.
typedef struct {
    char name[128];
    uint32_t n_dims;
    uint64_t shape[2];
    float *values; //  owned
} s_st_tensor_t;

static int s_st_compare(const void *x, const void *y)
{
    return strcmp(((const s_st_tensor_t *)x)->name, ((const s_st_tensor_t *)y)->name);
}

static size_t s_st_count(const s_st_tensor_t *t)
{
    return (size_t)t->shape[0] * (t->n_dims > 1 ? (size_t)t->shape[1] : 1);
}

//  Writes the safetensors file for n tensors (sorted here) as path, atomically: u64 header
//  length, the JSON header padded with spaces to a multiple of 8, the data (little-endian).
//  0, or HAFL_EXIT_FAILURE (printed).
static int s_st_save(s_st_tensor_t *t, size_t n, const char *path)
{
    qsort(t, n, sizeof *t, s_st_compare);
    s_mem_t mem;
    FILE *out = s_mem_open(&mem);
    if (!out)
        return HAFL_EXIT_FAILURE;
    fwrite("\0\0\0\0\0\0\0\0", 1, 8, out); //  the header's length, set below
    fprintf(out, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        fprintf(out, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%" PRIu64, t[i].name, t[i].shape[0]);
        if (t[i].n_dims > 1)
            fprintf(out, ",%" PRIu64, t[i].shape[1]);
        fprintf(out, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset,
                offset + 4 * s_st_count(&t[i]));
        offset += 4 * s_st_count(&t[i]);
    }
    fputc('}', out);
    long end = ftell(out); //  8 + the header's length
    mem.failed |= end < 8;
    for (; end >= 8 && end % 8 != 0; end++)
        fputc(' ', out);
    uint64_t header = end >= 8 ? (uint64_t)end - 8 : 0;
    for (size_t i = 0; i < n && !mem.failed; i++) {
        size_t count = s_st_count(&t[i]);
        uint8_t *le = malloc(count * 4);
        mem.failed |= !le;
        if (le) {
            hafl_f32le_copy_finite(le, t[i].values, count); //  as they are, finite or not
            fwrite(le, 4, count, out);
        }
        free(le);
    }
    if (s_mem_close(&mem) == 0 && mem.size >= 8)
        for (int i = 0; i < 8; i++)
            mem.data[i] = (char)(uint8_t)(header >> (8 * i));
    return s_mem_save(&mem, path);
}

static void s_st_free(s_st_tensor_t *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].values);
    free(t);
}

//  adapter_model.safetensors: 0, 1 or 2 (printed).
static int s_peft_adapter(const s_export_t *ex, const char *path)
{
    const hafl_layout_t *L = &ex->adapter->layout;
    size_t n = 2 * (size_t)L->n_matrices;
    s_st_tensor_t *t = calloc(n, sizeof *t);
    if (!t) {
        fprintf(stderr, "hafl export: out of memory\n");
        return HAFL_EXIT_FAILURE;
    }
    int rc = HAFL_EXIT_OK;
    for (uint32_t m = 0; m < L->n_matrices && rc == HAFL_EXIT_OK; m++) {
        s_st_tensor_t *ta = &t[2 * m], *tb = &t[2 * m + 1];
        const char *module = s_peft_module[ex->weight[m]];
        snprintf(ta->name, sizeof ta->name, "base_model.model.model.layers.%u.%s.lora_A.weight",
                 ex->layer[m], module);
        snprintf(tb->name, sizeof tb->name, "base_model.model.model.layers.%u.%s.lora_B.weight",
                 ex->layer[m], module);
        ta->n_dims = tb->n_dims = 2;
        ta->shape[0] = ex->rank;
        ta->shape[1] = L->matrices[m].d_in;
        tb->shape[0] = L->matrices[m].d_out;
        tb->shape[1] = ex->rank;
        rc = s_factors(ex, m, true, &ta->values, &tb->values);
    }
    if (rc == HAFL_EXIT_OK)
        rc = s_st_save(t, n, path);
    s_st_free(t, n);
    return rc;
}

//  classifier_head.safetensors: "weight" [classes][dim], "bias" [classes]. 0 or 1 (printed).
static int s_peft_head(const s_export_t *ex, const char *path)
{
    const hafl_layout_t *L = &ex->adapter->layout;
    size_t classes = L->head_rows, dim = L->head_cols - 1;
    s_st_tensor_t *t = calloc(2, sizeof *t);
    if (!t || !(t[0].values = malloc(classes * sizeof(float))) ||
        !(t[1].values = malloc(classes * dim * sizeof(float)))) {
        fprintf(stderr, "hafl export: out of memory\n");
        s_st_free(t, 2);
        return HAFL_EXIT_FAILURE;
    }
    snprintf(t[0].name, sizeof t[0].name, "bias");
    t[0].n_dims = 1;
    t[0].shape[0] = classes;
    snprintf(t[1].name, sizeof t[1].name, "weight");
    t[1].n_dims = 2;
    t[1].shape[0] = classes;
    t[1].shape[1] = dim;
    for (size_t c = 0; c < classes; c++) {
        const float *row = ex->adapter->head + c * (dim + 1); //  [dim + 1], bias last
        memcpy(t[1].values + c * dim, row, dim * sizeof(float));
        t[0].values[c] = row[dim];
    }
    int rc = s_st_save(t, 2, path);
    s_st_free(t, 2);
    return rc;
}

//  adapter_config.json as PEFT's save_pretrained writes it for these settings. 0 or 1.
static int s_peft_config(const s_export_t *ex, const char *path)
{
    s_mem_t mem;
    FILE *out = s_mem_open(&mem);
    if (!out)
        return HAFL_EXIT_FAILURE;
    fprintf(out, "{\n  \"base_model_name_or_path\": ");
    if (ex->base_name)
        s_json_string(out, ex->base_name);
    else
        fprintf(out, "null");
    fprintf(out, ",\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n"
                 "  \"inference_mode\": true,\n  \"init_lora_weights\": true,\n");
    //  An integral alpha is written as an integer, as PEFT's int-typed lora_alpha is.
    float alpha = s_alpha(ex);
    if (alpha == floorf(alpha) && alpha < 1e9f)
        fprintf(out, "  \"lora_alpha\": %.0f,\n", (double)alpha);
    else
        fprintf(out, "  \"lora_alpha\": %.9g,\n", (double)alpha);
    fprintf(out,
            "  \"lora_dropout\": 0.0,\n  \"modules_to_save\": null,\n"
            "  \"peft_type\": \"LORA\",\n  \"r\": %u,\n  \"revision\": null,\n"
            "  \"target_modules\": [",
            ex->rank);
    const char *separator = "";
    for (int w = 0; w < HAFL_WEIGHT_COUNT; w++)
        if (ex->weights & (1u << w)) {
            fprintf(out, "%s\"%s\"", separator, strchr(s_peft_module[w], '.') + 1);
            separator = ", ";
        }
    fprintf(out, "],\n  \"task_type\": \"CAUSAL_LM\"\n}\n");
    return s_mem_save(&mem, path);
}

//  0, 1 or 2 (printed).
static int s_write_peft(const s_export_t *ex, const char *dir)
{
    static const char *const files[] = {"adapter_model.safetensors", "classifier_head.safetensors",
                                        "adapter_config.json"};
    static int (*const writers[])(const s_export_t *, const char *) = {s_peft_adapter, s_peft_head,
                                                                       s_peft_config};
    char path[S_PATH_MAX];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "hafl export: %s: cannot create: %s\n", dir, strerror(errno));
        return HAFL_EXIT_FAILURE;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "hafl export: %s: not a folder\n", dir);
        return HAFL_EXIT_FAILURE;
    }
    //  In this order: adapter_config.json last (see the top of the file).
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (snprintf(path, sizeof path, "%s/%s", dir, files[i]) >= (int)sizeof path) {
            fprintf(stderr, "hafl export: %s: path too long\n", dir);
            return HAFL_EXIT_USAGE;
        }
        int rc = writers[i](ex, path);
        if (rc)
            return rc;
    }
    return HAFL_EXIT_OK;
}

//  ---------------------------------------------------------------------------------------------

int hafl_cmd_export(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
    const char *run_dir = NULL, *gguf_path = NULL, *peft_dir = NULL, *model = NULL,
               *base_name = NULL;
    for (int i = 1; i < argc; i++) {
        const char **value = strcmp(argv[i], "--gguf-lora") == 0    ? &gguf_path
                             : strcmp(argv[i], "--peft") == 0       ? &peft_dir
                             : strcmp(argv[i], "--model") == 0      ? &model
                             : strcmp(argv[i], "--base-model") == 0 ? &base_name
                                                                    : NULL;
        if (value) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0') {
                fprintf(stderr, "hafl export: %s needs a value\n", argv[i]);
                return HAFL_EXIT_USAGE;
            }
            if (*value) {
                fprintf(stderr, "hafl export: %s given twice\n", argv[i]);
                return HAFL_EXIT_USAGE;
            }
            *value = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "hafl export: unknown option '%s'\n", argv[i]);
            s_usage(stderr);
            return HAFL_EXIT_USAGE;
        } else if (!run_dir)
            run_dir = argv[i];
        else {
            fprintf(stderr, "hafl export: unexpected argument '%s'\n", argv[i]);
            return HAFL_EXIT_USAGE;
        }
    }
    if (!run_dir) {
        fprintf(stderr, "hafl export: no RUN_DIR given\n");
        s_usage(stderr);
        return HAFL_EXIT_USAGE;
    }
    if (!gguf_path && !peft_dir) {
        fprintf(stderr, "hafl export: nothing to write: give --gguf-lora OUT.gguf and/or "
                        "--peft DIR\n");
        return HAFL_EXIT_USAGE;
    }
    char adapter_path[S_PATH_MAX];
    hafl_adapter_t *adapter = s_load_adapter(run_dir, adapter_path, sizeof adapter_path);
    if (!adapter)
        return HAFL_EXIT_USAGE;
    s_export_t ex = {0};
    int rc = HAFL_EXIT_USAGE;
    if (s_plan(&ex, adapter, adapter_path))
        goto done;
    bool rope = peft_dir && (ex.weights & ((1u << HAFL_WEIGHT_WQ) | (1u << HAFL_WEIGHT_WK)));
    if (s_base_model(&ex, run_dir, model, rope, adapter_path))
        goto done;
    ex.base_name = base_name ? base_name : model;
    const hafl_layout_t *L = &adapter->layout;
    if (gguf_path) {
        if ((rc = s_write_gguf(&ex, gguf_path)))
            goto done;
        printf("%s: llama.cpp LoRA adapter, %u tensor pairs, rank %u (%u live + %u for merged "
               "terms), alpha %.9g (scale %.9g); no classifier head\n",
               gguf_path, L->n_matrices, ex.rank, L->rank, ex.max_merged, (double)s_alpha(&ex),
               (double)L->scale);
    }
    if (peft_dir) {
        if ((rc = s_write_peft(&ex, peft_dir)))
            goto done;
        printf("%s: PEFT LoRA adapter, %u module pairs, r %u (%u live + %u for merged terms), "
               "lora_alpha %.9g, base %s; classifier head [%u][%u] in "
               "classifier_head.safetensors\n",
               peft_dir, L->n_matrices, ex.rank, L->rank, ex.max_merged, (double)s_alpha(&ex),
               ex.base_name ? ex.base_name : "unknown", L->head_rows, L->head_cols - 1);
    }
    rc = HAFL_EXIT_OK;
done:
    free(ex.layer);
    free(ex.weight);
    hafl_adapter_destroy(&adapter);
    return rc;
}
