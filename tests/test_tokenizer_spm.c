/*  test_tokenizer_spm: hafl_tokset_collapse_spaces on its own, and the C side of the check
    against SentencePiece (tests/test_tokenizer_spm_oracle.py).

    Without arguments: the normaliser on edge cases, each output written here by hand (empty,
    only spaces, leading and trailing spaces, runs, tabs, newlines, spaces around a newline,
    U+00A0 which SentencePiece's remove_extra_whitespaces leaves alone). Needs no assets.

    With --encode IN OUT DOCS it is the oracle's helper: it finds tok4096.bin, tok4096.model and
    (when DOCS > 0) 20news-bydate.tar.gz through the asset lookup, exiting 77 with the reason
    when one is missing. IN holds texts as records "name length\n" + length bytes of UTF-8 +
    "\n"; the first DOCS training documents of the corpus (cleaned, latin-1 -> UTF-8, exactly as
    hafl_tokset prepares them) are added after them. For each text OUT gets the record again,
    then three lines of ids, "ids n ..." (BOS + the ids of the normalised text), "raw n ..."
    (BOS + the ids of the text as it is) and "row n ..." (the document's row in a tokset built
    with collapse_spaces, T = 256; "row 0" for IN's texts). The last line on stdout is
    "model PATH", the SentencePiece model the script encodes with.
*/
#include "hafl_asset.h"
#include "hafl_clean.h"
#include "hafl_test.h"
#include "hafl_tokset.h"

#include <stdint.h>
#include <string.h>

#define S_ROW_TOKENS 256 //  base3M's sequence length
#define S_TEXT_MAX   (1u << 22)

static void s_expect(const char *in, size_t in_len, const char *want)
{
    char buf[64];
    CHECK(in_len < sizeof buf - 1);
    memcpy(buf, in, in_len);
    memset(buf + in_len, 'Z', sizeof buf - in_len); //  catches a NUL at the wrong place
    size_t n = hafl_tokset_collapse_spaces(buf, in_len);
    CHECKF(n == strlen(want) && memcmp(buf, want, n) == 0 && buf[n] == '\0',
           "'%.*s' gave '%.*s', expected '%s'", (int)in_len, in, (int)n, buf, want);
}

//  in is a string literal; its bytes up to (not including) its terminator are the text.
#define S_EXPECT(in, want) s_expect(in, sizeof in - 1, want)

static void s_selftest(void)
{
    S_EXPECT("", "");
    S_EXPECT(" ", "");
    S_EXPECT("    ", "");
    S_EXPECT("a", "a");
    S_EXPECT(" a ", "a");
    S_EXPECT("a b", "a b");
    S_EXPECT("a  b", "a b");
    S_EXPECT("  one   two  three   ", "one two three");
    S_EXPECT("a\tb\t\tc", "a\tb\t\tc");
    S_EXPECT(" \t ", "\t");
    S_EXPECT("\n\n", "\n\n");
    S_EXPECT("a \n b", "a \n b");
    S_EXPECT("a  \n\n  b", "a \n\n b");
    S_EXPECT("x \t  y", "x \t y");
    S_EXPECT("\xc2\xa0\xc2\xa0", "\xc2\xa0\xc2\xa0");
    S_EXPECT("  \xc2\xa0  caf\xc3\xa9   \xc2\xa0", "\xc2\xa0 caf\xc3\xa9 \xc2\xa0");
    //  Only the first len bytes count; the byte after them becomes the NUL.
    s_expect("a  b  c", 4, "a b");
    printf("tokenizer_spm: ok\n");
}

static char *s_asset_or_skip(const char *name)
{
    char err[1024];
    char *path = hafl_asset_find(name, err, sizeof err);
    if (!path) {
        printf("SKIP: asset %s not available: %s\n", name, err);
        exit(77);
    }
    return path;
}

static void s_put_ids(FILE *out, const char *tag, const int32_t *ids, size_t n)
{
    fprintf(out, "%s %zu", tag, n);
    for (size_t i = 0; i < n; i++)
        fprintf(out, " %d", ids[i]);
    fputc('\n', out);
}

