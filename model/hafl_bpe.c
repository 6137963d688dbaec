/*  hafl_bpe: loading and running byte-level BPE. See hafl_bpe.h for the contract.

    Two open-addressing hash tables (linear probing, power-of-two sizes kept at most half full)
    hold what encoding looks up: normal tokens by their decoded bytes, and merges by the pair of
    token ids (value: rank and merged id). A pre-token is merged on a doubly linked list over its
    byte positions with a min-heap of candidate pairs keyed by (rank, left position); the left
    position of a node is the position of its first byte, so ties go to the leftmost pair. A
    popped candidate is stale when either side changed after it was pushed, which the recorded
    ids reveal: a merge always makes a longer token, so a node never gets an old id back, and a
    node that dies gets id -1.
*/
#define PCRE2_CODE_UNIT_WIDTH 8
#include "hafl_bpe.h"

#include <pcre2.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The byte alphabet uses code points up to U+0143.
#define S_ALPHABET 0x144

//  The patterns. Whitespace is Unicode White_Space as a class body (hafl_bpe.h says why not
//  \s); the contractions spell both cases out.
#define S_WS           "\\t-\\r\\x{85}\\p{Z}"
#define S_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define S_SPACES       "[" S_WS "]+(?![^" S_WS "])|[" S_WS "]+"
#define S_LLAMA3_TAIL  "| ?[^" S_WS "\\p{L}\\p{N}]+[\\r\\n]*|[" S_WS "]*[\\r\\n]+|" S_SPACES
#define S_LLAMA3       S_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}" S_LLAMA3_TAIL
#define S_QWEN2        S_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" S_LLAMA3_TAIL
#define S_GPT2         "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" S_WS "\\p{L}\\p{N}]+|" S_SPACES

typedef struct {
    const char *name;      //  as in tokenizer.ggml.pre
    const char *canonical; //  what hafl_bpe_pre reports
    const char *pattern;
    bool ignore_merges;
} s_pre_t;

//  The names llama.cpp gives these pre-tokenizers.
static const s_pre_t s_pres[] = {
    {"llama-bpe", "llama-bpe", S_LLAMA3, true}, {"llama3", "llama-bpe", S_LLAMA3, true},
    {"llama-v3", "llama-bpe", S_LLAMA3, true},  {"qwen2", "qwen2", S_QWEN2, false},
    {"gpt-2", "gpt-2", S_GPT2, false},          {"default", "gpt-2", S_GPT2, false},
};

typedef struct {
    int32_t left, right; //  token ids; left -1 marks an empty slot
    int32_t rank;
    int32_t merged;
} s_merge_t;

struct _hafl_bpe_t {
    int32_t n; //  vocabulary size
    const s_pre_t *pre;
    pcre2_code *regex;
    pcre2_match_context *limits; //  no backtracking limit (see s_load_pre)
    uint8_t *types;              //  [n] HAFL_BPE_TYPE_*
    char *text;                  //  the decoded bytes of every token, each followed by a NUL
    size_t *offsets;             //  [n + 1] token i is text[offsets[i] .. offsets[i + 1] - 1)
    int32_t byte_token[256];
    int32_t *vocab_slots; //  [vocab_mask + 1] normal token ids by their bytes, -1 empty
    size_t vocab_mask;
    s_merge_t *merge_slots; //  [merge_mask + 1]
    size_t merge_mask;
};

//  ---------------------------------------------------------------------------------------------
//  Helpers

static void s_fail(const hafl_gguf_t *g, char *err, size_t errlen, const char *fmt, ...)
{
    const char *path = hafl_gguf_path(g);
    int used = path ? snprintf(err, errlen, "%s: ", path) : 0;
    if (used < 0 || (size_t)used >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - (size_t)used, fmt, ap);
    va_end(ap);
}

//  Up to 48 bytes of s for an error line: printable ASCII as is, other bytes as \xHH, "..."
//  when cut, so a hostile string cannot break the one-line error.
static const char *s_quote(char out[256], const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < 48; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, 5, "\\x%02X", c);
    }
    if (len > 48)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = '\0';
    return out;
}

