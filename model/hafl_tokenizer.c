/*  hafl_tokenizer: loading, encoding and decoding llama2.c tokenizers. See hafl_tokenizer.h.

    The merge loop keeps the tokens in a doubly linked list over their original positions and a
    max-heap of candidate pairs keyed by (score, then smaller left position). Positions keep their
    order as nodes merge, so "smaller left position" is "leftmost pair" in the current sequence,
    which is the tie rule of llama2.c's scan. A heap entry goes stale when either node changes;
    each node carries a version bumped on change, and stale entries are dropped when popped.
*/
#include "hafl_tokenizer.h"
#include "hafl_bpe.h"
#include "hafl_gguf.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_MAX_TOKEN_LENGTH (1 << 16)
#define S_MAX_FILE_BYTES   (1 << 28)
//  llama2.c starts its best score here, so pairs scoring at or below it never merge.
#define S_MIN_MERGE_SCORE -1e10f

struct _hafl_tokenizer_t {
    int vocab_size;
    int max_token_length;
    char **pieces;      //  [vocab] -> NUL-terminated piece inside text
    uint32_t *lengths;  //  [vocab]
    float *scores;      //  [vocab]
    int32_t *sorted;    //  [vocab] ids ordered by (piece bytes, id)
    char *text;         //  all pieces, each followed by NUL
    char bytes[256][2]; //  the one-byte strings "<0xHH>" decodes to
    hafl_bpe_t *bpe;    //  byte-level BPE (GGUF model gpt2), which encodes and decodes; else NULL
    int32_t bos, eos;   //  -1: none
    int32_t eot;        //  end of turn (GGUF gpt2 only), -1: none
    bool adds_bos, adds_eos;
};

//  Byte-wise order of two pieces (strcmp order, as pieces hold no NUL), then by length.
static int s_piece_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

//  qsort context-free comparison needs the tokenizer; sort (piece pointer, id) pairs instead.
typedef struct {
    const char *piece;
    uint32_t length;
    int32_t id;
} s_sort_entry_t;

static int s_sort_entry_cmp(const void *pa, const void *pb)
{
    const s_sort_entry_t *a = pa, *b = pb;
    int c = s_piece_cmp(a->piece, a->length, b->piece, b->length);
    if (c != 0)
        return c;
    return a->id < b->id ? -1 : (a->id > b->id ? 1 : 0);
}

static int s_parse(hafl_tokenizer_t *self, const char *path, const uint8_t *data, size_t size,
                   char *err, size_t errlen)
{
    if (size < 4) {
        snprintf(err, errlen, "%s: truncated: %zu bytes, shorter than the 4-byte header", path,
                 size);
        return -1;
    }
    int32_t max_len;
    memcpy(&max_len, data, 4);
    if (max_len <= 0 || max_len > S_MAX_TOKEN_LENGTH) {
        snprintf(err, errlen, "%s: header nonsense: max_token_length = %d (must be in 1..%d)", path,
                 max_len, S_MAX_TOKEN_LENGTH);
        return -1;
    }
    self->max_token_length = max_len;
    //  Every piece is at most as long as its record, so the file size bounds the text size.
    self->text = malloc(size + (size_t)self->vocab_size);
    if (!self->text) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t offset = 4, text_used = 0;
    for (int i = 0; i < self->vocab_size; i++) {
        if (size - offset < 8) {
            snprintf(err, errlen,
                     "%s: truncated: piece %d of %d starts at byte %zu but the file has %zu bytes",
                     path, i, self->vocab_size, offset, size);
            return -1;
        }
        float score;
        int32_t len;
        memcpy(&score, data + offset, 4);
        memcpy(&len, data + offset + 4, 4);
        offset += 8;
        if (!isfinite(score)) {
            snprintf(err, errlen, "%s: piece %d has a non-finite score", path, i);
            return -1;
        }
        if (len < 0 || len > max_len) {
            snprintf(err, errlen, "%s: piece %d has length %d outside 0..max_token_length (%d)",
                     path, i, len, max_len);
            return -1;
        }
        if (size - offset < (size_t)len) {
            snprintf(err, errlen,
                     "%s: truncated: piece %d needs %d bytes at byte %zu but the file has %zu",
                     path, i, len, offset, size);
            return -1;
        }
        if (memchr(data + offset, 0, (size_t)len)) {
            snprintf(err, errlen, "%s: piece %d contains a NUL byte", path, i);
            return -1;
        }
        memcpy(self->text + text_used, data + offset, (size_t)len);
        self->text[text_used + (size_t)len] = '\0';
        self->pieces[i] = self->text + text_used;
        self->lengths[i] = (uint32_t)len;
        self->scores[i] = score;
        text_used += (size_t)len + 1;
        offset += (size_t)len;
    }
    if (offset != size) {
        snprintf(err, errlen,
                 "%s: %zu trailing bytes after %d pieces (does the vocab size match the model?)",
                 path, size - offset, self->vocab_size);
        return -1;
    }
    return 0;
}

