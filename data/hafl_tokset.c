/*  hafl_tokset: cleaning + tokenisation of the corpus, and the cache file (see hafl_tokset.h).

    The cache is read whole and checked before any value is trusted: exact size against the
    header, trailing checksum, input digest and settings, then every array's values. A rejected
    cache only costs a rebuild, so every check is cheap to be strict about.
*/
#include "hafl_tokset.h"
#include "hafl_clean.h"
#include "hafl_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_MAGIC       "HAFLTOKS"
#define S_HEADER_SIZE 68 //  magic 8, version 4, digest 32, six u32
#define S_NAME_MAX    255

typedef struct {
    uint32_t n;
    int32_t *tokens;     //  [n][T]
    uint32_t *lengths;   //  [n]
    uint32_t *labels;    //  [n]
    uint32_t *doc_index; //  [n]
} s_part_t;

struct hafl_tokset_t {
    uint8_t digest[32];
    uint32_t max_tokens;
    uint32_t vocab;
    int32_t bos; //  the tokenizer's BOS id, which starts every row
    bool keep_empty;
    bool collapse_spaces;
    uint32_t classes;
    char **class_names; //  [classes]
    s_part_t part[2];
    bool from_cache;
    char note[1024];
    char cache_path[4096];
};

static void s_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t s_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void s_hash_u32(crypto_hash_sha256_state *h, uint32_t v)
{
    uint8_t le[4];
    s_put_u32(le, v);
    crypto_hash_sha256_update(h, le, 4);
}

//  Content digest of a tokenizer: vocab size, then each piece (length, bytes) and score bits,
//  then (byte-level BPE only) its rules digest.
static void s_tokenizer_digest(const hafl_tokenizer_t *tok, uint8_t digest[32])
{
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    int vocab = hafl_tokenizer_vocab_size(tok);
    s_hash_u32(&h, (uint32_t)vocab);
    for (int32_t id = 0; id < vocab; id++) {
        const char *piece = hafl_tokenizer_piece(tok, id);
        size_t len = strlen(piece);
        float score = hafl_tokenizer_score(tok, id);
        uint32_t bits;
        memcpy(&bits, &score, 4);
        s_hash_u32(&h, (uint32_t)len);
        crypto_hash_sha256_update(&h, (const uint8_t *)piece, len);
        s_hash_u32(&h, bits);
    }
    //  A byte-level BPE tokenizer also encodes by its merges and pre-tokenizer (SentencePiece
    //  ones add nothing, so their keys are those of caches made before BPE existed).
    uint8_t rules[32];
    if (hafl_tokenizer_rules_digest(tok, rules))
        crypto_hash_sha256_update(&h, rules, sizeof rules);
    crypto_hash_sha256_final(&h, digest);
}

static void s_input_digest(const hafl_newsgroups_t *corpus, const hafl_tokenizer_t *tok,
                           const hafl_tokset_opts_t *opts, uint8_t digest[32])
{
    uint8_t part[32];
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)"hafl-tokset", 11);
    s_hash_u32(&h, HAFL_TOKSET_VERSION);
    hafl_newsgroups_digest(corpus, part);
    crypto_hash_sha256_update(&h, part, 32);
    s_tokenizer_digest(tok, part);
    crypto_hash_sha256_update(&h, part, 32);
    s_hash_u32(&h, HAFL_CLEAN_VERSION);
    s_hash_u32(&h, opts->max_tokens);
    s_hash_u32(&h, opts->keep_empty ? 1 : 0);
    //  Hashed only when on, so every cache made before the setting existed keeps its key.
    if (opts->collapse_spaces)
        crypto_hash_sha256_update(&h, (const uint8_t *)"collapse-spaces", 15);
    crypto_hash_sha256_final(&h, digest);
}

static void s_note(hafl_tokset_t *self, const hafl_tokset_opts_t *opts, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->note, sizeof self->note, fmt, ap);
    va_end(ap);
    if (opts->log)
        opts->log(opts->log_arg, self->note);
}

