/*  test_tokenizer_bpe: GGUF byte-level BPE (model/hafl_bpe.c through hafl_tokenizer_load) on a
    tiny hand-built gpt2 vocabulary: the 256 byte tokens, a few merged tokens, a control and a
    user-defined token, fourteen merges.

    Checks: hand-worked encodings (merge order by rank, leftmost on ties, the byte alphabet,
    non-ASCII bytes, control-token text encoded as plain text, Llama 3's ignore_merges); a naive
    O(n^2) merge loop as the oracle for thousands of random strings; pre-tokenizer splits for
    each pattern (contractions by case, digit grouping, whitespace runs, White_Space rather than
    PCRE2's or JavaScript's \s, invalid UTF-8 bytes standing alone, a 200,000-byte run); decode
    giving the text back byte for byte; the special-id accessors and their defaults; and
    malformed files (merges that are not two tokens, name unknown tokens or repeat, arrays of
    the wrong type or length, token types out of range, spellings outside the alphabet, a
    missing byte token, an unknown pre-tokenizer, bad special ids), each refused with one line
    that starts with the path and names the key. Pure C, quick: it runs in the ASan tree too.
*/
#include "hafl_bpe.h"
#include "hafl_gguf.h"
#include "hafl_gguf_writer.h"
#include "hafl_rng.h"
#include "hafl_test.h"
#include "hafl_tokenizer.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Tokens after the 256 single bytes, as raw bytes (spelled into the byte alphabet on write).
static const char *const s_extra[] = {
    " t",       "he", "the", " the", "ll", "ell", "hell", "hello", "aa", "aaaa", "ab", "bc", "abc",
    "\xc3\xa9", //  é
    "xyz",      //  no merge makes it: only ignore_merges emits it
};
#define S_N_EXTRA ((int)(sizeof s_extra / sizeof s_extra[0]))
#define S_CONTROL (256 + S_N_EXTRA)     //  "<|endoftext|>", type control
#define S_USER    (256 + S_N_EXTRA + 1) //  "<think>", type user-defined
#define S_VOCAB   (256 + S_N_EXTRA + 2)

//  Merges in rank order, as raw bytes "left" + "right".
static const char *const s_merges[][2] = {
    {" ", "t"},  {"h", "e"},   {"t", "he"},   {" t", "he"},     {"l", "l"},
    {"e", "ll"}, {"h", "ell"}, {"hell", "o"}, {"a", "a"},       {"aa", "aa"},
    {"b", "c"},  {"a", "b"},   {"a", "bc"},   {"\xc3", "\xa9"},
};
#define S_N_MERGES ((int)(sizeof s_merges / sizeof s_merges[0]))

//  Ways to break the file (s_write_gguf).
typedef enum {
    M_NONE,
    M_MERGE_NO_SPACE,
    M_MERGE_TWO_SPACES,
    M_MERGE_UNKNOWN,
    M_MERGE_RESULT_UNKNOWN,
    M_MERGE_REPEATED,
    M_MERGES_I32,
    M_MERGES_MISSING,
    M_TOKENS_U32,
    M_TOKENS_SHORT,
    M_TYPES_STRINGS,
    M_TYPES_SHORT,
    M_TYPE_RANGE,
    M_PRE_UNKNOWN,
    M_PRE_U32,
    M_TOKEN_ALPHABET,
    M_TOKEN_BAD_UTF8,
    M_TOKEN_EMPTY,
    M_BYTE_MISSING,
    M_TOKEN_DUPLICATE,
    M_BOS_RANGE,
    M_ADD_BOS_NO_ID,
    M_SCORES_SHORT,
    M_SCORE_NAN,
    M_ADD_EOS_NO_ID,
    M_TOKEN_LONG,     //  a user-defined token of 65537 bytes
    M_MERGES_SWAPPED, //  valid: merges 8 and 9 ("a a", "aa aa") in the other order
} s_mutation_t;

typedef struct {
    const char *pre; //  NULL: no tokenizer.ggml.pre
    int bos, eos;    //  -1: no key
    int add_bos;     //  -1: no key
    bool types;      //  write tokenizer.ggml.token_type
    s_mutation_t mutation;
} s_spec_t;

static int32_t s_id_of(const char *piece)
{
    if (strlen(piece) == 1)
        return (unsigned char)piece[0];
    for (int i = 0; i < S_N_EXTRA; i++)
        if (strcmp(s_extra[i], piece) == 0)
            return 256 + i;
    fprintf(stderr, "no test token '%s'\n", piece);
    exit(1);
}

//  GPT-2's byte alphabet, written independently of hafl_bpe.c: the code point byte b is
//  spelled with.
static uint32_t s_code_point(unsigned char b)
{
    static uint32_t table[256];
    static bool ready;
    if (!ready) {
        uint32_t next = 256;
        for (int c = 0; c < 256; c++)
            table[c] = (c > 32 && c < 127) || (c > 160 && c != 173) ? (uint32_t)c : next++;
        ready = true;
    }
    return table[b];
}

