/*  hafl_strategy: the strategy table, upload validation and the aggregation driver. The
    strategies themselves are in hafl_fold.c (adaptive, zeropad, zeropad-norm, fedavg),
    hafl_fold_flora.c, hafl_fold_flexlora.c and hafl_fold_robust.c (median, trimmed-mean);
    the optional clipping that runs before any of them is hafl_clip.c. See hafl_strategy.h for
    the definitions.

    A strategy object holds only its name, layout, seed and options (trim, clip_norm, fixed for
    the run): every piece of state a strategy needs from round to round lives in the global
    adapter, which is what makes a swap at a round boundary equal to having run the next
    strategy from there.
*/
#include "hafl_strategy.h"
#include "hafl_clip.h"
#include "hafl_fold.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_FACTORS, S_FLORA, S_FLEXLORA, S_ROBUST } s_family_t;

typedef struct {
    const char *name;
    s_family_t family;
    hafl_fold_rule_t rule;     //  for S_FACTORS
    hafl_fold_robust_t robust; //  for S_ROBUST
} s_entry_t;

static const s_entry_t s_table[] = {
    {"adaptive", S_FACTORS, HAFL_FOLD_ADAPTIVE, HAFL_FOLD_MEDIAN},
    {"zeropad", S_FACTORS, HAFL_FOLD_ZEROPAD, HAFL_FOLD_MEDIAN},
    {"zeropad-norm", S_FACTORS, HAFL_FOLD_ZEROPAD_NORM, HAFL_FOLD_MEDIAN},
    {"fedavg", S_FACTORS, HAFL_FOLD_FEDAVG, HAFL_FOLD_MEDIAN},
    {"flexlora", S_FLEXLORA, HAFL_FOLD_FEDAVG, HAFL_FOLD_MEDIAN},
    {"flora", S_FLORA, HAFL_FOLD_FEDAVG, HAFL_FOLD_MEDIAN},
    {"median", S_ROBUST, HAFL_FOLD_ADAPTIVE, HAFL_FOLD_MEDIAN},
    {"trimmed-mean", S_ROBUST, HAFL_FOLD_ADAPTIVE, HAFL_FOLD_TRIMMED_MEAN},
};
#define S_ENTRIES (sizeof s_table / sizeof s_table[0])

struct hafl_strategy_t {
    const s_entry_t *entry;
    hafl_layout_t layout;
    uint64_t seed;
    hafl_strategy_options_t options;
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
        char known[256] = "";
        size_t used = 0;
        for (size_t e = 0; e < S_ENTRIES && used < sizeof known; e++)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", e ? ", " : "",
                                     s_table[e].name);
        snprintf(err, errlen, "unknown aggregation strategy '%s' (known: %s)",
                 name ? name : "(null)", known);
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
    self->options.trim = HAFL_STRATEGY_TRIM_DEFAULT;
    self->options.clip_norm = 0.0f;
    return self;
}

int hafl_strategy_set_options(hafl_strategy_t *self, const hafl_strategy_options_t *options,
                              char *err, size_t errlen)
{
    const char *name = self->entry->name;
    if (!(options->trim >= 0.0f && options->trim < 0.5f)) {
        snprintf(err, errlen, "%s: trim %g is outside [0, 0.5)", name, (double)options->trim);
        return -1;
    }
    if (!(options->clip_norm >= 0.0f) || !isfinite(options->clip_norm)) {
        snprintf(err, errlen, "%s: clip_norm %g is not a finite number >= 0", name,
                 (double)options->clip_norm);
        return -1;
    }
    self->options = *options;
    return 0;
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

//  The round's uploads bounded by clip_norm against what each client started from: the
//  strategy's client view of global for its budget. That view is global itself for every
//  strategy but flexlora, whose view depends on the budget only, so one view per budget is
//  computed. NULL with err on no memory or a failed view.
static hafl_clip_t *s_clip(hafl_strategy_t *self, const hafl_adapter_t *global,
                           const hafl_upload_t *uploads, size_t n, char *err, size_t errlen)
{
    uint32_t R = self->layout.rank;
    const hafl_adapter_t **given = calloc(n + 1, sizeof *given);
    hafl_adapter_t **views = calloc((size_t)R + 1, sizeof *views); //  [budget 0..R]
    hafl_clip_t *clip = NULL;
    bool failed = !given || !views, nomem = failed;
    for (size_t i = 0; !failed && i < n; i++) {
        if (self->entry->family != S_FLEXLORA) {
            given[i] = global;
            continue;
        }
        uint32_t budget = uploads[i].rank_budget < R ? uploads[i].rank_budget : R;
        if (!views[budget]) {
            views[budget] = hafl_adapter_new(&self->layout);
            nomem = failed = !views[budget];
            if (!failed)
                failed = hafl_strategy_client_view(self, global, uploads[i].client_index, budget,
                                                   views[budget], err, errlen) != 0;
        }
        given[i] = views[budget];
    }
    if (!failed) {
        clip = hafl_clip_new(uploads, n, given, self->options.clip_norm);
        nomem = !clip;
    }
    if (nomem)
        snprintf(err, errlen, "%s: clip_norm: out of memory", self->entry->name);
    for (uint32_t r = 0; views && r <= R; r++)
        hafl_adapter_destroy(&views[r]);
    free(views);
    free(given);
    return clip;
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
    hafl_clip_t *clip = NULL;
    if (self->options.clip_norm > 0.0f) {
        clip = s_clip(self, global, uploads, n, err, errlen);
        if (!clip)
            return -1;
        uploads = clip->uploads;
    }
    hafl_fold_t *fold = hafl_fold_new(global, uploads, n, self->seed, round);
    if (!fold) {
        hafl_clip_destroy(&clip);
        snprintf(err, errlen, "%s: round %u: out of memory", name, round);
        return -1;
    }
    int rc;
    switch (self->entry->family) {
    case S_FACTORS:
        rc = hafl_fold_factors(fold, self->entry->rule, err, errlen);
        break;
    case S_FLORA:
        rc = hafl_fold_flora(fold, err, errlen);
        break;
    case S_FLEXLORA:
        rc = hafl_fold_flexlora(fold, err, errlen);
        break;
    default:
        rc = hafl_fold_robust(fold, self->entry->robust, self->options.trim, err, errlen);
        break;
    }
    if (rc == 0) {
        if (self->entry->family != S_ROBUST)
            hafl_fold_head_scores(fold);
        hafl_fold_commit(fold, global);
    }
    hafl_fold_destroy(&fold);
    hafl_clip_destroy(&clip);
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
