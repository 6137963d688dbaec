/*  hafl_targets: parsing target lists and building adapter layouts. See hafl_targets.h. */
#include "hafl_targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_names[HAFL_WEIGHT_COUNT] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};

static const char *s_gguf_names[HAFL_WEIGHT_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up"};

const char *
hafl_weight_name (hafl_weight_t weight)
{
    return weight < HAFL_WEIGHT_COUNT ? s_names[weight] : "?";
}

const char *
hafl_weight_gguf_name (hafl_weight_t weight)
{
    return weight < HAFL_WEIGHT_COUNT ? s_gguf_names[weight] : "?";
}

int
hafl_targets_parse (const char *list, hafl_targets_t *targets, char *err, size_t errlen)
{
    memset (targets, 0, sizeof *targets);
    const char *item = list;
    while (*item) {
        const char *end = strchr (item, ',');
        size_t len = end ? (size_t) (end - item) : strlen (item);
        int found = -1;
        for (int w = 0; w < HAFL_WEIGHT_COUNT; w++)
            if (len == 2 && strncmp (item, s_names[w], 2) == 0)
                found = w;
        if (found < 0) {
            snprintf (err, errlen, "unknown LoRA target '%.*s' (expected a subset of wq,wk,wv,wo,w1,w2,w3)",
                      (int) len, item);
            return -1;
        }
        if (targets->mask & (1u << found)) {
            snprintf (err, errlen, "LoRA target '%s' listed twice", s_names[found]);
            return -1;
        }
        targets->mask |= 1u << found;
        item += len + (end ? 1 : 0);
        if (end && !*item) {
            snprintf (err, errlen, "empty LoRA target after trailing comma");
            return -1;
        }
    }
    if (!targets->mask) {
        snprintf (err, errlen, "no LoRA targets given");
        return -1;
    }
    for (int w = 0; w < HAFL_WEIGHT_COUNT; w++) {
        targets->slot[w] = -1;
        if (targets->mask & (1u << w)) {
            targets->slot[w] = (int32_t) targets->per_layer;
            targets->order[targets->per_layer++] = (hafl_weight_t) w;
        }
    }
    return 0;
}

void
hafl_weight_shape (const hafl_llama_config_t *config, hafl_weight_t weight, uint32_t *d_out,
                   uint32_t *d_in)
{
    uint32_t dim = (uint32_t) config->dim, kv = (uint32_t) hafl_llama_kv_dim (config);
    uint32_t hidden = (uint32_t) config->hidden_dim, q = (uint32_t) hafl_llama_q_dim (config);
    switch (weight) {
    case HAFL_WEIGHT_WQ:
        *d_out = q, *d_in = dim;
        break;
    case HAFL_WEIGHT_WO:
        *d_out = dim, *d_in = q;
        break;
    case HAFL_WEIGHT_WK:
    case HAFL_WEIGHT_WV:
        *d_out = kv, *d_in = dim;
        break;
    case HAFL_WEIGHT_W1:
    case HAFL_WEIGHT_W3:
        *d_out = hidden, *d_in = dim;
        break;
    case HAFL_WEIGHT_W2:
        *d_out = dim, *d_in = hidden;
        break;
    default:
        *d_out = dim, *d_in = dim;
        break;
    }
}

int
hafl_targets_layout (const hafl_targets_t *targets, const hafl_llama_config_t *config,
                     uint32_t rank, float alpha, uint32_t classes, hafl_layout_t *layout)
{
    memset (layout, 0, sizeof *layout);
    uint32_t n = (uint32_t) config->n_layers * targets->per_layer;
    layout->matrices = calloc (n ? n : 1, sizeof (hafl_matrix_info_t));
    if (!layout->matrices)
        return -1;
    layout->n_matrices = n;
    layout->rank = rank;
    layout->scale = alpha / (float) rank;
    layout->head_rows = classes;
    layout->head_cols = (uint32_t) config->dim + 1;
    for (int l = 0; l < config->n_layers; l++)
        for (uint32_t s = 0; s < targets->per_layer; s++) {
            hafl_matrix_info_t *info = &layout->matrices[l * targets->per_layer + s];
            hafl_weight_t w = targets->order[s];
            snprintf (info->name, sizeof info->name, "L%d.%s", l, s_names[w]);
            hafl_weight_shape (config, w, &info->d_out, &info->d_in);
        }
    return 0;
}
