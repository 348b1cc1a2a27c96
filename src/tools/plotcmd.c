/* `mpicka plot`: a cka.h5 drawn as a heatmap (contract in mpicka/plot.h).
 * Not MPI. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/ckafile.h"
#include "mpicka/cli.h"
#include "mpicka/plotcmd.h"

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

static mk_err plot_file(const char *h5path, const mk_plot_opts *opts, mk_matrix matrix, const char *out_path,
                        mk_ckafile *f)
{
    int is_self = mk_ckafile_self(f);
    const char *x = mk_ckafile_text(f, "x_name"), *y = mk_ckafile_text(f, "y_name");
    char *title = NULL;
    if (opts->half && !is_self)
        return mk_fail(MK_EUSAGE, "plot: --half needs a self comparison, and '%s' compares %s with %s", h5path,
                       x, y);
    MK_TRY(mk_ckafile_choose(f, h5path, matrix));
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

/* The grid of a models result, or the view pick asks for. */
static mk_err plot_view(const char *h5path, const mk_plot_opts *opts, const mk_plot_pick *pick, const char *out_path,
                        mk_ckafile *f)
{
    mk_ckafile view;
    mk_err err;
    if (pick->pair && pick->matched)
        return mk_fail(MK_EUSAGE, "plot: --pair and --matched draw different matrices: give one of them");
    if (!pick->pair && !pick->matched) return plot_file(h5path, opts, pick->matrix, out_path, f);
    if (pick->pair)
        err = mk_ckafile_pair_spec(f, h5path, "plot", pick->pair, &view);
    else
        err = mk_ckafile_matched(f, h5path, pick->matched, &view);
    if (!err) err = plot_file(h5path, opts, pick->matrix, out_path, &view);
    mk_ckafile_free(&view);
    return err;
}

