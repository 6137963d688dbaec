/*  test_llama_task: the real task (stories260K + 20 Newsgroups) behind the task interface.

    Built from topologies/tiny.zpl with small overrides: two clients on a 200-document
    training subset and a 64-document test subset. Checks that shards cover the subset, that
    training is deterministic and moves only trainable components, that an absent component
    stays zero, that a trainer's cross-round state moves to another trainer exactly, that
    evaluation honours the present mask, and that the base digest follows the data settings.
    With data/validation the task says so, scores that many training documents (the fedset's
    draw, also by document index) and still trains on train_limit of the rest.
    Skips (77) when the assets are not found.
*/
#include "hafl_asset.h"
#include "hafl_split.h"
#include "hafl_task.h"
#include "hafl_test.h"
#include "hafl_topology.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  tiny.zpl made small; extra (may be NULL) is one more override.
static hafl_topology_t *
s_topology_with (const char *seed_override, const char *extra)
{
    const char *src = getenv ("HAFL_SOURCE_DIR");
    char path[4096];
    snprintf (path, sizeof path, "%s/topologies/tiny.zpl", src ? src : "..");
    const char *overrides[] = {"clients/count=2",      "clients/ranks=2,4",
                               "data/train_limit=200", "data/test_limit=64",
                               "data/max_tokens=32",   seed_override,
                               extra};
    hafl_topology_error_t err;
    hafl_topology_t *topo = hafl_topology_load (path, overrides, extra ? 7 : 6, &err);
    CHECKF (topo, "%s", err.text);
    return topo;
}

static hafl_topology_t *
s_topology (const char *seed_override)
{
    return s_topology_with (seed_override, NULL);
}

//  data/validation = 48 on the same settings as `task` (seed 1).
static void
s_test_validation (const hafl_task_t *task, const hafl_adapter_t *global)
{
    enum { N = 48, TRAIN_DOCS = 11314 };   //  documents in 20news-bydate-train
    char err[512], text[512];
    hafl_topology_t *topo = s_topology_with ("seed=1", "data/validation=48");
    hafl_task_t *vtask = hafl_task_new (topo, err, sizeof err);
    CHECKF (vtask, "%s", err);
    hafl_task_describe (task, text, sizeof text);
    CHECKF (strstr (text, " 64 test examples") && !strstr (text, "validation"), "%s", text);
    hafl_task_describe (vtask, text, sizeof text);
    CHECKF (strstr (text, " 48 validation examples"), "%s", text);
    //  train_limit is taken from what the validation set leaves; other data, other digest.
    CHECK (hafl_task_client_samples (vtask, 0) + hafl_task_client_samples (vtask, 1) == 200);
    uint8_t plain[32], held[32];
    hafl_task_base_digest (task, plain);
    hafl_task_base_digest (vtask, held);
    CHECK (memcmp (plain, held, 32) != 0);

    hafl_eval_stats_t all, some, listed;
    CHECKF (hafl_task_evaluate (vtask, global, NULL, 0, &all, err, sizeof err) == 0, "%s", err);
    CHECK (all.examples == N && all.accuracy >= 0.0f && all.accuracy <= 1.0f);
    CHECKF (hafl_task_evaluate (vtask, global, NULL, 16, &some, err, sizeof err) == 0, "%s", err);
    CHECK (some.examples == 16);
    //  The validation documents by index: the draw hafl_fedset makes (hafl_split_subset of the
    //  training part, part 2; every document is kept, so rows are document indices) scores
    //  exactly as the whole validation set; a training document outside it is refused.
    uint32_t n;
    uint32_t *docs = hafl_split_subset (TRAIN_DOCS, N, 1, 2, &n);
    CHECK (docs && n == N);
    CHECKF (hafl_task_evaluate_docs (vtask, global, docs, n, &listed, err, sizeof err) == 0, "%s",
            err);
    CHECK (listed.examples == N && listed.loss == all.loss && listed.accuracy == all.accuracy);
    uint32_t outside = 0;
    while (outside < n && docs[outside] == outside)
        outside++;   //  the first index not drawn (docs ascending, so docs[outside] > outside)
    CHECK (hafl_task_evaluate_docs (vtask, global, &outside, 1, &listed, err, sizeof err) == -1);
    CHECKF (strstr (err, "validation"), "%s", err);
    free (docs);
    hafl_task_destroy (&vtask);
    hafl_topology_destroy (&topo);
}

