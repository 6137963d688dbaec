/*  hafl_synth_task: the synthetic model, its seeded data and split, and its trainer. See
    hafl_synth_task.h for the model. Everything is plain loops with double accumulation: the
    sizes are tiny (dim 32, rank 8) and plain loops make the results independent of BLAS
    threading, so every mode of a federation gets bit-identical numbers.

    Data layout: x_train [n_train][D], y_train [n_train]; the partition across clients is a
    hafl_split (data/hafl_split.h, iid or dirichlet by data/split) over the teacher's labels, so
    the synthetic and the real tasks split by the same rule.

    Random streams (hafl_rng.h): SYNTH index 0 for W0, 1 for the teacher, 2 for training
    inputs, 3 for test inputs; SPLIT index 0 for the partition; BATCH (round seed, client) for
    the mini-batch order. Adapter initialisation is hafl_adapter_init (topology seed).
*/
#include "hafl_synth_task.h"
#include "hafl_rng.h"
#include "hafl_split.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ADAM_BETA1  0.9
#define S_ADAM_BETA2  0.999
#define S_ADAM_EPS    1e-8
#define S_EMA_IBAR    0.85 //  docs/METHOD.md section 2, b1
#define S_EMA_UBAR    0.85 //  docs/METHOD.md section 2, b2
#define S_MAX_DIM     4096u
#define S_MAX_CLASSES 1024u
#define S_MAX_SAMPLES (1u << 24)

struct hafl_synth_task_t {
    hafl_layout_t layout; //  one matrix "W0" [D][D], rank R, head [C][D + 1]
    uint32_t D, C, R, teacher_rank;
    float scale; //  alpha / R
    uint64_t seed;
    bool score_ibar; //  model/score = ibar: s = Ibar instead of Ibar * Ubar
    char split[16];
    float dirichlet_alpha;
    float *w0; //  [D][D], frozen
    uint32_t n_train, n_test;
    float *x_train;    //  [n_train][D]
    uint32_t *y_train; //  [n_train]
    float *x_test;     //  [n_test][D]
    uint32_t *y_test;  //  [n_test]
    uint32_t n_clients;
    hafl_split_t *split_of; //  the training set across clients
    uint8_t digest[32];
};

//  Per-example working memory of the forward and backward passes.
typedef struct {
    double *z;  //  [D] base output (W0 + merged) x
    double *t;  //  [R] a_k . x
    double *h;  //  [D] adapted output
    double *p;  //  [C] softmax probabilities
    double *dh; //  [D] dloss/dh
} s_scratch_t;

//  Gradient accumulators of one mini-batch, in double.
typedef struct {
    double *bt;   //  [R][D]
    double *a;    //  [R][D]
    double *head; //  [C][D + 1]
} s_grads_t;

typedef struct {
    hafl_synth_task_t *task;
    uint32_t client;
    uint32_t n;              //  shard size
    const uint32_t *rows;    //  [n] sample indices of the shard (owned by task->split_of)
    hafl_adapter_t *adapter; //  the local adapter
    uint8_t *roles;          //  [R] HAFL_ROLE_*
    uint8_t *active;         //  [R] 1 where the component is in the model (not absent)
    float *weff;             //  [D][D] W0 + merged terms of the current round
    double *z;               //  [n][D] weff x for the shard
    uint32_t *batch_order;   //  [n]
    //  AdamW moments and step count; rows of non-trainable components are kept zero.
    float *m_bt, *v_bt, *m_a, *v_a; //  [R][D] each
    float *m_head, *v_head;         //  [C][D + 1]
    uint64_t adam_t;
    //  Importance EMAs per adapter entry, kept across rounds (docs/METHOD.md section 2).
    float *ibar_bt, *ubar_bt, *ibar_a, *ubar_a; //  [R][D] each
    s_grads_t grads;
    s_scratch_t scratch;
} s_trainer_t;

static void *s_calloc(size_t count, size_t size)
{
    return calloc(count ? count : 1, size);
}

static int s_scratch_init(s_scratch_t *self, const hafl_synth_task_t *task)
{
    self->z = s_calloc(task->D, sizeof(double));
    self->t = s_calloc(task->R, sizeof(double));
    self->h = s_calloc(task->D, sizeof(double));
    self->p = s_calloc(task->C, sizeof(double));
    self->dh = s_calloc(task->D, sizeof(double));
    return self->z && self->t && self->h && self->p && self->dh ? 0 : -1;
}

static void s_scratch_clear(s_scratch_t *self)
{
    free(self->z);
    free(self->t);
    free(self->h);
    free(self->p);
    free(self->dh);
    memset(self, 0, sizeof *self);
}

static int s_grads_init(s_grads_t *self, const hafl_synth_task_t *task)
{
    self->bt = s_calloc((size_t)task->R * task->D, sizeof(double));
    self->a = s_calloc((size_t)task->R * task->D, sizeof(double));
    self->head = s_calloc((size_t)task->C * (task->D + 1), sizeof(double));
    return self->bt && self->a && self->head ? 0 : -1;
}

static void s_grads_zero(s_grads_t *self, const hafl_synth_task_t *task)
{
    memset(self->bt, 0, (size_t)task->R * task->D * sizeof(double));
    memset(self->a, 0, (size_t)task->R * task->D * sizeof(double));
    memset(self->head, 0, (size_t)task->C * (task->D + 1) * sizeof(double));
}

