/*  hafl_task: dispatch from the task interface to the model kinds. See hafl_task.h. */
#include "hafl_task.h"
#include "hafl_llama_task.h"
#include "hafl_synth_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hafl_task_t {
    const hafl_task_ops_t *ops;
    void *impl;
};

struct hafl_trainer_t {
    const hafl_trainer_ops_t *ops;
    void *impl;
};

hafl_task_t *
hafl_task_new (const hafl_topology_t *topology, char *err, size_t errlen)
{
    if (strcmp (topology->model.kind, "synthetic") == 0)
        return hafl_synth_task_new (topology, err, errlen);
    if (strcmp (topology->model.kind, "llama") == 0)
        return hafl_llama_task_new (topology, err, errlen);
    snprintf (err, errlen, "%s: model/kind: unknown model kind '%s'", topology->path,
              topology->model.kind);
    return NULL;
}

hafl_task_t *
hafl_task_wrap (const hafl_task_ops_t *ops, void *impl)
{
    hafl_task_t *self = calloc (1, sizeof (hafl_task_t));
    if (!self) {
        ops->destroy (impl);
        return NULL;
    }
    self->ops = ops;
    self->impl = impl;
    return self;
}

void
hafl_task_destroy (hafl_task_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    (*self_p)->ops->destroy ((*self_p)->impl);
    free (*self_p);
    *self_p = NULL;
}

const char *
hafl_task_kind (const hafl_task_t *self)
{
    return self->ops->kind;
}

const hafl_layout_t *
hafl_task_layout (const hafl_task_t *self)
{
    return self->ops->layout (self->impl);
}

void
hafl_task_base_digest (const hafl_task_t *self, uint8_t digest[32])
{
    self->ops->base_digest (self->impl, digest);
}

uint32_t
hafl_task_clients (const hafl_task_t *self)
{
    return self->ops->clients (self->impl);
}

uint64_t
hafl_task_client_samples (const hafl_task_t *self, uint32_t client)
{
    return self->ops->client_samples (self->impl, client);
}

void
hafl_task_describe (const hafl_task_t *self, char *text, size_t textlen)
{
    self->ops->describe (self->impl, text, textlen);
}

void
hafl_task_describe_client (const hafl_task_t *self, uint32_t client, char *text, size_t textlen)
{
    if (self->ops->describe_client)
        self->ops->describe_client (self->impl, client, text, textlen);
    else
        snprintf (text, textlen, "client %u: %llu examples", client,
                  (unsigned long long) hafl_task_client_samples (self, client));
}

int
hafl_task_evaluate (const hafl_task_t *self, const hafl_adapter_t *adapter, const uint8_t *present,
                    uint32_t max_examples, hafl_eval_stats_t *stats, char *err, size_t errlen)
{
    return self->ops->evaluate (self->impl, adapter, present, max_examples, stats, err, errlen);
}

int
hafl_task_evaluate_docs (const hafl_task_t *self, const hafl_adapter_t *adapter,
                         const uint32_t *docs, uint32_t n, hafl_eval_stats_t *stats, char *err,
                         size_t errlen)
{
    if (!self->ops->evaluate_docs) {
        snprintf (err, errlen, "the %s task has no named held-out documents to choose from",
                  self->ops->kind);
        return -1;
    }
    return self->ops->evaluate_docs (self->impl, adapter, docs, n, stats, err, errlen);
}

hafl_trainer_t *
hafl_trainer_new (hafl_task_t *task, uint32_t client, char *err, size_t errlen)
{
    if (client >= hafl_task_clients (task)) {
        snprintf (err, errlen, "client %u out of range (task has %u clients)", client,
                  hafl_task_clients (task));
        return NULL;
    }
    return task->ops->trainer_new (task->impl, client, err, errlen);
}

hafl_trainer_t *
hafl_trainer_wrap (const hafl_trainer_ops_t *ops, void *impl)
{
    hafl_trainer_t *self = calloc (1, sizeof (hafl_trainer_t));
    if (!self) {
        ops->destroy (impl);
        return NULL;
    }
    self->ops = ops;
    self->impl = impl;
    return self;
}

void
hafl_trainer_destroy (hafl_trainer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    (*self_p)->ops->destroy ((*self_p)->impl);
    free (*self_p);
    *self_p = NULL;
}

int
hafl_trainer_load (hafl_trainer_t *self, const hafl_adapter_t *received, const uint8_t *roles,
                   char *err, size_t errlen)
{
    return self->ops->load (self->impl, received, roles, err, errlen);
}

int
hafl_trainer_train (hafl_trainer_t *self, const hafl_train_opts_t *opts, hafl_train_stats_t *stats,
                    char *err, size_t errlen)
{
    return self->ops->train (self->impl, opts, stats, err, errlen);
}

const hafl_adapter_t *
hafl_trainer_adapter (const hafl_trainer_t *self)
{
    return self->ops->adapter (self->impl);
}

size_t
hafl_trainer_state_size (const hafl_trainer_t *self)
{
    return self->ops->state_size (self->impl);
}

void
hafl_trainer_state_get (const hafl_trainer_t *self, float *out)
{
    self->ops->state_get (self->impl, out);
}

int
hafl_trainer_state_set (hafl_trainer_t *self, const float *in, size_t n, char *err, size_t errlen)
{
    return self->ops->state_set (self->impl, in, n, err, errlen);
}
