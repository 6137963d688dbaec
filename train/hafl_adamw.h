/*  hafl_adamw: one AdamW update over a run of parameters (PyTorch's AdamW semantics).

    With step t >= 1 (counted from the last optimiser reset):
        m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
        p -= lr * (m / (1 - b1^t)) / (sqrt (v / (1 - b2^t)) + eps) + lr * wd * p_old
    betas 0.9 / 0.999, eps 1e-8; the decay is decoupled (applied to the old value, not to g).
*/
#ifndef HAFL_ADAMW_H
#define HAFL_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#define HAFL_ADAMW_BETA1 0.9f
#define HAFL_ADAMW_BETA2 0.999f
#define HAFL_ADAMW_EPS   1e-8f

//  param [n], grad [n], m [n], v [n] (moments, updated), t >= 1, lr, wd
void hafl_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, uint64_t t,
                       float lr, float wd);

#endif
