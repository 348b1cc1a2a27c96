/* `mpicka plot`, and the heatmap of a written result that `mpicka run`
 * draws beside it: a cka.h5 read (mpicka/ckafile.h) and drawn with the
 * renderer (mpicka/plot.h). Not collective: called by one process. */
#ifndef MPICKA_PLOTCMD_H
#define MPICKA_PLOTCMD_H

#include "mpicka/ckafile.h"
#include "mpicka/error.h"
#include "mpicka/plot.h"

/* Which matrix of a result is drawn. */
typedef struct {
    mk_matrix matrix; /* MK_MATRIX_CKA (the default, zero), _STDERR or _PVALUE */
    /* A models result (NULL: the whole grid, by model): one block ("A,B":
     * model A's layers against model B's), or one layer across every model
     * (its name). At most one of them. */
    const char *pair, *matched;
} mk_plot_pick;

/* Read cka.h5 at h5path and render pick's matrix of it (pick NULL: the CKA
 * matrix, the whole grid; MK_EINPUT naming the file when it has none), the
 * description of /meta as subtitle, and for the CKA matrix its standard
 * errors when the file has them. opts->half needs a result whose `self`
 * attribute is 1. NaN ends of the colour range take the matrix's defaults. */
mk_err mk_plot_result(const char *h5path, const mk_plot_opts *opts, const mk_plot_pick *pick, const char *out_path);

/* `mpicka plot RESULT.h5 -o FIG [options]`; argv[0] is "plot". */
mk_err mk_plot_main(int argc, char **argv);

#endif