static int s_sort(hafl_tokenizer_t *self)
{
    size_t n = (size_t)self->vocab_size;
    s_sort_entry_t *entries = malloc(n * sizeof(s_sort_entry_t));
    if (!entries)
        return -1;
    for (size_t i = 0; i < n; i++)
        entries[i] = (s_sort_entry_t){self->pieces[i], self->lengths[i], (int32_t)i};
    qsort(entries, n, sizeof(s_sort_entry_t), s_sort_entry_cmp);
    for (size_t i = 0; i < n; i++)
        self->sorted[i] = entries[i].id;
    free(entries);
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  The tokenizer inside a GGUF file (tokenizer.ggml.model = llama)

//  The one GGUF token type whose ids the encoder computes rather than looks up (llama.cpp's
//  LLAMA_TOKEN_TYPE_BYTE).
#define S_GGUF_TYPE_BYTE 6

//  An optional token id key must hold the id the engine hard-codes (absent: llama.cpp's
//  SentencePiece default, which is that id).
static int s_gguf_id(const hafl_gguf_t *g, const char *key, uint32_t engine, char *err,
                     size_t errlen)
{
    uint32_t id;
    if (!hafl_gguf_find(g, key))
        return 0;
    if (hafl_gguf_get_u32(g, key, &id, err, errlen) != 0)
        return -1;
    if (id != engine) {
        snprintf(err, errlen, "%s: key '%s': %u is not supported (hafl's tokenizer uses id %u)",
                 hafl_gguf_path(g), key, id, engine);
        return -1;
    }
    return 0;
}

//  An optional flag must have the value the engine always uses.
static int s_gguf_flag(const hafl_gguf_t *g, const char *key, bool engine, char *err, size_t errlen)
{
    bool value;
    if (!hafl_gguf_find(g, key))
        return 0;
    if (hafl_gguf_get_bool(g, key, &value, err, errlen) != 0)
        return -1;
    if (value != engine) {
        snprintf(err, errlen, "%s: key '%s': %s is not supported", hafl_gguf_path(g), key,
                 value ? "true" : "false");
        return -1;
    }
    return 0;
}

//  Piece `i`: for byte-level BPE the token as spelled; for SentencePiece as llama2.c's tokenizer
//  export writes it: BOS and EOS become "\n<s>\n" and "\n</s>\n", and SentencePiece's word
//  marker U+2581 a space. Writes into out (NULL: only measures) and returns the length.
static size_t s_gguf_piece(const hafl_gguf_str_t *token, int32_t id, bool spm, char *out)
{
    static const char marker[] = "\xe2\x96\x81";
    if (!spm) {
        if (out)
            memcpy(out, token->data, (size_t)token->len);
        return (size_t)token->len;
    }
    const char *special = id == HAFL_TOKEN_BOS ? "\n<s>\n" : id == HAFL_TOKEN_EOS ? "\n</s>\n" : 0;
    if (special) {
        if (out)
            memcpy(out, special, strlen(special));
        return strlen(special);
    }
    size_t n = 0;
    for (uint64_t i = 0; i < token->len; n++) {
        if (token->len - i >= 3 && memcmp(token->data + i, marker, 3) == 0) {
            if (out)
                out[n] = ' ';
            i += 3;
        } else {
            if (out)
                out[n] = token->data[i];
            i++;
        }
    }
    return n;
}

//  The pieces, their lengths and scores (scores NULL: all 0) from the vocab_size tokens, each
//  checked: a finite score, at most S_MAX_TOKEN_LENGTH bytes, no NUL.
static int s_gguf_pieces(hafl_tokenizer_t *self, const char *path, const hafl_gguf_str_t *tokens,
                         const float *scores, bool spm, char *err, size_t errlen)
{
    size_t text_bytes = 0;
    uint32_t longest = 1;
    for (int32_t i = 0; i < self->vocab_size; i++) {
        size_t n = s_gguf_piece(&tokens[i], i, spm, NULL);
        bool bad_score = scores && !isfinite(scores[i]);
        const char *fault = bad_score                ? "has a non-finite score"
                            : n > S_MAX_TOKEN_LENGTH ? "is longer than 65536 bytes"
                            : memchr(tokens[i].data, 0, tokens[i].len) ? "contains a NUL byte"
                                                                       : NULL;
        if (fault) {
            snprintf(err, errlen, "%s: key 'tokenizer.ggml.%s': token %d %s", path,
                     bad_score ? "scores" : "tokens", i, fault);
            return -1;
        }
        text_bytes += n + 1;
        longest = n > longest ? (uint32_t)n : longest;
    }
    if (!(self->text = malloc(text_bytes))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    self->max_token_length = (int)longest;
    size_t used = 0;
    for (int32_t i = 0; i < self->vocab_size; i++) {
        size_t n = s_gguf_piece(&tokens[i], i, spm, self->text + used);
        self->text[used + n] = '\0';
        self->pieces[i] = self->text + used;
        self->lengths[i] = (uint32_t)n;
        self->scores[i] = scores ? scores[i] : 0.0f;
        used += n + 1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  The tokenizer inside a GGUF file (tokenizer.ggml.model = gpt2): hafl_bpe encodes and decodes;
//  this side keeps the raw pieces (for piece, lookup and score) and the special ids.

//  An optional token id key: *id keeps its default (-1) when absent, else must be < vocab_size.
static int s_gguf_bpe_id(const hafl_gguf_t *g, const char *key, int vocab_size, int32_t *id,
                         char *err, size_t errlen)
{
    uint32_t value;
    if (!hafl_gguf_find(g, key))
        return 0;
    if (hafl_gguf_get_u32(g, key, &value, err, errlen) != 0)
        return -1;
    if (value >= (uint32_t)vocab_size) {
        snprintf(err, errlen, "%s: key '%s': %u is not below the vocabulary size %d",
                 hafl_gguf_path(g), key, value, vocab_size);
        return -1;
    }
    *id = (int32_t)value;
    return 0;
}

static int s_parse_gguf_bpe(hafl_tokenizer_t *self, const hafl_gguf_t *g, char *err, size_t errlen)
{
    const char *path = hafl_gguf_path(g);
    hafl_gguf_str_t *tokens = NULL;
    float *scores = NULL;
    uint64_t n_tokens = 0, n_scores = 0;
    int rc = -1;
    //  hafl_bpe checks the tokens (count, spelling, types), the merges and the pre-tokenizer.
    if (!(self->bpe = hafl_bpe_new(g, self->vocab_size, err, errlen)) ||
        hafl_gguf_get_strings(g, "tokenizer.ggml.tokens", &tokens, &n_tokens, err, errlen))
        goto done;
    if (hafl_gguf_find(g, "tokenizer.ggml.scores")) {
        if (hafl_gguf_get_f32s(g, "tokenizer.ggml.scores", &scores, &n_scores, err, errlen))
            goto done;
        if (n_scores != (uint64_t)self->vocab_size) {
            snprintf(err, errlen,
                     "%s: key 'tokenizer.ggml.scores': %llu entries, the model's "
                     "vocabulary has %d",
                     path, (unsigned long long)n_scores, self->vocab_size);
            goto done;
        }
    }
    self->bos = self->eos = self->eot = -1;
    if (s_gguf_bpe_id(g, "tokenizer.ggml.bos_token_id", self->vocab_size, &self->bos, err,
                      errlen) ||
        s_gguf_bpe_id(g, "tokenizer.ggml.eos_token_id", self->vocab_size, &self->eos, err,
                      errlen) ||
        s_gguf_bpe_id(g, "tokenizer.ggml.eot_token_id", self->vocab_size, &self->eot, err, errlen))
        goto done;
    //  llama.cpp's defaults when the flags are absent: BOS for Llama 3 only, never EOS.
    self->adds_bos = strcmp(hafl_bpe_pre(self->bpe), "llama-bpe") == 0;
    self->adds_eos = false;
    if ((hafl_gguf_find(g, "tokenizer.ggml.add_bos_token") &&
         hafl_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &self->adds_bos, err, errlen)) ||
        (hafl_gguf_find(g, "tokenizer.ggml.add_eos_token") &&
         hafl_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &self->adds_eos, err, errlen)))
        goto done;
    if ((self->adds_bos && self->bos < 0) || (self->adds_eos && self->eos < 0)) {
        bool b = self->adds_bos && self->bos < 0;
        snprintf(err, errlen, "%s: key 'tokenizer.ggml.add_%s_token': true, but there is no %s",
                 path, b ? "bos" : "eos",
                 b ? "tokenizer.ggml.bos_token_id" : "tokenizer.ggml.eos_token_id");
        goto done;
    }
    //  The pieces are the tokens as spelled in the file.
    rc = s_gguf_pieces(self, path, tokens, scores, false, err, errlen);
done:
    free(tokens);
    free(scores);
    return rc;
}

//  Fill self (vocab_size set, arrays allocated) from the GGUF at path.
static int s_parse_gguf(hafl_tokenizer_t *self, const char *path, char *err, size_t errlen)
{
    hafl_gguf_t *g = hafl_gguf_open(path, err, errlen);
    if (!g)
        return -1;
    hafl_gguf_str_t model, *tokens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    uint64_t n_tokens = 0, n_scores = 0, n_types = 0;
    int rc = -1;
    if (hafl_gguf_get_str(g, "tokenizer.ggml.model", &model, err, errlen) != 0)
        goto done;
    if (model.len == 4 && memcmp(model.data, "gpt2", 4) == 0) {
        rc = s_parse_gguf_bpe(self, g, err, errlen);
        goto done;
    }
    if (model.len != 5 || memcmp(model.data, "llama", 5) != 0) {
        snprintf(err, errlen,
                 "%s: key 'tokenizer.ggml.model': '%.*s' is not supported (only llama, "
                 "SentencePiece with byte fallback, and gpt2, byte-level BPE)",
                 path, (int)(model.len > 32 ? 32 : model.len), model.data);
        goto done;
    }
    if (hafl_gguf_get_strings(g, "tokenizer.ggml.tokens", &tokens, &n_tokens, err, errlen) ||
        hafl_gguf_get_f32s(g, "tokenizer.ggml.scores", &scores, &n_scores, err, errlen))
        goto done;
    if (hafl_gguf_find(g, "tokenizer.ggml.token_type") &&
        hafl_gguf_get_i32s(g, "tokenizer.ggml.token_type", &types, &n_types, err, errlen))
        goto done;
    struct {
        const char *key;
        uint64_t count;
    } counts[] = {{"tokenizer.ggml.tokens", n_tokens},
                  {"tokenizer.ggml.scores", n_scores},
                  {"tokenizer.ggml.token_type", types ? n_types : (uint64_t)self->vocab_size}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].count != (uint64_t)self->vocab_size) {
            snprintf(err, errlen, "%s: key '%s': %llu entries, the model's vocabulary has %d", path,
                     counts[i].key, (unsigned long long)counts[i].count, self->vocab_size);
            goto done;
        }
    //  The encoder and the callers hard-code these ids (hafl_tokenizer.h).
    if (s_gguf_id(g, "tokenizer.ggml.unknown_token_id", HAFL_TOKEN_UNK, err, errlen) ||
        s_gguf_id(g, "tokenizer.ggml.bos_token_id", HAFL_TOKEN_BOS, err, errlen) ||
        s_gguf_id(g, "tokenizer.ggml.eos_token_id", HAFL_TOKEN_EOS, err, errlen) ||
        s_gguf_flag(g, "tokenizer.ggml.add_bos_token", true, err, errlen) ||
        s_gguf_flag(g, "tokenizer.ggml.add_eos_token", false, err, errlen))
        goto done;
    //  Byte fallback maps byte b to id b + 3, so those ids must be the 256 byte pieces.
    for (int b = 0; b < 256; b++) {
        int32_t id = HAFL_TOKEN_BYTE0 + b;
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        if (tokens[id].len != 6 || memcmp(tokens[id].data, want, 6) != 0 ||
            (types && types[id] != S_GGUF_TYPE_BYTE)) {
            snprintf(err, errlen,
                     "%s: key 'tokenizer.ggml.tokens': token %d is not the byte piece %s of type "
                     "byte (byte fallback needs ids 3..258 to be <0x00>..<0xFF>)",
                     path, id, want);
            goto done;
        }
    }
    rc = s_gguf_pieces(self, path, tokens, scores, true, err, errlen);
done:
    free(tokens);
    free(scores);
    free(types);
    hafl_gguf_destroy(&g);
    return rc;
}

hafl_tokenizer_t *hafl_tokenizer_load(const char *path, int vocab_size, char *err, size_t errlen)
{
    if (vocab_size < HAFL_TOKEN_BYTE0 + 256 || vocab_size > (1 << 20)) {
        snprintf(err, errlen, "%s: vocab size %d must be in %d..%d", path, vocab_size,
                 HAFL_TOKEN_BYTE0 + 256, 1 << 20);
        return NULL;
    }
    hafl_tokenizer_t *self = calloc(1, sizeof(hafl_tokenizer_t));
    uint8_t *data = NULL;
    FILE *file = NULL;
    if (!self)
        goto nomem;
    self->vocab_size = vocab_size;
    //  llama2.c's conventions; a GGUF gpt2 tokenizer replaces them with its metadata's.
    self->bos = HAFL_TOKEN_BOS;
    self->eos = HAFL_TOKEN_EOS;
    self->eot = -1;
    self->adds_bos = true;
    self->adds_eos = false;
    self->pieces = calloc((size_t)vocab_size, sizeof(char *));
    self->lengths = calloc((size_t)vocab_size, sizeof(uint32_t));
    self->scores = calloc((size_t)vocab_size, sizeof(float));
    self->sorted = calloc((size_t)vocab_size, sizeof(int32_t));
    if (!self->pieces || !self->lengths || !self->scores || !self->sorted)
        goto nomem;
    for (int b = 0; b < 256; b++)
        self->bytes[b][0] = (char)b, self->bytes[b][1] = '\0';

    file = fopen(path, "rb");
    struct stat st;
    if (!file || fstat(fileno(file), &st) != 0) {
        snprintf(err, errlen, "%s: cannot open tokenizer: %s", path, strerror(errno));
        goto fail;
    }
    //  A GGUF model file carries its tokenizer in its metadata (and may be far above the cap).
    char magic[4];
    if (S_ISREG(st.st_mode) && st.st_size >= 4 && fread(magic, 1, 4, file) == 4 &&
        memcmp(magic, "GGUF", 4) == 0) {
        fclose(file);
        file = NULL;
        if (s_parse_gguf(self, path, err, errlen) != 0)
            goto fail;
        if (s_sort(self) != 0)
            goto nomem;
        return self;
    }
    rewind(file);
    if (!S_ISREG(st.st_mode) || st.st_size > S_MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path, S_MAX_FILE_BYTES);
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    data = malloc(size ? size : 1);
    if (!data)
        goto nomem;
    if (fread(data, 1, size, file) != size) {
        snprintf(err, errlen, "%s: short read (file changed while loading?)", path);
        goto fail;
    }
    if (s_parse(self, path, data, size, err, errlen) != 0)
        goto fail;
    if (s_sort(self) != 0)
        goto nomem;
    free(data);
    fclose(file);
    return self;
nomem:
    snprintf(err, errlen, "%s: out of memory", path);
fail:
    free(data);
    if (file)
        fclose(file);
    hafl_tokenizer_destroy(&self);
    return NULL;
}

void hafl_tokenizer_destroy(hafl_tokenizer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_tokenizer_t *self = *self_p;
    free(self->pieces);
    free(self->lengths);
    free(self->scores);
    free(self->sorted);
    free(self->text);
    hafl_bpe_destroy(&self->bpe);
    free(self);
    *self_p = NULL;
}

int hafl_tokenizer_vocab_size(const hafl_tokenizer_t *self)
{
    return self->vocab_size;
}

const char *hafl_tokenizer_piece(const hafl_tokenizer_t *self, int32_t id)
{
    return id >= 0 && id < self->vocab_size ? self->pieces[id] : NULL;
}

int32_t hafl_tokenizer_bos(const hafl_tokenizer_t *self)
{
    return self->bos;
}

int32_t hafl_tokenizer_eos(const hafl_tokenizer_t *self)
{
    return self->eos;
}

bool hafl_tokenizer_adds_bos(const hafl_tokenizer_t *self)
{
    return self->adds_bos;
}

bool hafl_tokenizer_adds_eos(const hafl_tokenizer_t *self)
{
    return self->adds_eos;
}

bool hafl_tokenizer_rules_digest(const hafl_tokenizer_t *self, uint8_t digest[32])
{
    if (!self->bpe)
        return false;
    uint8_t rules[32];
    hafl_bpe_rules_digest(self->bpe, rules);
    //  little-endian ids and flags after the BPE rules
    uint8_t tail[14];
    int32_t ids[3] = {self->bos, self->eos, self->eot};
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 4; b++)
            tail[4 * k + b] = (uint8_t)((uint32_t)ids[k] >> (8 * b));
    tail[12] = self->adds_bos, tail[13] = self->adds_eos;
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, rules, sizeof rules);
    crypto_hash_sha256_update(&h, tail, sizeof tail);
    crypto_hash_sha256_final(&h, digest);
    return true;
}

