/* The outputs of a run, written by rank 0 only (not collective):
 * OUTPUT/cka.h5, OUTPUT/cka.csv and a summary on stdout. Files are written
 * under a temporary name and renamed, so a crash never leaves half a result. */
#ifndef MPICKA_OUTPUT_H
#define MPICKA_OUTPUT_H

#include <stdio.h>

#include "mpicka/config.h"
#include "mpicka/error.h"
#include "mpicka/lineup.h"
#include "mpicka/plan.h"
#include "mpicka/source.h"

typedef struct {
    const mk_config *cfg;
    const mk_lineup *lu;    /* rows and columns: mk_lineup_rows and mk_lineup_cols */
    const mk_plan *plan;
    const double *cka;      /* rows by cols, row-major */
    const double *hxy, *hxx, *hyy;  /* summed minibatch HSICs, or the exact estimator's HSICs */
    const double *stderr_;  /* jackknife standard errors, or NULL */
    const double *pvalue;   /* permutation p-values, or NULL */
    int64_t groups;         /* jackknife groups behind stderr_ */
    int nranks;
    int threads;            /* per rank (BLAS itself runs single-threaded) */
    double seconds;         /* this run (segment) */
    double seconds_total;   /* all segments of a resumed run, this one included */
    int64_t segments;
    const double *measures; /* cfg->measures' matrices (mk_measures_outputs of them, rows by cols each), or NULL */
    const double *measures_stderr; /* the Gram measures' jackknife standard errors (the same layout), or NULL */
} mk_result;

/* The output folder of a run, held by rank 0 from before any work until
 * mk_output_release (or the process's end, however it ends). */
typedef struct {
    int lock;        /* the descriptor holding the lock on DIR/.mpicka.lock, or -1 */
    char **created;  /* the folders made now (parents first), removed again by a failed run */
    int ncreated;
} mk_outdir;

/* Create the output folder (and its parents) if missing, check that it is
 * writable, lock it for this run (a second run into it is MK_ECONFIG naming
 * the holder) and remove temporary files a killed run left there, before
 * any work is done. plot_file: the heatmap's name, or NULL. od is set even
 * on failure, for mk_output_release. */
mk_err mk_output_prepare(const char *dir, const char *plot_file, mk_outdir *od);

/* Remove the lock file and drop the lock (in that order, so that a run
 * waiting on the old file sees it gone and locks a new one), whether the
 * run succeeded or failed; after a failure, also remove every folder made
 * now that is empty. */
void mk_output_release(mk_outdir *od, const char *dir, int failed);

/* MK_ECONFIG when dir holds a cka.h5 of another configuration than
 * resolved (mk_config.resolved), or one whose configuration cannot be read;
 * how: what the message tells the user to do to overwrite it anyway
 * ("pass --force"). A rerun of the same configuration may overwrite. */
mk_err mk_output_refuse_other(const char *dir, const char *resolved, const char *how);

/* Writes OUTPUT/cka.h5 and OUTPUT/cka.csv (docs/output.md) from res, each
 * under a temporary name in the folder and renamed once both are complete:
 * on any failure (MK_EIO naming the path, MK_ENOMEM) the temporary files
 * are removed and any earlier result is left as it was. Rank 0 only. */
mk_err mk_output_write(const mk_result *res);

/* One line on how the matrix was made: estimator, kernel, error bars. */
void mk_output_describe(const mk_config *cfg, int64_t groups, char *buf, size_t size);

/* The run's summary on out: the models, n, batches, ranks and threads,
 * the time, how the matrix was made (mk_output_describe), and the CKA matrix
 * itself while it has at most 12 columns. Rank 0 only;
 * writes nothing to disk. */
void mk_output_summary(FILE *out, const mk_result *res);

#endif
