/*  hafl_newsgroups: reads the 20news-bydate corpus from its archive or extracted folder.

    Both sources feed one list of raw entries (part, group, id, bytes); labels, order and checks
    are then applied once, so an archive and its extraction give the same corpus and digest.
*/
#include "hafl_newsgroups.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *s_part_names[2] = {"20news-bydate-train", "20news-bydate-test"};

typedef struct {
    int part;
    char *group; //  owned until labels are assigned
    hafl_newsgroups_doc_t doc;
} s_entry_t;

struct hafl_newsgroups_t {
    uint32_t classes;
    char **class_names;             //  [classes]
    uint32_t count[2];              //  documents per part
    hafl_newsgroups_doc_t *docs[2]; //  [count[part]]
    uint8_t digest[32];
};

//  The list of raw entries being collected, and where errors go.
typedef struct {
    s_entry_t *entries;
    size_t n, cap;
    const char *source;
    char *err;
    size_t errlen;
} s_reader_t;

static int s_fail(s_reader_t *r, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->errlen, "%s: %s", r->source, reason);
    return -1;
}

//  A file name is a document id when it is 1..18 decimal digits.
static bool s_parse_id(const char *name, uint64_t *id)
{
    size_t n = strlen(name);
    if (n == 0 || n > 18)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *id = v;
    return true;
}

static int s_part_of(const char *name)
{
    for (int p = 0; p < 2; p++)
        if (strcmp(name, s_part_names[p]) == 0)
            return p;
    return -1;
}

//  Takes ownership of text (malloc'd, len + 1 bytes, NUL-terminated) in every case.
static int s_add(s_reader_t *r, int part, const char *group, const char *name, char *text,
                 size_t len)
{
    uint64_t id;
    if (!s_parse_id(name, &id)) {
        free(text);
        return s_fail(r, "%s/%s/%s: file name is not a numeric document id", s_part_names[part],
                      group, name);
    }
    if (r->n == r->cap) {
        if (r->cap >= HAFL_NEWSGROUPS_MAX_DOCS) {
            free(text);
            return s_fail(r, "more than %u documents", HAFL_NEWSGROUPS_MAX_DOCS);
        }
        size_t cap = r->cap ? r->cap * 2 : 1024;
        if (cap > HAFL_NEWSGROUPS_MAX_DOCS)
            cap = HAFL_NEWSGROUPS_MAX_DOCS;
        s_entry_t *grown = realloc(r->entries, cap * sizeof *grown);
        if (!grown) {
            free(text);
            return s_fail(r, "out of memory");
        }
        r->entries = grown;
        r->cap = cap;
    }
    char *group_copy = strdup(group);
    if (!group_copy) {
        free(text);
        return s_fail(r, "out of memory");
    }
    s_entry_t *e = &r->entries[r->n++];
    e->part = part;
    e->group = group_copy;
    e->doc = (hafl_newsgroups_doc_t){.text = text, .len = len, .label = 0, .id = id};
    return 0;
}

//  Splits "[./]part/group/name" into its three parts (in buf); false when the shape differs.
static bool s_split_path(char *buf, int *part, char **group, char **name)
{
    char *p = buf;
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    char *slash1 = strchr(p, '/');
    if (!slash1)
        return false;
    *slash1 = '\0';
    char *slash2 = strchr(slash1 + 1, '/');
    if (!slash2)
        return false;
    *slash2 = '\0';
    *group = slash1 + 1;
    *name = slash2 + 1;
    *part = s_part_of(p);
    return *part >= 0 && **group && **name && !strchr(*name, '/');
}