static void s_grads_clear(s_grads_t *self)
{
    free(self->bt);
    free(self->a);
    free(self->head);
    memset(self, 0, sizeof *self);
}

//  --------------------------------------------------------------------------------------------
//  Model math

//  weff [D][D] = W0 + sum_j mb_j ma_j^T over the adapter's merged terms (already scaled).
static int s_effective_base(const hafl_synth_task_t *self, const hafl_adapter_t *adapter,
                            float *weff)
{
    uint32_t D = self->D, n_merged = adapter->n_merged[0];
    if (n_merged == 0) {
        memcpy(weff, self->w0, (size_t)D * D * sizeof(float));
        return 0;
    }
    double *acc = malloc((size_t)D * D * sizeof(double));
    if (!acc)
        return -1;
    for (size_t i = 0; i < (size_t)D * D; i++)
        acc[i] = self->w0[i];
    for (uint32_t j = 0; j < n_merged; j++) {
        const float *mb = adapter->mbt[0] + (size_t)j * D; //  [D] output side
        const float *ma = adapter->ma[0] + (size_t)j * D;  //  [D] input side
        for (uint32_t o = 0; o < D; o++)
            for (uint32_t i = 0; i < D; i++)
                acc[(size_t)o * D + i] += (double)mb[o] * ma[i];
    }
    for (size_t i = 0; i < (size_t)D * D; i++)
        weff[i] = (float)acc[i];
    free(acc);
    return 0;
}

//  z [D] = weff [D][D] x [D]
static void s_base_forward(uint32_t D, const float *weff, const float *x, double *z)
{
    for (uint32_t o = 0; o < D; o++) {
        const float *row = weff + (size_t)o * D;
        double sum = 0;
        for (uint32_t i = 0; i < D; i++)
            sum += (double)row[i] * x[i];
        z[o] = sum;
    }
}

//  One example forward. x [D], z [D] (base output), active [R] nonzero for components in the
//  model (NULL: all). Fills s->t, s->h, s->p; returns -log p[y] and the argmax in *pred.
static double s_forward(const hafl_synth_task_t *self, const hafl_adapter_t *ad,
                        const uint8_t *active, const float *x, const double *z, uint32_t y,
                        s_scratch_t *s, uint32_t *pred)
{
    uint32_t D = self->D, C = self->C, R = self->R;
    for (uint32_t o = 0; o < D; o++)
        s->h[o] = z[o];
    for (uint32_t k = 0; k < R; k++) {
        s->t[k] = 0;
        if (active && !active[k])
            continue;
        const float *a = ad->a[0] + (size_t)k * D;  //  [D]
        const float *b = ad->bt[0] + (size_t)k * D; //  [D]
        double t = 0;
        for (uint32_t i = 0; i < D; i++)
            t += (double)a[i] * x[i];
        s->t[k] = t;
        double st = (double)self->scale * t;
        for (uint32_t o = 0; o < D; o++)
            s->h[o] += st * b[o];
    }
    double max = -INFINITY;
    uint32_t best = 0;
    for (uint32_t c = 0; c < C; c++) {
        const float *row = ad->head + (size_t)c * (D + 1); //  [D + 1], bias last
        double logit = row[D];
        for (uint32_t o = 0; o < D; o++)
            logit += (double)row[o] * s->h[o];
        s->p[c] = logit;
        if (logit > max) {
            max = logit;
            best = c;
        }
    }
    double sum = 0;
    for (uint32_t c = 0; c < C; c++)
        sum += exp(s->p[c] - max);
    double log_sum = log(sum) + max;
    double loss = log_sum - s->p[y];
    for (uint32_t c = 0; c < C; c++)
        s->p[c] = exp(s->p[c] - log_sum);
    if (pred)
        *pred = best;
    return loss;
}

//  Backward of coeff * loss for the example s_forward just ran, accumulating into g: the head,
//  and b_k, a_k of trainable components (roles[k] == TRAINABLE; NULL: all).
static void s_backward(const hafl_synth_task_t *self, const hafl_adapter_t *ad,
                       const uint8_t *roles, const float *x, uint32_t y, double coeff,
                       s_scratch_t *s, s_grads_t *g)
{
    uint32_t D = self->D, C = self->C, R = self->R;
    for (uint32_t o = 0; o < D; o++)
        s->dh[o] = 0;
    for (uint32_t c = 0; c < C; c++) {
        double dlogit = coeff * (s->p[c] - (c == y ? 1.0 : 0.0));
        const float *row = ad->head + (size_t)c * (D + 1); //  [D + 1]
        double *grow = g->head + (size_t)c * (D + 1);      //  [D + 1]
        for (uint32_t o = 0; o < D; o++) {
            grow[o] += dlogit * s->h[o];
            s->dh[o] += dlogit * row[o];
        }
        grow[D] += dlogit;
    }
    for (uint32_t k = 0; k < R; k++) {
        if (roles && roles[k] != HAFL_ROLE_TRAINABLE)
            continue;
        const float *b = ad->bt[0] + (size_t)k * D; //  [D]
        double *gb = g->bt + (size_t)k * D;         //  [D]
        double *ga = g->a + (size_t)k * D;          //  [D]
        double st = (double)self->scale * s->t[k];
        double dt = 0;
        for (uint32_t o = 0; o < D; o++) {
            gb[o] += st * s->dh[o];
            dt += (double)b[o] * s->dh[o];
        }
        dt *= self->scale;
        for (uint32_t i = 0; i < D; i++)
            ga[i] += dt * x[i];
    }
}

