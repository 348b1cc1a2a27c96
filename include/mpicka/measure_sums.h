/* Every requested measure (mpicka/measures.h) of every layer pair, from the
 * exact estimator's summed sums (mpicka/exact.h). Rank 0 alone, after the
 * reduction; each layer and each pair is one task of the rank's threads
 * (mpicka/par.h), computed whole by single-threaded BLAS and LAPACK in
 * whichever thread takes it: the bits depend on the sums only, never on the
 * ranks or threads. Not collective. */
#ifndef MPICKA_MEASURE_SUMS_H
#define MPICKA_MEASURE_SUMS_H

#include <stdint.h>

#include "mpicka/error.h"
#include "mpicka/exact.h"
#include "mpicka/measures.h"
#include "mpicka/par.h"

/* The matrices ms[0..nms) give in all (mk_measure_outputs summed). */
int mk_measures_outputs(const mk_measure *ms, int nms);

/* par: the threads (NULL: the caller's alone, the same bits).
 * values: mk_measures_outputs(ms, nms) matrices of nx by ny, one after the
 * other in the order of ms and of each measure's outputs. The pairs are as
 * in mk_exact_hsic: x layers 0..nx-1, y layers y_first..y_first+ny-1.
 * scale[l] (NULL: all 1) is the power of two flat layer l's values were
 * multiplied by (mk_mlayer.unit: never divided out). ranks (NULL: not
 * wanted) gets each flat layer's rank (MK_MEASURE_EPS). */
mk_err mk_measures_from_exact(const mk_exact *e, const double *sums, int64_t n, const double *scale, int nx, int ny,
                              int y_first, const mk_measure *ms, int nms, mk_par *par, double *values,
                              int64_t *ranks);

#endif