static void s_part_free(s_part_t *part)
{
    free(part->tokens);
    free(part->lengths);
    free(part->labels);
    free(part->doc_index);
    memset(part, 0, sizeof *part);
}

static int s_part_alloc(s_part_t *part, uint32_t n, uint32_t T)
{
    //  At least one element each so a part with no examples still has valid pointers.
    size_t rows = n ? n : 1;
    part->n = n;
    part->tokens = calloc(rows * T, sizeof *part->tokens);
    part->lengths = calloc(rows, sizeof *part->lengths);
    part->labels = calloc(rows, sizeof *part->labels);
    part->doc_index = calloc(rows, sizeof *part->doc_index);
    if (!part->tokens || !part->lengths || !part->labels || !part->doc_index) {
        s_part_free(part);
        return -1;
    }
    return 0;
}

static int s_copy_class_names(hafl_tokset_t *self, const hafl_newsgroups_t *corpus)
{
    self->classes = hafl_newsgroups_classes(corpus);
    self->class_names = calloc(self->classes, sizeof *self->class_names);
    if (!self->class_names)
        return -1;
    for (uint32_t c = 0; c < self->classes; c++)
        if (!(self->class_names[c] = strdup(hafl_newsgroups_class_name(corpus, c))))
            return -1;
    return 0;
}

//  --------------------------------------------------------------------------------------------
//  Building

typedef struct {
    char *text; //  cleaned latin-1 copy
    size_t text_cap;
    char *utf8; //  its UTF-8 form, NUL-terminated
    size_t utf8_cap;
    int32_t *ids; //  encoder output
    size_t ids_cap;
} s_scratch_t;

static int s_reserve(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    void *grown = realloc(*buf, need * elem);
    if (!grown)
        return -1;
    *buf = grown;
    *cap = need;
    return 0;
}

//  Only the first T ids of a document are kept, so a long document need not be encoded whole.
//  That is exact when no merge can join the bytes on both sides of a word boundary (a space
//  right after a non-space): then merging never crosses it, and the ids of the text before it
//  are the first ids of the whole text. It holds when " " is a piece (so a space is never a
//  byte-fallback token) and no piece has a space right after another byte, as in sentencepiece
//  vocabularies split on whitespace. Checked on the tokenizer, never assumed.
static bool s_cut_safe(const hafl_tokenizer_t *tok)
{
    if (hafl_tokenizer_lookup(tok, " ", 1) < 0)
        return false;
    for (int32_t id = 0; id < hafl_tokenizer_vocab_size(tok); id++) {
        const char *piece = hafl_tokenizer_piece(tok, id);
        for (size_t k = 1; piece[k]; k++)
            if (piece[k] == ' ' && piece[k - 1] != ' ')
                return false;
    }
    return true;
}

//  BOS + the UTF-8 text s->utf8[0..len) into s->ids, of which at least the first T (or all, if
//  fewer) equal the ids of encoding the whole text. With cut_safe, encodes a prefix ending at a
//  word boundary past 4T + 16 bytes, doubling it until it yields T ids or is the whole text.
static int s_encode_head(const hafl_tokenizer_t *tok, s_scratch_t *s, size_t len, uint32_t T,
                         bool cut_safe, size_t *n_ids)
{
    size_t budget = cut_safe ? 4 * (size_t)T + 16 : len;
    for (;;) {
        size_t cut = len;
        if (budget < len) {
            cut = budget;
            while (cut < len && !(s->utf8[cut] == ' ' && s->utf8[cut - 1] != ' '))
                cut++;
        }
        char saved = s->utf8[cut];
        s->utf8[cut] = '\0';
        size_t need = hafl_tokenizer_encode_capacity(cut);
        int rc = s_reserve((void **)&s->ids, &s->ids_cap, need, sizeof *s->ids);
        if (rc == 0)
            rc = hafl_tokenizer_encode(tok, s->utf8, true, false, s->ids, s->ids_cap, n_ids);
        s->utf8[cut] = saved;
        if (rc != 0)
            return -1;
        if (cut == len || *n_ids >= T)
            return 0;
        budget *= 2;
    }
}

