/*  hafl_strategy: the strategy table, upload validation and the aggregation driver. The
    strategies themselves are in hafl_fold.c (adaptive, zeropad, zeropad-norm, fedavg),
    hafl_fold_flora.c and hafl_fold_flexlora.c; see hafl_strategy.h for the definitions.

    A strategy object holds only its name, layout and seed: every piece of state a strategy
    needs from round to round lives in the global adapter, which is what makes a swap at a
    round boundary equal to having run the next strategy from there.
*/
#include "hafl_strategy.h"
#include "hafl_fold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_FACTORS, S_FLORA, S_FLEXLORA } s_family_t;

typedef struct {
    const char *name;
    s_family_t family;
    hafl_fold_rule_t rule; //  for S_FACTORS
} s_entry_t;

static const s_entry_t s_table[] = {
    {"adaptive", S_FACTORS, HAFL_FOLD_ADAPTIVE},         {"zeropad", S_FACTORS, HAFL_FOLD_ZEROPAD},
    {"zeropad-norm", S_FACTORS, HAFL_FOLD_ZEROPAD_NORM}, {"fedavg", S_FACTORS, HAFL_FOLD_FEDAVG},
    {"flexlora", S_FLEXLORA, HAFL_FOLD_FEDAVG},          {"flora", S_FLORA, HAFL_FOLD_FEDAVG},
};
#define S_ENTRIES (sizeof s_table / sizeof s_table[0])

struct hafl_strategy_t {
    const s_entry_t *entry;
    hafl_layout_t layout;
    uint64_t seed;
};

static const s_entry_t *s_lookup(const char *name)
{
    for (size_t e = 0; name && e < S_ENTRIES; e++)
        if (strcmp(s_table[e].name, name) == 0)
            return &s_table[e];
    return NULL;
}

int hafl_strategy_known(const char *name)
{
    return s_lookup(name) != NULL;
}

