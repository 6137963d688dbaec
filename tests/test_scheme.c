/*  test_scheme: the distribution schemes (hafl_scheme.h) on hand-set scores.

    truncate takes the top r by score with ties to the lower index (NaN lowest) and makes the
    rest absent; truncate-prefix the first r; freeze keeps all R present with exactly the top r
    trainable; freeze-random is reproducible from (seed, round, client), draws r distinct
    components, and over many draws picks every component about equally often.
*/
#include "hafl_scheme.h"
#include "hafl_test.h"

#include <math.h>
#include <string.h>

#define R 6

static hafl_matrix_info_t s_matrices[2] = {{"L0.wq", 8, 8}, {"L0.wk", 4, 8}};
static const hafl_layout_t s_layout = {2, s_matrices, R, 2.0f, 2, 9};

//  roles of matrix m as a string of 'A', 'F', 'T' for readable comparisons.
static void s_roles(const uint8_t *roles, uint32_t m, char *out)
{
    for (uint32_t k = 0; k < R; k++)
        out[k] = "AFT"[roles[m * R + k]];
    out[R] = 0;
}

static void s_expect(hafl_scheme_t scheme, const hafl_adapter_t *g, uint32_t budget, const char *m0,
                     const char *m1)
{
    uint8_t roles[2 * R];
    char got[R + 1];
    hafl_scheme_select(scheme, g, budget, 1, 1, 0, roles);
    s_roles(roles, 0, got);
    CHECKF(strcmp(got, m0) == 0, "%s r=%u matrix 0: %s, expected %s", hafl_scheme_name(scheme),
           budget, got, m0);
    s_roles(roles, 1, got);
    CHECKF(strcmp(got, m1) == 0, "%s r=%u matrix 1: %s, expected %s", hafl_scheme_name(scheme),
           budget, got, m1);
}

static void test_names(void)
{
    const char *names[] = {"truncate", "truncate-prefix", "freeze", "freeze-random"};
    for (int s = 0; s < 4; s++) {
        hafl_scheme_t scheme;
        CHECK(hafl_scheme_parse(names[s], &scheme) == 0);
        CHECK((int)scheme == s);
        CHECK(strcmp(hafl_scheme_name(scheme), names[s]) == 0);
    }
    hafl_scheme_t scheme = HAFL_SCHEME_FREEZE;
    CHECK(hafl_scheme_parse("Freeze", &scheme) == -1);
    CHECK(hafl_scheme_parse("", &scheme) == -1);
    CHECK(hafl_scheme_parse(NULL, &scheme) == -1);
    CHECK(scheme == HAFL_SCHEME_FREEZE);
}

static void test_ranked(void)
{
    hafl_adapter_t *g = hafl_adapter_new(&s_layout);
    CHECK(g);
    //  Round 1: all zero, so the prefix wins every tie.
    s_expect(HAFL_SCHEME_TRUNCATE, g, 2, "TTAAAA", "TTAAAA");
    s_expect(HAFL_SCHEME_FREEZE, g, 2, "TTFFFF", "TTFFFF");
    float m0[R] = {0.5f, 0.9f, 0.5f, 0.1f, 0.9f, 0.5f};
    float m1[R] = {NAN, -1.0f, 0.0f, 3.0f, 0.0f, -0.0f};
    memcpy(g->score, m0, sizeof m0);
    memcpy(g->score + R, m1, sizeof m1);
    //  Matrix 0 ranks 1, 4 (0.9, lower index first), 0, 2, 5 (0.5), 3; matrix 1 ranks 3, then
    //  the zeros 2, 4, 5 (-0 == 0), then -1 (index 1), NaN last.
    s_expect(HAFL_SCHEME_TRUNCATE, g, 1, "ATAAAA", "AAATAA");
    s_expect(HAFL_SCHEME_TRUNCATE, g, 3, "TTAATA", "AATTTA");
    s_expect(HAFL_SCHEME_TRUNCATE, g, 4, "TTTATA", "AATTTT");
    s_expect(HAFL_SCHEME_TRUNCATE, g, 5, "TTTATT", "ATTTTT");
    s_expect(HAFL_SCHEME_FREEZE, g, 3, "TTFFTF", "FFTTTF");
    s_expect(HAFL_SCHEME_FREEZE, g, 0, "FFFFFF", "FFFFFF");
    s_expect(HAFL_SCHEME_FREEZE, g, 99, "TTTTTT", "TTTTTT");
    s_expect(HAFL_SCHEME_TRUNCATE, g, 0, "AAAAAA", "AAAAAA");
    //  The prefix ignores scores.
    s_expect(HAFL_SCHEME_TRUNCATE_PREFIX, g, 3, "TTTAAA", "TTTAAA");
    s_expect(HAFL_SCHEME_TRUNCATE_PREFIX, g, 6, "TTTTTT", "TTTTTT");
    s_expect(HAFL_SCHEME_TRUNCATE_PREFIX, g, 0, "AAAAAA", "AAAAAA");
    hafl_adapter_destroy(&g);
}

