/*  hafl_fedset: tokenised set + subsets + client split, wired together (see hafl_fedset.h).

    The split works on positions 0..n-1 of the training subset; they are mapped back to rows of
    the tokenised training part here, so callers only ever see rows.
*/
#include "hafl_fedset.h"
#include "hafl_asset.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hafl_fedset_t {
    hafl_tokset_t *tokset;
    hafl_split_t *split;
    uint32_t clients;
    uint32_t *client_rows; //  [n_train] client k's rows at offsets[k] .. offsets[k+1]
    uint32_t *offsets;     //  [clients + 1]
    uint32_t *test_rows;   //  [n_test] rows of the held-out part
    uint32_t n_test;
    int holdout_part;      //  HAFL_NEWSGROUPS_TEST, or _TRAIN when a validation set is carved
    uint8_t digest[32];
};

static void s_digest(hafl_fedset_t *self, const hafl_fedset_opts_t *opts)
{
    uint8_t tokset[32], le[8];
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)"hafl-fedset", 11);
    hafl_tokset_digest(self->tokset, tokset);
    crypto_hash_sha256_update(&h, tokset, 32);
    crypto_hash_sha256_update(&h, (const uint8_t *)opts->split, strlen(opts->split) + 1);
    uint64_t alpha_bits;
    double alpha = strcmp(opts->split, "dirichlet") == 0 ? opts->dirichlet_alpha : 0.0;
    memcpy(&alpha_bits, &alpha, 8);
    uint64_t fields[6] = {opts->train_limit, opts->test_limit, opts->clients, opts->seed,
                          alpha_bits, opts->validation};
    //  validation = 0 hashes as the five fields did before it existed, so the digests (and the
    //  tokenised caches and adapters keyed by them) of every earlier topology stay the same.
    int n_fields = opts->validation ? 6 : 5;
    for (int f = 0; f < n_fields; f++) {
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(fields[f] >> (8 * i));
        crypto_hash_sha256_update(&h, le, 8);
    }
    crypto_hash_sha256_final(&h, self->digest);
}

//  Carves the validation set out of the training part: a seeded draw of opts->validation
//  rows (stream part 2, so it is independent of the train_limit draw) becomes the held-out set,
//  and *pool, *n_pool the remaining rows, ascending, from which the training subset is taken.
static int s_carve_validation(hafl_fedset_t *self, const hafl_fedset_opts_t *opts,
                              uint32_t n_train, uint32_t **pool, uint32_t *n_pool, char *err,
                              size_t errlen)
{
    if (opts->validation >= n_train) {
        snprintf(err, errlen,
                 "data: validation of %u documents leaves none of the %u training documents",
                 opts->validation, n_train);
        return -1;
    }
    uint32_t n_val;
    uint32_t *drawn = hafl_split_subset(n_train, opts->validation, opts->seed, 2, &n_val);
    uint8_t *held = calloc(n_train, 1);
    *pool = malloc((size_t)n_train * sizeof **pool);
    if (!drawn || !held || !*pool) {
        free(drawn);
        free(held);
        free(*pool);
        *pool = NULL;
        snprintf(err, errlen, "data: out of memory for the validation set");
        return -1;
    }
    for (uint32_t j = 0; j < n_val; j++)
        held[drawn[j]] = 1;
    *n_pool = 0;
    for (uint32_t r = 0; r < n_train; r++)
        if (!held[r])
            (*pool)[(*n_pool)++] = r;
    free(held);
    self->test_rows = drawn; //  ascending: hafl_split_subset sorts what it keeps
    self->n_test = n_val;
    self->holdout_part = HAFL_NEWSGROUPS_TRAIN;
    return 0;
}

//  Splits the training subset across the clients and maps positions back to rows.
static int s_split(hafl_fedset_t *self, const hafl_fedset_opts_t *opts, char *err, size_t errlen)
{
    hafl_tokset_part_t train = hafl_tokset_part(self->tokset, HAFL_NEWSGROUPS_TRAIN);
    uint32_t *pool = NULL, n_pool = train.n;
    if (opts->validation && s_carve_validation(self, opts, train.n, &pool, &n_pool, err, errlen))
        return -1;
    uint32_t n;
    uint32_t *rows = hafl_split_subset(n_pool, opts->train_limit, opts->seed, 0, &n);
    uint32_t *labels = malloc((size_t)(n ? n : 1) * sizeof *labels);
    int rc = -1;
    if (!rows || !labels) {
        snprintf(err, errlen, "data: out of memory for %u training examples", train.n);
        goto done;
    }
    //  Positions in the pool (everything but the validation set) back to training-part rows.
    if (pool)
        for (uint32_t j = 0; j < n; j++)
            rows[j] = pool[rows[j]];
    for (uint32_t j = 0; j < n; j++)
        labels[j] = train.labels[rows[j]];
    uint32_t classes = hafl_tokset_classes(self->tokset);
    if (strcmp(opts->split, "iid") == 0)
        self->split = hafl_split_iid(labels, n, classes, opts->clients, opts->seed, err, errlen);
    else
        self->split = hafl_split_dirichlet(labels, n, classes, opts->clients, opts->dirichlet_alpha,
                                           opts->seed, err, errlen);
    if (!self->split)
        goto done;
    self->client_rows = malloc((size_t)(n ? n : 1) * sizeof *self->client_rows);
    self->offsets = calloc((size_t)opts->clients + 1, sizeof *self->offsets);
    if (!self->client_rows || !self->offsets) {
        snprintf(err, errlen, "data: out of memory for the client split");
        goto done;
    }
    for (uint32_t k = 0; k < opts->clients; k++) {
        uint32_t count = hafl_split_count(self->split, k);
        const uint32_t *positions = hafl_split_indices(self->split, k);
        self->offsets[k + 1] = self->offsets[k] + count;
        for (uint32_t j = 0; j < count; j++)
            self->client_rows[self->offsets[k] + j] = rows[positions[j]];
    }
    rc = 0;
done:
    free(pool);
    free(rows);
    free(labels);
    return rc;
}

