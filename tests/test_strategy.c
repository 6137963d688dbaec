/*  test_strategy: hand-checkable cases for every aggregation strategy (hafl_strategy.h).

    A small layout (two matrices, R = 4) keeps every expected value computable in the test
    with plain double loops: zeropad's dilution, adaptive's untouched-bitwise rule, fedavg's
    weighted mean, zeropad-norm's product-norm weights, flexlora's exact and Eckart-Young
    factorisations (singular values checked against a Jacobi eigen-solver written here),
    flora's stacked product, the head and score rule, swapping at a round boundary (to and
    from every strategy, median and trimmed-mean included), and the refusal of unsorted or
    malformed input with the global state left untouched.
*/
#include "hafl_lowrank.h"
#include "hafl_scheme.h"
#include "hafl_strategy.h"
#include "hafl_rng.h"
#include "hafl_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define R           4
#define N_MATRICES  2
#define MAX_CLIENTS 6

static hafl_matrix_info_t s_matrices[N_MATRICES] = {{"L0.wq", 6, 5}, {"L0.wv", 4, 7}};
static const hafl_layout_t s_layout = {N_MATRICES, s_matrices, R, 2.0f, 3, 4};

typedef struct {
    hafl_adapter_t *adapter;
    uint8_t trained[N_MATRICES * R];
} client_t;

static void s_fill(float *x, size_t count, hafl_rng_t *rng)
{
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(2.0 * hafl_rng_uniform(rng) - 1.0);
}

//  Random factors, scores and head for a client adapter.
static void s_randomise(hafl_adapter_t *a, uint64_t seed)
{
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, 99, 0);
    for (uint32_t m = 0; m < N_MATRICES; m++) {
        s_fill(a->bt[m], (size_t)R * s_matrices[m].d_out, &rng);
        s_fill(a->a[m], (size_t)R * s_matrices[m].d_in, &rng);
    }
    for (size_t i = 0; i < N_MATRICES * R; i++)
        a->score[i] = (float)hafl_rng_uniform(&rng);
    s_fill(a->head, 12, &rng);
}

static hafl_upload_t s_upload(client_t *c, uint32_t index, uint64_t n, uint32_t budget)
{
    return (hafl_upload_t){index, n, budget, c->trained, c->adapter};
}

//  D += coef * sum_j bt_j a_j^T over count terms, D [d_out][d_in].
static void s_add_product(double *D, const float *bt, const float *a, uint32_t count,
                          uint32_t d_out, uint32_t d_in, double coef)
{
    for (uint32_t j = 0; j < count; j++)
        for (uint32_t r = 0; r < d_out; r++)
            for (uint32_t c = 0; c < d_in; c++)
                D[r * d_in + c] += coef * bt[j * d_out + r] * a[j * d_in + c];
}

//  The update above the base of matrix m: merged terms plus s B A.
static void s_delta(const hafl_adapter_t *g, uint32_t m, double *D)
{
    uint32_t d_out = s_matrices[m].d_out, d_in = s_matrices[m].d_in;
    memset(D, 0, sizeof(double) * d_out * d_in);
    s_add_product(D, g->mbt[m], g->ma[m], g->n_merged[m], d_out, d_in, 1.0);
    s_add_product(D, g->bt[m], g->a[m], R, d_out, d_in, g->layout.scale);
}

static double s_distance(const double *x, const double *y, size_t count)
{
    double sq = 0.0;
    for (size_t i = 0; i < count; i++)
        sq += (x[i] - y[i]) * (x[i] - y[i]);
    return sqrt(sq);
}

static double s_norm(const double *x, size_t count)
{
    double sq = 0.0;
    for (size_t i = 0; i < count; i++)
        sq += x[i] * x[i];
    return sqrt(sq);
}

static void s_same_digest(const hafl_adapter_t *x, const hafl_adapter_t *y, const char *what)
{
    char hx[65], hy[65];
    hafl_adapter_digest_hex(x, hx);
    hafl_adapter_digest_hex(y, hy);
    CHECKF(strcmp(hx, hy) == 0, "%s: %s vs %s", what, hx, hy);
}

static hafl_strategy_t *s_strategy(const char *name)
{
    char err[256] = "";
    hafl_strategy_t *s = hafl_strategy_new(name, &s_layout, 7, err, sizeof err);
    CHECKF(s, "%s", err);
    return s;
}

