/*  hafl generate: sample text from a llama2.c or GGUF checkpoint with llama2.c run.c's semantics.

    The sequence starts as BOS plus the encoded prompt (a GGUF byte-level BPE tokenizer adds BOS
    only when its metadata says so, or when the prompt is empty). At each position the model
    runs on the current token; while prompt tokens remain the next token is forced, afterwards
    it is sampled: argmax at temperature 0, else softmax of logits / temperature and either
    multinomial sampling or top-p (nucleus) sampling when 0 < topp < 1, with run.c's xorshift
    coin. The loop ends after --steps positions or when a token that ends the text is produced
    (BOS for llama2.c, hafl_tokenizer_ends_text); every produced token is printed as decoded
    text (hafl_tokenizer_print_token: llama2.c's rule, which skips a lone unprintable byte, for
    SentencePiece tokenizers; raw bytes for byte-level BPE), then a newline. The achieved tokens
    per second go to stderr, so stdout holds only the text. Forward passes use the float reference, which
    follows llama2.c's order of operations, so greedy output matches the llama2.c runner. A GGUF
    checkpoint carries its tokenizer, used when --tokenizer is omitted; a llama2.c one needs it.
*/
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_cmd.h"
#include "hafl_llama_ref.h"
#include "hafl_resident.h"
#include "hafl_tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

typedef struct {
    float prob;
    int index;
} s_prob_index_t;

typedef struct {
    int vocab_size;
    float temperature;
    float topp;
    unsigned long long state;   //  run.c's xorshift state
    s_prob_index_t *candidates; //  [vocab] scratch for top-p
} s_sampler_t;

static unsigned int s_random_u32(unsigned long long *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (unsigned int)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float s_random_f32(unsigned long long *state)
{
    return (float)(s_random_u32(state) >> 8) / 16777216.0f;
}

static int s_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

//  Descending probability; ties by index so the order does not depend on qsort.
static int s_prob_cmp(const void *pa, const void *pb)
{
    const s_prob_index_t *a = pa, *b = pb;
    if (a->prob != b->prob)
        return a->prob > b->prob ? -1 : 1;
    return a->index - b->index;
}

static int s_sample_topp(s_sampler_t *s, const float *probs, float coin)
{
    int n = s->vocab_size, n0 = 0;
    //  Tokens below this cannot be in the nucleus; dropping them first keeps the sort short.
    const float cutoff = (1.0f - s->topp) / (float)(n - 1);
    for (int i = 0; i < n; i++)
        if (probs[i] >= cutoff)
            s->candidates[n0++] = (s_prob_index_t){probs[i], i};
    qsort(s->candidates, (size_t)n0, sizeof(s_prob_index_t), s_prob_cmp);
    float cumulative = 0.0f;
    int last = n0 - 1;
    for (int i = 0; i < n0; i++) {
        cumulative += s->candidates[i].prob;
        if (cumulative > s->topp) {
            last = i;
            break;
        }
    }
    float r = coin * cumulative, cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += s->candidates[i].prob;
        if (r < cdf)
            return s->candidates[i].index;
    }
    return s->candidates[last].index;
}

//  Next token from logits [vocab] (modified in place).
static int s_sample(s_sampler_t *s, float *logits)
{
    if (s->temperature == 0.0f)
        return s_argmax(logits, s->vocab_size);
    for (int i = 0; i < s->vocab_size; i++)
        logits[i] /= s->temperature;
    hafl_llama_softmax(logits, s->vocab_size);
    float coin = s_random_f32(&s->state);
    if (s->topp <= 0.0f || s->topp >= 1.0f) {
        float cdf = 0.0f;
        for (int i = 0; i < s->vocab_size; i++) {
            cdf += logits[i];
            if (coin < cdf)
                return i;
        }
        return s->vocab_size - 1;
    }
    return s_sample_topp(s, logits, coin);
}

static void s_help(FILE *out)
{
    fprintf(out,
            "usage: hafl generate --checkpoint NAME [--tokenizer NAME] [--temperature T]\n"
            "                     [--topp P] [--steps N] [--prompt TEXT] [--seed S]\n\n"
            "Generate text like llama2.c's runner: BOS plus the prompt, then sampled tokens.\n"
            "  --checkpoint NAME  llama2.c or GGUF checkpoint (asset name or path)\n"
            "  --tokenizer NAME   llama2.c tokenizer (asset name or path); default for a GGUF\n"
            "                     checkpoint: the tokenizer in its metadata\n"
            "  --temperature T    0 = greedy argmax (default 1.0; negative counts as 0)\n"
            "  --topp P           nucleus sampling threshold (default 0.9; outside [0,1] -> 0.9)\n"
            "  --steps N          positions to run, 0 or beyond seq_len = seq_len (default 256)\n"
            "  --prompt TEXT      text to continue (default empty)\n"
            "  --seed S           sampling seed, > 0 (default: current time)\n"
            "exit codes: 0 ok, 1 runtime failure, 2 usage error or missing/corrupt asset\n");
}