bool hafl_tokenizer_ends_text(const hafl_tokenizer_t *self, int32_t id)
{
    if (!self->bpe)
        return id == HAFL_TOKEN_BOS; //  run.c's rule: stories are separated by BOS
    return id >= 0 && (id == self->bos || id == self->eos || id == self->eot);
}

float hafl_tokenizer_score(const hafl_tokenizer_t *self, int32_t id)
{
    return id >= 0 && id < self->vocab_size ? self->scores[id] : 0.0f;
}

int32_t hafl_tokenizer_lookup(const hafl_tokenizer_t *self, const char *str, size_t len)
{
    //  Lower bound in (piece, id) order, so among equal pieces the lowest id is found.
    size_t lo = 0, hi = (size_t)self->vocab_size;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int32_t id = self->sorted[mid];
        if (s_piece_cmp(self->pieces[id], self->lengths[id], str, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < (size_t)self->vocab_size) {
        int32_t id = self->sorted[lo];
        if (s_piece_cmp(self->pieces[id], self->lengths[id], str, len) == 0)
            return id;
    }
    return -1;
}

//  A candidate merge of node left with node right into piece id.
typedef struct {
    float score;
    uint32_t left, right;
    uint32_t left_version, right_version;
    int32_t id;
} s_pair_t;

//  True when a should be merged before b.
static inline bool s_pair_before(const s_pair_t *a, const s_pair_t *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    s_pair_t *items;
    size_t count;
} s_heap_t;

static void s_heap_push(s_heap_t *heap, s_pair_t pair)
{
    size_t i = heap->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!s_pair_before(&pair, &heap->items[parent]))
            break;
        heap->items[i] = heap->items[parent];
        i = parent;
    }
    heap->items[i] = pair;
}

