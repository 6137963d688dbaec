/*  test_synth_task: the synthetic task's model, data split and trainer.

    - Gradients: analytic gradients of the mean loss against central finite differences on every
      trainable entry (b, a of trainable components and the head), with a frozen, an absent and
      a merged term in the model. The loss is accumulated in double from float parameters, so
      with eps = 1e-3 the difference quotient is accurate to ~1e-7; tolerance
      |fd - analytic| <= 1e-5 + 1e-3 |analytic|. Frozen and absent components get zero gradient.
    - Trainer: frozen components unchanged bitwise and absent ones zero after training; trained
      components change and get positive scores; a centralised single-client run lowers the loss
      and reaches accuracy far above chance.
    - Split: shard sizes sum to the training set, every client has a sample (IID and a very
      skewed Dirichlet split).
    - Determinism: two tasks from the same topology share the base digest, and two trainers fed
      the same inputs produce bit-identical adapters; another seed changes the digest.
*/
#include "hafl_synth_task.h"
#include "hafl_test.h"

#include <math.h>
#include <string.h>

static hafl_topology_t s_topology(uint32_t dim, uint32_t classes, uint32_t rank, uint32_t train,
                                  uint32_t test, uint32_t clients, const char *split,
                                  float dir_alpha, uint64_t seed)
{
    hafl_topology_t topo;
    memset(&topo, 0, sizeof topo);
    topo.path = "synthetic-test.zpl";
    topo.name = "synthetic-test";
    topo.seed = seed;
    topo.model.kind = "synthetic";
    topo.model.rank = rank;
    topo.model.alpha = 2.0f * (float)rank;
    topo.model.dim = dim;
    topo.model.classes = classes;
    topo.model.score = "sensitivity";
    topo.data.split = (char *)split;
    topo.data.dirichlet_alpha = dir_alpha;
    topo.data.train_size = train;
    topo.data.test_size = test;
    topo.clients.count = clients;
    return topo;
}

static void s_randomise(float *v, size_t n, uint64_t *state, float amplitude)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        v[i] = amplitude * ((float)(*state >> 40) / (float)(1u << 24) - 0.5f);
    }
}

typedef struct {
    float *w, *g; //  a parameter tensor and its gradient, [n] each
    size_t n;
    int trainable;
} s_param_t;

static void s_test_gradients(void)
{
    hafl_topology_t topo = s_topology(8, 3, 4, 64, 32, 2, "iid", 0.5f, 7);
    char err[256] = "";
    hafl_synth_task_t *synth = hafl_synth_task_build(&topo, err, sizeof err);
    CHECKF(synth, "%s", err);
    hafl_task_t *task = hafl_synth_task_new(&topo, err, sizeof err);
    CHECKF(task, "%s", err);
    const hafl_layout_t *L = hafl_task_layout(task);
    CHECK(L->n_matrices == 1 && L->rank == 4 && L->matrices[0].d_out == 8);
    CHECK(L->head_rows == 3 && L->head_cols == 9);

    hafl_adapter_t *ad = hafl_adapter_new(L);
    hafl_adapter_t *grad = hafl_adapter_new(L);
    CHECK(ad && grad);
    hafl_adapter_init(ad, 3);
    uint64_t state = 11;
    s_randomise(ad->bt[0], 4 * 8, &state, 0.6f);
    s_randomise(ad->head, 3 * 9, &state, 0.8f);
    float mb[8], ma[8];
    s_randomise(mb, 8, &state, 0.5f);
    s_randomise(ma, 8, &state, 0.5f);
    CHECK(hafl_adapter_set_merged(ad, 0, 1, mb, ma) == 0);
    const uint8_t roles[4] = {HAFL_ROLE_TRAINABLE, HAFL_ROLE_FROZEN, HAFL_ROLE_ABSENT,
                              HAFL_ROLE_TRAINABLE};
    memset(hafl_adapter_b(ad, 0, 2), 0, 8 * sizeof(float));
    memset(hafl_adapter_a(ad, 0, 2), 0, 8 * sizeof(float));

    double loss;
    CHECKF(hafl_synth_task_loss_grad(synth, ad, roles, 0, 16, &loss, grad, err, sizeof err) == 0,
           "%s", err);
    CHECK(isfinite(loss) && loss > 0);

    //  Every parameter tensor with its gradient and whether it is trainable.
    s_param_t params[9];
    size_t n_params = 0;
    for (uint32_t k = 0; k < 4; k++) {
        int trainable = roles[k] == HAFL_ROLE_TRAINABLE;
        params[n_params++] =
            (s_param_t){hafl_adapter_b(ad, 0, k), hafl_adapter_b(grad, 0, k), 8, trainable};
        params[n_params++] =
            (s_param_t){hafl_adapter_a(ad, 0, k), hafl_adapter_a(grad, 0, k), 8, trainable};
    }
    params[n_params++] = (s_param_t){ad->head, grad->head, 27, 1};
    const double eps = 1e-3;
    size_t checked = 0;
    double worst = 0;
    for (size_t p = 0; p < n_params; p++)
        for (size_t i = 0; i < params[p].n; i++) {
            double analytic = params[p].g[i];
            if (!params[p].trainable) {
                CHECKF(analytic == 0.0, "untrained parameter %zu[%zu] has gradient %g", p, i,
                       analytic);
                continue;
            }
            float saved = params[p].w[i];
            float up = (float)(saved + eps), down = (float)(saved - eps);
            double loss_up, loss_down;
            params[p].w[i] = up;
            CHECK(hafl_synth_task_loss_grad(synth, ad, roles, 0, 16, &loss_up, NULL, err,
                                            sizeof err) == 0);
            params[p].w[i] = down;
            CHECK(hafl_synth_task_loss_grad(synth, ad, roles, 0, 16, &loss_down, NULL, err,
                                            sizeof err) == 0);
            params[p].w[i] = saved;
            double numeric = (loss_up - loss_down) / ((double)up - (double)down);
            double diff = fabs(numeric - analytic);
            CHECKF(diff <= 1e-5 + 1e-3 * fabs(analytic),
                   "param %zu[%zu]: finite difference %.9g, analytic %.9g", p, i, numeric,
                   analytic);
            if (diff > worst)
                worst = diff;
            checked++;
        }
    CHECK(checked == 2 * 16 + 27);
    printf("gradient check: %zu entries, worst |fd - analytic| = %.3g\n", checked, worst);

    //  Wrong client or count is refused with a reason.
    CHECK(hafl_synth_task_loss_grad(synth, ad, roles, 2, 1, &loss, NULL, err, sizeof err) == -1);
    CHECK(strlen(err) > 0);
    hafl_adapter_destroy(&ad);
    hafl_adapter_destroy(&grad);
    hafl_task_destroy(&task);
    hafl_synth_task_free(&synth);
    CHECK(synth == NULL && task == NULL);
}

