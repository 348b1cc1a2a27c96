/* Similarity measures from each minibatch's Grams (docs/maths.md, "Measures
 * from the minibatch Grams"): RSA (the correlation of two layers'
 * representational dissimilarity matrices), mutual k-nearest neighbours,
 * CKNNA and the k-NN Jaccard similarity. Pure maths: no MPI, no HDF5, no
 * config; the rank's threads (mpicka/par.h) share out rows and pairs,
 * each computed whole by one thread, so the bits depend on the inputs only.
 *
 * One batch: each layer is prepared once from its Gram of the column-centred
 * block (mk_gram_layer_put), then every layer pair gets one value per
 * measure (mk_gram_pairs). The run's value of a measure is the plain mean of
 * its per-batch values, with jackknife standard errors over groups of
 * batches: each batch adds its values into the sums of its group
 * (mk_gram_add), and mk_gram_finish makes the means and errors. A value that
 * is not finite (a constant layer in the batch, an RDM whose entries are all
 * equal, a batch of k or fewer examples for the k-NN measures) is left out
 * of the mean: each value is summed with its count.
 *
 * Conventions (docs/maths.md): RSA follows rsatoolbox (euclidean: squared
 * distance over the features; correlation: 1 - Pearson correlation of two
 * examples' features; the RDMs' upper triangles compared by Pearson, or by
 * Spearman with average ranks for ties); the k-NN measures follow
 * platonic-rep (neighbours by the inner product of L2-normalised uncentred
 * features, an example never its own neighbour, CKNNA with the unbiased
 * HSIC and no 1e-6 in its denominator); ties between neighbours go to the
 * lower example index. */
#ifndef MPICKA_GRAM_MEASURES_H
#define MPICKA_GRAM_MEASURES_H

#include <stdint.h>

#include "mpicka/error.h"
#include "mpicka/estimator.h"
#include "mpicka/measures.h"
#include "mpicka/par.h"

/* Whether a measure is computed from the minibatch Grams (rsa, mutual_knn,
 * cknna, jaccard) rather than from the second moments. */
int mk_gram_measure(mk_measure_kind kind);

/* An example whose row-centred (correlation distance) or raw (k-NN) squared
 * norm is at most this times its raw squared norm has none: its
 * correlations are undefined and its cosines 0. */
#define MK_GRAM_ZERO 1e-12

/* The Gram measures of a run: ms[0..nms) (other kinds are skipped), for
 * batches of at most m_max examples and layers of at most p_max features. */
typedef struct {
    const mk_measure *ms;
    int nms;
    int64_t m_max;
    int outs;         /* the Gram measures among ms: the values per pair */
    int rsa;          /* index in ms of rsa, or -1 */
    int64_t kmax;     /* the largest k of the k-NN measures (0: none) */
} mk_gram_spec;

void mk_gram_spec_init(mk_gram_spec *s, const mk_measure *ms, int nms, int64_t m_max);

/* Bytes a rank of `threads` threads holds for the Gram measures of L
 * layers: the layers' prepared RDMs and neighbour lists, the scratch of one
 * layer, each k-NN measure's lists sorted by index for the pairs, a pair's
 * scratch per thread, and one batch's values for cells pairs. */
double mk_gram_bytes(const mk_gram_spec *s, int L, int64_t cells, int threads);

/* One layer of one batch, prepared for its pairs. */
typedef struct {
    int64_t m;        /* examples in the batch */
    int valid_rdm;    /* the RDM has unequal entries (and every example its norm) */
    int valid_knn;    /* the layer varied in the batch */
    double *rdm;      /* rsa: the RDM's upper triangle (or its ranks), centred, of unit norm */
    int32_t *nn;      /* m by kmax: each example's neighbours, nearest first */
    double *cos;      /* m by kmax: their cosine similarity */
} mk_gram_layer;

/* Scratch shared by the layers' preparation (one layer at a time). */
typedef struct {
    double *d;        /* the distances, t values */
    void *order;      /* Spearman: (value, index) pairs, and as many for the sort */
    double *e;        /* 6 m: per-example norms and sums */
    mk_par *par;      /* threads for the neighbour search (NULL: the caller's alone, the same bits) */
} mk_gram_work;

mk_err mk_gram_layer_init(mk_gram_layer *l, const mk_gram_spec *s);
void mk_gram_layer_free(mk_gram_layer *l);
mk_err mk_gram_work_init(mk_gram_work *w, const mk_gram_spec *s);
void mk_gram_work_free(mk_gram_work *w);

/* Prepares l from one layer's batch: x, the column-centred m by p block
 * (precision prec, row-major), mean its p column means (x + mean are the
 * values), gram its Gram x x^T in prec (row-major m by m; the upper
 * triangle is read). constant: every example equal (no value for any pair).
 * Any power of two the values were multiplied by changes no measure. */
void mk_gram_layer_put(mk_gram_layer *l, const mk_gram_spec *s, mk_gram_work *w, const void *gram, const void *x,
                       const double *mean, mk_precision prec, int64_t m, int64_t p, int constant);

/* The values of one batch: out[o * nx * ny + i * ny + j] for the o-th Gram
 * measure of s and layers a[i], b[j] (NaN where undefined), each layer's
 * lists and then each pair one task of par's threads (NULL: the caller's
 * alone; the same bits). self: a and b
 * are the same layers (a symmetric measure's lower triangle is mirrored
 * from its upper, so that its matrix is symmetric to the bit;
 * mk_measure_symmetric). */
mk_err mk_gram_pairs(const mk_gram_spec *s, mk_par *par, const mk_gram_layer *a, int nx, const mk_gram_layer *b,
                     int ny, int self, double *out);

/* Adds the n values to one group's sums: slot[2q] += values[q] and
 * slot[2q + 1] += 1 where values[q] is finite. */
void mk_gram_add(const double *values, int64_t n, double *slot);

/* From the sums of G groups (G 0: one slot, no errors; slots: G or 1 times
 * 2n values): mean[q], the mean of the finite values of all batches (NaN
 * when none was), and se[q] (when G >= 2; else se is not written), the
 * jackknife standard error over the groups, as minibatch CKA's (NaN when a
 * group held every finite value). */
void mk_gram_finish(int64_t n, int64_t G, const double *slots, double *mean, double *se);

/* count[q]: the batches whose value q was finite, from the same sums. */
void mk_gram_counts(int64_t n, int64_t G, const double *slots, double *count);

/* Whether a batch of m examples (a tail batch) is too small for a k-NN
 * measure (k above m - 1): the index in s->ms of the one with the largest
 * k, or -1 when none is. */
int mk_gram_short_batch(const mk_gram_spec *s, int64_t m);

#endif
