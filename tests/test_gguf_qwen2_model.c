/*  test_gguf_qwen2_model: a tiny qwen2 GGUF that carries its own byte-level BPE tokenizer, the
    model tests/gguf_qwen2_federation.sh runs a federation on (that script's header says what the
    federation must show).

        test_gguf_qwen2_model --write PATH   write the model to PATH (atomically) and exit 0
        test_gguf_qwen2_model                self-check: write one to a temporary file, open it
                                             with hafl_checkpoint_open and hafl_tokenizer_load
                                             and check what comes back (below)

    The model: qwen2, dim 64, hidden 128, 2 layers, 4 heads over 2 kv heads, context 128, RoPE
    base 1e6 (NeoX pairs), RMS epsilon 1e-6, q/k/v biases and a separate output matrix. The
    weights are hafl_checkpoint_random's for seed S_SEED (N(0, 0.02^2), norm gains 1), written
    as F32 by hafl_checkpoint_write_gguf, which lays a model out through the table the loader
    reads, so tensor names and shapes cannot drift from what hafl expects.

    The tokenizer: `tokenizer.ggml.model = gpt2`, `pre = qwen2`. Ids 0..255 are the 256 single
    bytes in byte order, spelled in GPT-2's byte-to-unicode alphabet (written here independently
    of model/hafl_bpe.c); then the tokens a small BPE trainer learns in S_MERGES merges on the
    English text in s_corpus (each word cut as Qwen2's pattern cuts it, a leading space and
    letters; at each step the most frequent adjacent pair merges, the lowest (left, right) ids
    on ties; a merge whose result already exists adds no token), so the merges look like a real
    vocabulary's ("t h", "Ġ th", ...) and every rule hafl_bpe.h enforces holds by construction;
    last "<|endoftext|>" (type control), the BOS and EOS id, with add_bos_token false as in
    Qwen2's own files. Everything is a function of the constants in this file: the same bytes on
    every run and every machine, which the federation test's digest comparison relies on.

    The self-check requires the loaded config to be the one written, every loaded tensor to equal
    the generator's bit for bit, and the tokenizer to encode a sentence into fewer tokens than
    bytes (whole common words as single tokens), to decode it back byte for byte, and to report
    the special ids written. Pure C and quick: it runs in the ASan tree too.
*/
#include "hafl_bpe.h"
#include "hafl_checkpoint.h"
#include "hafl_gguf_writer.h"
#include "hafl_quant.h"
#include "hafl_test.h"
#include "hafl_tokenizer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_DIM        64
#define S_HIDDEN     128
#define S_LAYERS     2
#define S_HEADS      4
#define S_KV         2
#define S_SEQ        128
#define S_SEED       20240611
#define S_MERGES     320
#define S_MAX_TOKENS (256 + S_MERGES + 1)

//  Training text for the merges: plain English on the 20 Newsgroups' kinds of subject, so the
//  learnt words are ones the federation's documents use too.
static const char s_corpus[] =
    "The space shuttle program is over, but the station still needs supplies and the crew "
    "needs a way home. Many people think that the next launch will be from a private company. "
    "If you want to know about the orbit of a satellite, ask the people who track them; they "
    "have the numbers and the software to compute where it will be tomorrow. "
    "My computer will not boot since I installed the new graphics card. The screen stays black "
    "and the fan runs all the time. I have tried another monitor and a different cable, and I "
    "have reset the memory, but nothing works. Does anyone know what the problem could be? "
    "The windows driver for this card is out of date, and the system gets slower every day. "
    "The hockey season starts next week and the team has a new goalie. Last year they played "
    "well at home but lost most of the games on the road. The baseball fans think that the "
    "pitcher should have been traded before the season, and the manager agrees with them. "
    "There is no evidence that the government can keep a secret key safe. The encryption "
    "chip would let the police read every message, and people should worry about their "
    "rights and their privacy. The law says that a citizen has the right to keep and bear arms, "
    "and many people here believe that this right should not be taken away. "
    "The question of faith is older than any church. Some believe that the bible is the word of "
    "god, and others think that religion is a matter for each person to decide. There have "
    "been many arguments about this in the group, and there will be more. "
    "For sale: a used motorcycle in good condition, with new tires and a helmet. The car has "
    "about fifty thousand miles and the engine runs well. Please send me an email if you are "
    "interested, and I will answer as soon as I can. The doctor said that the patient should "
    "eat less salt and drink more water, because the medicine does not work without that. "
    "Thanks in advance for any information about the electronics of this circuit; the power "
    "supply gives the wrong voltage when the battery is low.";