static void s_aggregate(hafl_strategy_t *s, hafl_adapter_t *g, uint32_t round, hafl_upload_t *ups,
                        size_t n)
{
    char err[256] = "";
    int rc = hafl_strategy_aggregate(s, g, round, ups, n, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", hafl_strategy_name(s), err);
}

//  Four clients with random adapters; trained masks set by the caller.
static void s_clients(client_t *c, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        c[i].adapter = hafl_adapter_new(&s_layout);
        CHECK(c[i].adapter);
        s_randomise(c[i].adapter, seed + i);
        memset(c[i].trained, 0, sizeof c[i].trained);
    }
}

static void s_free_clients(client_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hafl_adapter_destroy(&c[i].adapter);
}

static hafl_adapter_t *s_global(uint64_t seed)
{
    hafl_adapter_t *g = hafl_adapter_new(&s_layout);
    CHECK(g);
    s_randomise(g, seed);
    return g;
}

static void test_zeropad_quarter(void)
{
    client_t c[4];
    s_clients(c, 4, 100);
    hafl_upload_t ups[4];
    for (int i = 0; i < 4; i++) {
        c[i].trained[0] = 1; //  matrix 0 component 0: everyone
        ups[i] = s_upload(&c[i], (uint32_t)i, 50, 2);
    }
    c[2].trained[1] = 1; //  matrix 0 component 1: client 2 only
    hafl_adapter_t *g = s_global(1);
    hafl_strategy_t *s = s_strategy("zeropad");
    s_aggregate(s, g, 1, ups, 4);
    //  A component trained by one of four equal clients is a quarter of its upload (exact:
    //  the weight is a power of two).
    for (uint32_t r = 0; r < 6; r++)
        CHECK(hafl_adapter_b(g, 0, 1)[r] == 0.25f * hafl_adapter_b(c[2].adapter, 0, 1)[r]);
    for (uint32_t x = 0; x < 5; x++)
        CHECK(hafl_adapter_a(g, 0, 1)[x] == 0.25f * hafl_adapter_a(c[2].adapter, 0, 1)[x]);
    //  Trained by all: the plain mean. Trained by nobody: zero.
    for (uint32_t r = 0; r < 6; r++) {
        double mean = 0.0;
        for (int i = 0; i < 4; i++)
            mean += 0.25 * hafl_adapter_b(c[i].adapter, 0, 0)[r];
        CHECK(fabs(hafl_adapter_b(g, 0, 0)[r] - mean) < 1e-6);
        CHECK(hafl_adapter_b(g, 0, 3)[r] == 0.0f);
    }
    for (uint32_t x = 0; x < 7; x++)
        CHECK(hafl_adapter_a(g, 1, 2)[x] == 0.0f);
    hafl_strategy_destroy(&s);
    hafl_adapter_destroy(&g);
    s_free_clients(c, 4);
}

static void test_adaptive(void)
{
    client_t c[3];
    s_clients(c, 3, 200);
    uint64_t n[3] = {10, 30, 60};
    //  m0 k0: clients 0 and 2; m0 k1: client 1; m1 k3: all; the rest: nobody.
    c[0].trained[0] = c[2].trained[0] = 1;
    c[1].trained[1] = 1;
    for (int i = 0; i < 3; i++)
        c[i].trained[R + 3] = 1;
    hafl_upload_t ups[3];
    for (int i = 0; i < 3; i++)
        ups[i] = s_upload(&c[i], (uint32_t)(3 * i + 1), n[i], 4);
    hafl_adapter_t *g = s_global(2);
    hafl_adapter_t *before = hafl_adapter_dup(g);
    hafl_strategy_t *s = s_strategy("adaptive");
    s_aggregate(s, g, 1, ups, 3);
    //  Untouched components: bit for bit.
    uint32_t untouched[][2] = {{0, 2}, {0, 3}, {1, 0}, {1, 1}, {1, 2}};
    for (size_t u = 0; u < 5; u++) {
        uint32_t m = untouched[u][0], k = untouched[u][1];
        CHECK(memcmp(hafl_adapter_b(g, m, k), hafl_adapter_b(before, m, k),
                     s_matrices[m].d_out * sizeof(float)) == 0);
        CHECK(memcmp(hafl_adapter_a(g, m, k), hafl_adapter_a(before, m, k),
                     s_matrices[m].d_in * sizeof(float)) == 0);
        CHECK(memcmp(&g->score[m * R + k], &before->score[m * R + k], sizeof(float)) == 0);
    }
    //  Averaged over the trainers only, by sample count.
    for (uint32_t r = 0; r < 6; r++) {
        double want = (10.0 * hafl_adapter_b(c[0].adapter, 0, 0)[r] +
                       60.0 * hafl_adapter_b(c[2].adapter, 0, 0)[r]) /
                      70.0;
        CHECK(fabs(hafl_adapter_b(g, 0, 0)[r] - want) < 1e-6);
        CHECK(hafl_adapter_b(g, 0, 1)[r] == hafl_adapter_b(c[1].adapter, 0, 1)[r]);
    }
    for (uint32_t x = 0; x < 7; x++) {
        double want = 0.0;
        for (int i = 0; i < 3; i++)
            want += (double)n[i] / 100.0 * hafl_adapter_a(c[i].adapter, 1, 3)[x];
        CHECK(fabs(hafl_adapter_a(g, 1, 3)[x] - want) < 1e-6);
    }
    //  Scores: sample-weighted over trainers; the head over everyone.
    double want = (10.0 * c[0].adapter->score[0] + 60.0 * c[2].adapter->score[0]) / 70.0;
    CHECK(fabs(g->score[0] - want) < 1e-6);
    CHECK(g->score[1] == c[1].adapter->score[1]);
    for (size_t h = 0; h < 12; h++) {
        double mean = 0.0;
        for (int i = 0; i < 3; i++)
            mean += (double)n[i] / 100.0 * c[i].adapter->head[h];
        CHECK(fabs(g->head[h] - mean) < 1e-6);
    }
    hafl_strategy_destroy(&s);
    hafl_adapter_destroy(&g);
    hafl_adapter_destroy(&before);
    s_free_clients(c, 3);
}

