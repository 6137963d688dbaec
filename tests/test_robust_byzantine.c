/*  test_robust_byzantine: the faults/byzantine fault kind of hafl_faults.h.

    Selection: exactly round(share x clients) byzantine clients for every count and share
    tried, the same set on every call and every load of the same seed, another set for
    another seed, and every client equally likely over many seeds. Attacks on an UPDATE built
    the way the client builds it (components and head borrowed from the trained adapter): the
    scale, sign-flip and noise formulas value by value, the trained adapter never written,
    borrowed buffers replaced by owned ones (hafl_msg_destroy frees them; ASan watches), noise
    seeded per (seed, round, client) with the documented size, honest clients untouched.
    Needs HAFL_SOURCE_DIR (topologies/smoke.zpl).
*/
#include "hafl_faults.h"
#include "hafl_rng.h"
#include "hafl_test.h"
#include "hafl_wire.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define R 4

static hafl_matrix_info_t s_matrices[2] = {{"L0.wq", 300, 200}, {"L0.wv", 4, 7}};
static const hafl_layout_t s_layout = {2, s_matrices, R, 2.0f, 3, 40};
#define HEAD (3 * 40)

static hafl_topology_t *s_load(uint64_t seed, uint32_t count, const char *share, const char *attack,
                               const char *scale)
{
    const char *root = getenv("HAFL_SOURCE_DIR");
    CHECKF(root, "HAFL_SOURCE_DIR is not set (run through ctest)");
    char path[4200], o_seed[64], o_count[64], o_ranks[64], o_share[64], o_attack[64], o_scale[64];
    snprintf(path, sizeof path, "%s/topologies/smoke.zpl", root);
    snprintf(o_seed, sizeof o_seed, "seed=%llu", (unsigned long long)seed);
    snprintf(o_count, sizeof o_count, "clients/count=%u", count);
    snprintf(o_ranks, sizeof o_ranks, "clients/ranks=2");
    snprintf(o_share, sizeof o_share, "faults/byzantine=%s", share);
    snprintf(o_attack, sizeof o_attack, "faults/byzantine_attack=%s", attack);
    snprintf(o_scale, sizeof o_scale, "faults/byzantine_scale=%s", scale);
    const char *overrides[] = {
        o_seed, o_count, o_ranks, o_share, o_attack, o_scale, "server/min_reports=0"};
    hafl_topology_error_t err;
    hafl_topology_t *t = hafl_topology_load(path, overrides, 7, &err);
    CHECKF(t, "%s", err.text);
    return t;
}

static void test_selection(void)
{
    static const uint32_t counts[] = {1, 2, 5, 8, 10, 37, 100};
    static const char *shares[] = {"0", "0.1", "0.2", "0.25", "0.5", "0.7", "1"};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
        for (size_t s = 0; s < sizeof shares / sizeof shares[0]; s++) {
            hafl_topology_t *t = s_load(7, counts[c], shares[s], "scale", "10");
            hafl_topology_t *again = s_load(7, counts[c], shares[s], "noise", "3");
            uint32_t want = (uint32_t)floor(atof(shares[s]) * counts[c] + 0.5);
            uint32_t got = 0;
            for (uint32_t i = 0; i < counts[c]; i++) {
                bool b = hafl_faults_byzantine(t, i);
                got += b;
                //  Fixed for the run: the same on every call, on every load, whatever attack.
                CHECK(b == hafl_faults_byzantine(t, i));
                CHECK(b == hafl_faults_byzantine(again, i));
            }
            CHECKF(got == want, "%u clients, share %s: %u byzantine, want %u", counts[c], shares[s],
                   got, want);
            CHECK(!hafl_faults_byzantine(t, counts[c])); //  not a client
            hafl_topology_destroy(&t);
            hafl_topology_destroy(&again);
        }
    //  Another seed, another set (100 clients, 20 byzantine: equal sets are vanishingly rare).
    hafl_topology_t *a = s_load(7, 100, "0.2", "scale", "10");
    hafl_topology_t *b = s_load(8, 100, "0.2", "scale", "10");
    uint32_t differ = 0;
    for (uint32_t i = 0; i < 100; i++)
        differ += hafl_faults_byzantine(a, i) != hafl_faults_byzantine(b, i);
    CHECK(differ > 0);
    hafl_topology_destroy(&a);
    hafl_topology_destroy(&b);
    //  Over 1000 seeds, each of 10 clients is byzantine in about 20% of them (sd 1.3 points).
    uint32_t hits[10] = {0};
    for (uint64_t seed = 1; seed <= 1000; seed++) {
        hafl_topology_t *t = s_load(seed, 10, "0.2", "scale", "10");
        for (uint32_t i = 0; i < 10; i++)
            hits[i] += hafl_faults_byzantine(t, i);
        hafl_topology_destroy(&t);
    }
    for (uint32_t i = 0; i < 10; i++)
        CHECKF(hits[i] > 150 && hits[i] < 250, "client %u byzantine for %u of 1000 seeds", i,
               hits[i]);
}