//  The n raw bytes at s spelled in the byte alphabet (UTF-8, malloc'd).
static char *s_spell(const char *s, size_t n)
{
    char *out = malloc(2 * n + 1), *o = out;
    CHECK(out);
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s_code_point((unsigned char)s[i]);
        if (cp < 0x80)
            *o++ = (char)cp;
        else {
            *o++ = (char)(0xC0 | cp >> 6);
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *o = '\0';
    return out;
}

static void s_write_gguf(const s_spec_t *spec, const char *path)
{
    char *tokens[S_VOCAB];
    int32_t types[S_VOCAB];
    for (int i = 0; i < S_VOCAB; i++) {
        types[i] = HAFL_BPE_TYPE_NORMAL;
        if (i < 256) {
            char b = (char)i;
            tokens[i] = s_spell(&b, 1);
        } else if (i < S_CONTROL)
            tokens[i] = s_spell(s_extra[i - 256], strlen(s_extra[i - 256]));
        else {
            tokens[i] = strdup(i == S_CONTROL ? "<|endoftext|>" : "<think>");
            types[i] = i == S_CONTROL ? HAFL_BPE_TYPE_CONTROL : HAFL_BPE_TYPE_USER_DEFINED;
        }
        CHECK(tokens[i]);
    }
    char *merges[S_N_MERGES + 1];
    int n_merges = S_N_MERGES;
    for (int r = 0; r < S_N_MERGES; r++) {
        char *a = s_spell(s_merges[r][0], strlen(s_merges[r][0]));
        char *b = s_spell(s_merges[r][1], strlen(s_merges[r][1]));
        merges[r] = malloc(strlen(a) + strlen(b) + 2);
        CHECK(merges[r]);
        sprintf(merges[r], "%s %s", a, b);
        free(a);
        free(b);
    }
    uint64_t n_tokens = S_VOCAB, n_types = S_VOCAB;
    switch (spec->mutation) {
    case M_MERGE_NO_SPACE:
    case M_MERGE_TWO_SPACES:
    case M_MERGE_UNKNOWN:
    case M_MERGE_RESULT_UNKNOWN:
        free(merges[3]);
        merges[3] = strdup(spec->mutation == M_MERGE_NO_SPACE     ? "\xc4\xa0the"
                           : spec->mutation == M_MERGE_TWO_SPACES ? "\xc4\xa0t  he"
                           : spec->mutation == M_MERGE_UNKNOWN    ? "\xc4\xa0t hx"
                                                                  : "x y");
        CHECK(merges[3]);
        break;
    case M_MERGE_REPEATED:
        merges[n_merges++] = strdup("h e");
        CHECK(merges[n_merges - 1]);
        break;
    case M_MERGES_SWAPPED: {
        char *eighth = merges[8];
        merges[8] = merges[9], merges[9] = eighth;
        break;
    }
    case M_TOKENS_SHORT:
        n_tokens--;
        break;
    case M_TYPES_SHORT:
        n_types--;
        break;
    case M_TYPE_RANGE:
        types[260] = 7;
        break;
    case M_TOKEN_ALPHABET: //  a normal token with a character no byte is spelled with
        free(tokens[260]);
        tokens[260] = strdup("l\xe2\x82\xac"); //  l€
        break;
    case M_TOKEN_BAD_UTF8:
        free(tokens[260]);
        tokens[260] = strdup("l\xc4");
        break;
    case M_TOKEN_EMPTY:
        free(tokens[270]);
        tokens[270] = strdup("");
        break;
    case M_BYTE_MISSING: //  'A' spelled otherwise
        free(tokens['A']);
        tokens['A'] = strdup("AA");
        break;
    case M_TOKEN_DUPLICATE:
        free(tokens[270]);
        tokens[270] = strdup("he");
        break;
    case M_TOKEN_LONG:
        free(tokens[S_USER]);
        CHECK((tokens[S_USER] = malloc(65538)));
        memset(tokens[S_USER], 'x', 65537);
        tokens[S_USER][65537] = '\0';
        break;
    default:
        break;
    }
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(w);
    hafl_gguf_writer_add_string(w, "general.architecture", "llama");
    hafl_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2");
    if (spec->mutation == M_PRE_UNKNOWN)
        hafl_gguf_writer_add_string(w, "tokenizer.ggml.pre", "falcon\nx");
    else if (spec->mutation == M_PRE_U32)
        hafl_gguf_writer_add_u32(w, "tokenizer.ggml.pre", 2);
    else if (spec->pre)
        hafl_gguf_writer_add_string(w, "tokenizer.ggml.pre", spec->pre);
    if (spec->mutation == M_TOKENS_U32) {
        uint32_t ids[S_VOCAB] = {0};
        hafl_gguf_writer_add_array(w, "tokenizer.ggml.tokens", HAFL_GGUF_UINT32, ids, S_VOCAB);
    } else
        hafl_gguf_writer_add_strings(w, "tokenizer.ggml.tokens", (const char *const *)tokens,
                                     n_tokens);
    if (spec->mutation == M_TYPES_STRINGS)
        hafl_gguf_writer_add_strings(w, "tokenizer.ggml.token_type", (const char *const *)tokens,
                                     S_VOCAB);
    else if (spec->types || spec->mutation == M_TYPES_SHORT || spec->mutation == M_TYPE_RANGE)
        hafl_gguf_writer_add_array(w, "tokenizer.ggml.token_type", HAFL_GGUF_INT32, types, n_types);
    if (spec->mutation == M_SCORES_SHORT || spec->mutation == M_SCORE_NAN) {
        float scores[S_VOCAB] = {0};
        scores[5] = spec->mutation == M_SCORE_NAN ? NAN : 0.0f;
        hafl_gguf_writer_add_array(w, "tokenizer.ggml.scores", HAFL_GGUF_FLOAT32, scores,
                                   spec->mutation == M_SCORES_SHORT ? S_VOCAB - 1 : S_VOCAB);
    }
    if (spec->mutation == M_MERGES_I32) {
        int32_t ranks[S_N_MERGES] = {0};
        hafl_gguf_writer_add_array(w, "tokenizer.ggml.merges", HAFL_GGUF_INT32, ranks, S_N_MERGES);
    } else if (spec->mutation != M_MERGES_MISSING)
        hafl_gguf_writer_add_strings(w, "tokenizer.ggml.merges", (const char *const *)merges,
                                     (uint64_t)n_merges);
    if (spec->mutation == M_BOS_RANGE)
        hafl_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", S_VOCAB);
    else if (spec->bos >= 0 && spec->mutation != M_ADD_BOS_NO_ID)
        hafl_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)spec->bos);
    if (spec->eos >= 0)
        hafl_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)spec->eos);
    if (spec->mutation == M_ADD_BOS_NO_ID)
        hafl_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    else if (spec->add_bos >= 0)
        hafl_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", spec->add_bos == 1);
    if (spec->mutation == M_ADD_EOS_NO_ID)
        hafl_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", true);
    char err[512];
    CHECKF(hafl_gguf_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    hafl_gguf_writer_destroy(&w);
    for (int i = 0; i < S_VOCAB; i++)
        free(tokens[i]);
    for (int r = 0; r < n_merges; r++)
        free(merges[r]);
}

