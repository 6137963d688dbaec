/*  hafl_llama_task: llama2.c model + 20 Newsgroups behind the task interface. See
    hafl_llama_task.h. Shapes: T = data/max_tokens; a batch is tokens [B][T] gathered from the
    tokenised set's rows (BOS, text ids, padding), lengths [B], labels [B].
*/
#include "hafl_llama_task.h"
#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_lora_trainer.h"
#include "hafl_rng.h"
#include "hafl_fedset.h"
#include "hafl_targets.h"
#include "hafl_tokenizer.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_EVAL_BATCH 32u

//  The evaluation trainer, kept between evaluations: building one per call cost a fifth of
//  each evaluation in fresh pages the kernel zeroes. One is cached; a caller that finds it
//  taken (evaluations may run concurrently, hafl_task.h) builds its own for that call.
typedef struct {
    pthread_mutex_t lock;
    hafl_lora_trainer_t *trainer; //  NULL: none yet, or taken
} s_eval_cache_t;

typedef struct {
    hafl_checkpoint_t *checkpoint;
    s_eval_cache_t *eval_cache; //  mutable behind the immutable task
    hafl_fedset_t *data;        //  tokenised corpus, subsets and client shards
    hafl_targets_t targets;
    hafl_layout_t layout;
    uint32_t T;                 //  tokens per example
    uint32_t batch;             //  clients/batch: the trainers' batch capacity
    uint32_t threads;           //  clients/threads: worker threads of each client's trainer
    bool score_ibar;
    uint32_t n_clients;
    hafl_tokset_part_t train;   //  views into the tokenised set
    hafl_tokset_part_t test;
    const uint32_t *test_rows;  //  [n_test_used] rows of `test` to evaluate on
    uint32_t n_test_used;
    uint8_t digest[32];
    char description[256];
} s_task_t;

typedef struct {
    const s_task_t *task;
    uint32_t client;
    hafl_lora_trainer_t *trainer;
    uint32_t n;                 //  shard size
    const uint32_t *rows;       //  [n] train rows of this client's shard (owned by the task)
    uint32_t *order;            //  [n] batch order scratch
    uint32_t *tokens;           //  [batch][T] gathered batch
    uint32_t *lengths;          //  [batch]
    uint32_t *labels;           //  [batch]
    uint32_t batch_capacity;
} s_trainer_t;

//  Gather `count` rows of part into tokens [count][T], lengths, labels.
static void
s_gather (const hafl_tokset_part_t *part, const uint32_t *rows, uint32_t count, uint32_t *tokens,
          uint32_t *lengths, uint32_t *labels)
{
    uint32_t T = part->max_tokens;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t r = rows[i];
        memcpy (tokens + (size_t) i * T, part->tokens + (size_t) r * T, T * sizeof (uint32_t));
        lengths[i] = part->lengths[r];
        labels[i] = part->labels[r];
    }
}

static int
s_ensure_batch (s_trainer_t *self, uint32_t batch)
{
    if (batch <= self->batch_capacity)
        return 0;
    uint32_t T = self->task->T;
    uint32_t *tokens = realloc (self->tokens, (size_t) batch * T * sizeof (uint32_t));
    if (!tokens)
        return -1;
    self->tokens = tokens;
    uint32_t *lengths = realloc (self->lengths, batch * sizeof (uint32_t));
    if (!lengths)
        return -1;
    self->lengths = lengths;
    uint32_t *labels = realloc (self->labels, batch * sizeof (uint32_t));
    if (!labels)
        return -1;
    self->labels = labels;
    self->batch_capacity = batch;
    return 0;
}

static void
s_trainer_destroy (void *impl)
{
    s_trainer_t *self = impl;
    if (!self)
        return;
    hafl_lora_trainer_destroy (&self->trainer);
    free (self->order);
    free (self->tokens);
    free (self->lengths);
    free (self->labels);
    free (self);
}

static int
s_trainer_load (void *impl, const hafl_adapter_t *received, const uint8_t *roles, char *err,
                size_t errlen)
{
    s_trainer_t *self = impl;
    return hafl_lora_trainer_load (self->trainer, received, roles, err, errlen);
}