//  --------------------------------------------------------------------------------------------
//  Data and split

static void s_fill_normal(hafl_rng_t *rng, float *v, size_t n, double std)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(std * hafl_rng_normal(rng));
}

//  Labels y = argmax T (W0 + U V^T) x for n inputs x [n][D]; v_x [Rt], w_x [D] are scratch.
static void s_teacher_label(const hafl_synth_task_t *self, const float *T, const float *U,
                            const float *V, const float *x, uint32_t n, uint32_t *y, double *v_x,
                            double *w_x)
{
    uint32_t D = self->D, Rt = self->teacher_rank;
    for (uint32_t s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * D;
        for (uint32_t r = 0; r < Rt; r++) {
            double sum = 0;
            for (uint32_t i = 0; i < D; i++)
                sum += (double)V[(size_t)i * Rt + r] * xs[i];
            v_x[r] = sum;
        }
        for (uint32_t o = 0; o < D; o++) {
            double sum = 0;
            for (uint32_t i = 0; i < D; i++)
                sum += (double)self->w0[(size_t)o * D + i] * xs[i];
            for (uint32_t r = 0; r < Rt; r++)
                sum += (double)U[(size_t)o * Rt + r] * v_x[r];
            w_x[o] = sum;
        }
        double best = -INFINITY;
        y[s] = 0;
        for (uint32_t c = 0; c < self->C; c++) {
            double logit = 0;
            for (uint32_t o = 0; o < D; o++)
                logit += (double)T[(size_t)c * D + o] * w_x[o];
            if (logit > best) {
                best = logit;
                y[s] = c;
            }
        }
    }
}

static int s_split(hafl_synth_task_t *self, char *err, size_t errlen)
{
    if (strcmp(self->split, "dirichlet") == 0)
        self->split_of =
            hafl_split_dirichlet(self->y_train, self->n_train, self->C, self->n_clients,
                                 self->dirichlet_alpha, self->seed, err, errlen);
    else
        self->split_of = hafl_split_iid(self->y_train, self->n_train, self->C, self->n_clients,
                                        self->seed, err, errlen);
    return self->split_of ? 0 : -1;
}

static void s_put_u32(crypto_hash_sha256_state *state, uint32_t value)
{
    crypto_hash_sha256_update(state, (const uint8_t *)&value, 4);
}

//  SHA-256 over everything a client must share with the server: kind, shapes, seed, frozen
//  weights, data sizes and the split (little-endian host, as hafl_adapter.c requires).
static void s_compute_digest(hafl_synth_task_t *self)
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init(&state);
    const char tag[] = "hafl-synthetic-task-v1";
    crypto_hash_sha256_update(&state, (const uint8_t *)tag, sizeof tag);
    s_put_u32(&state, self->D);
    s_put_u32(&state, self->C);
    s_put_u32(&state, self->R);
    s_put_u32(&state, self->teacher_rank);
    crypto_hash_sha256_update(&state, (const uint8_t *)&self->scale, 4);
    crypto_hash_sha256_update(&state, (const uint8_t *)&self->seed, 8);
    crypto_hash_sha256_update(&state, (const uint8_t *)self->w0,
                              (size_t)self->D * self->D * sizeof(float));
    s_put_u32(&state, self->n_train);
    s_put_u32(&state, self->n_test);
    s_put_u32(&state, self->n_clients);
    crypto_hash_sha256_update(&state, (const uint8_t *)self->split, sizeof self->split);
    for (uint32_t c = 0; c < self->n_clients; c++) {
        uint32_t count = hafl_split_count(self->split_of, c);
        s_put_u32(&state, count);
        crypto_hash_sha256_update(&state, (const uint8_t *)hafl_split_indices(self->split_of, c),
                                  (size_t)count * sizeof(uint32_t));
    }
    crypto_hash_sha256_final(&state, self->digest);
}

void hafl_synth_task_free(hafl_synth_task_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_synth_task_t *self = *self_p;
    hafl_layout_clear(&self->layout);
    free(self->w0);
    free(self->x_train);
    free(self->y_train);
    free(self->x_test);
    free(self->y_test);
    hafl_split_destroy(&self->split_of);
    free(self);
    *self_p = NULL;
}