//  Reads a source chunk by chunk (chunk returns bytes, 0 at the end, -1 on error) into a new
//  NUL-terminated buffer of at most HAFL_NEWSGROUPS_MAX_DOC_BYTES; hint is the expected size.
static char *s_slurp(s_reader_t *r, const char *what, ssize_t (*chunk)(void *, char *, size_t),
                     void *source, size_t hint, size_t *len)
{
    size_t cap = hint < 4096 ? 4096 : hint, n = 0;
    if (cap > HAFL_NEWSGROUPS_MAX_DOC_BYTES)
        cap = HAFL_NEWSGROUPS_MAX_DOC_BYTES;
    char *text = malloc(cap + 1);
    for (;;) {
        if (!text) {
            s_fail(r, "out of memory reading %s", what);
            return NULL;
        }
        if (n == cap) {
            if (cap >= HAFL_NEWSGROUPS_MAX_DOC_BYTES) {
                s_fail(r, "%s is larger than %u bytes", what, HAFL_NEWSGROUPS_MAX_DOC_BYTES);
                free(text);
                return NULL;
            }
            cap = cap * 2 > HAFL_NEWSGROUPS_MAX_DOC_BYTES ? HAFL_NEWSGROUPS_MAX_DOC_BYTES : cap * 2;
            char *grown = realloc(text, cap + 1);
            if (!grown)
                free(text);
            text = grown;
            continue;
        }
        ssize_t got = chunk(source, text + n, cap - n);
        if (got < 0) {
            s_fail(r, "cannot read %s: unreadable or corrupt data", what);
            free(text);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    text[n] = '\0';
    *len = n;
    return text;
}

static ssize_t s_archive_chunk(void *source, char *buf, size_t len)
{
    return archive_read_data(source, buf, len);
}

static int s_read_archive(s_reader_t *r, const char *path)
{
    struct archive *a = archive_read_new();
    if (!a)
        return s_fail(r, "out of memory");
    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    int rc = -1;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        s_fail(r, "cannot open archive: %s", archive_error_string(a));
        goto done;
    }
    struct archive_entry *entry;
    for (;;) {
        int status = archive_read_next_header(a, &entry);
        if (status == ARCHIVE_EOF)
            break;
        if (status < ARCHIVE_WARN) {
            s_fail(r, "corrupt archive: %s", archive_error_string(a));
            goto done;
        }
        const char *name = archive_entry_pathname(entry);
        if (!name) {
            s_fail(r, "archive entry without a path");
            goto done;
        }
        if (archive_entry_filetype(entry) == AE_IFDIR)
            continue;
        char buf[4096];
        if (strlen(name) >= sizeof buf) {
            s_fail(r, "entry path longer than %zu bytes", sizeof buf - 1);
            goto done;
        }
        strcpy(buf, name);
        int part;
        char *group, *file;
        if (archive_entry_filetype(entry) != AE_IFREG || !s_split_path(buf, &part, &group, &file)) {
            s_fail(r, "unexpected entry '%s' (want 20news-bydate-{train,test}/GROUP/ID files)",
                   name);
            goto done;
        }
        if (archive_entry_size_is_set(entry) &&
            archive_entry_size(entry) > (int64_t)HAFL_NEWSGROUPS_MAX_DOC_BYTES) {
            s_fail(r, "entry '%s' is larger than %u bytes", name, HAFL_NEWSGROUPS_MAX_DOC_BYTES);
            goto done;
        }
        //  The declared size is a hint only: read until the entry ends, within the cap.
        size_t hint = archive_entry_size_is_set(entry) ? (size_t)archive_entry_size(entry) : 0;
        size_t len;
        char *text = s_slurp(r, name, s_archive_chunk, a, hint, &len);
        if (!text)
            goto done;
        if (s_add(r, part, group, file, text, len))
            goto done;
    }
    rc = 0;
done:
    archive_read_free(a);
    return rc;
}

static ssize_t s_file_chunk(void *source, char *buf, size_t len)
{
    FILE *f = source;
    size_t got = fread(buf, 1, len, f);
    return got == 0 && ferror(f) ? -1 : (ssize_t)got;
}

//  Reads a whole regular file within the per-document cap; NULL with a reason on failure.
static char *s_read_file(s_reader_t *r, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        s_fail(r, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = s_slurp(r, path, s_file_chunk, f, 0, len);
    fclose(f);
    return text;
}

static int s_read_folder(s_reader_t *r, const char *root)
{
    for (int part = 0; part < 2; part++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, s_part_names[part]);
        DIR *groups = opendir(dir);
        if (!groups)
            return s_fail(r, "cannot open folder %s: %s", s_part_names[part], strerror(errno));
        struct dirent *g;
        while ((g = readdir(groups))) {
            if (strcmp(g->d_name, ".") == 0 || strcmp(g->d_name, "..") == 0)
                continue;
            char gdir[4096];
            struct stat st;
            if (snprintf(gdir, sizeof gdir, "%s/%s", dir, g->d_name) >= (int)sizeof gdir ||
                stat(gdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
                s_fail(r, "unexpected entry %s/%s (want group folders)", s_part_names[part],
                       g->d_name);
                closedir(groups);
                return -1;
            }
            DIR *files = opendir(gdir);
            if (!files) {
                s_fail(r, "cannot open folder %s: %s", gdir, strerror(errno));
                closedir(groups);
                return -1;
            }
            struct dirent *f;
            int rc = 0;
            while (rc == 0 && (f = readdir(files))) {
                if (strcmp(f->d_name, ".") == 0 || strcmp(f->d_name, "..") == 0)
                    continue;
                char file[4096];
                if (snprintf(file, sizeof file, "%s/%s", gdir, f->d_name) >= (int)sizeof file ||
                    stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
                    rc = s_fail(r, "unexpected entry %s/%s/%s (want document files)",
                                s_part_names[part], g->d_name, f->d_name);
                    break;
                }
                size_t len;
                char *text = s_read_file(r, file, &len);
                rc = text ? s_add(r, part, g->d_name, f->d_name, text, len) : -1;
            }
            closedir(files);
            if (rc) {
                closedir(groups);
                return rc;
            }
        }
        closedir(groups);
    }
    return 0;
}

static int s_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

//  The sorted distinct group names of one part ([*n], strings borrowed from the entries).
static const char **s_groups_of(s_reader_t *r, int part, uint32_t *n)
{
    const char **names = malloc((r->n + 1) * sizeof *names);
    if (!names)
        return NULL;
    size_t count = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->entries[i].part == part)
            names[count++] = r->entries[i].group;
    qsort(names, count, sizeof *names, s_compare_names);
    size_t distinct = 0;
    for (size_t i = 0; i < count; i++)
        if (distinct == 0 || strcmp(names[distinct - 1], names[i]) != 0)
            names[distinct++] = names[i];
    *n = (uint32_t)distinct;
    return names;
}

static int s_compare_entries(const void *a, const void *b)
{
    const s_entry_t *x = a, *y = b;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    if (x->doc.label != y->doc.label)
        return x->doc.label < y->doc.label ? -1 : 1;
    if (x->doc.id != y->doc.id)
        return x->doc.id < y->doc.id ? -1 : 1;
    return 0;
}

static void s_hash_u64(crypto_hash_sha256_state *h, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    crypto_hash_sha256_update(h, le, sizeof le);
}

//  Labels, order, consistency checks and digest: moves the entries into self.
static int s_assemble(hafl_newsgroups_t *self, s_reader_t *r)
{
    uint32_t n_groups[2];
    const char **groups[2];
    groups[0] = s_groups_of(r, 0, &n_groups[0]);
    groups[1] = s_groups_of(r, 1, &n_groups[1]);
    int rc = -1;
    if (!groups[0] || !groups[1]) {
        s_fail(r, "out of memory");
        goto done;
    }
    for (int p = 0; p < 2; p++)
        if (n_groups[p] == 0) {
            s_fail(r, "no %s documents", s_part_names[p]);
            goto done;
        }
    if (n_groups[0] > HAFL_NEWSGROUPS_MAX_CLASSES) {
        s_fail(r, "%u groups, more than %u", n_groups[0], HAFL_NEWSGROUPS_MAX_CLASSES);
        goto done;
    }
    for (uint32_t i = 0; i < n_groups[0] || i < n_groups[1]; i++) {
        const char *train = i < n_groups[0] ? groups[0][i] : NULL;
        const char *test = i < n_groups[1] ? groups[1][i] : NULL;
        if (!train || !test || strcmp(train, test) != 0) {
            const char *odd = !train                    ? test
                              : !test                   ? train
                              : strcmp(train, test) < 0 ? train
                                                        : test;
            s_fail(r, "group '%s' is in one of %s, %s but not the other", odd, s_part_names[0],
                   s_part_names[1]);
            goto done;
        }
    }
    self->classes = n_groups[0];
    self->class_names = calloc(self->classes, sizeof *self->class_names);
    if (!self->class_names) {
        s_fail(r, "out of memory");
        goto done;
    }
    for (uint32_t c = 0; c < self->classes; c++)
        if (!(self->class_names[c] = strdup(groups[0][c]))) {
            s_fail(r, "out of memory");
            goto done;
        }
    for (size_t i = 0; i < r->n; i++) {
        const char **hit = bsearch(&r->entries[i].group, groups[0], self->classes,
                                   sizeof *groups[0], s_compare_names);
        r->entries[i].doc.label = (uint32_t)(hit - groups[0]);
    }
    qsort(r->entries, r->n, sizeof *r->entries, s_compare_entries);
    for (size_t i = 1; i < r->n; i++)
        if (s_compare_entries(&r->entries[i - 1], &r->entries[i]) == 0) {
            s_fail(r, "duplicate document %s/%s/%llu", s_part_names[r->entries[i].part],
                   r->entries[i].group, (unsigned long long)r->entries[i].doc.id);
            goto done;
        }
    for (int p = 0; p < 2; p++) {
        self->count[p] = 0;
        for (size_t i = 0; i < r->n; i++)
            self->count[p] += r->entries[i].part == p;
        self->docs[p] = calloc(self->count[p], sizeof *self->docs[p]);
        if (!self->docs[p]) {
            s_fail(r, "out of memory");
            goto done;
        }
    }
    //  Hand the texts over: entries are sorted by part, so part 1 follows part 0.
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    s_hash_u64(&h, self->classes);
    for (uint32_t c = 0; c < self->classes; c++)
        crypto_hash_sha256_update(&h, (const uint8_t *)self->class_names[c],
                                  strlen(self->class_names[c]) + 1);
    for (size_t i = 0; i < r->n; i++) {
        s_entry_t *e = &r->entries[i];
        uint32_t k = e->part == 0 ? (uint32_t)i : (uint32_t)(i - self->count[0]);
        self->docs[e->part][k] = e->doc;
        e->doc.text = NULL;
        const hafl_newsgroups_doc_t *d = &self->docs[e->part][k];
        s_hash_u64(&h, (uint64_t)e->part);
        s_hash_u64(&h, d->label);
        s_hash_u64(&h, d->id);
        s_hash_u64(&h, d->len);
        crypto_hash_sha256_update(&h, (const uint8_t *)d->text, d->len);
    }
    crypto_hash_sha256_final(&h, self->digest);
    rc = 0;
done:
    free(groups[0]);
    free(groups[1]);
    return rc;
}

hafl_newsgroups_t *hafl_newsgroups_load(const char *path, char *err, size_t errlen)
{
    s_reader_t r = {.source = path, .err = err, .errlen = errlen};
    hafl_newsgroups_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (sodium_init() < 0) {
        s_fail(&r, "libsodium failed to initialise");
        free(self);
        return NULL;
    }
    struct stat st;
    int rc;
    if (stat(path, &st) != 0)
        rc = s_fail(&r, "cannot read: %s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = s_read_folder(&r, path);
    else
        rc = s_read_archive(&r, path);
    if (rc == 0)
        rc = s_assemble(self, &r);
    for (size_t i = 0; i < r.n; i++) {
        free(r.entries[i].group);
        free(r.entries[i].doc.text);
    }
    free(r.entries);
    if (rc)
        hafl_newsgroups_destroy(&self);
    return self;
}

void hafl_newsgroups_destroy(hafl_newsgroups_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_newsgroups_t *self = *self_p;
    for (int p = 0; p < 2; p++) {
        for (uint32_t i = 0; self->docs[p] && i < self->count[p]; i++)
            free(self->docs[p][i].text);
        free(self->docs[p]);
    }
    for (uint32_t c = 0; self->class_names && c < self->classes; c++)
        free(self->class_names[c]);
    free(self->class_names);
    free(self);
    *self_p = NULL;
}

uint32_t hafl_newsgroups_classes(const hafl_newsgroups_t *self)
{
    return self->classes;
}

const char *hafl_newsgroups_class_name(const hafl_newsgroups_t *self, uint32_t label)
{
    return label < self->classes ? self->class_names[label] : NULL;
}

uint32_t hafl_newsgroups_count(const hafl_newsgroups_t *self, hafl_newsgroups_part_t part)
{
    return self->count[part == HAFL_NEWSGROUPS_TEST];
}

const hafl_newsgroups_doc_t *hafl_newsgroups_doc(const hafl_newsgroups_t *self,
                                                 hafl_newsgroups_part_t part, uint32_t i)
{
    int p = part == HAFL_NEWSGROUPS_TEST;
    return i < self->count[p] ? &self->docs[p][i] : NULL;
}

void hafl_newsgroups_digest(const hafl_newsgroups_t *self, uint8_t digest[32])
{
    memcpy(digest, self->digest, 32);
}
