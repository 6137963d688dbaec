/*  hafl_strategy: one aggregation strategy (docs/METHOD.md section 4) behind one interface.

    Names: "adaptive" (HAFL), "zeropad" and "zeropad-norm" (HetLoRA), "fedavg", "flexlora",
    "flora", and the robust "median" and "trimmed-mean". The aggregator actor owns exactly one
    strategy at a time; `swap-aggregator` replaces it at a round boundary with
    hafl_strategy_new(next) (same options) and the global state carries over unchanged. A
    strategy object holds nothing but its name, layout, seed and options (trim, clip_norm: the
    run's settings); everything a strategy needs lives in the global adapter (factors, scores,
    head and the merged base terms of flora/flexlora), so swapping at round t equals running
    the next strategy from round t on the same state. When swapping away from flora or
    flexlora the merged terms stay merged and the next strategy trains the live adapter on top
    of them; swapping to flexlora folds the merged terms and the live adapter into the one
    update it re-factorises.

    Definitions. P = this round's uploads, p_i = n_i / sum_{j in P} n_j, C_k = the clients that
    trained component k (of one matrix), s = layout scale. A client's "full local adapter" is
    what it was given (the client view) with the components it trained replaced by its uploads;
    components it did not train count at the given value whether it held them frozen or not.
    - adaptive: b_k = sum_{C_k} n_i b_ik / sum_{C_k} n_i, same for a_k; C_k empty: b_k, a_k
      kept bit for bit.
    - zeropad: every upload padded to rank R with zeros, b_k = sum_{C_k} p_i b_ik (a_k alike),
      so a component shrinks by sum_{C_k} p_i and one nobody trained becomes zero.
    - zeropad-norm: as zeropad with p_i replaced, per matrix, by HetLoRA's norm weights
      w_i = ||B_i A_i||_F / sum_{j in P} ||B_j A_j||_F, where B_i A_i = sum_{k trained by i}
      b_ik a_ik^T is the product of the components client i uploaded for that matrix (a client
      with none weighs 0; when every product is zero the weights fall back to p_i).
    - fedavg: the p_i-weighted mean of the clients' full local adapters, i.e.
      b_k = sum_{C_k} p_i b_ik + (sum_{i not in C_k} p_i) b_k(global); with homogeneous ranks
      where every client trains every component this is the plain weighted mean; a component
      nobody trained is kept bit for bit, one trained by some clients moves by their weighted
      share of the update (no shrinking of the value itself).
    - flexlora: see hafl_fold_flexlora.c. The global update D = merged + s B A is factorised
      per matrix; client_view gives component k < r_i the factors (sigma_k u_k / s, v_k), other
      components b = 0 with the global a_k, and no merged terms. Aggregation stores
      D' = sum_i p_i s B_i A_i (full local adapters, untrained components at their view value)
      as its SVD terms (mb_j = sigma_j u_j, ma_j = v_j), replacing the merged terms, and resets
      the live adapter to B = 0 with a fresh A.
    - flora: see hafl_fold_flora.c. Appends sum_i p_i s B_i A_i (full local adapters) to the
      merged terms as rank-1 terms (p_i s b_ik, a_ik), compacting them losslessly by SVD once a
      matrix would hold more than min(d_out, d_in), then resets the live adapter to B = 0 with
      a fresh A.
    - median: per coordinate of b_k and of a_k, the median of the values of the clients in
      C_k (an even count takes the mean of the two middle values); C_k empty: b_k, a_k kept
      bit for bit.
    - trimmed-mean: per coordinate, the values of C_k sorted, floor(trim * |C_k|) dropped at
      each end (trim from hafl_strategy_set_options, default 0.2, below 0.5 so something is
      always left), the mean of the rest; C_k empty: kept bit for bit. With |C_k| < 1 / trim
      nothing is dropped and it is the plain unweighted mean.
    The robust strategies give every client one vote: n_i is a client's own claim, the very
    number a hostile client inflates, so it weighs nothing there. For the same reason they
    apply their rule to everything a client supplies: the head is the coordinate-wise median
    (trimmed mean) of the uploaded heads over all of P, and the score of (matrix, k) the median
    (trimmed mean) of the S_k reported by C_k, unchanged where C_k is empty. A hostile head or
    score would otherwise steer the model or the selection as freely as a hostile factor.
    Fresh adapters (flora, flexlora) draw A Kaiming-uniform like hafl_adapter_init from the
    stream (seed, HAFL_STREAM_INIT, round). In every other strategy the head is the
    sample-weighted mean of the uploaded heads, and the global score of (matrix, k) becomes the
    sample-weighted mean of the S_k reported by C_k, unchanged where C_k is empty
    (docs/METHOD.md section 2).

    Clipping (clip_norm > 0, hafl_strategy_set_options; server/clip_norm): before any strategy
    folds, every upload is bounded against what its client started from, given = the
    strategy's client view (hafl_strategy_client_view of the global state before the round,
    for that client's budget). For each component k the client trained, the delta
    d = (b_ik - b_k,given ; a_ik - a_k,given), one vector of d_out + d_in values, is scaled to
    length clip_norm when ||d||_2 > clip_norm: x_ik = given + (clip_norm / ||d||_2) d. The head
    is bounded the same way against the given head, with the same clip_norm: it is trained by
    every client and folded into every strategy, so a bound that spared it would leave one
    client free to move the classifier arbitrarily. Scores and n_i are not clipped. The
    clipped values are computed in double and rounded once to float; an upload within bounds
    is used as it is, bit for bit, so clip_norm = 0 (off) and a bound nobody reaches give the
    same result. Aggregation stays a pure function of (global, uploads, options).

    Every strategy folds uploads in ascending client-index order (the caller passes them sorted;
    aggregate refuses any other order), with sums in double, so results never depend on arrival
    order; the robust ones sort each coordinate's values (-0 before +0) and sum the kept ones
    in that order, which no order of the uploads can change. Uploads are validated first
    (layout, n_i > 0, finite trained values, scores, head); on any error the global adapter is
    left exactly as it was.

    Ownership: the strategy never keeps pointers to uploads or to the global state after a call.
*/
#ifndef HAFL_STRATEGY_H
#define HAFL_STRATEGY_H

