/*  test_data_archive: the 20news-bydate reader on crafted corpora.

    The same crafted corpus is written as a .tar.gz (with and without a "./" prefix) and as an
    extracted folder; all three must give the same documents, labels (sorted group names),
    order (label, then numeric id: 9 before 10 before 100) and digest. Then malformed corpora,
    each rejected with a reason naming what is wrong.
*/
#include "hafl_newsgroups.h"
#include "test_data_fixture.h"

static const fixture_file_t s_corpus[] = {
    {"20news-bydate-train/b.grp/100", "From: x\n\nhundred\r\n", 0},
    {"20news-bydate-train/b.grp/9", "nine \xe9\xa0", 0},
    {"20news-bydate-train/b.grp/10", "ten", 0},
    {"20news-bydate-train/a.grp/5", "five", 0},
    {"20news-bydate-train/c.grp/1", "", 0},
    {"20news-bydate-test/c.grp/7", "seven", 0},
    {"20news-bydate-test/a.grp/3", "three", 0},
    {"20news-bydate-test/b.grp/2", "two\0with nul", 12},
};
#define S_CORPUS_FILES (sizeof s_corpus / sizeof s_corpus[0])

static void s_check_doc(const hafl_newsgroups_t *ng, hafl_newsgroups_part_t part, uint32_t i,
                        uint32_t label, uint64_t id, const char *text, size_t len)
{
    const hafl_newsgroups_doc_t *d = hafl_newsgroups_doc(ng, part, i);
    CHECK(d);
    CHECKF(d->label == label && d->id == id, "part %d doc %u: label %u id %llu", part, i, d->label,
           (unsigned long long)d->id);
    CHECK(d->len == len && memcmp(d->text, text, len) == 0 && d->text[len] == '\0');
}

static void s_check_corpus(const hafl_newsgroups_t *ng)
{
    CHECK(hafl_newsgroups_classes(ng) == 3);
    CHECK(strcmp(hafl_newsgroups_class_name(ng, 0), "a.grp") == 0);
    CHECK(strcmp(hafl_newsgroups_class_name(ng, 1), "b.grp") == 0);
    CHECK(strcmp(hafl_newsgroups_class_name(ng, 2), "c.grp") == 0);
    CHECK(hafl_newsgroups_class_name(ng, 3) == NULL);
    CHECK(hafl_newsgroups_count(ng, HAFL_NEWSGROUPS_TRAIN) == 5);
    CHECK(hafl_newsgroups_count(ng, HAFL_NEWSGROUPS_TEST) == 3);
    s_check_doc(ng, HAFL_NEWSGROUPS_TRAIN, 0, 0, 5, "five", 4);
    s_check_doc(ng, HAFL_NEWSGROUPS_TRAIN, 1, 1, 9, "nine \xe9\xa0", 7);
    s_check_doc(ng, HAFL_NEWSGROUPS_TRAIN, 2, 1, 10, "ten", 3);
    s_check_doc(ng, HAFL_NEWSGROUPS_TRAIN, 3, 1, 100, "From: x\n\nhundred\r\n", 18);
    s_check_doc(ng, HAFL_NEWSGROUPS_TRAIN, 4, 2, 1, "", 0);
    s_check_doc(ng, HAFL_NEWSGROUPS_TEST, 0, 0, 3, "three", 5);
    s_check_doc(ng, HAFL_NEWSGROUPS_TEST, 1, 1, 2, "two\0with nul", 12);
    s_check_doc(ng, HAFL_NEWSGROUPS_TEST, 2, 2, 7, "seven", 5);
    CHECK(hafl_newsgroups_doc(ng, HAFL_NEWSGROUPS_TEST, 3) == NULL);
}

//  Writes files as an archive in dir and expects loading to fail with a reason holding needle.
static void s_expect_error(const char *dir, const char *name, const fixture_file_t *files, size_t n,
                           const char *needle)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.tar.gz", dir, name);
    fixture_write_archive(path, files, n, "");
    char err[512] = "";
    hafl_newsgroups_t *ng = hafl_newsgroups_load(path, err, sizeof err);
    CHECKF(!ng, "%s: loaded a malformed corpus", name);
    CHECKF(strstr(err, needle) && strstr(err, path), "%s: reason '%s' lacks '%s'", name, err,
           needle);
}