hafl_strategy_t *hafl_strategy_new(const char *name, const hafl_layout_t *layout, uint64_t seed,
                                   char *err, size_t errlen)
{
    const s_entry_t *entry = s_lookup(name);
    if (!entry) {
        snprintf(err, errlen,
                 "unknown aggregation strategy '%s' (known: adaptive, zeropad, zeropad-norm, "
                 "fedavg, flexlora, flora)",
                 name ? name : "(null)");
        return NULL;
    }
    if (layout->rank == 0 || !isfinite(layout->scale) || layout->scale <= 0.0f) {
        snprintf(err, errlen, "%s: layout needs rank >= 1 and a positive finite scale", name);
        return NULL;
    }
    for (uint32_t m = 0; m < layout->n_matrices; m++)
        if (layout->matrices[m].d_out == 0 || layout->matrices[m].d_in == 0) {
            snprintf(err, errlen, "%s: matrix %s has a zero dimension", name,
                     layout->matrices[m].name);
            return NULL;
        }
    hafl_strategy_t *self = calloc(1, sizeof(hafl_strategy_t));
    if (!self || hafl_layout_copy(&self->layout, layout)) {
        free(self);
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    self->entry = entry;
    self->seed = seed;
    return self;
}

void hafl_strategy_destroy(hafl_strategy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_layout_clear(&(*self_p)->layout);
    free(*self_p);
    *self_p = NULL;
}

const char *hafl_strategy_name(const hafl_strategy_t *self)
{
    return self->entry->name;
}

static int s_finite(const float *x, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

//  Check one upload against the layout: shape, sample count, and that every value the
//  strategies read (trained factors, their scores, the head) is finite.
static int s_check_upload(const hafl_strategy_t *self, const hafl_upload_t *up, char *err,
                          size_t errlen)
{
    const char *name = self->entry->name;
    const hafl_layout_t *L = &self->layout;
    char why[160];
    if (!up->adapter || !up->trained) {
        snprintf(err, errlen, "%s: client %u: upload without adapter or trained mask", name,
                 up->client_index);
        return -1;
    }
    if (up->n_samples == 0) {
        snprintf(err, errlen, "%s: client %u: upload reports zero samples", name, up->client_index);
        return -1;
    }
    if (hafl_fold_same_layout(&up->adapter->layout, L, why, sizeof why)) {
        snprintf(err, errlen, "%s: client %u: %s", name, up->client_index, why);
        return -1;
    }
    if (!s_finite(up->adapter->head, (size_t)L->head_rows * L->head_cols)) {
        snprintf(err, errlen, "%s: client %u: non-finite value in the head", name,
                 up->client_index);
        return -1;
    }
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < L->rank; k++) {
            if (!up->trained[(size_t)m * L->rank + k])
                continue;
            if (!s_finite(hafl_adapter_b(up->adapter, m, k), L->matrices[m].d_out) ||
                !s_finite(hafl_adapter_a(up->adapter, m, k), L->matrices[m].d_in) ||
                !isfinite(up->adapter->score[(size_t)m * L->rank + k])) {
                snprintf(err, errlen, "%s: client %u: non-finite value in %s component %u", name,
                         up->client_index, L->matrices[m].name, k);
                return -1;
            }
        }
    return 0;
}

int hafl_strategy_aggregate(hafl_strategy_t *self, hafl_adapter_t *global, uint32_t round,
                            const hafl_upload_t *uploads, size_t n, char *err, size_t errlen)
{
    const char *name = self->entry->name;
    char why[160];
    if (hafl_fold_same_layout(&global->layout, &self->layout, why, sizeof why)) {
        snprintf(err, errlen, "%s: global adapter: %s", name, why);
        return -1;
    }
    if (n == 0 || !uploads) {
        snprintf(err, errlen, "%s: round %u: no uploads to aggregate", name, round);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && uploads[i].client_index <= uploads[i - 1].client_index) {
            snprintf(err, errlen,
                     "%s: round %u: uploads not in strictly ascending client order "
                     "(client %u after %u)",
                     name, round, uploads[i].client_index, uploads[i - 1].client_index);
            return -1;
        }
        if (s_check_upload(self, &uploads[i], err, errlen))
            return -1;
    }
    hafl_fold_t *fold = hafl_fold_new(global, uploads, n, self->seed, round);
    if (!fold) {
        snprintf(err, errlen, "%s: round %u: out of memory", name, round);
        return -1;
    }
    int rc = self->entry->family == S_FACTORS
                 ? hafl_fold_factors(fold, self->entry->rule, err, errlen)
             : self->entry->family == S_FLORA ? hafl_fold_flora(fold, err, errlen)
                                              : hafl_fold_flexlora(fold, err, errlen);
    if (rc == 0) {
        hafl_fold_head_scores(fold);
        hafl_fold_commit(fold, global);
    }
    hafl_fold_destroy(&fold);
    return rc;
}

int hafl_strategy_client_view(hafl_strategy_t *self, const hafl_adapter_t *global, uint32_t client,
                              uint32_t rank_budget, hafl_adapter_t *view, char *err, size_t errlen)
{
    const char *name = self->entry->name;
    char why[160];
    if (hafl_fold_same_layout(&global->layout, &self->layout, why, sizeof why) ||
        hafl_fold_same_layout(&view->layout, &self->layout, why, sizeof why)) {
        snprintf(err, errlen, "%s: view for client %u: %s", name, client, why);
        return -1;
    }
    if (view == global) {
        snprintf(err, errlen, "%s: view for client %u: the view must not be the global adapter",
                 name, client);
        return -1;
    }
    if (self->entry->family == S_FLEXLORA) {
        if (hafl_fold_flexlora_view(global, rank_budget, view, why, sizeof why)) {
            snprintf(err, errlen, "%s: view for client %u: %s", name, client, why);
            return -1;
        }
        return 0;
    }
    if (hafl_adapter_copy_from(view, global)) {
        snprintf(err, errlen, "%s: view for client %u: out of memory", name, client);
        return -1;
    }
    return 0;
}