static int s_check_topology(const hafl_topology_t *topo, char *err, size_t errlen)
{
    const char *path = topo->path ? topo->path : "topology";
    if (topo->model.dim < 1 || topo->model.dim > S_MAX_DIM)
        snprintf(err, errlen, "%s: model/dim: %u outside 1..%u", path, topo->model.dim, S_MAX_DIM);
    else if (topo->model.classes < 2 || topo->model.classes > S_MAX_CLASSES)
        snprintf(err, errlen, "%s: model/classes: %u outside 2..%u", path, topo->model.classes,
                 S_MAX_CLASSES);
    else if (topo->model.rank < 1 || topo->model.rank > topo->model.dim)
        snprintf(err, errlen, "%s: model/rank: %u outside 1..model/dim (%u) for the synthetic task",
                 path, topo->model.rank, topo->model.dim);
    else if (!(topo->model.alpha > 0) || !isfinite(topo->model.alpha))
        snprintf(err, errlen, "%s: model/alpha: must be finite and > 0", path);
    else if (topo->data.train_size < 1 || topo->data.train_size > S_MAX_SAMPLES)
        snprintf(err, errlen, "%s: data/train_size: %u outside 1..%u", path, topo->data.train_size,
                 S_MAX_SAMPLES);
    else if (topo->data.test_size < 1 || topo->data.test_size > S_MAX_SAMPLES)
        snprintf(err, errlen, "%s: data/test_size: %u outside 1..%u", path, topo->data.test_size,
                 S_MAX_SAMPLES);
    else if (topo->clients.count < 1 || topo->clients.count > topo->data.train_size)
        snprintf(err, errlen,
                 "%s: clients/count: %u clients need at least as many training samples "
                 "(data/train_size is %u)",
                 path, topo->clients.count, topo->data.train_size);
    else if (topo->data.split && strcmp(topo->data.split, "iid") != 0 &&
             strcmp(topo->data.split, "dirichlet") != 0)
        snprintf(err, errlen, "%s: data/split: unknown split '%s'", path, topo->data.split);
    else if (topo->data.split && strcmp(topo->data.split, "dirichlet") == 0 &&
             !(topo->data.dirichlet_alpha > 0 && isfinite(topo->data.dirichlet_alpha)))
        snprintf(err, errlen, "%s: data/dirichlet_alpha: must be finite and > 0", path);
    else
        return 0;
    return -1;
}

hafl_synth_task_t *hafl_synth_task_build(const hafl_topology_t *topo, char *err, size_t errlen)
{
    if (s_check_topology(topo, err, errlen))
        return NULL;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "synthetic task: libsodium failed to initialise");
        return NULL;
    }
    hafl_synth_task_t *self = calloc(1, sizeof(hafl_synth_task_t));
    float *T = NULL, *U = NULL, *V = NULL;
    double *v_x = NULL, *w_x = NULL;
    if (!self)
        goto nomem;
    self->D = topo->model.dim;
    self->C = topo->model.classes;
    self->R = topo->model.rank;
    self->teacher_rank = self->R / 2 > 0 ? self->R / 2 : 1;
    self->scale = topo->model.alpha / (float)self->R;
    self->seed = topo->seed;
    self->score_ibar = topo->model.score && strcmp(topo->model.score, "ibar") == 0;
    snprintf(self->split, sizeof self->split, "%s", topo->data.split ? topo->data.split : "iid");
    self->dirichlet_alpha = topo->data.dirichlet_alpha;
    self->n_train = topo->data.train_size;
    self->n_test = topo->data.test_size;
    self->n_clients = topo->clients.count;

    uint32_t D = self->D, C = self->C;
    hafl_matrix_info_t info = {.d_out = D, .d_in = D};
    snprintf(info.name, sizeof info.name, "W0");
    hafl_layout_t layout = {.n_matrices = 1,
                            .matrices = &info,
                            .rank = self->R,
                            .scale = self->scale,
                            .head_rows = C,
                            .head_cols = D + 1};
    if (hafl_layout_copy(&self->layout, &layout))
        goto nomem;

    self->w0 = malloc((size_t)D * D * sizeof(float));
    self->x_train = malloc((size_t)self->n_train * D * sizeof(float));
    self->y_train = malloc((size_t)self->n_train * sizeof(uint32_t));
    self->x_test = malloc((size_t)self->n_test * D * sizeof(float));
    self->y_test = malloc((size_t)self->n_test * sizeof(uint32_t));
    T = malloc((size_t)C * D * sizeof(float));
    U = malloc((size_t)D * self->teacher_rank * sizeof(float));
    V = malloc((size_t)D * self->teacher_rank * sizeof(float));
    v_x = malloc((size_t)self->teacher_rank * sizeof(double));
    w_x = malloc((size_t)D * sizeof(double));
    if (!v_x || !w_x || !self->w0 || !self->x_train || !self->y_train || !self->x_test ||
        !self->y_test || !T || !U || !V)
        goto nomem;

    //  Scales keep W0 x, U V^T x and T h all of unit order for unit-variance inputs.
    hafl_rng_t rng;
    hafl_rng_seed(&rng, self->seed, HAFL_STREAM_SYNTH, 0);
    s_fill_normal(&rng, self->w0, (size_t)D * D, 1.0 / sqrt((double)D));
    hafl_rng_seed(&rng, self->seed, HAFL_STREAM_SYNTH, 1);
    s_fill_normal(&rng, T, (size_t)C * D, 1.0 / sqrt((double)D));
    s_fill_normal(&rng, U, (size_t)D * self->teacher_rank, 1.0 / sqrt((double)self->teacher_rank));
    s_fill_normal(&rng, V, (size_t)D * self->teacher_rank, 1.0 / sqrt((double)D));
    hafl_rng_seed(&rng, self->seed, HAFL_STREAM_SYNTH, 2);
    s_fill_normal(&rng, self->x_train, (size_t)self->n_train * D, 1.0);
    hafl_rng_seed(&rng, self->seed, HAFL_STREAM_SYNTH, 3);
    s_fill_normal(&rng, self->x_test, (size_t)self->n_test * D, 1.0);
    s_teacher_label(self, T, U, V, self->x_train, self->n_train, self->y_train, v_x, w_x);
    s_teacher_label(self, T, U, V, self->x_test, self->n_test, self->y_test, v_x, w_x);
    free(T);
    free(U);
    free(V);
    free(v_x);
    free(w_x);

    if (s_split(self, err, errlen)) {
        hafl_synth_task_free(&self);
        return NULL;
    }
    s_compute_digest(self);
    return self;