static char s_path[512];

static hafl_tokenizer_t *s_load(const s_spec_t *spec)
{
    s_write_gguf(spec, s_path);
    char err[512];
    hafl_tokenizer_t *tok = hafl_tokenizer_load(s_path, S_VOCAB, err, sizeof err);
    CHECKF(tok, "%s", err);
    return tok;
}

//  hafl_bpe alone on the file s_write_gguf last wrote.
static hafl_bpe_t *s_bpe_open(void)
{
    char err[512];
    hafl_gguf_t *g = hafl_gguf_open(s_path, err, sizeof err);
    CHECKF(g, "%s", err);
    hafl_bpe_t *bpe = hafl_bpe_new(g, S_VOCAB, err, sizeof err);
    CHECKF(bpe, "%s", err);
    hafl_gguf_destroy(&g);
    return bpe;
}

//  hafl's ids for text (no BOS/EOS) into ids[]; returns the count.
static size_t s_encode(const hafl_tokenizer_t *tok, const char *text, int32_t *ids, size_t cap)
{
    size_t n = 0;
    CHECK(hafl_tokenizer_encode_capacity(strlen(text)) <= cap);
    CHECKF(hafl_tokenizer_encode(tok, text, false, false, ids, cap, &n) == 0, "'%s'", text);
    return n;
}

//  text must encode to the listed pieces (raw bytes, "" ends the list).
static void s_expect(const hafl_tokenizer_t *tok, const char *text, const char *const *pieces)
{
    int32_t ids[256];
    size_t n = s_encode(tok, text, ids, 256), want = 0;
    for (; pieces[want][0]; want++)
        CHECKF(want < n && ids[want] == s_id_of(pieces[want]), "'%s': token %zu is %d, not '%s'",
               text, want, want < n ? ids[want] : -1, pieces[want]);
    CHECKF(n == want, "'%s': %zu tokens, expected %zu", text, n, want);
}

#define EXPECT(tok, text, ...) s_expect(tok, text, (const char *const[]){__VA_ARGS__, ""})