static uint64_t s_hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; //  FNV-1a
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t s_hash_pair(int32_t left, int32_t right)
{
    uint64_t x = (uint64_t)(uint32_t)left << 32 | (uint32_t)right; //  splitmix64's finaliser
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

//  A zeroed table of at least 2 * count slots of slot_size bytes (a power of two, so *mask, the
//  slot count less one, wraps a probe); NULL when out of memory.
static void *s_table_new(size_t count, size_t slot_size, size_t *mask)
{
    size_t size = 16;
    while (size < 2 * count) {
        if (size > SIZE_MAX / 4)
            return NULL;
        size *= 2;
    }
    *mask = size - 1;
    return calloc(size, slot_size);
}

//  Length of the valid UTF-8 sequence at s (1..4), or 0 when s[0] does not start one: no
//  overlong forms, no surrogates, nothing above U+10FFFF (what PCRE2 accepts as UTF-8).
static size_t s_utf8_char(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; //  allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (left < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

//  The code point of the valid sequence of n bytes at s.
static uint32_t s_utf8_decode(const unsigned char *s, size_t n)
{
    static const unsigned char lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = s[0] & lead_mask[n];
    for (size_t i = 1; i < n; i++)
        cp = cp << 6 | (s[i] & 0x3F);
    return cp;
}

//  GPT-2's bytes_to_unicode, inverted: the byte each code point below S_ALPHABET spells, or -1.
static void s_alphabet(int16_t byte_of[S_ALPHABET])
{
    for (int cp = 0; cp < S_ALPHABET; cp++)
        byte_of[cp] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool itself = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        byte_of[itself ? b : 0x100 + extra++] = (int16_t)b;
    }
}

//  Decode a token spelled in the byte alphabet into out (at least len bytes). Returns the byte
//  count, or -1 with the offending code point in *bad (UINT32_MAX for invalid UTF-8).
static long s_unspell(const int16_t byte_of[S_ALPHABET], const char *s, size_t len, char *out,
                      uint32_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = s_utf8_char(u + i, len - i);
        if (n == 0) {
            *bad = UINT32_MAX;
            return -1;
        }
        uint32_t cp = s_utf8_decode(u + i, n);
        if (cp >= S_ALPHABET || byte_of[cp] < 0) {
            *bad = cp;
            return -1;
        }
        out[o++] = (char)byte_of[cp];
        i += n;
    }
    return (long)o;
}

//  The decoded bytes of token id (in range) and their count.
static const char *s_token_bytes(const hafl_bpe_t *self, int32_t id, size_t *len)
{
    *len = self->offsets[id + 1] - self->offsets[id] - 1;
    return self->text + self->offsets[id];
}

//  The slot of the normal token spelling these bytes, or the empty slot (-1) where it would go.
static int32_t *s_vocab_slot(const hafl_bpe_t *self, const char *bytes, size_t len)
{
    size_t i = s_hash_bytes(bytes, len) & self->vocab_mask;
    for (int32_t id; (id = self->vocab_slots[i]) >= 0; i = (i + 1) & self->vocab_mask) {
        size_t id_len;
        const char *id_bytes = s_token_bytes(self, id, &id_len);
        if (id_len == len && memcmp(id_bytes, bytes, len) == 0)
            break;
    }
    return &self->vocab_slots[i];
}

static int32_t s_vocab_find(const hafl_bpe_t *self, const char *bytes, size_t len)
{
    return *s_vocab_slot(self, bytes, len);
}

//  The slot of the merge of (left, right), or the empty slot (left -1) where it would go.
static s_merge_t *s_merge_slot(const hafl_bpe_t *self, int32_t left, int32_t right)
{
    size_t i = s_hash_pair(left, right) & self->merge_mask;
    while (self->merge_slots[i].left >= 0 &&
           (self->merge_slots[i].left != left || self->merge_slots[i].right != right))
        i = (i + 1) & self->merge_mask;
    return &self->merge_slots[i];
}

//  ---------------------------------------------------------------------------------------------
//  Loading

