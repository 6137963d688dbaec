/*  hafl_importance: see hafl_importance.h. */
#include "hafl_importance.h"

#include <math.h>

void hafl_importance_update(float *ibar, float *ubar, const float *w, const float *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float sens = fabsf(w[i] * g[i]);
        ibar[i] = HAFL_IMPORTANCE_BETA1 * ibar[i] + (1.0f - HAFL_IMPORTANCE_BETA1) * sens;
        ubar[i] = HAFL_IMPORTANCE_BETA2 * ubar[i] +
                  (1.0f - HAFL_IMPORTANCE_BETA2) * fabsf(sens - ibar[i]);
    }
}

double hafl_importance_mean(const float *ibar, const float *ubar, size_t n, bool ibar_only)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += ibar_only ? (double)ibar[i] : (double)ibar[i] * (double)ubar[i];
    return n ? sum / (double)n : 0.0;
}