nomem:
    free(T);
    free(U);
    free(V);
    free(v_x);
    free(w_x);
    hafl_synth_task_free(&self);
    snprintf(err, errlen, "synthetic task: out of memory");
    return NULL;
}

//  0 if adapter has the task's layout, else -1 with the mismatch in err.
static int s_check_adapter(const hafl_synth_task_t *self, const hafl_adapter_t *adapter,
                           const char *what, char *err, size_t errlen)
{
    const hafl_layout_t *L = &adapter->layout;
    if (L->n_matrices != 1 || L->matrices[0].d_out != self->D || L->matrices[0].d_in != self->D ||
        L->rank != self->R || L->head_rows != self->C || L->head_cols != self->D + 1) {
        snprintf(err, errlen,
                 "synthetic task: %s layout (%u matrices, rank %u, head %ux%u) differs from the "
                 "task's (1 matrix %ux%u, rank %u, head %ux%u)",
                 what, L->n_matrices, L->rank, L->head_rows, L->head_cols, self->D, self->D,
                 self->R, self->C, self->D + 1);
        return -1;
    }
    return 0;
}

int hafl_synth_task_loss_grad(const hafl_synth_task_t *self, const hafl_adapter_t *adapter,
                              const uint8_t *roles, uint32_t client, uint32_t n, double *loss,
                              hafl_adapter_t *grad, char *err, size_t errlen)
{
    if (s_check_adapter(self, adapter, "adapter", err, errlen) ||
        (grad && s_check_adapter(self, grad, "gradient", err, errlen)))
        return -1;
    if (client >= self->n_clients || n == 0 || n > hafl_split_count(self->split_of, client)) {
        snprintf(err, errlen, "synthetic task: client %u with %u examples out of range", client, n);
        return -1;
    }
    uint32_t D = self->D, R = self->R;
    uint8_t *active = malloc(R);
    float *weff = malloc((size_t)D * D * sizeof(float));
    s_scratch_t s = {0};
    s_grads_t g = {0};
    int rc = -1;
    if (!active || !weff || s_scratch_init(&s, self) || s_grads_init(&g, self) ||
        s_effective_base(self, adapter, weff)) {
        snprintf(err, errlen, "synthetic task: out of memory");
        goto done;
    }
    for (uint32_t k = 0; k < R; k++)
        active[k] = !roles || roles[k] != HAFL_ROLE_ABSENT;
    double total = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t row = hafl_split_indices(self->split_of, client)[i];
        const float *x = self->x_train + (size_t)row * D;
        s_base_forward(D, weff, x, s.z);
        total += s_forward(self, adapter, active, x, s.z, self->y_train[row], &s, NULL);
        s_backward(self, adapter, roles, x, self->y_train[row], 1.0 / n, &s, &g);
    }
    *loss = total / n;
    if (grad) {
        for (size_t i = 0; i < (size_t)R * D; i++) {
            grad->bt[0][i] = (float)g.bt[i];
            grad->a[0][i] = (float)g.a[i];
        }
        for (size_t i = 0; i < (size_t)self->C * (D + 1); i++)
            grad->head[i] = (float)g.head[i];
    }
    rc = 0;
done:
    free(active);
    free(weff);
    s_scratch_clear(&s);
    s_grads_clear(&g);
    return rc;
}

//  --------------------------------------------------------------------------------------------
//  The trainer

static void s_trainer_destroy(void *impl)
{
    s_trainer_t *self = impl;
    if (!self)
        return;
    hafl_adapter_destroy(&self->adapter);
    free(self->roles);
    free(self->active);
    free(self->weff);
    free(self->z);
    free(self->batch_order);
    free(self->m_bt);
    free(self->v_bt);
    free(self->m_a);
    free(self->v_a);
    free(self->m_head);
    free(self->v_head);
    free(self->ibar_bt);
    free(self->ubar_bt);
    free(self->ibar_a);
    free(self->ubar_a);
    s_grads_clear(&self->grads);
    s_scratch_clear(&self->scratch);
    free(self);
}

//  Recompute the shard's base outputs z = weff x after the merged terms changed.
static int s_trainer_rebase(s_trainer_t *self)
{
    hafl_synth_task_t *task = self->task;
    if (s_effective_base(task, self->adapter, self->weff))
        return -1;
    for (uint32_t i = 0; i < self->n; i++)
        s_base_forward(task->D, self->weff, task->x_train + (size_t)self->rows[i] * task->D,
                       self->z + (size_t)i * task->D);
    return 0;
}