#include "hafl_adapter.h"

#include <stddef.h>
#include <stdint.h>

//  One client's report for this round, as the server decoded it.
typedef struct {
    uint32_t client_index;
    uint64_t n_samples;            //  n_i > 0
    uint32_t rank_budget;          //  r_i
    const uint8_t *trained;        //  [n_matrices * R], nonzero for components it uploaded
    const hafl_adapter_t *adapter; //  its factors at those indices (others ignored), its
                                   //  scores S_k at those indices, and its head
} hafl_upload_t;

typedef struct hafl_strategy_t hafl_strategy_t;

//  The settings a strategy takes besides its name (topology keys server/trim, server/clip_norm).
typedef struct {
    float trim;      //  trimmed-mean: share dropped at each end, 0 <= trim < 0.5
    float clip_norm; //  bound on each rank-1 delta and the head delta, 0 = off, else > 0
} hafl_strategy_options_t;

#define HAFL_STRATEGY_TRIM_DEFAULT 0.2f

//  NULL with a reason naming the strategy when the name is unknown. Options start at their
//  defaults: trim HAFL_STRATEGY_TRIM_DEFAULT, no clipping.
hafl_strategy_t *hafl_strategy_new(const char *name, const hafl_layout_t *layout, uint64_t seed,
                                   char *err, size_t errlen);
void hafl_strategy_destroy(hafl_strategy_t **self_p);
const char *hafl_strategy_name(const hafl_strategy_t *self);
//  Whether the name is a known strategy (for validating topologies and control commands).
int hafl_strategy_known(const char *name);
//  Set the options (every strategy takes them; trim matters to trimmed-mean only). 0, or -1
//  with a reason when a value is out of range (the options are then unchanged).
int hafl_strategy_set_options(hafl_strategy_t *self, const hafl_strategy_options_t *options,
                              char *err, size_t errlen);

//  Fold the round's uploads (sorted by client_index, n >= 1) into global in place: factors,
//  merged terms, scores and head. round is 1-based (flora's fresh adapters are seeded by it).
int hafl_strategy_aggregate(hafl_strategy_t *self, hafl_adapter_t *global, uint32_t round,
                            const hafl_upload_t *uploads, size_t n, char *err, size_t errlen);

//  What client `client` (budget r) should start from next round, written into view (same
//  layout, caller-owned). For most strategies this is a copy of global; flexlora writes the
//  best rank-r factorisation of the global update (singular values on the B side) and no
//  merged terms; the scheme then decides roles on top of it.
int hafl_strategy_client_view(hafl_strategy_t *self, const hafl_adapter_t *global, uint32_t client,
                              uint32_t rank_budget, hafl_adapter_t *view, char *err, size_t errlen);

#endif
