/* Similarity measures beyond CKA from the centred second moments of all n
 * examples (docs/maths.md, "Measures from the second moments"): CCA (mean
 * canonical correlation and mean squared canonical correlation), SVCCA,
 * PWCCA, the Procrustes distance, the (partial-whitening) angular shape
 * metric, and linear-regression R^2 in both directions. Pure maths: no MPI,
 * no HDF5, no config; LAPACK from OpenBLAS (dsyevd, dgesdd). Not
 * collective; deterministic for given inputs on one machine (no threads).
 *
 * Inputs are centred cross-product blocks, not divided by n: with X (n by
 * px) and Y (n by py) centred, Cxx = X^T X, Cyy = Y^T Y, Cxy = X^T Y, all
 * float64 and row-major. Every measure here is invariant to that scale
 * except the partial-whitening shape metric (0 < alpha < 1), which follows
 * netrep and mixes X with its whitened form at this scale: a layer whose
 * values were multiplied by a factor (to keep the sums finite) says so in
 * mk_mlayer.unit, and nothing is ever divided back (which could overflow).
 *
 * Rank: each layer's covariance is eigendecomposed, Cxx = V diag(lam) V^T,
 * and the directions whose eigenvalue is at most MK_MEASURE_EPS times the
 * largest are dropped (a pseudo-inverse): constant features, duplicated
 * features and p > n - 1 then give a layer of rank r < p. The CCA family
 * averages over min(rx, ry) canonical correlations. A layer whose largest
 * eigenvalue is at most MK_MEASURE_CONSTANT times its uncentred sum of
 * squares is constant (rank 0) and gives NaN for every measure of its
 * pairs. */
#ifndef MPICKA_MEASURES_H
#define MPICKA_MEASURES_H

#include <stdint.h>

#include "mpicka/error.h"

/* Eigenvalues of a layer's covariance at most this times its largest are
 * taken as zero (rounding noise of duplicated, constant or surplus features). */
#define MK_MEASURE_EPS 1e-10
/* A layer whose largest eigenvalue is at most this times the uncentred sum
 * of squares of its values is constant: its centred values are the rounding
 * noise of its means (rank 0). */
#define MK_MEASURE_CONSTANT 1e-13

typedef enum {
    MK_MEASURE_CKA,        /* the run's CKA matrix itself (nothing more to compute) */
    MK_MEASURE_CCA,        /* cca_mean (rho-bar) and cca_r2 (R^2_CCA) */
    MK_MEASURE_SVCCA,      /* mean canonical correlation of the leading principal components */
    MK_MEASURE_PWCCA,      /* projection-weighted mean canonical correlation (Morcos et al. 2018) */
    MK_MEASURE_PROCRUSTES, /* 2 - 2 |X^T Y|_* / (|X|_F |Y|_F) (Ding et al. 2021) */
    MK_MEASURE_SHAPE,      /* angular shape metric with partial whitening alpha (Williams et al. 2021) */
    MK_MEASURE_REGRESSION, /* R^2 of y from x, and of x from y */
    /* from each minibatch's Grams (mpicka/gram_measures.h): */
    MK_MEASURE_RSA,        /* correlation of the two layers' RDMs */
    MK_MEASURE_MUTUAL_KNN, /* mean share of common k nearest neighbours (platonic-rep) */
    MK_MEASURE_CKNNA,      /* CKA restricted to mutual k nearest neighbours (Huh et al. 2024) */
    MK_MEASURE_JACCARD,    /* mean Jaccard index of the k-NN sets (Klabunde et al.) */
    MK_MEASURE_KINDS
} mk_measure_kind;

/* The config names, indexed by mk_measure_kind, NULL-terminated. */
extern const char *const mk_measure_names[];

typedef struct {
    mk_measure_kind kind;
    double keep;   /* svcca: variance fraction of each layer kept, (0, 1] (used when k is 0) */
    int64_t k;     /* svcca: principal components kept (0: by keep); mutual_knn, cknna, jaccard: neighbours */
    double alpha;  /* shape: 0 = fully whitened (angular CCA) .. 1 = none (angular Procrustes) */
    int spearman;    /* rsa: compare the RDMs by Spearman (else Pearson) correlation */
    int correlation; /* rsa: the correlation distance (else the squared Euclidean) */
} mk_measure;

/* The matrices a measure gives (0 for cka, 1 or 2) and their names into
 * names[0..]: e.g. cca gives "cca_mean" and "cca_r2". */
int mk_measure_outputs(mk_measure_kind kind, const char *names[2]);

/* One layer, prepared once for all its pairs. */
typedef struct {
    int64_t p, rank;  /* features, and eigenvalues above the cut */
    double *lam;      /* p eigenvalues, largest first */
    double *v;        /* p by p, row-major: v[f * p + i] is component f of eigenvector i */
    double trace;     /* tr Cxx, summed from its diagonal */
    double unit;      /* the factor the layer's values were multiplied by (1 from mk_mlayer_init; the
                         caller sets it): only the partial whitening (shape, 0 < alpha < 1) sees it */
} mk_mlayer;

/* Eigendecomposition of cov (p by p, symmetric). squares: the uncentred sum
 * of squares of the layer's values, sum_i |x_i|^2 (MK_MEASURE_CONSTANT; 0:
 * only an exactly zero cov is constant). MK_ENOMEM, or MK_EDATA when LAPACK
 * fails (a non-finite cov). Free with mk_mlayer_free, which takes a zeroed
 * l too. */
mk_err mk_mlayer_init(mk_mlayer *l, int64_t p, const double *cov, double squares);
void mk_mlayer_free(mk_mlayer *l);

/* The values of the measures ms[0..nms) (mk_measure_outputs of each, one
 * after the other) for layers x and y whose cross-products are cxy (x->p by
 * y->p); the rotation of cxy into the layers' bases is shared by all.
 * MK_ENOMEM, or MK_EDATA when LAPACK fails. */
mk_err mk_measure_pair(const mk_measure *ms, int nms, const mk_mlayer *x, const mk_mlayer *y, const double *cxy,
                       double *out);

/* Whether the measure's value(s) for (x, y) and (y, x) are the same: all but
 * pwcca, regression and cknna (its unbiased HSIC's sum of A B is not that of
 * B A when the masked kernels are not symmetric). */
int mk_measure_symmetric(mk_measure_kind kind);

#endif
