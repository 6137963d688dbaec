/*  hafl_clip: the bound server/clip_norm puts on one client's influence on a round.

    hafl_clip_new takes the round's uploads and, for each, what that client started from
    (given: the strategy's client view) and returns the uploads a strategy should fold: for
    every component k an upload trained, the delta d = (b_ik - b_k,given ; a_ik - a_k,given)
    (d_out + d_in values) is scaled to length clip_norm when ||d||_2 > clip_norm, and the head
    delta likewise; everything else (scores, n_i, untrained slots) is the upload's own. An
    upload with nothing over the bound is handed through unchanged (same adapter pointer, bit
    for bit); one with something over it gets a private copy of its factors, scores and head
    (no merged terms: no strategy reads a client's) with the clipped values, computed in double
    and rounded once to float. The formula users rely on is in hafl_strategy.h.

    Ownership: hafl_clip_new returns an object the caller owns; its uploads array and copies
    live until hafl_clip_destroy. It borrows nothing after it returns except the trained
    masks of the uploads, which its uploads array points at.
*/
#ifndef HAFL_CLIP_H
#define HAFL_CLIP_H

#include "hafl_strategy.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    hafl_upload_t *uploads; //  [n] what to fold: the input, with clipped adapters swapped in
    size_t n;
    hafl_adapter_t **owned; //  [n] the clipped copies, NULL where an upload was within bounds
    uint32_t components;    //  rank-1 deltas scaled down this round
    uint32_t heads;         //  head deltas scaled down this round
} hafl_clip_t;

//  Bound uploads [n] (validated: same layout as their given, finite values) against given [n]
//  with clip_norm > 0. NULL on no memory.
hafl_clip_t *hafl_clip_new(const hafl_upload_t *uploads, size_t n,
                           const hafl_adapter_t *const *given, float clip_norm);
void hafl_clip_destroy(hafl_clip_t **self_p);

//  ||x - g||_2^2 over count floats, summed in double in index order: the size of a delta as
//  the bound measures it (faults/byzantine's noise attack sizes its noise by it too).
double hafl_clip_distance_sq(const float *x, const float *g, size_t count);

#endif
