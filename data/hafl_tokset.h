/*  hafl_tokset: the 20 Newsgroups corpus cleaned and tokenised, with an on-disk cache.

    Each document (train and test) becomes one example of T = max_tokens token ids:
        cleaned = hafl_clean_apply (raw latin-1 text, HAFL_CLEAN_ALL)   (sklearn's cleaning)
        ids     = hafl_tokenizer_encode (latin-1 -> UTF-8 of cleaned, bos = true, eos = false)
        row     = the first min(len(ids), T) ids, then HAFL_TOKSET_PAD up to T
    so a row always starts with BOS (hafl_tokenizer_bos; a tokenizer without one is refused) and
    holds length >= 1 real tokens (an empty document is BOS alone). The tokenizer sees the text up to its first NUL byte (the corpus has none). Only a
    prefix of a long document is encoded when the tokenizer allows it exactly (no piece joins a
    non-space to a following space, so merges never cross a word boundary): the rows are the
    same as encoding whole documents, at a fraction of the cost.
    With collapse_spaces, the UTF-8 text is normalised before encoding as SentencePiece's
    default normaliser (remove_extra_whitespaces) does: leading and trailing spaces dropped, each
    run of spaces made one; only U+0020 counts, tabs and newlines are kept. A tokenizer trained
    with SentencePiece's defaults (base3M's tok4096) never saw runs of spaces, and llama2.c's
    encoder, which this one follows, does not normalise. The setting is part of the cache key.
    A document is "empty" when its cleaned text is only whitespace (Python's str.strip() == "";
    515 of the 18,846). keep_empty = false drops those; doc_index still names each kept
    example's document in its part.

    The cache: <cache_dir>/20news-<16 hex digits>.tokset, keyed by the SHA-256 of every input
    (corpus content digest, tokenizer pieces and scores, HAFL_CLEAN_VERSION, max_tokens,
    keep_empty, HAFL_TOKSET_VERSION); the digest is also stored inside and compared. Layout, all
    little-endian:
        "HAFLTOKS" u32 version  u8[32] input digest
        u32 max_tokens  u32 keep_empty  u32 vocab_size  u32 classes  u32 n_train  u32 n_test
        classes x (u32 name length 1..255, name bytes)
        per part (train, test): u32 labels[n]  u32 doc_index[n]  u32 lengths[n]  i32 tokens[n][T]
        u8[32] SHA-256 of all the bytes before it
    A cache file is used only when its size is exactly what its header implies, its checksum,
    digest and settings match, and every value is in range and agrees with the corpus (labels,
    document order, BOS first, ids < vocab, padding). Anything else is rebuilt and rewritten
    (temporary file, fsync, rename), and the reason is in the note. A cache that cannot be
    written is not an error: the set is built in memory and the note says why.

    Ownership: _new returns a set the caller owns; destroy frees it and nulls the pointer. The
    views returned by hafl_tokset_part point into the set and live as long as it does.
*/
#ifndef HAFL_TOKSET_H
#define HAFL_TOKSET_H

#include "hafl_newsgroups.h"
#include "hafl_tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HAFL_TOKSET_VERSION    1
#define HAFL_TOKSET_PAD        0 //  id written after a row's last real token
#define HAFL_TOKSET_MAX_TOKENS 4096

typedef struct hafl_tokset_t hafl_tokset_t;

typedef struct {
    uint32_t max_tokens;   //  T, 1..HAFL_TOKSET_MAX_TOKENS
    bool keep_empty;       //  keep documents that are empty after cleaning
    bool collapse_spaces;  //  normalise spaces as SentencePiece does by default (below)
    const char *cache_dir; //  NULL: $HOME/.cache/hafl; "": no cache (always build)
    //  Optional: receives one line for each notable event (cache hit, rebuild and its reason).
    void (*log)(void *arg, const char *line);
    void *log_arg;
} hafl_tokset_opts_t;

//  One part (train or test) as flat arrays: example i is tokens[i*T .. i*T + T).
typedef struct {
    uint32_t n;                //  examples
    uint32_t max_tokens;       //  T
    const int32_t *tokens;     //  [n][T] BOS, text ids, then HAFL_TOKSET_PAD
    const uint32_t *lengths;   //  [n] real tokens in each row, 1..T
    const uint32_t *labels;    //  [n] class index < classes
    const uint32_t *doc_index; //  [n] the example's document index within its corpus part
} hafl_tokset_part_t;

//  Clean and tokenise every document of corpus with tokenizer, or load the matching cache.
//  NULL with a one-line reason in err (bad options, no memory, tokenizer failure).
hafl_tokset_t *hafl_tokset_new(const hafl_newsgroups_t *corpus, const hafl_tokenizer_t *tokenizer,
                               const hafl_tokset_opts_t *opts, char *err, size_t errlen);
//  Convenience: load the corpus at path (archive or folder), build the set, drop the corpus.
hafl_tokset_t *hafl_tokset_new_from_path(const char *path, const hafl_tokenizer_t *tokenizer,
                                         const hafl_tokset_opts_t *opts, char *err, size_t errlen);
void hafl_tokset_destroy(hafl_tokset_t **self_p);

hafl_tokset_part_t hafl_tokset_part(const hafl_tokset_t *self, hafl_newsgroups_part_t part);
uint32_t hafl_tokset_classes(const hafl_tokset_t *self);
const char *hafl_tokset_class_name(const hafl_tokset_t *self, uint32_t label);
//  The cache key: SHA-256 of all inputs (see above). Part of a task's base digest.
void hafl_tokset_digest(const hafl_tokset_t *self, uint8_t digest[32]);
//  True when the set came from the cache file rather than being built.
bool hafl_tokset_from_cache(const hafl_tokset_t *self);
//  One line on where the set came from: cache hit, or built (and why, and whether cached).
const char *hafl_tokset_note(const hafl_tokset_t *self);
//  Path of the cache file used or written ("" when there is none).
const char *hafl_tokset_cache_path(const hafl_tokset_t *self);

//  SentencePiece's remove_extra_whitespaces on the UTF-8 text[0..len), as collapse_spaces applies
//  it: drops leading and trailing spaces and makes each run of spaces one (U+0020 only; tabs,
//  newlines and U+00A0 are kept). In place, then a NUL at text[result], so text needs len + 1
//  bytes. Returns the new length.
size_t hafl_tokset_collapse_spaces(char *text, size_t len);

#endif