//  Public (see hafl_tokset.h) so a test can put the same text through SentencePiece.
size_t hafl_tokset_collapse_spaces(char *text, size_t len)
{
    size_t out = 0;
    bool pending = false; //  a run of spaces seen since the last kept byte
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            pending = out > 0;
            continue;
        }
        if (pending)
            text[out++] = ' ';
        pending = false;
        text[out++] = text[i];
    }
    text[out] = '\0';
    return out;
}

static int s_build_part(hafl_tokset_t *self, const hafl_newsgroups_t *corpus,
                        const hafl_tokenizer_t *tok, hafl_newsgroups_part_t which, bool cut_safe,
                        s_scratch_t *s, char *err, size_t errlen)
{
    uint32_t count = hafl_newsgroups_count(corpus, which);
    uint32_t T = self->max_tokens;
    s_part_t *part = &self->part[which];
    if (s_part_alloc(part, count, T)) {
        snprintf(err, errlen, "tokenised set: out of memory for %u examples of %u tokens", count,
                 T);
        return -1;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < count; i++) {
        const hafl_newsgroups_doc_t *doc = hafl_newsgroups_doc(corpus, which, i);
        if (s_reserve((void **)&s->text, &s->text_cap, doc->len + 1, 1) ||
            s_reserve((void **)&s->utf8, &s->utf8_cap, 2 * doc->len + 1, 1)) {
            snprintf(err, errlen, "tokenised set: out of memory for a %zu-byte document", doc->len);
            return -1;
        }
        memcpy(s->text, doc->text, doc->len);
        size_t len = hafl_clean_apply(s->text, doc->len, HAFL_CLEAN_ALL);
        size_t first = 0;
        while (first < len && hafl_clean_is_space((unsigned char)s->text[first]))
            first++;
        if (first == len && !self->keep_empty)
            continue;
        size_t utf8_len = hafl_clean_latin1_to_utf8(s->text, len, s->utf8);
        s->utf8[utf8_len] = '\0';
        if (self->collapse_spaces)
            utf8_len = hafl_tokset_collapse_spaces(s->utf8, utf8_len);
        size_t n_ids;
        if (s_encode_head(tok, s, utf8_len, T, cut_safe, &n_ids)) {
            snprintf(err, errlen, "tokenised set: cannot encode document %u (%s %s/%llu)", i,
                     which == HAFL_NEWSGROUPS_TRAIN ? "train" : "test",
                     hafl_newsgroups_class_name(corpus, doc->label), (unsigned long long)doc->id);
            return -1;
        }
        uint32_t length = n_ids < T ? (uint32_t)n_ids : T;
        memcpy(part->tokens + (size_t)kept * T, s->ids, length * sizeof *s->ids);
        //  The rest of the row is already HAFL_TOKSET_PAD (calloc, PAD == 0).
        part->lengths[kept] = length;
        part->labels[kept] = doc->label;
        part->doc_index[kept] = i;
        kept++;
    }
    part->n = kept;
    return 0;
}

static int s_build(hafl_tokset_t *self, const hafl_newsgroups_t *corpus,
                   const hafl_tokenizer_t *tok, char *err, size_t errlen)
{
    s_scratch_t s = {0};
    bool cut_safe = s_cut_safe(tok);
    int rc = s_build_part(self, corpus, tok, HAFL_NEWSGROUPS_TRAIN, cut_safe, &s, err, errlen);
    if (rc == 0)
        rc = s_build_part(self, corpus, tok, HAFL_NEWSGROUPS_TEST, cut_safe, &s, err, errlen);
    free(s.text);
    free(s.utf8);
    free(s.ids);
    return rc;
}

//  --------------------------------------------------------------------------------------------
//  The cache file

static size_t s_names_size(const hafl_tokset_t *self)
{
    size_t size = 0;
    for (uint32_t c = 0; c < self->classes; c++)
        size += 4 + strlen(self->class_names[c]);
    return size;
}

