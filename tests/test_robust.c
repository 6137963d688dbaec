/*  test_robust: the robust strategies (median, trimmed-mean) and the clip_norm bound of
    hafl_strategy.h, against naive references written here.

    The references sort each coordinate's values by insertion (-0 before +0) and reduce them
    in double in sorted order, which is what the header specifies, so results must agree bit
    for bit: random federations of 1..7 clients with random trained masks (heterogeneous
    budgets, components nobody trained, even and odd voter counts), heads and scores included;
    results independent of which client index holds which upload and of the sample counts;
    hand-checked cut counts; outliers that move the mean but not the median. Clipping: the
    exact scaled delta, untouched uploads within the bound (bit for bit), the head bounded
    too, and for every strategy "clip, then fold" equal to folding uploads clipped by a naive
    reference against the strategy's client view (flexlora's differs from the global state).
*/
#include "hafl_strategy.h"
#include "hafl_rng.h"
#include "hafl_test.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define R           4
#define N_MATRICES  2
#define HEAD        12
#define SLOTS       (N_MATRICES * R)
#define MAX_CLIENTS 24

static hafl_matrix_info_t s_matrices[N_MATRICES] = {{"L0.wq", 6, 5}, {"L0.wv", 4, 7}};
static const hafl_layout_t s_layout = {N_MATRICES, s_matrices, R, 2.0f, 3, 4};

static const char *s_all[] = {"adaptive", "zeropad", "zeropad-norm", "fedavg",
                              "flexlora", "flora",   "median",       "trimmed-mean"};
#define N_ALL (sizeof s_all / sizeof s_all[0])

typedef struct {
    hafl_adapter_t *adapter;
    uint8_t trained[SLOTS];
} client_t;

static void s_fill(float *x, size_t count, hafl_rng_t *rng, double spread)
{
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(spread * (2.0 * hafl_rng_uniform(rng) - 1.0));
}

static hafl_adapter_t *s_random_adapter(uint64_t seed, double spread)
{
    hafl_adapter_t *a = hafl_adapter_new(&s_layout);
    CHECK(a);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, 77, 0);
    for (uint32_t m = 0; m < N_MATRICES; m++) {
        s_fill(a->bt[m], (size_t)R * s_matrices[m].d_out, &rng, spread);
        s_fill(a->a[m], (size_t)R * s_matrices[m].d_in, &rng, spread);
    }
    for (size_t i = 0; i < SLOTS; i++)
        a->score[i] = (float)hafl_rng_uniform(&rng);
    s_fill(a->head, HEAD, &rng, spread);
    return a;
}

static hafl_strategy_t *s_strategy(const char *name, float trim, float clip_norm)
{
    char err[256] = "";
    hafl_strategy_t *s = hafl_strategy_new(name, &s_layout, 7, err, sizeof err);
    CHECKF(s, "%s", err);
    hafl_strategy_options_t options = {trim, clip_norm};
    CHECKF(hafl_strategy_set_options(s, &options, err, sizeof err) == 0, "%s", err);
    return s;
}

static void s_aggregate(hafl_strategy_t *s, hafl_adapter_t *g, uint32_t round,
                        const hafl_upload_t *ups, size_t n)
{
    char err[256] = "";
    CHECKF(hafl_strategy_aggregate(s, g, round, ups, n, err, sizeof err) == 0, "%s: %s",
           hafl_strategy_name(s), err);
}

static void s_digest(const hafl_adapter_t *a, char hex[65])
{
    hafl_adapter_digest_hex(a, hex);
}

static bool s_same_bits(float x, float y)
{
    return memcmp(&x, &y, sizeof x) == 0;
}

//  ---------------------------------------------------------------------------------------------
//  The naive reference

static bool s_before(float x, float y)
{
    return x < y || (x == y && signbit(x) && !signbit(y));
}

static size_t s_ref_cut(bool median, double trim, size_t count)
{
    if (median)
        return 0;
    size_t cut = (size_t)floor(trim * (double)count + 1e-9);
    while (cut > 0 && 2 * cut >= count)
        cut--;
    return cut;
}

