/* Every requested measure (mpicka/measures.h) of every layer pair, from the
 * exact estimator's summed sums (mpicka/exact.h), or a share of the pairs
 * (the driver deals them out to the ranks); each layer and each pair is one
 * task of the process's threads (mpicka/par.h), computed whole by
 * single-threaded BLAS and LAPACK in whichever thread takes it: the bits
 * depend on the sums only, never on the ranks or threads. No MPI; not
 * collective. */
#ifndef MPICKA_MEASURE_SUMS_H
#define MPICKA_MEASURE_SUMS_H

#include <stdint.h>

#include "mpicka/error.h"
#include "mpicka/exact.h"
#include "mpicka/measures.h"
#include "mpicka/par.h"

/* The matrices ms[0..nms) give in all (mk_measure_outputs summed). */
int mk_measures_outputs(const mk_measure *ms, int nms);

/* The pairs one call computes, as in mk_exact_hsic: x layers 0..nx-1, y
 * layers y_first..y_first+ny-1; pair k = x * ny + (y - y_first) is cell k
 * of each matrix. A share is the pairs k = first, first + stride, ... below
 * nx * ny (first 0, stride 1: all of them): rank r of R computes first r,
 * stride R, and every pair is computed by exactly one share. */
typedef struct {
    int nx, ny, y_first;
    int64_t first, stride;
} mk_measure_share;

/* The pairs of a share (those that give nothing included). */
int64_t mk_measure_share_pairs(const mk_measure_share *share);

/* What one call did: the pairs it computed (a mirrored pair of a self
 * comparison computes only the measures that are not symmetric, and is not
 * counted when all are), the layers it eigendecomposed (those its pairs
 * use), and its first failed task (layer l: l; pair k: nlayers + k; -1:
 * none; in the tasks' order, not the threads': the order in which one
 * process computing every pair meets them). */
typedef struct {
    int64_t pairs, layers, failed;
} mk_measure_tally;

/* par: the threads (NULL: the caller's alone, the same bits). The
 * measures from the minibatch Grams among ms (mpicka/gram_measures.h) are
 * skipped: their cells are left as they are.
 * values: mk_measures_outputs(ms, nms) matrices of nx by ny, one after the
 * other in the order of ms and of each measure's outputs; the share's cells
 * are written, no other. A self comparison's symmetric measures leave the
 * lower triangle (y < x) to mk_measures_mirror, once every share is in.
 * scale[l] (NULL: all 1) is the power of two flat layer l's values were
 * multiplied by (mk_mlayer.unit: never divided out). ranks (NULL: not
 * wanted) gets each flat layer's rank (MK_MEASURE_EPS), -1 for a layer the
 * share does not use. Each cell's bits depend on the sums only: never on
 * the share, the threads or which process computes it. */
mk_err mk_measures_from_exact(const mk_exact *e, const double *sums, int64_t n, const double *scale,
                              const mk_measure_share *share, const mk_measure *ms, int nms, mk_par *par,
                              double *values, int64_t *ranks, mk_measure_tally *tally);

/* A self comparison (y_first 0): the symmetric measures' lower triangles
 * from their upper ones, so that those matrices are symmetric to the bit. */
void mk_measures_mirror(const mk_measure *ms, int nms, int nx, int ny, double *values);

#endif
