/*  hafl_llama_task: the real task (model/kind = llama): a pre-trained llama2.c model with LoRA
    adapters and a classification head, fine-tuned on 20 Newsgroups (data/dataset = 20news).

    Built once per process: the checkpoint is memory-mapped and shared read-only by every
    trainer; the corpus is cleaned and tokenised once (or read from its cache); the training
    documents (optionally a seeded subset, data/train_limit) are split across clients (iid or
    Dirichlet label skew, seeded); the test documents (data/test_limit) are the held-out set.
    Each client's trainer is a hafl_lora_trainer_t running single-threaded BLAS, so results
    are bit-identical in every mode. The base digest covers the checkpoint bytes, the tokenised
    corpus, the split settings and the adapter layout.
*/
#ifndef HAFL_LLAMA_TASK_H
#define HAFL_LLAMA_TASK_H

#include "hafl_task.h"

hafl_task_t *hafl_llama_task_new (const hafl_topology_t *topology, char *err, size_t errlen);

#endif
