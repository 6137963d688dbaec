/*  hafl_lowrank: thin SVD of a sum of rank-1 terms. See hafl_lowrank.h for the contract.

    Storage is column-major throughout, as LAPACK wants it: a d x q matrix whose columns are
    the vectors x_j is the same memory as the array [q][d] of those vectors.
*/
#include "hafl_lowrank.h"

#include <cblas.h>
#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  LAPACK's Fortran entry points as OpenBLAS exports them (32-bit integers; the trailing
//  size_t is the hidden length of the character argument).
extern void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau,
                    double *work, const int *lwork, int *info);
extern void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda,
                    const double *tau, double *work, const int *lwork, int *info);
extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt, double *work,
                    const int *lwork, int *iwork, int *info, size_t jobz_len);

struct hafl_lowrank_t {
    uint32_t d_out, d_in;
    uint32_t max_terms;
    int factored;  //  1: terms kept as X, Y; 0: dense D
    uint32_t q;    //  terms kept so far (factored storage)
    double *x;     //  [max_terms][d_out]  c_j x_j
    double *y;     //  [max_terms][d_in]   y_j
    double *dense; //  [d_in][d_out]       D, column-major
    double *row;   //  [d_out]             c x of one term, in double
    uint32_t rank;
    double *sigma; //  [rank]
    double *u;     //  [rank][d_out]
    double *v;     //  [rank][d_in]
    int done;
    int overflow; //  a term arrived past max_terms: factor fails
};

hafl_lowrank_t *hafl_lowrank_new(uint32_t d_out, uint32_t d_in, uint32_t max_terms)
{
    if (d_out == 0 || d_in == 0 || d_out > INT_MAX / 2 || d_in > INT_MAX / 2)
        return NULL;
    hafl_lowrank_t *self = calloc(1, sizeof(hafl_lowrank_t));
    if (!self)
        return NULL;
    self->d_out = d_out;
    self->d_in = d_in;
    self->max_terms = max_terms;
    uint32_t mn = d_out < d_in ? d_out : d_in;
    self->factored = max_terms < mn;
    self->row = malloc((size_t)d_out * sizeof(double));
    if (self->factored) {
        self->x = malloc(((size_t)max_terms * d_out + 1) * sizeof(double));
        self->y = malloc(((size_t)max_terms * d_in + 1) * sizeof(double));
    } else
        self->dense = calloc((size_t)d_out * d_in, sizeof(double));
    if (!self->row || (self->factored ? !self->x || !self->y : !self->dense))
        hafl_lowrank_destroy(&self);
    return self;
}

void hafl_lowrank_destroy(hafl_lowrank_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_lowrank_t *self = *self_p;
    free(self->x);
    free(self->y);
    free(self->dense);
    free(self->row);
    free(self->sigma);
    free(self->u);
    free(self->v);
    free(self);
    *self_p = NULL;
}

int hafl_lowrank_add(hafl_lowrank_t *self, double c, const float *x, const float *y)
{
    int nonzero = 0;
    for (uint32_t r = 0; r < self->d_out && !nonzero; r++)
        nonzero = x[r] != 0.0f;
    if (c == 0.0 || !nonzero)
        return 0;
    if (self->done || self->q >= self->max_terms) {
        self->overflow = 1;
        return -1;
    }
    self->q++;
    if (self->factored) {
        double *xj = self->x + (size_t)(self->q - 1) * self->d_out;
        double *yj = self->y + (size_t)(self->q - 1) * self->d_in;
        for (uint32_t r = 0; r < self->d_out; r++)
            xj[r] = c * (double)x[r];
        for (uint32_t col = 0; col < self->d_in; col++)
            yj[col] = (double)y[col];
        return 0;
    }
    //  Plain loops rather than dger: each entry gets its terms in the order they came, so the
    //  dense sum does not depend on how a BLAS would split the update across threads.
    double *xd = self->row;
    for (uint32_t r = 0; r < self->d_out; r++)
        xd[r] = c * (double)x[r];
    for (uint32_t col = 0; col < self->d_in; col++) {
        double *column = self->dense + (size_t)col * self->d_out, ycol = (double)y[col];
        for (uint32_t r = 0; r < self->d_out; r++)
            column[r] += xd[r] * ycol;
    }
    return 0;
}

