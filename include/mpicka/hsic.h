/* The maths on one minibatch: centred block -> Gram -> U-centred Gram -> HSIC_1.
 *
 * Pure computation: no MPI, no HDF5, no I/O. For a minibatch of m examples
 * and a layer with p features (a row-major m-by-p block, one row per example):
 *   1. subtract the minibatch's column means (computed in float64; HSIC_1 is
 *      invariant to it and float32 Grams of offset data need it),
 *   2. K = X X^T with one BLAS syrk, in the working precision,
 *   3. U-centre K in float64 (Szekely & Rizzo; Kornblith's unbiased centring)
 *      and store its strict upper triangle, t = m(m-1)/2 values, as one row
 *      of a stacked matrix V,
 *   4. HSIC_1(K_a, K_b) = <K~u_a, K~u_b>_F / (m(m-3)) = 2 V_a.V_b / (m(m-3)),
 *      for every layer pair at once with one BLAS product of the stacked V.
 * Deterministic: the same inputs give the same bits (at a fixed number of BLAS
 * threads), whatever rank computes them. */
#ifndef MPICKA_HSIC_H
#define MPICKA_HSIC_H

#include <stdint.h>

#include "mpicka/config.h"
#include "mpicka/error.h"

/* Length of one U-centred Gram row of V for a minibatch of m examples. */
static inline int64_t mk_tri_len(int64_t m) { return m * (m - 1) / 2; }

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
    void *x;          /* m_max*p_max, working precision: the centred block */
    void *gram;       /* m_max*m_max, working precision */
    double *colmean;  /* p_max */
    double *rowsum;   /* m_max */
} mk_hsic_ws;

mk_err mk_hsic_ws_init(mk_hsic_ws *ws, int64_t m_max, int64_t p_max, mk_precision prec);
void mk_hsic_ws_free(mk_hsic_ws *ws);

/* Centre the columns of the m-by-p block `in` (float if in_f32, else double)
 * into `out` (m by p, precision prec; out may be in when the types agree),
 * with colmean[p] as scratch. Returns -1, or the row of the first non-finite
 * value (then out is unspecified). */
int64_t mk_centre(const void *in, int in_f32, int64_t m, int64_t p, mk_precision prec, double *colmean,
                  void *out);

/* Gram of the centred block x (m by p, precision ws->prec) into ws->gram
 * (upper triangle, row-major m-by-m). */
void mk_gram(mk_hsic_ws *ws, const void *x, int64_t m, int64_t p);

/* U-centre ws->gram and write its strict upper triangle (row by row) to v. */
void mk_ucentre(mk_hsic_ws *ws, int64_t m, double *v);

/* All three steps for one layer. Returns -1 or the first non-finite row. */
int64_t mk_layer_row(mk_hsic_ws *ws, const void *in, int in_f32, int64_t m, int64_t p, double *v);

/* HSIC_1 of every pair from stacked rows (each of length mk_tri_len(m)):
 * hxy[i*ny+j] = HSIC_1(x_i, y_j), hxx[i] = HSIC_1(x_i, x_i), hyy likewise.
 * With vy == NULL, y is x (self comparison: one syrk, hxy symmetric). */
void mk_pairs(const double *vx, int nx, const double *vy, int ny, int64_t m,
              double *hxy, double *hxx, double *hyy);

/* CKA from summed HSIC_1 values: cka = hxy / sqrt(hxx hyy), NaN in the row
 * or column of a layer whose summed self-HSIC is not positive (a dead or
 * constant layer). No clamping: small negative values are kept. */
void mk_cka_from_sums(int nx, int ny, const double *hxy, const double *hxx, const double *hyy,
                      double *cka);

#endif