static int
s_trainer_train (void *impl, const hafl_train_opts_t *opts, hafl_train_stats_t *stats, char *err,
                 size_t errlen)
{
    s_trainer_t *self = impl;
    const s_task_t *task = self->task;
    if (opts->batch == 0 || opts->batch > task->batch || !(opts->lr > 0.0f)) {
        snprintf (err, errlen, "client %u: batch %u outside 1..%u or lr %g not > 0", self->client,
                  opts->batch, task->batch, (double) opts->lr);
        return -1;
    }
    if (s_ensure_batch (self, opts->batch)) {
        snprintf (err, errlen, "client %u: out of memory for a batch of %u", self->client, opts->batch);
        return -1;
    }
    if (opts->fresh_optimizer)
        hafl_lora_trainer_reset_optimizer (self->trainer);
    //  Batch order: a seeded permutation of the shard per epoch; a step budget walks epochs
    //  until it is spent. The mean loss reported is over the last epoch (or all steps).
    hafl_rng_t rng;
    hafl_rng_seed (&rng, opts->seed, HAFL_STREAM_BATCH, self->client);
    uint32_t steps_wanted = opts->local_steps;
    uint32_t epochs = steps_wanted ? UINT32_MAX : (opts->local_epochs ? opts->local_epochs : 1);
    uint32_t steps = 0;
    uint64_t examples = 0;
    double loss_sum = 0.0;
    uint32_t loss_count = 0;
    for (uint32_t epoch = 0; epoch < epochs; epoch++) {
        memcpy (self->order, self->rows, self->n * sizeof (uint32_t));
        hafl_rng_shuffle_u32 (&rng, self->order, self->n);
        if (!steps_wanted) {
            loss_sum = 0.0;
            loss_count = 0;
        }
        for (uint32_t start = 0; start < self->n; start += opts->batch) {
            if (steps_wanted && steps >= steps_wanted)
                break;
            uint32_t count = self->n - start < opts->batch ? self->n - start : opts->batch;
            s_gather (&task->train, self->order + start, count, self->tokens, self->lengths,
                      self->labels);
            hafl_lora_batch_stats_t batch_stats;
            if (hafl_lora_trainer_step (self->trainer, self->tokens, self->lengths, self->labels,
                                        count, task->T, opts->lr, opts->weight_decay,
                                        &batch_stats, err, errlen))
                return -1;
            loss_sum += batch_stats.loss * count;
            loss_count += count;
            examples += count;
            steps++;
        }
        if (steps_wanted && steps >= steps_wanted)
            break;
    }
    stats->loss = loss_count ? (float) (loss_sum / loss_count) : 0.0f;
    stats->steps = steps;
    stats->examples = examples;
    return 0;
}

static const hafl_adapter_t *
s_trainer_adapter (const void *impl)
{
    const s_trainer_t *self = impl;
    return hafl_lora_trainer_adapter (self->trainer);
}

//  State: Ibar [n] then Ubar [n], n = the LoRA trainer's importance size.
static size_t
s_trainer_state_size (const void *impl)
{
    const s_trainer_t *self = impl;
    return 2 * hafl_lora_trainer_importance_size (self->trainer);
}

static void
s_trainer_state_get (const void *impl, float *out)
{
    const s_trainer_t *self = impl;
    size_t n = hafl_lora_trainer_importance_size (self->trainer);
    hafl_lora_trainer_get_importance (self->trainer, out, out + n);
}

static int
s_trainer_state_set (void *impl, const float *in, size_t n, char *err, size_t errlen)
{
    s_trainer_t *self = impl;
    size_t half = hafl_lora_trainer_importance_size (self->trainer);
    if (n != 2 * half) {
        snprintf (err, errlen, "client %u: state of %zu floats, its trainer holds %zu",
                  self->client, n, 2 * half);
        return -1;
    }
    return hafl_lora_trainer_set_importance (self->trainer, in, in + half, half, err, errlen);
}