static int s_trainer_load(void *impl, const hafl_adapter_t *received, const uint8_t *roles,
                          char *err, size_t errlen)
{
    s_trainer_t *self = impl;
    hafl_synth_task_t *task = self->task;
    uint32_t D = task->D, R = task->R;
    if (s_check_adapter(task, received, "received adapter", err, errlen))
        return -1;
    for (uint32_t k = 0; k < R; k++)
        if (roles[k] > HAFL_ROLE_TRAINABLE) {
            snprintf(err, errlen, "synthetic task: roles[%u] = %u is not a role (0..2)", k,
                     roles[k]);
            return -1;
        }
    if (hafl_adapter_copy_from(self->adapter, received)) {
        snprintf(err, errlen, "synthetic task: out of memory installing the received adapter");
        return -1;
    }
    memcpy(self->roles, roles, R);
    for (uint32_t k = 0; k < R; k++) {
        self->active[k] = roles[k] != HAFL_ROLE_ABSENT;
        size_t at = (size_t)k * D, bytes = D * sizeof(float);
        if (roles[k] == HAFL_ROLE_ABSENT) {
            memset(self->adapter->bt[0] + at, 0, bytes);
            memset(self->adapter->a[0] + at, 0, bytes);
            self->adapter->score[k] = 0;
        }
        if (roles[k] != HAFL_ROLE_TRAINABLE) {
            //  No optimiser state for what is not trained this round.
            memset(self->m_bt + at, 0, bytes);
            memset(self->v_bt + at, 0, bytes);
            memset(self->m_a + at, 0, bytes);
            memset(self->v_a + at, 0, bytes);
        }
    }
    if (s_trainer_rebase(self)) {
        snprintf(err, errlen, "synthetic task: out of memory installing merged terms");
        return -1;
    }
    return 0;
}

//  AdamW on n entries: w -= lr * (mhat / (sqrt (vhat) + eps) + wd * w).
static void s_adamw(float *w, const double *g, float *m, float *v, size_t n, double lr, double wd,
                    double bias1, double bias2)
{
    for (size_t i = 0; i < n; i++) {
        double mi = S_ADAM_BETA1 * m[i] + (1 - S_ADAM_BETA1) * g[i];
        double vi = S_ADAM_BETA2 * v[i] + (1 - S_ADAM_BETA2) * g[i] * g[i];
        m[i] = (float)mi;
        v[i] = (float)vi;
        double update = (mi / bias1) / (sqrt(vi / bias2) + S_ADAM_EPS) + wd * w[i];
        w[i] = (float)(w[i] - lr * update);
    }
}

//  Importance EMAs for n entries after a step (weights already updated): I = |w g|.
static void s_importance(const float *w, const double *g, float *ibar, float *ubar, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double I = fabs((double)w[i] * g[i]);
        double ib = S_EMA_IBAR * ibar[i] + (1 - S_EMA_IBAR) * I;
        ubar[i] = (float)(S_EMA_UBAR * ubar[i] + (1 - S_EMA_UBAR) * fabs(I - ib));
        ibar[i] = (float)ib;
    }
}

//  One optimiser step on the batch rows [count] (indices into the shard). Returns the batch's
//  summed loss.
static double s_trainer_step(s_trainer_t *self, const uint32_t *batch, uint32_t count,
                             const hafl_train_opts_t *opts)
{
    hafl_synth_task_t *task = self->task;
    uint32_t D = task->D, R = task->R;
    s_grads_zero(&self->grads, task);
    double total = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t at = batch[i], row = self->rows[at];
        const float *x = task->x_train + (size_t)row * D;
        total += s_forward(task, self->adapter, self->active, x, self->z + (size_t)at * D,
                           task->y_train[row], &self->scratch, NULL);
        s_backward(task, self->adapter, self->roles, x, task->y_train[row], 1.0 / count,
                   &self->scratch, &self->grads);
    }
    self->adam_t++;
    double bias1 = 1 - pow(S_ADAM_BETA1, (double)self->adam_t);
    double bias2 = 1 - pow(S_ADAM_BETA2, (double)self->adam_t);
    double lr = opts->lr, wd = opts->weight_decay;
    for (uint32_t k = 0; k < R; k++) {
        if (self->roles[k] != HAFL_ROLE_TRAINABLE)
            continue;
        size_t at = (size_t)k * D;
        float *b = self->adapter->bt[0] + at, *a = self->adapter->a[0] + at;
        s_adamw(b, self->grads.bt + at, self->m_bt + at, self->v_bt + at, D, lr, wd, bias1, bias2);
        s_adamw(a, self->grads.a + at, self->m_a + at, self->v_a + at, D, lr, wd, bias1, bias2);
        s_importance(b, self->grads.bt + at, self->ibar_bt + at, self->ubar_bt + at, D);
        s_importance(a, self->grads.a + at, self->ibar_a + at, self->ubar_a + at, D);
    }
    s_adamw(self->adapter->head, self->grads.head, self->m_head, self->v_head,
            (size_t)task->C * (D + 1), lr, wd, bias1, bias2);
    return total;
}