//  The median or trimmed mean of values [count >= 1], as hafl_strategy.h defines them.
static float s_ref_locate(const float *values, size_t count, bool median, double trim)
{
    float v[MAX_CLIENTS];
    for (size_t i = 0; i < count; i++) {
        size_t j = i;
        while (j > 0 && s_before(values[i], v[j - 1])) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = values[i];
    }
    if (median)
        return count % 2 ? v[count / 2]
                         : (float)(((double)v[count / 2 - 1] + (double)v[count / 2]) / 2.0);
    size_t cut = s_ref_cut(median, trim, count);
    double sum = 0.0;
    for (size_t j = cut; j < count - cut; j++)
        sum += v[j];
    return (float)(sum / (double)(count - 2 * cut));
}

//  Checks g_after against the reference fold of ups over g_before, bit for bit.
static void s_check_reference(const hafl_adapter_t *g_before, const hafl_adapter_t *g_after,
                              const client_t *c, size_t n, bool median, double trim,
                              const char *what)
{
    float v[MAX_CLIENTS];
    for (uint32_t m = 0; m < N_MATRICES; m++)
        for (uint32_t k = 0; k < R; k++) {
            size_t slot = (size_t)m * R + k;
            size_t voters = 0;
            for (size_t i = 0; i < n; i++)
                voters += c[i].trained[slot] != 0;
            for (int side = 0; side < 2; side++) {
                uint32_t d = side ? s_matrices[m].d_in : s_matrices[m].d_out;
                for (uint32_t x = 0; x < d; x++) {
                    size_t count = 0;
                    for (size_t i = 0; i < n; i++)
                        if (c[i].trained[slot])
                            v[count++] = side ? hafl_adapter_a(c[i].adapter, m, k)[x]
                                              : hafl_adapter_b(c[i].adapter, m, k)[x];
                    float want = count  ? s_ref_locate(v, count, median, trim)
                                 : side ? hafl_adapter_a(g_before, m, k)[x]
                                        : hafl_adapter_b(g_before, m, k)[x];
                    float got =
                        side ? hafl_adapter_a(g_after, m, k)[x] : hafl_adapter_b(g_after, m, k)[x];
                    CHECKF(s_same_bits(got, want), "%s: matrix %u k %u %s[%u] = %.9g, want %.9g",
                           what, m, k, side ? "a" : "b", x, got, want);
                }
            }
            size_t count = 0;
            for (size_t i = 0; i < n; i++)
                if (c[i].trained[slot])
                    v[count++] = c[i].adapter->score[slot];
            float want = voters ? s_ref_locate(v, count, median, trim) : g_before->score[slot];
            CHECKF(s_same_bits(g_after->score[slot], want), "%s: score %zu", what, slot);
        }
    for (size_t h = 0; h < HEAD; h++) {
        for (size_t i = 0; i < n; i++)
            v[i] = c[i].adapter->head[h];
        float want = s_ref_locate(v, n, median, trim);
        CHECKF(s_same_bits(g_after->head[h], want), "%s: head %zu = %.9g, want %.9g", what, h,
               g_after->head[h], want);
    }
}

//  ---------------------------------------------------------------------------------------------