//  given: random; trained: given moved on the trainable components and the head.
static void s_adapters(hafl_adapter_t **given, hafl_adapter_t **trained, uint8_t *roles)
{
    *given = hafl_adapter_new(&s_layout);
    CHECK(*given);
    hafl_adapter_init(*given, 5);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 5, 1, 1);
    for (uint32_t m = 0; m < 2; m++)
        for (size_t x = 0; x < (size_t)R * s_matrices[m].d_out; x++)
            (*given)->bt[m][x] = (float)(hafl_rng_uniform(&rng) - 0.5);
    *trained = hafl_adapter_dup(*given);
    CHECK(*trained);
    for (uint32_t m = 0; m < 2; m++)
        for (uint32_t k = 0; k < R; k++) {
            roles[m * R + k] = k % 2 ? HAFL_ROLE_TRAINABLE : HAFL_ROLE_FROZEN;
            if (k % 2 == 0)
                continue;
            float *b = hafl_adapter_b(*trained, m, k), *a = hafl_adapter_a(*trained, m, k);
            for (uint32_t x = 0; x < s_matrices[m].d_out; x++)
                b[x] += (float)(0.01 * (hafl_rng_uniform(&rng) - 0.5));
            for (uint32_t x = 0; x < s_matrices[m].d_in; x++)
                a[x] += (float)(0.02 * (hafl_rng_uniform(&rng) - 0.5));
        }
    for (size_t h = 0; h < HEAD; h++)
        (*trained)->head[h] += (float)(0.03 * (hafl_rng_uniform(&rng) - 0.5));
}

//  An UPDATE built as the client builds it: components and head borrowed from trained.
static hafl_msg_t *s_update(const hafl_adapter_t *trained, const uint8_t *roles, uint32_t round,
                            uint32_t client)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_UPDATE);
    CHECK(msg);
    hafl_update_t *u = &msg->u.update;
    u->round = round;
    u->client_index = client;
    u->n_samples = 100;
    u->components =
        hafl_wire_export_components(trained, roles, HAFL_ROLE_TRAINABLE, &u->n_components);
    CHECK(u->components && u->n_components == 2 * R / 2);
    CHECK(hafl_wire_export_head(trained, &u->head) == 0);
    return msg;
}

static double s_rms_delta(const float *x, const float *g, size_t count)
{
    double sq = 0.0;
    for (size_t i = 0; i < count; i++)
        sq += ((double)x[i] - g[i]) * ((double)x[i] - g[i]);
    return sqrt(sq / (double)count);
}

