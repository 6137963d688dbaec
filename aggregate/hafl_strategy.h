/*  hafl_strategy: one aggregation strategy (METHOD.md section 4) behind one interface.

    Names: "adaptive" (HAFL), "zeropad" and "zeropad-norm" (HetLoRA), "fedavg", "flexlora",
    "flora". The aggregator actor owns exactly one strategy at a time; `swap-aggregator`
    replaces it at a round boundary with hafl_strategy_new(next) and the global state carries
    over unchanged (everything a strategy needs lives in the global adapter, including the
    merged base terms of flora/flexlora), so swapping at round t equals running the next
    strategy from round t on the same state.

    Every strategy folds uploads in ascending client-index order (the caller passes them sorted),
    so results never depend on arrival order. The head is always FedAvg'd by sample count, and
    the global scores are updated per METHOD.md section 2 (sample-weighted mean of the reported
    S_k over the clients that trained component k; unchanged where nobody did).

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
    uint64_t n_samples;             //  n_i > 0
    uint32_t rank_budget;           //  r_i
    const uint8_t *trained;         //  [n_matrices * R], nonzero for components it uploaded
    const hafl_adapter_t *adapter;  //  its factors at those indices (others ignored), its
                                    //  scores S_k at those indices, and its head
} hafl_upload_t;

typedef struct hafl_strategy_t hafl_strategy_t;

//  NULL with a reason naming the strategy when the name is unknown.
hafl_strategy_t *hafl_strategy_new (const char *name, const hafl_layout_t *layout, uint64_t seed,
                                    char *err, size_t errlen);
void hafl_strategy_destroy (hafl_strategy_t **self_p);
const char *hafl_strategy_name (const hafl_strategy_t *self);
//  Whether the name is a known strategy (for validating topologies and control commands).
int hafl_strategy_known (const char *name);

//  Fold the round's uploads (sorted by client_index, n >= 1) into global in place: factors,
//  merged terms, scores and head. round is 1-based (flora's fresh adapters are seeded by it).
int hafl_strategy_aggregate (hafl_strategy_t *self, hafl_adapter_t *global, uint32_t round,
                             const hafl_upload_t *uploads, size_t n, char *err, size_t errlen);

//  What client `client` (budget r) should start from next round, written into view (same
//  layout, caller-owned). For most strategies this is a copy of global; flexlora writes the
//  best rank-r factorisation of the global update (singular values on the B side) and no
//  merged terms; the scheme then decides roles on top of it.
int hafl_strategy_client_view (hafl_strategy_t *self, const hafl_adapter_t *global,
                               uint32_t client, uint32_t rank_budget, hafl_adapter_t *view,
                               char *err, size_t errlen);

#endif
