/*  test_tokenizer: llama2.c tokenizer loading, encoding and decoding.

    Expected ids for tok512 were worked out by hand from its vocab (ids and scores quoted in the
    comments). The heap-based merge is checked against a direct transcription of llama2.c's
    quadratic loop on many random texts, and decode(encode(s)) must give s back. A small
    tokenizer built here checks the tie rule and every corruption the loader must refuse.

    GGUF: tok512 written as GGUF metadata the way llama.cpp's converters write a SentencePiece
    vocabulary (U+2581 for spaces, <s> and </s>, token types) loads as the same pieces and
    scores and encodes random texts to the same ids; metadata the encoder cannot honour (another
    tokenizer model, other special ids, add_bos_token false, a count that is not the vocab, a
    byte piece out of place) is refused naming the key.
*/
#include "hafl_asset.h"
#include "hafl_gguf_writer.h"
#include "hafl_rng.h"
#include "hafl_test.h"
#include "hafl_tokenizer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static hafl_tokenizer_t *s_load_tok512(void)
{
    char err[512];
    char *path = hafl_asset_find("tok512.bin", err, sizeof err);
    CHECKF(path, "%s", err);
    hafl_tokenizer_t *tok = hafl_tokenizer_load(path, 512, err, sizeof err);
    CHECKF(tok, "%s", err);
    free(path);
    return tok;
}

//  Encode and compare with the expected ids; also check each id's piece as documentation.
static void s_expect(const hafl_tokenizer_t *tok, const char *text, bool bos, bool eos,
                     const int32_t *ids, const char *const *pieces, size_t n)
{
    size_t cap = hafl_tokenizer_encode_capacity(strlen(text)), got_n = 0;
    int32_t *got = malloc(cap * sizeof(int32_t));
    CHECK(got);
    CHECK(hafl_tokenizer_encode(tok, text, bos, eos, got, cap, &got_n) == 0);
    CHECKF(got_n == n, "'%s': %zu tokens, expected %zu", text, got_n, n);
    for (size_t i = 0; i < n; i++) {
        CHECKF(got[i] == ids[i], "'%s' token %zu: %d, expected %d", text, i, got[i], ids[i]);
        if (pieces && pieces[i])
            CHECKF(strcmp(hafl_tokenizer_piece(tok, ids[i]), pieces[i]) == 0,
                   "piece of %d is not '%s'", ids[i], pieces[i]);
    }
    free(got);
}