static void s_test_encode(void)
{
    s_spec_t spec = {"gpt-2", -1, -1, -1, true, M_NONE};
    hafl_tokenizer_t *tok = s_load(&spec);
    //  "Ġ t" (rank 0) before "h e" (1); then "Ġt he" (3).
    EXPECT(tok, " the", " the");
    EXPECT(tok, "the", "the");
    //  "h e" (1) fires before "l l" (4), so "hell"/"hello" are never reached.
    EXPECT(tok, "hello", "he", "ll", "o");
    //  "e ll" then "h ell" then "hell o" when "h e" cannot fire first.
    EXPECT(tok, "ello", "ell", "o");
    //  Leftmost first among equal ranks, then "aa aa".
    EXPECT(tok, "aaa", "aa", "a");
    EXPECT(tok, "aaaa", "aaaa");
    EXPECT(tok, "aaaaa", "aaaa", "a");
    //  "b c" (10) beats "a b" (11), then "a bc" (12).
    EXPECT(tok, "abc", "abc");
    EXPECT(tok, "ab", "ab");
    //  Non-ASCII: the two bytes of é merge; other bytes stay single tokens.
    EXPECT(tok, "caf\xc3\xa9", "c", "a", "f", "\xc3\xa9");
    EXPECT(tok, "\xc3\xa8", "\xc3", "\xa8");
    //  No ignore_merges for GPT-2: "xyz" is bytes.
    EXPECT(tok, "xyz", "x", "y", "z");
    //  Control and user-defined token texts are plain text.
    int32_t ids[64];
    size_t n = s_encode(tok, "<|endoftext|><think>", ids, 64);
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] < 256 + S_N_EXTRA);
    //  Empty text, and capacity: len ids at most, BOS/EOS need their two slots.
    CHECK(hafl_tokenizer_encode(tok, "", false, false, ids, 3, &n) == 0 && n == 0);
    CHECK(hafl_tokenizer_encode(tok, "abc", false, false, ids, 5, &n) == -1);
    hafl_tokenizer_destroy(&tok);

    //  Llama 3: a pre-token that is a token is emitted whole.
    spec.pre = "llama-bpe";
    spec.bos = S_CONTROL; //  Llama 3 adds BOS by default, so it must have one
    tok = s_load(&spec);
    EXPECT(tok, "xyz", "xyz");
    EXPECT(tok, " the", " the");
    EXPECT(tok, "hello", "hello"); //  merging alone would give he ll o (above)
    EXPECT(tok, "ello", "ell", "o");
    hafl_tokenizer_destroy(&tok);
}