static void s_test_roles_after_training(void)
{
    hafl_topology_t topo = s_topology(16, 4, 6, 256, 64, 4, "iid", 0.5f, 5);
    char err[256] = "";
    hafl_task_t *task = hafl_synth_task_new(&topo, err, sizeof err);
    CHECKF(task, "%s", err);
    hafl_adapter_t *global = hafl_adapter_new(hafl_task_layout(task));
    hafl_adapter_init(global, 5);
    uint64_t state = 99;
    s_randomise(global->bt[0], 6 * 16, &state, 0.2f);
    uint8_t roles[6] = {HAFL_ROLE_TRAINABLE, HAFL_ROLE_FROZEN,    HAFL_ROLE_ABSENT,
                        HAFL_ROLE_FROZEN,    HAFL_ROLE_TRAINABLE, HAFL_ROLE_ABSENT};
    hafl_trainer_t *trainer = hafl_trainer_new(task, 1, err, sizeof err);
    CHECKF(trainer, "%s", err);
    CHECKF(hafl_trainer_load(trainer, global, roles, err, sizeof err) == 0, "%s", err);
    hafl_train_opts_t opts = {.local_epochs = 2,
                              .batch = 8,
                              .lr = 1e-2f,
                              .weight_decay = 0.01f,
                              .seed = 42,
                              .fresh_optimizer = true};
    hafl_train_stats_t stats;
    CHECKF(hafl_trainer_train(trainer, &opts, &stats, err, sizeof err) == 0, "%s", err);
    CHECK(stats.steps == 2 * 8 && stats.examples == 2 * 64);
    CHECK(isfinite(stats.loss) && stats.loss > 0);
    const hafl_adapter_t *local = hafl_trainer_adapter(trainer);
    for (uint32_t k = 0; k < 6; k++) {
        const float *b = hafl_adapter_b(local, 0, k), *a = hafl_adapter_a(local, 0, k);
        const float *gb = hafl_adapter_b(global, 0, k), *ga = hafl_adapter_a(global, 0, k);
        if (roles[k] == HAFL_ROLE_FROZEN) {
            CHECKF(memcmp(b, gb, 16 * 4) == 0 && memcmp(a, ga, 16 * 4) == 0,
                   "frozen component %u changed", k);
        } else if (roles[k] == HAFL_ROLE_ABSENT) {
            for (uint32_t i = 0; i < 16; i++)
                CHECKF(b[i] == 0.0f && a[i] == 0.0f, "absent component %u not zero", k);
            CHECK(local->score[k] == 0.0f);
        } else {
            CHECKF(memcmp(b, gb, 16 * 4) != 0 && memcmp(a, ga, 16 * 4) != 0,
                   "trainable component %u did not change", k);
            CHECKF(local->score[k] > 0.0f && isfinite(local->score[k]), "component %u score %g", k,
                   (double)local->score[k]);
        }
    }
    //  Fixed step count mode, and bad options refused.
    opts.local_steps = 5;
    CHECK(hafl_trainer_train(trainer, &opts, &stats, err, sizeof err) == 0 && stats.steps == 5);
    opts.batch = 0;
    CHECK(hafl_trainer_train(trainer, &opts, &stats, err, sizeof err) == -1);
    //  A foreign layout and a bad role are refused.
    hafl_layout_t other = *hafl_task_layout(task);
    other.rank = 5;
    hafl_adapter_t *wrong = hafl_adapter_new(&other);
    CHECK(hafl_trainer_load(trainer, wrong, roles, err, sizeof err) == -1);
    roles[0] = 7;
    CHECK(hafl_trainer_load(trainer, global, roles, err, sizeof err) == -1);
    hafl_adapter_destroy(&wrong);
    hafl_adapter_destroy(&global);
    hafl_trainer_destroy(&trainer);
    hafl_task_destroy(&task);
}

