/*  test_data_newsgroups: the real 20news-bydate archive, found through the asset lookup.

    Checks the corpus shape (20 groups in sorted order, per-group counts, 11,314 train and 7,532
    test documents), the cleaning totals scikit-learn's fetch_20newsgroups(remove=('headers',
    'footers','quotes')) gives on it (515 documents are only whitespace afterwards, 380 of them
    exactly empty), and the full tokenised set with tok512.bin: sizes with and without empty
    documents, a cache written and read back. Prints how long reading, cleaning and tokenising
    take. Exits 77 (ctest skip) with a reason when an asset is missing.

    With --dump FILE it instead writes every cleaned document (train then test, in corpus order)
    as a line "part group id length" followed by the bytes and a newline, and prints the archive
    path; tests/data_sklearn.py compares that with scikit-learn's own functions.
*/
#include "hafl_asset.h"
#include "hafl_clean.h"
#include "hafl_tokset.h"
#include "test_data_fixture.h"

#include <time.h>

static const char *s_groups[20] = {"alt.atheism",
                                   "comp.graphics",
                                   "comp.os.ms-windows.misc",
                                   "comp.sys.ibm.pc.hardware",
                                   "comp.sys.mac.hardware",
                                   "comp.windows.x",
                                   "misc.forsale",
                                   "rec.autos",
                                   "rec.motorcycles",
                                   "rec.sport.baseball",
                                   "rec.sport.hockey",
                                   "sci.crypt",
                                   "sci.electronics",
                                   "sci.med",
                                   "sci.space",
                                   "soc.religion.christian",
                                   "talk.politics.guns",
                                   "talk.politics.mideast",
                                   "talk.politics.misc",
                                   "talk.religion.misc"};
static const uint32_t s_train_counts[20] = {480, 584, 591, 590, 578, 593, 585, 594, 598, 597,
                                            600, 595, 591, 594, 593, 599, 546, 564, 465, 377};
static const uint32_t s_test_counts[20] = {319, 389, 394, 392, 385, 395, 390, 396, 398, 397,
                                           399, 396, 393, 396, 394, 398, 364, 376, 310, 251};

static double s_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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

//  A cleaned copy of document i of part p (caller frees), its length in *n.
static char *s_cleaned(const hafl_newsgroups_t *ng, int p, uint32_t i, size_t *n)
{
    const hafl_newsgroups_doc_t *d = hafl_newsgroups_doc(ng, (hafl_newsgroups_part_t)p, i);
    char *text = malloc(d->len + 1);
    CHECK(text);
    memcpy(text, d->text, d->len);
    *n = hafl_clean_apply(text, d->len, HAFL_CLEAN_ALL);
    return text;
}

static int s_dump(const hafl_newsgroups_t *ng, const char *file)
{
    FILE *out = fopen(file, "wb");
    CHECKF(out, "cannot write %s", file);
    for (int p = 0; p < 2; p++)
        for (uint32_t i = 0; i < hafl_newsgroups_count(ng, (hafl_newsgroups_part_t)p); i++) {
            const hafl_newsgroups_doc_t *d = hafl_newsgroups_doc(ng, (hafl_newsgroups_part_t)p, i);
            size_t n;
            char *text = s_cleaned(ng, p, i, &n);
            fprintf(out, "%d %s %llu %zu\n", p, hafl_newsgroups_class_name(ng, d->label),
                    (unsigned long long)d->id, n);
            CHECK(fwrite(text, 1, n, out) == n);
            fputc('\n', out);
            free(text);
        }
    CHECK(fclose(out) == 0);
    return 0;
}