static s_pair_t s_heap_pop(s_heap_t *heap)
{
    s_pair_t top = heap->items[0];
    s_pair_t last = heap->items[--heap->count];
    size_t i = 0, n = heap->count;
    while (2 * i + 1 < n) {
        size_t child = 2 * i + 1;
        if (child + 1 < n && s_pair_before(&heap->items[child + 1], &heap->items[child]))
            child++;
        if (!s_pair_before(&heap->items[child], &last))
            break;
        heap->items[i] = heap->items[child];
        i = child;
    }
    if (n > 0)
        heap->items[i] = last;
    return top;
}

typedef struct {
    const hafl_tokenizer_t *tokenizer;
    int32_t *ids;      //  [n] current id of each node
    uint32_t *next;    //  [n] next live node, n at the end
    uint32_t *prev;    //  [n] previous live node, UINT32_MAX at the start
    uint32_t *version; //  [n] bumped when a node's id changes or it dies
    bool *alive;       //  [n]
    uint32_t n;
    char *scratch; //  [2 * max_token_length + 1]
    s_heap_t heap;
} s_merger_t;

//  Push the pair (left, right) if their concatenation is a piece that may merge.
static void s_merger_consider(s_merger_t *m, uint32_t left, uint32_t right)
{
    const hafl_tokenizer_t *t = m->tokenizer;
    int32_t a = m->ids[left], b = m->ids[right];
    size_t alen = t->lengths[a], blen = t->lengths[b];
    if (alen + blen > (size_t)t->max_token_length)
        return; //  longer than every piece
    memcpy(m->scratch, t->pieces[a], alen);
    memcpy(m->scratch + alen, t->pieces[b], blen);
    int32_t id = hafl_tokenizer_lookup(t, m->scratch, alen + blen);
    if (id < 0 || !(t->scores[id] > S_MIN_MERGE_SCORE))
        return;
    s_heap_push(&m->heap,
                (s_pair_t){t->scores[id], left, right, m->version[left], m->version[right], id});
}

