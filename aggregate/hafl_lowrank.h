/*  hafl_lowrank: the thin SVD of a matrix given as a sum of rank-1 terms.

    FlexLoRA re-factorises the global update and FLoRA compacts its stacked base terms; both
    hold a d_out x d_in matrix D = sum_j c_j x_j y_j^T whose rank is usually far below its size.
    An accumulator collects the terms (hafl_lowrank_add), then hafl_lowrank_factor computes
        D = sum_{j < rank} sigma_j u_j v_j^T,   sigma descending, u_j, v_j orthonormal,
    keeping the singular values above max(d_out, d_in) * DBL_EPSILON * sigma_0 (the numerical
    rank), all in double. When fewer terms than min(d_out, d_in) are announced the terms are
    kept factored (X = [x_j], Y = [y_j]) and D = Qx (Rx Ry^T) Qy^T is decomposed through two
    QR factorisations and the SVD of the small core, which costs O(d q^2) instead of O(d^3);
    otherwise D is accumulated densely. LAPACK (dgeqrf, dorgqr, dgesdd) comes from OpenBLAS.
    Results are deterministic for a given OpenBLAS thread count; LAPACK's blocked kernels may
    round differently with another count (hafl runs OpenBLAS single-threaded in every mode, so
    in-process and multi-process runs agree bit for bit).

    Ownership: hafl_lowrank_new returns an accumulator the caller owns; destroy frees it and
    nulls the pointer. The result arrays belong to the accumulator.
*/
#ifndef HAFL_LOWRANK_H
#define HAFL_LOWRANK_H

#include <stddef.h>
#include <stdint.h>

typedef struct hafl_lowrank_t hafl_lowrank_t;

//  An empty accumulator for d_out x d_in matrices taking at most max_terms rank-1 terms, or
//  NULL (no memory, or a zero dimension).
hafl_lowrank_t *hafl_lowrank_new(uint32_t d_out, uint32_t d_in, uint32_t max_terms);
void hafl_lowrank_destroy(hafl_lowrank_t **self_p);

//  D += c * x y^T with x [d_out], y [d_in]. Terms with c == 0 or x all zero are skipped, as
//  they add exactly nothing. -1 when more than max_terms terms would be kept, or after
//  factoring; the error is sticky and hafl_lowrank_factor then fails, so callers may check
//  once there.
int hafl_lowrank_add(hafl_lowrank_t *self, double c, const float *x, const float *y);

//  Decompose the accumulated D. 0, or -1 with a reason when LAPACK fails or memory runs out.
//  May be called once; afterwards the accessors below are valid.
int hafl_lowrank_factor(hafl_lowrank_t *self, char *err, size_t errlen);

//  Numerical rank of D (0 when D is zero).
uint32_t hafl_lowrank_rank(const hafl_lowrank_t *self);
//  sigma_j for j < rank, descending.
double hafl_lowrank_sigma(const hafl_lowrank_t *self, uint32_t j);
//  u_j [d_out] and v_j [d_in], unit vectors, for j < rank.
const double *hafl_lowrank_u(const hafl_lowrank_t *self, uint32_t j);
const double *hafl_lowrank_v(const hafl_lowrank_t *self, uint32_t j);

#endif