static void s_check_errors(const char *dir)
{
    fixture_file_t bad[S_CORPUS_FILES + 1];
    memcpy(bad, s_corpus, sizeof s_corpus);

    bad[S_CORPUS_FILES] = (fixture_file_t){"20news-bydate-train/a.grp/notes.txt", "x", 0};
    s_expect_error(dir, "name", bad, S_CORPUS_FILES + 1, "notes.txt");
    bad[S_CORPUS_FILES] = (fixture_file_t){"20news-bydate-test/a.grp/003", "x", 0};
    s_expect_error(dir, "duplicate", bad, S_CORPUS_FILES + 1, "duplicate");
    bad[S_CORPUS_FILES] = (fixture_file_t){"20news-bydate-train/d.grp/1", "x", 0};
    s_expect_error(dir, "group", bad, S_CORPUS_FILES + 1, "d.grp");
    bad[S_CORPUS_FILES] = (fixture_file_t){"README", "x", 0};
    s_expect_error(dir, "stray", bad, S_CORPUS_FILES + 1, "README");
    bad[S_CORPUS_FILES] = (fixture_file_t){"20news-bydate-train/a.grp/sub/1", "x", 0};
    s_expect_error(dir, "deep", bad, S_CORPUS_FILES + 1, "a.grp/sub/1");
    bad[S_CORPUS_FILES] = (fixture_file_t){"20news-bydate-dev/a.grp/1", "x", 0};
    s_expect_error(dir, "part", bad, S_CORPUS_FILES + 1, "20news-bydate-dev");
    s_expect_error(dir, "notest", s_corpus, 5, "no 20news-bydate-test documents");

    //  A truncated archive, a file that is no archive, and a path that does not exist.
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/whole.tar.gz", dir);
    fixture_write_archive(path, s_corpus, S_CORPUS_FILES, "");
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(truncate(path, st.st_size / 2) == 0);
    CHECK(!hafl_newsgroups_load(path, err, sizeof err));
    CHECKF(strstr(err, path), "%s", err);
    snprintf(path, sizeof path, "%s/plain.txt", dir);
    fixture_write_file(dir, "plain.txt", "just text\n", 10);
    CHECK(!hafl_newsgroups_load(path, err, sizeof err));
    CHECKF(strstr(err, path), "%s", err);
    snprintf(path, sizeof path, "%s/missing.tar.gz", dir);
    CHECK(!hafl_newsgroups_load(path, err, sizeof err));
    CHECKF(strstr(err, "missing.tar.gz"), "%s", err);

    //  A folder with a stray file among the groups.
    char folder[4096];
    snprintf(folder, sizeof folder, "%s/strayfolder", dir);
    fixture_write_folder(folder, s_corpus, S_CORPUS_FILES);
    fixture_write_file(folder, "20news-bydate-test/list.txt", "x", 1);
    CHECK(!hafl_newsgroups_load(folder, err, sizeof err));
    CHECKF(strstr(err, "list.txt"), "%s", err);
}

int main(void)
{
    char *dir = fixture_tmpdir();
    char path[4096], err[512];
    uint8_t digest[3][32];

    snprintf(path, sizeof path, "%s/corpus.tar.gz", dir);
    fixture_write_archive(path, s_corpus, S_CORPUS_FILES, "");
    hafl_newsgroups_t *ng = hafl_newsgroups_load(path, err, sizeof err);
    CHECKF(ng, "%s", err);
    s_check_corpus(ng);
    hafl_newsgroups_digest(ng, digest[0]);
    hafl_newsgroups_destroy(&ng);
    CHECK(ng == NULL);
    hafl_newsgroups_destroy(&ng);

    snprintf(path, sizeof path, "%s/dotted.tar.gz", dir);
    fixture_write_archive(path, s_corpus, S_CORPUS_FILES, "./");
    ng = hafl_newsgroups_load(path, err, sizeof err);
    CHECKF(ng, "%s", err);
    s_check_corpus(ng);
    hafl_newsgroups_digest(ng, digest[1]);
    hafl_newsgroups_destroy(&ng);

    snprintf(path, sizeof path, "%s/extracted", dir);
    fixture_write_folder(path, s_corpus, S_CORPUS_FILES);
    ng = hafl_newsgroups_load(path, err, sizeof err);
    CHECKF(ng, "%s", err);
    s_check_corpus(ng);
    hafl_newsgroups_digest(ng, digest[2]);
    hafl_newsgroups_destroy(&ng);

    CHECK(memcmp(digest[0], digest[1], 32) == 0 && memcmp(digest[0], digest[2], 32) == 0);

    //  One changed byte changes the digest.
    fixture_file_t changed[S_CORPUS_FILES];
    memcpy(changed, s_corpus, sizeof s_corpus);
    changed[2].text = "tem";
    snprintf(path, sizeof path, "%s/changed.tar.gz", dir);
    fixture_write_archive(path, changed, S_CORPUS_FILES, "");
    ng = hafl_newsgroups_load(path, err, sizeof err);
    CHECKF(ng, "%s", err);
    uint8_t other[32];
    hafl_newsgroups_digest(ng, other);
    CHECK(memcmp(digest[0], other, 32) != 0);
    hafl_newsgroups_destroy(&ng);

    s_check_errors(dir);
    fixture_rmtree(dir);
    free(dir);
    printf("data_archive: ok\n");
    return 0;
}