//  A token as raw bytes (not NUL-terminated; the corpus holds no NUL).
typedef struct {
    char bytes[64];
    size_t len;
} s_piece_t;

//  One distinct word of the corpus: its current tokens and how often it occurs.
typedef struct {
    int32_t ids[64];
    size_t n;
    uint32_t count;
} s_word_t;

//  A learnt vocabulary: pieces[0..n_pieces) and merges[r] = {left, right} of rank r.
typedef struct {
    s_piece_t pieces[S_MAX_TOKENS];
    size_t n_pieces;
    int32_t merges[S_MERGES][2];
} s_vocab_t;

//  An adjacent pair (left << 32 | right) seen `count` times.
typedef struct {
    uint64_t key;
    uint64_t count;
} s_pair_t;

static uint64_t s_key(int32_t left, int32_t right)
{
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

static int s_pair_cmp(const void *a, const void *b)
{
    uint64_t x = ((const s_pair_t *)a)->key, y = ((const s_pair_t *)b)->key;
    return x < y ? -1 : x > y;
}

static bool s_is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

//  Whether word holds exactly the len bytes at text as single-byte ids.
static bool s_word_is(const s_word_t *word, const char *text, size_t len)
{
    if (word->n != len)
        return false;
    for (size_t k = 0; k < len; k++)
        if (word->ids[k] != (unsigned char)text[k])
            return false;
    return true;
}

//  The corpus's distinct words (" word" or "word", as Qwen2's pattern cuts letters after one
//  space), each as its single-byte ids; other bytes never take part in a merge. Returns the
//  count.
static size_t s_words(s_word_t *words, size_t cap)
{
    size_t n = 0, len = strlen(s_corpus);
    for (size_t i = 0; i < len;) {
        size_t start = i;
        if (s_corpus[i] == ' ' && i + 1 < len && s_is_letter(s_corpus[i + 1]))
            i++;
        if (!s_is_letter(s_corpus[i])) {
            i = start + 1;
            continue;
        }
        while (i < len && s_is_letter(s_corpus[i]))
            i++;
        size_t wlen = i - start, w = 0;
        CHECK(wlen <= sizeof words[0].ids / sizeof words[0].ids[0]);
        while (w < n && !s_word_is(&words[w], s_corpus + start, wlen))
            w++;
        if (w == n) {
            CHECK(n < cap);
            words[n].n = wlen;
            words[n].count = 0;
            for (size_t k = 0; k < wlen; k++)
                words[n].ids[k] = (unsigned char)s_corpus[start + k];
            n++;
        }
        words[w].count++;
    }
    return n;
}

//  Id of the piece holding the len bytes at bytes, or -1.
static int32_t s_find(const s_vocab_t *v, const char *bytes, size_t len)
{
    for (size_t i = 0; i < v->n_pieces; i++)
        if (v->pieces[i].len == len && memcmp(v->pieces[i].bytes, bytes, len) == 0)
            return (int32_t)i;
    return -1;
}

//  Learn S_MERGES merges on the corpus (see the file's comment for the rule) into v: the 256
//  byte pieces, then one piece per merge whose result is new.
static void s_train(s_vocab_t *v)
{
    static s_word_t words[1024];
    size_t n_words = s_words(words, sizeof words / sizeof words[0]), n_slots = 0;
    for (size_t w = 0; w < n_words; w++)
        n_slots += words[w].n;
    s_pair_t *pairs = malloc(n_slots * sizeof(s_pair_t));
    CHECK(pairs);
    v->n_pieces = 256;
    for (int b = 0; b < 256; b++) {
        v->pieces[b].bytes[0] = (char)b;
        v->pieces[b].len = 1;
    }
    for (int r = 0; r < S_MERGES; r++) {
        //  Every adjacent pair weighted by its word's count, summed per pair after a sort.
        size_t n = 0;
        for (size_t w = 0; w < n_words; w++)
            for (size_t k = 0; k + 1 < words[w].n; k++)
                pairs[n++] =
                    (s_pair_t){s_key(words[w].ids[k], words[w].ids[k + 1]), words[w].count};
        qsort(pairs, n, sizeof(s_pair_t), s_pair_cmp);
        uint64_t best_key = 0, best_count = 0;
        for (size_t i = 0; i < n;) {
            size_t j = i;
            uint64_t count = 0;
            for (; j < n && pairs[j].key == pairs[i].key; j++)
                count += pairs[j].count;
            //  A pair merged before can come back only after a merge whose result was already
            //  a piece; hafl_bpe refuses a repeated pair, so it is passed over.
            bool seen = false;
            for (int m = 0; m < r && !seen; m++)
                seen = s_key(v->merges[m][0], v->merges[m][1]) == pairs[i].key;
            //  Keys ascend, so the first of equal counts has the lowest (left, right).
            if (!seen && count > best_count)
                best_key = pairs[i].key, best_count = count;
            i = j;
        }
        CHECKF(best_count > 0, "the corpus gives only %d merges, not %d", r, S_MERGES);
        int32_t left = (int32_t)(best_key >> 32), right = (int32_t)(best_key & 0xFFFFFFFFu);
        const s_piece_t *a = &v->pieces[left], *b = &v->pieces[right];
        s_piece_t joined;
        CHECK(a->len + b->len <= sizeof joined.bytes);
        memcpy(joined.bytes, a->bytes, a->len);
        memcpy(joined.bytes + a->len, b->bytes, b->len);
        joined.len = a->len + b->len;
        int32_t id = s_find(v, joined.bytes, joined.len);
        if (id < 0) {
            CHECK(v->n_pieces < S_MAX_TOKENS - 1);
            id = (int32_t)v->n_pieces;
            v->pieces[v->n_pieces++] = joined;
        }
        v->merges[r][0] = left;
        v->merges[r][1] = right;
        for (size_t w = 0; w < n_words; w++) {
            size_t out = 0;
            for (size_t k = 0; k < words[w].n; k++)
                if (k + 1 < words[w].n && words[w].ids[k] == left && words[w].ids[k + 1] == right)
                    words[w].ids[out++] = id, k++;
                else
                    words[w].ids[out++] = words[w].ids[k];
            words[w].n = out;
        }
    }
    free(pairs);
}

//  GPT-2's byte alphabet: the code point byte b is spelled with (printable Latin-1 bytes as
//  themselves, the other 68 from U+0100 up in byte order).
static uint32_t s_code_point(unsigned char b)
{
    uint32_t shifted = 0;
    for (int c = 0; c < b; c++)
        shifted += !((c > 32 && c < 127) || (c > 160 && c != 173));
    return (b > 32 && b < 127) || (b > 160 && b != 173) ? b : 256 + shifted;
}

//  The piece spelled in the byte alphabet into out (NUL-terminated; 2 bytes a byte at most).
static void s_spell(const s_piece_t *p, char *out, size_t cap)
{
    CHECK(cap > 2 * p->len);
    for (size_t i = 0; i < p->len; i++) {
        uint32_t cp = s_code_point((unsigned char)p->bytes[i]);
        if (cp < 0x80)
            *out++ = (char)cp;
        else {
            *out++ = (char)(0xC0 | cp >> 6);
            *out++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *out = '\0';
}

#define S_SPELLED (2 * sizeof(((s_piece_t *)0)->bytes) + 1)

//  The tokenizer's metadata: s_train's vocabulary plus "<|endoftext|>"; *vocab_size receives
//  the count of tokens.
static void s_add_tokenizer(hafl_gguf_writer_t *w, int *vocab_size)
{
    static s_vocab_t v;
    s_train(&v);
    size_t n = v.n_pieces + 1, eot = v.n_pieces;
    char **tokens = calloc(n, sizeof(char *));
    char **merges = calloc(S_MERGES, sizeof(char *));
    int32_t *types = malloc(n * sizeof(int32_t));
    CHECK(tokens && merges && types);
    for (size_t i = 0; i < v.n_pieces; i++) {
        tokens[i] = malloc(S_SPELLED);
        CHECK(tokens[i]);
        s_spell(&v.pieces[i], tokens[i], S_SPELLED);
        types[i] = HAFL_BPE_TYPE_NORMAL;
    }
    tokens[eot] = strdup("<|endoftext|>");
    CHECK(tokens[eot]);
    types[eot] = HAFL_BPE_TYPE_CONTROL;
    for (int r = 0; r < S_MERGES; r++) {
        char a[S_SPELLED], b[S_SPELLED];
        s_spell(&v.pieces[v.merges[r][0]], a, sizeof a);
        s_spell(&v.pieces[v.merges[r][1]], b, sizeof b);
        merges[r] = malloc(strlen(a) + strlen(b) + 2);
        CHECK(merges[r]);
        sprintf(merges[r], "%s %s", a, b);
    }
    hafl_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2");
    hafl_gguf_writer_add_string(w, "tokenizer.ggml.pre", "qwen2");
    hafl_gguf_writer_add_strings(w, "tokenizer.ggml.tokens", (const char *const *)tokens, n);
    hafl_gguf_writer_add_array(w, "tokenizer.ggml.token_type", HAFL_GGUF_INT32, types, n);
    hafl_gguf_writer_add_strings(w, "tokenizer.ggml.merges", (const char *const *)merges, S_MERGES);
    hafl_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)eot);
    hafl_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eot);
    hafl_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false);
    for (size_t i = 0; i < n; i++)
        free(tokens[i]);
    for (int r = 0; r < S_MERGES; r++)
        free(merges[r]);
    free(tokens);
    free(merges);
    free(types);
    *vocab_size = (int)n;
}

