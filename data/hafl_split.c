/*  hafl_split: IID and Dirichlet label-skew partitions (see hafl_split.h).

    Both partitions first decide an owner per example while remembering the order in which
    examples were dealt (needed by the "take the donor's last dealt example" rule); the
    per-client ascending lists and histograms are then derived from owner[] in one pass.
*/
#include "hafl_split.h"
#include "hafl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hafl_split_t {
    uint32_t clients;    //  K
    uint32_t classes;    //  C
    uint32_t *offsets;   //  [K + 1] client k owns indices[offsets[k] .. offsets[k+1])
    uint32_t *indices;   //  [n] ascending within each client
    uint32_t *histogram; //  [K][C]
};

//  Validates the common arguments; 0 or -1 with a reason.
static int s_check(const uint32_t *labels, uint32_t n, uint32_t classes, uint32_t clients,
                   char *err, size_t errlen)
{
    if (clients == 0 || clients > HAFL_SPLIT_MAX_CLIENTS) {
        snprintf(err, errlen, "split: %u clients, want 1..%u", clients, HAFL_SPLIT_MAX_CLIENTS);
        return -1;
    }
    if (n < clients) {
        snprintf(err, errlen, "split: %u examples cannot give each of %u clients one", n, clients);
        return -1;
    }
    if (classes == 0) {
        snprintf(err, errlen, "split: no classes");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (labels[i] >= classes) {
            snprintf(err, errlen, "split: example %u has label %u, want < %u", i, labels[i],
                     classes);
            return -1;
        }
    return 0;
}

//  Builds the split from owner[n]; NULL on no memory.
static hafl_split_t *s_assemble(const uint32_t *labels, uint32_t n, uint32_t classes,
                                uint32_t clients, const uint32_t *owner)
{
    hafl_split_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->clients = clients;
    self->classes = classes;
    self->offsets = calloc((size_t)clients + 1, sizeof *self->offsets);
    self->indices = calloc(n, sizeof *self->indices);
    self->histogram = calloc((size_t)clients * classes, sizeof *self->histogram);
    if (!self->offsets || !self->indices || !self->histogram) {
        hafl_split_destroy(&self);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        self->offsets[owner[i] + 1]++;
        self->histogram[(size_t)owner[i] * classes + labels[i]]++;
    }
    for (uint32_t k = 0; k < clients; k++)
        self->offsets[k + 1] += self->offsets[k];
    //  Fill in ascending example order, using a moving cursor per client.
    uint32_t *cursor = malloc((size_t)clients * sizeof *cursor);
    if (!cursor) {
        hafl_split_destroy(&self);
        return NULL;
    }
    memcpy(cursor, self->offsets, (size_t)clients * sizeof *cursor);
    for (uint32_t i = 0; i < n; i++)
        self->indices[cursor[owner[i]]++] = i;
    free(cursor);
    return self;
}

hafl_split_t *hafl_split_iid(const uint32_t *labels, uint32_t n, uint32_t classes, uint32_t clients,
                             uint64_t seed, char *err, size_t errlen)
{
    if (s_check(labels, n, classes, clients, err, errlen))
        return NULL;
    uint32_t *order = malloc((size_t)n * sizeof *order);
    uint32_t *owner = malloc((size_t)n * sizeof *owner);
    hafl_split_t *self = NULL;
    if (order && owner) {
        for (uint32_t i = 0; i < n; i++)
            order[i] = i;
        hafl_rng_t rng;
        hafl_rng_seed(&rng, seed, HAFL_STREAM_SPLIT, 0);
        hafl_rng_shuffle_u32(&rng, order, n);
        //  Client k takes base (+1 for the first n % K clients) consecutive shuffled examples.
        uint32_t base = n / clients, extra = n % clients, pos = 0;
        for (uint32_t k = 0; k < clients; k++) {
            uint32_t size = base + (k < extra ? 1 : 0);
            for (uint32_t j = 0; j < size; j++)
                owner[order[pos++]] = k;
        }
        self = s_assemble(labels, n, classes, clients, owner);
    }
    if (!self)
        snprintf(err, errlen, "split: out of memory for %u examples", n);
    free(order);
    free(owner);
    return self;
}

//  Deals one class's shuffled examples (members[n_c]) by Dirichlet proportions; dealt[] and
//  *n_dealt record the deal order.
static void s_deal_class(hafl_rng_t *rng, uint32_t *members, uint32_t n_c, uint32_t clients,
                         double alpha, double *weights, uint32_t *owner, uint32_t *dealt,
                         uint32_t *n_dealt)
{
    hafl_rng_shuffle_u32(rng, members, n_c);
    double sum = 0.0;
    for (uint32_t k = 0; k < clients; k++) {
        weights[k] = hafl_rng_gamma(rng, alpha);
        sum += weights[k];
    }
    if (!(sum > 0.0) || !isfinite(sum)) {
        //  Every draw underflowed: the class goes to one client.
        uint32_t lucky = (uint32_t)hafl_rng_below(rng, clients);
        for (uint32_t k = 0; k < clients; k++)
            weights[k] = k == lucky;
        sum = 1.0;
    }
    double running = 0.0;
    uint32_t start = 0;
    for (uint32_t k = 0; k < clients; k++) {
        running += weights[k];
        uint32_t end = k + 1 == clients ? n_c : (uint32_t)floor((double)n_c * (running / sum));
        if (end > n_c)
            end = n_c;
        if (end < start)
            end = start;
        for (uint32_t j = start; j < end; j++) {
            owner[members[j]] = k;
            dealt[(*n_dealt)++] = members[j];
        }
        start = end;
    }
}

hafl_split_t *hafl_split_dirichlet(const uint32_t *labels, uint32_t n, uint32_t classes,
                                   uint32_t clients, double alpha, uint64_t seed, char *err,
                                   size_t errlen)
{
    if (s_check(labels, n, classes, clients, err, errlen))
        return NULL;
    if (!(alpha > 0.0) || !isfinite(alpha)) {
        snprintf(err, errlen, "split: Dirichlet alpha %g, want a finite value > 0", alpha);
        return NULL;
    }
    uint32_t *members = malloc((size_t)n * sizeof *members);
    uint32_t *owner = malloc((size_t)n * sizeof *owner);
    uint32_t *dealt = malloc((size_t)n * sizeof *dealt);
    uint32_t *sizes = calloc(clients, sizeof *sizes);
    double *weights = malloc((size_t)clients * sizeof *weights);
    hafl_split_t *self = NULL;
    if (members && owner && dealt && sizes && weights) {
        hafl_rng_t rng;
        hafl_rng_seed(&rng, seed, HAFL_STREAM_SPLIT, 0);
        uint32_t n_dealt = 0;
        for (uint32_t c = 0; c < classes; c++) {
            uint32_t n_c = 0;
            for (uint32_t i = 0; i < n; i++)
                if (labels[i] == c)
                    members[n_c++] = i;
            if (n_c > 0)
                s_deal_class(&rng, members, n_c, clients, alpha, weights, owner, dealt, &n_dealt);
        }
        for (uint32_t i = 0; i < n; i++)
            sizes[owner[i]]++;
        //  Every client gets at least one example: the largest gives its last dealt one.
        for (uint32_t empty = 0; empty < clients; empty++) {
            if (sizes[empty] > 0)
                continue;
            uint32_t donor = 0;
            for (uint32_t k = 1; k < clients; k++)
                if (sizes[k] > sizes[donor])
                    donor = k;
            uint32_t pos = n_dealt;
            while (pos > 0 && owner[dealt[pos - 1]] != donor)
                pos--;
            //  n >= K guarantees the donor holds at least two examples, so pos > 0.
            owner[dealt[pos - 1]] = empty;
            sizes[donor]--;
            sizes[empty]++;
        }
        self = s_assemble(labels, n, classes, clients, owner);
    }
    if (!self)
        snprintf(err, errlen, "split: out of memory for %u examples", n);
    free(members);
    free(owner);
    free(dealt);
    free(sizes);
    free(weights);
    return self;
}

void hafl_split_destroy(hafl_split_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_split_t *self = *self_p;
    free(self->offsets);
    free(self->indices);
    free(self->histogram);
    free(self);
    *self_p = NULL;
}

uint32_t hafl_split_clients(const hafl_split_t *self)
{
    return self->clients;
}

uint32_t hafl_split_classes(const hafl_split_t *self)
{
    return self->classes;
}

uint32_t hafl_split_count(const hafl_split_t *self, uint32_t client)
{
    return client < self->clients ? self->offsets[client + 1] - self->offsets[client] : 0;
}

const uint32_t *hafl_split_indices(const hafl_split_t *self, uint32_t client)
{
    return client < self->clients ? self->indices + self->offsets[client] : NULL;
}

const uint32_t *hafl_split_histogram(const hafl_split_t *self, uint32_t client)
{
    return client < self->clients ? self->histogram + (size_t)client * self->classes : NULL;
}

void hafl_split_describe(const hafl_split_t *self, uint32_t client, char *text, size_t textlen)
{
    if (textlen == 0)
        return;
    text[0] = '\0';
    if (client >= self->clients)
        return;
    int wrote = snprintf(text, textlen, "client %u: %u examples, classes [", client,
                         hafl_split_count(self, client));
    size_t used = wrote > 0 ? (size_t)wrote : 0;
    const uint32_t *hist = hafl_split_histogram(self, client);
    for (uint32_t c = 0; c < self->classes && used < textlen; c++) {
        wrote = snprintf(text + used, textlen - used, c ? " %u" : "%u", hist[c]);
        used += wrote > 0 ? (size_t)wrote : 0;
    }
    if (used < textlen)
        snprintf(text + used, textlen - used, "]");
}

static int s_compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint32_t *hafl_split_subset(uint32_t n, uint32_t limit, uint64_t seed, uint32_t part,
                            uint32_t *count)
{
    uint32_t *all = malloc((size_t)(n ? n : 1) * sizeof *all);
    if (!all)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        all[i] = i;
    if (limit == 0 || limit >= n) {
        *count = n;
        return all;
    }
    hafl_rng_t rng;
    hafl_rng_seed(&rng, seed, HAFL_STREAM_SPLIT, 1 + (uint64_t)part);
    hafl_rng_shuffle_u32(&rng, all, n);
    qsort(all, limit, sizeof *all, s_compare_u32);
    *count = limit;
    return all;
}