//  Merge tokens[0..*count) in place by llama2.c's rule. 0, or -1 on no memory.
static int s_merge(const hafl_tokenizer_t *self, int32_t *tokens, size_t *count)
{
    if (*count < 2)
        return 0;
    s_merger_t m = {.tokenizer = self, .n = (uint32_t)*count};
    size_t n = *count;
    m.next = malloc(n * sizeof(uint32_t));
    m.prev = malloc(n * sizeof(uint32_t));
    m.version = calloc(n, sizeof(uint32_t));
    m.alive = malloc(n * sizeof(bool));
    m.scratch = malloc(2 * (size_t)self->max_token_length + 1);
    //  n - 1 initial pairs plus at most two new pairs per merge, and at most n - 1 merges.
    m.heap.items = malloc(3 * n * sizeof(s_pair_t));
    int rc = -1;
    if (!m.next || !m.prev || !m.version || !m.alive || !m.scratch || !m.heap.items)
        goto done;
    m.ids = tokens;
    for (uint32_t i = 0; i < m.n; i++) {
        m.next[i] = i + 1;
        m.prev[i] = i == 0 ? UINT32_MAX : i - 1;
        m.alive[i] = true;
    }
    for (uint32_t i = 0; i + 1 < m.n; i++)
        s_merger_consider(&m, i, i + 1);
    while (m.heap.count > 0) {
        s_pair_t pair = s_heap_pop(&m.heap);
        uint32_t l = pair.left, r = pair.right;
        if (!m.alive[l] || !m.alive[r] || m.next[l] != r || m.version[l] != pair.left_version ||
            m.version[r] != pair.right_version)
            continue; //  stale: one side changed since this pair was pushed
        m.ids[l] = pair.id;
        m.version[l]++;
        m.alive[r] = false;
        m.version[r]++;
        m.next[l] = m.next[r];
        if (m.next[r] < m.n)
            m.prev[m.next[r]] = l;
        if (m.prev[l] != UINT32_MAX)
            s_merger_consider(&m, m.prev[l], l);
        if (m.next[l] < m.n)
            s_merger_consider(&m, l, m.next[l]);
    }
    size_t out = 0;
    for (uint32_t i = 0; i < m.n; i = m.next[i])
        tokens[out++] = m.ids[i];
    *count = out;
    rc = 0;
done:
    free(m.next);
    free(m.prev);
    free(m.version);
    free(m.alive);
    free(m.scratch);
    free(m.heap.items);
    return rc;
}