static void s_test_known(const hafl_tokenizer_t *tok)
{
    CHECK(hafl_tokenizer_vocab_size(tok) == 512);
    //  SentencePiece: the pieces and scores are the whole rule set.
    uint8_t rules[32];
    CHECK(!hafl_tokenizer_rules_digest(tok, rules));
    //  "hello": BOS, dummy " " (410), h e l l o (415 411 421 421 414). Candidate pairs: " h"
    //  (270, -11), "he" (260, -1), "ll" (306, -47); "he" wins; then " he" (281, -22) beats
    //  "ll"; then "ll"; " hell", "llo" are not pieces, so it stops.
    const int32_t hello[] = {1, 281, 306, 414};
    const char *hello_p[] = {NULL, " he", "ll", "o"};
    s_expect(tok, "hello", true, false, hello, hello_p, 4);
    s_expect(tok, "hello", false, true, (const int32_t[]){281, 306, 414, 2}, NULL, 4);
    //  Whole words that are pieces: " Once" (403) and " upon" (407), " a" (261).
    const int32_t once[] = {1, 403, 407, 261};
    const char *once_p[] = {NULL, " Once", " upon", " a"};
    s_expect(tok, "Once upon a", true, false, once, once_p, 4);
    //  Empty text: no dummy prefix.
    s_expect(tok, "", true, false, (const int32_t[]){1}, NULL, 1);
    s_expect(tok, "", true, true, (const int32_t[]){1, 2}, NULL, 2);
    size_t n = 99;
    int32_t none[3];
    CHECK(hafl_tokenizer_encode(tok, "", false, false, none, 3, &n) == 0 && n == 0);
    //  "é" (C3 A9) is piece 485; "日" (E6 97 A5) is not, so byte fallback 3 + byte;
    //  "\n" (0A) has no piece: 3 + 10 = 13 ("<0x0A>").
    const int32_t utf[] = {1, 410, 485, 410, 233, 154, 168, 13};
    const char *utf_p[] = {NULL, " ", "\xc3\xa9", " ", "<0xE6>", "<0x97>", "<0xA5>", "<0x0A>"};
    s_expect(tok, "\xc3\xa9 \xe6\x97\xa5\n", true, false, utf, utf_p, 8);
    //  Five continuation bytes: llama2.c cuts a code point after four bytes, then the fifth
    //  stands alone; all fall back to bytes (0x80 + 3 = 131). "x" is 444.
    const int32_t cont[] = {410, 131, 131, 131, 131, 131, 444};
    s_expect(tok, "\x80\x80\x80\x80\x80x", false, false, cont, NULL, 7);
    //  Capacity is checked before anything is written.
    int32_t small[7];
    CHECK(hafl_tokenizer_encode(tok, "hello", true, false, small, 7, &n) == -1);

    //  Decode: after BOS the leading space goes; raw-byte pieces become the byte.
    CHECK(strcmp(hafl_tokenizer_decode(tok, 1, 403), "Once") == 0);
    CHECK(strcmp(hafl_tokenizer_decode(tok, 403, 407), " upon") == 0);
    CHECK(strcmp(hafl_tokenizer_decode(tok, 5, 13), "\n") == 0);
    CHECK(strcmp(hafl_tokenizer_decode(tok, 5, 3), "") == 0); //  byte 0
    CHECK(memcmp(hafl_tokenizer_decode(tok, 5, 233), "\xe6", 2) == 0);
    CHECK(strcmp(hafl_tokenizer_decode(tok, 5, 0), "<unk>") == 0);
    CHECK(hafl_tokenizer_decode(tok, 5, 512) == NULL && hafl_tokenizer_decode(tok, 5, -1) == NULL);
    CHECK(hafl_tokenizer_lookup(tok, " upon", 5) == 407);
    CHECK(hafl_tokenizer_lookup(tok, " upo", 4) == -1);
}

static void s_test_print(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    CHECK(out);
    hafl_tokenizer_print_piece(out, NULL);
    hafl_tokenizer_print_piece(out, "");
    hafl_tokenizer_print_piece(out, "\xe6"); //  lone UTF-8 byte: dropped
    hafl_tokenizer_print_piece(out, "\x01"); //  control byte: dropped
    hafl_tokenizer_print_piece(out, "a");
    hafl_tokenizer_print_piece(out, "\n");
    hafl_tokenizer_print_piece(out, " b\xc3\xa9"); //  longer pieces print as they are
    fclose(out);
    CHECK(len == 6 && memcmp(buf, "a\n b\xc3\xa9", 6) == 0);
    free(buf);
}

//  llama2.c's encode, transcribed as directly as possible: the oracle for the heap version.
static size_t s_naive_encode(const hafl_tokenizer_t *tok, const char *text, int32_t *tokens)
{
    size_t n = 0, len = strlen(text);
    tokens[n++] = HAFL_TOKEN_BOS;
    if (len)
        tokens[n++] = hafl_tokenizer_lookup(tok, " ", 1);
    char buf[8];
    size_t blen = 0;
    for (const char *c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80)
            blen = 0;
        buf[blen++] = *c;
        if ((*(c + 1) & 0xC0) == 0x80 && blen < 4)
            continue;
        int32_t id = hafl_tokenizer_lookup(tok, buf, blen);
        if (id != -1)
            tokens[n++] = id;
        else
            for (size_t i = 0; i < blen; i++)
                tokens[n++] = (unsigned char)buf[i] + 3;
        blen = 0;
    }
    char merged[512];
    while (1) {
        float best_score = -1e10f;
        int32_t best_id = -1;
        size_t best_idx = SIZE_MAX;
        for (size_t i = 0; i + 1 < n; i++) {
            int w = snprintf(merged, sizeof merged, "%s%s", hafl_tokenizer_piece(tok, tokens[i]),
                             hafl_tokenizer_piece(tok, tokens[i + 1]));
            CHECK(w >= 0 && (size_t)w < sizeof merged);
            int32_t id = hafl_tokenizer_lookup(tok, merged, (size_t)w);
            if (id != -1 && hafl_tokenizer_score(tok, id) > best_score) {
                best_score = hafl_tokenizer_score(tok, id);
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == SIZE_MAX)
            break;
        tokens[best_idx] = best_id;
        for (size_t i = best_idx + 1; i + 1 < n; i++)
            tokens[i] = tokens[i + 1];
        n--;
    }
    return n;
}