static void test_freeze_random(void)
{
    hafl_adapter_t *g = hafl_adapter_new(&s_layout);
    CHECK(g);
    uint8_t roles[2 * R], again[2 * R];
    uint32_t picked[2][R] = {{0}};
    int differs = 0;
    uint32_t draws = 3000;
    for (uint32_t t = 0; t < draws; t++) {
        uint32_t round = 1 + t / 10, client = t % 10;
        hafl_scheme_select(HAFL_SCHEME_FREEZE_RANDOM, g, 2, 42, round, client, roles);
        hafl_scheme_select(HAFL_SCHEME_FREEZE_RANDOM, g, 2, 42, round, client, again);
        CHECK(memcmp(roles, again, sizeof roles) == 0); //  reproducible
        for (uint32_t m = 0; m < 2; m++) {
            uint32_t trainable = 0;
            for (uint32_t k = 0; k < R; k++) {
                uint8_t role = roles[m * R + k];
                CHECK(role == HAFL_ROLE_TRAINABLE || role == HAFL_ROLE_FROZEN);
                if (role == HAFL_ROLE_TRAINABLE) {
                    trainable++;
                    picked[m][k]++;
                }
            }
            CHECK(trainable == 2); //  exactly r, so r distinct components
        }
        differs |= memcmp(roles, roles + R, R) != 0;
    }
    CHECK(differs); //  the matrices draw independently
    //  Every component is picked with probability r/R = 1/3: 1000 of 3000 expected, sd ~26.
    for (uint32_t m = 0; m < 2; m++)
        for (uint32_t k = 0; k < R; k++)
            CHECKF(picked[m][k] > 880 && picked[m][k] < 1120, "matrix %u component %u: %u", m, k,
                   picked[m][k]);
    //  Another seed, round or client gives another draw (for at least one of a few tries).
    hafl_scheme_select(HAFL_SCHEME_FREEZE_RANDOM, g, 3, 42, 5, 3, roles);
    int seen_other = 0;
    for (uint32_t t = 0; t < 8; t++) {
        hafl_scheme_select(HAFL_SCHEME_FREEZE_RANDOM, g, 3, 43 + t, 5, 3, again);
        seen_other |= memcmp(roles, again, sizeof roles) != 0;
    }
    CHECK(seen_other);
    //  Budgets at the bounds.
    hafl_scheme_select(HAFL_SCHEME_FREEZE_RANDOM, g, R + 5, 42, 1, 1, roles);
    for (uint32_t k = 0; k < 2 * R; k++)
        CHECK(roles[k] == HAFL_ROLE_TRAINABLE);
    hafl_scheme_select(HAFL_SCHEME_FREEZE_RANDOM, g, 0, 42, 1, 1, roles);
    for (uint32_t k = 0; k < 2 * R; k++)
        CHECK(roles[k] == HAFL_ROLE_FROZEN);
    hafl_adapter_destroy(&g);
}

int main(void)
{
    test_names();
    test_ranked();
    test_freeze_random();
    printf("scheme: all tests passed\n");
    return 0;
}
