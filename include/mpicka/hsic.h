/* The maths on one minibatch: centred block -> Gram -> kernel -> centred
 * kernel -> HSIC, and what the summed HSICs become (CKA, jackknife standard
 * errors, permutation p-values).
 *
 * Pure computation: no MPI, no HDF5, no I/O. For a minibatch of m examples
 * and a layer with p features (a row-major m-by-p block, one row per example):
 *   1. subtract the minibatch's column means (computed in float64; HSIC is
 *      invariant to it and float32 Grams of offset data need it),
 *   2. G = X X^T with one BLAS syrk, in the working precision,
 *   3. the kernel, in float64: K = G (linear) or K_ij = exp(-D_ij / (2 s^2 med))
 *      (RBF: D the squared distances from G, med the median of all m*m of
 *      them, diagonal included, s = rbf_threshold; Kornblith et al. 2019),
 *   4. centre K, in float64: U-centring for HSIC_1 (Szekely & Rizzo; zero
 *      diagonal), H K H for HSIC_0, and store it as one row of a stacked
 *      matrix V: its strict upper triangle, t = m(m-1)/2 values, followed for
 *      HSIC_0 by its diagonal times sqrt(1/2),
 *   5. HSIC_1(K_a, K_b) = <K~u_a, K~u_b>_F / (m(m-3)) = 2 V_a.V_b / (m(m-3))
 *      and HSIC_0(K_a, K_b) = tr(K_a H K_b H) / (m-1)^2 = 2 V_a.V_b / (m-1)^2,
 *      for every layer pair at once with one BLAS product of the stacked V.
 * Deterministic: the same inputs give the same bits whatever rank computes
 * them and with any number of threads (mpicka/par.h): every product is cut
 * into blocks of fixed shapes, one single-threaded BLAS call each, and
 * partial sums are added in a fixed order. */
#ifndef MPICKA_HSIC_H
#define MPICKA_HSIC_H

#include <stdint.h>

#include "mpicka/error.h"
#include "mpicka/estimator.h"
#include "mpicka/par.h"

/* Element k of a buffer in the working precision, as double. */
static inline double mk_prec_at(const void *buf, mk_precision prec, int64_t k)
{
    return prec == MK_PREC_FLOAT32 ? ((const float *)buf)[k] : ((const double *)buf)[k];
}

/* Values in a strict upper triangle of an m-by-m matrix. */
static inline int64_t mk_tri_len(int64_t m) { return m * (m - 1) / 2; }

/* Length of one stacked row of V for a minibatch of m examples. */
static inline int64_t mk_row_len(mk_estimator est, int64_t m)
{
    return mk_tri_len(m) + (est == MK_EST_HSIC0 ? m : 0);
}

/* The kernel and estimator of the minibatch HSICs. */
typedef struct {
    mk_estimator est;  /* MK_EST_HSIC1 or MK_EST_HSIC0 */
    mk_kernel kernel;
    double threshold;  /* RBF only */
} mk_hsic_opts;

/* Bytes of one value in the working precision. */
static inline size_t mk_prec_size(mk_precision prec)
{
    return prec == MK_PREC_FLOAT32 ? sizeof(float) : sizeof(double);
}

/* Scratch space for one layer of one minibatch (m <= m_max, p <= p_max).
 * With p_max = 0, only what the Gram and U-centring need (x and colmean are
 * then NULL: the caller centres into a buffer of its own). */
typedef struct {
    int64_t m_max, p_max;
    mk_precision prec;
    mk_hsic_opts opts;
    void *x;          /* m_max*p_max, working precision: the centred block */
    void *gram;       /* m_max*m_max, working precision: where mk_gram writes */
    void *gram_bg;    /* the same: the Gram whose kernel mk_kernel_start computes */
    double *colmean;  /* 3 p_max: scratch of mk_centre, the means first */
    double *rowsum;   /* m_max */
    double *select;   /* RBF: the t distances, reordered to find their median */
    mk_par *par;      /* threads for the Gram's blocks; NULL: the caller's alone (same bits) */
    double *bg_v;     /* mk_kernel_start's row and size, and whether it may still run */
    int64_t bg_m;
    int bg_busy;
} mk_hsic_ws;

/* opts NULL: linear kernel, HSIC_1. */
mk_err mk_hsic_ws_init(mk_hsic_ws *ws, int64_t m_max, int64_t p_max, mk_precision prec,
                       const mk_hsic_opts *opts);
void mk_hsic_ws_free(mk_hsic_ws *ws);

/* How a block is centred (in) and what came out (out). */
typedef struct {
    double scale;  /* in: a power of two the values are multiplied by (1: none), so exactly */
    double amax;   /* out: the largest |centred value| (Inf when one overflowed) */
    int constant;  /* out: every row equal; the centred block is then exactly zero */
} mk_centring;

