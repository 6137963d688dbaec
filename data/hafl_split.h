/*  hafl_split: partitions of a labelled example set across federated clients, seeded.

    Examples are 0..n-1 with labels[n] < classes. Every draw comes from the stream
    hafl_rng_seed (seed, HAFL_STREAM_SPLIT, index): index 0 for the partition itself, 1 and 2 for
    the training and test subsets (hafl_split_subset), so the same seed gives the same split in
    every process and mode.

    iid         shuffle 0..n-1, then cut it into consecutive shards; the first n % K clients get
                one example more (sizes differ by at most one).
    dirichlet   label skew: for each class c in order, shuffle its examples, draw proportions
                p ~ Dir(alpha) over the K clients (K Gamma(alpha) draws, normalised; all zero,
                which tiny alpha can underflow to, gives the whole class to one uniformly drawn
                client), and give client k the slice [floor(n_c * P_{k-1}), floor(n_c * P_k)) of
                the shuffled class, P the running sum (the last cut is n_c). Smaller alpha, more
                skew. Then every client left with no example takes one: while some client is
                empty, the client holding the most examples (lowest id on ties) gives up the last
                example it was dealt to the lowest-numbered empty client.
    Both need n >= K so that every client gets at least one example.

    A client's indices are returned in ascending order; batch order is the trainer's business.
    Its class histogram ([classes] counts) is kept for the log.

    Ownership: constructors return a split the caller owns; destroy frees and nulls the pointer.
    Returned arrays live as long as the split.
*/
#ifndef HAFL_SPLIT_H
#define HAFL_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#define HAFL_SPLIT_MAX_CLIENTS 100000

typedef struct hafl_split_t hafl_split_t;

//  NULL with a one-line reason in err (n < clients, a label >= classes, bad alpha, no memory).
hafl_split_t *hafl_split_iid(const uint32_t *labels, uint32_t n, uint32_t classes, uint32_t clients,
                             uint64_t seed, char *err, size_t errlen);
hafl_split_t *hafl_split_dirichlet(const uint32_t *labels, uint32_t n, uint32_t classes,
                                   uint32_t clients, double alpha, uint64_t seed, char *err,
                                   size_t errlen);
void hafl_split_destroy(hafl_split_t **self_p);

uint32_t hafl_split_clients(const hafl_split_t *self);
uint32_t hafl_split_classes(const hafl_split_t *self);
//  Examples held by client (< clients), at least 1.
uint32_t hafl_split_count(const hafl_split_t *self, uint32_t client);
//  [count] ascending example indices of client.
const uint32_t *hafl_split_indices(const hafl_split_t *self, uint32_t client);
//  [classes] examples of each class held by client.
const uint32_t *hafl_split_histogram(const hafl_split_t *self, uint32_t client);
//  One line for the log: "client 3: 1131 examples, classes [57 60 ...]" (truncated to textlen).
void hafl_split_describe(const hafl_split_t *self, uint32_t client, char *text, size_t textlen);

//  A deterministic subset for data/train_limit and data/test_limit: the first `limit` entries
//  of a seeded shuffle of 0..n-1 (stream index 1 + part: 1 for train, 2 for test), sorted
//  ascending, so about each class's share of the whole. limit == 0 or limit >= n gives all of
//  0..n-1. Returns a new array of *count indices (caller frees) or NULL on no memory.
uint32_t *hafl_split_subset(uint32_t n, uint32_t limit, uint64_t seed, uint32_t part,
                            uint32_t *count);

#endif