static const hafl_trainer_ops_t s_trainer_ops = {
    .load = s_trainer_load,
    .train = s_trainer_train,
    .adapter = s_trainer_adapter,
    .destroy = s_trainer_destroy,
    .state_size = s_trainer_state_size,
    .state_get = s_trainer_state_get,
    .state_set = s_trainer_state_set,
};

static hafl_lora_trainer_t *
s_lora_trainer (const s_task_t *task, uint32_t max_batch, uint32_t threads, char *err,
                size_t errlen)
{
    hafl_lora_trainer_opts_t opts = {
        .max_batch = max_batch,
        .max_seq = task->T,
        .threads = threads,
        .score_ibar_only = task->score_ibar,
    };
    return hafl_lora_trainer_new (task->checkpoint, &task->targets, &task->layout, &opts, err,
                                  errlen);
}

static hafl_trainer_t *
s_trainer_new (void *impl, uint32_t client, char *err, size_t errlen)
{
    s_task_t *task = impl;
    s_trainer_t *self = calloc (1, sizeof (s_trainer_t));
    if (!self) {
        snprintf (err, errlen, "client %u: out of memory", client);
        return NULL;
    }
    self->task = task;
    self->client = client;
    self->rows = hafl_fedset_client_rows (task->data, client, &self->n);
    self->order = malloc (self->n * sizeof (uint32_t));
    if (!self->order) {
        snprintf (err, errlen, "client %u: out of memory", client);
        s_trainer_destroy (self);
        return NULL;
    }
    //  Sized for the topology's batch (the batch every ROUND carries); BLAS single-threaded
    //  so that results are identical in every placement mode.
    self->trainer = s_lora_trainer (task, task->batch, task->threads, err, errlen);
    if (!self->trainer || s_ensure_batch (self, task->batch)) {
        s_trainer_destroy (self);
        return NULL;
    }
    hafl_trainer_t *trainer = hafl_trainer_wrap (&s_trainer_ops, self);
    if (!trainer)
        snprintf (err, errlen, "client %u: out of memory", client);
    return trainer;
}

static void
s_task_destroy (void *impl)
{
    s_task_t *self = impl;
    if (!self)
        return;
    if (self->eval_cache) {
        hafl_lora_trainer_destroy (&self->eval_cache->trainer);
        pthread_mutex_destroy (&self->eval_cache->lock);
        free (self->eval_cache);
    }
    hafl_layout_clear (&self->layout);
    hafl_fedset_destroy (&self->data);
    hafl_checkpoint_destroy (&self->checkpoint);
    free (self);
}

static const hafl_layout_t *
s_task_layout (const void *impl)
{
    return &((const s_task_t *) impl)->layout;
}

static void
s_task_base_digest (const void *impl, uint8_t digest[32])
{
    memcpy (digest, ((const s_task_t *) impl)->digest, 32);
}

static uint32_t
s_task_clients (const void *impl)
{
    return ((const s_task_t *) impl)->n_clients;
}

static uint64_t
s_task_client_samples (const void *impl, uint32_t client)
{
    const s_task_t *self = impl;
    uint32_t count = 0;
    if (client < self->n_clients)
        hafl_fedset_client_rows (self->data, client, &count);
    return count;
}