//  Random federations against the reference, with trims whose cuts differ.
static void test_reference(void)
{
    static const double trims[] = {0.2, 0.25, 0.34, 0.45, 0.0};
    size_t cases = 0;
    for (size_t n = 1; n <= 7; n++)
        for (uint64_t seed = 1; seed <= 6; seed++) {
            client_t c[MAX_CLIENTS];
            hafl_upload_t ups[MAX_CLIENTS];
            hafl_rng_t rng;
            hafl_rng_seed(&rng, seed, 501, n);
            for (size_t i = 0; i < n; i++) {
                c[i].adapter = s_random_adapter(1000 * seed + i, 1.0);
                //  A budget of 1..R; the trained set a random subset of that size, so voter
                //  counts per component vary, odd and even; nobody trains matrix 1's last one.
                uint32_t budget = 1 + (uint32_t)hafl_rng_below(&rng, R);
                memset(c[i].trained, 0, SLOTS);
                for (uint32_t m = 0; m < N_MATRICES; m++) {
                    uint32_t k_set[R] = {0, 1, 2, 3};
                    hafl_rng_shuffle_u32(&rng, k_set, R);
                    for (uint32_t j = 0; j < budget; j++)
                        c[i].trained[m * R + k_set[j]] = 1;
                }
                c[i].trained[SLOTS - 1] = 0;
                //  Repeated values and signed zeros among the voters.
                if (i % 3 == 2)
                    hafl_adapter_b(c[i].adapter, 0, 0)[0] = hafl_adapter_b(c[0].adapter, 0, 0)[0];
                if (i % 2)
                    c[i].adapter->head[5] = -0.0f;
                else
                    c[i].adapter->head[5] = 0.0f;
                ups[i] = (hafl_upload_t){(uint32_t)(3 * i + 1), 1 + hafl_rng_below(&rng, 500),
                                         budget, c[i].trained, c[i].adapter};
            }
            hafl_adapter_t *g = s_random_adapter(seed + 90, 1.0);
            for (int e = 0; e < 2; e++)
                for (size_t t = 0; t < (e ? sizeof trims / sizeof trims[0] : 1); t++) {
                    bool median = e == 0;
                    hafl_strategy_t *s =
                        s_strategy(median ? "median" : "trimmed-mean", (float)trims[t], 0.0f);
                    hafl_adapter_t *after = hafl_adapter_dup(g);
                    s_aggregate(s, after, 3, ups, n);
                    char what[96];
                    snprintf(what, sizeof what, "%s trim %.2f, %zu clients, seed %llu",
                             hafl_strategy_name(s), trims[t], n, (unsigned long long)seed);
                    s_check_reference(g, after, c, n, median, trims[t], what);
                    //  Component nobody trained: factors and score kept bit for bit.
                    CHECK(memcmp(hafl_adapter_b(after, 1, R - 1), hafl_adapter_b(g, 1, R - 1),
                                 4 * sizeof(float)) == 0);
                    CHECK(memcmp(hafl_adapter_a(after, 1, R - 1), hafl_adapter_a(g, 1, R - 1),
                                 7 * sizeof(float)) == 0);
                    CHECK(s_same_bits(after->score[SLOTS - 1], g->score[SLOTS - 1]));
                    hafl_adapter_destroy(&after);
                    hafl_strategy_destroy(&s);
                    cases++;
                }
            hafl_adapter_destroy(&g);
            for (size_t i = 0; i < n; i++)
                hafl_adapter_destroy(&c[i].adapter);
        }
    printf("robust: %zu random federations match the reference bit for bit\n", cases);
}

//  Which client index holds which upload, and the sample counts, change nothing.
static void test_order_independence(void)
{
    enum { N = 6 };
    client_t c[N];
    for (size_t i = 0; i < N; i++) {
        c[i].adapter = s_random_adapter(40 + i, 1.0);
        for (size_t s = 0; s < SLOTS; s++)
            c[i].trained[s] = (uint8_t)((i + s) % 3 != 0);
    }
    hafl_adapter_t *g = s_random_adapter(49, 1.0);
    static const size_t perms[3][N] = {{0, 1, 2, 3, 4, 5}, {5, 3, 1, 0, 2, 4}, {2, 4, 5, 1, 3, 0}};
    for (size_t e = 6; e < N_ALL; e++) {
        char first[65] = "";
        for (size_t p = 0; p < 3; p++) {
            hafl_upload_t ups[N];
            for (size_t i = 0; i < N; i++) {
                const client_t *ci = &c[perms[p][i]];
                ups[i] = (hafl_upload_t){(uint32_t)(10 * i + p), 1 + 97 * p * (i + 1), R,
                                         ci->trained, ci->adapter};
            }
            hafl_strategy_t *s = s_strategy(s_all[e], 0.2f, 0.0f);
            hafl_adapter_t *after = hafl_adapter_dup(g);
            s_aggregate(s, after, 2, ups, N);
            char hex[65];
            s_digest(after, hex);
            if (p == 0)
                memcpy(first, hex, sizeof hex);
            CHECKF(strcmp(first, hex) == 0, "%s: order %zu gives %s, not %s", s_all[e], p, hex,
                   first);
            hafl_adapter_destroy(&after);
            hafl_strategy_destroy(&s);
        }
    }
    hafl_adapter_destroy(&g);
    for (size_t i = 0; i < N; i++)
        hafl_adapter_destroy(&c[i].adapter);
}