int main(int argc, char **argv)
{
    char *archive = s_asset_or_skip("20news-bydate.tar.gz");
    char err[1024];
    double t0 = s_now();
    hafl_newsgroups_t *ng = hafl_newsgroups_load(archive, err, sizeof err);
    CHECKF(ng, "%s", err);
    double t1 = s_now();
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) {
        s_dump(ng, argv[2]);
        printf("%s\n", archive);
        hafl_newsgroups_destroy(&ng);
        free(archive);
        return 0;
    }

    CHECK(hafl_newsgroups_classes(ng) == 20);
    uint32_t counts[2][20] = {{0}};
    for (int p = 0; p < 2; p++)
        for (uint32_t i = 0; i < hafl_newsgroups_count(ng, (hafl_newsgroups_part_t)p); i++) {
            const hafl_newsgroups_doc_t *d = hafl_newsgroups_doc(ng, (hafl_newsgroups_part_t)p, i);
            CHECK(d->label < 20);
            counts[p][d->label]++;
        }
    for (uint32_t c = 0; c < 20; c++) {
        CHECKF(strcmp(hafl_newsgroups_class_name(ng, c), s_groups[c]) == 0, "class %u: %s", c,
               hafl_newsgroups_class_name(ng, c));
        CHECKF(counts[0][c] == s_train_counts[c] && counts[1][c] == s_test_counts[c],
               "%s: %u train, %u test", s_groups[c], counts[0][c], counts[1][c]);
    }
    CHECK(hafl_newsgroups_count(ng, HAFL_NEWSGROUPS_TRAIN) == 11314);
    CHECK(hafl_newsgroups_count(ng, HAFL_NEWSGROUPS_TEST) == 7532);

    //  Cleaning totals, as scikit-learn's functions give them on this corpus.
    uint32_t blank = 0, empty = 0;
    for (int p = 0; p < 2; p++)
        for (uint32_t i = 0; i < hafl_newsgroups_count(ng, (hafl_newsgroups_part_t)p); i++) {
            size_t n;
            char *text = s_cleaned(ng, p, i, &n);
            size_t k = 0;
            while (k < n && hafl_clean_is_space((unsigned char)text[k]))
                k++;
            blank += k == n;
            empty += n == 0;
            free(text);
        }
    double t2 = s_now();
    CHECKF(blank == 515 && empty == 380, "%u whitespace-only, %u empty", blank, empty);

    //  The whole tokenised set with the model's tokenizer, built, cached and read back.
    char *tokpath = s_asset_or_skip("tok512.bin");
    hafl_tokenizer_t *tok = hafl_tokenizer_load(tokpath, 512, err, sizeof err);
    CHECKF(tok, "%s", err);
    char *dir = fixture_tmpdir();
    hafl_tokset_opts_t opts = {.max_tokens = 128, .keep_empty = true, .cache_dir = dir};
    double t3 = s_now();
    hafl_tokset_t *set = hafl_tokset_new(ng, tok, &opts, err, sizeof err);
    CHECKF(set, "%s", err);
    double t4 = s_now();
    CHECK(!hafl_tokset_from_cache(set));
    hafl_tokset_part_t train = hafl_tokset_part(set, HAFL_NEWSGROUPS_TRAIN);
    hafl_tokset_part_t test = hafl_tokset_part(set, HAFL_NEWSGROUPS_TEST);
    CHECK(train.n == 11314 && test.n == 7532 && train.max_tokens == 128);
    uint64_t tokens = 0;
    for (uint32_t i = 0; i < train.n; i++)
        tokens += train.lengths[i];
    //  Rows equal encoding the whole cleaned document (every 10th, to keep this quick).
    for (uint32_t i = 0; i < train.n; i += 10) {
        const hafl_newsgroups_doc_t *d = hafl_newsgroups_doc(ng, HAFL_NEWSGROUPS_TRAIN, i);
        char *text = malloc(3 * d->len + 4);
        int32_t *ids = malloc((2 * d->len + 3) * sizeof *ids);
        CHECK(text && ids);
        memcpy(text, d->text, d->len);
        size_t n = hafl_clean_apply(text, d->len, HAFL_CLEAN_ALL);
        char *utf8 = text + d->len;
        utf8[hafl_clean_latin1_to_utf8(text, n, utf8)] = '\0';
        size_t m;
        CHECK(hafl_tokenizer_encode(tok, utf8, true, false, ids, 2 * d->len + 3, &m) == 0);
        uint32_t length = m < 128 ? (uint32_t)m : 128;
        CHECKF(train.lengths[i] == length &&
                   memcmp(train.tokens + (size_t)i * 128, ids, length * sizeof *ids) == 0,
               "train example %u differs from encoding the whole document", i);
        free(ids);
        free(text);
    }
    double t5 = s_now();
    hafl_tokset_t *again = hafl_tokset_new(ng, tok, &opts, err, sizeof err);
    CHECKF(again && hafl_tokset_from_cache(again), "%s", again ? hafl_tokset_note(again) : err);
    double t6 = s_now();
    hafl_tokset_part_t cached = hafl_tokset_part(again, HAFL_NEWSGROUPS_TRAIN);
    CHECK(memcmp(cached.tokens, train.tokens, (size_t)train.n * 128 * sizeof(int32_t)) == 0);
    hafl_tokset_destroy(&again);
    hafl_tokset_destroy(&set);

    opts.keep_empty = false;
    opts.cache_dir = "";
    set = hafl_tokset_new(ng, tok, &opts, err, sizeof err);
    CHECKF(set, "%s", err);
    train = hafl_tokset_part(set, HAFL_NEWSGROUPS_TRAIN);
    test = hafl_tokset_part(set, HAFL_NEWSGROUPS_TEST);
    CHECKF(train.n + test.n == 11314 + 7532 - 515, "%u + %u examples", train.n, test.n);
    hafl_tokset_destroy(&set);

    printf("read archive %.2f s, clean all %.2f s, clean+tokenise %.2f s, cache read %.2f s\n",
           t1 - t0, t2 - t1, t4 - t3, t6 - t5);
    printf("train: %u examples, mean length %.1f tokens of 128\n", 11314, (double)tokens / 11314.0);
    hafl_tokenizer_destroy(&tok);
    hafl_newsgroups_destroy(&ng);
    fixture_rmtree(dir);
    free(dir);
    free(tokpath);
    free(archive);
    printf("data_newsgroups: ok\n");
    return 0;
}