int hafl_tokenizer_encode(const hafl_tokenizer_t *self, const char *text, bool bos, bool eos,
                          int32_t *tokens, size_t capacity, size_t *n_tokens)
{
    size_t text_len = strlen(text);
    if (capacity < hafl_tokenizer_encode_capacity(text_len))
        return -1;
    size_t n = 0;
    if (self->bpe) {
        size_t m;
        if (bos && self->bos >= 0)
            tokens[n++] = self->bos;
        if (hafl_bpe_encode(self->bpe, text, text_len, tokens + n, capacity - n, &m) != 0)
            return -1;
        n += m;
        if (eos && self->eos >= 0)
            tokens[n++] = self->eos;
        *n_tokens = n;
        return 0;
    }
    if (bos)
        tokens[n++] = HAFL_TOKEN_BOS;
    if (text_len > 0) {
        //  sentencepiece's dummy prefix: the text is encoded as if it began with a space.
        int32_t space = hafl_tokenizer_lookup(self, " ", 1);
        tokens[n++] = space >= 0 ? space : HAFL_TOKEN_BYTE0 + ' ';
    }
    //  Cut into code points: a byte that is not a continuation (10xxxxxx) starts a new one,
    //  which ends before the next non-continuation byte or after four bytes.
    const unsigned char *c = (const unsigned char *)text;
    char point[4];
    size_t point_len = 0;
    for (size_t i = 0; i < text_len; i++) {
        if ((c[i] & 0xC0) != 0x80)
            point_len = 0;
        point[point_len++] = (char)c[i];
        if ((c[i + 1] & 0xC0) == 0x80 && point_len < 4)
            continue;
        int32_t id = hafl_tokenizer_lookup(self, point, point_len);
        if (id >= 0)
            tokens[n++] = id;
        else
            for (size_t j = 0; j < point_len; j++)
                tokens[n++] = HAFL_TOKEN_BYTE0 + (unsigned char)point[j];
        point_len = 0;
    }
    //  BOS and the prefix take part in merging exactly as in llama2.c.
    if (s_merge(self, tokens, &n) != 0)
        return -1;
    if (eos)
        tokens[n++] = HAFL_TOKEN_EOS;
    *n_tokens = n;
    return 0;
}

