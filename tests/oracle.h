/* Independent float64 reference implementations, written from the formulas
 * (Song et al. 2012 HSIC_1; Nguyen et al. 2020 minibatch CKA), deliberately
 * naive and sharing no code with src/: explicit Gram matrices and O(m^3)
 * matrix products. */
#ifndef MK_TEST_ORACLE_H
#define MK_TEST_ORACLE_H

#include <stdint.h>

/* HSIC_1(K, L) for K = X X^T, L = Y Y^T, X m-by-p and Y m-by-q row-major:
 * [tr(K~L~) + 1'K~1 1'L~1/((m-1)(m-2)) - 2/(m-2) 1'K~L~1] / (m(m-3)),
 * K~ and L~ being K and L with zeroed diagonals. */
double oracle_hsic1(const double *x, int64_t p, const double *y, int64_t q, int64_t m);

/* Copy of the m-by-p block with its column means subtracted (two passes). */
void oracle_centre(const double *x, int64_t m, int64_t p, double *out);

/* A layer of the reference computation: all n rows in memory, as double. */
typedef struct {
    double *data;  /* n by p */
    int64_t p;
} oracle_layer;

/* Read a whole dataset as double (HDF5 converts). Returns n, or -1. */
int64_t oracle_read_layer(const char *file, const char *dataset, oracle_layer *layer);

/* Minibatch CKA: batches are given as lists of example indices; every
 * batch is centred (HSIC_1 is translation invariant) and HSIC_1 summed. */
void oracle_minibatch_cka(const oracle_layer *x, int nx, const oracle_layer *y, int ny,
                          int64_t nbatches, const int64_t *const *batch_rows, const int64_t *batch_sizes,
                          double *cka);

/* Median of the full m*m matrix of squared Euclidean distances
 * D_ij = sum_f (x_if - x_jf)^2, computed directly from the rows of the
 * row-major m-by-p x (not via a Gram), INCLUDING the m zero diagonal entries,
 * like numpy.median over all m*m entries: all values are sorted and, for an
 * even count, the two middle values averaged. */
double oracle_rbf_median(const double *x, int64_t p, int64_t m);

/* RBF Gram as in Kornblith et al. 2019's reference rbf(x, threshold):
 * K_ij = exp(-D_ij / (2 threshold^2 median)), median = oracle_rbf_median.
 * k is m by m, row-major, full (diagonal = 1). */
void oracle_rbf_gram(const double *x, int64_t p, int64_t m, double threshold, double *k);

/* Linear Gram K = X X^T (m by m, full, with diagonal) of the row-major
 * m-by-p x. */
void oracle_linear_gram(const double *x, int64_t p, int64_t m, double *k);

/* Unbiased HSIC_1 from two full m-by-m Grams (their diagonals are zeroed
 * inside; the inputs are not modified):
 * [tr(K~L~) + 1'K~1 1'L~1/((m-1)(m-2)) - 2/(m-2) 1'K~L~1] / (m(m-3)). */
double oracle_hsic1_gram(const double *k, const double *l, int64_t m);

/* Biased HSIC_0 = tr(K H L H) / (m-1)^2, H = I - (1/m) 1 1^T, with H formed
 * explicitly and the products K H, L H and (KH)(LH) done explicitly. */
double oracle_hsic0_gram(const double *k, const double *l, int64_t m);

/* CKA from Grams: hsic(K,L) / sqrt(hsic(K,K) hsic(L,L)), for hsic one of
 * oracle_hsic0_gram / oracle_hsic1_gram. */
double oracle_cka_gram(double (*hsic)(const double *, const double *, int64_t), const double *k,
                       const double *l, int64_t m);

/* CKA of the whole data set (no minibatches), linear kernel, for every pair:
 * cka is nx by ny, row-major. Each layer's columns are centred, its n-by-n
 * linear Gram formed, and the CKA taken with HSIC_0 (debiased == 0,
 * Kornblith 2019 CKA) or HSIC_1 (debiased == 1). O(n^3): small n only. */
void oracle_full_cka(const oracle_layer *x, int nx, const oracle_layer *y, int ny, int64_t n, int debiased,
                     double *cka);

/* One-sample Kolmogorov-Smirnov statistic D_n of u[0..n) against
 * Uniform(0,1): with u_(i) the sorted values (1-based i),
 * D = max_i max(i/n - u_(i), u_(i) - (i-1)/n). u is not modified. */
double oracle_ks_uniform(const double *u, int64_t n);

/* Asymptotic p-value P(D_n > d) from the Kolmogorov distribution with
 * Stephens' finite-n correction: lambda = (sqrt(n) + 0.12 + 0.11/sqrt(n)) d,
 * p = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 lambda^2), clamped to [0, 1]. */
double oracle_ks_pvalue(double d, int64_t n);

#endif