//  Random text mixing vocab pieces, ASCII, raw high bytes and valid multi-byte characters.
static void s_random_text(hafl_rng_t *rng, const hafl_tokenizer_t *tok, char *text, size_t cap)
{
    static const char *extras[] = {"\xc3\xa9", "\xe2\x80\x9c", "\xe6\x97\xa5", "\xf0\x9f\x98\x80",
                                   "\n",       "\t",           "  ",           "<0x41>"};
    size_t len = 0, target = hafl_rng_below(rng, cap / 2);
    while (len < target) {
        char piece[64];
        uint64_t kind = hafl_rng_below(rng, 10);
        if (kind < 5) {
            const char *p = hafl_tokenizer_piece(tok, (int32_t)(259 + hafl_rng_below(rng, 253)));
            snprintf(piece, sizeof piece, "%s", p);
        } else if (kind < 7) {
            piece[0] = (char)(32 + hafl_rng_below(rng, 95)), piece[1] = '\0';
        } else if (kind < 8) {
            piece[0] = (char)(128 + hafl_rng_below(rng, 128)), piece[1] = '\0';
        } else {
            snprintf(piece, sizeof piece, "%s", extras[hafl_rng_below(rng, 8)]);
        }
        size_t plen = strlen(piece);
        if (len + plen + 1 > cap)
            break;
        memcpy(text + len, piece, plen);
        len += plen;
    }
    text[len] = '\0';
}

static void s_test_against_naive(const hafl_tokenizer_t *tok)
{
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 11, 0, 0);
    char text[401];
    int32_t fast[410], slow[410];
    for (int iter = 0; iter < 400; iter++) {
        s_random_text(&rng, tok, text, sizeof text);
        size_t nf = 0;
        CHECK(hafl_tokenizer_encode(tok, text, true, false, fast, 410, &nf) == 0);
        size_t ns = s_naive_encode(tok, text, slow);
        CHECKF(nf == ns, "iteration %d: %zu vs %zu tokens for '%s'", iter, nf, ns, text);
        CHECK(memcmp(fast, slow, nf * sizeof(int32_t)) == 0);
        //  Decoding gives the bytes back exactly (raw-byte pieces included).
        char back[1024];
        size_t blen = 0;
        for (size_t i = 1; i < nf; i++) {
            const char *p = hafl_tokenizer_decode(tok, fast[i - 1], fast[i]);
            size_t plen = strlen(p);
            //  Byte 0 cannot occur in a C string, so "" only for pieces that are empty.
            CHECK(blen + plen < sizeof back);
            memcpy(back + blen, p, plen);
            blen += plen;
        }
        back[blen] = '\0';
        CHECKF(strcmp(back, text) == 0, "round trip of '%s' gave '%s'", text, back);
    }
}

static void s_test_round_trip_ascii(const hafl_tokenizer_t *tok)
{
    const char *texts[] = {"Once upon a time, there was a little girl named Lily.",
                           "She said, \"I want to play!\"\nThen: 42 cats (and 7 dogs) ran away...",
                           "From: someone@example.com\nSubject: Re: X11 & Motif\n\n> quoted\ttab",
                           "a",
                           " leading space",
                           "trailing space ",
                           "~`|\\{}[]^_"};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int32_t ids[256];
        size_t n = 0;
        CHECK(hafl_tokenizer_encode(tok, texts[k], true, false, ids, 256, &n) == 0);
        char back[512] = "";
        for (size_t i = 1; i < n; i++)
            strcat(back, hafl_tokenizer_decode(tok, ids[i - 1], ids[i]));
        CHECKF(strcmp(back, texts[k]) == 0, "'%s' came back as '%s'", texts[k], back);
    }
}