static void test_attacks(void)
{
    hafl_adapter_t *given, *trained;
    uint8_t roles[2 * R];
    s_adapters(&given, &trained, roles);
    hafl_adapter_t *pristine = hafl_adapter_dup(trained);
    char h1[65], h2[65];
    hafl_adapter_digest_hex(pristine, h1);
    //  Client 0 of one is byzantine at share 1; nobody at share 0.
    static const char *attacks[] = {"scale", "sign-flip", "noise"};
    for (int at = 0; at < 3; at++) {
        hafl_topology_t *t = s_load(3, 1, "1", attacks[at], "4");
        hafl_topology_t *honest = s_load(3, 1, "0", attacks[at], "4");
        hafl_msg_t *msg = s_update(trained, roles, 6, 0);
        hafl_update_t *u = &msg->u.update;
        CHECK(hafl_faults_byzantine_apply(honest, 6, 0, given, u) == 0);
        for (uint32_t j = 0; j < u->n_components; j++)
            CHECK(u->components[j].borrowed &&
                  u->components[j].b ==
                      hafl_adapter_b(trained, u->components[j].matrix, u->components[j].k));
        CHECK(u->head.borrowed && u->head.data == trained->head);
        CHECK(hafl_faults_byzantine_apply(t, 6, 0, given, u) == 0);
        for (uint32_t j = 0; j < u->n_components; j++) {
            const hafl_rank1_t *c = &u->components[j];
            CHECK(!c->borrowed);
            const float *gb = hafl_adapter_b(given, c->matrix, c->k);
            const float *ga = hafl_adapter_a(given, c->matrix, c->k);
            const float *xb = hafl_adapter_b(trained, c->matrix, c->k);
            const float *xa = hafl_adapter_a(trained, c->matrix, c->k);
            if (at < 2) {
                double sign = at == 0 ? 4.0 : -4.0;
                for (uint32_t x = 0; x < c->d_out; x++)
                    CHECK(c->b[x] == (float)(gb[x] + sign * ((double)xb[x] - gb[x])));
                for (uint32_t x = 0; x < c->d_in; x++)
                    CHECK(c->a[x] == (float)(ga[x] + sign * ((double)xa[x] - ga[x])));
            } else if (c->matrix == 0) {
                //  300 + 200 values: the noise's rms is 4 x the honest delta's, within 10%.
                double honest_sq = 0.0, noise_sq = 0.0;
                for (uint32_t x = 0; x < c->d_out; x++) {
                    honest_sq += pow((double)xb[x] - gb[x], 2);
                    noise_sq += pow((double)c->b[x] - gb[x], 2);
                }
                for (uint32_t x = 0; x < c->d_in; x++) {
                    honest_sq += pow((double)xa[x] - ga[x], 2);
                    noise_sq += pow((double)c->a[x] - ga[x], 2);
                }
                double ratio = sqrt(noise_sq / honest_sq);
                CHECKF(ratio > 3.6 && ratio < 4.4, "noise rms ratio %g", ratio);
            }
        }
        CHECK(!u->head.borrowed && u->head.data != trained->head);
        double head_rms = s_rms_delta(u->head.data, given->head, HEAD);
        double honest_rms = s_rms_delta(trained->head, given->head, HEAD);
        if (at < 2)
            CHECK(fabs(head_rms - 4.0 * honest_rms) < 1e-4 * honest_rms);
        else
            CHECKF(head_rms > 3.0 * honest_rms && head_rms < 5.0 * honest_rms,
                   "noise head rms %g vs honest %g", head_rms, honest_rms);
        //  The trained adapter is what it was: the attack lives in the message only.
        hafl_adapter_digest_hex(trained, h2);
        CHECKF(strcmp(h1, h2) == 0, "%s wrote into the trained adapter", attacks[at]);
        //  Noise: the same (seed, round, client) draws the same values; another round not.
        if (at == 2) {
            hafl_msg_t *same = s_update(trained, roles, 6, 0);
            hafl_msg_t *other = s_update(trained, roles, 7, 0);
            CHECK(hafl_faults_byzantine_apply(t, 6, 0, given, &same->u.update) == 0);
            CHECK(hafl_faults_byzantine_apply(t, 7, 0, given, &other->u.update) == 0);
            const hafl_rank1_t *c0 = &u->components[0], *c1 = &same->u.update.components[0],
                               *c2 = &other->u.update.components[0];
            CHECK(memcmp(c0->b, c1->b, c0->d_out * sizeof(float)) == 0);
            CHECK(memcmp(c0->b, c2->b, c0->d_out * sizeof(float)) != 0);
            hafl_msg_destroy(&same);
            hafl_msg_destroy(&other);
        }
        //  Applying to an update that already owns its buffers corrupts in place.
        if (at == 0) {
            float before = u->components[0].b[0];
            const float *g0 = hafl_adapter_b(given, u->components[0].matrix, u->components[0].k);
            CHECK(hafl_faults_byzantine_apply(t, 6, 0, given, u) == 0);
            CHECK(u->components[0].b[0] == (float)(g0[0] + 4.0 * ((double)before - g0[0])));
        }
        hafl_msg_destroy(&msg);
        hafl_topology_destroy(&t);
        hafl_topology_destroy(&honest);
    }
    //  A component outside the layout is refused (the client then drops the upload).
    hafl_topology_t *t = s_load(3, 1, "1", "scale", "4");
    hafl_msg_t *msg = s_update(trained, roles, 6, 0);
    msg->u.update.components[1].k = R;
    CHECK(hafl_faults_byzantine_apply(t, 6, 0, given, &msg->u.update) == -1);
    hafl_msg_destroy(&msg);
    hafl_topology_destroy(&t);
    hafl_adapter_destroy(&pristine);
    hafl_adapter_destroy(&given);
    hafl_adapter_destroy(&trained);
}

int main(void)
{
    test_selection();
    test_attacks();
    printf("robust byzantine: all tests passed\n");
    return 0;
}
