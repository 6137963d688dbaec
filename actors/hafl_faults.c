/*  hafl_faults: seeded dropouts, stragglers and crashes. See hafl_faults.h. */
#include "hafl_faults.h"
#include "hafl_rng.h"

#include <math.h>

//  Stream indices: bit 63 separates crash draws from the round draws.
static uint64_t s_index(uint32_t round, uint32_t client, bool crash)
{
    return ((uint64_t)crash << 63) | ((uint64_t)round << 32) | client;
}

hafl_fault_t hafl_faults_round(const hafl_topology_t *topology, uint32_t round, uint32_t client)
{
    hafl_fault_t fault = {false, 0};
    hafl_rng_t rng;
    hafl_rng_seed(&rng, topology->seed, HAFL_STREAM_FAULTS, s_index(round, client, false));
    double u_drop = hafl_rng_uniform(&rng);
    double u_straggle = hafl_rng_uniform(&rng);
    double u_delay = hafl_rng_uniform(&rng);
    fault.drop = u_drop < topology->faults.dropout;
    if (u_straggle < topology->faults.straggler_share) {
        double lo = topology->faults.delay_min_ms, hi = topology->faults.delay_max_ms;
        double delay;
        switch (topology->faults.delay_dist) {
        case HAFL_DELAY_FIXED:
            delay = hi;
            break;
        case HAFL_DELAY_EXPONENTIAL:
            //  min plus an exponential with mean max_ms, capped at 20 means.
            delay = lo - hi * log1p(-u_delay);
            if (delay > lo + 20.0 * hi)
                delay = lo + 20.0 * hi;
            break;
        default:
            delay = lo + (hi > lo ? (hi - lo) * u_delay : 0.0);
            break;
        }
        fault.straggle_ms = delay < 1.0 ? 1u : (uint32_t)delay;
    }
    return fault;
}

bool hafl_faults_crash(const hafl_topology_t *topology, uint32_t round, uint32_t client)
{
    if (topology->faults.crash <= 0.0f)
        return false;
    hafl_rng_t rng;
    hafl_rng_seed(&rng, topology->seed, HAFL_STREAM_FAULTS, s_index(round, client, true));
    return hafl_rng_uniform(&rng) < topology->faults.crash;
}
