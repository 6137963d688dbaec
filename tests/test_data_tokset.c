/*  test_data_tokset: cleaning + tokenisation of a crafted corpus, and its cache.

    A crafted corpus (archive) and a crafted llama2.c tokenizer keep this fast and independent of
    the assets. Checked: each row is BOS + the tokenizer's ids of the cleaned UTF-8 text,
    truncated to max_tokens and padded; keep_empty drops exactly the whitespace-only documents;
    a second load comes from the cache with identical arrays; a change in any input (max_tokens,
    keep_empty, tokenizer, corpus) builds anew; a corrupt, truncated, foreign or forged cache is
    rebuilt with its reason in the note; an unwritable cache folder still gives the set.
    collapse_spaces on a second crafted corpus: each row is BOS + the ids of the normalised text
    written out here by hand (not computed), differs from the row without it exactly when the
    text has spaces to remove, has its own digest and cache file; off, the digest is the one the
    documented key (recomputed here from its parts) gives, as before the setting existed.
*/
#include "hafl_clean.h"
#include "hafl_tokset.h"
#include "test_data_fixture.h"

#include <sodium.h>

static const fixture_file_t s_corpus[] = {
    {"20news-bydate-train/rec.x/10",
     "From: a\nSubject: the theme\n\nthe other there\nthe then\n\n-- \nsignature\n", 0},
    {"20news-bydate-train/rec.x/11", "From: b\n\n> quoted only\n", 0}, //  empty after cleaning
    {"20news-bydate-train/sci.y/20", "H: 1\n\ncaf\xe9 the end\n", 0},
    {"20news-bydate-train/sci.y/21", "no header at all", 0}, //  empty
    {"20news-bydate-train/sci.y/22",
     "H: 2\n\na long line of text that needs more than eight tokens to encode\n", 0},
    {"20news-bydate-test/rec.x/30", "H: 3\n\nthe test\n", 0},
    {"20news-bydate-test/sci.y/40", "H: 4\n\n  \n\t\n", 0}, //  whitespace only
};
#define S_FILES (sizeof s_corpus / sizeof s_corpus[0])

typedef struct {
    char *dir;
    char archive[4096];
    char tokenizer[4096];
    char cache[4096];
    hafl_newsgroups_t *corpus;
    hafl_tokenizer_t *tok;
} s_env_t;

static int s_log_lines;

static void s_log(void *arg, const char *line)
{
    (void)arg;
    s_log_lines++;
    printf("  log: %s\n", line);
}

static hafl_tokset_t *s_load(s_env_t *env, uint32_t max_tokens, bool keep_empty)
{
    hafl_tokset_opts_t opts = {
        .max_tokens = max_tokens, .keep_empty = keep_empty, .cache_dir = env->cache, .log = s_log};
    char err[512];
    hafl_tokset_t *set = hafl_tokset_new(env->corpus, env->tok, &opts, err, sizeof err);
    CHECKF(set, "%s", err);
    return set;
}

//  Rows against a direct clean + encode of every kept document.
static void s_check_rows(const s_env_t *env, const hafl_tokset_t *set, uint32_t T, bool keep_empty)
{
    uint32_t expect_n[2] = {keep_empty ? 5 : 3, keep_empty ? 2 : 1};
    CHECK(hafl_tokset_classes(set) == 2);
    CHECK(strcmp(hafl_tokset_class_name(set, 1), "sci.y") == 0);
    for (int p = 0; p < 2; p++) {
        hafl_tokset_part_t part = hafl_tokset_part(set, (hafl_newsgroups_part_t)p);
        CHECKF(part.n == expect_n[p], "part %d: %u examples", p, part.n);
        CHECK(part.max_tokens == T);
        for (uint32_t i = 0; i < part.n; i++) {
            const hafl_newsgroups_doc_t *doc =
                hafl_newsgroups_doc(env->corpus, (hafl_newsgroups_part_t)p, part.doc_index[i]);
            char text[256], utf8[512];
            CHECK(doc->len < sizeof text);
            memcpy(text, doc->text, doc->len);
            size_t len = hafl_clean_apply(text, doc->len, HAFL_CLEAN_ALL);
            utf8[hafl_clean_latin1_to_utf8(text, len, utf8)] = '\0';
            int32_t ids[600];
            size_t n;
            CHECK(hafl_tokenizer_encode(env->tok, utf8, true, false, ids, 600, &n) == 0);
            uint32_t length = n < T ? (uint32_t)n : T;
            const int32_t *row = part.tokens + (size_t)i * T;
            CHECK(part.labels[i] == doc->label && part.lengths[i] == length);
            CHECK(memcmp(row, ids, length * sizeof *row) == 0);
            for (uint32_t t = length; t < T; t++)
                CHECK(row[t] == HAFL_TOKSET_PAD);
        }
    }
}