static int s_parse_number(const char *flag, const char *text, double lo, double hi, double *value)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "hafl generate: %s '%s' is not a number in [%g, %g]\n", flag, text, lo, hi);
        return -1;
    }
    *value = v;
    return 0;
}

typedef struct {
    const char *checkpoint;
    const char *tokenizer;
    const char *prompt;
    double temperature, topp, steps, seed;
} s_args_t;

//  HAFL_EXIT_OK to run, anything else to return at once (help printed or usage error).
static int s_parse_args(int argc, char **argv, s_args_t *args, bool *help)
{
    static const struct option options[] = {{"checkpoint", required_argument, NULL, 'c'},
                                            {"tokenizer", required_argument, NULL, 'z'},
                                            {"temperature", required_argument, NULL, 't'},
                                            {"topp", required_argument, NULL, 'p'},
                                            {"steps", required_argument, NULL, 'n'},
                                            {"prompt", required_argument, NULL, 'i'},
                                            {"seed", required_argument, NULL, 's'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    *args = (s_args_t){.prompt = "", .temperature = 1.0, .topp = 0.9, .steps = 256, .seed = 0};
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'c':
            args->checkpoint = optarg;
            break;
        case 'z':
            args->tokenizer = optarg;
            break;
        case 'i':
            args->prompt = optarg;
            break;
        case 't':
            rc = s_parse_number("--temperature", optarg, -1e6, 1e6, &args->temperature);
            break;
        case 'p':
            rc = s_parse_number("--topp", optarg, -1e6, 1e6, &args->topp);
            break;
        case 'n':
            rc = s_parse_number("--steps", optarg, -1e9, 1e9, &args->steps);
            break;
        case 's':
            rc = s_parse_number("--seed", optarg, 0, 18446744073709551615.0, &args->seed);
            break;
        case 'h':
            *help = true;
            s_help(stdout);
            return HAFL_EXIT_OK;
        default:
            s_help(stderr);
            return HAFL_EXIT_USAGE;
        }
        if (rc != 0)
            return HAFL_EXIT_USAGE;
    }
    if (optind < argc || !args->checkpoint) {
        fprintf(stderr, "hafl generate: %s\n",
                optind < argc ? "unexpected argument" : "--checkpoint is required");
        s_help(stderr);
        return HAFL_EXIT_USAGE;
    }
    if (args->steps != floor(args->steps) || args->seed != floor(args->seed)) {
        fprintf(stderr, "hafl generate: --steps and --seed take whole numbers\n");
        return HAFL_EXIT_USAGE;
    }
    return HAFL_EXIT_OK;
}

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

//  run.c's generate(): returns an exit code.
static int s_generate(hafl_llama_ref_t *ref, const hafl_tokenizer_t *tok, s_sampler_t *sampler,
                      const char *prompt, int steps)
{
    size_t cap = hafl_tokenizer_encode_capacity(strlen(prompt)), n_prompt = 0;
    int32_t *prompt_tokens = malloc(cap * sizeof(int32_t));
    float *logits = malloc((size_t)sampler->vocab_size * sizeof(float));
    //  The model's own convention on BOS (llama2.c: always), but generation needs a first token.
    bool bos = hafl_tokenizer_adds_bos(tok);
    if (!prompt_tokens || !logits ||
        hafl_tokenizer_encode(tok, prompt, bos, false, prompt_tokens, cap, &n_prompt) != 0 ||
        (n_prompt == 0 &&
         hafl_tokenizer_encode(tok, prompt, true, false, prompt_tokens, cap, &n_prompt) != 0)) {
        fprintf(stderr, "hafl generate: out of memory\n");
        free(prompt_tokens);
        free(logits);
        return HAFL_EXIT_FAILURE;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "hafl generate: the prompt is empty and the tokenizer has no BOS token\n");
        free(prompt_tokens);
        free(logits);
        return HAFL_EXIT_FAILURE;
    }
    double start = 0;
    int32_t token = prompt_tokens[0];
    //  Without a leading BOS the first prompt token is text too (the loop prints only successors).
    if (token != hafl_tokenizer_bos(tok))
        hafl_tokenizer_print_token(tok, stdout, -1, token);
    int pos = 0;
    while (pos < steps) {
        const float *out = hafl_llama_ref_step(ref, token, pos);
        int32_t next;
        if ((size_t)pos + 1 < n_prompt)
            next = prompt_tokens[pos + 1];
        else {
            memcpy(logits, out, (size_t)sampler->vocab_size * sizeof(float));
            next = s_sample(sampler, logits);
        }
        pos++;
        if (hafl_tokenizer_ends_text(tok, next))
            break;
        hafl_tokenizer_print_token(tok, stdout, token, next);
        fflush(stdout);
        token = next;
        if (start == 0)
            start = s_now_ms();
    }
    printf("\n");
    fflush(stdout);
    if (pos > 1) {
        double elapsed = s_now_ms() - start;
        fprintf(stderr, "achieved tok/s: %f\n", elapsed > 0 ? (pos - 1) / elapsed * 1000 : 0.0);
    }
    free(prompt_tokens);
    free(logits);
    return ferror(stdout) ? HAFL_EXIT_FAILURE : HAFL_EXIT_OK;
}


