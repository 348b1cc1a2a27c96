/* `mpicka plot`: a cka.h5 drawn as a heatmap (contract in mpicka/plot.h).
 * Not MPI. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/ckafile.h"
#include "mpicka/cli.h"
#include "mpicka/plot.h"

/* Bytes that are not UTF-8 (cairo draws only UTF-8) become '?'. */
static void fix_utf8(mk_ckafile *f)
{
    for (int k = 0; k < f->nx; k++) mk_plot_utf8_fix(f->x_layers[k]);
    for (int k = 0; k < f->ny; k++) mk_plot_utf8_fix(f->y_layers[k]);
    for (int k = 0; k < f->nattrs; k++)
        if (f->attrs[k].kind == MK_ATTR_TEXT) mk_plot_utf8_fix(f->attrs[k].text);
    for (int k = 0; k < f->nmeta; k++)
        if (f->meta[k].kind == MK_ATTR_TEXT) mk_plot_utf8_fix(f->meta[k].text);
    for (int k = 0; k < f->nmodels; k++) mk_plot_utf8_fix(f->model_names[k]);
}

/* NaN ends of the colour range become the matrix's defaults: 0 to 1, and for
 * standard errors 0 to the largest (their scale is the data's, not CKA's). */
static void default_range(mk_plot_opts *o, const mk_ckafile *f)
{
    const double *v = mk_ckafile_matrix(f, f->shown);
    double top = -INFINITY;
    if (isnan(o->vmin)) o->vmin = 0.0;
    if (!isnan(o->vmax)) return;
    for (size_t k = 0; f->shown == MK_MATRIX_STDERR && k < (size_t)f->nx * f->ny; k++)
        if (isfinite(v[k])) top = fmax(top, v[k]);
    o->vmax = top > o->vmin ? top : o->vmin + 1.0;
}

/* "LAYER across N models": the default title of mk_ckafile_matched's view. */
static mk_err matched_title(const mk_ckafile *f, char **title)
{
    mk_err err = MK_OK;
    const char *layer = mk_ckafile_text(f, "x_name");
    size_t len = strlen(layer) + 48;
    *title = mk_malloc(len, "the title", &err);
    if (*title) snprintf(*title, len, "%s across %d models", layer, f->nx);
    return err;
}

static mk_err plot_file(const char *h5path, const mk_plot_opts *opts, const char *out_path, mk_ckafile *f)
{
    int is_self = mk_ckafile_self(f);
    const char *x = mk_ckafile_text(f, "x_name"), *y = mk_ckafile_text(f, "y_name");
    char *title = NULL;
    if (opts->half && !is_self)
        return mk_fail(MK_EUSAGE, "plot: --half needs a self comparison, and '%s' compares %s with %s", h5path,
                       x, y);
    MK_TRY(mk_ckafile_choose(f, h5path, opts->matrix));
    mk_plot_opts o = *opts;
    default_range(&o, f);
    if (f->matched && !o.title) MK_TRY(matched_title(f, &title));
    if (title) o.title = title;
    if (f->matched) x = y = "model"; /* rows and columns are models; the title names the layer */
    int cka = f->shown == MK_MATRIX_CKA;
    mk_plot_data d = {.rows = f->nx, .cols = f->ny, .values = mk_ckafile_matrix(f, f->shown),
                      .row_labels = (const char *const *)f->x_layers,
                      .col_labels = (const char *const *)f->y_layers,
                      .row_title = x, .col_title = y, .self = is_self,
                      .errors = cka ? f->cka_stderr : NULL,
                      .subtitle = mk_ckafile_meta_text(f, "description"),
                      .value_title = cka ? NULL : mk_matrix_what(f->shown),
                      .value_decimals = cka ? 2 : 3,
                      .ngroups = f->nmodels, .group_labels = (const char *const *)f->model_names,
                      .group_offsets = f->model_offsets};
    mk_err err = mk_plot_render(&d, &o, out_path);
    free(title);
    return err;
}