static void test_fedavg(void)
{
    client_t c[3];
    s_clients(c, 3, 300);
    uint64_t n[3] = {20, 20, 60};
    hafl_upload_t ups[3];
    for (int i = 0; i < 3; i++) {
        memset(c[i].trained, 1, sizeof c[i].trained);
        ups[i] = s_upload(&c[i], (uint32_t)i, n[i], R);
    }
    hafl_adapter_t *g = s_global(3);
    hafl_strategy_t *s = s_strategy("fedavg");
    s_aggregate(s, g, 1, ups, 3);
    //  Homogeneous ranks: the plain p_i-weighted mean of A and B.
    for (uint32_t m = 0; m < N_MATRICES; m++)
        for (uint32_t k = 0; k < R; k++)
            for (uint32_t x = 0; x < s_matrices[m].d_in; x++) {
                double want = 0.0;
                for (int i = 0; i < 3; i++)
                    want += (double)n[i] / 100.0 * hafl_adapter_a(c[i].adapter, m, k)[x];
                CHECK(fabs(hafl_adapter_a(g, m, k)[x] - want) < 1e-6);
            }
    //  General case: untrained counts at the global value; nobody: kept bit for bit.
    hafl_adapter_t *before = hafl_adapter_dup(g);
    for (int i = 0; i < 3; i++)
        memset(c[i].trained, 0, sizeof c[i].trained);
    c[2].trained[R + 1] = 1; //  m1 k1 by client 2 (p = 0.6) only
    s_aggregate(s, g, 2, ups, 3);
    for (uint32_t r = 0; r < 4; r++) {
        double want =
            0.6 * hafl_adapter_b(c[2].adapter, 1, 1)[r] + 0.4 * hafl_adapter_b(before, 1, 1)[r];
        CHECK(fabs(hafl_adapter_b(g, 1, 1)[r] - want) < 1e-6);
    }
    CHECK(memcmp(g->bt[0], before->bt[0], sizeof(float) * R * 6) == 0);
    CHECK(memcmp(g->a[0], before->a[0], sizeof(float) * R * 5) == 0);
    hafl_strategy_destroy(&s);
    hafl_adapter_destroy(&g);
    hafl_adapter_destroy(&before);
    s_free_clients(c, 3);
}