mk_err mk_plot_result(const char *h5path, const mk_plot_opts *opts, const mk_plot_pick *pick, const char *out_path)
{
    static const mk_plot_pick whole = {MK_MATRIX_CKA, NULL, NULL};
    mk_ckafile f;
    mk_err err = mk_ckafile_read(h5path, &f);
    if (!err) {
        fix_utf8(&f);
        err = plot_view(h5path, opts, pick ? pick : &whole, out_path, &f);
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

static const mk_opt plot_opts[O_COUNT] = {
    [O_OUT] = {"--output", "-o", MK_OPT_STRING, "FIG", .help = "the figure to write: .png, .svg or .pdf (required)"},
    [O_TITLE] = {"--title", NULL, MK_OPT_STRING, "T",
                 .help = "title (default \"X vs Y\", \"X\" for a self comparison; \"\": none)"},
    [O_CMAP] = {"--cmap", NULL, MK_OPT_STRING, "NAME", .help = "colour map: magma (default), viridis, inferno or gray"},
    [O_VMIN] = {"--vmin", NULL, MK_OPT_REAL, "V", -HUGE_VAL, HUGE_VAL,
                .help = "value at the bottom of the colour bar (default 0)"},
    [O_VMAX] = {"--vmax", NULL, MK_OPT_REAL, "V", -HUGE_VAL, HUGE_VAL,
                .help = "value at the top of the colour bar (default 1; with --matrix stderr, the largest)"},
    [O_ANNOTATE] = {"--annotate", NULL, MK_OPT_FLAG,
                    .help = "write every cell's value (default: when cells are large enough)"},
    [O_NO_ANNOTATE] = {"--no-annotate", NULL, MK_OPT_FLAG, .help = "never write cell values"},
    [O_HALF] = {"--half", NULL, MK_OPT_FLAG, .help = "lower triangle only (self comparisons)"},
    [O_INVERT_Y] = {"--invert-y", NULL, MK_OPT_FLAG, .help = "first x layer at the bottom instead of the top"},
    [O_SHORT] = {"--short-names", NULL, MK_OPT_INT, "K", 0, 1000, .deflt = "0",
                 .help = "label layers by their last K parts ('/' or '.' separate them; 0: the full names)"},
    [O_MATRIX] = {"--matrix", NULL, MK_OPT_STRING, "M",
                  .help = "cka (default), stderr (standard errors) or pvalue (p-values): the one drawn"},
    [O_ERRORS] = {"--errors", NULL, MK_OPT_FLAG,
                  .help = "each CKA value in a cell with its standard error below (if in the file)"},
    [O_PAIR] = {"--pair", NULL, MK_OPT_STRING, "A,B",
                .help = "a models result: model A's layers (rows) against model B's (columns) alone"},
    [O_MATCHED] = {"--matched", NULL, MK_OPT_STRING, "LAYER",
                   .help = "a models result: the model-by-model matrix of one layer"},
};

static const mk_cli_cmd plot_cmd = {
    "plot", "mpicka plot RESULT.h5 -o FIG.{png,svg,pdf} [options]",
    "Draw the CKA matrix of a cka.h5 (written by mpicka run) as a heatmap: x layers as rows,\n"
    "y layers as columns, NaN cells grey; under the title, how the matrix was made (when the\n"
    "file says). A models result (a run with models:) is drawn as one grid, the models'\n"
    "names beside and below their blocks, unless --pair or --matched picks one view. Not MPI.",
    plot_opts, O_COUNT, (const char *const[]){"RESULT.h5"}, 1};

/* Unset ends are NaN: mk_plot_result gives them the matrix's defaults. An
 * empty range is caught here when both ends are known without the file. */
static mk_err read_range(const mk_opt_val *v, mk_matrix matrix, mk_plot_opts *o)
{
    o->vmin = v[O_VMIN].given ? v[O_VMIN].r : NAN;
    o->vmax = v[O_VMAX].given ? v[O_VMAX].r : NAN;
    double lo = isnan(o->vmin) ? 0.0 : o->vmin;
    double hi = !isnan(o->vmax) ? o->vmax : matrix == MK_MATRIX_STDERR ? NAN : 1.0;
    if (lo >= hi)
        return mk_fail(MK_EUSAGE, "plot: the colour range is empty: --vmin %g must be below --vmax %g", lo, hi);
    return MK_OK;
}

static mk_err read_cmap(const mk_opt_val *v, mk_plot_opts *o)
{
    if (!v[O_CMAP].given) return MK_OK;
    o->cmap = mk_plot_cmap_index(v[O_CMAP].text);
    if (o->cmap >= 0) return MK_OK;
    char names[128];
    mk_plot_cmap_list(names, sizeof names);
    return mk_fail(MK_EUSAGE, "plot: --cmap '%s': unknown colour map (use %s)", v[O_CMAP].text, names);
}

static mk_err read_options(const mk_opt_val *v, mk_plot_opts *o, mk_plot_pick *pick)
{
    mk_plot_opts_default(o);
    *pick = (mk_plot_pick){MK_MATRIX_CKA, v[O_PAIR].text, v[O_MATCHED].text};
    o->title = v[O_TITLE].text;
    MK_TRY(read_cmap(v, o));
    if (v[O_MATRIX].given) MK_TRY(mk_matrix_parse("plot", v[O_MATRIX].text, &pick->matrix));
    MK_TRY(read_range(v, pick->matrix, o));
    if (v[O_ANNOTATE].given && v[O_NO_ANNOTATE].given)
        return mk_fail(MK_EUSAGE, "plot: --annotate and --no-annotate contradict each other");
    o->annotate = v[O_ANNOTATE].given ? MK_ANNOTATE_ALWAYS : v[O_NO_ANNOTATE].given ? MK_ANNOTATE_NEVER : MK_ANNOTATE_AUTO;
    o->half = v[O_HALF].given;
    o->invert_y = v[O_INVERT_Y].given;
    o->errors = v[O_ERRORS].given;
    if (pick->pair && pick->matched)
        return mk_fail(MK_EUSAGE, "plot: --pair and --matched draw different matrices: give one of them");
    o->short_names = v[O_SHORT].i;
    return MK_OK;
}

static mk_err plot_command(const mk_opt_val *v, const char *const *args)
{
    mk_plot_opts o;
    mk_plot_pick pick;
    const char *fig = v[O_OUT].text;
    if (!fig || !fig[0]) return mk_fail(MK_EUSAGE, "plot: missing -o FIG (a .png, .svg or .pdf file)");
    MK_TRY(mk_plot_check_extension(fig));
    MK_TRY(read_options(v, &o, &pick));
    MK_TRY(mk_plot_result(args[0], &o, &pick, fig));
    printf("mpicka: wrote %s\n", fig);
    return MK_OK;
}

mk_err mk_plot_main(int argc, char **argv) { return mk_cli_main(&plot_cmd, argc, argv, plot_command); }