static bool s_same_sets(const hafl_tokset_t *a, const hafl_tokset_t *b)
{
    for (int p = 0; p < 2; p++) {
        hafl_tokset_part_t x = hafl_tokset_part(a, (hafl_newsgroups_part_t)p);
        hafl_tokset_part_t y = hafl_tokset_part(b, (hafl_newsgroups_part_t)p);
        if (x.n != y.n || x.max_tokens != y.max_tokens ||
            memcmp(x.tokens, y.tokens, (size_t)x.n * x.max_tokens * sizeof *x.tokens) ||
            memcmp(x.lengths, y.lengths, x.n * sizeof *x.lengths) ||
            memcmp(x.labels, y.labels, x.n * sizeof *x.labels) ||
            memcmp(x.doc_index, y.doc_index, x.n * sizeof *x.doc_index))
            return false;
    }
    return true;
}

static uint8_t *s_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    CHECK(f);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n > 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n);
    CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void s_write(const char *path, const uint8_t *buf, size_t size)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(buf, 1, size, f) == size && fclose(f) == 0);
}

//  Damages the cache file with edit, then expects a rebuild whose note names the reason, and
//  that the rebuilt file is a valid cache again.
static void s_expect_rebuild(s_env_t *env, const hafl_tokset_t *good, const char *needle,
                             void (*edit)(uint8_t *buf, size_t *size))
{
    const char *path = hafl_tokset_cache_path(good);
    size_t size;
    uint8_t *buf = s_read(path, &size);
    size_t saved_size = size;
    uint8_t *saved = malloc(size);
    CHECK(saved);
    memcpy(saved, buf, size);
    edit(buf, &size);
    s_write(path, buf, size);
    hafl_tokset_t *set = s_load(env, 8, true);
    CHECKF(!hafl_tokset_from_cache(set) && strstr(hafl_tokset_note(set), needle),
           "note '%s' lacks '%s'", hafl_tokset_note(set), needle);
    CHECK(s_same_sets(set, good));
    hafl_tokset_destroy(&set);
    set = s_load(env, 8, true);
    CHECK(hafl_tokset_from_cache(set) && s_same_sets(set, good));
    hafl_tokset_destroy(&set);
    size_t size2;
    uint8_t *rewritten = s_read(path, &size2);
    //  The rebuild wrote back exactly the bytes of the undamaged file.
    CHECK(size2 == saved_size && memcmp(rewritten, saved, size2) == 0);
    free(rewritten);
    free(saved);
    free(buf);
}

static void s_edit_flip(uint8_t *buf, size_t *size)
{
    buf[*size - 40] ^= 0x01; //  inside the last row's tokens
}

static void s_edit_truncate(uint8_t *buf, size_t *size)
{
    (void)buf;
    *size -= 1;
}

static void s_edit_magic(uint8_t *buf, size_t *size)
{
    (void)size;
    buf[0] = 'X';
}

static void s_edit_version(uint8_t *buf, size_t *size)
{
    (void)size;
    buf[8] = 99;
}

static void s_edit_tiny(uint8_t *buf, size_t *size)
{
    (void)buf;
    *size = 10;
}

//  A forged file: a token id beyond the vocab, with the checksum recomputed so that only the
//  value checks can catch it.
static void s_edit_forge(uint8_t *buf, size_t *size)
{
    //  The test part comes last: its tokens are the n_test * T * 4 bytes before the checksum.
    uint32_t T = 8, n_test = 2;
    size_t row0 = *size - 32 - (size_t)n_test * T * 4;
    buf[row0 + 4] = 0xff; //  token 1 of test example 0 -> a huge id
    buf[row0 + 5] = 0xff;
    crypto_hash_sha256(buf + *size - 32, buf, *size - 32);
}