//  Score adapter (present as in hafl_task_evaluate) on n rows of the held-out part: row i is
//  rows[i] when rows is given, else the i-th of n spread evenly over the task's held-out rows.
static int
s_evaluate_rows (const s_task_t *self, const hafl_adapter_t *adapter, const uint8_t *present,
                 const uint32_t *rows, uint32_t n, hafl_eval_stats_t *stats, char *err,
                 size_t errlen)
{
    size_t n_roles = (size_t) self->layout.n_matrices * self->layout.rank;
    uint8_t *roles = malloc (n_roles ? n_roles : 1);
    uint32_t *tokens = malloc ((size_t) S_EVAL_BATCH * self->T * sizeof (uint32_t));
    uint32_t lengths[S_EVAL_BATCH], labels[S_EVAL_BATCH];
    //  Evaluation uses both cores: it runs while the clients wait for the next round.
    long cores = sysconf (_SC_NPROCESSORS_ONLN);
    hafl_lora_trainer_t *trainer = NULL;
    pthread_mutex_lock (&self->eval_cache->lock);
    trainer = self->eval_cache->trainer;
    self->eval_cache->trainer = NULL;
    pthread_mutex_unlock (&self->eval_cache->lock);
    if (!trainer)
        trainer = s_lora_trainer (self, S_EVAL_BATCH, cores > 1 ? (uint32_t) cores : 1, err,
                                  errlen);
    int rc = -1;
    if (!roles || !tokens || !trainer) {
        if (roles && tokens)
            goto done;   //  the trainer's reason is already in err
        snprintf (err, errlen, "evaluate: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_roles; i++)
        roles[i] = !present || present[i] ? HAFL_ROLE_FROZEN : HAFL_ROLE_ABSENT;
    if (hafl_lora_trainer_load (trainer, adapter, roles, err, errlen))
        goto done;
    //  The held-out rows are ordered by class, so a cap takes every (total / n)-th row rather
    //  than the first ones: the subset spans every class in proportion.
    uint32_t total = self->n_test_used;
    double loss_sum = 0.0;
    uint64_t correct = 0;
    uint32_t batch_rows[S_EVAL_BATCH];
    for (uint32_t start = 0; start < n; start += S_EVAL_BATCH) {
        uint32_t count = n - start < S_EVAL_BATCH ? n - start : S_EVAL_BATCH;
        for (uint32_t i = 0; i < count; i++)
            batch_rows[i] = rows ? rows[start + i]
                                 : self->test_rows[(uint32_t) ((uint64_t) (start + i) * total / n)];
        s_gather (&self->test, batch_rows, count, tokens, lengths, labels);
        hafl_lora_batch_stats_t batch;
        if (hafl_lora_trainer_evaluate (trainer, tokens, lengths, labels, count, self->T, NULL,
                                        &batch, err, errlen))
            goto done;
        loss_sum += (double) batch.loss * count;
        correct += batch.correct;
    }
    stats->examples = n;
    stats->accuracy = n ? (float) ((double) correct / n) : 0.0f;
    stats->loss = n ? (float) (loss_sum / n) : 0.0f;
    rc = 0;
done:
    //  Back into the cache when it is free and this call went well (a trainer an error
    //  left behind is not trusted again).
    if (rc == 0 && trainer) {
        pthread_mutex_lock (&self->eval_cache->lock);
        if (!self->eval_cache->trainer) {
            self->eval_cache->trainer = trainer;
            trainer = NULL;
        }
        pthread_mutex_unlock (&self->eval_cache->lock);
    }
    hafl_lora_trainer_destroy (&trainer);
    free (roles);
    free (tokens);
    return rc;
}

static int
s_task_evaluate (const void *impl, const hafl_adapter_t *adapter, const uint8_t *present,
                 uint32_t max_examples, hafl_eval_stats_t *stats, char *err, size_t errlen)
{
    const s_task_t *self = impl;
    uint32_t n = self->n_test_used;
    if (max_examples && max_examples < n)
        n = max_examples;
    return s_evaluate_rows (self, adapter, present, NULL, n, stats, err, errlen);
}

static int
s_compare_u32 (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

//  Whether row is among the [n] ascending rows.
static bool
s_has_row (const uint32_t *rows, uint32_t n, uint32_t row)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rows[mid] < row)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && rows[lo] == row;
}

//  Documents are named by their index within the held-out corpus part; the tokenised part may
//  have dropped some (empty after cleaning, data/keep_empty = false), so each is looked up
//  through doc_index (ascending) rather than used as a row. With data/validation the held-out
//  part is the training part, which the clients train on, so only the validation draw may be
//  named there: any other training document would be scored as if it were held out.
static int
s_task_evaluate_docs (const void *impl, const hafl_adapter_t *adapter, const uint32_t *docs,
                      uint32_t n, hafl_eval_stats_t *stats, char *err, size_t errlen)
{
    const s_task_t *self = impl;
    if (n == 0) {
        snprintf (err, errlen, "no documents to score");
        return -1;
    }
    uint32_t *rows = malloc ((size_t) n * sizeof *rows);
    if (!rows) {
        snprintf (err, errlen, "evaluate: out of memory for %u documents", n);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t lo = 0, hi = self->test.n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (self->test.doc_index[mid] < docs[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == self->test.n || self->test.doc_index[lo] != docs[i]) {
            snprintf (err, errlen,
                      "document %u (entry %u of the list) is not among the %u held-out "
                      "documents of the task (out of range, or dropped as empty)",
                      docs[i], i + 1, self->test.n);
            free (rows);
            return -1;
        }
        if (hafl_fedset_holdout_part (self->data) == HAFL_NEWSGROUPS_TRAIN
            && !s_has_row (self->test_rows, self->n_test_used, lo)) {
            snprintf (err, errlen,
                      "document %u (entry %u of the list) is a training document outside the "
                      "%u-document validation set (data/validation)",
                      docs[i], i + 1, self->n_test_used);
            free (rows);
            return -1;
        }
        rows[i] = lo;
    }
    //  Scored in row order, whatever the list's order: the batches, and so the float sums, are
    //  then the same for any order of the same documents, and listing every held-out document
    //  batches exactly as hafl_task_evaluate over all of them.
    qsort (rows, n, sizeof *rows, s_compare_u32);
    int rc = s_evaluate_rows (self, adapter, NULL, rows, n, stats, err, errlen);
    free (rows);
    return rc;
}

static void
s_task_describe (const void *impl, char *text, size_t textlen)
{
    snprintf (text, textlen, "%s", ((const s_task_t *) impl)->description);
}

static void
s_task_describe_client (const void *impl, uint32_t client, char *text, size_t textlen)
{
    const s_task_t *self = impl;
    hafl_fedset_describe_client (self->data, client, text, textlen);
}

static const hafl_task_ops_t s_task_ops = {
    .kind = "llama",
    .destroy = s_task_destroy,
    .layout = s_task_layout,
    .base_digest = s_task_base_digest,
    .clients = s_task_clients,
    .client_samples = s_task_client_samples,
    .trainer_new = s_trainer_new,
    .evaluate = s_task_evaluate,
    .evaluate_docs = s_task_evaluate_docs,
    .describe = s_task_describe,
    .describe_client = s_task_describe_client,
};

//  Everything a client must agree on with the server: base weights, data and its split
//  (the fedset digest covers the seed, limits and split settings), scoring rule and layout.
static void
s_compute_digest (s_task_t *self)
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    crypto_hash_sha256_update (&state, (const unsigned char *) "hafl-llama-task-1", 17);
    crypto_hash_sha256_update (&state, self->checkpoint->digest, 32);
    uint8_t data_digest[32];
    hafl_fedset_digest (self->data, data_digest);
    crypto_hash_sha256_update (&state, data_digest, 32);
    uint8_t score_rule = self->score_ibar;
    crypto_hash_sha256_update (&state, &score_rule, 1);
    const hafl_layout_t *L = &self->layout;
    uint32_t shape[4] = {L->n_matrices, L->rank, L->head_rows, L->head_cols};
    crypto_hash_sha256_update (&state, (const unsigned char *) shape, sizeof shape);
    crypto_hash_sha256_update (&state, (const unsigned char *) &L->scale, sizeof L->scale);
    //  Matrix names and shapes (names are NUL-padded in their fixed-size field).
    crypto_hash_sha256_update (&state, (const unsigned char *) L->matrices,
                               L->n_matrices * sizeof (hafl_matrix_info_t));
    crypto_hash_sha256_final (&state, self->digest);
}

hafl_task_t *
hafl_llama_task_new (const hafl_topology_t *topology, char *err, size_t errlen)
{
    if (strcmp (topology->data.dataset, "20news") != 0) {
        snprintf (err, errlen, "%s: data/dataset: model/kind llama needs dataset 20news, not '%s'",
                  topology->path, topology->data.dataset);
        return NULL;
    }
    s_task_t *self = calloc (1, sizeof (s_task_t));
    hafl_tokenizer_t *tokenizer = NULL;
    char *path = NULL;
    char reason[512];
    if (!self || !(self->eval_cache = calloc (1, sizeof (s_eval_cache_t)))) {
        snprintf (err, errlen, "llama task: out of memory");
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->eval_cache->lock, NULL);
    self->T = topology->data.max_tokens;
    self->batch = topology->clients.batch;
    self->threads = topology->clients.threads; //  1..256, checked by the loader
    self->n_clients = topology->clients.count;
    self->score_ibar = strcmp (topology->model.score, "ibar") == 0;

    if (!(path = hafl_asset_find (topology->model.checkpoint, reason, sizeof reason))) {
        snprintf (err, errlen, "%s: model/checkpoint: %s", topology->path, reason);
        goto fail;
    }
    self->checkpoint = hafl_checkpoint_open (path, reason, sizeof reason);
    free (path);
    if (!self->checkpoint) {
        snprintf (err, errlen, "%s: model/checkpoint: %s", topology->path, reason);
        goto fail;
    }
    if (self->T > (uint32_t) self->checkpoint->config.seq_len) {
        snprintf (err, errlen, "%s: data/max_tokens: %u exceeds the model's context of %d tokens",
                  topology->path, self->T, self->checkpoint->config.seq_len);
        goto fail;
    }
    if (!(path = hafl_asset_find (topology->model.tokenizer, reason, sizeof reason))) {
        snprintf (err, errlen, "%s: model/tokenizer: %s", topology->path, reason);
        goto fail;
    }
    tokenizer = hafl_tokenizer_load (path, self->checkpoint->config.vocab_size, reason,
                                     sizeof reason);
    free (path);
    if (!tokenizer) {
        snprintf (err, errlen, "%s: model/tokenizer: %s", topology->path, reason);
        goto fail;
    }
    hafl_fedset_opts_t data_opts = {
        .path = topology->data.path,
        .max_tokens = self->T,
        .keep_empty = topology->data.keep_empty,
        .collapse_spaces = topology->model.collapse_spaces,
        .train_limit = topology->data.train_limit,
        .test_limit = topology->data.test_limit,
        .validation = topology->data.validation,
        .split = topology->data.split,
        .dirichlet_alpha = topology->data.dirichlet_alpha,
        .clients = self->n_clients,
        .seed = topology->seed,
        .cache_dir = NULL,
    };
    self->data = hafl_fedset_new (&data_opts, tokenizer, reason, sizeof reason);
    hafl_tokenizer_destroy (&tokenizer);
    if (!self->data) {
        snprintf (err, errlen, "%s: data/path: %s", topology->path, reason);
        goto fail;
    }
    const hafl_tokset_t *tokset = hafl_fedset_tokset (self->data);
    self->train = hafl_tokset_part (tokset, HAFL_NEWSGROUPS_TRAIN);
    self->test = hafl_tokset_part (tokset, hafl_fedset_holdout_part (self->data));
    self->test_rows = hafl_fedset_test_rows (self->data, &self->n_test_used);

    if (hafl_targets_parse (topology->model.targets, &self->targets, reason, sizeof reason)) {
        snprintf (err, errlen, "%s: model/targets: %s", topology->path, reason);
        goto fail;
    }
    uint32_t classes = hafl_tokset_classes (tokset);
    if (hafl_targets_layout (&self->targets, &self->checkpoint->config, topology->model.rank,
                             topology->model.alpha, classes, &self->layout)) {
        snprintf (err, errlen, "llama task: out of memory");
        goto fail;
    }

    s_compute_digest (self);
    snprintf (self->description, sizeof self->description,
              "llama dim %d layers %d, %u adapted matrices rank %u, 20news %u %s examples, "
              "T %u, %s split over %u clients; %s",
              self->checkpoint->config.dim, self->checkpoint->config.n_layers,
              self->layout.n_matrices, self->layout.rank, self->n_test_used,
              topology->data.validation ? "validation" : "test", self->T,
              topology->data.split, self->n_clients, hafl_tokset_note (tokset));
    return hafl_task_wrap (&s_task_ops, self);
fail:
    hafl_tokenizer_destroy (&tokenizer);
    s_task_destroy (self);
    return NULL;
}
