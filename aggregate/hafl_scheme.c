/*  hafl_scheme: the distribution schemes. See hafl_scheme.h.

    Ranking: per matrix, component i beats j when its global score is higher, or equal with a
    lower index (NaN counts as the lowest score), so round 1 (all scores 0) selects the prefix.
    freeze-random draws from the stream (seed, HAFL_STREAM_SCHEME, round << 32 | client), one
    stream per client and round; per matrix in order, Floyd's sampling picks r distinct
    trainable components (for j = R-r .. R-1: t = below(j+1); take t, or j when t is taken),
    a uniform r-subset in exactly r draws. A budget above R is treated as R.
*/
#include "hafl_scheme.h"
#include "hafl_rng.h"

#include <math.h>
#include <string.h>

static const char *s_names[] = {"truncate", "truncate-prefix", "freeze", "freeze-random"};

int hafl_scheme_parse(const char *name, hafl_scheme_t *scheme)
{
    for (int s = 0; name && s < 4; s++)
        if (strcmp(s_names[s], name) == 0) {
            *scheme = (hafl_scheme_t)s;
            return 0;
        }
    return -1;
}

const char *hafl_scheme_name(hafl_scheme_t scheme)
{
    return (unsigned)scheme < 4 ? s_names[scheme] : "unknown";
}

static int s_beats(const float *score, uint32_t i, uint32_t j)
{
    float si = isnan(score[i]) ? -INFINITY : score[i];
    float sj = isnan(score[j]) ? -INFINITY : score[j];
    return si > sj || (si == sj && i < j);
}

//  Mark the top r components of one matrix (scores [R]) with role `top` in roles [R].
static void s_top(const float *score, uint32_t R, uint32_t r, uint8_t top, uint8_t *roles)
{
    for (uint32_t pick = 0; pick < r; pick++) {
        uint32_t best = R;
        for (uint32_t k = 0; k < R; k++)
            if (roles[k] != top && (best == R || s_beats(score, k, best)))
                best = k;
        roles[best] = top;
    }
}

void hafl_scheme_select(hafl_scheme_t scheme, const hafl_adapter_t *global, uint32_t rank_budget,
                        uint64_t seed, uint32_t round, uint32_t client, uint8_t *roles)
{
    uint32_t M = global->layout.n_matrices, R = global->layout.rank;
    uint32_t r = rank_budget < R ? rank_budget : R;
    int frozen = scheme == HAFL_SCHEME_FREEZE || scheme == HAFL_SCHEME_FREEZE_RANDOM;
    memset(roles, frozen ? HAFL_ROLE_FROZEN : HAFL_ROLE_ABSENT, (size_t)M * R);
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, HAFL_STREAM_SCHEME, ((uint64_t)round << 32) | client);
    for (uint32_t m = 0; m < M; m++) {
        uint8_t *row = roles + (size_t)m * R;
        const float *score = global->score + (size_t)m * R;
        if (scheme == HAFL_SCHEME_TRUNCATE_PREFIX)
            memset(row, HAFL_ROLE_TRAINABLE, r);
        else if (scheme == HAFL_SCHEME_FREEZE_RANDOM)
            for (uint32_t j = R - r; j < R; j++) {
                uint32_t t = (uint32_t)hafl_rng_below(&rng, (uint64_t)j + 1);
                row[row[t] == HAFL_ROLE_TRAINABLE ? j : t] = HAFL_ROLE_TRAINABLE;
            }
        else
            s_top(score, R, r, HAFL_ROLE_TRAINABLE, row);
    }
}