//  A tokenizer file in memory: the 3 specials, the 256 byte pieces, then extra pieces.
typedef struct {
    uint8_t *data;
    size_t size;
} s_blob_t;

static void s_blob_add(s_blob_t *b, const void *bytes, size_t n)
{
    b->data = realloc(b->data, b->size + n);
    CHECK(b->data);
    memcpy(b->data + b->size, bytes, n);
    b->size += n;
}

static void s_blob_piece(s_blob_t *b, float score, const char *piece)
{
    int32_t len = (int32_t)strlen(piece);
    s_blob_add(b, &score, 4);
    s_blob_add(b, &len, 4);
    s_blob_add(b, piece, (size_t)len);
}

static s_blob_t s_small_tokenizer(void)
{
    s_blob_t b = {NULL, 0};
    int32_t max_len = 6;
    s_blob_add(&b, &max_len, 4);
    s_blob_piece(&b, 0, "<unk>");
    s_blob_piece(&b, 0, "<s>");
    s_blob_piece(&b, 0, "</s>");
    for (int i = 0; i < 256; i++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", i);
        s_blob_piece(&b, 0, p);
    }
    //  259.." ", "a", "b", "c", then "ab" and "bc" with equal scores, "abc" below the merge
    //  threshold, and a duplicate "a" with a higher id.
    const char *pieces[] = {" ", "a", "b", "c", "ab", "bc", " c", "ca"};
    float scores[] = {-100, -101, -102, -103, -5, -5, -20, -2e10f};
    for (int i = 0; i < 8; i++)
        s_blob_piece(&b, scores[i], pieces[i]);
    s_blob_piece(&b, 0, "a");
    return b;
}

static hafl_tokenizer_t *s_load_blob(const s_blob_t *b, int vocab, char *err, size_t errlen,
                                     char *path, size_t pathlen)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : P_tmpdir;
    snprintf(path, pathlen, "%s/hafl_tok_XXXXXX", dir);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, b->data, b->size) == (ssize_t)b->size);
    CHECK(close(fd) == 0);
    hafl_tokenizer_t *tok = hafl_tokenizer_load(path, vocab, err, errlen);
    unlink(path);
    return tok;
}

static void s_expect_refused(const s_blob_t *b, int vocab, const char *reason)
{
    char err[512] = "", path[512];
    hafl_tokenizer_t *tok = s_load_blob(b, vocab, err, sizeof err, path, sizeof path);
    CHECKF(!tok, "accepted a tokenizer that should fail with '%s'", reason);
    CHECKF(strstr(err, path) && strstr(err, reason), "error '%s' lacks '%s' or the path", err,
           reason);
}

static void s_test_small(void)
{
    s_blob_t b = s_small_tokenizer();
    const int vocab = 259 + 9;
    char err[512], path[512];
    hafl_tokenizer_t *tok = s_load_blob(&b, vocab, err, sizeof err, path, sizeof path);
    CHECKF(tok, "%s", err);
    //  Duplicated "a" (260 and 267): the lowest id is found.
    CHECK(hafl_tokenizer_lookup(tok, "a", 1) == 260);
    //  "abc": initial [" " a b c] = [259 260 261 262]; "ab" and "bc" tie at -5 and the
    //  leftmost wins, giving [" " ab c]; " ab" and "abc" are not pieces, so it stops.
    s_expect(tok, "abc", false, false, (const int32_t[]){259, 263, 262}, NULL, 3);
    //  "bca": "bc" (-5) beats "ca" (-2e10, below llama2.c's -1e10 start, so never merged).
    s_expect(tok, "bca", false, false, (const int32_t[]){259, 264, 260}, NULL, 3);
    //  "ca": the prefix pair " c" (-20) merges; "ca" never does, nor does " ca" exist.
    s_expect(tok, "ca", false, false, (const int32_t[]){265, 260}, NULL, 2);
    hafl_tokenizer_destroy(&tok);
    CHECK(tok == NULL);

    //  Corruptions, each with its reason.
    s_expect_refused(&b, vocab + 1, "truncated");
    s_expect_refused(&b, vocab - 1, "trailing bytes");
    s_expect_refused(&b, 100, "vocab size 100");
    s_blob_t cut = {b.data, b.size - 1};
    s_expect_refused(&cut, vocab, "truncated");
    cut.size = 2;
    s_expect_refused(&cut, vocab, "truncated");
    uint8_t *orig = malloc(b.size);
    CHECK(orig);
    memcpy(orig, b.data, b.size);
    int32_t v = 0;
    memcpy(b.data, &v, 4);
    s_expect_refused(&b, vocab, "max_token_length = 0");
    memcpy(b.data, orig, b.size);
    //  Piece 0 record at offset 4: score, length, bytes "<unk>".
    v = 7;
    memcpy(b.data + 8, &v, 4);
    s_expect_refused(&b, vocab, "piece 0 has length 7");
    v = -1;
    memcpy(b.data + 8, &v, 4);
    s_expect_refused(&b, vocab, "piece 0 has length -1");
    memcpy(b.data, orig, b.size);
    float nan = NAN;
    memcpy(b.data + 4, &nan, 4);
    s_expect_refused(&b, vocab, "piece 0 has a non-finite score");
    memcpy(b.data, orig, b.size);
    b.data[12] = '\0';
    s_expect_refused(&b, vocab, "piece 0 contains a NUL byte");
    memcpy(b.data, orig, b.size);
    hafl_tokenizer_t *none = hafl_tokenizer_load("no-such-dir/tok.bin", vocab, err, sizeof err);
    CHECK(!none && strstr(err, "no-such-dir/tok.bin") && strstr(err, "cannot open"));
    free(orig);
    free(b.data);
}

