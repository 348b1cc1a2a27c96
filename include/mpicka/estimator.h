/* What a run computes, in the words of the maths: the working precision,
 * the estimator behind each matrix entry and the kernel. Its own header so
 * that the maths (mpicka/hsic.h, mpicka/exact.h) needs nothing of the
 * config that sets these values. */
#ifndef MPICKA_ESTIMATOR_H
#define MPICKA_ESTIMATOR_H

typedef enum { MK_PREC_FLOAT32 = 0, MK_PREC_FLOAT64 = 1 } mk_precision;

/* What each matrix entry estimates (docs/maths.md, "Estimators"). */
typedef enum {
    MK_EST_HSIC1 = 0, /* minibatch CKA from summed unbiased HSIC_1 (default) */
    MK_EST_HSIC0 = 1, /* minibatch CKA from summed biased HSIC_0 = tr(KHLH)/(m-1)^2 */
    MK_EST_EXACT = 2  /* CKA of the whole data set from feature-space sums (linear kernel) */
} mk_estimator;

typedef enum { MK_KERNEL_LINEAR = 0, MK_KERNEL_RBF = 1 } mk_kernel;

#endif