static void test_zeropad_norm(void)
{
    client_t c[3];
    s_clients(c, 3, 400);
    c[0].trained[0] = c[0].trained[1] = 1;
    c[1].trained[0] = 1;
    c[2].trained[2] = 1; //  matrix 0 only
    c[0].trained[R] = 1; //  matrix 1: client 0 only
    hafl_upload_t ups[3];
    for (int i = 0; i < 3; i++)
        ups[i] = s_upload(&c[i], (uint32_t)i, 10 * (uint64_t)(i + 1), 2);
    hafl_adapter_t *g = s_global(4);
    hafl_strategy_t *s = s_strategy("zeropad-norm");
    s_aggregate(s, g, 1, ups, 3);
    //  Norm of each client's uploaded product in matrix 0, formed densely.
    double norm[3], total = 0.0, D[6 * 5];
    for (int i = 0; i < 3; i++) {
        memset(D, 0, sizeof D);
        for (uint32_t k = 0; k < R; k++)
            if (c[i].trained[k])
                s_add_product(D, hafl_adapter_b(c[i].adapter, 0, k),
                              hafl_adapter_a(c[i].adapter, 0, k), 1, 6, 5, 1.0);
        norm[i] = s_norm(D, 30);
        total += norm[i];
    }
    for (uint32_t r = 0; r < 6; r++) {
        double want = (norm[0] * hafl_adapter_b(c[0].adapter, 0, 0)[r] +
                       norm[1] * hafl_adapter_b(c[1].adapter, 0, 0)[r]) /
                      total;
        CHECK(fabs(hafl_adapter_b(g, 0, 0)[r] - want) < 1e-6);
        want = norm[2] / total * hafl_adapter_b(c[2].adapter, 0, 2)[r];
        CHECK(fabs(hafl_adapter_b(g, 0, 2)[r] - want) < 1e-6);
    }
    //  Matrix 1: only client 0 has a product, so it weighs 1.
    for (uint32_t x = 0; x < 7; x++)
        CHECK(fabs(hafl_adapter_a(g, 1, 0)[x] - hafl_adapter_a(c[0].adapter, 1, 0)[x]) < 1e-6);
    hafl_strategy_destroy(&s);
    hafl_adapter_destroy(&g);
    s_free_clients(c, 3);
}

//  Eigenvalues of the symmetric n x n matrix S (destroyed) by cyclic Jacobi, into ev
//  descending: the independent oracle for singular values (sigma^2 of D = eig of D^T D).
static void s_jacobi(double *S, int n, double *ev)
{
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                off += S[p * n + q] * S[p * n + q];
        if (off < 1e-30)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                if (fabs(S[p * n + q]) < 1e-300)
                    continue;
                double theta = (S[q * n + q] - S[p * n + p]) / (2.0 * S[p * n + q]);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double cs = 1.0 / sqrt(t * t + 1.0), sn = t * cs;
                for (int k = 0; k < n; k++) { //  rotate columns p, q
                    double a = S[k * n + p], b = S[k * n + q];
                    S[k * n + p] = cs * a - sn * b;
                    S[k * n + q] = sn * a + cs * b;
                }
                for (int k = 0; k < n; k++) { //  rotate rows p, q
                    double a = S[p * n + k], b = S[q * n + k];
                    S[p * n + k] = cs * a - sn * b;
                    S[q * n + k] = sn * a + cs * b;
                }
            }
    }
    for (int i = 0; i < n; i++)
        ev[i] = S[i * n + i] > 0 ? S[i * n + i] : 0.0;
    for (int i = 0; i < n; i++) //  sort descending
        for (int j = i + 1; j < n; j++)
            if (ev[j] > ev[i]) {
                double t = ev[i];
                ev[i] = ev[j];
                ev[j] = t;
            }
}