//  ---------------------------------------------------------------- GGUF metadata

typedef struct {
    const char *model; //  tokenizer.ggml.model
    uint64_t n_tokens; //  entries written in tokens, scores and token_type
    uint32_t bos;      //  tokenizer.ggml.bos_token_id
    bool add_bos;      //  tokenizer.ggml.add_bos_token
    bool types;        //  write tokenizer.ggml.token_type
    int32_t swap_byte; //  >= 0: this byte piece's id gets the piece "X" instead
} s_gguf_tok_t;

//  tok's vocabulary as GGUF metadata under options o, written to path.
static void s_gguf_tok_write(const hafl_tokenizer_t *tok, const s_gguf_tok_t *o, const char *path)
{
    int n = hafl_tokenizer_vocab_size(tok);
    char **pieces = calloc((size_t)n, sizeof(char *));
    float *scores = calloc((size_t)n, sizeof(float));
    int32_t *types = calloc((size_t)n, sizeof(int32_t));
    CHECK(pieces && scores && types);
    for (int32_t id = 0; id < n; id++) {
        const char *p = id == HAFL_TOKEN_BOS   ? "<s>"
                        : id == HAFL_TOKEN_EOS ? "</s>"
                                               : hafl_tokenizer_piece(tok, id);
        pieces[id] = malloc(3 * strlen(p) + 2);
        CHECK(pieces[id]);
        char *q = pieces[id];
        for (; *p; p++)
            if (*p == ' ')
                memcpy(q, "\xe2\x96\x81", 3), q += 3;
            else
                *q++ = *p;
        *q = '\0';
        if (id == o->swap_byte)
            strcpy(pieces[id], "X");
        scores[id] = hafl_tokenizer_score(tok, id);
        //  llama.cpp's types: 1 normal, 2 unknown, 3 control, 6 byte.
        types[id] = id == 0 ? 2 : id < HAFL_TOKEN_BYTE0 ? 3 : id < HAFL_TOKEN_BYTE0 + 256 ? 6 : 1;
    }
    hafl_gguf_writer_t *w = hafl_gguf_writer_new(0);
    CHECK(w);
    hafl_gguf_writer_add_string(w, "tokenizer.ggml.model", o->model);
    hafl_gguf_writer_add_strings(w, "tokenizer.ggml.tokens", (const char *const *)pieces,
                                 o->n_tokens);
    hafl_gguf_writer_add_array(w, "tokenizer.ggml.scores", HAFL_GGUF_FLOAT32, scores, o->n_tokens);
    if (o->types)
        hafl_gguf_writer_add_array(w, "tokenizer.ggml.token_type", HAFL_GGUF_INT32, types,
                                   o->n_tokens);
    hafl_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", o->bos);
    hafl_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", HAFL_TOKEN_EOS);
    hafl_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", o->add_bos);
    char err[512];
    CHECKF(hafl_gguf_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    hafl_gguf_writer_destroy(&w);
    for (int i = 0; i < n; i++)
        free(pieces[i]);
    free(pieces);
    free(scores);
    free(types);
}

static void s_test_gguf(const hafl_tokenizer_t *tok)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : P_tmpdir;
    char path[512];
    snprintf(path, sizeof path, "%s/hafl_tok_%d.gguf", dir, (int)getpid());
    const s_gguf_tok_t good = {"llama", 512, HAFL_TOKEN_BOS, true, true, -1};
    for (int with_types = 0; with_types < 2; with_types++) {
        s_gguf_tok_t o = good;
        o.types = with_types;
        s_gguf_tok_write(tok, &o, path);
        char err[512];
        hafl_tokenizer_t *g = hafl_tokenizer_load(path, 512, err, sizeof err);
        CHECKF(g, "%s", err);
        for (int32_t id = 0; id < 512; id++)
            CHECKF(strcmp(hafl_tokenizer_piece(g, id), hafl_tokenizer_piece(tok, id)) == 0 &&
                       hafl_tokenizer_score(g, id) == hafl_tokenizer_score(tok, id),
                   "piece %d: '%s' vs tok512's '%s'", id, hafl_tokenizer_piece(g, id),
                   hafl_tokenizer_piece(tok, id));
        hafl_rng_t rng;
        hafl_rng_seed(&rng, 12, 0, 0);
        char text[401];
        int32_t a[410], b[410];
        for (int iter = 0; iter < 200; iter++) {
            s_random_text(&rng, tok, text, sizeof text);
            size_t na = 0, nb = 0;
            CHECK(hafl_tokenizer_encode(g, text, true, true, a, 410, &na) == 0);
            CHECK(hafl_tokenizer_encode(tok, text, true, true, b, 410, &nb) == 0);
            CHECKF(na == nb && memcmp(a, b, na * sizeof(int32_t)) == 0, "'%s' encodes otherwise",
                   text);
        }
        hafl_tokenizer_destroy(&g);
    }
    struct {
        s_gguf_tok_t o;
        const char *reason;
    } bad[] = {
        {{"bert", 512, 1, true, true, -1}, "key 'tokenizer.ggml.model': 'bert' is not supported"},
        {{"llama", 511, 1, true, true, -1},
         "key 'tokenizer.ggml.tokens': 511 entries, the model's vocabulary has 512"},
        {{"llama", 512, 5, true, true, -1},
         "key 'tokenizer.ggml.bos_token_id': 5 is not supported"},
        {{"llama", 512, 1, false, true, -1}, "key 'tokenizer.ggml.add_bos_token': false"},
        {{"llama", 512, 1, true, true, HAFL_TOKEN_BYTE0 + 0x41},
         "key 'tokenizer.ggml.tokens': token 68 is not the byte piece <0x41>"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_gguf_tok_write(tok, &bad[i].o, path);
        char err[512];
        hafl_tokenizer_t *g = hafl_tokenizer_load(path, 512, err, sizeof err);
        CHECKF(!g, "case %zu accepted", i);
        CHECKF(strstr(err, path) == err && strstr(err, bad[i].reason), "case %zu: '%s' lacks '%s'",
               i, err, bad[i].reason);
    }
    unlink(path);
}

int main(void)
{
    hafl_tokenizer_t *tok = s_load_tok512();
    s_test_known(tok);
    s_test_print();
    s_test_against_naive(tok);
    s_test_round_trip_ascii(tok);
    s_test_small();
    s_test_gguf(tok);
    //  The wrong vocab size for a real file is caught too.
    char err[512];
    char *path = hafl_asset_find("tok512.bin", err, sizeof err);
    CHECK(path);
    CHECK(!hafl_tokenizer_load(path, 511, err, sizeof err) && strstr(err, "trailing"));
    CHECK(!hafl_tokenizer_load(path, 513, err, sizeof err) && strstr(err, "truncated"));
    free(path);
    hafl_tokenizer_destroy(&tok);
    printf("tokenizer: ok\n");
    return 0;
}