//  SVD of the m x n column-major matrix a (destroyed): s [min], u [min][m], vt [n][min] (the
//  transposed right vectors, column-major min x n). 0 or -1 with a reason.
static int s_svd(int m, int n, double *a, double *s, double *u, double *vt, char *err,
                 size_t errlen)
{
    int mn = m < n ? m : n, lwork = -1, info = 0;
    double query = 0;
    int *iwork = malloc(8 * (size_t)mn * sizeof(int));
    if (!iwork) {
        snprintf(err, errlen, "lowrank: out of memory for the SVD of a %dx%d matrix", m, n);
        return -1;
    }
    dgesdd_("S", &m, &n, a, &m, s, u, &m, vt, &mn, &query, &lwork, iwork, &info, 1);
    double *work = NULL;
    if (info == 0 && query < (double)INT_MAX) {
        lwork = (int)query + 1;
        work = malloc((size_t)lwork * sizeof(double));
    }
    if (!work) {
        free(iwork);
        snprintf(err, errlen, "lowrank: cannot size the workspace for a %dx%d SVD", m, n);
        return -1;
    }
    dgesdd_("S", &m, &n, a, &m, s, u, &m, vt, &mn, work, &lwork, iwork, &info, 1);
    free(work);
    free(iwork);
    if (info != 0) {
        snprintf(err, errlen, "lowrank: dgesdd failed on a %dx%d matrix (info %d)", m, n, info);
        return -1;
    }
    return 0;
}

//  QR of the m x q column-major matrix a (q <= m): a becomes Q (m x q, orthonormal columns)
//  and r receives R (q x q, upper triangular, column-major).
static int s_qr(int m, int q, double *a, double *r, char *err, size_t errlen)
{
    int lwork = -1, info = 0;
    double query = 0, query2 = 0;
    double *tau = malloc((size_t)q * sizeof(double));
    if (!tau)
        goto nomem;
    dgeqrf_(&m, &q, a, &m, tau, &query, &lwork, &info);
    dorgqr_(&m, &q, &q, a, &m, tau, &query2, &lwork, &info);
    lwork = (int)(query > query2 ? query : query2) + 1;
    double *work = malloc((size_t)lwork * sizeof(double));
    if (!work)
        goto nomem;
    dgeqrf_(&m, &q, a, &m, tau, work, &lwork, &info);
    if (info == 0) {
        for (int j = 0; j < q; j++)
            for (int i = 0; i < q; i++)
                r[i + (size_t)j * q] = i <= j ? a[i + (size_t)j * m] : 0.0;
        dorgqr_(&m, &q, &q, a, &m, tau, work, &lwork, &info);
    }
    free(work);
    free(tau);
    if (info != 0) {
        snprintf(err, errlen, "lowrank: QR of a %dx%d matrix failed (info %d)", m, q, info);
        return -1;
    }
    return 0;
nomem:
    free(tau);
    snprintf(err, errlen, "lowrank: out of memory for the QR of a %dx%d matrix", m, q);
    return -1;
}

//  Keep the singular values above the numerical-rank threshold and copy their vectors out:
//  u from the column-major d_out x mn matrix uu, v from the column-major mn x d_in matrix vt.
static int s_keep(hafl_lowrank_t *self, uint32_t mn, const double *s, const double *uu,
                  const double *vt)
{
    uint32_t big = self->d_out > self->d_in ? self->d_out : self->d_in;
    double tol = (double)big * DBL_EPSILON * (mn ? s[0] : 0.0);
    uint32_t rank = 0;
    while (rank < mn && s[rank] > tol && s[rank] > 0.0)
        rank++;
    self->sigma = malloc(((size_t)rank + 1) * sizeof(double));
    self->u = malloc(((size_t)rank * self->d_out + 1) * sizeof(double));
    self->v = malloc(((size_t)rank * self->d_in + 1) * sizeof(double));
    if (!self->sigma || !self->u || !self->v)
        return -1;
    for (uint32_t j = 0; j < rank; j++) {
        self->sigma[j] = s[j];
        memcpy(self->u + (size_t)j * self->d_out, uu + (size_t)j * self->d_out,
               self->d_out * sizeof(double));
        for (uint32_t c = 0; c < self->d_in; c++)
            self->v[(size_t)j * self->d_in + c] = vt[j + (size_t)c * mn];
    }
    self->rank = rank;
    return 0;
}

