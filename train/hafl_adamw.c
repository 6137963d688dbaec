/*  hafl_adamw: see hafl_adamw.h. */
#include "hafl_adamw.h"

#include <math.h>

void hafl_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, uint64_t t,
                       float lr, float wd)
{
    float bc1 = 1.0f - powf(HAFL_ADAMW_BETA1, (float)t);
    float bc2 = 1.0f - powf(HAFL_ADAMW_BETA2, (float)t);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        m[i] = HAFL_ADAMW_BETA1 * m[i] + (1.0f - HAFL_ADAMW_BETA1) * g;
        v[i] = HAFL_ADAMW_BETA2 * v[i] + (1.0f - HAFL_ADAMW_BETA2) * g * g;
        float mhat = m[i] / bc1;
        float vhat = v[i] / bc2;
        param[i] -= lr * (mhat / (sqrtf(vhat) + HAFL_ADAMW_EPS) + wd * param[i]);
    }
}
