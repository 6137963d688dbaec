/*  hafl_newsgroups: the 20 Newsgroups "by date" corpus, read as raw latin-1 documents.

    Source: the 20news-bydate archive (.tar.gz, or any format and filter libarchive reads), read
    directly without extracting, or a folder holding its extracted 20news-bydate-train/ and
    20news-bydate-test/ folders. Documents are the regular files
    20news-bydate-{train,test}/<group>/<id> (a leading "./" is allowed); <id> must be a decimal
    number. Other regular files, deeper paths, duplicate ids or a group present in one part and
    not the other are errors naming the entry: the corpus is validated, not guessed at.

    Labels are the indices of the sorted (byte order) group names, as scikit-learn's load_files
    gives them; both parts share one class list. Within a part, documents are ordered by label,
    then by numeric id. (scikit-learn lists files in string order, "10140" before "9976"; it
    shuffles them right after, so only the deterministic order matters here, and numeric order
    is the natural one for these ids.) The text is kept as read: bytes, one latin-1 code point
    each, with a terminating NUL after len bytes for convenience (text may hold NULs itself).

    Caps, checked before allocating: 256 groups, 100000 documents, 16 MiB per document.

    Ownership: hafl_newsgroups_load returns a corpus the caller owns; destroy frees it and nulls
    the pointer. Pointers returned by the accessors live as long as the corpus.
*/
#ifndef HAFL_NEWSGROUPS_H
#define HAFL_NEWSGROUPS_H

#include <stddef.h>
#include <stdint.h>

#define HAFL_NEWSGROUPS_MAX_CLASSES   256
#define HAFL_NEWSGROUPS_MAX_DOCS      100000
#define HAFL_NEWSGROUPS_MAX_DOC_BYTES (16u << 20)

typedef enum { HAFL_NEWSGROUPS_TRAIN = 0, HAFL_NEWSGROUPS_TEST = 1 } hafl_newsgroups_part_t;

typedef struct {
    char *text; //  [len + 1] raw latin-1 bytes, NUL-terminated
    size_t len;
    uint32_t label; //  index into the sorted group names
    uint64_t id;    //  the numeric file name
} hafl_newsgroups_doc_t;

typedef struct hafl_newsgroups_t hafl_newsgroups_t;

//  Read the archive file or extracted folder at path (a real path; callers resolve asset names
//  with hafl_asset_find first). NULL with a one-line reason naming the path/entry in err.
hafl_newsgroups_t *hafl_newsgroups_load(const char *path, char *err, size_t errlen);
void hafl_newsgroups_destroy(hafl_newsgroups_t **self_p);

uint32_t hafl_newsgroups_classes(const hafl_newsgroups_t *self);
//  Group name of label (e.g. "alt.atheism"); label < classes.
const char *hafl_newsgroups_class_name(const hafl_newsgroups_t *self, uint32_t label);
uint32_t hafl_newsgroups_count(const hafl_newsgroups_t *self, hafl_newsgroups_part_t part);
//  Document i of a part, i < count.
const hafl_newsgroups_doc_t *hafl_newsgroups_doc(const hafl_newsgroups_t *self,
                                                 hafl_newsgroups_part_t part, uint32_t i);
//  SHA-256 of the corpus content in order: class names, then per part and document its label,
//  id, length and bytes. Equal for an archive and its extracted folder, whatever the packing.
void hafl_newsgroups_digest(const hafl_newsgroups_t *self, uint8_t digest[32]);

#endif