//  types[] and the decoded text of every token.
static int s_load_tokens(hafl_bpe_t *self, const hafl_gguf_t *g, const int16_t byte_of[], char *err,
                         size_t errlen)
{
    static const char tokens_key[] = "tokenizer.ggml.tokens";
    static const char types_key[] = "tokenizer.ggml.token_type";
    hafl_gguf_str_t *tokens = NULL;
    int32_t *types = NULL;
    uint64_t n_tokens = 0, n_types = 0;
    char q[256];
    int rc = -1;
    if (hafl_gguf_get_strings(g, tokens_key, &tokens, &n_tokens, err, errlen) != 0)
        goto done;
    if (n_tokens != (uint64_t)self->n) {
        s_fail(g, err, errlen, "key '%s': %llu entries, the model's vocabulary has %d", tokens_key,
               (unsigned long long)n_tokens, self->n);
        goto done;
    }
    if (hafl_gguf_find(g, types_key)) {
        if (hafl_gguf_get_i32s(g, types_key, &types, &n_types, err, errlen) != 0)
            goto done;
        if (n_types != (uint64_t)self->n) {
            s_fail(g, err, errlen, "key '%s': %llu entries, the model's vocabulary has %d",
                   types_key, (unsigned long long)n_types, self->n);
            goto done;
        }
    }
    //  Strings are views into the file, so their total is bounded by its size.
    size_t total = 0;
    for (int32_t i = 0; i < self->n; i++)
        total += (size_t)tokens[i].len + 1;
    self->types = malloc((size_t)self->n);
    self->offsets = malloc(((size_t)self->n + 1) * sizeof(size_t));
    self->text = malloc(total);
    if (!self->types || !self->offsets || !self->text) {
        s_fail(g, err, errlen, "out of memory for %d tokens", self->n);
        goto done;
    }
    size_t used = 0;
    for (int32_t i = 0; i < self->n; i++) {
        int32_t type = types ? types[i] : HAFL_BPE_TYPE_NORMAL;
        if (type < HAFL_BPE_TYPE_NORMAL || type > HAFL_BPE_TYPE_BYTE) {
            s_fail(g, err, errlen, "key '%s': token %d has type %d (must be 1..6)", types_key, i,
                   type);
            goto done;
        }
        self->types[i] = (uint8_t)type;
        self->offsets[i] = used;
        const char *s = tokens[i].data;
        size_t len = (size_t)tokens[i].len;
        if (type != HAFL_BPE_TYPE_NORMAL) {
            memcpy(self->text + used, s, len);
            used += len;
        } else {
            uint32_t bad;
            long n = len ? s_unspell(byte_of, s, len, self->text + used, &bad) : -1;
            if (n < 0) {
                if (len == 0)
                    s_fail(g, err, errlen, "key '%s': token %d is empty", tokens_key, i);
                else if (bad == UINT32_MAX)
                    s_fail(g, err, errlen, "key '%s': token %d ('%s') is not valid UTF-8",
                           tokens_key, i, s_quote(q, s, len));
                else
                    s_fail(g, err, errlen,
                           "key '%s': token %d ('%s') has U+%04X, outside the byte-level "
                           "alphabet of normal tokens",
                           tokens_key, i, s_quote(q, s, len), bad);
                goto done;
            }
            used += (size_t)n;
        }
        self->text[used++] = '\0';
    }
    self->offsets[self->n] = used;
    rc = 0;
done:
    free(tokens);
    free(types);
    return rc;
}

//  The table of normal tokens by bytes, and the single-byte tokens.
static int s_index_tokens(hafl_bpe_t *self, const hafl_gguf_t *g, char *err, size_t errlen)
{
    static const char tokens_key[] = "tokenizer.ggml.tokens";
    if (!(self->vocab_slots = s_table_new((size_t)self->n, sizeof(int32_t), &self->vocab_mask))) {
        s_fail(g, err, errlen, "out of memory for %d tokens", self->n);
        return -1;
    }
    memset(self->vocab_slots, 0xFF, (self->vocab_mask + 1) * sizeof(int32_t)); //  all -1
    for (int32_t id = 0; id < self->n; id++) {
        if (self->types[id] != HAFL_BPE_TYPE_NORMAL)
            continue;
        size_t len;
        const char *bytes = s_token_bytes(self, id, &len);
        int32_t *slot = s_vocab_slot(self, bytes, len);
        if (*slot >= 0) {
            s_fail(g, err, errlen, "key '%s': token %d spells the same bytes as token %d",
                   tokens_key, id, *slot);
            return -1;
        }
        *slot = id;
    }
    for (int b = 0; b < 256; b++) {
        char byte = (char)b;
        if ((self->byte_token[b] = s_vocab_find(self, &byte, 1)) < 0) {
            s_fail(g, err, errlen,
                   "key '%s': no normal token for the byte 0x%02X (byte-level BPE needs all 256)",
                   tokens_key, b);
            return -1;
        }
    }
    return 0;
}

