/* The one seam to BLAS: changing the BLAS library touches only this file. */
#ifndef MPICKA_BLAS_H
#define MPICKA_BLAS_H

#include <cblas.h>

/* Row-major upper triangle of C = A A^T, A n-by-k row-major (lda = k). */
static inline void mk_ssyrk(int n, int k, const float *a, float *c)
{
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, 1.0f, a, k, 0.0f, c, n);
}

/* The same in float64. */
static inline void mk_dsyrk(int n, int k, const double *a, double *c)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, 1.0, a, k, 0.0, c, n);
}

/* Blocks of larger matrices: the general forms, with leading dimensions.
 * Row-major upper triangle of C = A A^T (A n-by-k, trans 0) or A^T A (A
 * k-by-n, trans 1). */
static inline void mk_syrk_ld(int f32, int trans, int n, int k, const void *a, int lda, void *c, int ldc)
{
    CBLAS_TRANSPOSE t = trans ? CblasTrans : CblasNoTrans;
    if (f32)
        cblas_ssyrk(CblasRowMajor, CblasUpper, t, n, k, 1.0f, a, lda, 0.0f, c, ldc);
    else
        cblas_dsyrk(CblasRowMajor, CblasUpper, t, n, k, 1.0, a, lda, 0.0, c, ldc);
}

/* C = op(A) op(B)^T... in the two forms used: trans 0: A m-by-k times B
 * n-by-k transposed; trans 1: A k-by-m transposed times B k-by-n. */
static inline void mk_gemm_ld(int f32, int trans, int m, int n, int k, const void *a, int lda, const void *b,
                              int ldb, void *c, int ldc)
{
    CBLAS_TRANSPOSE ta = trans ? CblasTrans : CblasNoTrans, tb = trans ? CblasNoTrans : CblasTrans;
    if (f32)
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
    else
        cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc);
}

/* OpenBLAS's own threads for every later call of this process (mpicka
 * keeps it at 1: the bits must not depend on it). */
static inline void mk_blas_set_threads(int n) { openblas_set_num_threads(n); }

#endif
