/*  hafl_targets: which weight matrices of a llama model carry LoRA adapters, and how adapter
    matrix ids map to (layer, weight).

    A target list is a comma-separated subset of wq,wk,wv,wo,w1,w2,w3 (default wq,wk,wv,wo).
    Adapter matrices are numbered layer-major, in the fixed weight order wq wk wv wo w1 w2 w3:
    m = layer * n_targets + position of the weight among the selected ones. Matrix m is named
    "L<layer>.<weight>" and has the weight's shape [d_out][d_in] (wq: q_dim x dim; wo: dim x
    q_dim; wk, wv: kv_dim x dim; w1, w3: hidden x dim; w2: dim x hidden).
*/
#ifndef HAFL_TARGETS_H
#define HAFL_TARGETS_H

#include "hafl_adapter.h"
#include "hafl_checkpoint.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    HAFL_WEIGHT_WQ = 0,
    HAFL_WEIGHT_WK,
    HAFL_WEIGHT_WV,
    HAFL_WEIGHT_WO,
    HAFL_WEIGHT_W1,
    HAFL_WEIGHT_W2,
    HAFL_WEIGHT_W3,
    HAFL_WEIGHT_COUNT
} hafl_weight_t;

typedef struct {
    uint32_t mask;                          //  bit w set when weight w is adapted
    uint32_t per_layer;                     //  number of selected weights
    hafl_weight_t order[HAFL_WEIGHT_COUNT]; //  the selected weights in fixed order
    int32_t slot[HAFL_WEIGHT_COUNT];        //  position of weight w in order, -1 if not adapted
} hafl_targets_t;

//  Parse "wq,wk,..." (no duplicates, at least one). 0, or -1 with a reason naming the bad item.
int hafl_targets_parse (const char *list, hafl_targets_t *targets, char *err, size_t errlen);
const char *hafl_weight_name (hafl_weight_t weight);
//  The weight's block tensor in GGUF (llama.cpp's names): blk.N.<name>.weight, with attn_q,
//  attn_k, attn_v, attn_output, ffn_gate, ffn_down, ffn_up for wq .. w3; "?" out of range.
const char *hafl_weight_gguf_name (hafl_weight_t weight);
//  Shape [d_out][d_in] of weight w in this model.
void hafl_weight_shape (const hafl_llama_config_t *config, hafl_weight_t weight, uint32_t *d_out,
                        uint32_t *d_in);
//  Adapter matrix id of (layer, weight), or -1 when that weight is not adapted.
static inline int32_t
hafl_targets_matrix (const hafl_targets_t *targets, int layer, hafl_weight_t weight)
{
    int32_t slot = targets->slot[weight];
    return slot < 0 ? -1 : layer * (int32_t) targets->per_layer + slot;
}
//  Build the adapter layout for this model: matrices as above, rank, scale = alpha / rank,
//  head [classes][dim + 1]. 0, or -1 on no memory (layout->matrices is allocated; free with
//  hafl_layout_clear).
int hafl_targets_layout (const hafl_targets_t *targets, const hafl_llama_config_t *config,
                         uint32_t rank, float alpha, uint32_t classes, hafl_layout_t *layout);

#endif