static int s_trainer_train(void *impl, const hafl_train_opts_t *opts, hafl_train_stats_t *stats,
                           char *err, size_t errlen)
{
    s_trainer_t *self = impl;
    hafl_synth_task_t *task = self->task;
    uint32_t D = task->D, R = task->R;
    if (opts->batch < 1 || !(opts->lr > 0) || !isfinite(opts->lr) || !(opts->weight_decay >= 0) ||
        !isfinite(opts->weight_decay) || (opts->local_steps == 0 && opts->local_epochs == 0)) {
        snprintf(err, errlen,
                 "synthetic task: bad training options (batch %u, lr %g, weight decay %g, "
                 "epochs %u, steps %u)",
                 opts->batch, (double)opts->lr, (double)opts->weight_decay, opts->local_epochs,
                 opts->local_steps);
        return -1;
    }
    if (opts->fresh_optimizer) {
        size_t rd = (size_t)R * D * sizeof(float), head = (size_t)task->C * (D + 1);
        memset(self->m_bt, 0, rd);
        memset(self->v_bt, 0, rd);
        memset(self->m_a, 0, rd);
        memset(self->v_a, 0, rd);
        memset(self->m_head, 0, head * sizeof(float));
        memset(self->v_head, 0, head * sizeof(float));
        self->adam_t = 0;
    }
    uint32_t batch = opts->batch < self->n ? opts->batch : self->n;
    uint64_t per_epoch = (self->n + batch - 1) / batch;
    uint64_t total_steps = opts->local_steps ? opts->local_steps : opts->local_epochs * per_epoch;
    hafl_rng_t rng;
    hafl_rng_seed(&rng, opts->seed, HAFL_STREAM_BATCH, self->client);
    for (uint32_t i = 0; i < self->n; i++)
        self->batch_order[i] = i;
    uint64_t step = 0, examples = 0, epoch_examples = 0;
    double epoch_loss = 0;
    while (step < total_steps) {
        hafl_rng_shuffle_u32(&rng, self->batch_order, self->n);
        if (opts->local_steps == 0) {
            //  Epoch mode reports the last epoch's mean loss only.
            epoch_loss = 0;
            epoch_examples = 0;
        }
        for (uint32_t pos = 0; pos < self->n && step < total_steps; pos += batch, step++) {
            uint32_t count = self->n - pos < batch ? self->n - pos : batch;
            epoch_loss += s_trainer_step(self, self->batch_order + pos, count, opts);
            epoch_examples += count;
            examples += count;
        }
    }
    //  S_k = mean over b_k of s + mean over a_k of s, s = Ibar * Ubar (or Ibar).
    for (uint32_t k = 0; k < R; k++) {
        if (self->roles[k] != HAFL_ROLE_TRAINABLE)
            continue;
        double sb = 0, sa = 0;
        for (uint32_t i = 0; i < D; i++) {
            size_t at = (size_t)k * D + i;
            sb += task->score_ibar ? self->ibar_bt[at]
                                   : (double)self->ibar_bt[at] * self->ubar_bt[at];
            sa += task->score_ibar ? self->ibar_a[at] : (double)self->ibar_a[at] * self->ubar_a[at];
        }
        self->adapter->score[k] = (float)(sb / D + sa / D);
    }
    if (stats) {
        stats->loss = epoch_examples ? (float)(epoch_loss / epoch_examples) : 0.0f;
        stats->steps = (uint32_t)step;
        stats->examples = examples;
    }
    return 0;
}

static const hafl_adapter_t *s_trainer_adapter(const void *impl)
{
    return ((const s_trainer_t *)impl)->adapter;
}

//  State: ibar_bt, ubar_bt, ibar_a, ubar_a, [R][D] each, in that order.
static size_t s_trainer_state_size(const void *impl)
{
    const s_trainer_t *self = impl;
    return 4 * (size_t)self->task->R * self->task->D;
}

static void s_trainer_state_get(const void *impl, float *out)
{
    const s_trainer_t *self = impl;
    size_t rd = (size_t)self->task->R * self->task->D;
    const float *parts[4] = {self->ibar_bt, self->ubar_bt, self->ibar_a, self->ubar_a};
    for (int p = 0; p < 4; p++)
        memcpy(out + p * rd, parts[p], rd * sizeof(float));
}