static size_t s_part_size(uint32_t n, uint32_t T)
{
    return (size_t)n * 12 + (size_t)n * T * 4;
}

//  Serialises the whole set (header, names, parts, checksum); NULL on no memory.
static uint8_t *s_encode(const hafl_tokset_t *self, size_t *size)
{
    uint32_t T = self->max_tokens;
    size_t total = S_HEADER_SIZE + s_names_size(self) + s_part_size(self->part[0].n, T) +
                   s_part_size(self->part[1].n, T) + 32;
    uint8_t *buf = malloc(total);
    if (!buf)
        return NULL;
    uint8_t *p = buf;
    memcpy(p, S_MAGIC, 8);
    s_put_u32(p + 8, HAFL_TOKSET_VERSION);
    memcpy(p + 12, self->digest, 32);
    uint32_t fields[6] = {
        T, self->keep_empty, self->vocab, self->classes, self->part[0].n, self->part[1].n};
    for (int i = 0; i < 6; i++)
        s_put_u32(p + 44 + 4 * i, fields[i]);
    p += S_HEADER_SIZE;
    for (uint32_t c = 0; c < self->classes; c++) {
        size_t len = strlen(self->class_names[c]);
        s_put_u32(p, (uint32_t)len);
        memcpy(p + 4, self->class_names[c], len);
        p += 4 + len;
    }
    for (int k = 0; k < 2; k++) {
        const s_part_t *part = &self->part[k];
        const uint32_t *arrays[3] = {part->labels, part->doc_index, part->lengths};
        for (int a = 0; a < 3; a++)
            for (uint32_t i = 0; i < part->n; i++, p += 4)
                s_put_u32(p, arrays[a][i]);
        for (size_t i = 0; i < (size_t)part->n * T; i++, p += 4)
            s_put_u32(p, (uint32_t)part->tokens[i]);
    }
    crypto_hash_sha256(p, buf, (size_t)(p - buf));
    *size = total;
    return buf;
}

//  mkdir -p; 0 when the folder exists afterwards.
static int s_make_dirs(const char *dir)
{
    char path[4096];
    if (strlen(dir) >= sizeof path)
        return -1;
    strcpy(path, dir);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

//  Atomic write (hafl_file.h) into its folder, created when missing.
static int s_cache_write(const hafl_tokset_t *self, const char *dir, const char *path, char *reason,
                         size_t reasonlen)
{
    if (s_make_dirs(dir)) {
        snprintf(reason, reasonlen, "cannot create its folder: %s", strerror(errno));
        return -1;
    }
    size_t size;
    uint8_t *buf = s_encode(self, &size);
    if (!buf) {
        snprintf(reason, reasonlen, "out of memory encoding the cache");
        return -1;
    }
    int rc = hafl_file_write_atomic(path, buf, size, reason, reasonlen);
    free(buf);
    return rc;
}

//  Reads the whole file if its size is at most cap; NULL with a reason otherwise.
static uint8_t *s_read_whole(const char *path, size_t cap, size_t *size, char *reason,
                             size_t reasonlen)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(reason, reasonlen, "%s", errno == ENOENT ? "no cache file" : strerror(errno));
        return NULL;
    }
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        snprintf(reason, reasonlen, "not a regular file");
    else if ((uint64_t)st.st_size < S_HEADER_SIZE + 32)
        snprintf(reason, reasonlen, "truncated: %lld bytes", (long long)st.st_size);
    else if ((uint64_t)st.st_size > cap)
        snprintf(reason, reasonlen, "%lld bytes, more than the %zu its settings allow",
                 (long long)st.st_size, cap);
    else if (!(buf = malloc((size_t)st.st_size)))
        snprintf(reason, reasonlen, "out of memory");
    else {
        size_t done = 0;
        while (done < (size_t)st.st_size) {
            ssize_t got = read(fd, buf + done, (size_t)st.st_size - done);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            done += (size_t)got;
        }
        if (done != (size_t)st.st_size) {
            snprintf(reason, reasonlen, "short read");
            free(buf);
            buf = NULL;
        }
        *size = done;
    }
    close(fd);
    return buf;
}