//  Hand-checked values of one coordinate: cut counts, even and odd medians, outliers.
static void test_hand_values(void)
{
    static const struct {
        size_t n;
        float values[8];
        float trim;
        float median, trimmed;
    } cases[] = {
        {4, {1, 100, 3, 2}, 0.25f, 2.5f, 2.5f},                     //  cut 1: mean of 2, 3
        {5, {1, 100, 3, 2, -50}, 0.2f, 2.0f, 2.0f},                 //  cut 1: mean of 1, 2, 3
        {3, {7, -1000, 9}, 0.45f, 7.0f, 7.0f},                      //  floor(1.35) = 1: the median
        {2, {4, 1000}, 0.45f, 502.0f, 502.0f},                      //  floor(0.9) = 0: the mean
        {8, {1, 2, 3, 4, 5, 6, 1e6f, 1e6f}, 0.25f, 4.5f, 4.5f},     //  cut 2 drops both outliers
        {8, {1, 2, 3, 4, 5, 6, 1e6f, 1e6f}, 0.2f, 4.5f, 166670.0f}, //  cut 1 keeps one
        {1, {3.5f}, 0.4f, 3.5f, 3.5f},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        client_t c[8];
        hafl_upload_t ups[8];
        for (size_t i = 0; i < cases[t].n; i++) {
            c[i].adapter = s_random_adapter(60 + i, 1.0);
            memset(c[i].trained, 0, SLOTS);
            c[i].trained[0] = 1;
            hafl_adapter_b(c[i].adapter, 0, 0)[0] = cases[t].values[i];
            c[i].adapter->score[0] = cases[t].values[i];
            ups[i] = (hafl_upload_t){(uint32_t)i, 1000000u * (i == 1) + 1, 1, c[i].trained,
                                     c[i].adapter};
        }
        for (int e = 0; e < 2; e++) {
            hafl_strategy_t *s = s_strategy(e ? "trimmed-mean" : "median", cases[t].trim, 0.0f);
            hafl_adapter_t *g = s_random_adapter(69, 1.0);
            s_aggregate(s, g, 1, ups, cases[t].n);
            float want = e ? cases[t].trimmed : cases[t].median;
            float got = hafl_adapter_b(g, 0, 0)[0];
            CHECKF(fabsf(got - want) <= 1e-6f * fabsf(want), "case %zu %s: %.9g, want %.9g", t,
                   hafl_strategy_name(s), got, want);
            CHECKF(fabsf(g->score[0] - want) <= 1e-6f * fabsf(want), "case %zu %s score", t,
                   hafl_strategy_name(s));
            hafl_adapter_destroy(&g);
            hafl_strategy_destroy(&s);
        }
        for (size_t i = 0; i < cases[t].n; i++)
            hafl_adapter_destroy(&c[i].adapter);
    }
    //  A decimal trim the float cannot hold exactly still cuts floor(trim * count): 0.35 of 20
    //  voters is 7 (the float 0.35f times 20 is 6.99999988).
    enum { N = 20 };
    client_t c[N];
    hafl_upload_t ups[N];
    for (size_t i = 0; i < N; i++) {
        c[i].adapter = s_random_adapter(200 + i, 1.0);
        memset(c[i].trained, 0, SLOTS);
        c[i].trained[0] = 1;
        //  Values 0..12, then seven far off.
        hafl_adapter_b(c[i].adapter, 0, 0)[0] = i < 13 ? (float)i : 1e4f;
        ups[i] = (hafl_upload_t){(uint32_t)i, 1, 1, c[i].trained, c[i].adapter};
    }
    hafl_strategy_t *s = s_strategy("trimmed-mean", 0.35f, 0.0f);
    hafl_adapter_t *g = s_random_adapter(9, 1.0);
    s_aggregate(s, g, 1, ups, N);
    //  Cut 7 of 20: values 7..12 remain, mean 9.5 (a cut of 6 would keep one 1e4).
    CHECKF(hafl_adapter_b(g, 0, 0)[0] == 9.5f, "trim 0.35 of 20: %.9g", hafl_adapter_b(g, 0, 0)[0]);
    hafl_adapter_destroy(&g);
    hafl_strategy_destroy(&s);
    for (size_t i = 0; i < N; i++)
        hafl_adapter_destroy(&c[i].adapter);
}