//  The merge rule written the slow, obvious way over raw byte strings: find the lowest-ranked
//  adjacent pair (leftmost among equal), merge it, repeat.
static size_t s_naive_word(const char *word, size_t len, int32_t *out)
{
    char parts[512][16];
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        parts[n][0] = word[i], parts[n++][1] = '\0';
    for (;;) {
        int best_rank = S_N_MERGES;
        size_t best = 0;
        for (size_t i = 0; i + 1 < n; i++)
            for (int r = 0; r < best_rank; r++)
                if (strcmp(parts[i], s_merges[r][0]) == 0 &&
                    strcmp(parts[i + 1], s_merges[r][1]) == 0) {
                    best_rank = r;
                    best = i;
                }
        if (best_rank == S_N_MERGES)
            break;
        size_t a = strlen(parts[best]), b = strlen(parts[best + 1]);
        CHECK(a + b < sizeof parts[0]);
        memcpy(parts[best] + a, parts[best + 1], b + 1);
        memmove(parts[best + 1], parts[best + 2], (n - best - 2) * sizeof parts[0]);
        n--;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = s_id_of(parts[i]);
    return n;
}

static void s_test_against_naive(void)
{
    static const char alphabet[] = "abcehlotxyz '\xc3\xa9";
    for (int p = 0; p < 2; p++) {
        s_spec_t spec = {p ? "qwen2" : "gpt-2", -1, -1, -1, false, M_NONE};
        hafl_tokenizer_t *tok = s_load(&spec);
        hafl_bpe_t *bpe = s_bpe_open();
        hafl_rng_t rng;
        hafl_rng_seed(&rng, 7, (uint64_t)p, 0);
        for (int iter = 0; iter < 3000; iter++) {
            char text[200];
            size_t len = 1 + hafl_rng_below(&rng, 120);
            for (size_t i = 0; i < len; i++)
                text[i] = alphabet[hafl_rng_below(&rng, sizeof alphabet - 1)];
            text[len] = '\0';
            int32_t got[256], want[256];
            size_t n_got = s_encode(tok, text, got, 256), n_want = 0, ends[256], n_words = 0;
            CHECK(hafl_bpe_split(bpe, text, len, ends, 256, &n_words) == 0);
            for (size_t w = 0, start = 0; w < n_words; start = ends[w++])
                n_want += s_naive_word(text + start, ends[w] - start, want + n_want);
            CHECKF(n_got == n_want && memcmp(got, want, n_got * sizeof(int32_t)) == 0,
                   "'%s': %zu ids, the naive loop gives %zu", text, n_got, n_want);
        }
        hafl_bpe_destroy(&bpe);
        hafl_tokenizer_destroy(&tok);
    }
}

//  text must split into the listed pre-tokens under pre.
static void s_split(hafl_bpe_t *bpe, const char *text, const char *const *want)
{
    size_t ends[64], n, len = strlen(text), k = 0;
    CHECK(hafl_bpe_split(bpe, text, len, ends, 64, &n) == 0);
    for (size_t i = 0, start = 0; i < n; start = ends[i++], k++) {
        CHECKF(want[k][0] && ends[i] - start == strlen(want[k]) &&
                   memcmp(text + start, want[k], ends[i] - start) == 0,
               "%s: '%s': pre-token %zu is '%.*s', expected '%s'", hafl_bpe_pre(bpe), text, i,
               (int)(ends[i] - start), text + start, want[k]);
    }
    CHECKF(!want[k][0], "%s: '%s': %zu pre-tokens, expected more", hafl_bpe_pre(bpe), text, n);
}

#define SPLIT(bpe, text, ...) s_split(bpe, text, (const char *const[]){__VA_ARGS__, ""})

static hafl_bpe_t *s_bpe(const char *pre)
{
    s_spec_t spec = {pre, -1, -1, -1, true, M_NONE};
    s_write_gguf(&spec, s_path);
    return s_bpe_open();
}

static void s_test_split(void)
{
    hafl_bpe_t *llama = s_bpe("llama-bpe"), *qwen = s_bpe("qwen2"), *gpt2 = s_bpe("gpt-2");
    hafl_bpe_t *dflt = s_bpe(NULL);
    CHECK(strcmp(hafl_bpe_pre(llama), "llama-bpe") == 0 &&
          strcmp(hafl_bpe_pre(qwen), "qwen2") == 0);
    CHECK(strcmp(hafl_bpe_pre(gpt2), "gpt-2") == 0 && strcmp(hafl_bpe_pre(dflt), "gpt-2") == 0);
    CHECK(hafl_bpe_type(llama, 'a') == HAFL_BPE_TYPE_NORMAL);
    CHECK(hafl_bpe_type(llama, S_CONTROL) == HAFL_BPE_TYPE_CONTROL);
    CHECK(hafl_bpe_type(llama, S_USER) == HAFL_BPE_TYPE_USER_DEFINED);
    CHECK(hafl_bpe_type(llama, S_VOCAB) == 0 && hafl_bpe_type(llama, -1) == 0);
    size_t len;
    CHECK(memcmp(hafl_bpe_decode(llama, 0, &len), "", 1) == 0 && len == 1);
    CHECK(strcmp(hafl_bpe_decode(llama, s_id_of(" the"), &len), " the") == 0 && len == 4);
    const char *text = "Hello world's 12345 \n\n  x";
    SPLIT(llama, text, "Hello", " world", "'s", " ", "123", "45", " \n\n", " ", " x");
    SPLIT(qwen, text, "Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " \n\n", " ", " x");
    SPLIT(gpt2, text, "Hello", " world", "'s", " 12345", " \n\n ", " x");
    SPLIT(dflt, text, "Hello", " world", "'s", " 12345", " \n\n ", " x");
    //  Contractions: any case for Llama 3 and Qwen2, lower case only for GPT-2.
    SPLIT(llama, "IT'S we'LL", "IT", "'S", " we", "'LL");
    SPLIT(gpt2, "IT'S we'll", "IT", "'", "S", " we", "'ll");
    //  No case folding: U+017F (long s) is a letter, not an 's'.
    SPLIT(llama, "a'\xc5\xbf", "a", "'\xc5\xbf");
    //  Letters and numbers of other scripts; punctuation runs keep trailing newlines (Llama 3).
    SPLIT(llama, "na\xc3\xafve \xe5\x8c\x97\xe4\xba\xac \xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4",
          "na\xc3\xafve", " \xe5\x8c\x97\xe4\xba\xac", " ", "\xd9\xa1\xd9\xa2\xd9\xa3", "\xd9\xa4");
    SPLIT(llama, "x?!\n\ny", "x", "?!\n\n", "y");
    SPLIT(gpt2, "x?!\n\ny", "x", "?!", "\n", "\n", "y"); //  \s+(?!\S) leaves one for \s+
    //  Whitespace is White_Space: U+0085 is, U+180E and U+FEFF are not.
    SPLIT(llama,
          "a\xc2\x85\xc2\x85"
          "b",
          "a", "\xc2\x85",
          "\xc2\x85"
          "b");
    SPLIT(llama,
          "a\xe1\xa0\x8e\xe1\xa0\x8e"
          "b",
          "a", "\xe1\xa0\x8e\xe1\xa0\x8e", "b");
    SPLIT(gpt2,
          "a \xef\xbb\xbf"
          "b",
          "a", " \xef\xbb\xbf", "b");
    SPLIT(gpt2,
          "a\xe3\x80\x80\xe3\x80\x80"
          "b",
          "a", "\xe3\x80\x80", "\xe3\x80\x80", "b");
    //  Tabs and carriage returns.
    SPLIT(llama, "a\t\tb\r\nc", "a", "\t", "\tb", "\r\n", "c");
    //  Bytes that start no valid UTF-8 sequence stand alone and cut the text around them.
    SPLIT(gpt2,
          "ab\xff"
          "cd",
          "ab", "\xff", "cd");
    SPLIT(gpt2, "ab \xc3", "ab", " ", "\xc3");
    SPLIT(gpt2,
          "\xed\xa0\x80"
          "a",
          "\xed", "\xa0", "\x80", "a");      //  a surrogate
    SPLIT(gpt2, "\xc0\xaf", "\xc0", "\xaf"); //  an overlong '/'
    //  Long runs: linear, no regex engine limit.
    size_t big = 200000;
    char *run = malloc(big + 2);
    CHECK(run);
    memset(run, ' ', big);
    run[big] = 'x';
    run[big + 1] = '\0';
    size_t *ends = malloc((big + 1) * sizeof(size_t)), n;
    CHECK(ends);
    CHECK(hafl_bpe_split(llama, run, big + 1, ends, big + 1, &n) == 0);
    CHECK(n == 2 && ends[0] == big - 1 && ends[1] == big + 1);
    memset(run, 'a', big);
    CHECK(hafl_bpe_split(gpt2, run, big + 1, ends, big + 1, &n) == 0 && n == 1);
    int32_t *ids = malloc((big + 1) * sizeof(int32_t));
    CHECK(ids);
    CHECK(hafl_bpe_encode(gpt2, run, big, ids, big, &n) == 0 && n == big / 4);
    CHECK(hafl_bpe_split(gpt2, run, big + 1, ends, 0, &n) == -1); //  capacity
    free(ids);
    free(ends);
    free(run);
    //  Past PCRE2's default backtracking limit of 10 million steps.
    size_t huge = 10500000, two[2];
    CHECK((run = malloc(huge + 1)));
    memset(run, ' ', huge);
    run[huge] = 'x';
    CHECK(hafl_bpe_split(llama, run, huge + 1, two, 2, &n) == 0);
    CHECK(n == 2 && two[0] == huge - 1 && two[1] == huge + 1);
    free(run);
    hafl_bpe_destroy(&llama);
    hafl_bpe_destroy(&qwen);
    hafl_bpe_destroy(&gpt2);
    hafl_bpe_destroy(&dflt);
}

static void s_test_decode(void)
{
    s_spec_t spec = {"llama-bpe", S_CONTROL, -1, -1, true, M_NONE};
    hafl_tokenizer_t *tok = s_load(&spec);
    CHECK(strcmp(hafl_tokenizer_piece(tok, s_id_of(" the")), "\xc4\xa0the") == 0); //  "Ġthe"
    CHECK(hafl_tokenizer_lookup(tok, "\xc4\xa0the", 5) == s_id_of(" the"));
    CHECK(strcmp(hafl_tokenizer_decode(tok, 5, s_id_of(" the")), " the") == 0);
    CHECK(strcmp(hafl_tokenizer_decode(tok, 5, '\n'), "\n") == 0);
    CHECK(strcmp(hafl_tokenizer_decode(tok, 5, 0), "") == 0);
    CHECK(strcmp(hafl_tokenizer_decode(tok, 5, S_CONTROL), "<|endoftext|>") == 0);
    CHECK(strcmp(hafl_tokenizer_decode(tok, 5, S_USER), "<think>") == 0);
    CHECK(!hafl_tokenizer_decode(tok, 5, S_VOCAB) && !hafl_tokenizer_decode(tok, 5, -1));
    //  Generation prints a character split over byte tokens whole (llama2.c's rule for
    //  SentencePiece would drop each lone byte).
    int32_t c3 = hafl_tokenizer_lookup(tok, "\xc3\x83", 2),
            a9 = hafl_tokenizer_lookup(tok, "\xc2\xa9", 2);
    CHECK(c3 >= 0 && a9 >= 0); //  the byte-to-unicode spellings of bytes 0xC3 and 0xA9
    FILE *out = tmpfile();
    CHECK(out);
    hafl_tokenizer_print_token(tok, out, -1, c3);
    hafl_tokenizer_print_token(tok, out, c3, a9);
    hafl_tokenizer_print_token(tok, out, a9, S_VOCAB); //  out of range: nothing
    char printed[8] = "";
    rewind(out);
    size_t got = fread(printed, 1, sizeof printed - 1, out);
    fclose(out);
    CHECKF(got == 2 && memcmp(printed, "\xc3\xa9", 2) == 0, "printed %zu bytes", got);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 9, 0, 0);
    for (int iter = 0; iter < 2000; iter++) {
        char text[160], back[400] = "";
        size_t len = hafl_rng_below(&rng, 150);
        for (size_t i = 0; i < len; i++)
            text[i] = (char)(1 + hafl_rng_below(&rng, 255)); //  any byte but NUL
        text[len] = '\0';
        int32_t ids[200];
        size_t n = s_encode(tok, text, ids, 200);
        for (size_t i = 0; i < n; i++)
            strcat(back, hafl_tokenizer_decode(tok, i ? ids[i - 1] : -1, ids[i]));
        CHECKF(strcmp(back, text) == 0, "random bytes %d do not round-trip", iter);
    }
    hafl_tokenizer_destroy(&tok);
}

static void s_test_specials(void)
{
    //  Defaults: no ids, add_bos only for Llama 3 (which then needs a BOS id).
    s_spec_t spec = {"gpt-2", -1, -1, -1, true, M_NONE};
    hafl_tokenizer_t *tok = s_load(&spec);
    CHECK(hafl_tokenizer_bos(tok) == -1 && hafl_tokenizer_eos(tok) == -1);
    CHECK(!hafl_tokenizer_adds_bos(tok) && !hafl_tokenizer_adds_eos(tok));
    int32_t ids[16];
    size_t n;
    CHECK(hafl_tokenizer_encode(tok, "ab", true, true, ids, 16, &n) == 0 && n == 1);
    CHECK(!hafl_tokenizer_ends_text(tok, S_CONTROL) && !hafl_tokenizer_ends_text(tok, -1));
    hafl_tokenizer_destroy(&tok);

    spec = (s_spec_t){"llama-bpe", S_CONTROL, S_USER, -1, true, M_NONE};
    tok = s_load(&spec);
    CHECK(hafl_tokenizer_bos(tok) == S_CONTROL && hafl_tokenizer_eos(tok) == S_USER);
    CHECK(hafl_tokenizer_adds_bos(tok) && !hafl_tokenizer_adds_eos(tok));
    CHECK(hafl_tokenizer_encode(tok, "ab", true, true, ids, 16, &n) == 0 && n == 3);
    CHECK(ids[0] == S_CONTROL && ids[1] == s_id_of("ab") && ids[2] == S_USER);
    CHECK(hafl_tokenizer_ends_text(tok, S_CONTROL) && hafl_tokenizer_ends_text(tok, S_USER));
    CHECK(!hafl_tokenizer_ends_text(tok, 'a'));
    hafl_tokenizer_destroy(&tok);

    spec = (s_spec_t){"llama-bpe", S_CONTROL, S_CONTROL, 0, true, M_NONE};
    tok = s_load(&spec);
    CHECK(!hafl_tokenizer_adds_bos(tok));
    hafl_tokenizer_destroy(&tok);
}

//  The rules digest (what keys the tokenised-set cache besides the pieces) changes with the
//  merges, their order, the pre-tokenizer and the BOS settings, and only with them.
static void s_test_rules_digest(void)
{
    const s_spec_t specs[] = {
        {"gpt-2", -1, -1, -1, true, M_NONE},
        {"gpt-2", -1, -1, -1, true, M_MERGES_SWAPPED},
        {"qwen2", -1, -1, -1, true, M_NONE},
        {"llama-bpe", S_CONTROL, S_USER, -1, true, M_NONE},
        {"llama-bpe", S_CONTROL, S_USER, 0, true, M_NONE},
    };
    uint8_t digests[5][32];
    for (size_t i = 0; i < 5; i++) {
        hafl_tokenizer_t *tok = s_load(&specs[i]);
        CHECK(hafl_tokenizer_rules_digest(tok, digests[i]));
        hafl_tokenizer_destroy(&tok);
    }
    for (size_t i = 0; i < 5; i++)
        for (size_t j = i + 1; j < 5; j++)
            CHECKF(memcmp(digests[i], digests[j], 32) != 0, "specs %zu and %zu share a digest", i,
                   j);
    //  Same file, same digest; "default" is the GPT-2 pre-tokenizer under another name. The heap
    //  is dirtied first: the digest must not depend on what memory held before (empty table
    //  slots once went into it uninitialised).
    const s_spec_t again[] = {{"gpt-2", -1, -1, -1, true, M_NONE},
                              {"default", -1, -1, -1, true, M_NONE}};
    for (size_t i = 0; i < 2; i++) {
        void *dirty[64];
        for (size_t k = 0; k < 64; k++) {
            CHECK((dirty[k] = malloc(16 << (k % 12))));
            memset(dirty[k], 0xA5, (size_t)16 << (k % 12));
        }
        for (size_t k = 0; k < 64; k++)
            free(dirty[k]);
        uint8_t d[32];
        hafl_tokenizer_t *tok = s_load(&again[i]);
        CHECK(hafl_tokenizer_rules_digest(tok, d) && memcmp(d, digests[0], 32) == 0);
        hafl_tokenizer_destroy(&tok);
    }
}

static void s_test_malformed(void)
{
    struct {
        s_mutation_t mutation;
        const char *pre;
        const char *reason;
    } bad[] = {
        {M_MERGE_NO_SPACE, "gpt-2",
         "key 'tokenizer.ggml.merges': merge 3 ('\\xC4\\xA0the') is not two tokens separated by "
         "one space"},
        {M_MERGE_TWO_SPACES, "gpt-2", "key 'tokenizer.ggml.merges': merge 3 ("},
        {M_MERGE_UNKNOWN, "gpt-2",
         "key 'tokenizer.ggml.merges': merge 3 ('\\xC4\\xA0t hx'): 'hx' is not a normal token"},
        {M_MERGE_RESULT_UNKNOWN, "gpt-2",
         "key 'tokenizer.ggml.merges': merge 3 ('x y'): the merged token is not a normal token"},
        {M_MERGE_REPEATED, "gpt-2",
         "key 'tokenizer.ggml.merges': merge 14 ('h e') repeats merge 1"},
        {M_MERGES_I32, "gpt-2",
         "key 'tokenizer.ggml.merges': has type array of int32, expected array of string"},
        {M_MERGES_MISSING, "gpt-2", "key 'tokenizer.ggml.merges': missing"},
        {M_TOKENS_U32, "gpt-2",
         "key 'tokenizer.ggml.tokens': has type array of uint32, expected array of string"},
        {M_TOKENS_SHORT, "gpt-2",
         "key 'tokenizer.ggml.tokens': 272 entries, the model's vocabulary has 273"},
        {M_TYPES_STRINGS, "gpt-2",
         "key 'tokenizer.ggml.token_type': has type array of string, expected array of int32"},
        {M_TYPES_SHORT, "gpt-2", "key 'tokenizer.ggml.token_type': 272 entries"},
        {M_TYPE_RANGE, "gpt-2", "key 'tokenizer.ggml.token_type': token 260 has type 7"},
        {M_PRE_UNKNOWN, "gpt-2",
         "key 'tokenizer.ggml.pre': 'falcon\\x0Ax' is not supported (known: llama-bpe"},
        {M_PRE_U32, "gpt-2", "key 'tokenizer.ggml.pre': has type uint32, expected string"},
        {M_TOKEN_ALPHABET, "gpt-2",
         "key 'tokenizer.ggml.tokens': token 260 ('l\\xE2\\x82\\xAC') has U+20AC, outside the "
         "byte-level alphabet"},
        {M_TOKEN_BAD_UTF8, "gpt-2",
         "key 'tokenizer.ggml.tokens': token 260 ('l\\xC4') is not valid UTF-8"},
        {M_TOKEN_EMPTY, "gpt-2", "key 'tokenizer.ggml.tokens': token 270 is empty"},
        {M_BYTE_MISSING, "gpt-2", "key 'tokenizer.ggml.tokens': no normal token for the byte 0x41"},
        {M_TOKEN_DUPLICATE, "gpt-2",
         "key 'tokenizer.ggml.tokens': token 270 spells the same bytes as token 257"},
        {M_BOS_RANGE, "gpt-2",
         "key 'tokenizer.ggml.bos_token_id': 273 is not below the vocabulary size 273"},
        {M_ADD_BOS_NO_ID, "gpt-2",
         "key 'tokenizer.ggml.add_bos_token': true, but there is no tokenizer.ggml.bos_token_id"},
        {M_NONE, "llama-bpe",
         "key 'tokenizer.ggml.add_bos_token': true, but there is no tokenizer.ggml.bos_token_id"},
        {M_SCORES_SHORT, "gpt-2", "key 'tokenizer.ggml.scores': 272 entries"},
        {M_SCORE_NAN, "gpt-2", "key 'tokenizer.ggml.scores': token 5 has a non-finite score"},
        {M_ADD_EOS_NO_ID, "gpt-2",
         "key 'tokenizer.ggml.add_eos_token': true, but there is no tokenizer.ggml.eos_token_id"},
        {M_TOKEN_LONG, "gpt-2",
         "key 'tokenizer.ggml.tokens': token 272 is longer than 65536 bytes"},
    };
    CHECK(S_VOCAB == 273);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_spec_t spec = {bad[i].pre, -1, -1, -1, true, bad[i].mutation};
        s_write_gguf(&spec, s_path);
        char err[512];
        hafl_tokenizer_t *tok = hafl_tokenizer_load(s_path, S_VOCAB, err, sizeof err);
        CHECKF(!tok, "case %zu accepted", i);
        CHECKF(strstr(err, s_path) == err && strstr(err, bad[i].reason) && !strchr(err, '\n'),
               "case %zu: '%s' lacks '%s'", i, err, bad[i].reason);
    }
    //  The model's vocabulary size must match too.
    s_spec_t spec = {"gpt-2", -1, -1, -1, true, M_NONE};
    s_write_gguf(&spec, s_path);
    char err[512];
    CHECK(!hafl_tokenizer_load(s_path, S_VOCAB + 1, err, sizeof err));
    CHECKF(strstr(err, "key 'tokenizer.ggml.tokens': 273 entries, the model's vocabulary has 274"),
           "%s", err);
    //  Random byte flips anywhere in a good file: refused cleanly or loaded; never a crash.
    uint8_t *file = NULL;
    size_t size = 0;
    FILE *f = fopen(s_path, "rb");
    CHECK(f && fseek(f, 0, SEEK_END) == 0 && (size = (size_t)ftell(f)) > 0);
    rewind(f);
    CHECK((file = malloc(size)) && fread(file, 1, size, f) == size);
    fclose(f);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 11, 0, 0);
    for (int iter = 0; iter < 300; iter++) {
        uint8_t *copy = malloc(size);
        CHECK(copy);
        memcpy(copy, file, size);
        for (int k = 0; k < 4; k++)
            copy[hafl_rng_below(&rng, size)] ^= (uint8_t)(1 + hafl_rng_below(&rng, 255));
        f = fopen(s_path, "wb");
        CHECK(f && fwrite(copy, 1, size, f) == size && fclose(f) == 0);
        hafl_tokenizer_t *tok = hafl_tokenizer_load(s_path, S_VOCAB, err, sizeof err);
        if (tok) {
            int32_t ids[64];
            size_t n;
            CHECK(hafl_tokenizer_encode(tok, "hello the abc\xc3\xa9", true, true, ids, 64, &n) ==
                  0);
        }
        hafl_tokenizer_destroy(&tok);
        free(copy);
    }
    free(file);
}

int main(void)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : P_tmpdir;
    snprintf(s_path, sizeof s_path, "%s/hafl_tok_bpe_%d.gguf", dir, (int)getpid());
    s_test_encode();
    s_test_against_naive();
    s_test_split();
    s_test_decode();
    s_test_specials();
    s_test_rules_digest();
    s_test_malformed();
    unlink(s_path);
    printf("tokenizer_bpe: ok\n");
    return 0;
}