//  Checks one part's arrays against the corpus and copies them in; reason on the first fault.
static int s_decode_part(hafl_tokset_t *self, const hafl_newsgroups_t *corpus, int k,
                         const uint8_t **pp, uint32_t n, char *reason, size_t reasonlen)
{
    const char *name = k == 0 ? "train" : "test";
    uint32_t T = self->max_tokens;
    uint32_t docs = hafl_newsgroups_count(corpus, (hafl_newsgroups_part_t)k);
    if (n > docs || (self->keep_empty && n != docs)) {
        snprintf(reason, reasonlen, "%s: %u examples for %u documents", name, n, docs);
        return -1;
    }
    s_part_t *part = &self->part[k];
    if (s_part_alloc(part, n, T)) {
        snprintf(reason, reasonlen, "out of memory");
        return -1;
    }
    const uint8_t *p = *pp;
    uint32_t *arrays[3] = {part->labels, part->doc_index, part->lengths};
    for (int a = 0; a < 3; a++)
        for (uint32_t i = 0; i < n; i++, p += 4)
            arrays[a][i] = s_get_u32(p);
    for (size_t i = 0; i < (size_t)n * T; i++, p += 4)
        part->tokens[i] = (int32_t)s_get_u32(p);
    *pp = p;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t doc = part->doc_index[i];
        if (doc >= docs || (i > 0 && doc <= part->doc_index[i - 1])) {
            snprintf(reason, reasonlen, "%s example %u: document index %u out of order", name, i,
                     doc);
            return -1;
        }
        if (part->labels[i] != hafl_newsgroups_doc(corpus, (hafl_newsgroups_part_t)k, doc)->label) {
            snprintf(reason, reasonlen, "%s example %u: label %u differs from the corpus", name, i,
                     part->labels[i]);
            return -1;
        }
        uint32_t length = part->lengths[i];
        const int32_t *row = part->tokens + (size_t)i * T;
        if (length < 1 || length > T || row[0] != self->bos) {
            snprintf(reason, reasonlen, "%s example %u: length %u or first token %d invalid", name,
                     i, length, row[0]);
            return -1;
        }
        for (uint32_t t = 0; t < T; t++)
            if (t < length ? (row[t] < 0 || (uint32_t)row[t] >= self->vocab)
                           : row[t] != HAFL_TOKSET_PAD) {
                snprintf(reason, reasonlen, "%s example %u: token %u = %d invalid", name, i, t,
                         row[t]);
                return -1;
            }
    }
    return 0;
}