//  Two of seven clients upload huge values: the mean follows them, the robust rules do not.
static void test_outliers(void)
{
    enum { N = 7 };
    client_t c[N];
    hafl_upload_t ups[N];
    for (size_t i = 0; i < N; i++) {
        c[i].adapter = s_random_adapter(300 + i, i < 5 ? 1.0 : 1e6);
        memset(c[i].trained, 1, SLOTS);
        ups[i] =
            (hafl_upload_t){(uint32_t)i, i < 5 ? 10u : 1000000u, R, c[i].trained, c[i].adapter};
    }
    static const char *names[] = {"adaptive", "median", "trimmed-mean"};
    for (int e = 0; e < 3; e++) {
        hafl_strategy_t *s = s_strategy(names[e], 0.3f, 0.0f);
        hafl_adapter_t *g = s_random_adapter(309, 1.0);
        s_aggregate(s, g, 1, ups, N);
        double worst = 0.0;
        for (uint32_t m = 0; m < N_MATRICES; m++)
            for (size_t x = 0; x < (size_t)R * s_matrices[m].d_out; x++)
                worst = fmax(worst, fabs(g->bt[m][x]));
        for (size_t h = 0; h < HEAD; h++)
            worst = fmax(worst, fabs(g->head[h]));
        if (e == 0)
            CHECKF(worst > 1000.0, "adaptive should follow the outliers (%g)", worst);
        else
            CHECKF(worst <= 1.0, "%s moved to %g", names[e], worst);
        hafl_adapter_destroy(&g);
        hafl_strategy_destroy(&s);
    }
    for (size_t i = 0; i < N; i++)
        hafl_adapter_destroy(&c[i].adapter);
}

//  ---------------------------------------------------------------------------------------------
//  clip_norm

//  The naive clip of one upload's copy against given, in place.
static void s_ref_clip(hafl_adapter_t *x, const uint8_t *trained, const hafl_adapter_t *given,
                       double bound)
{
    for (uint32_t m = 0; m < N_MATRICES; m++)
        for (uint32_t k = 0; k < R; k++) {
            if (!trained[m * R + k])
                continue;
            float *b = hafl_adapter_b(x, m, k), *a = hafl_adapter_a(x, m, k);
            const float *gb = hafl_adapter_b(given, m, k), *ga = hafl_adapter_a(given, m, k);
            double sq = 0.0;
            for (uint32_t r = 0; r < s_matrices[m].d_out; r++)
                sq += ((double)b[r] - gb[r]) * ((double)b[r] - gb[r]);
            for (uint32_t r = 0; r < s_matrices[m].d_in; r++)
                sq += ((double)a[r] - ga[r]) * ((double)a[r] - ga[r]);
            if (sqrt(sq) <= bound)
                continue;
            double f = bound / sqrt(sq);
            for (uint32_t r = 0; r < s_matrices[m].d_out; r++)
                b[r] = (float)(gb[r] + f * ((double)b[r] - gb[r]));
            for (uint32_t r = 0; r < s_matrices[m].d_in; r++)
                a[r] = (float)(ga[r] + f * ((double)a[r] - ga[r]));
        }
    double sq = 0.0;
    for (size_t h = 0; h < HEAD; h++)
        sq += ((double)x->head[h] - given->head[h]) * ((double)x->head[h] - given->head[h]);
    if (sqrt(sq) > bound)
        for (size_t h = 0; h < HEAD; h++)
            x->head[h] =
                (float)(given->head[h] + bound / sqrt(sq) * ((double)x->head[h] - given->head[h]));
}