static void test_flexlora(void)
{
    char err[256] = "";
    hafl_strategy_t *s = s_strategy("flexlora");
    hafl_adapter_t *g = hafl_adapter_new(&s_layout), *view = hafl_adapter_new(&s_layout);
    hafl_adapter_init(g, 5);
    //  Round 1: D = 0, so the view is a standard LoRA start (B = 0, global A), no merged terms.
    CHECK(hafl_strategy_client_view(s, g, 0, 2, view, err, sizeof err) == 0);
    CHECK(memcmp(view->a[0], g->a[0], sizeof(float) * R * 5) == 0);
    for (size_t x = 0; x < (size_t)R * 6; x++)
        CHECK(view->bt[0][x] == 0.0f);

    //  Three clients train; their full products average to D'.
    client_t c[3];
    s_clients(c, 3, 500);
    uint32_t budget[3] = {1, 2, 4};
    hafl_upload_t ups[3];
    for (int i = 0; i < 3; i++) {
        for (uint32_t m = 0; m < N_MATRICES; m++)
            for (uint32_t k = 0; k < budget[i]; k++)
                c[i].trained[m * R + k] = 1;
        ups[i] = s_upload(&c[i], (uint32_t)i, 10 * (uint64_t)(i + 1), budget[i]);
    }
    //  Untrained components of each client hold its view: b = 0 (round 1), so only the
    //  trained ones count.
    double want[6 * 7], got[6 * 7];
    uint64_t epoch = g->merged_epoch;
    s_aggregate(s, g, 1, ups, 3);
    CHECK(g->merged_epoch == epoch + 1);
    for (uint32_t m = 0; m < N_MATRICES; m++) {
        uint32_t d_out = s_matrices[m].d_out, d_in = s_matrices[m].d_in;
        memset(want, 0, sizeof want);
        for (int i = 0; i < 3; i++)
            for (uint32_t k = 0; k < budget[i]; k++)
                s_add_product(want, hafl_adapter_b(c[i].adapter, m, k),
                              hafl_adapter_a(c[i].adapter, m, k), 1, d_out, d_in,
                              (i + 1) / 6.0 * s_layout.scale);
        s_delta(g, m, got);
        CHECKF(s_distance(want, got, d_out * d_in) < 1e-5 * s_norm(want, d_out * d_in),
               "flexlora stores D' exactly, matrix %u", m);
        //  Rank of D' is at most 1 + 2 + 4 = 7 but capped by min(d_out, d_in).
        CHECK(g->n_merged[m] <= (d_out < d_in ? d_out : d_in));
        for (size_t x = 0; x < (size_t)R * d_out; x++)
            CHECK(g->bt[m][x] == 0.0f);

        //  Singular values of D' from the eigenvalues of D'^T D'.
        double S[7 * 7], ev[7];
        for (uint32_t p = 0; p < d_in; p++)
            for (uint32_t q = 0; q < d_in; q++) {
                double sum = 0.0;
                for (uint32_t r = 0; r < d_out; r++)
                    sum += want[r * d_in + p] * want[r * d_in + q];
                S[p * d_in + q] = sum;
            }
        s_jacobi(S, (int)d_in, ev);
        for (uint32_t r = 1; r <= 4; r++) {
            CHECK(hafl_strategy_client_view(s, g, 9, r, view, err, sizeof err) == 0);
            CHECK(view->n_merged[m] == 0);
            s_delta(view, m, got);
            double dropped = 0.0;
            for (uint32_t j = r; j < d_in; j++)
                dropped += ev[j];
            double residual = s_distance(want, got, d_out * d_in);
            CHECKF(fabs(residual - sqrt(dropped)) < 1e-4 * s_norm(want, d_out * d_in),
                   "Eckart-Young: matrix %u rank %u residual %g, expected %g", m, r, residual,
                   sqrt(dropped));
            for (uint32_t k = r; k < R; k++)
                for (uint32_t x = 0; x < d_out; x++)
                    CHECK(hafl_adapter_b(view, m, k)[x] == 0.0f);
        }
    }
    //  A rank that suffices reproduces the product exactly: a single client of rank 2 whose
    //  round starts from the new global.
    client_t one[1];
    s_clients(one, 1, 600);
    for (uint32_t m = 0; m < N_MATRICES; m++)
        one[0].trained[m * R] = one[0].trained[m * R + 1] = 1;
    hafl_upload_t up = s_upload(&one[0], 0, 5, 2);
    s_aggregate(s, g, 2, &up, 1);
    CHECK(hafl_strategy_client_view(s, g, 0, 2, view, err, sizeof err) == 0);
    for (uint32_t m = 0; m < N_MATRICES; m++) {
        uint32_t d_out = s_matrices[m].d_out, d_in = s_matrices[m].d_in;
        memset(want, 0, sizeof want);
        s_add_product(want, one[0].adapter->bt[m], one[0].adapter->a[m], 2, d_out, d_in,
                      s_layout.scale);
        CHECK(g->n_merged[m] == 2);
        s_delta(view, m, got);
        CHECK(s_distance(want, got, d_out * d_in) < 1e-5 * s_norm(want, d_out * d_in));
    }
    s_free_clients(one, 1);
    s_free_clients(c, 3);
    hafl_adapter_destroy(&view);
    hafl_adapter_destroy(&g);
    hafl_strategy_destroy(&s);
}

