/* The exact estimator: linear CKA of the whole data set, not a minibatch
 * estimate, from feature-space sums streamed batch by batch. Pure maths: no
 * MPI, no HDF5. Memory depends on the features, never on n.
 *
 * Every layer (x's, then y's) is a block of columns of one stacked row per
 * example, z (P features in all), shifted by a fixed vector mu0 so that the
 * sums stay well conditioned (any fixed vector is exact; one near the mean
 * loses the least). With r_il = |z_i restricted to layer l|^2, a batch adds
 *   S = Z^T Z (the blocks read, below), s = Z^T 1, W = R^T Z, Q = R^T R.
 * S holds, row f (in layer a) after row f-1, S_fg for g from f to the end of
 * layer a, then for g over the layers a is compared with after it: every
 * later layer when every pair is compared, y's when a is an x layer of x
 * against y, none for a y layer. So x against y stores neither the x-x nor
 * the y-y blocks of two different layers, which nothing reads.
 * With d = s/n, the centred cross-products are C_ab = S_ab - n d_a d_b^T, and
 * with X, Y two centred layers (K = X X^T, L = Y Y^T, n by n):
 *   tr(K L)            = |C_ab|_F^2,   1'K~1 = -tr C_aa,
 *   1'K~L~1 = tr(D_K D_L) = sum_i |x_i|^2 |y_i|^2 =: q_ab (from Q, W, S, d),
 * so HSIC_0 = |C_ab|_F^2 / (n-1)^2 (Kornblith's CKA) and, K~ being K with its
 * diagonal zeroed, HSIC_1 = [tr(K~L~) + 1'K~1 1'L~1/((n-1)(n-2))
 * - 2/(n-2) 1'K~L~1] / (n(n-3)) with tr(K~L~) = |C_ab|_F^2 - q_ab. */
#ifndef MPICKA_EXACT_H
#define MPICKA_EXACT_H

#include <stdint.h>

#include "mpicka/error.h"
#include "mpicka/estimator.h"
#include "mpicka/par.h"

typedef struct {
    int nlayers;        /* L */
    int64_t *p, *off;   /* features of layer l, and its first column in z */
    int64_t P, m_max;
    mk_precision prec;
    double *mu0;        /* P: the shift */
    void *z;            /* m_max by P, working precision: the batch, shifted */
    void *cross;        /* Z^T Z in strips of rows (exact.c), working precision */
    double *r;          /* L: one row's squared norms per layer */
    double *d;          /* P: scratch (a row widened; mk_exact_hsic's feature means) */
    mk_par *par;        /* threads for the blocks of Z^T Z; NULL: the caller's alone (same bits) */
    int64_t y_col;      /* 0: every pair of layers; else y's first column (x against y): only x-y pairs and each
                         * layer with itself are computed and stored */
    int64_t *row;       /* P+1: where row f of S starts in the sums; row[P]: S's length, where s starts */
    int64_t *strip;     /* where each strip of Z^T Z starts in cross (exact.c) */
} mk_exact;

/* Values of S in the rows of a layer of p features ending at column end
 * (of P), with y_col as in mk_exact: summed over the layers, S's length. */
int64_t mk_exact_rows_len(int64_t p, int64_t end, int64_t P, int64_t y_col);

/* Doubles in one batch's sums: S (mk_exact_rows_len over the layers), s (P),
 * W (L*P), Q (L*L). */
int64_t mk_exact_len(const mk_exact *e);

/* Bytes mk_exact_init allocates (for the memory estimate). */
double mk_exact_bytes(int nlayers, const int64_t *p, int64_t y_col, int64_t m_max, mk_precision prec);

/* Workspace for nlayers layers of p[l] features, y_col as in mk_exact, and
 * batches of at most m_max rows (MK_ENOMEM naming what did not fit); free
 * with mk_exact_free, which takes a zeroed e too. */
mk_err mk_exact_init(mk_exact *e, int nlayers, const int64_t *p, int64_t y_col, int64_t m_max, mk_precision prec);
void mk_exact_free(mk_exact *e);

/* Put layer l of a batch into z: its centred block (m by p[l], working
 * precision) plus (mean - mu0), mean being the column means taken out. */
void mk_exact_put(mk_exact *e, int l, const void *centred, const double *mean, int64_t m);

/* The batch's sums (mk_exact_len values) once every layer is put. */
void mk_exact_batch(mk_exact *e, int64_t m, double *sums);

/* HSIC on all n examples of every pair from the summed sums: x layers are
 * 0..nx-1 and y layers nx..nx+ny-1 (y_first = nx, the layers of
 * y_col), or y is x (y_first = 0; then y_col must be 0).
 * debiased: HSIC_1, else HSIC_0. hxy nx by ny, hxx nx, hyy ny. */
void mk_exact_hsic(const mk_exact *e, const double *sums, int64_t n, int debiased, int nx, int ny, int y_first,
                   double *hxy, double *hxx, double *hyy);

/* The centred cross-products of layers a and b on all n examples from the
 * summed sums: C_ab = S_ab - n d_a d_b^T (symmetric to the bit for a = b),
 * p[a] by p[b] row-major into out, in the units of the values put (the
 * shift cancels), a pair whose block is stored (a = b, or a pair compared).
 * For the measures beyond CKA (mpicka/measures.h). */
void mk_exact_cov(const mk_exact *e, const double *sums, int64_t n, int a, int b, double *out);

#endif