int
main (void)
{
    char err[512];
    char *asset = hafl_asset_find ("stories260K.bin", err, sizeof err);
    if (!asset) {
        fprintf (stderr, "skipped: %s\n", err);
        return 77;
    }
    free (asset);

    hafl_topology_t *topo = s_topology ("seed=1");
    hafl_task_t *task = hafl_task_new (topo, err, sizeof err);
    CHECKF (task, "%s", err);
    CHECK (strcmp (hafl_task_kind (task), "llama") == 0);
    CHECK (hafl_task_clients (task) == 2);
    CHECK (hafl_task_client_samples (task, 0) + hafl_task_client_samples (task, 1) == 200);
    const hafl_layout_t *layout = hafl_task_layout (task);
    CHECK (layout->n_matrices == 5 * 4 && layout->rank == 8 && layout->head_rows == 20);
    char line[512];
    hafl_task_describe_client (task, 1, line, sizeof line);
    CHECKF (strstr (line, "client 1") != NULL, "%s", line);

    //  Roles: in matrix 0, component 0 trainable, 1 frozen, 2 absent; elsewhere component 0
    //  trainable and the rest frozen.
    uint32_t R = layout->rank, M = layout->n_matrices;
    uint8_t *roles = calloc ((size_t) M * R, 1);
    for (uint32_t m = 0; m < M; m++)
        for (uint32_t k = 0; k < R; k++)
            roles[m * R + k] = k == 0 ? HAFL_ROLE_TRAINABLE : HAFL_ROLE_FROZEN;
    roles[2] = HAFL_ROLE_ABSENT;
    hafl_adapter_t *global = hafl_adapter_new (layout);
    hafl_adapter_init (global, 1);
    for (uint32_t m = 0; m < M; m++)   //  non-zero B so frozen components matter
        for (size_t i = 0; i < (size_t) R * layout->matrices[m].d_out; i++)
            global->bt[m][i] = 0.01f * (float) ((i % 7) + 1);

    hafl_train_opts_t opts = {.local_steps = 3, .batch = 8, .lr = 1e-2f, .weight_decay = 0.01f,
                              .seed = 42, .fresh_optimizer = true};
    uint8_t digests[2][32];
    for (int run = 0; run < 2; run++) {
        hafl_trainer_t *trainer = hafl_trainer_new (task, 0, err, sizeof err);
        CHECKF (trainer, "%s", err);
        CHECKF (hafl_trainer_load (trainer, global, roles, err, sizeof err) == 0, "%s", err);
        hafl_train_stats_t stats;
        CHECKF (hafl_trainer_train (trainer, &opts, &stats, err, sizeof err) == 0, "%s", err);
        CHECK (stats.steps == 3 && stats.examples == 24);
        CHECK (isfinite (stats.loss) && stats.loss > 0.0f);
        const hafl_adapter_t *local = hafl_trainer_adapter (trainer);
        uint32_t d_out = layout->matrices[0].d_out, d_in = layout->matrices[0].d_in;
        //  Trainable component 0 moved; frozen component 1 is bit-identical; absent 2 is zero.
        CHECK (memcmp (hafl_adapter_a (local, 0, 0), hafl_adapter_a (global, 0, 0), d_in * 4) != 0);
        CHECK (memcmp (hafl_adapter_b (local, 0, 1), hafl_adapter_b (global, 0, 1), d_out * 4) == 0);
        CHECK (memcmp (hafl_adapter_a (local, 0, 1), hafl_adapter_a (global, 0, 1), d_in * 4) == 0);
        for (uint32_t i = 0; i < d_out; i++)
            CHECK (hafl_adapter_b (local, 0, 2)[i] == 0.0f);
        CHECK (local->score[0] > 0.0f);
        hafl_adapter_digest (local, digests[run]);
        hafl_trainer_destroy (&trainer);
    }
    CHECK (memcmp (digests[0], digests[1], 32) == 0);

    //  Cross-round state (the importance EMAs, hafl_trainer_state_size) moves to a new trainer
    //  exactly: a second round on a trainer given the first round's state ends bit-identical
    //  (scores included) to the second round on the trainer that ran the first; without that
    //  state the scores differ. Bad state is refused.
    {
        size_t floats = 0;
        for (uint32_t m = 0; m < M; m++)
            floats += 2 * (size_t) R * (layout->matrices[m].d_out + layout->matrices[m].d_in);
        hafl_trainer_t *trainers[3];
        for (int i = 0; i < 3; i++) {
            trainers[i] = hafl_trainer_new (task, 0, err, sizeof err);
            CHECKF (trainers[i], "%s", err);
            CHECK (hafl_trainer_state_size (trainers[i]) == floats);
        }
        hafl_train_stats_t stats;
        CHECKF (hafl_trainer_load (trainers[0], global, roles, err, sizeof err) == 0, "%s", err);
        CHECKF (hafl_trainer_train (trainers[0], &opts, &stats, err, sizeof err) == 0, "%s", err);
        float *state = malloc (floats * sizeof (float));
        CHECK (state);
        hafl_trainer_state_get (trainers[0], state);
        size_t positive = 0;
        for (size_t i = 0; i < floats; i++)
            positive += state[i] > 0.0f;
        CHECK (positive > 0);
        CHECKF (hafl_trainer_state_set (trainers[1], state, floats, err, sizeof err) == 0, "%s", err);
        hafl_train_opts_t next = opts;
        next.seed = 43;
        uint8_t after[3][32];
        for (int i = 0; i < 3; i++) {
            CHECKF (hafl_trainer_load (trainers[i], global, roles, err, sizeof err) == 0, "%s", err);
            CHECKF (hafl_trainer_train (trainers[i], &next, &stats, err, sizeof err) == 0, "%s",
                    err);
            hafl_adapter_digest (hafl_trainer_adapter (trainers[i]), after[i]);
        }
        CHECK (memcmp (after[0], after[1], 32) == 0);
        CHECK (memcmp (after[0], after[2], 32) != 0);
        CHECK (hafl_trainer_state_set (trainers[2], state, floats - 1, err, sizeof err) == -1);
        state[5] = NAN;
        CHECK (hafl_trainer_state_set (trainers[2], state, floats, err, sizeof err) == -1
               && strstr (err, "entry 5"));
        state[5] = -1.0f;
        CHECK (hafl_trainer_state_set (trainers[2], state, floats, err, sizeof err) == -1);
        free (state);
        for (int i = 0; i < 3; i++)
            hafl_trainer_destroy (&trainers[i]);
    }

    //  Evaluation: all present vs. component 0 of every matrix absent gives other numbers.
    hafl_eval_stats_t full, partial;
    CHECKF (hafl_task_evaluate (task, global, NULL, 0, &full, err, sizeof err) == 0, "%s", err);
    CHECK (full.examples == 64 && full.accuracy >= 0.0f && full.accuracy <= 1.0f);
    uint8_t *present = malloc ((size_t) M * R);
    memset (present, 1, (size_t) M * R);
    for (uint32_t m = 0; m < M; m++)
        present[m * R] = 0;
    CHECKF (hafl_task_evaluate (task, global, present, 16, &partial, err, sizeof err) == 0, "%s", err);
    CHECK (partial.examples == 16);
    hafl_eval_stats_t again;
    CHECKF (hafl_task_evaluate (task, global, present, 16, &again, err, sizeof err) == 0, "%s", err);
    CHECK (again.loss == partial.loss && again.accuracy == partial.accuracy);

    s_test_validation (task, global);

    //  The base digest follows the data settings: another seed splits differently.
    uint8_t digest_a[32], digest_b[32];
    hafl_task_base_digest (task, digest_a);
    hafl_topology_t *topo_b = s_topology ("seed=2");
    hafl_task_t *task_b = hafl_task_new (topo_b, err, sizeof err);
    CHECKF (task_b, "%s", err);
    hafl_task_base_digest (task_b, digest_b);
    CHECK (memcmp (digest_a, digest_b, 32) != 0);

    //  Corrupt assets are refused with the key they came from: a truncated checkpoint, and a
    //  checkpoint given as the tokenizer.
    char *good = hafl_asset_find ("stories260K.bin", err, sizeof err);
    CHECKF (good, "%s", err);
    char dir[] = "/tmp/hafl-llama-task-XXXXXX";
    CHECK (mkdtemp (dir));
    char truncated[4096], set_checkpoint[4200], set_tokenizer[4200];
    snprintf (truncated, sizeof truncated, "%s/truncated.bin", dir);
    FILE *in = fopen (good, "rb"), *out = fopen (truncated, "wb");
    CHECK (in && out);
    char chunk[4096];
    size_t n = fread (chunk, 1, sizeof chunk, in);
    CHECK (n == sizeof chunk && fwrite (chunk, 1, n, out) == n);
    fclose (in);
    CHECK (fclose (out) == 0);
    snprintf (set_checkpoint, sizeof set_checkpoint, "model/checkpoint=%s", truncated);
    snprintf (set_tokenizer, sizeof set_tokenizer, "model/tokenizer=%s", good);
    const char *bad_sets[2][2] = {{set_checkpoint, "model/checkpoint"},
                                  {set_tokenizer, "model/tokenizer"}};
    for (int i = 0; i < 2; i++) {
        const char *src = getenv ("HAFL_SOURCE_DIR");
        char path[4096];
        snprintf (path, sizeof path, "%s/topologies/tiny.zpl", src ? src : "..");
        const char *overrides[] = {bad_sets[i][0]};
        hafl_topology_error_t terr;
        hafl_topology_t *bad = hafl_topology_load (path, overrides, 1, &terr);
        CHECKF (bad, "%s", terr.text);
        hafl_task_t *refused = hafl_task_new (bad, err, sizeof err);
        CHECK (refused == NULL);
        CHECKF (strstr (err, bad_sets[i][1]) != NULL, "%s", err);
        hafl_topology_destroy (&bad);
    }
    unlink (truncated);
    rmdir (dir);
    free (good);

    free (present);
    free (roles);
    hafl_adapter_destroy (&global);
    hafl_task_destroy (&task_b);
    hafl_topology_destroy (&topo_b);
    hafl_task_destroy (&task);
    hafl_topology_destroy (&topo);
    printf ("llama task: ok (eval accuracy %.3f loss %.3f)\n", full.accuracy, full.loss);
    return 0;
}