static hafl_llama_config_t s_config(int vocab_size)
{
    return (hafl_llama_config_t){.dim = S_DIM,
                                 .hidden_dim = S_HIDDEN,
                                 .n_layers = S_LAYERS,
                                 .n_heads = S_HEADS,
                                 .n_kv_heads = S_KV,
                                 .vocab_size = vocab_size,
                                 .seq_len = S_SEQ,
                                 .shared_classifier = false,
                                 .rope_base = 1e6f,
                                 .rms_eps = 1e-6f,
                                 .rope_neox = true,
                                 .qkv_bias = true};
}

//  The model (tokenizer included) to path; *vocab_size, when not NULL, receives its vocabulary
//  size. Returns the generator's checkpoint for comparisons (caller destroys).
static hafl_checkpoint_t *s_write(const char *path, int *vocab_size)
{
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(w);
    int vocab = 0;
    hafl_gguf_writer_add_string(w, "general.name", "hafl tiny qwen2 test model");
    s_add_tokenizer(w, &vocab);
    hafl_llama_config_t c = s_config(vocab);
    char err[512];
    hafl_checkpoint_t *gen = hafl_checkpoint_random(&c, S_SEED, err, sizeof err);
    CHECKF(gen, "%s", err);
    //  Architecture keys and every tensor, as the library lays a model out (F32 throughout).
    CHECKF(hafl_checkpoint_write_gguf(gen, w, HAFL_QUANT_F32) == 0, "%s",
           hafl_gguf_writer_error(w));
    CHECKF(hafl_gguf_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    hafl_gguf_writer_destroy(&w);
    if (vocab_size)
        *vocab_size = vocab;
    return gen;
}

static void s_same(const float *got, const float *want, size_t n, const char *what)
{
    CHECKF(memcmp(got, want, n * sizeof(float)) == 0, "%s differs after loading", what);
}

static void s_self_check(void)
{
    char path[] = "/tmp/hafl-qwen2-model-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    int vocab = 0;
    hafl_checkpoint_t *gen = s_write(path, &vocab);
    char err[512];
    hafl_checkpoint_t *ckpt = hafl_checkpoint_open(path, err, sizeof err);
    CHECKF(ckpt, "%s", err);
    hafl_tokenizer_t *tok = hafl_tokenizer_load(path, vocab, err, sizeof err);
    CHECKF(tok, "%s", err);
    unlink(path);

    //  The config as written, every tensor where the generator had it.
    const hafl_llama_config_t *c = &ckpt->config, want = s_config(vocab);
    CHECK(ckpt->gguf);
    CHECK(c->dim == want.dim && c->hidden_dim == want.hidden_dim && c->n_layers == want.n_layers);
    CHECK(c->n_heads == want.n_heads && c->n_kv_heads == want.n_kv_heads);
    CHECK(c->vocab_size == vocab && c->seq_len == want.seq_len);
    CHECK(c->rope_base == want.rope_base && c->rms_eps == want.rms_eps);
    CHECK(c->rope_neox && c->qkv_bias && !c->shared_classifier);
    const hafl_llama_weights_t *got = &ckpt->weights, *g = &gen->weights;
    s_same(got->token_embedding, g->token_embedding, (size_t)vocab * S_DIM, "token_embd");
    s_same(got->rms_final, g->rms_final, S_DIM, "output_norm");
    s_same(got->wcls, g->wcls, (size_t)vocab * S_DIM, "output");
    for (int l = 0; l < S_LAYERS; l++) {
        hafl_llama_gguf_block_t a[HAFL_LLAMA_GGUF_BLOCKS], b[HAFL_LLAMA_GGUF_BLOCKS];
        size_t n = hafl_llama_gguf_blocks(c, got, l, a);
        CHECK(n == hafl_llama_gguf_blocks(&gen->config, g, l, b));
        for (size_t i = 0; i < n; i++)
            s_same(a[i].slice, b[i].slice, (size_t)((a[i].rows ? a[i].rows : 1) * a[i].cols),
                   a[i].name);
    }

    //  The tokenizer: byte-level BPE with the special ids written, whole common words as one
    //  token each, and the text back byte for byte (a non-ASCII character and a digit run
    //  included, which only byte tokens can spell).
    uint8_t rules[32];
    CHECK(hafl_tokenizer_rules_digest(tok, rules));
    CHECK(hafl_tokenizer_vocab_size(tok) == vocab);
    CHECK(hafl_tokenizer_bos(tok) == vocab - 1 && hafl_tokenizer_eos(tok) == vocab - 1);
    CHECK(!hafl_tokenizer_adds_bos(tok) && !hafl_tokenizer_adds_eos(tok));
    CHECK(strcmp(hafl_tokenizer_piece(tok, vocab - 1), "<|endoftext|>") == 0);
    const char *text = "The people think that the new computer will not work, 1993 caf\xc3\xa9.";
    size_t cap = hafl_tokenizer_encode_capacity(strlen(text)), n = 0;
    int32_t *ids = malloc(cap * sizeof(int32_t));
    CHECK(ids);
    CHECK(hafl_tokenizer_encode(tok, text, true, false, ids, cap, &n) == 0);
    CHECKF(n > 1 && ids[0] == vocab - 1, "no BOS first");
    CHECKF(n - 1 < strlen(text) / 2, "%zu tokens for %zu bytes: the merges do not apply", n - 1,
           strlen(text));
    const char *whole[] = {"\xc4\xa0the", "\xc4\xa0people", "\xc4\xa0think", "\xc4\xa0that"};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        int32_t id = hafl_tokenizer_lookup(tok, whole[i], strlen(whole[i]));
        CHECKF(id >= 256, "no token '%s'", whole[i]);
        bool found = false;
        for (size_t k = 1; k < n; k++)
            found = found || ids[k] == id;
        CHECKF(found, "'%s' is not one token of the sentence", whole[i]);
    }
    char back[256] = "";
    size_t at = 0;
    for (size_t k = 1; k < n; k++) {
        CHECK(ids[k] >= 0 && ids[k] < vocab - 1);
        const char *piece = hafl_tokenizer_decode(tok, ids[k - 1], ids[k]);
        CHECK(piece && at + strlen(piece) < sizeof back);
        memcpy(back + at, piece, strlen(piece) + 1);
        at += strlen(piece);
    }
    CHECKF(strcmp(back, text) == 0, "decoded '%s', not '%s'", back, text);
    printf("qwen2 GGUF: dim %d, %d layers, vocab %d (256 bytes, %d merges, <|endoftext|>) "
           "loads bit-exact; %zu bytes encode to %zu tokens and decode back\n",
           S_DIM, S_LAYERS, vocab, S_MERGES, strlen(text), n - 1);
    free(ids);
    hafl_tokenizer_destroy(&tok);
    hafl_checkpoint_destroy(&ckpt);
    hafl_checkpoint_destroy(&gen);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write") == 0) {
        int vocab = 0;
        hafl_checkpoint_t *gen = s_write(argv[2], &vocab);
        hafl_checkpoint_destroy(&gen);
        printf("wrote %s: qwen2, vocab %d\n", argv[2], vocab);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_gguf_qwen2_model [--write PATH]\n");
        return 2;
    }
    s_self_check();
    return 0;
}
