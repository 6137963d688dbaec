/*  hafl_scheme: the distribution schemes (docs/METHOD.md section 3), server side.

    "truncate": top-r_i components per matrix by global score (ties to the lower index), the
    rest absent. "truncate-prefix": components 0..r_i-1, the rest absent. "freeze": all R
    present, top-r_i trainable, the rest frozen. "freeze-random": all R present, r_i trainable
    drawn at random from the stream hafl_rng_seed (seed, HAFL_STREAM_SCHEME,
    round << 32 | client) by Floyd's sampling, matrix after matrix. Ranking ties go to the
    lower index, NaN scores rank last, and a budget above R counts as R.

    Output is a roles array [n_matrices * R] of HAFL_ROLE_ABSENT (0), HAFL_ROLE_FROZEN (1) and
    HAFL_ROLE_TRAINABLE (2), the same encoding the ROUND message carries.
*/
#ifndef HAFL_SCHEME_H
#define HAFL_SCHEME_H

#include "hafl_adapter.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    HAFL_SCHEME_TRUNCATE = 0,
    HAFL_SCHEME_TRUNCATE_PREFIX = 1,
    HAFL_SCHEME_FREEZE = 2,
    HAFL_SCHEME_FREEZE_RANDOM = 3,
} hafl_scheme_t;

//  Parse a scheme name; -1 when unknown.
int hafl_scheme_parse(const char *name, hafl_scheme_t *scheme);
const char *hafl_scheme_name(hafl_scheme_t scheme);

//  Fill roles [n_matrices * R] for one client this round from the global scores.
void hafl_scheme_select(hafl_scheme_t scheme, const hafl_adapter_t *global, uint32_t rank_budget,
                        uint64_t seed, uint32_t round, uint32_t client, uint8_t *roles);

#endif