static void s_test_centralised_learning(void)
{
    hafl_topology_t topo = s_topology(32, 4, 8, 2048, 512, 1, "iid", 0.5f, 1);
    char err[256] = "";
    hafl_task_t *task = hafl_synth_task_new(&topo, err, sizeof err);
    CHECKF(task, "%s", err);
    char text[256];
    hafl_task_describe(task, text, sizeof text);
    printf("%s\n", text);
    CHECK(strncmp(text, "synthetic", 9) == 0);
    hafl_trainer_t *trainer = hafl_trainer_new(task, 0, err, sizeof err);
    CHECKF(trainer, "%s", err);
    hafl_eval_stats_t before, after;
    CHECK(hafl_task_evaluate(task, hafl_trainer_adapter(trainer), NULL, 0, &before, err,
                             sizeof err) == 0);
    CHECK(before.examples == 512);
    hafl_train_opts_t opts = {.local_epochs = 4,
                              .batch = 16,
                              .lr = 1e-2f,
                              .weight_decay = 0.0f,
                              .seed = 3,
                              .fresh_optimizer = true};
    hafl_train_stats_t stats;
    CHECKF(hafl_trainer_train(trainer, &opts, &stats, err, sizeof err) == 0, "%s", err);
    CHECK(hafl_task_evaluate(task, hafl_trainer_adapter(trainer), NULL, 0, &after, err,
                             sizeof err) == 0);
    printf("centralised: accuracy %.3f -> %.3f, loss %.3f -> %.3f (train loss %.3f)\n",
           (double)before.accuracy, (double)after.accuracy, (double)before.loss, (double)after.loss,
           (double)stats.loss);
    CHECK(after.loss < 0.5f * before.loss);
    CHECK(after.accuracy >= 0.85f); //  chance is 0.25
    //  max_examples limits the evaluation.
    CHECK(hafl_task_evaluate(task, hafl_trainer_adapter(trainer), NULL, 100, &after, err,
                             sizeof err) == 0);
    CHECK(after.examples == 100);
    hafl_trainer_destroy(&trainer);
    hafl_task_destroy(&task);
}

static void s_check_split(hafl_topology_t *topo)
{
    char err[256] = "";
    hafl_task_t *task = hafl_synth_task_new(topo, err, sizeof err);
    CHECKF(task, "%s", err);
    CHECK(hafl_task_clients(task) == topo->clients.count);
    uint64_t total = 0;
    for (uint32_t c = 0; c < topo->clients.count; c++) {
        uint64_t n = hafl_task_client_samples(task, c);
        CHECKF(n >= 1, "client %u of %s split has no sample", c, topo->data.split);
        total += n;
    }
    CHECK(total == topo->data.train_size);
    hafl_task_destroy(&task);
}