static int s_load_merges(hafl_bpe_t *self, const hafl_gguf_t *g, const int16_t byte_of[], char *err,
                         size_t errlen)
{
    static const char key[] = "tokenizer.ggml.merges";
    hafl_gguf_str_t *merges = NULL;
    uint64_t count = 0;
    char *scratch = NULL, q[256], q2[256];
    int rc = -1;
    if (hafl_gguf_get_strings(g, key, &merges, &count, err, errlen) != 0)
        goto done;
    if (count > HAFL_BPE_MAX_MERGES) {
        s_fail(g, err, errlen, "key '%s': %llu entries, more than the %d allowed", key,
               (unsigned long long)count, HAFL_BPE_MAX_MERGES);
        goto done;
    }
    size_t longest = 1;
    for (uint64_t r = 0; r < count; r++)
        longest = merges[r].len > longest ? (size_t)merges[r].len : longest;
    //  Zeroed, then marked empty, so every byte of the table is set (the rules digest hashes it).
    self->merge_slots = s_table_new((size_t)count, sizeof(s_merge_t), &self->merge_mask);
    scratch = malloc(longest);
    if (!self->merge_slots || !scratch) {
        s_fail(g, err, errlen, "out of memory for %llu merges", (unsigned long long)count);
        goto done;
    }
    for (size_t i = 0; i <= self->merge_mask; i++)
        self->merge_slots[i].left = -1;
    for (uint64_t r = 0; r < count; r++) {
        const char *s = merges[r].data;
        size_t len = (size_t)merges[r].len;
        const char *space = memchr(s, ' ', len);
        size_t cut = space ? (size_t)(space - s) : 0;
        if (!space || cut == 0 || cut + 1 == len || memchr(space + 1, ' ', len - cut - 1)) {
            s_fail(g, err, errlen,
                   "key '%s': merge %llu ('%s') is not two tokens separated by one space", key,
                   (unsigned long long)r, s_quote(q, s, len));
            goto done;
        }
        //  Both halves decoded back to back in scratch: the merged token's bytes.
        int32_t parts[2];
        size_t at = 0;
        for (int k = 0; k < 2; k++) {
            const char *part = k ? space + 1 : s;
            size_t part_len = k ? len - cut - 1 : cut;
            uint32_t bad;
            long n = s_unspell(byte_of, part, part_len, scratch + at, &bad);
            parts[k] = n < 0 ? -1 : s_vocab_find(self, scratch + at, (size_t)n);
            if (parts[k] < 0) {
                s_fail(g, err, errlen, "key '%s': merge %llu ('%s'): '%s' is not a normal token",
                       key, (unsigned long long)r, s_quote(q, s, len), s_quote(q2, part, part_len));
                goto done;
            }
            at += (size_t)n;
        }
        int32_t merged = s_vocab_find(self, scratch, at);
        if (merged < 0) {
            s_fail(g, err, errlen,
                   "key '%s': merge %llu ('%s'): the merged token is not a normal token", key,
                   (unsigned long long)r, s_quote(q, s, len));
            goto done;
        }
        s_merge_t *slot = s_merge_slot(self, parts[0], parts[1]);
        if (slot->left >= 0) {
            s_fail(g, err, errlen, "key '%s': merge %llu ('%s') repeats merge %d", key,
                   (unsigned long long)r, s_quote(q, s, len), slot->rank);
            goto done;
        }
        *slot = (s_merge_t){parts[0], parts[1], (int32_t)r, merged};
    }
    rc = 0;
done:
    free(merges);
    free(scratch);
    return rc;
}

