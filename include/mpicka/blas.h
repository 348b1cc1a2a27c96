/* The one seam to BLAS: changing the BLAS library touches only this file. */
#ifndef MPICKA_BLAS_H
#define MPICKA_BLAS_H

#include <cblas.h>

/* Row-major upper triangle of C = A A^T, A n-by-k row-major (lda = k). */
static inline void mk_ssyrk(int n, int k, const float *a, float *c)
{
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, 1.0f, a, k, 0.0f, c, n);
}

static inline void mk_dsyrk(int n, int k, const double *a, double *c)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, 1.0, a, k, 0.0, c, n);
}

/* Row-major upper triangle of C = A^T A, A k-by-n row-major (lda = n). */
static inline void mk_ssyrk_t(int n, int k, const float *a, float *c)
{
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, 1.0f, a, n, 0.0f, c, n);
}

static inline void mk_dsyrk_t(int n, int k, const double *a, double *c)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, 1.0, a, n, 0.0, c, n);
}

/* C = A B^T, A m-by-k, B n-by-k, C m-by-n, all row-major with natural strides. */
static inline void mk_dgemm_nt(int m, int n, int k, const double *a, const double *b, double *c)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0, a, k, b, k, 0.0, c, n);
}

static inline double mk_ddot(int n, const double *x, const double *y)
{
    return cblas_ddot(n, x, 1, y, 1);
}


static inline int mk_blas_threads(void) { return openblas_get_num_threads(); }
static inline void mk_blas_set_threads(int n) { openblas_set_num_threads(n); }

#endif
