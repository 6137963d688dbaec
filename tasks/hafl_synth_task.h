/*  hafl_synth_task: the synthetic task (model/kind = synthetic), a small real model for fast
    end-to-end tests of the bus. A frozen, seeded random linear map W0 (dim x dim) is adapted
    with rank-R LoRA; a head maps its output to `classes` logits. Labels come from a hidden
    teacher that differs from W0 by a low-rank perturbation, so a LoRA update can fit it.
    Data is seeded and split across clients by the topology's split rule.

    Model, for one example x [D] (D = model/dim, C = model/classes, R = model/rank):
        z = (W0 + sum_j mb_j ma_j^T) x          frozen base plus merged terms   [D]
        t_k = a_k . x                           for every component in the model [R]
        h = z + scale * sum_k b_k t_k                                            [D]
        logits = head [h; 1]                                                     [C]
        loss = -log softmax (logits)[y]
    Teacher: y = argmax T (W0 + U V^T) x with T [C][D], U [D][Rt], V [D][Rt], Rt = max(1, R/2).

    hafl_synth_task_new returns the task behind the generic interface of hafl_task.h. The
    hafl_synth_task_t object underneath is also available directly (build/free/loss_grad) for
    tests that need the model's gradients, which the generic interface does not expose.
*/
#ifndef HAFL_SYNTH_TASK_H
#define HAFL_SYNTH_TASK_H

#include "hafl_task.h"

typedef struct hafl_synth_task_t hafl_synth_task_t;

//  The synthetic task behind the generic interface; NULL with a reason in err.
hafl_task_t *hafl_synth_task_new(const hafl_topology_t *topology, char *err, size_t errlen);

//  The bare synthetic model and data (what hafl_synth_task_new wraps). Caller owns the result.
hafl_synth_task_t *hafl_synth_task_build(const hafl_topology_t *topology, char *err, size_t errlen);
void hafl_synth_task_free(hafl_synth_task_t **self_p);

//  Mean loss over the first n training examples of `client` (n <= its shard size) for an
//  adapter whose components have the given roles [R] (NULL: all trainable), and, when grad is
//  not NULL, the gradients of that mean loss: grad's bt/a rows of trainable components and its
//  head are overwritten (other components zeroed). Merged terms come from adapter. Returns 0,
//  or -1 with a reason in err when shapes or arguments do not match.
int hafl_synth_task_loss_grad(const hafl_synth_task_t *self, const hafl_adapter_t *adapter,
                              const uint8_t *roles, uint32_t client, uint32_t n, double *loss,
                              hafl_adapter_t *grad, char *err, size_t errlen);

#endif