/* The grid of a models result, or the view opts asks for. */
static mk_err plot_view(const char *h5path, const mk_plot_opts *opts, const char *out_path, mk_ckafile *f)
{
    mk_ckafile view;
    mk_err err;
    if (opts->pair && opts->matched)
        return mk_fail(MK_EUSAGE, "plot: --pair and --matched draw different matrices: give one of them");
    if (!opts->pair && !opts->matched) return plot_file(h5path, opts, out_path, f);
    if (opts->pair)
        err = mk_ckafile_pair_spec(f, h5path, "plot", opts->pair, &view);
    else
        err = mk_ckafile_matched(f, h5path, opts->matched, &view);
    if (!err) err = plot_file(h5path, opts, out_path, &view);
    mk_ckafile_free(&view);
    return err;
}

mk_err mk_plot_result(const char *h5path, const mk_plot_opts *opts, const char *out_path)
{
    mk_ckafile f;
    mk_err err = mk_ckafile_read(h5path, &f);
    if (!err) {
        fix_utf8(&f);
        err = plot_view(h5path, opts, out_path, &f);
    }
    mk_ckafile_free(&f);
    return err;
}

/* ---- command line ---------------------------------------------------------- */

enum {
    O_OUT,
    O_TITLE,
    O_CMAP,
    O_VMIN,
    O_VMAX,
    O_ANNOTATE,
    O_NO_ANNOTATE,
    O_HALF,
    O_INVERT_Y,
    O_SHORT,
    O_MATRIX,
    O_ERRORS,
    O_PAIR,
    O_MATCHED,
    O_COUNT
};

static const mk_cli_opt plot_table[O_COUNT] = {
    [O_OUT] = {"--output", "-o", "FIG", "the figure to write: .png, .svg or .pdf (required)"},
    [O_TITLE] = {"--title", NULL, "T", "title (default \"X vs Y\", \"X\" for a self comparison; \"\": none)"},
    [O_CMAP] = {"--cmap", NULL, "NAME", "colour map: magma (default), viridis, inferno or gray"},
    [O_VMIN] = {"--vmin", NULL, "V", "value at the bottom of the colour bar (default 0)"},
    [O_VMAX] = {"--vmax", NULL, "V",
                "value at the top of the colour bar (default 1; with --matrix stderr, the largest)"},
    [O_ANNOTATE] = {"--annotate", NULL, NULL,
                    "write every cell's value (default: when cells are large enough)"},
    [O_NO_ANNOTATE] = {"--no-annotate", NULL, NULL, "never write cell values"},
    [O_HALF] = {"--half", NULL, NULL, "lower triangle only (self comparisons)"},
    [O_INVERT_Y] = {"--invert-y", NULL, NULL, "first x layer at the bottom instead of the top"},
    [O_SHORT] = {"--short-names", NULL, "K", "label layers by their last K '/'-components (default 0: full)"},
    [O_MATRIX] = {"--matrix", NULL, "M",
                  "cka (default), stderr (standard errors) or pvalue (p-values): the one drawn"},
    [O_ERRORS] = {"--errors", NULL, NULL,
                  "each CKA value in a cell with its standard error below (if in the file)"},
    [O_PAIR] = {"--pair", NULL, "A,B",
                "a models result: model A's layers (rows) against model B's (columns) alone"},
    [O_MATCHED] = {"--matched", NULL, "LAYER", "a models result: the model-by-model matrix of one layer"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: mpicka plot RESULT.h5 -o FIG.{png,svg,pdf} [options]\n"
                 "Draw the CKA matrix of a cka.h5 (written by mpicka run) as a heatmap: x layers as rows,\n"
                 "y layers as columns, NaN cells grey; under the title, how the matrix was made (when the\n"
                 "file says). A models result (a run with models:) is drawn as one grid, the models'\n"
                 "names beside and below their blocks, unless --pair or --matched picks one view. Not MPI.\n\n");
    mk_cli_help(out, plot_table, O_COUNT);
    fprintf(out, "  %-22s %s\n", "-h, --help", "print this text");
}

