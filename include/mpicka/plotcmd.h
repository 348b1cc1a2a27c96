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
    /* A measure of /measures to draw instead of CKA (NULL or "cka": CKA), on
     * the scale mk_plot_measure_scale gives it; a two-model result only. */
    const char *measure;
} mk_plot_pick;

/* The range of the measure called name (an output name of /measures, or
 * "cka") into vmin and vmax: 1 for a distance (0 = the same; its colour map
 * runs the other way, so similar layers look alike in every panel), 0 for a
 * similarity, -1 for a name this version does not know (vmin and vmax
 * untouched; drawn over the range of its values). */
int mk_plot_measure_scale(const char *name, double *vmin, double *vmax);

/* Small multiples of the result at h5path: one heatmap per measure of list
 * ("all" or NULL: cka then every measure in /measures; else names separated
 * by commas, cka for /cka), each on its own scale (mk_plot_measure_scale;
 * opts' vmin and vmax are not used), titled with the measure's name and
 * parameters, the same layer order, in a grid (mk_plot_render_grid).
 * MK_EINPUT naming the file when it has no measures ("all") or not one asked
 * for (listing those it has); MK_EUSAGE for a models result or opts->half. */
mk_err mk_plot_measures(const char *h5path, const mk_plot_opts *opts, const char *list, const char *out_path);

/* Read cka.h5 at h5path and render pick's matrix of it (pick NULL: the CKA
 * matrix, the whole grid; MK_EINPUT naming the file when it has none), the
 * description of /meta as subtitle, and for the CKA matrix its standard
 * errors when the file has them. opts->half needs a result whose `self`
 * attribute is 1. NaN ends of the colour range take the matrix's defaults. */
mk_err mk_plot_result(const char *h5path, const mk_plot_opts *opts, const mk_plot_pick *pick, const char *out_path);

/* `mpicka plot RESULT.h5 -o FIG [options]`; argv[0] is "plot". */
mk_err mk_plot_main(int argc, char **argv);

#endif
