/*  hafl_faults: seeded dropouts, stragglers, crashes and byzantine clients. See hafl_faults.h. */
#include "hafl_faults.h"
#include "hafl_clip.h"
#include "hafl_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

//  Stream indices: bit 63 separates crash draws from the round draws; bit 62 marks the
//  byzantine keys (no round), bit 61 the byzantine noise draws. Rounds stay below 2^17.
#define S_BYZANTINE_KEY   (1ull << 62)
#define S_BYZANTINE_NOISE (1ull << 61)

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

//  Client c's byzantine key: where it stands in the run's one draw of byzantine clients.
static double s_byzantine_key(uint64_t seed, uint32_t client)
{
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, HAFL_STREAM_FAULTS, S_BYZANTINE_KEY | client);
    return hafl_rng_uniform(&rng);
}

bool hafl_faults_byzantine(const hafl_topology_t *topology, uint32_t client)
{
    //  Nearest whole number, halves up. The share is a float read from decimal text (0.7 is
    //  0.69999998...), so the product gets a relative allowance of 1e-6, far above float
    //  rounding and far below the distance between two counts.
    uint32_t n = topology->clients.count;
    double want = floor((double)topology->faults.byzantine * n * (1.0 + 1e-6) + 0.5);
    uint32_t count = want >= n ? n : (uint32_t)want;
    if (count == 0 || client >= n)
        return false;
    if (count == n)
        return true;
    //  Byzantine iff fewer than count clients have a smaller (key, index).
    double mine = s_byzantine_key(topology->seed, client);
    uint32_t below = 0;
    for (uint32_t c = 0; c < n && below < count; c++) {
        if (c == client)
            continue;
        double key = s_byzantine_key(topology->seed, c);
        below += key < mine || (key == mine && c < client);
    }
    return below < count;
}

//  One vector of the upload corrupted: out [count] from trained x and given g, in double.
//  Noise draws count normals from rng whatever the values, so the stream position depends
//  on the shapes only.
static void s_corrupt(hafl_byzantine_attack_t attack, double scale, const float *x, const float *g,
                      float *out, size_t count, double rms, hafl_rng_t *rng)
{
    for (size_t i = 0; i < count; i++) {
        double delta = (double)x[i] - (double)g[i];
        double v;
        switch (attack) {
        case HAFL_BYZANTINE_SIGN_FLIP:
            v = (double)g[i] - scale * delta;
            break;
        case HAFL_BYZANTINE_NOISE:
            v = (double)g[i] + scale * rms * hafl_rng_normal(rng);
            break;
        default:
            v = (double)g[i] + scale * delta;
            break;
        }
        out[i] = (float)v;
    }
}

//  *data [count] replaced by an owned buffer holding the same values when it was borrowed.
static int s_own(float **data, bool *borrowed, size_t count)
{
    if (!*borrowed)
        return 0;
    float *copy = malloc((count + 1) * sizeof(float));
    if (!copy)
        return -1;
    memcpy(copy, *data, count * sizeof(float));
    *data = copy;
    *borrowed = false;
    return 0;
}

int hafl_faults_byzantine_apply(const hafl_topology_t *topology, uint32_t round, uint32_t client,
                                const hafl_adapter_t *given, hafl_update_t *update)
{
    if (!hafl_faults_byzantine(topology, client))
        return 0;
    const hafl_layout_t *L = &given->layout;
    hafl_byzantine_attack_t attack = topology->faults.byzantine_attack;
    double scale = topology->faults.byzantine_scale;
    hafl_rng_t rng;
    hafl_rng_seed(&rng, topology->seed, HAFL_STREAM_FAULTS,
                  S_BYZANTINE_NOISE | ((uint64_t)round << 32) | client);
    for (uint32_t j = 0; j < update->n_components; j++) {
        hafl_rank1_t *c = &update->components[j];
        if (c->matrix >= L->n_matrices || c->k >= L->rank ||
            c->d_out != L->matrices[c->matrix].d_out || c->d_in != L->matrices[c->matrix].d_in)
            return -1;
        const float *gb = hafl_adapter_b(given, c->matrix, c->k);
        const float *ga = hafl_adapter_a(given, c->matrix, c->k);
        //  b and a share the borrowed flag: own both before writing either.
        bool borrowed = c->borrowed, a_borrowed = c->borrowed;
        float *b = c->b, *a = c->a;
        if (s_own(&b, &borrowed, c->d_out) || s_own(&a, &a_borrowed, c->d_in)) {
            if (b != c->b)
                free(b);
            return -1;
        }
        c->b = b;
        c->a = a;
        c->borrowed = false;
        double n = (double)c->d_out + (double)c->d_in;
        double rms = sqrt(
            (hafl_clip_distance_sq(b, gb, c->d_out) + hafl_clip_distance_sq(a, ga, c->d_in)) / n);
        s_corrupt(attack, scale, b, gb, b, c->d_out, rms, &rng);
        s_corrupt(attack, scale, a, ga, a, c->d_in, rms, &rng);
    }
    size_t cells = (size_t)update->head.rows * update->head.cols;
    if (cells == 0 || !update->head.data)
        return 0;
    if (cells != (size_t)L->head_rows * L->head_cols)
        return -1;
    if (s_own(&update->head.data, &update->head.borrowed, cells))
        return -1;
    double rms = sqrt(hafl_clip_distance_sq(update->head.data, given->head, cells) / (double)cells);
    s_corrupt(attack, scale, update->head.data, given->head, update->head.data, cells, rms, &rng);
    return 0;
}