static void test_flora(void)
{
    hafl_strategy_t *s = s_strategy("flora");
    hafl_adapter_t *g = hafl_adapter_new(&s_layout);
    hafl_adapter_init(g, 6);
    client_t c[2];
    s_clients(c, 2, 700);
    c[0].trained[0] = 1; //  matrix 0: 1 + 2 terms, within min(6,5)
    c[1].trained[1] = c[1].trained[2] = 1;
    c[0].trained[R] = c[1].trained[R] = 1; //  matrix 1: 2 terms
    hafl_upload_t ups[2] = {s_upload(&c[0], 0, 30, 1), s_upload(&c[1], 1, 10, 2)};
    uint64_t epoch = g->merged_epoch;
    s_aggregate(s, g, 1, ups, 2);
    CHECK(g->merged_epoch == epoch); //  appended, not replaced
    CHECK(g->n_merged[0] == 3 && g->n_merged[1] == 2);
    double want[6 * 7], got[6 * 7];
    for (uint32_t m = 0; m < N_MATRICES; m++) {
        uint32_t d_out = s_matrices[m].d_out, d_in = s_matrices[m].d_in;
        memset(want, 0, sizeof want);
        for (int i = 0; i < 2; i++)
            for (uint32_t k = 0; k < R; k++)
                if (c[i].trained[m * R + k])
                    s_add_product(want, hafl_adapter_b(c[i].adapter, m, k),
                                  hafl_adapter_a(c[i].adapter, m, k), 1, d_out, d_in,
                                  (i ? 0.25 : 0.75) * s_layout.scale);
        s_delta(g, m, got);
        CHECK(s_distance(want, got, d_out * d_in) < 1e-6 * s_norm(want, d_out * d_in));
        for (size_t x = 0; x < (size_t)R * d_out; x++)
            CHECK(g->bt[m][x] == 0.0f);
    }
    //  The fresh A depends on (seed, round) only and differs from the initial one.
    hafl_adapter_t *init = hafl_adapter_new(&s_layout);
    hafl_adapter_init(init, 6);
    CHECK(memcmp(g->a[0], init->a[0], sizeof(float) * R * 5) != 0);
    //  Round 2 appends on top of round 1; matrix 0 then exceeds min(6,5) = 5 terms and is
    //  compacted by SVD into the same product (merged epoch bumped).
    c[0].trained[1] = c[0].trained[2] = 1; //  matrix 0: 3 + 2 = 5 new terms
    double before[6 * 5];
    s_delta(g, 0, before);
    s_aggregate(s, g, 2, ups, 2);
    CHECK(g->merged_epoch == epoch + 1);
    CHECK(g->n_merged[0] <= 5);
    memcpy(want, before, sizeof before);
    for (int i = 0; i < 2; i++)
        for (uint32_t k = 0; k < R; k++)
            if (c[i].trained[k])
                s_add_product(want, hafl_adapter_b(c[i].adapter, 0, k),
                              hafl_adapter_a(c[i].adapter, 0, k), 1, 6, 5,
                              (i ? 0.25 : 0.75) * s_layout.scale);
    s_delta(g, 0, got);
    CHECK(s_distance(want, got, 30) < 1e-5 * s_norm(want, 30));
    //  After a swap from a strategy that left B != 0, clients that did not train a component
    //  hold it at its global value: it enters the stack with the weight of those clients.
    hafl_adapter_t *g2 = s_global(8);
    memset(c[0].trained, 0, sizeof c[0].trained);
    memset(c[1].trained, 0, sizeof c[1].trained);
    c[0].trained[R] = 1; //  matrix 1 component 0 by client 0 (p = 0.75)
    s_delta(g2, 1, before);
    hafl_adapter_t *g2_before = hafl_adapter_dup(g2);
    s_aggregate(s, g2, 3, ups, 2);
    memset(want, 0, sizeof want);
    s_add_product(want, g2_before->mbt[1], g2_before->ma[1], g2_before->n_merged[1], 4, 7, 1.0);
    s_add_product(want, g2_before->bt[1] + 4, g2_before->a[1] + 7, 3, 4, 7, s_layout.scale);
    s_add_product(want, g2_before->bt[1], g2_before->a[1], 1, 4, 7, 0.25 * s_layout.scale);
    s_add_product(want, c[0].adapter->bt[1], c[0].adapter->a[1], 1, 4, 7, 0.75 * s_layout.scale);
    s_delta(g2, 1, got);
    CHECK(s_distance(want, got, 28) < 1e-5 * s_norm(want, 28));
    hafl_adapter_destroy(&g2);
    hafl_adapter_destroy(&g2_before);
    hafl_adapter_destroy(&init);
    s_free_clients(c, 2);
    hafl_adapter_destroy(&g);
    hafl_strategy_destroy(&s);
}

