/* The outputs of a run, written by rank 0 only (not collective):
 * OUTPUT/cka.h5, OUTPUT/cka.csv and a summary on stdout. Files are written
 * under a temporary name and renamed, so a crash never leaves half a result. */
#ifndef MPICKA_OUTPUT_H
#define MPICKA_OUTPUT_H

#include <stdio.h>

#include "mpicka/config.h"
#include "mpicka/error.h"
#include "mpicka/plan.h"
#include "mpicka/source.h"

typedef struct {
    const mk_config *cfg;
    const mk_model *x, *y;  /* y == x for a self comparison */
    const mk_plan *plan;
    const double *cka;      /* x->nlayers by y->nlayers, row-major */
    const double *hxy, *hxx, *hyy;  /* summed minibatch HSICs, or the exact estimator's HSICs */
    const double *stderr_;  /* jackknife standard errors, or NULL */
    const double *pvalue;   /* permutation p-values, or NULL */
    int64_t groups;         /* jackknife groups behind stderr_ */
    int nranks;
    int blas_threads;
    double seconds;         /* this run (segment) */
    double seconds_total;   /* all segments of a resumed run, this one included */
    int64_t segments;
} mk_result;

/* Create the output folder if missing and check that it is writable, before
 * any work is done. *created tells whether it was made now. */
mk_err mk_output_prepare(const char *dir, int *created);

mk_err mk_output_write(const mk_result *res);

/* One line on how the matrix was made: estimator, kernel, error bars. */
void mk_output_describe(const mk_config *cfg, int64_t groups, char *buf, size_t size);

void mk_output_summary(FILE *out, const mk_result *res);

#endif
