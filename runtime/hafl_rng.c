/*  hafl_rng: xoshiro256** streams seeded by splitmix64. See hafl_rng.h for the contract. */
#include "hafl_rng.h"

#include <math.h>

static uint64_t
s_splitmix64 (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t
s_rotl (uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void
hafl_rng_seed (hafl_rng_t *self, uint64_t seed, uint64_t label, uint64_t index)
{
    //  Mix the three inputs through splitmix so nearby triples give unrelated states.
    uint64_t mix = seed;
    uint64_t a = s_splitmix64 (&mix);
    mix ^= label * 0xD1B54A32D192ED03ULL;
    uint64_t b = s_splitmix64 (&mix);
    mix ^= index * 0xAEF17502108EF2D9ULL;
    uint64_t state = a ^ s_rotl (b, 17) ^ s_splitmix64 (&mix);
    for (int i = 0; i < 4; i++)
        self->s[i] = s_splitmix64 (&state);
}

uint64_t
hafl_rng_u64 (hafl_rng_t *self)
{
    uint64_t *s = self->s;
    uint64_t result = s_rotl (s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl (s[3], 45);
    return result;
}

uint64_t
hafl_rng_below (hafl_rng_t *self, uint64_t bound)
{
    //  Rejection sampling on the top of the range keeps every value equally likely.
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do
        x = hafl_rng_u64 (self);
    while (x >= limit);
    return x % bound;
}

double
hafl_rng_uniform (hafl_rng_t *self)
{
    return (double) (hafl_rng_u64 (self) >> 11) * 0x1.0p-53;
}

double
hafl_rng_normal (hafl_rng_t *self)
{
    double u1 = 1.0 - hafl_rng_uniform (self);   //  (0, 1], so log is finite
    double u2 = hafl_rng_uniform (self);
    return sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2);
}

double
hafl_rng_gamma (hafl_rng_t *self, double shape)
{
    if (shape < 1.0) {
        //  Boost: Gamma(a) = Gamma(a + 1) * U^(1/a).
        double u = 1.0 - hafl_rng_uniform (self);
        return hafl_rng_gamma (self, shape + 1.0) * pow (u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0;
    double c = 1.0 / sqrt (9.0 * d);
    for (;;) {
        double x = hafl_rng_normal (self);
        double v = 1.0 + c * x;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        double u = 1.0 - hafl_rng_uniform (self);
        if (log (u) < 0.5 * x * x + d - d * v + d * log (v))
            return d * v;
    }
}

void
hafl_rng_shuffle_u32 (hafl_rng_t *self, uint32_t *values, uint32_t n)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t) hafl_rng_below (self, i);
        uint32_t tmp = values[i - 1];
        values[i - 1] = values[j];
        values[j] = tmp;
    }
}
