/*  hafl_fold: one aggregation in progress, shared by the strategy modules.

    hafl_strategy_aggregate validates the round's uploads, opens a fold over the global state,
    lets the strategy's fold function write the new factors into `next` and, for flora and
    flexlora, the new merged terms through hafl_fold_merged; the common part (head FedAvg and
    the docs/METHOD.md section 2 score rule) is hafl_fold_head_scores. Nothing touches the global
    adapter until hafl_fold_commit, which cannot fail, so a failed aggregation leaves the
    global state exactly as it was.

    Conventions every fold shares (documented for users in hafl_strategy.h):
    - uploads are folded in the order given (ascending client index), sums in double;
    - p_i = n_i / sum_{j in P} n_j over all uploads of the round;
    - a client's "full local adapter" is what it was given with the components it trained
      replaced by its uploads (given = the global adapter, or the strategy's client view).

    Ownership: hafl_fold_new returns a fold the caller owns; it keeps borrowed pointers to the
    global adapter and the uploads, which must outlive it.
*/
#ifndef HAFL_FOLD_H
#define HAFL_FOLD_H

#include "hafl_strategy.h"

#include <stddef.h>
#include <stdint.h>

//  What hafl_fold_commit does with the merged terms of one matrix.
enum { HAFL_FOLD_MERGED_KEEP = 0, HAFL_FOLD_MERGED_APPEND = 1, HAFL_FOLD_MERGED_REPLACE = 2 };

//  The factor-averaging rules (docs/METHOD.md section 4).
typedef enum {
    HAFL_FOLD_ADAPTIVE = 0,     //  mean over the clients that trained k, weights n_i
    HAFL_FOLD_ZEROPAD = 1,      //  untrained counts as zero, weights p_i over all of P
    HAFL_FOLD_ZEROPAD_NORM = 2, //  as zeropad, weights ||B_i A_i||_F per matrix
    HAFL_FOLD_FEDAVG = 3,       //  untrained counts as the global value, weights p_i
} hafl_fold_rule_t;

typedef struct {
    const hafl_adapter_t *global; //  the state before this round (read only)
    const hafl_upload_t *uploads; //  [n], ascending client_index
    size_t n;
    double *p;            //  [n] p_i = n_i / sum n_j
    uint64_t seed;        //  the strategy's seed (fresh adapters)
    uint32_t round;       //  1-based
    hafl_adapter_t *next; //  the new factors, scores and head; starts as a copy of
                          //  global's (no merged terms)
    uint8_t *merged_mode; //  [n_matrices] HAFL_FOLD_MERGED_*
    uint32_t *merged_n;   //  [n_matrices] term count after commit
    float **merged_bt;    //  [n_matrices] -> [merged_n][d_out], the whole new set
    float **merged_a;     //  [n_matrices] -> [merged_n][d_in]
} hafl_fold_t;

//  A fold over global for these uploads (n >= 1, sum of n_i > 0), or NULL on no memory.
hafl_fold_t *hafl_fold_new(const hafl_adapter_t *global, const hafl_upload_t *uploads, size_t n,
                           uint64_t seed, uint32_t round);
void hafl_fold_destroy(hafl_fold_t **self_p);

//  0 when two layouts have the same matrices, rank and head shape; else -1 with the first
//  difference written into why.
int hafl_fold_same_layout(const hafl_layout_t *have, const hafl_layout_t *want, char *why,
                          size_t whylen);
//  The longest factor vector (max of every d_out and d_in) of a layout, at least 1.
uint32_t hafl_fold_longest(const hafl_layout_t *layout);

//  Whether upload i trained component k of matrix m.
static inline int hafl_fold_trained(const hafl_fold_t *self, size_t i, uint32_t m, uint32_t k)
{
    return self->uploads[i].trained[(size_t)m * self->global->layout.rank + k] != 0;
}

//  Set the merged terms matrix m will hold after commit: REPLACE installs the count terms
//  given; APPEND keeps global's terms and adds them after. 0, or -1 on no memory or on more
//  terms than an adapter may hold.
int hafl_fold_merged(hafl_fold_t *self, uint32_t m, int mode, uint32_t count, const float *bt,
                     const float *a);

//  Head = sample-weighted mean of the uploaded heads; score of (m, k) = sample-weighted mean
//  of the scores reported by the clients that trained it, unchanged where nobody did.
void hafl_fold_head_scores(hafl_fold_t *self);

//  The factor-averaging strategies (adaptive, zeropad, zeropad-norm, fedavg).
int hafl_fold_factors(hafl_fold_t *self, hafl_fold_rule_t rule, char *err, size_t errlen);

//  Reset next's factors to a fresh adapter: B = 0, A Kaiming-uniform U(-1/sqrt(d_in),
//  1/sqrt(d_in)) as hafl_adapter_init draws it, from the stream (seed, INIT, round); round >= 1
//  never collides with the initial adapter's index 0.
void hafl_fold_fresh_factors(hafl_fold_t *self);

//  The robust rules (hafl_fold_robust.c): per coordinate over the clients that trained it.
typedef enum {
    HAFL_FOLD_MEDIAN = 0,       //  the median (even count: mean of the two middle values)
    HAFL_FOLD_TRIMMED_MEAN = 1, //  the mean after dropping floor(trim * count) at each end
} hafl_fold_robust_t;

//  Median or trimmed mean of factors, head and scores, one vote per client; writes all three
//  into next, so the strategy driver does not call hafl_fold_head_scores after it.
int hafl_fold_robust(hafl_fold_t *self, hafl_fold_robust_t rule, float trim, char *err,
                     size_t errlen);

//  FLoRA: stack the round's products into the merged terms, fresh adapter (hafl_fold_flora.c).
int hafl_fold_flora(hafl_fold_t *self, char *err, size_t errlen);
//  FlexLoRA: SVD of the averaged full update into the merged terms (hafl_fold_flexlora.c).
int hafl_fold_flexlora(hafl_fold_t *self, char *err, size_t errlen);
//  FlexLoRA's client view of global for budget r, written into view (hafl_fold_flexlora.c).
int hafl_fold_flexlora_view(const hafl_adapter_t *global, uint32_t rank_budget,
                            hafl_adapter_t *view, char *err, size_t errlen);

//  Write the merged terms of one matrix from an SVD: mb_j = sigma_j u_j, ma_j = v_j for every
//  kept singular value, replacing what matrix m held (hafl_fold_flexlora.c).
struct hafl_lowrank_t;
int hafl_fold_merged_from_svd(hafl_fold_t *self, uint32_t m, const struct hafl_lowrank_t *svd);

//  Commit next and the merged terms into global (same layout). Cannot fail; bumps
//  global->merged_epoch once when any matrix's terms were replaced.
void hafl_fold_commit(hafl_fold_t *self, hafl_adapter_t *global);

#endif