/* Centre the columns of the m-by-p block `in` (float if in_f32, else double)
 * into `out` (m by p, precision prec; out may be in when the types agree):
 * out = in*scale - colmean, colmean[3p] being scratch whose first p values
 * receive the means of in*scale. A column whose sum overflows with finite
 * values gets its mean all the same. c may be NULL (scale 1, no report).
 * Returns -1, or the row of the first non-finite value (then out is
 * unspecified). */
int64_t mk_centre(const void *in, int in_f32, int64_t m, int64_t p, mk_precision prec, double *colmean,
                  void *out, mk_centring *c);

/* The power of two that brings a layer of p features whose centred values
 * reach amax into the range where its Grams (in prec) and their products
 * neither overflow nor underflow: 1 when it is there already (so typical
 * data keeps its bits). CKA does not change when a layer is scaled. */
double mk_safe_scale(double amax, int64_t p, mk_precision prec);

/* Whether a centred block of p features reaching amax (after its scale)
 * would overflow its Gram in prec, or the float64 products of its kernel. */
int mk_block_overflows(double amax, int64_t p, mk_precision prec);

/* Gram of the centred block x (m by p, precision ws->prec) into ws->gram
 * (upper triangle, row-major m-by-m). Returns 0, or 1 when an entry is not
 * finite (its diagonal holds the largest entries, so it is checked alone). */
int mk_gram(mk_hsic_ws *ws, const void *x, int64_t m, int64_t p);

/* The kernel of ws->gram, centred, into the stacked row v (steps 3 and 4;
 * mk_row_len values). */
void mk_kernel_row(mk_hsic_ws *ws, int64_t m, double *v);

/* mk_kernel_row in the background: ws->gram (just filled by mk_gram)
 * becomes ws->gram_bg, its kernel row v is computed by a worker of ws->par
 * (mk_par_async) and ws->gram is free for the next mk_gram, which then
 * overlaps it. Waits for the previous one first. The same arithmetic, so
 * the same bits, on whichever thread; with no worker it runs now. v and
 * ws's scratch (rowsum, select) are the task's until mk_kernel_wait. */
void mk_kernel_start(mk_hsic_ws *ws, int64_t m, double *v);

/* Returns when mk_kernel_start's row is done (at once if there is none). */
void mk_kernel_wait(mk_hsic_ws *ws);

/* The median of the m*m squared distances whose strict upper triangle is d
 * (t values; the diagonal is m zeros), as numpy.median takes it. d is
 * reordered. */
double mk_median_sq_dist(double *d, int64_t m);

/* Steps 1 to 4 for one layer. Returns -1 or the first non-finite row. */
int64_t mk_layer_row(mk_hsic_ws *ws, const void *in, int in_f32, int64_t m, int64_t p, double *v);

/* HSIC of every pair from stacked rows (each of length mk_row_len(est, m)):
 * hxy[i*ny+j] = HSIC(x_i, y_j), hxx[i] = HSIC(x_i, x_i), hyy likewise.
 * With vy == NULL, y is x (self comparison: syrk, hxy symmetric). With
 * hxx == NULL, only hxy (then vy must be given). The rows are cut into
 * chunks of MK_PAIR_CHUNK values, one product each, shared out over par's
 * threads (par may be NULL), summed in chunk order. MK_ENOMEM possible. */
#define MK_PAIR_CHUNK 32768
mk_err mk_pairs(mk_par *par, mk_estimator est, const double *vx, int nx, const double *vy, int ny, int64_t m,
                double *hxy, double *hxx, double *hyy);

/* The stacked row of the kernel with examples reordered by perm (a
 * permutation of [0, m)): out(i, j) = v(perm[i], perm[j]). Centring commutes
 * with it, so this is the centred kernel of the permuted examples. */
void mk_permute_row(mk_estimator est, const double *v, int64_t m, const int64_t *perm, double *out);

/* CKA from summed HSIC_1 values: cka = hxy / sqrt(hxx hyy), NaN in the row
 * or column of a layer whose summed self-HSIC is not positive (a dead or
 * constant layer). No clamping: small negative values are kept. */
void mk_cka_from_sums(int nx, int ny, const double *hxy, const double *hxx, const double *hyy,
                      double *cka);

/* Delete-a-group jackknife standard error of each CKA value. sums is the
 * total (hxy | hxx | hyy, as summed over all batches) and groups holds G
 * such vectors, one per group of batches (summing to the total); the
 * estimate without group k uses sums - groups[k]. se: nx by ny. */
mk_err mk_jackknife_stderr(int nx, int ny, const double *sums, int64_t G, const double *groups, double *se);

/* Permutation p-values: (1 + #{r : perm[r] >= hxy}) / (R + 1) per pair, perm
 * holding R summed cross HSIC matrices of permuted y. NaN where hxy is NaN. */
void mk_perm_pvalue(int nx, int ny, const double *hxy, int64_t R, const double *perm, double *p);

#endif