static int s_load_pre(hafl_bpe_t *self, const hafl_gguf_t *g, char *err, size_t errlen)
{
    static const char key[] = "tokenizer.ggml.pre";
    hafl_gguf_str_t name = {"default", 7};
    char q[256];
    if (hafl_gguf_find(g, key) && hafl_gguf_get_str(g, key, &name, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < sizeof s_pres / sizeof s_pres[0]; i++)
        if (strlen(s_pres[i].name) == name.len && memcmp(s_pres[i].name, name.data, name.len) == 0)
            self->pre = &s_pres[i];
    if (!self->pre) {
        s_fail(g, err, errlen,
               "key '%s': '%s' is not supported (known: llama-bpe, llama3, llama-v3, qwen2, "
               "gpt-2, default)",
               key, s_quote(q, name.data, (size_t)name.len));
        return -1;
    }
    int code;
    PCRE2_SIZE offset;
    self->regex = pcre2_compile((PCRE2_SPTR)self->pre->pattern, PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP, &code, &offset, NULL);
    if (!self->regex) {
        PCRE2_UCHAR message[160];
        pcre2_get_error_message(code, message, sizeof message);
        s_fail(g, err, errlen, "key '%s': the %s pattern does not compile at %zu: %s", key,
               self->pre->canonical, (size_t)offset, (const char *)message);
        return -1;
    }
    //  JIT is only a speed-up: without it (or when it fails) the interpreter runs.
    (void)pcre2_jit_compile(self->regex, PCRE2_JIT_COMPLETE);
    //  A whitespace run costs one backtracking step per character (\s*[\r\n]+ gives it back
    //  character by character), so PCRE2's default limit of 10 million would refuse a run of
    //  10 MB; the patterns' work is linear in the text, so no limit is needed.
    if (!(self->limits = pcre2_match_context_create(NULL)) ||
        pcre2_set_match_limit(self->limits, UINT32_MAX) != 0 ||
        pcre2_set_depth_limit(self->limits, UINT32_MAX) != 0) {
        s_fail(g, err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

hafl_bpe_t *hafl_bpe_new(const hafl_gguf_t *gguf, int vocab_size, char *err, size_t errlen)
{
    if (vocab_size < 256 || vocab_size > INT32_MAX - 1) {
        s_fail(gguf, err, errlen, "vocab size %d is not in 256..%d", vocab_size, INT32_MAX - 1);
        return NULL;
    }
    hafl_bpe_t *self = calloc(1, sizeof(hafl_bpe_t));
    if (!self) {
        s_fail(gguf, err, errlen, "out of memory");
        return NULL;
    }
    self->n = vocab_size;
    int16_t byte_of[S_ALPHABET];
    s_alphabet(byte_of);
    if (s_load_pre(self, gguf, err, errlen) || s_load_tokens(self, gguf, byte_of, err, errlen) ||
        s_index_tokens(self, gguf, err, errlen) || s_load_merges(self, gguf, byte_of, err, errlen))
        hafl_bpe_destroy(&self);
    return self;
}

void hafl_bpe_destroy(hafl_bpe_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_bpe_t *self = *self_p;
    pcre2_code_free(self->regex);
    pcre2_match_context_free(self->limits);
    free(self->types);
    free(self->text);
    free(self->offsets);
    free(self->vocab_slots);
    free(self->merge_slots);
    free(self);
    *self_p = NULL;
}

const char *hafl_bpe_pre(const hafl_bpe_t *self)
{
    return self->pre->canonical;
}

void hafl_bpe_rules_digest(const hafl_bpe_t *self, uint8_t digest[32])
{
    //  The merge table is filled in rank order from the file, so equal merge lists give equal
    //  tables, slot by slot; s_merge_t is four int32 with no padding.
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)self->pre->canonical,
                              strlen(self->pre->canonical) + 1);
    crypto_hash_sha256_update(&h, self->types, (size_t)self->n);
    crypto_hash_sha256_update(&h, (const uint8_t *)self->merge_slots,
                              (self->merge_mask + 1) * sizeof(s_merge_t));
    crypto_hash_sha256_final(&h, digest);
}

int hafl_bpe_type(const hafl_bpe_t *self, int32_t id)
{
    return id >= 0 && id < self->n ? self->types[id] : 0;
}

const char *hafl_bpe_decode(const hafl_bpe_t *self, int32_t id, size_t *len)
{
    if (id < 0 || id >= self->n)
        return NULL;
    size_t n;
    const char *bytes = s_token_bytes(self, id, &n);
    if (len)
        *len = n;
    return bytes;
}

//  ---------------------------------------------------------------------------------------------
//  Pre-tokenizing

typedef struct {
    const hafl_bpe_t *bpe;
    pcre2_match_data *match;
    const unsigned char *text;
    size_t len;
    size_t pos;                //  where the next pre-token starts
    size_t seg_start, seg_end; //  the run of valid UTF-8 the pattern sees
    uint32_t no_jit;           //  PCRE2_NO_JIT once the JIT stack ran out
} s_cutter_t;

//  A cutter over len bytes at text: 0, or -1 on no memory. s_cutter_end frees it.
static int s_cutter_start(s_cutter_t *c, const hafl_bpe_t *bpe, const char *text, size_t len)
{
    *c = (s_cutter_t){.bpe = bpe, .text = (const unsigned char *)text, .len = len};
    c->match = pcre2_match_data_create_from_pattern(bpe->regex, NULL);
    return c->match ? 0 : -1;
}

static void s_cutter_end(s_cutter_t *c)
{
    pcre2_match_data_free(c->match);
    c->match = NULL;
}

//  The next pre-token [*start, *end): 1, or 0 at the end of the text, or -1 when the regex
//  engine fails.
static int s_cutter_next(s_cutter_t *c, size_t *start, size_t *end)
{
    if (c->pos >= c->len)
        return 0;
    if (c->pos >= c->seg_end) {
        size_t at = c->pos, n;
        while (at < c->len && (n = s_utf8_char(c->text + at, c->len - at)) > 0)
            at += n;
        if (at == c->pos) { //  a byte that starts no valid sequence stands alone
            *start = c->pos;
            *end = ++c->pos;
            return 1;
        }
        c->seg_start = c->pos;
        c->seg_end = at;
    }
    int rc;
    for (;;) {
        rc = pcre2_match(c->bpe->regex, c->text + c->seg_start, c->seg_end - c->seg_start,
                         c->pos - c->seg_start, PCRE2_NO_UTF_CHECK | c->no_jit, c->match,
                         c->bpe->limits);
        if (rc != PCRE2_ERROR_JIT_STACKLIMIT || c->no_jit)
            break;
        c->no_jit = PCRE2_NO_JIT;
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
        *start = c->pos;
        *end = c->pos = c->seg_end;
        return 1;
    }
    if (rc < 0)
        return -1;
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->match);
    size_t from = c->seg_start + ov[0], to = c->seg_start + ov[1];
    if (from > c->pos) { //  text the pattern skipped; the match is found again next call
        *start = c->pos;
        *end = c->pos = from;
        return 1;
    }
    if (to == from) //  an empty match (none of the patterns has one): take one character
        to += s_utf8_char(c->text + from, c->seg_end - from);
    *start = from;
    *end = c->pos = to;
    return 1;
}

int hafl_bpe_split(const hafl_bpe_t *self, const char *text, size_t len, size_t *ends,
                   size_t capacity, size_t *n)
{
    s_cutter_t c;
    if (s_cutter_start(&c, self, text, len) != 0)
        return -1;
    size_t count = 0, start, end;
    int rc;
    while ((rc = s_cutter_next(&c, &start, &end)) > 0) {
        if (count == capacity) {
            rc = -1;
            break;
        }
        ends[count++] = end;
    }
    s_cutter_end(&c);
    if (rc < 0)
        return -1;
    *n = count;
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  Merging

typedef struct {
    uint64_t key; //  rank << 32 | left position: the heap's order
    uint32_t right;
    int32_t left_id, right_id, merged;
} s_candidate_t;

//  Scratch for merging one pre-token, reused by the next (each word starts it afresh, so growing
//  keeps nothing): one block, the heap first for its alignment.
typedef struct {
    void *block;
    s_candidate_t *heap; //  [3 * cap]: n - 1 first pairs, at most two more per merge
    int32_t *ids;        //  [cap] current token at each node, -1 once merged away
    uint32_t *next;      //  [cap] next live node, the word length at the end
    uint32_t *prev;      //  [cap] previous live node, UINT32_MAX at the start
    size_t heap_n;
    size_t cap;
} s_work_t;

#define S_WORK_NODE_BYTES (3 * sizeof(s_candidate_t) + sizeof(int32_t) + 2 * sizeof(uint32_t))

static int s_work_reserve(s_work_t *w, size_t n)
{
    if (n <= w->cap)
        return 0;
    if (n >= UINT32_MAX || n > SIZE_MAX / 2 / S_WORK_NODE_BYTES)
        return -1;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n)
        cap *= 2;
    void *block = malloc(cap * S_WORK_NODE_BYTES);
    if (!block)
        return -1;
    free(w->block);
    w->block = block;
    w->heap = block;
    w->ids = (int32_t *)(w->heap + 3 * cap);
    w->next = (uint32_t *)(w->ids + cap);
    w->prev = w->next + cap;
    w->cap = cap;
    return 0;
}

static void s_heap_push(s_work_t *w, s_candidate_t c)
{
    size_t i = w->heap_n++;
    while (i > 0 && w->heap[(i - 1) / 2].key > c.key) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
}

static s_candidate_t s_heap_pop(s_work_t *w)
{
    s_candidate_t top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (size_t child; (child = 2 * i + 1) < n; i = child) {
        if (child + 1 < n && w->heap[child + 1].key < w->heap[child].key)
            child++;
        if (w->heap[child].key >= last.key)
            break;
        w->heap[i] = w->heap[child];
    }
    if (n > 0)
        w->heap[i] = last;
    return top;
}

static void s_consider(const hafl_bpe_t *self, s_work_t *w, uint32_t left, uint32_t right)
{
    const s_merge_t *m = s_merge_slot(self, w->ids[left], w->ids[right]);
    if (m->left >= 0)
        s_heap_push(w, (s_candidate_t){(uint64_t)(uint32_t)m->rank << 32 | left, right,
                                       w->ids[left], w->ids[right], m->merged});
}

//  The tokens of one pre-token of n bytes, appended at out[*count].
static int s_encode_word(const hafl_bpe_t *self, s_work_t *w, const unsigned char *bytes, size_t n,
                         int32_t *out, size_t *count)
{
    if (n == 1) {
        out[(*count)++] = self->byte_token[bytes[0]];
        return 0;
    }
    if (self->pre->ignore_merges) {
        int32_t whole = s_vocab_find(self, (const char *)bytes, n);
        if (whole >= 0) {
            out[(*count)++] = whole;
            return 0;
        }
    }
    if (s_work_reserve(w, n) != 0)
        return -1;
    uint32_t len = (uint32_t)n;
    for (uint32_t i = 0; i < len; i++) {
        w->ids[i] = self->byte_token[bytes[i]];
        w->next[i] = i + 1;
        w->prev[i] = i == 0 ? UINT32_MAX : i - 1;
    }
    w->heap_n = 0;
    for (uint32_t i = 0; i + 1 < len; i++)
        s_consider(self, w, i, i + 1);
    while (w->heap_n > 0) {
        s_candidate_t c = s_heap_pop(w);
        uint32_t l = (uint32_t)c.key, r = c.right;
        if (w->ids[l] != c.left_id || w->next[l] != r || w->ids[r] != c.right_id)
            continue; //  stale
        w->ids[l] = c.merged;
        w->ids[r] = -1;
        w->next[l] = w->next[r];
        if (w->next[r] < len)
            w->prev[w->next[r]] = l;
        if (w->prev[l] != UINT32_MAX)
            s_consider(self, w, w->prev[l], l);
        if (w->next[l] < len)
            s_consider(self, w, l, w->next[l]);
    }
    for (uint32_t i = 0; i < len; i = w->next[i])
        out[(*count)++] = w->ids[i];
    return 0;
}

int hafl_bpe_encode(const hafl_bpe_t *self, const char *text, size_t len, int32_t *tokens,
                    size_t capacity, size_t *n_tokens)
{
    if (capacity < len)
        return -1;
    s_cutter_t c;
    if (s_cutter_start(&c, self, text, len) != 0)
        return -1;
    s_work_t w = {0};
    size_t count = 0, start, end;
    int rc;
    while ((rc = s_cutter_next(&c, &start, &end)) > 0)
        if (s_encode_word(self, &w, c.text + start, end - start, tokens, &count) != 0) {
            rc = -1;
            break;
        }
    s_cutter_end(&c);
    free(w.block);
    if (rc < 0)
        return -1;
    *n_tokens = count;
    return 0;
}
