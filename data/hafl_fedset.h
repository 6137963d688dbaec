/*  hafl_fedset: the federated view of 20 Newsgroups that a task needs, built in one call.

    From the topology's data settings it resolves the archive (asset name or path), loads or
    builds the tokenised set (hafl_tokset, cached), takes the optional deterministic training and
    test subsets (hafl_split_subset: train_limit, test_limit) and splits the training examples
    across the clients (hafl_split: "iid" or "dirichlet" with alpha). Everything random comes
    from the seed through HAFL_STREAM_SPLIT, so every process of a federation derives the same
    shards independently.

    Indices handed out are rows of the tokenised set's parts: client k trains on rows
    hafl_fedset_client_rows (k) of hafl_tokset_part (tokset, TRAIN); the evaluator scores rows
    hafl_fedset_test_rows of the part hafl_fedset_holdout_part names. Each list is ascending.

    Validation: with opts.validation = N > 0, N training documents (a seeded draw, independent of
    the other draws) are taken out of the training part before train_limit and the client split,
    and become the held-out set in place of the test documents (test_limit is then unused). This
    is how hyper-parameters are chosen without ever scoring on the test set.

    Ownership: _new returns a set the caller owns; destroy frees it and nulls the pointer.
    Returned pointers live as long as the set. Immutable after _new, so threads may share it.
*/
#ifndef HAFL_FEDSET_H
#define HAFL_FEDSET_H

#include "hafl_split.h"
#include "hafl_tokset.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *path;       //  asset name ("20news-bydate.tar.gz") or a path (with a slash)
    uint32_t max_tokens;    //  T
    bool keep_empty;        //  keep documents that are empty after cleaning
    bool collapse_spaces;   //  as hafl_tokset_opts_t
    uint32_t train_limit;   //  0 = every training example
    uint32_t test_limit;    //  0 = every test example
    uint32_t validation;    //  > 0: hold out this many training examples as the evaluation set
    const char *split;      //  "iid" or "dirichlet"
    double dirichlet_alpha; //  > 0, used by "dirichlet"
    uint32_t clients;       //  K >= 1
    uint64_t seed;          //  the topology seed
    const char *cache_dir;  //  as hafl_tokset_opts_t: NULL = $HOME/.cache/hafl, "" = none
    void (*log)(void *arg, const char *line); //  optional: cache notes and client shards
    void *log_arg;
} hafl_fedset_opts_t;

typedef struct hafl_fedset_t hafl_fedset_t;

//  NULL with a one-line reason in err (missing asset, bad corpus, bad settings, too few
//  examples for the clients).
hafl_fedset_t *hafl_fedset_new(const hafl_fedset_opts_t *opts, const hafl_tokenizer_t *tokenizer,
                               char *err, size_t errlen);
void hafl_fedset_destroy(hafl_fedset_t **self_p);

const hafl_tokset_t *hafl_fedset_tokset(const hafl_fedset_t *self);
uint32_t hafl_fedset_clients(const hafl_fedset_t *self);
//  [*count] ascending TRAIN-part rows of client k (< clients); *count >= 1.
const uint32_t *hafl_fedset_client_rows(const hafl_fedset_t *self, uint32_t client,
                                        uint32_t *count);
//  [classes] examples of each class client k holds.
const uint32_t *hafl_fedset_client_histogram(const hafl_fedset_t *self, uint32_t client);
//  One line per client for the log, as hafl_split_describe.
void hafl_fedset_describe_client(const hafl_fedset_t *self, uint32_t client, char *text,
                                 size_t textlen);
//  The part the held-out rows index: HAFL_NEWSGROUPS_TEST, or HAFL_NEWSGROUPS_TRAIN when a
//  validation set was carved out of the training documents.
int hafl_fedset_holdout_part(const hafl_fedset_t *self);
//  [*count] ascending rows of the held-out part to evaluate on.
const uint32_t *hafl_fedset_test_rows(const hafl_fedset_t *self, uint32_t *count);
//  SHA-256 of the tokenised set's digest and every split setting: equal digests mean equal
//  data on every client. Part of a task's base digest.
void hafl_fedset_digest(const hafl_fedset_t *self, uint8_t digest[32]);

#endif