/* Unset ends are NaN: mk_plot_result gives them the matrix's defaults. An
 * empty range is caught here when both ends are known without the file. */
static mk_err read_range(const char *const *v, mk_plot_opts *o)
{
    o->vmin = o->vmax = NAN;
    if (v[O_VMIN]) MK_TRY(mk_cli_real("plot", "--vmin", v[O_VMIN], &o->vmin));
    if (v[O_VMAX]) MK_TRY(mk_cli_real("plot", "--vmax", v[O_VMAX], &o->vmax));
    double lo = isnan(o->vmin) ? 0.0 : o->vmin;
    double hi = !isnan(o->vmax) ? o->vmax : o->matrix == MK_MATRIX_STDERR ? NAN : 1.0;
    if (lo >= hi)
        return mk_fail(MK_EUSAGE, "plot: the colour range is empty: --vmin %g must be below --vmax %g", lo, hi);
    return MK_OK;
}

static mk_err read_options(const char *const *v, mk_plot_opts *o)
{
    double rgb[3];
    long k = 0;
    mk_plot_opts_default(o);
    o->title = v[O_TITLE];
    if (v[O_CMAP] && mk_plot_cmap(v[O_CMAP], 0.0, rgb) != MK_OK)
        return mk_fail(MK_EUSAGE,
                       "plot: --cmap '%s': unknown colour map (use magma, viridis, inferno or gray)",
                       v[O_CMAP]);
    if (v[O_CMAP]) o->cmap = v[O_CMAP];
    if (v[O_MATRIX]) MK_TRY(mk_matrix_parse("plot", v[O_MATRIX], &o->matrix));
    MK_TRY(read_range(v, o));
    if (v[O_ANNOTATE] && v[O_NO_ANNOTATE])
        return mk_fail(MK_EUSAGE, "plot: --annotate and --no-annotate contradict each other");
    o->annotate = v[O_ANNOTATE] ? 1 : v[O_NO_ANNOTATE] ? 0 : -1;
    o->half = v[O_HALF] != NULL;
    o->invert_y = v[O_INVERT_Y] != NULL;
    o->errors = v[O_ERRORS] != NULL;
    o->pair = v[O_PAIR];
    o->matched = v[O_MATCHED];
    if (o->pair && o->matched)
        return mk_fail(MK_EUSAGE, "plot: --pair and --matched draw different matrices: give one of them");
    if (v[O_SHORT]) MK_TRY(mk_cli_int("plot", "--short-names", v[O_SHORT], 0, 1000, &k));
    o->short_names = (int)k;
    return MK_OK;
}

mk_err mk_plot_main(int argc, char **argv)
{
    const char *v[O_COUNT], *pos[1];
    int npos, help;
    mk_plot_opts o;
    MK_TRY(mk_cli_parse("plot", plot_table, O_COUNT, argc, argv, v, pos, 1, &npos, &help));
    if (help) {
        print_usage(stdout);
        return MK_OK;
    }
    if (npos == 0)
        return mk_fail(MK_EUSAGE, "plot: missing RESULT.h5 (usage: mpicka plot RESULT.h5 -o FIG.png)");
    if (!v[O_OUT] || !v[O_OUT][0])
        return mk_fail(MK_EUSAGE, "plot: missing -o FIG (a .png, .svg or .pdf file)");
    MK_TRY(mk_plot_check_extension(v[O_OUT]));
    MK_TRY(read_options(v, &o));
    MK_TRY(mk_plot_result(pos[0], &o, v[O_OUT]));
    printf("mpicka: wrote %s\n", v[O_OUT]);
    return MK_OK;
}