//  Factored route: X = Qx Rx, Y = Qy Ry, so D = X Y^T = Qx (Rx Ry^T) Qy^T; the SVD of the
//  q x q core C = Uc S Vc^T gives U = Qx Uc and V = Qy Vc.
static int s_factor_thin(hafl_lowrank_t *self, char *err, size_t errlen)
{
    int q = (int)self->q, m = (int)self->d_out, n = (int)self->d_in;
    size_t qq = (size_t)q * q;
    double *rx = malloc(qq * sizeof(double)), *ry = malloc(qq * sizeof(double));
    double *core = malloc(qq * sizeof(double)), *s = malloc((size_t)q * sizeof(double));
    double *uc = malloc(qq * sizeof(double)), *vtc = malloc(qq * sizeof(double));
    double *uu = malloc((size_t)q * m * sizeof(double));
    double *vv = malloc((size_t)q * n * sizeof(double));
    int rc = -1;
    if (!rx || !ry || !core || !s || !uc || !vtc || !uu || !vv) {
        snprintf(err, errlen, "lowrank: out of memory for a rank-%d factorisation", q);
        goto done;
    }
    if (s_qr(m, q, self->x, rx, err, errlen) || s_qr(n, q, self->y, ry, err, errlen))
        goto done;
    //  C = Rx Ry^T: C[i][j] = sum_{l >= max(i,j)} Rx[i][l] Ry[j][l].
    for (int j = 0; j < q; j++)
        for (int i = 0; i < q; i++) {
            double sum = 0.0;
            for (int l = i > j ? i : j; l < q; l++)
                sum += rx[i + (size_t)l * q] * ry[j + (size_t)l * q];
            core[i + (size_t)j * q] = sum;
        }
    if (s_svd(q, q, core, s, uc, vtc, err, errlen))
        goto done;
    //  uu = Qx Uc (m x q); vv^T = Vc^T Qy^T, i.e. vt (q x n) = vtc Qy^T.
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, q, q, 1.0, self->x, m, uc, q, 0.0, uu,
                m);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, q, n, q, 1.0, vtc, q, self->y, n, 0.0, vv,
                q);
    if (s_keep(self, (uint32_t)q, s, uu, vv)) {
        snprintf(err, errlen, "lowrank: out of memory keeping %d singular vectors", q);
        goto done;
    }
    rc = 0;
done:
    free(rx);
    free(ry);
    free(core);
    free(s);
    free(uc);
    free(vtc);
    free(uu);
    free(vv);
    return rc;
}

static int s_factor_dense(hafl_lowrank_t *self, char *err, size_t errlen)
{
    int m = (int)self->d_out, n = (int)self->d_in, mn = m < n ? m : n;
    double *s = malloc((size_t)mn * sizeof(double));
    double *uu = malloc((size_t)m * mn * sizeof(double));
    double *vt = malloc((size_t)mn * n * sizeof(double));
    int rc = -1;
    if (!s || !uu || !vt)
        snprintf(err, errlen, "lowrank: out of memory for the SVD of a %dx%d matrix", m, n);
    else if (s_svd(m, n, self->dense, s, uu, vt, err, errlen) == 0) {
        rc = s_keep(self, (uint32_t)mn, s, uu, vt);
        if (rc)
            snprintf(err, errlen, "lowrank: out of memory keeping %d singular vectors", mn);
    }
    free(s);
    free(uu);
    free(vt);
    return rc;
}

int hafl_lowrank_factor(hafl_lowrank_t *self, char *err, size_t errlen)
{
    if (self->done) {
        snprintf(err, errlen, "lowrank: already factored");
        return -1;
    }
    self->done = 1;
    if (self->overflow) {
        snprintf(err, errlen, "lowrank: more rank-1 terms than the %u announced", self->max_terms);
        return -1;
    }
    if (self->q == 0) {
        self->rank = 0;
        return 0;
    }
    return self->factored ? s_factor_thin(self, err, errlen) : s_factor_dense(self, err, errlen);
}

uint32_t hafl_lowrank_rank(const hafl_lowrank_t *self)
{
    return self->rank;
}

double hafl_lowrank_sigma(const hafl_lowrank_t *self, uint32_t j)
{
    return self->sigma[j];
}

const double *hafl_lowrank_u(const hafl_lowrank_t *self, uint32_t j)
{
    return self->u + (size_t)j * self->d_out;
}

const double *hafl_lowrank_v(const hafl_lowrank_t *self, uint32_t j)
{
    return self->v + (size_t)j * self->d_in;
}