static double s_component_delta(const hafl_adapter_t *x, const hafl_adapter_t *g, uint32_t m,
                                uint32_t k)
{
    double sq = 0.0;
    for (uint32_t r = 0; r < s_matrices[m].d_out; r++)
        sq += pow((double)hafl_adapter_b(x, m, k)[r] - hafl_adapter_b(g, m, k)[r], 2);
    for (uint32_t r = 0; r < s_matrices[m].d_in; r++)
        sq += pow((double)hafl_adapter_a(x, m, k)[r] - hafl_adapter_a(g, m, k)[r], 2);
    return sqrt(sq);
}

static void test_clip(void)
{
    char err[256] = "";
    //  Options out of range are refused and leave the strategy as it was.
    hafl_strategy_t *s = s_strategy("trimmed-mean", 0.2f, 0.0f);
    const hafl_strategy_options_t bad[] = {{0.5f, 0},     {-0.1f, 0},  {NAN, 0},
                                           {0.2f, -1.0f}, {0.2f, NAN}, {0.2f, INFINITY}};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        CHECK(hafl_strategy_set_options(s, &bad[b], err, sizeof err) == -1);
        CHECK(strstr(err, "trimmed-mean") != NULL);
    }
    hafl_strategy_destroy(&s);

    //  One client, one component moved by a delta of norm 5 and the head by norm 3: with
    //  clip 2 adaptive installs given + (2/5) delta and the head given + (2/3) delta; a bound
    //  of 6 changes nothing, bit for bit.
    hafl_adapter_t *g = s_random_adapter(500, 1.0);
    client_t c;
    c.adapter = hafl_adapter_dup(g);
    memset(c.trained, 0, SLOTS);
    c.trained[1] = 1; //  matrix 0, component 1: d_out 6 + d_in 5
    float *b = hafl_adapter_b(c.adapter, 0, 1), *a = hafl_adapter_a(c.adapter, 0, 1);
    b[0] += 3.0f; //  (3, 4) spread over b and a: norm 5
    a[2] -= 4.0f;
    c.adapter->head[0] += 3.0f;
    hafl_upload_t up = {0, 10, 2, c.trained, c.adapter};
    for (int bound = 0; bound < 3; bound++) {
        float clip = bound == 0 ? 2.0f : bound == 1 ? 6.0f : 0.0f;
        s = s_strategy("adaptive", 0.2f, clip);
        hafl_adapter_t *after = hafl_adapter_dup(g);
        s_aggregate(s, after, 1, &up, 1);
        if (bound == 0) {
            CHECKF(fabs(s_component_delta(after, g, 0, 1) - 2.0) < 1e-5, "clipped delta %g",
                   s_component_delta(after, g, 0, 1));
            CHECK(fabsf(hafl_adapter_b(after, 0, 1)[0] - (hafl_adapter_b(g, 0, 1)[0] + 1.2f)) <
                  1e-6f);
            CHECK(fabsf(hafl_adapter_a(after, 0, 1)[2] - (hafl_adapter_a(g, 0, 1)[2] - 1.6f)) <
                  1e-6f);
            CHECK(fabsf(after->head[0] - (g->head[0] + 2.0f)) < 1e-6f);
            //  What the client did not train, and the rest of the head (no delta), as given.
            CHECK(memcmp(after->bt[1], g->bt[1], sizeof(float) * R * 4) == 0);
            CHECK(s_same_bits(after->head[1], g->head[1]));
        } else {
            //  Within the bound and off: the plain adaptive result, the upload itself.
            CHECK(memcmp(hafl_adapter_b(after, 0, 1), b, 6 * sizeof(float)) == 0);
            CHECK(memcmp(hafl_adapter_a(after, 0, 1), a, 5 * sizeof(float)) == 0);
            CHECK(s_same_bits(after->head[0], c.adapter->head[0]));
        }
        hafl_adapter_destroy(&after);
        hafl_strategy_destroy(&s);
    }
    hafl_adapter_destroy(&c.adapter);
    hafl_adapter_destroy(&g);

    //  Every strategy: clip then fold == fold of uploads clipped by the reference against the
    //  strategy's client view. The global state comes from a flora round, so it has merged
    //  terms and flexlora's view differs from it. Each client starts from its view and moves
    //  a little; client 3 moves far (spread 40) and is the one the bound of 1.5 bites.
    enum { N = 5 };
    static const uint32_t budget[N] = {1, 2, 2, 4, 3};
    uint8_t trained[N][SLOTS];
    memset(trained, 0, sizeof trained);
    for (size_t i = 0; i < N; i++)
        for (uint32_t m = 0; m < N_MATRICES; m++)
            for (uint32_t k = 0; k < budget[i]; k++)
                trained[i][m * R + (k + i) % R] = 1;
    hafl_adapter_t *base = hafl_adapter_new(&s_layout);
    hafl_adapter_init(base, 3);
    {
        hafl_upload_t ups[N];
        hafl_adapter_t *moved[N];
        for (size_t i = 0; i < N; i++) {
            moved[i] = s_random_adapter(600 + i, 1.0);
            ups[i] = (hafl_upload_t){(uint32_t)i, 5 + i, budget[i], trained[i], moved[i]};
        }
        hafl_strategy_t *flora = s_strategy("flora", 0.2f, 0.0f);
        s_aggregate(flora, base, 1, ups, N);
        hafl_strategy_destroy(&flora);
        hafl_strategy_t *adaptive = s_strategy("adaptive", 0.2f, 0.0f);
        s_aggregate(adaptive, base, 2, ups, N);
        hafl_strategy_destroy(&adaptive);
        for (size_t i = 0; i < N; i++)
            hafl_adapter_destroy(&moved[i]);
    }
    for (size_t e = 0; e < N_ALL; e++) {
        hafl_upload_t ups[N], ref_ups[N];
        hafl_adapter_t *moved_up[N], *kept[N], *ref[N];
        size_t clipped = 0;
        hafl_strategy_t *viewer = s_strategy(s_all[e], 0.2f, 0.0f);
        for (size_t i = 0; i < N; i++) {
            hafl_adapter_t *view = hafl_adapter_new(&s_layout);
            CHECK(hafl_strategy_client_view(viewer, base, (uint32_t)i, budget[i], view, err,
                                            sizeof err) == 0);
            hafl_adapter_t *noise = s_random_adapter(650 + i, i == 3 ? 40.0 : 0.05);
            moved_up[i] = hafl_adapter_dup(view);
            for (uint32_t m = 0; m < N_MATRICES; m++) {
                for (size_t x = 0; x < (size_t)R * s_matrices[m].d_out; x++)
                    moved_up[i]->bt[m][x] += noise->bt[m][x];
                for (size_t x = 0; x < (size_t)R * s_matrices[m].d_in; x++)
                    moved_up[i]->a[m][x] += noise->a[m][x];
            }
            for (size_t h = 0; h < HEAD; h++)
                moved_up[i]->head[h] += noise->head[h];
            memcpy(moved_up[i]->score, noise->score, sizeof(float) * SLOTS);
            kept[i] = hafl_adapter_dup(moved_up[i]);
            ref[i] = hafl_adapter_dup(moved_up[i]);
            s_ref_clip(ref[i], trained[i], view, 1.5);
            char h1[65], h2[65];
            s_digest(ref[i], h1);
            s_digest(moved_up[i], h2);
            clipped += strcmp(h1, h2) != 0;
            ups[i] = (hafl_upload_t){(uint32_t)i, 5 + i, budget[i], trained[i], moved_up[i]};
            ref_ups[i] = (hafl_upload_t){(uint32_t)i, 5 + i, budget[i], trained[i], ref[i]};
            hafl_adapter_destroy(&noise);
            hafl_adapter_destroy(&view);
        }
        hafl_strategy_destroy(&viewer);
        CHECKF(clipped == 1, "%s: %zu of %d uploads clipped", s_all[e], clipped, N);
        hafl_strategy_t *with = s_strategy(s_all[e], 0.2f, 1.5f);
        hafl_strategy_t *without = s_strategy(s_all[e], 0.2f, 0.0f);
        hafl_adapter_t *g1 = hafl_adapter_dup(base), *g2 = hafl_adapter_dup(base);
        s_aggregate(with, g1, 3, ups, N);
        s_aggregate(without, g2, 3, ref_ups, N);
        char h1[65], h2[65];
        s_digest(g1, h1);
        s_digest(g2, h2);
        CHECKF(strcmp(h1, h2) == 0, "%s: clip then fold %s, reference %s", s_all[e], h1, h2);
        //  The clipped run differs from the unclipped one (the bound did bite), and the
        //  uploads themselves were never written.
        hafl_adapter_t *g3 = hafl_adapter_dup(base);
        s_aggregate(without, g3, 3, ups, N);
        s_digest(g3, h2);
        CHECKF(strcmp(h1, h2) != 0, "%s: the clip changed nothing", s_all[e]);
        for (size_t i = 0; i < N; i++) {
            s_digest(moved_up[i], h1);
            s_digest(kept[i], h2);
            CHECKF(strcmp(h1, h2) == 0, "%s: upload %zu written", s_all[e], i);
            hafl_adapter_destroy(&moved_up[i]);
            hafl_adapter_destroy(&kept[i]);
            hafl_adapter_destroy(&ref[i]);
        }
        hafl_adapter_destroy(&g1);
        hafl_adapter_destroy(&g2);
        hafl_adapter_destroy(&g3);
        hafl_strategy_destroy(&with);
        hafl_strategy_destroy(&without);
    }
    hafl_adapter_destroy(&base);
}