//  0 when path holds exactly this set; otherwise a reason, and self's parts are left empty.
static int s_cache_read(hafl_tokset_t *self, const hafl_newsgroups_t *corpus, const char *path,
                        char *reason, size_t reasonlen)
{
    uint32_t T = self->max_tokens;
    //  The largest file these settings allow (names at their longest): a cap before reading.
    size_t cap = S_HEADER_SIZE + (size_t)self->classes * (4 + S_NAME_MAX) +
                 s_part_size(hafl_newsgroups_count(corpus, HAFL_NEWSGROUPS_TRAIN), T) +
                 s_part_size(hafl_newsgroups_count(corpus, HAFL_NEWSGROUPS_TEST), T) + 32;
    size_t size;
    uint8_t *buf = s_read_whole(path, cap, &size, reason, reasonlen);
    if (!buf)
        return -1;
    int rc = -1;
    uint8_t sum[32];
    uint32_t f[6];
    for (int i = 0; i < 6; i++)
        f[i] = s_get_u32(buf + 44 + 4 * i);
    if (memcmp(buf, S_MAGIC, 8) != 0) {
        snprintf(reason, reasonlen, "bad magic");
        goto done;
    }
    if (s_get_u32(buf + 8) != HAFL_TOKSET_VERSION) {
        snprintf(reason, reasonlen, "version %u, want %u", s_get_u32(buf + 8), HAFL_TOKSET_VERSION);
        goto done;
    }
    if (memcmp(buf + 12, self->digest, 32) != 0) {
        snprintf(reason, reasonlen, "input digest differs (inputs changed)");
        goto done;
    }
    if (f[0] != T || f[1] != (uint32_t)self->keep_empty || f[2] != self->vocab ||
        f[3] != self->classes) {
        snprintf(reason, reasonlen,
                 "settings differ: max_tokens %u keep_empty %u vocab %u classes %u", f[0], f[1],
                 f[2], f[3]);
        goto done;
    }
    //  Names, then the exact size the header implies, then the checksum, then the values.
    const uint8_t *p = buf + S_HEADER_SIZE;
    const uint8_t *end = buf + size - 32;
    for (uint32_t c = 0; c < self->classes; c++) {
        if (end - p < 4) {
            snprintf(reason, reasonlen, "truncated in class names");
            goto done;
        }
        uint32_t len = s_get_u32(p);
        if (len == 0 || len > S_NAME_MAX || (size_t)(end - p - 4) < len ||
            len != strlen(self->class_names[c]) || memcmp(p + 4, self->class_names[c], len)) {
            snprintf(reason, reasonlen, "class name %u differs from the corpus", c);
            goto done;
        }
        p += 4 + len;
    }
    if (f[4] > HAFL_NEWSGROUPS_MAX_DOCS || f[5] > HAFL_NEWSGROUPS_MAX_DOCS ||
        (size_t)(end - p) != s_part_size(f[4], T) + s_part_size(f[5], T)) {
        snprintf(reason, reasonlen, "size %zu bytes does not match its header", size);
        goto done;
    }
    crypto_hash_sha256(sum, buf, size - 32);
    if (memcmp(sum, end, 32) != 0) {
        snprintf(reason, reasonlen, "checksum mismatch (corrupt)");
        goto done;
    }
    if (s_decode_part(self, corpus, 0, &p, f[4], reason, reasonlen) ||
        s_decode_part(self, corpus, 1, &p, f[5], reason, reasonlen))
        goto done;
    rc = 0;
done:
    if (rc) {
        s_part_free(&self->part[0]);
        s_part_free(&self->part[1]);
    }
    free(buf);
    return rc;
}

//  --------------------------------------------------------------------------------------------