//  collapse_spaces: documents whose cleaned text has leading and trailing spaces, runs of
//  spaces, tabs, newlines, spaces around newlines, é and U+00A0 (never collapsed); norm is the
//  text SentencePiece's remove_extra_whitespaces makes of the cleaned text's UTF-8 form.
typedef struct {
    fixture_file_t file;
    const char *cleaned; //  latin-1, what hafl_clean_apply must leave
    const char *norm;    //  UTF-8, what the encoder must see with collapse_spaces
} s_spaced_t;

static const s_spaced_t s_spaced[] = {
    {{"20news-bydate-train/rec.x/50", "H: 1\n\n  the   the\tthe \n the  caf\xe9\xa0 \xa0  er  ", 0},
     "  the   the\tthe \n the  caf\xe9\xa0 \xa0  er  ",
     "the the\tthe \n the caf\xc3\xa9\xc2\xa0 \xc2\xa0 er"},
    {{"20news-bydate-train/sci.y/51", "H: 2\n\nthe then\n", 0}, "the then\n", "the then\n"},
    {{"20news-bydate-test/rec.x/60", "H: 3\n\n \t \n\t  x\n", 0}, " \t \n\t  x\n", "\t \n\t x\n"},
    {{"20news-bydate-test/sci.y/61", "H: 4\n\n   ", 0}, "   ", ""}, //  BOS alone
};
#define S_SPACED (sizeof s_spaced / sizeof s_spaced[0])

//  The cache key as hafl_tokset.h documents it, computed here from its parts: what every set
//  made without collapse_spaces (and every cache from before it existed) is keyed by.
static void s_documented_digest(const hafl_newsgroups_t *corpus, const hafl_tokenizer_t *tok,
                                uint32_t max_tokens, bool keep_empty, uint8_t digest[32])
{
    crypto_hash_sha256_state h, th;
    uint8_t part[32], le[4];
#define S_U32(state, v)                                                                            \
    do {                                                                                           \
        uint32_t v_ = (v);                                                                         \
        for (int b_ = 0; b_ < 4; b_++)                                                             \
            le[b_] = (uint8_t)(v_ >> (8 * b_));                                                    \
        crypto_hash_sha256_update(state, le, 4);                                                   \
    } while (0)
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)"hafl-tokset", 11);
    S_U32(&h, HAFL_TOKSET_VERSION);
    hafl_newsgroups_digest(corpus, part);
    crypto_hash_sha256_update(&h, part, 32);
    crypto_hash_sha256_init(&th);
    S_U32(&th, (uint32_t)hafl_tokenizer_vocab_size(tok));
    for (int32_t id = 0; id < hafl_tokenizer_vocab_size(tok); id++) {
        const char *piece = hafl_tokenizer_piece(tok, id);
        float score = hafl_tokenizer_score(tok, id);
        uint32_t bits;
        memcpy(&bits, &score, 4);
        S_U32(&th, (uint32_t)strlen(piece));
        crypto_hash_sha256_update(&th, (const uint8_t *)piece, strlen(piece));
        S_U32(&th, bits);
    }
    crypto_hash_sha256_final(&th, part);
    crypto_hash_sha256_update(&h, part, 32);
    S_U32(&h, HAFL_CLEAN_VERSION);
    S_U32(&h, max_tokens);
    S_U32(&h, keep_empty ? 1 : 0);
    crypto_hash_sha256_final(&h, digest);
#undef S_U32
}