int hafl_cmd_generate(int argc, char **argv)
{
    s_args_t args;
    bool help = false;
    int rc = s_parse_args(argc, argv, &args, &help);
    if (rc != HAFL_EXIT_OK || help)
        return rc;

    char err[512];
    char *checkpoint_path = NULL, *tokenizer_path = NULL;
    hafl_checkpoint_t *checkpoint = NULL;
    hafl_tokenizer_t *tok = NULL;
    hafl_llama_ref_t *ref = NULL;
    s_sampler_t sampler = {0};
    rc = HAFL_EXIT_USAGE;
    if (!(checkpoint_path = hafl_asset_find(args.checkpoint, err, sizeof err)) ||
        !(checkpoint = hafl_checkpoint_open(checkpoint_path, err, sizeof err))) {
        fprintf(stderr, "hafl generate: %s\n", err);
        goto done;
    }
    //  What loading cost (a GGUF is dequantised to fp32 in memory; a .bin is mapped and its
    //  pages count once read): one line on stderr, so stdout stays the generated text.
    fprintf(stderr, "hafl generate: loaded %s: %.1f MiB of fp32 weights, resident memory %.1f MiB\n",
            checkpoint_path, (double)checkpoint->size / (1024.0 * 1024.0), hafl_resident_mib());
    if (!args.tokenizer && !checkpoint->gguf) {
        fprintf(stderr, "hafl generate: --tokenizer is required for the llama2.c checkpoint %s\n",
                checkpoint_path);
        goto done;
    }
    //  A GGUF checkpoint's own file is its tokenizer (hafl_tokenizer_load reads the metadata).
    if (!(tokenizer_path = args.tokenizer ? hafl_asset_find(args.tokenizer, err, sizeof err)
                                          : strdup(checkpoint_path))) {
        fprintf(stderr, "hafl generate: %s\n", args.tokenizer ? err : "out of memory");
        goto done;
    }
    if (!(tok = hafl_tokenizer_load(tokenizer_path, checkpoint->config.vocab_size, err,
                                    sizeof err))) {
        fprintf(stderr, "hafl generate: %s\n", err);
        goto done;
    }
    //  run.c's clamping of out-of-range settings.
    int seq_len = checkpoint->config.seq_len;
    int steps = args.steps <= 0 || args.steps > seq_len ? seq_len : (int)args.steps;
    sampler.vocab_size = checkpoint->config.vocab_size;
    sampler.temperature = args.temperature < 0 ? 0.0f : (float)args.temperature;
    sampler.topp = args.topp < 0 || args.topp > 1 ? 0.9f : (float)args.topp;
    sampler.state = args.seed > 0 ? (unsigned long long)args.seed : (unsigned long long)time(NULL);
    sampler.candidates = malloc((size_t)sampler.vocab_size * sizeof(s_prob_index_t));
    rc = HAFL_EXIT_FAILURE;
    if (!sampler.candidates ||
        !(ref = hafl_llama_ref_new(checkpoint, seq_len, false, err, sizeof err))) {
        fprintf(stderr, "hafl generate: %s\n", sampler.candidates ? err : "out of memory");
        goto done;
    }
    rc = s_generate(ref, tok, &sampler, args.prompt, steps);
done:
    hafl_llama_ref_destroy(&ref);
    hafl_tokenizer_destroy(&tok);
    hafl_checkpoint_destroy(&checkpoint);
    free(checkpoint_path);
    free(tokenizer_path);
    free(sampler.candidates);
    return rc;
}
