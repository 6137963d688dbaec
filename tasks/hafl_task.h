/*  hafl_task: the model-and-data side of a federation, behind one interface for the actors.

    A task is built once per process from a validated topology. It owns the frozen base model
    (memory-mapped and shared read-only by every in-process client), the data and its split
    across clients, and the adapter layout. The actors never see which model is behind it:
    model/kind "synthetic" is a small real model (a frozen seeded linear map with a LoRA adapter
    and a head, on seeded synthetic data) used for fast protocol tests; "llama" is a llama2.c
    transformer on a real dataset.

    Threads: after hafl_task_new returns, a task is immutable; any thread may call the const
    functions and hafl_task_evaluate concurrently. A trainer belongs to the one thread that
    created it. The task must outlive its trainers.

    Ownership: _new returns objects the caller owns; _destroy frees and nulls the pointer.
*/
#ifndef HAFL_TASK_H
#define HAFL_TASK_H

#include "hafl_adapter.h"
#include "hafl_topology.h"

#include <stdint.h>

typedef struct hafl_task_t hafl_task_t;
typedef struct hafl_trainer_t hafl_trainer_t;

typedef struct {
    uint32_t local_epochs;   //  used when local_steps == 0
    uint32_t local_steps;
    uint32_t batch;
    float lr;
    float weight_decay;
    uint64_t seed;           //  batch-order seed for this round
    bool fresh_optimizer;    //  reset AdamW moments before training
} hafl_train_opts_t;

typedef struct {
    float loss;              //  mean training loss over the last epoch (or all steps)
    uint32_t steps;          //  optimiser steps taken
    uint64_t examples;       //  examples processed
} hafl_train_stats_t;

typedef struct {
    float accuracy;          //  fraction correct, 0..1
    float loss;              //  mean cross-entropy
    uint64_t examples;
} hafl_eval_stats_t;

//  What a task implementation provides. Every function returns 0 on success, -1 on failure
//  with a one-line reason in err.
typedef struct {
    const char *kind;
    void (*destroy) (void *impl);
    const hafl_layout_t *(*layout) (const void *impl);
    void (*base_digest) (const void *impl, uint8_t digest[32]);
    uint32_t (*clients) (const void *impl);
    uint64_t (*client_samples) (const void *impl, uint32_t client);
    hafl_trainer_t *(*trainer_new) (void *impl, uint32_t client, char *err, size_t errlen);
    int (*evaluate) (const void *impl, const hafl_adapter_t *adapter, const uint8_t *present,
                     uint32_t max_examples, hafl_eval_stats_t *stats, char *err, size_t errlen);
    //  Optional (NULL when the kind has no named documents): score on the held-out documents
    //  whose indices within the held-out part (hafl_task_evaluate_docs) are docs[0..n).
    int (*evaluate_docs) (const void *impl, const hafl_adapter_t *adapter, const uint32_t *docs,
                          uint32_t n, hafl_eval_stats_t *stats, char *err, size_t errlen);
    void (*describe) (const void *impl, char *text, size_t textlen);   //  one line for logs
    //  One line on a client's shard (size and class histogram) for the log; may be NULL.
    void (*describe_client) (const void *impl, uint32_t client, char *text, size_t textlen);
} hafl_task_ops_t;

typedef struct {
    int (*load) (void *impl, const hafl_adapter_t *received, const uint8_t *roles, char *err,
                 size_t errlen);
    int (*train) (void *impl, const hafl_train_opts_t *opts, hafl_train_stats_t *stats, char *err,
                  size_t errlen);
    const hafl_adapter_t *(*adapter) (const void *impl);
    void (*destroy) (void *impl);
    //  Cross-round state as n floats (see hafl_trainer_state_size): its size, a copy of it,
    //  and its restoration (0, or -1 with a reason when n or a value is not acceptable).
    size_t (*state_size) (const void *impl);
    void (*state_get) (const void *impl, float *out);
    int (*state_set) (void *impl, const float *in, size_t n, char *err, size_t errlen);
} hafl_trainer_ops_t;

//  Build the task the topology names (model/kind). NULL with a reason in err.
hafl_task_t *hafl_task_new (const hafl_topology_t *topology, char *err, size_t errlen);
//  Wrap an implementation (used by the kinds' constructors); takes ownership of impl.
hafl_task_t *hafl_task_wrap (const hafl_task_ops_t *ops, void *impl);
void hafl_task_destroy (hafl_task_t **self_p);
//  Wrap a trainer implementation (used by the kinds' trainer_new); takes ownership of impl.
hafl_trainer_t *hafl_trainer_wrap (const hafl_trainer_ops_t *ops, void *impl);