static int s_trainer_state_set(void *impl, const float *in, size_t n, char *err, size_t errlen)
{
    s_trainer_t *self = impl;
    size_t rd = (size_t)self->task->R * self->task->D;
    if (n != 4 * rd) {
        snprintf(err, errlen,
                 "synthetic task: client %u: state of %zu floats, its trainer holds %zu",
                 self->client, n, 4 * rd);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!(in[i] >= 0.0f && isfinite(in[i]))) {
            snprintf(err, errlen,
                     "synthetic task: client %u: importance state entry %zu (%g) is not finite "
                     "and >= 0",
                     self->client, i, (double)in[i]);
            return -1;
        }
    float *parts[4] = {self->ibar_bt, self->ubar_bt, self->ibar_a, self->ubar_a};
    for (int p = 0; p < 4; p++)
        memcpy(parts[p], in + p * rd, rd * sizeof(float));
    return 0;
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

static hafl_trainer_t *s_trainer_new(void *impl, uint32_t client, char *err, size_t errlen)
{
    hafl_synth_task_t *task = impl;
    uint32_t D = task->D, R = task->R;
    size_t rd = (size_t)R * D, head = (size_t)task->C * (D + 1);
    s_trainer_t *self = calloc(1, sizeof(s_trainer_t));
    if (!self)
        goto nomem;
    self->task = task;
    self->client = client;
    self->n = hafl_split_count(task->split_of, client);
    self->rows = hafl_split_indices(task->split_of, client);
    self->adapter = hafl_adapter_new(&task->layout);
    self->roles = malloc(R);
    self->active = malloc(R);
    self->weff = malloc((size_t)D * D * sizeof(float));
    self->z = s_calloc((size_t)self->n * D, sizeof(double));
    self->batch_order = s_calloc(self->n, sizeof(uint32_t));
    self->m_bt = s_calloc(rd, sizeof(float));
    self->v_bt = s_calloc(rd, sizeof(float));
    self->m_a = s_calloc(rd, sizeof(float));
    self->v_a = s_calloc(rd, sizeof(float));
    self->m_head = s_calloc(head, sizeof(float));
    self->v_head = s_calloc(head, sizeof(float));
    self->ibar_bt = s_calloc(rd, sizeof(float));
    self->ubar_bt = s_calloc(rd, sizeof(float));
    self->ibar_a = s_calloc(rd, sizeof(float));
    self->ubar_a = s_calloc(rd, sizeof(float));
    if (!self->adapter || !self->roles || !self->active || !self->weff || !self->z ||
        !self->batch_order || !self->m_bt || !self->v_bt || !self->m_a || !self->v_a ||
        !self->m_head || !self->v_head || !self->ibar_bt || !self->ubar_bt || !self->ibar_a ||
        !self->ubar_a || s_grads_init(&self->grads, task) || s_scratch_init(&self->scratch, task))
        goto nomem;
    //  Until the first load: the initialised adapter with every component trainable.
    hafl_adapter_init(self->adapter, task->seed);
    memset(self->roles, HAFL_ROLE_TRAINABLE, R);
    memset(self->active, 1, R);
    if (s_trainer_rebase(self))
        goto nomem;
    return hafl_trainer_wrap(&s_trainer_ops, self);
nomem:
    s_trainer_destroy(self);
    snprintf(err, errlen, "synthetic task: out of memory for client %u's trainer", client);
    return NULL;
}

//  --------------------------------------------------------------------------------------------
//  The task interface

static void s_task_destroy(void *impl)
{
    hafl_synth_task_t *self = impl;
    hafl_synth_task_free(&self);
}

static const hafl_layout_t *s_task_layout(const void *impl)
{
    return &((const hafl_synth_task_t *)impl)->layout;
}

static void s_task_base_digest(const void *impl, uint8_t digest[32])
{
    memcpy(digest, ((const hafl_synth_task_t *)impl)->digest, 32);
}

static uint32_t s_task_clients(const void *impl)
{
    return ((const hafl_synth_task_t *)impl)->n_clients;
}

static uint64_t s_task_client_samples(const void *impl, uint32_t client)
{
    const hafl_synth_task_t *self = impl;
    if (client >= self->n_clients)
        return 0;
    return hafl_split_count(self->split_of, client);
}

static int s_task_evaluate(const void *impl, const hafl_adapter_t *adapter, const uint8_t *present,
                           uint32_t max_examples, hafl_eval_stats_t *stats, char *err,
                           size_t errlen)
{
    const hafl_synth_task_t *self = impl;
    if (s_check_adapter(self, adapter, "evaluated adapter", err, errlen))
        return -1;
    uint32_t D = self->D;
    uint32_t n = max_examples && max_examples < self->n_test ? max_examples : self->n_test;
    float *weff = malloc((size_t)D * D * sizeof(float));
    s_scratch_t s = {0};
    int rc = -1;
    if (!weff || s_scratch_init(&s, self) || s_effective_base(self, adapter, weff)) {
        snprintf(err, errlen, "synthetic task: out of memory evaluating");
        goto done;
    }
    double total = 0;
    uint64_t correct = 0;
    for (uint32_t i = 0; i < n; i++) {
        const float *x = self->x_test + (size_t)i * D;
        uint32_t pred;
        s_base_forward(D, weff, x, s.z);
        total += s_forward(self, adapter, present, x, s.z, self->y_test[i], &s, &pred);
        correct += pred == self->y_test[i];
    }
    stats->accuracy = (float)((double)correct / n);
    stats->loss = (float)(total / n);
    stats->examples = n;
    rc = 0;
done:
    free(weff);
    s_scratch_clear(&s);
    return rc;
}

static void s_task_describe(const void *impl, char *text, size_t textlen)
{
    const hafl_synth_task_t *self = impl;
    snprintf(text, textlen,
             "synthetic: dim %u, %u classes, rank %u (teacher rank %u), scale %g, %u train / %u "
             "test samples over %u clients (%s), seed %llu",
             self->D, self->C, self->R, self->teacher_rank, (double)self->scale, self->n_train,
             self->n_test, self->n_clients, self->split, (unsigned long long)self->seed);
}

static void s_task_describe_client(const void *impl, uint32_t client, char *text, size_t textlen)
{
    const hafl_synth_task_t *self = impl;
    if (client < self->n_clients)
        hafl_split_describe(self->split_of, client, text, textlen);
    else
        snprintf(text, textlen, "client %u: not in this task", client);
}

static const hafl_task_ops_t s_task_ops = {
    .kind = "synthetic",
    .destroy = s_task_destroy,
    .layout = s_task_layout,
    .base_digest = s_task_base_digest,
    .clients = s_task_clients,
    .client_samples = s_task_client_samples,
    .trainer_new = s_trainer_new,
    .evaluate = s_task_evaluate,
    .describe = s_task_describe,
    .describe_client = s_task_describe_client,
};

hafl_task_t *hafl_synth_task_new(const hafl_topology_t *topology, char *err, size_t errlen)
{
    hafl_synth_task_t *self = hafl_synth_task_build(topology, err, errlen);
    if (!self)
        return NULL;
    hafl_task_t *task = hafl_task_wrap(&s_task_ops, self);
    if (!task)
        snprintf(err, errlen, "synthetic task: out of memory");
    return task;
}
