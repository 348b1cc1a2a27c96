/* The end of a run after the reduction, shared by `mpicka run` and a
 * library session: the matrices from the summed sums, the checks of the
 * layers' sums, the measures of every pair on one process, and the outputs
 * (cka.h5, cka.csv, the summary, the heatmap). Not collective. */
#ifndef MPICKA_FINISH_H
#define MPICKA_FINISH_H

#include <stdint.h>

#include "mpicka/batch.h"
#include "mpicka/error.h"

/* The matrices the sums give: CKA, and its standard errors and p-values
 * when asked for (NULL otherwise). hsic holds the base (hxy | hxx | hyy). */
typedef struct {
    double *hsic, *cka, *stderr_, *pvalue;
    double *measures; /* mk_measures_outputs matrices, or NULL when none is asked for */
    double *measures_se; /* their standard errors (the Gram measures', with jackknife groups; NaN for the
                            others), or NULL */
} mk_matrices;

void mk_matrices_free(mk_matrices *mx);

/* From total (the tree sum of every batch, mk_batch_leaf_len values): the
 * matrices into mx (measures left NULL). A layer whose summed HSIC with
 * itself is not finite is MK_EDATA; one that is not positive is a warning
 * (its CKA is NaN). */
mk_err mk_finish_matrices(const mk_batch_mem *b, const double *total, mk_matrices *mx);

/* The measures beyond CKA (exact estimator; NULL and MK_OK when none is
 * asked for), every pair on this process's threads: the bits the driver's
 * share over ranks gives (mpicka/measure_sums.h). Warns about the layers'
 * ranks as the driver does. */
mk_err mk_finish_measures(mk_batch_mem *b, const double *total, double **out);

/* Whether cfg lists a measure of the second moments (exact only), which
 * mk_finish_measures (or the driver's share over ranks) computes. */
int mk_finish_has_moments(const mk_config *cfg);

/* The measures from the minibatch Grams (mpicka/gram_measures.h): their
 * means over the batches and jackknife errors from total, into their places
 * among every measure's matrices (mx->measures: the second moments' from
 * mk_finish_measures, or allocated here), with a warning per measure whose
 * layer pairs averaged fewer batches than the run's. Nothing when none is
 * asked for. */
mk_err mk_finish_gram(const mk_batch_mem *b, const double *total, mk_matrices *mx);

/* The measures' warnings: a layer of lower rank than its width, a pair too
 * wide for its examples. ranks: per flat layer, -1 when unused. */
void mk_finish_warn_ranks(const mk_batch_mem *b, const int64_t *ranks);

/* What a result says about how it was made, besides the sums. */
typedef struct {
    int nranks, threads;
    double seconds, seconds_total;
    int64_t segments;
} mk_run_facts;

/* Writes cka.h5 and cka.csv into cfg->output (atomically), the summary on
 * stdout and, when the config asks, the heatmap (a failed drawing is a
 * warning). */
mk_err mk_finish_write(const mk_batch_mem *b, const mk_matrices *mx, const mk_run_facts *facts);

#endif