const char *hafl_task_kind (const hafl_task_t *self);
const hafl_layout_t *hafl_task_layout (const hafl_task_t *self);
//  Digest of everything a client must share with the server: base weights, tokenizer, data
//  preparation and layout. A joining client with another digest is refused.
void hafl_task_base_digest (const hafl_task_t *self, uint8_t digest[32]);
uint32_t hafl_task_clients (const hafl_task_t *self);
uint64_t hafl_task_client_samples (const hafl_task_t *self, uint32_t client);
void hafl_task_describe (const hafl_task_t *self, char *text, size_t textlen);
//  One line on client's shard: its size and class histogram.
void hafl_task_describe_client (const hafl_task_t *self, uint32_t client, char *text,
                                size_t textlen);

//  Score an adapter (present: [n_matrices * R] nonzero for components in the model, NULL for
//  all) on the held-out set, at most max_examples of it (0 = all). Thread-safe.
int hafl_task_evaluate (const hafl_task_t *self, const hafl_adapter_t *adapter,
                        const uint8_t *present, uint32_t max_examples, hafl_eval_stats_t *stats,
                        char *err, size_t errlen);

//  Score an adapter, every component present, on exactly the held-out documents docs[0..n):
//  indices into the held-out corpus part in its order (20 Newsgroups: by group, then numeric
//  file id; see hafl_newsgroups.h), whatever data/test_limit drew. This lets a run be scored on
//  the same documents as another tool. The list's order does not change the result (the
//  documents are scored in corpus order). With data/validation the held-out part is the training
//  part and only documents of the validation draw may be named (the rest are trained on).
//  -1 with a reason naming the first bad index (out of range, a document the task dropped, or
//  a training document outside the validation set) or when the kind has no documents.
int hafl_task_evaluate_docs (const hafl_task_t *self, const hafl_adapter_t *adapter,
                             const uint32_t *docs, uint32_t n, hafl_eval_stats_t *stats,
                             char *err, size_t errlen);

//  A trainer for one client's shard. Its local adapter starts as hafl_adapter_init(seed).
hafl_trainer_t *hafl_trainer_new (hafl_task_t *task, uint32_t client, char *err, size_t errlen);
void hafl_trainer_destroy (hafl_trainer_t **self_p);
//  Install what the server sent: roles [n_matrices * R] of HAFL_ROLE_ABSENT/FROZEN/TRAINABLE
//  (values 0/1/2). Absent components are zero and excluded from the forward pass; frozen ones
//  take part in it but get no gradient and no optimiser state; trainable ones are trained.
//  received's merged terms replace the trainer's merged base terms. Importance EMA state of
//  each entry persists across rounds (docs/METHOD.md section 2).
int hafl_trainer_load (hafl_trainer_t *self, const hafl_adapter_t *received, const uint8_t *roles,
                       char *err, size_t errlen);
//  Train the trainable components and the head; afterwards the local adapter's score[] holds
//  S_k for every trained component.
int hafl_trainer_train (hafl_trainer_t *self, const hafl_train_opts_t *opts,
                        hafl_train_stats_t *stats, char *err, size_t errlen);
//  The local adapter (factors, scores, head), valid until the next call on this trainer.
const hafl_adapter_t *hafl_trainer_adapter (const hafl_trainer_t *self);

//  The trainer's state that outlives a round, as n = hafl_trainer_state_size floats: the
//  importance EMAs Ibar and Ubar of every adapter entry (docs/METHOD.md section 2). Everything
//  else a trainer holds is replaced at each load (factors, scores, head, merged terms, roles)
//  or restarts with each round (the batch order; the AdamW moments, which the hafl server
//  always resets with ROUND.fresh_optimizer). A resumed run saves and restores a client with
//  these (actors/hafl_client_state.h). _state_set refuses another size or a value that is not
//  finite and >= 0.
size_t hafl_trainer_state_size (const hafl_trainer_t *self);
void hafl_trainer_state_get (const hafl_trainer_t *self, float *out);
int hafl_trainer_state_set (hafl_trainer_t *self, const float *in, size_t n, char *err,
                            size_t errlen);

#endif