//  One simulated round: each client takes its view, the scheme's roles, trains by a seeded
//  perturbation of its trainable components and uploads them.
static void s_round(hafl_strategy_t *s, hafl_scheme_t scheme, hafl_adapter_t *g, uint32_t round)
{
    static const uint32_t budget[4] = {1, 2, 2, 4};
    client_t c[4];
    hafl_upload_t ups[4];
    uint8_t roles[N_MATRICES * R];
    char err[256] = "";
    for (uint32_t i = 0; i < 4; i++) {
        c[i].adapter = hafl_adapter_new(&s_layout);
        CHECK(hafl_strategy_client_view(s, g, i, budget[i], c[i].adapter, err, sizeof err) == 0);
        hafl_scheme_select(scheme, g, budget[i], 7, round, i, roles);
        hafl_rng_t rng;
        hafl_rng_seed(&rng, 1234, i, round);
        for (uint32_t m = 0; m < N_MATRICES; m++)
            for (uint32_t k = 0; k < R; k++) {
                c[i].trained[m * R + k] = roles[m * R + k] == HAFL_ROLE_TRAINABLE;
                if (!c[i].trained[m * R + k])
                    continue;
                float *b = hafl_adapter_b(c[i].adapter, m, k),
                      *a = hafl_adapter_a(c[i].adapter, m, k);
                for (uint32_t x = 0; x < s_matrices[m].d_out; x++)
                    b[x] += (float)(0.1 * (2.0 * hafl_rng_uniform(&rng) - 1.0));
                for (uint32_t x = 0; x < s_matrices[m].d_in; x++)
                    a[x] += (float)(0.1 * (2.0 * hafl_rng_uniform(&rng) - 1.0));
                c[i].adapter->score[m * R + k] = (float)hafl_rng_uniform(&rng);
            }
        for (size_t h = 0; h < 12; h++)
            c[i].adapter->head[h] += (float)(0.01 * (i + 1));
        ups[i] = s_upload(&c[i], i, 10 + 7 * (uint64_t)i, budget[i]);
    }
    s_aggregate(s, g, round, ups, 4);
    s_free_clients(c, 4);
}

static const char *s_names[] = {"adaptive", "zeropad",  "zeropad-norm",
                                "fedavg",   "flexlora", "flora"};
//  Every strategy swaps with every other, the robust ones (test_robust.c) among them.
static const char *s_swap_names[] = {"adaptive", "zeropad", "zeropad-norm", "fedavg",
                                     "flexlora", "flora",   "median",       "trimmed-mean"};
#define S_SWAP_NAMES (sizeof s_swap_names / sizeof s_swap_names[0])

static void test_swap(void)
{
    hafl_scheme_t schemes[2] = {HAFL_SCHEME_TRUNCATE_PREFIX, HAFL_SCHEME_FREEZE};
    for (int sc = 0; sc < 2; sc++)
        for (size_t x = 0; x < S_SWAP_NAMES; x++)
            for (size_t y = 0; y < S_SWAP_NAMES; y++) {
                hafl_adapter_t *g = hafl_adapter_new(&s_layout);
                hafl_adapter_init(g, 11);
                //  Rounds 1-2 under x, then the actor swaps to y for rounds 3-4.
                hafl_strategy_t *first = s_strategy(s_swap_names[x]);
                s_round(first, schemes[sc], g, 1);
                s_round(first, schemes[sc], g, 2);
                hafl_adapter_t *at_t = hafl_adapter_dup(g);
                hafl_strategy_destroy(&first);
                hafl_strategy_t *next = s_strategy(s_swap_names[y]);
                s_round(next, schemes[sc], g, 3);
                s_round(next, schemes[sc], g, 4);
                //  y run from round 3 on the same state, by an object that has already
                //  aggregated other rounds elsewhere (strategies carry no state).
                hafl_strategy_t *other = s_strategy(s_swap_names[y]);
                hafl_adapter_t *elsewhere = hafl_adapter_new(&s_layout);
                hafl_adapter_init(elsewhere, 99);
                s_round(other, schemes[sc], elsewhere, 1);
                s_round(other, schemes[sc], at_t, 3);
                s_round(other, schemes[sc], at_t, 4);
                s_same_digest(g, at_t, s_swap_names[y]);
                hafl_adapter_destroy(&elsewhere);
                hafl_strategy_destroy(&other);
                hafl_strategy_destroy(&next);
                hafl_adapter_destroy(&at_t);
                hafl_adapter_destroy(&g);
            }
}

