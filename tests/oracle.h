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

#endif