//  One record of OUT for the UTF-8 text[0..len) (len + 1 bytes writable; text is consumed).
static void s_put_text(FILE *out, const hafl_tokenizer_t *tok, const char *name, char *text,
                       size_t len, const int32_t *row, size_t row_n)
{
    size_t cap = hafl_tokenizer_encode_capacity(len), n;
    int32_t *ids = malloc(cap * sizeof *ids);
    CHECK(ids);
    fprintf(out, "%s %zu\n", name, len);
    CHECK(fwrite(text, 1, len, out) == len);
    fputc('\n', out);
    text[len] = '\0';
    CHECKF(strlen(text) == len, "%s holds a NUL byte", name);
    CHECK(hafl_tokenizer_encode(tok, text, true, false, ids, cap, &n) == 0);
    size_t raw_n = n;
    int32_t *raw = malloc(cap * sizeof *raw);
    CHECK(raw);
    memcpy(raw, ids, n * sizeof *ids);
    hafl_tokset_collapse_spaces(text, len);
    CHECK(hafl_tokenizer_encode(tok, text, true, false, ids, cap, &n) == 0);
    s_put_ids(out, "ids", ids, n);
    s_put_ids(out, "raw", raw, raw_n);
    s_put_ids(out, "row", row, row_n);
    free(raw);
    free(ids);
}

static int s_encode(const char *in_path, const char *out_path, long docs)
{
    char err[1024];
    CHECKF(docs >= 0 && docs <= 11314, "DOCS %ld out of range", docs);
    char *tokpath = s_asset_or_skip("tok4096.bin");
    char *model = s_asset_or_skip("tok4096.model");
    hafl_tokenizer_t *tok = hafl_tokenizer_load(tokpath, 4096, err, sizeof err);
    CHECKF(tok, "%s", err);

    FILE *in = fopen(in_path, "rb");
    FILE *out = fopen(out_path, "wb");
    CHECKF(in && out, "cannot open %s or %s", in_path, out_path);
    char name[256];
    size_t len;
    int32_t none = 0;
    while (fscanf(in, "%255s %zu", name, &len) == 2) {
        CHECKF(fgetc(in) == '\n' && len < S_TEXT_MAX, "bad record header for %s", name);
        char *text = malloc(len + 1);
        CHECK(text && fread(text, 1, len, in) == len && fgetc(in) == '\n');
        s_put_text(out, tok, name, text, len, &none, 0);
        free(text);
    }
    CHECKF(feof(in), "%s: trailing bytes after the last record", in_path);
    fclose(in);

    if (docs > 0) {
        char *archive = s_asset_or_skip("20news-bydate.tar.gz");
        hafl_newsgroups_t *ng = hafl_newsgroups_load(archive, err, sizeof err);
        CHECKF(ng, "%s", err);
        hafl_tokset_opts_t opts = {.max_tokens = S_ROW_TOKENS,
                                   .keep_empty = true,
                                   .collapse_spaces = true,
                                   .cache_dir = ""};
        hafl_tokset_t *set = hafl_tokset_new(ng, tok, &opts, err, sizeof err);
        CHECKF(set, "%s", err);
        hafl_tokset_part_t part = hafl_tokset_part(set, HAFL_NEWSGROUPS_TRAIN);
        CHECK(part.n == hafl_newsgroups_count(ng, HAFL_NEWSGROUPS_TRAIN));
        for (uint32_t i = 0; i < (uint32_t)docs; i++) {
            const hafl_newsgroups_doc_t *d = hafl_newsgroups_doc(ng, HAFL_NEWSGROUPS_TRAIN, i);
            CHECK(part.doc_index[i] == i);
            char *text = malloc(d->len + 1), *utf8 = malloc(2 * d->len + 1);
            CHECK(text && utf8);
            memcpy(text, d->text, d->len);
            size_t n = hafl_clean_apply(text, d->len, HAFL_CLEAN_ALL);
            n = hafl_clean_latin1_to_utf8(text, n, utf8);
            snprintf(name, sizeof name, "train/%s/%llu", hafl_newsgroups_class_name(ng, d->label),
                     (unsigned long long)d->id);
            s_put_text(out, tok, name, utf8, n, part.tokens + (size_t)i * S_ROW_TOKENS,
                       part.lengths[i]);
            free(utf8);
            free(text);
        }
        hafl_tokset_destroy(&set);
        hafl_newsgroups_destroy(&ng);
        free(archive);
    }
    CHECK(fclose(out) == 0);
    printf("model %s\n", model);
    hafl_tokenizer_destroy(&tok);
    free(model);
    free(tokpath);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--encode") == 0)
        return s_encode(argv[2], argv[3], strtol(argv[4], NULL, 10));
    CHECKF(argc == 1, "usage: %s [--encode IN OUT DOCS]", argv[0]);
    s_selftest();
    return 0;
}
