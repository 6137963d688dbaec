/*  test_data_fixture: scratch folders, crafted corpora (as a .tar.gz and as extracted folders)
    and a crafted llama2.c tokenizer for the data tests. Header-only; every helper CHECKs its own
    work, so a test fails at the first thing that could not be set up.
*/
#ifndef TEST_DATA_FIXTURE_H
#define TEST_DATA_FIXTURE_H

#include "hafl_test.h"

#include <archive.h>
#include <archive_entry.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *path; //  e.g. "20news-bydate-train/alt.atheism/49960"
    const char *text;
    size_t len; //  0: strlen (text)
} fixture_file_t;

//  A new empty scratch folder (caller frees the string, removes the folder).
static inline char *fixture_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/hafl-data-XXXXXX", base && *base ? base : P_tmpdir);
    CHECKF(mkdtemp(buf), "cannot create a scratch folder under %s", buf);
    char *dir = strdup(buf);
    CHECK(dir);
    return dir;
}

static inline int fixture_unlink_cb(const char *path, const struct stat *st, int flag,
                                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void fixture_rmtree(const char *dir)
{
    nftw(dir, fixture_unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline size_t fixture_len(const fixture_file_t *f)
{
    return f->len ? f->len : strlen(f->text);
}

//  Writes bytes to root/rel, creating the folders on the way.
static inline void fixture_write_file(const char *root, const char *rel, const void *bytes,
                                      size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    mkdir(root, 0755);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "wb");
    CHECKF(f, "cannot write %s", path);
    CHECK(fwrite(bytes, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

static inline void fixture_write_folder(const char *root, const fixture_file_t *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fixture_write_file(root, files[i].path, files[i].text, fixture_len(&files[i]));
}

//  A gzip-compressed tar (pax) of the files at path; prefix ("./" or "") goes before each name.
static inline void fixture_write_archive(const char *path, const fixture_file_t *files, size_t n,
                                         const char *prefix)
{
    struct archive *a = archive_write_new();
    CHECK(a);
    CHECK(archive_write_add_filter_gzip(a) == ARCHIVE_OK);
    CHECK(archive_write_set_format_pax_restricted(a) == ARCHIVE_OK);
    CHECKF(archive_write_open_filename(a, path) == ARCHIVE_OK, "%s", archive_error_string(a));
    for (size_t i = 0; i < n; i++) {
        char name[1024];
        snprintf(name, sizeof name, "%s%s", prefix, files[i].path);
        struct archive_entry *e = archive_entry_new();
        CHECK(e);
        archive_entry_set_pathname(e, name);
        archive_entry_set_size(e, (la_int64_t)fixture_len(&files[i]));
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        CHECK(archive_write_header(a, e) == ARCHIVE_OK);
        CHECK(archive_write_data(a, files[i].text, fixture_len(&files[i])) ==
              (la_ssize_t)fixture_len(&files[i]));
        archive_entry_free(e);
    }
    CHECK(archive_write_close(a) == ARCHIVE_OK);
    archive_write_free(a);
}

static inline void fixture_put_i32(FILE *f, int32_t v)
{
    CHECK(fwrite(&v, 4, 1, f) == 1);
}

//  A llama2.c tokenizer file: <unk>, <s>, </s>, the 256 byte pieces, every printable ASCII
//  character, then a few merges (" t", "th", "he", " the", "er"). bonus is added to the score
//  of "he", so a test can make a tokenizer that differs in one score. Returns the vocab size.
static inline int fixture_write_tokenizer(const char *path, float bonus)
{
    FILE *f = fopen(path, "wb");
    CHECKF(f, "cannot write %s", path);
    fixture_put_i32(f, 16);
    int vocab = 0;
#define FIXTURE_PIECE(str, score)                                                                  \
    do {                                                                                           \
        float s_ = (score);                                                                        \
        int32_t n_ = (int32_t)strlen(str);                                                         \
        CHECK(fwrite(&s_, 4, 1, f) == 1);                                                          \
        fixture_put_i32(f, n_);                                                                    \
        CHECK(fwrite(str, 1, (size_t)n_, f) == (size_t)n_);                                        \
        vocab++;                                                                                   \
    } while (0)
    FIXTURE_PIECE("<unk>", 0.0f);
    FIXTURE_PIECE("\n<s>\n", 0.0f);
    FIXTURE_PIECE("\n</s>\n", 0.0f);
    for (int b = 0; b < 256; b++) {
        char piece[8];
        snprintf(piece, sizeof piece, "<0x%02X>", b);
        FIXTURE_PIECE(piece, 0.0f);
    }
    for (int c = 32; c < 127; c++) {
        char piece[2] = {(char)c, 0};
        FIXTURE_PIECE(piece, -1.0f - (float)c / 100.0f);
    }
    FIXTURE_PIECE(" t", 1.0f);
    FIXTURE_PIECE("th", 2.0f);
    FIXTURE_PIECE("he", 3.0f + bonus);
    FIXTURE_PIECE(" the", 4.0f);
    FIXTURE_PIECE("er", 0.5f);
#undef FIXTURE_PIECE
    CHECK(fclose(f) == 0);
    return vocab;
}

#endif