static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

const char *hafl_tokenizer_decode(const hafl_tokenizer_t *self, int32_t prev_token, int32_t token)
{
    if (token < 0 || token >= self->vocab_size)
        return NULL;
    if (self->bpe)
        return hafl_bpe_decode(self->bpe, token, NULL);
    const char *piece = self->pieces[token];
    if (prev_token == HAFL_TOKEN_BOS && piece[0] == ' ')
        piece++;
    if (strncmp(piece, "<0x", 3) == 0 && s_hex(piece[3]) >= 0 && s_hex(piece[4]) >= 0 &&
        piece[5] == '>' && piece[6] == '\0')
        return self->bytes[s_hex(piece[3]) * 16 + s_hex(piece[4])];
    return piece;
}

void hafl_tokenizer_print_piece(FILE *out, const char *piece)
{
    if (!piece || piece[0] == '\0')
        return;
    if (piece[1] == '\0') {
        unsigned char b = (unsigned char)piece[0];
        bool printable = b >= 0x20 && b < 0x7F;
        bool space = b == ' ' || (b >= '\t' && b <= '\r');
        if (!printable && !space)
            return;
    }
    fputs(piece, out);
}

void hafl_tokenizer_print_token(const hafl_tokenizer_t *self, FILE *out, int32_t prev_token,
                                int32_t token)
{
    if (!self->bpe) {
        hafl_tokenizer_print_piece(out, hafl_tokenizer_decode(self, prev_token, token));
        return;
    }
    size_t len;
    const char *bytes = hafl_bpe_decode(self->bpe, token, &len); //  NULL out of range
    if (bytes && len)
        fwrite(bytes, 1, len, out);
}
