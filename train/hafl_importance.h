/*  hafl_importance: the smoothed sensitivity of docs/METHOD.md section 2, per adapter entry.

    After an optimiser step, for each trained entry with value w and this step's gradient g:
        I = |w g|,  Ibar = 0.85 Ibar + 0.15 I,  Ubar = 0.85 Ubar + 0.15 |I - Ibar| (new Ibar)
    and its score s = Ibar * Ubar (or Ibar alone). A rank-1 component's score is the mean of s
    over b_k plus the mean of s over a_k.
*/
#ifndef HAFL_IMPORTANCE_H
#define HAFL_IMPORTANCE_H

#include <stdbool.h>
#include <stddef.h>

#define HAFL_IMPORTANCE_BETA1 0.85f
#define HAFL_IMPORTANCE_BETA2 0.85f

//  ibar [n], ubar [n] (updated), w [n] values after the step, g [n] the step's gradient
void hafl_importance_update(float *ibar, float *ubar, const float *w, const float *g, size_t n);
//  Mean over n entries of s (n >= 1), accumulated in double.
double hafl_importance_mean(const float *ibar, const float *ubar, size_t n, bool ibar_only);

#endif