hafl_fedset_t *hafl_fedset_new(const hafl_fedset_opts_t *opts, const hafl_tokenizer_t *tokenizer,
                               char *err, size_t errlen)
{
    if (!opts || !opts->path || !opts->split || !tokenizer) {
        snprintf(err, errlen, "data: path, split and tokenizer are required");
        return NULL;
    }
    if (strcmp(opts->split, "iid") != 0 && strcmp(opts->split, "dirichlet") != 0) {
        snprintf(err, errlen, "data: split '%s', want iid or dirichlet", opts->split);
        return NULL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "data: libsodium failed to initialise");
        return NULL;
    }
    char *archive = hafl_asset_find(opts->path, err, errlen);
    if (!archive)
        return NULL;
    hafl_fedset_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "data: out of memory");
        free(archive);
        return NULL;
    }
    self->clients = opts->clients;
    self->holdout_part = HAFL_NEWSGROUPS_TEST;
    hafl_tokset_opts_t tokopts = {.max_tokens = opts->max_tokens,
                                  .keep_empty = opts->keep_empty,
                                  .collapse_spaces = opts->collapse_spaces,
                                  .cache_dir = opts->cache_dir,
                                  .log = opts->log,
                                  .log_arg = opts->log_arg};
    self->tokset = hafl_tokset_new_from_path(archive, tokenizer, &tokopts, err, errlen);
    free(archive);
    if (!self->tokset || s_split(self, opts, err, errlen)) {
        hafl_fedset_destroy(&self);
        return NULL;
    }
    hafl_tokset_part_t test = hafl_tokset_part(self->tokset, HAFL_NEWSGROUPS_TEST);
    if (!self->test_rows) //  no validation set: the held-out set is (a subset of) the test part
        self->test_rows =
            hafl_split_subset(test.n, opts->test_limit, opts->seed, 1, &self->n_test);
    if (!self->test_rows) {
        snprintf(err, errlen, "data: out of memory for %u test examples", test.n);
        hafl_fedset_destroy(&self);
        return NULL;
    }
    s_digest(self, opts);
    if (opts->log)
        for (uint32_t k = 0; k < self->clients; k++) {
            char line[1024];
            hafl_fedset_describe_client(self, k, line, sizeof line);
            opts->log(opts->log_arg, line);
        }
    return self;
}

void hafl_fedset_destroy(hafl_fedset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_fedset_t *self = *self_p;
    hafl_tokset_destroy(&self->tokset);
    hafl_split_destroy(&self->split);
    free(self->client_rows);
    free(self->offsets);
    free(self->test_rows);
    free(self);
    *self_p = NULL;
}

const hafl_tokset_t *hafl_fedset_tokset(const hafl_fedset_t *self)
{
    return self->tokset;
}

uint32_t hafl_fedset_clients(const hafl_fedset_t *self)
{
    return self->clients;
}

const uint32_t *hafl_fedset_client_rows(const hafl_fedset_t *self, uint32_t client, uint32_t *count)
{
    if (client >= self->clients) {
        *count = 0;
        return NULL;
    }
    *count = self->offsets[client + 1] - self->offsets[client];
    return self->client_rows + self->offsets[client];
}

const uint32_t *hafl_fedset_client_histogram(const hafl_fedset_t *self, uint32_t client)
{
    return hafl_split_histogram(self->split, client);
}

void hafl_fedset_describe_client(const hafl_fedset_t *self, uint32_t client, char *text,
                                 size_t textlen)
{
    hafl_split_describe(self->split, client, text, textlen);
}

int hafl_fedset_holdout_part(const hafl_fedset_t *self)
{
    return self->holdout_part;
}

const uint32_t *hafl_fedset_test_rows(const hafl_fedset_t *self, uint32_t *count)
{
    *count = self->n_test;
    return self->test_rows;
}

void hafl_fedset_digest(const hafl_fedset_t *self, uint8_t digest[32])
{
    memcpy(digest, self->digest, 32);
}
