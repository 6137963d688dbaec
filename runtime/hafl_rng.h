/*  hafl_rng: seeded, splittable pseudo-random streams.

    Every random choice in a federation (data split, adapter init, client sampling, faults,
    mini-batch order) draws from its own stream, derived from the topology seed and a stream
    label, so that runs are bit-identical across modes and thread schedules. The generator is
    xoshiro256** seeded through splitmix64; a hafl_rng_t is a plain value owned by one thread.
*/
#ifndef HAFL_RNG_H
#define HAFL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} hafl_rng_t;

//  Well-known stream labels; combine with an index (client id, round) through hafl_rng_seed.
enum {
    HAFL_STREAM_INIT = 1,     //  adapter and head initialisation
    HAFL_STREAM_SPLIT = 2,    //  data partition across clients
    HAFL_STREAM_SAMPLE = 3,   //  per-round participant sampling
    HAFL_STREAM_FAULTS = 4,   //  stragglers, dropouts, crashes
    HAFL_STREAM_BATCH = 5,    //  a client's mini-batch order
    HAFL_STREAM_SYNTH = 6,    //  synthetic task weights and data
    HAFL_STREAM_SCHEME = 7,   //  freeze-random selections
};

//  Seed a stream from (seed, label, index); distinct triples give independent streams.
void hafl_rng_seed (hafl_rng_t *self, uint64_t seed, uint64_t label, uint64_t index);
uint64_t hafl_rng_u64 (hafl_rng_t *self);
//  Uniform integer in [0, bound), bound > 0, without modulo bias.
uint64_t hafl_rng_below (hafl_rng_t *self, uint64_t bound);
//  Uniform double in [0, 1) with 53 random bits.
double hafl_rng_uniform (hafl_rng_t *self);
//  Standard normal (Box-Muller, no cached second value so the stream stays position-exact).
double hafl_rng_normal (hafl_rng_t *self);
//  Gamma(shape, 1) by Marsaglia-Tsang; shape > 0.
double hafl_rng_gamma (hafl_rng_t *self, double shape);
//  Fisher-Yates shuffle of n uint32 values.
void hafl_rng_shuffle_u32 (hafl_rng_t *self, uint32_t *values, uint32_t n);

#endif