static void s_test_collapse_spaces(const s_env_t *env)
{
    fixture_file_t files[S_SPACED];
    for (size_t k = 0; k < S_SPACED; k++)
        files[k] = s_spaced[k].file;
    char archive[4096], cache[4096], err[512];
    snprintf(archive, sizeof archive, "%s/spaced.tar.gz", env->dir);
    snprintf(cache, sizeof cache, "%s/spaced-cache", env->dir);
    fixture_write_archive(archive, files, S_SPACED, "");
    hafl_newsgroups_t *corpus = hafl_newsgroups_load(archive, err, sizeof err);
    CHECKF(corpus, "%s", err);
    const uint32_t T = 64; //  longer than every document: rows hold whole encodings

    //  The opts as written before the setting existed, and with it off and on.
    hafl_tokset_opts_t before = {.max_tokens = T, .keep_empty = true, .cache_dir = cache};
    hafl_tokset_opts_t off = before, on = before;
    off.collapse_spaces = false;
    on.collapse_spaces = true;
    hafl_tokset_t *set_before = hafl_tokset_new(corpus, env->tok, &before, err, sizeof err);
    CHECKF(set_before, "%s", err);
    hafl_tokset_t *set_off = hafl_tokset_new(corpus, env->tok, &off, err, sizeof err);
    CHECKF(set_off, "%s", err);
    CHECK(hafl_tokset_from_cache(set_off)); //  the same key as set_before's
    hafl_tokset_t *set_on = hafl_tokset_new(corpus, env->tok, &on, err, sizeof err);
    CHECKF(set_on && !hafl_tokset_from_cache(set_on), "%s",
           set_on ? hafl_tokset_note(set_on) : err);
    CHECK(strcmp(hafl_tokset_cache_path(set_on), hafl_tokset_cache_path(set_off)) != 0);

    uint8_t d_doc[32], d_before[32], d_off[32], d_on[32];
    s_documented_digest(corpus, env->tok, T, true, d_doc);
    hafl_tokset_digest(set_before, d_before);
    hafl_tokset_digest(set_off, d_off);
    hafl_tokset_digest(set_on, d_on);
    CHECK(memcmp(d_before, d_doc, 32) == 0);
    CHECK(memcmp(d_off, d_doc, 32) == 0);
    CHECK(memcmp(d_on, d_off, 32) != 0);

    hafl_tokset_part_t p_on[2], p_off[2];
    for (int p = 0; p < 2; p++) {
        p_on[p] = hafl_tokset_part(set_on, (hafl_newsgroups_part_t)p);
        p_off[p] = hafl_tokset_part(set_off, (hafl_newsgroups_part_t)p);
        CHECK(p_on[p].n == 2 && p_off[p].n == 2);
    }
    size_t with_runs = 0;
    for (size_t k = 0; k < S_SPACED; k++) {
        const s_spaced_t *c = &s_spaced[k];
        int p = strncmp(c->file.path, "20news-bydate-test/", 19) == 0;
        //  Documents sort by group, then id: rec.x before sci.y in each part.
        uint32_t i = (uint32_t)(k % 2);
        const hafl_newsgroups_doc_t *doc =
            hafl_newsgroups_doc(corpus, (hafl_newsgroups_part_t)p, p_on[p].doc_index[i]);
        char text[256], utf8[512];
        CHECK(doc->len < sizeof text);
        memcpy(text, doc->text, doc->len);
        size_t len = hafl_clean_apply(text, doc->len, HAFL_CLEAN_ALL);
        CHECKF(len == strlen(c->cleaned) && memcmp(text, c->cleaned, len) == 0, "%s cleaned",
               c->file.path);
        utf8[hafl_clean_latin1_to_utf8(text, len, utf8)] = '\0';

        int32_t want_on[600], want_off[600];
        size_t n_on, n_off;
        CHECK(hafl_tokenizer_encode(env->tok, c->norm, true, false, want_on, 600, &n_on) == 0);
        CHECK(hafl_tokenizer_encode(env->tok, utf8, true, false, want_off, 600, &n_off) == 0);
        CHECK(n_on < T && n_off < T && want_on[0] == HAFL_TOKEN_BOS);
        const int32_t *row_on = p_on[p].tokens + (size_t)i * T;
        const int32_t *row_off = p_off[p].tokens + (size_t)i * T;
        CHECKF(p_on[p].lengths[i] == n_on && memcmp(row_on, want_on, n_on * sizeof *row_on) == 0,
               "%s: row with collapse_spaces is not the normalised text's ids", c->file.path);
        CHECKF(p_off[p].lengths[i] == n_off &&
                   memcmp(row_off, want_off, n_off * sizeof *row_off) == 0,
               "%s: row without collapse_spaces is not the cleaned text's ids", c->file.path);
        bool runs = strcmp(c->norm, utf8) != 0;
        bool same = n_on == n_off && memcmp(row_on, row_off, n_on * sizeof *row_on) == 0;
        CHECKF(same != runs, "%s: rows with and without collapse_spaces %s", c->file.path,
               same ? "agree though spaces were removed" : "differ with nothing to remove");
        with_runs += runs;
    }
    CHECK(with_runs == 3);

    //  Its own cache, read back with the same rows.
    hafl_tokset_t *again = hafl_tokset_new(corpus, env->tok, &on, err, sizeof err);
    CHECKF(again && hafl_tokset_from_cache(again), "%s", again ? hafl_tokset_note(again) : err);
    CHECK(s_same_sets(again, set_on));
    hafl_tokset_destroy(&again);
    hafl_tokset_destroy(&set_on);
    hafl_tokset_destroy(&set_off);
    hafl_tokset_destroy(&set_before);
    hafl_newsgroups_destroy(&corpus);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    s_env_t env = {0};
    env.dir = fixture_tmpdir();
    snprintf(env.archive, sizeof env.archive, "%s/corpus.tar.gz", env.dir);
    snprintf(env.tokenizer, sizeof env.tokenizer, "%s/tok.bin", env.dir);
    snprintf(env.cache, sizeof env.cache, "%s/cache/nested", env.dir);
    fixture_write_archive(env.archive, s_corpus, S_FILES, "");
    int vocab = fixture_write_tokenizer(env.tokenizer, 0.0f);
    char err[512];
    env.corpus = hafl_newsgroups_load(env.archive, err, sizeof err);
    env.tok = hafl_tokenizer_load(env.tokenizer, vocab, err, sizeof err);
    CHECKF(env.corpus && env.tok, "%s", err);

    //  First load builds and writes the cache, the second reads it.
    hafl_tokset_t *built = s_load(&env, 8, true);
    CHECKF(!hafl_tokset_from_cache(built) && strstr(hafl_tokset_note(built), "no cache file") &&
               strstr(hafl_tokset_note(built), "cached"),
           "%s", hafl_tokset_note(built));
    CHECK(s_log_lines == 1);
    s_check_rows(&env, built, 8, true);
    hafl_tokset_t *cached = s_load(&env, 8, true);
    CHECKF(hafl_tokset_from_cache(cached), "%s", hafl_tokset_note(cached));
    CHECK(s_same_sets(built, cached));
    CHECK(strcmp(hafl_tokset_cache_path(built), hafl_tokset_cache_path(cached)) == 0);
    uint8_t d1[32], d2[32];
    hafl_tokset_digest(built, d1);
    hafl_tokset_digest(cached, d2);
    CHECK(memcmp(d1, d2, 32) == 0);
    hafl_tokset_destroy(&cached);

    //  Every input changes the digest and so builds anew.
    hafl_tokset_t *other = s_load(&env, 64, true);
    CHECK(!hafl_tokset_from_cache(other));
    s_check_rows(&env, other, 64, true);
    hafl_tokset_digest(other, d2);
    CHECK(memcmp(d1, d2, 32) != 0);
    hafl_tokset_destroy(&other);
    other = s_load(&env, 8, false);
    CHECK(!hafl_tokset_from_cache(other));
    s_check_rows(&env, other, 8, false);
    hafl_tokset_destroy(&other);
    other = s_load(&env, 8, false);
    CHECK(hafl_tokset_from_cache(other));
    s_check_rows(&env, other, 8, false);
    hafl_tokset_destroy(&other);

    hafl_tokenizer_t *saved_tok = env.tok;
    char tok2[4096];
    snprintf(tok2, sizeof tok2, "%s/tok2.bin", env.dir);
    fixture_write_tokenizer(tok2, 0.25f);
    env.tok = hafl_tokenizer_load(tok2, vocab, err, sizeof err);
    CHECKF(env.tok, "%s", err);
    other = s_load(&env, 8, true);
    CHECK(!hafl_tokset_from_cache(other));
    hafl_tokset_destroy(&other);
    hafl_tokenizer_destroy(&env.tok);
    env.tok = saved_tok;

    hafl_newsgroups_t *saved_corpus = env.corpus;
    fixture_file_t changed[S_FILES];
    memcpy(changed, s_corpus, sizeof s_corpus);
    changed[5].text = "H: 3\n\nthe tost\n";
    char archive2[4096];
    snprintf(archive2, sizeof archive2, "%s/changed.tar.gz", env.dir);
    fixture_write_archive(archive2, changed, S_FILES, "");
    env.corpus = hafl_newsgroups_load(archive2, err, sizeof err);
    CHECKF(env.corpus, "%s", err);
    other = s_load(&env, 8, true);
    CHECK(!hafl_tokset_from_cache(other));
    hafl_tokset_destroy(&other);
    hafl_newsgroups_destroy(&env.corpus);
    env.corpus = saved_corpus;

    //  Damaged caches are rebuilt, each with its reason.
    s_expect_rebuild(&env, built, "checksum", s_edit_flip);
    s_expect_rebuild(&env, built, "does not match its header", s_edit_truncate);
    s_expect_rebuild(&env, built, "bad magic", s_edit_magic);
    s_expect_rebuild(&env, built, "version 99", s_edit_version);
    s_expect_rebuild(&env, built, "truncated", s_edit_tiny);
    s_expect_rebuild(&env, built, "invalid", s_edit_forge);

    //  A file grown by trailing bytes, and another configuration's cache under this name.
    {
        const char *path = hafl_tokset_cache_path(built);
        size_t size;
        uint8_t *buf = s_read(path, &size);
        uint8_t *grown = calloc(size + 4, 1);
        CHECK(grown);
        memcpy(grown, buf, size);
        s_write(path, grown, size + 4);
        hafl_tokset_t *set = s_load(&env, 8, true);
        CHECKF(!hafl_tokset_from_cache(set) &&
                   strstr(hafl_tokset_note(set), "does not match its header"),
               "%s", hafl_tokset_note(set));
        hafl_tokset_destroy(&set);
        set = s_load(&env, 8, false);
        size_t foreign_size;
        uint8_t *foreign = s_read(hafl_tokset_cache_path(set), &foreign_size);
        s_write(path, foreign, foreign_size);
        hafl_tokset_destroy(&set);
        set = s_load(&env, 8, true);
        CHECKF(!hafl_tokset_from_cache(set) && strstr(hafl_tokset_note(set), "digest"), "%s",
               hafl_tokset_note(set));
        CHECK(s_same_sets(set, built));
        hafl_tokset_destroy(&set);
        free(foreign);
        free(grown);
        free(buf);
    }

    //  No cache at all, an unwritable cache folder, and bad options.
    {
        hafl_tokset_opts_t opts = {.max_tokens = 8, .keep_empty = true, .cache_dir = ""};
        hafl_tokset_t *set = hafl_tokset_new(env.corpus, env.tok, &opts, err, sizeof err);
        CHECK(set && !hafl_tokset_from_cache(set) && *hafl_tokset_cache_path(set) == '\0');
        CHECKF(strstr(hafl_tokset_note(set), "cache disabled"), "%s", hafl_tokset_note(set));
        CHECK(s_same_sets(set, built));
        hafl_tokset_destroy(&set);
        char blocked[4096];
        snprintf(blocked, sizeof blocked, "%s/tok.bin/sub", env.dir);
        opts.cache_dir = blocked;
        set = hafl_tokset_new(env.corpus, env.tok, &opts, err, sizeof err);
        CHECKF(set && strstr(hafl_tokset_note(set), "not cached"), "%s",
               set ? hafl_tokset_note(set) : err);
        CHECK(s_same_sets(set, built));
        hafl_tokset_destroy(&set);
        opts.max_tokens = 0;
        CHECK(!hafl_tokset_new(env.corpus, env.tok, &opts, err, sizeof err));
        CHECKF(strstr(err, "max_tokens"), "%s", err);
        opts.max_tokens = HAFL_TOKSET_MAX_TOKENS + 1;
        CHECK(!hafl_tokset_new(env.corpus, env.tok, &opts, err, sizeof err));
    }

    //  The convenience path gives the same set.
    {
        hafl_tokset_opts_t opts = {.max_tokens = 8, .keep_empty = true, .cache_dir = env.cache};
        hafl_tokset_t *set =
            hafl_tokset_new_from_path(env.archive, env.tok, &opts, err, sizeof err);
        CHECKF(set && hafl_tokset_from_cache(set), "%s", set ? hafl_tokset_note(set) : err);
        CHECK(s_same_sets(set, built));
        hafl_tokset_destroy(&set);
        CHECK(!hafl_tokset_new_from_path(env.dir, env.tok, &opts, err, sizeof err));
    }

    s_test_collapse_spaces(&env);

    hafl_tokset_destroy(&built);
    CHECK(built == NULL);
    hafl_tokset_destroy(&built);
    hafl_newsgroups_destroy(&env.corpus);
    hafl_tokenizer_destroy(&env.tok);
    fixture_rmtree(env.dir);
    free(env.dir);
    printf("data_tokset: ok\n");
    return 0;
}