static void test_names(void)
{
    char err[256] = "";
    CHECK(hafl_strategy_known("median") && hafl_strategy_known("trimmed-mean"));
    CHECK(!hafl_strategy_known("trimmed_mean") && !hafl_strategy_known("krum"));
    CHECK(!hafl_strategy_new("krum", &s_layout, 1, err, sizeof err));
    CHECKF(strstr(err, "krum") && strstr(err, "median") && strstr(err, "trimmed-mean") &&
               strstr(err, "adaptive"),
           "%s", err);
    //  Defaults: trim 0.2 (so 5 voters lose one at each end), no clipping.
    hafl_strategy_t *s = hafl_strategy_new("trimmed-mean", &s_layout, 1, err, sizeof err);
    CHECK(s && strcmp(hafl_strategy_name(s), "trimmed-mean") == 0);
    enum { N = 5 };
    client_t c[N];
    hafl_upload_t ups[N];
    static const float values[N] = {1, 2, 3, 4, 100};
    for (size_t i = 0; i < N; i++) {
        c[i].adapter = s_random_adapter(700 + i, 1.0);
        memset(c[i].trained, 0, SLOTS);
        c[i].trained[0] = 1;
        hafl_adapter_b(c[i].adapter, 0, 0)[0] = values[i];
        ups[i] = (hafl_upload_t){(uint32_t)i, 1, 1, c[i].trained, c[i].adapter};
    }
    hafl_adapter_t *g = s_random_adapter(709, 1.0);
    s_aggregate(s, g, 1, ups, N);
    CHECK(hafl_adapter_b(g, 0, 0)[0] == 3.0f);
    hafl_adapter_destroy(&g);
    hafl_strategy_destroy(&s);
    for (size_t i = 0; i < N; i++)
        hafl_adapter_destroy(&c[i].adapter);
}

int main(void)
{
    test_names();
    test_reference();
    test_order_independence();
    test_hand_values();
    test_outliers();
    test_clip();
    printf("robust: all tests passed\n");
    return 0;
}