static void test_validation_and_determinism(void)
{
    char err[256] = "";
    CHECK(!hafl_strategy_new("fedprox", &s_layout, 1, err, sizeof err));
    CHECK(strstr(err, "fedprox"));
    for (size_t i = 0; i < 6; i++)
        CHECK(hafl_strategy_known(s_names[i]));
    CHECK(!hafl_strategy_known("FedAvg") && !hafl_strategy_known(NULL));

    client_t c[3];
    s_clients(c, 3, 800);
    memset(c[0].trained, 1, R); //  matrix 0, all components
    c[1].trained[0] = c[1].trained[1] = c[1].trained[R] = c[1].trained[R + 1] = 1;
    c[2].trained[R] = 1; //  matrix 1 components 2, 3: nobody
    uint64_t n[3] = {5, 6, 7};
    hafl_upload_t ups[3] = {s_upload(&c[0], 1, n[0], 4), s_upload(&c[1], 4, n[1], 2),
                            s_upload(&c[2], 9, n[2], 1)};
    hafl_adapter_t *g = s_global(9);
    for (size_t e = 0; e < 6; e++) {
        hafl_strategy_t *s = s_strategy(s_names[e]);
        hafl_adapter_t *g1 = hafl_adapter_dup(g), *g2 = hafl_adapter_dup(g);
        //  The same sorted input gives the same bits.
        s_aggregate(s, g1, 4, ups, 3);
        s_aggregate(s, g2, 4, ups, 3);
        s_same_digest(g1, g2, s_names[e]);
        //  Every strategy: head by sample count over everyone; score of (m, k) by sample
        //  count over its trainers, untouched where nobody trained it.
        for (size_t h = 0; h < 12; h++) {
            double want = 0.0;
            for (int i = 0; i < 3; i++)
                want += (double)n[i] / 18.0 * c[i].adapter->head[h];
            CHECKF(fabs(g1->head[h] - want) < 1e-6, "%s head", s_names[e]);
        }
        for (uint32_t k = 0; k < 2 * R; k++) {
            double sum = 0.0, cover = 0.0;
            for (int i = 0; i < 3; i++)
                if (c[i].trained[k]) {
                    sum += (double)n[i] * c[i].adapter->score[k];
                    cover += (double)n[i];
                }
            if (cover > 0.0)
                CHECKF(fabs(g1->score[k] - sum / cover) < 1e-6, "%s score %u", s_names[e], k);
            else
                CHECKF(memcmp(&g1->score[k], &g->score[k], sizeof(float)) == 0, "%s score %u",
                       s_names[e], k);
        }
        //  Unsorted, duplicate, zero-sample, non-finite and empty input is refused and
        //  leaves the global state untouched.
        hafl_adapter_t *keep = hafl_adapter_dup(g);
        hafl_upload_t bad[3] = {ups[1], ups[0], ups[2]};
        CHECK(hafl_strategy_aggregate(s, g, 4, bad, 3, err, sizeof err) == -1);
        CHECK(strstr(err, "ascending"));
        bad[0] = ups[0];
        bad[1] = ups[0];
        CHECK(hafl_strategy_aggregate(s, g, 4, bad, 3, err, sizeof err) == -1);
        memcpy(bad, ups, sizeof bad);
        bad[1].n_samples = 0;
        CHECK(hafl_strategy_aggregate(s, g, 4, bad, 3, err, sizeof err) == -1);
        CHECK(strstr(err, "client 4"));
        CHECK(hafl_strategy_aggregate(s, g, 4, ups, 0, err, sizeof err) == -1);
        float saved = c[2].adapter->a[1][3];
        c[2].adapter->a[1][3] = NAN;
        CHECK(hafl_strategy_aggregate(s, g, 4, ups, 3, err, sizeof err) == -1);
        CHECK(strstr(err, "non-finite") && strstr(err, "L0.wv"));
        c[2].adapter->a[1][3] = saved;
        s_same_digest(g, keep, "refused input leaves global untouched");
        hafl_adapter_destroy(&keep);
        hafl_adapter_destroy(&g1);
        hafl_adapter_destroy(&g2);
        hafl_strategy_destroy(&s);
    }
    //  A layout mismatch names the matrix.
    hafl_matrix_info_t other[N_MATRICES] = {{"L0.wq", 6, 5}, {"L0.wv", 4, 8}};
    hafl_layout_t wrong = s_layout;
    wrong.matrices = other;
    hafl_adapter_t *odd = hafl_adapter_new(&wrong);
    hafl_upload_t up = {0, 5, 2, c[0].trained, odd};
    hafl_strategy_t *s = s_strategy("adaptive");
    CHECK(hafl_strategy_aggregate(s, g, 1, &up, 1, err, sizeof err) == -1);
    CHECK(strstr(err, "L0.wv"));
    CHECK(hafl_strategy_client_view(s, g, 0, 2, odd, err, sizeof err) == -1);
    CHECK(hafl_strategy_client_view(s, g, 0, 2, g, err, sizeof err) == -1);
    hafl_strategy_destroy(&s);
    hafl_adapter_destroy(&odd);
    hafl_adapter_destroy(&g);
    s_free_clients(c, 3);
}

int main(void)
{
    test_zeropad_quarter();
    test_adaptive();
    test_fedavg();
    test_zeropad_norm();
    test_flexlora();
    test_flora();
    test_swap();
    test_validation_and_determinism();
    printf("strategy: all tests passed\n");
    return 0;
}