hafl_tokset_t *hafl_tokset_new(const hafl_newsgroups_t *corpus, const hafl_tokenizer_t *tokenizer,
                               const hafl_tokset_opts_t *opts, char *err, size_t errlen)
{
    if (!corpus || !tokenizer || !opts) {
        snprintf(err, errlen, "tokenised set: corpus, tokenizer and options are required");
        return NULL;
    }
    if (opts->max_tokens < 1 || opts->max_tokens > HAFL_TOKSET_MAX_TOKENS) {
        snprintf(err, errlen, "tokenised set: max_tokens %u outside 1..%u", opts->max_tokens,
                 HAFL_TOKSET_MAX_TOKENS);
        return NULL;
    }
    if (hafl_tokenizer_bos(tokenizer) < 0) {
        snprintf(err, errlen, "tokenised set: the tokenizer has no BOS token (rows start with it)");
        return NULL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "tokenised set: libsodium failed to initialise");
        return NULL;
    }
    hafl_tokset_t *self = calloc(1, sizeof *self);
    if (!self || s_copy_class_names(self, corpus)) {
        snprintf(err, errlen, "tokenised set: out of memory");
        hafl_tokset_destroy(&self);
        return NULL;
    }
    self->max_tokens = opts->max_tokens;
    self->keep_empty = opts->keep_empty;
    self->collapse_spaces = opts->collapse_spaces;
    self->vocab = (uint32_t)hafl_tokenizer_vocab_size(tokenizer);
    self->bos = hafl_tokenizer_bos(tokenizer);
    s_input_digest(corpus, tokenizer, opts, self->digest);

    //  Where the cache lives, if anywhere.
    char dir[4096] = "";
    char why_not[512] = "";
    if (opts->cache_dir && !*opts->cache_dir)
        snprintf(why_not, sizeof why_not, "cache disabled");
    else if (opts->cache_dir)
        snprintf(dir, sizeof dir, "%s", opts->cache_dir);
    else if (getenv("HOME") && *getenv("HOME"))
        snprintf(dir, sizeof dir, "%s/.cache/hafl", getenv("HOME"));
    else
        snprintf(why_not, sizeof why_not, "no cache: HOME is not set");
    if (*dir) {
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, self->digest, 32);
        hex[16] = '\0';
        if (snprintf(self->cache_path, sizeof self->cache_path, "%s/20news-%s.tokset", dir, hex) >=
            (int)sizeof self->cache_path) {
            self->cache_path[0] = '\0';
            snprintf(why_not, sizeof why_not, "no cache: folder path too long");
        }
    }
    char reason[512] = "";
    if (*self->cache_path) {
        if (s_cache_read(self, corpus, self->cache_path, reason, sizeof reason) == 0) {
            self->from_cache = true;
            s_note(self, opts, "tokenised set loaded from cache %s", self->cache_path);
            return self;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (s_build(self, corpus, tokenizer, err, errlen)) {
        hafl_tokset_destroy(&self);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (!*self->cache_path) {
        s_note(self, opts, "tokenised set built in %.1f s (%s)", seconds, why_not);
        return self;
    }
    char wrote[512] = "";
    if (s_cache_write(self, dir, self->cache_path, wrote, sizeof wrote))
        s_note(self, opts, "tokenised set built in %.1f s (cache %s: %s); not cached: %s", seconds,
               self->cache_path, reason, wrote);
    else
        s_note(self, opts, "tokenised set built in %.1f s (cache %s: %s); cached", seconds,
               self->cache_path, reason);
    return self;
}

hafl_tokset_t *hafl_tokset_new_from_path(const char *path, const hafl_tokenizer_t *tokenizer,
                                         const hafl_tokset_opts_t *opts, char *err, size_t errlen)
{
    hafl_newsgroups_t *corpus = hafl_newsgroups_load(path, err, errlen);
    if (!corpus)
        return NULL;
    hafl_tokset_t *self = hafl_tokset_new(corpus, tokenizer, opts, err, errlen);
    hafl_newsgroups_destroy(&corpus);
    return self;
}

void hafl_tokset_destroy(hafl_tokset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_tokset_t *self = *self_p;
    s_part_free(&self->part[0]);
    s_part_free(&self->part[1]);
    for (uint32_t c = 0; self->class_names && c < self->classes; c++)
        free(self->class_names[c]);
    free(self->class_names);
    free(self);
    *self_p = NULL;
}

hafl_tokset_part_t hafl_tokset_part(const hafl_tokset_t *self, hafl_newsgroups_part_t which)
{
    const s_part_t *part = &self->part[which == HAFL_NEWSGROUPS_TEST];
    return (hafl_tokset_part_t){.n = part->n,
                                .max_tokens = self->max_tokens,
                                .tokens = part->tokens,
                                .lengths = part->lengths,
                                .labels = part->labels,
                                .doc_index = part->doc_index};
}

uint32_t hafl_tokset_classes(const hafl_tokset_t *self)
{
    return self->classes;
}

const char *hafl_tokset_class_name(const hafl_tokset_t *self, uint32_t label)
{
    return label < self->classes ? self->class_names[label] : NULL;
}

void hafl_tokset_digest(const hafl_tokset_t *self, uint8_t digest[32])
{
    memcpy(digest, self->digest, 32);
}

bool hafl_tokset_from_cache(const hafl_tokset_t *self)
{
    return self->from_cache;
}

const char *hafl_tokset_note(const hafl_tokset_t *self)
{
    return self->note;
}

const char *hafl_tokset_cache_path(const hafl_tokset_t *self)
{
    return self->cache_path;
}
