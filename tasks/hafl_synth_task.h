/*  hafl_synth_task: the synthetic task (model/kind = synthetic), a small real model for fast
    end-to-end tests of the bus. A frozen, seeded random linear map W0 (dim x dim) is adapted
    with rank-R LoRA; a head maps its output to `classes` logits. Labels come from a hidden
    teacher that differs from W0 by a low-rank perturbation, so a LoRA update can fit it.
    Data is seeded and split across clients by the topology's split rule.
*/
#ifndef HAFL_SYNTH_TASK_H
#define HAFL_SYNTH_TASK_H

#include "hafl_task.h"

hafl_task_t *hafl_synth_task_new (const hafl_topology_t *topology, char *err, size_t errlen);

#endif