static void s_test_splits(void)
{
    hafl_topology_t topo = s_topology(8, 5, 2, 1000, 10, 7, "iid", 0.5f, 3);
    s_check_split(&topo);
    topo = s_topology(8, 5, 2, 1000, 10, 10, "dirichlet", 0.5f, 3);
    s_check_split(&topo);
    topo = s_topology(8, 5, 2, 120, 10, 100, "dirichlet", 0.05f, 4);
    s_check_split(&topo);
    topo = s_topology(8, 5, 2, 100, 10, 100, "iid", 0.5f, 4);
    s_check_split(&topo);
    //  More clients than samples, and rank above dim, are configuration errors.
    char err[256] = "";
    topo = s_topology(8, 5, 2, 10, 10, 11, "iid", 0.5f, 4);
    CHECK(hafl_synth_task_new(&topo, err, sizeof err) == NULL && strstr(err, "clients/count"));
    topo = s_topology(8, 5, 9, 10, 10, 1, "iid", 0.5f, 4);
    CHECK(hafl_synth_task_new(&topo, err, sizeof err) == NULL && strstr(err, "model/rank"));
}

//  Train client 2 of a fresh task for one round; return the adapter digest.
static void s_one_round_digest(const hafl_topology_t *topo, uint8_t base[32], uint8_t digest[32])
{
    char err[256] = "";
    hafl_task_t *task = hafl_synth_task_new(topo, err, sizeof err);
    CHECKF(task, "%s", err);
    hafl_task_base_digest(task, base);
    hafl_adapter_t *global = hafl_adapter_new(hafl_task_layout(task));
    hafl_adapter_init(global, topo->seed);
    uint8_t roles[8];
    for (uint32_t k = 0; k < 8; k++)
        roles[k] = k < 4 ? HAFL_ROLE_TRAINABLE : HAFL_ROLE_FROZEN;
    hafl_trainer_t *trainer = hafl_trainer_new(task, 2, err, sizeof err);
    CHECKF(trainer, "%s", err);
    CHECK(hafl_trainer_load(trainer, global, roles, err, sizeof err) == 0);
    hafl_train_opts_t opts = {.local_epochs = 1,
                              .batch = 8,
                              .lr = 1e-3f,
                              .weight_decay = 0.01f,
                              .seed = 17,
                              .fresh_optimizer = true};
    CHECK(hafl_trainer_train(trainer, &opts, NULL, err, sizeof err) == 0);
    hafl_adapter_digest(hafl_trainer_adapter(trainer), digest);
    hafl_adapter_destroy(&global);
    hafl_trainer_destroy(&trainer);
    hafl_task_destroy(&task);
}

static void s_test_determinism(void)
{
    hafl_topology_t topo = s_topology(32, 4, 8, 4096, 256, 10, "dirichlet", 0.5f, 1);
    uint8_t base1[32], base2[32], d1[32], d2[32];
    s_one_round_digest(&topo, base1, d1);
    s_one_round_digest(&topo, base2, d2);
    CHECK(memcmp(base1, base2, 32) == 0);
    CHECK(memcmp(d1, d2, 32) == 0);
    topo.seed = 2;
    s_one_round_digest(&topo, base2, d2);
    CHECK(memcmp(base1, base2, 32) != 0);
    CHECK(memcmp(d1, d2, 32) != 0);
}

//  A 100-client round of the default-sized task, every client one epoch: exercised here so the
//  suite covers many small shards; its speed is measured by the benchmarks, not asserted.
static void s_test_many_clients(void)
{
    hafl_topology_t topo = s_topology(32, 4, 8, 4096, 1024, 100, "iid", 0.5f, 9);
    char err[256] = "";
    hafl_task_t *task = hafl_synth_task_new(&topo, err, sizeof err);
    CHECKF(task, "%s", err);
    hafl_adapter_t *global = hafl_adapter_new(hafl_task_layout(task));
    hafl_adapter_init(global, 9);
    uint8_t roles[8];
    memset(roles, HAFL_ROLE_TRAINABLE, sizeof roles);
    hafl_train_opts_t opts = {.local_epochs = 1,
                              .batch = 8,
                              .lr = 1e-3f,
                              .weight_decay = 0.01f,
                              .seed = 1,
                              .fresh_optimizer = true};
    for (uint32_t c = 0; c < 100; c++) {
        hafl_trainer_t *trainer = hafl_trainer_new(task, c, err, sizeof err);
        CHECKF(trainer, "%s", err);
        CHECK(hafl_trainer_load(trainer, global, roles, err, sizeof err) == 0);
        hafl_train_stats_t stats;
        CHECK(hafl_trainer_train(trainer, &opts, &stats, err, sizeof err) == 0);
        CHECK(stats.examples == hafl_task_client_samples(task, c));
        hafl_trainer_destroy(&trainer);
    }
    hafl_adapter_destroy(&global);
    hafl_task_destroy(&task);
}

int main(void)
{
    s_test_gradients();
    s_test_roles_after_training();
    s_test_centralised_learning();
    s_test_splits();
    s_test_determinism();
    s_test_many_clients();
    printf("synth_task: all checks passed\n");
    return 0;
}
