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
 * standard errors 0 to the largest (their scale is the data's, not CKA's).
 * A measure's come from its range (mk_plot_measure_scale), and a distance
 * runs its colour map the other way. */
static void default_range(mk_plot_opts *o, const mk_ckafile *f)
{
    const double *v = mk_ckafile_matrix(f, f->shown);
    double top = -INFINITY, lo = 0.0, hi = NAN;
    size_t count = (size_t)f->nx * f->ny;
    if (f->measure) {
        int kind = mk_plot_measure_scale(f->measure, &lo, &hi);
        o->reverse = kind == 1;
        if (kind < 0) { /* a measure this version does not know: the data's own range */
            lo = INFINITY;
            for (size_t k = 0; k < count; k++)
                if (isfinite(v[k])) lo = fmin(lo, v[k]), top = fmax(top, v[k]);
            if (!isfinite(lo)) lo = 0.0;
        }
    }
    if (isnan(o->vmin)) o->vmin = lo;
    if (!isnan(o->vmax)) return;
    if (!isnan(hi)) top = hi;
    for (size_t k = 0; f->shown == MK_MATRIX_STDERR && k < count; k++)
        if (isfinite(v[k])) top = fmax(top, v[k]);
    o->vmax = top > o->vmin ? top : o->vmin + 1.0;
}

/* Each measure's range and direction (docs/maths.md, "Measures from the
 * second moments"). */
static const struct {
    const char *name;
    double lo, hi;
    int distance;
    const char *range; /* for the colour bar */
} scales[] = {
    {"cka", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"cca_mean", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"cca_r2", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"svcca", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"pwcca", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"procrustes", 0.0, 2.0, 1, "distance, 0 to 2"},
    {"shape", 0.0, 1.57079632679489661923, 1, "distance, 0 to π/2 rad"},
    {"regression_y_from_x", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"regression_x_from_y", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"rsa", -1.0, 1.0, 0, "similarity, -1 to 1"},
    {"mutual_knn", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"cknna", 0.0, 1.0, 0, "similarity, 0 to 1"},
    {"jaccard", 0.0, 1.0, 0, "similarity, 0 to 1"},
};
#define NSCALES ((int)(sizeof scales / sizeof *scales))

static int scale_index(const char *name)
{
    for (int k = 0; k < NSCALES; k++)
        if (strcmp(scales[k].name, name) == 0) return k;
    return -1;
}

int mk_plot_measure_scale(const char *name, double *vmin, double *vmax)
{
    int k = scale_index(name);
    if (k < 0) return -1;
    *vmin = scales[k].lo;
    *vmax = scales[k].hi;
    return scales[k].distance;
}

/* "NAME (distance, 0 to 2)": the colour bar's title of a measure. */
static void measure_bar_title(const char *name, char *buf, size_t size)
{
    int k = scale_index(name);
    snprintf(buf, size, "%s (%s)", name, k < 0 ? "range of the data" : scales[k].range);
}

/* "svcca (keep 0.99)": a measure's name and its parameters, from its
 * dataset's attributes. */
static void measure_title(const mk_ckafile *f, char *buf, size_t size)
{
    const mk_attr *keep = mk_ckafile_measure_attr(f, "keep"), *k = mk_ckafile_measure_attr(f, "k");
    const mk_attr *alpha = mk_ckafile_measure_attr(f, "alpha");
    if (!f->measure)
        snprintf(buf, size, "cka");
    else if (k && k->kind == MK_ATTR_INT && k->i > 0)
        snprintf(buf, size, "%s (k %lld)", f->measure, (long long)k->i);
    else if (keep && keep->kind == MK_ATTR_REAL)
        snprintf(buf, size, "%s (keep %g)", f->measure, keep->r);
    else if (alpha && alpha->kind == MK_ATTR_REAL)
        snprintf(buf, size, "%s (alpha %g)", f->measure, alpha->r);
    else
        snprintf(buf, size, "%s", f->measure);
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

/* What the renderer draws of f (its strings stay f's); bar: the colour
 * bar's title of a measure (size 128). */
static void file_data(const mk_ckafile *f, const char *x, const char *y, char *bar, mk_plot_data *d)
{
    int cka = f->shown == MK_MATRIX_CKA && !f->measure;
    const mk_attr *what = f->measure ? mk_ckafile_measure_attr(f, "description") : NULL;
    const char *subtitle = mk_ckafile_meta_text(f, "description");
    if (what && what->kind == MK_ATTR_TEXT && what->text[0]) subtitle = what->text;
    if (f->measure) measure_bar_title(f->measure, bar, 128);
    *d = (mk_plot_data){.rows = f->nx, .cols = f->ny, .values = mk_ckafile_matrix(f, f->shown),
                        .row_labels = (const char *const *)f->x_layers,
                        .col_labels = (const char *const *)f->y_layers,
                        .row_title = x, .col_title = y, .self = mk_ckafile_self(f),
                        .errors = cka ? f->cka_stderr : NULL,
                        .subtitle = subtitle,
                        .value_title = f->measure ? bar : cka ? NULL : mk_matrix_what(f->shown),
                        .value_decimals = cka ? 2 : 3,
                        .ngroups = f->nmodels, .group_labels = (const char *const *)f->model_names,
                        .group_offsets = f->model_offsets};
}

static mk_err plot_file(const char *h5path, const mk_plot_opts *opts, mk_matrix matrix, const char *out_path,
                        mk_ckafile *f)
{
    const char *x = mk_ckafile_text(f, "x_name"), *y = mk_ckafile_text(f, "y_name");
    char *title = NULL, bar[128];
    if (opts->half && !mk_ckafile_self(f))
        return mk_fail(MK_EUSAGE, "plot: --half needs a self comparison, and '%s' compares %s with %s", h5path,
                       x, y);
    MK_TRY(mk_ckafile_choose(f, h5path, matrix));
    mk_plot_opts o = *opts;
    default_range(&o, f);
    if (f->matched && !o.title) MK_TRY(matched_title(f, &title));
    if (title) o.title = title;
    if (f->matched) x = y = "model"; /* rows and columns are models; the title names the layer */
    mk_plot_data d;
    file_data(f, x, y, bar, &d);
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
    if (pick->measure && pick->matched)
        return mk_fail(MK_EUSAGE, "plot: --matched draws CKA's matched view, without --measure (use --pair)");
    if (pick->measure && strcmp(pick->measure, "cka") != 0) MK_TRY(mk_ckafile_measure_grid(f, h5path, pick->measure));
    if (!pick->pair && !pick->matched) return plot_file(h5path, opts, pick->matrix, out_path, f);
    if (pick->pair)
        err = mk_ckafile_pair_spec(f, h5path, "plot", pick->pair, &view);
    else
        err = mk_ckafile_matched(f, h5path, pick->matched, &view);
    if (!err) err = plot_file(h5path, opts, pick->matrix, out_path, &view); /* the view is of the measure */
    mk_ckafile_free(&view);
    return err;
}

mk_err mk_plot_result(const char *h5path, const mk_plot_opts *opts, const mk_plot_pick *pick, const char *out_path)
{
    static const mk_plot_pick whole = {MK_MATRIX_CKA, NULL, NULL, NULL};
    mk_ckafile f;
    mk_err err = mk_ckafile_read(h5path, &f);
    if (!err) {
        fix_utf8(&f);
        err = plot_view(h5path, opts, pick ? pick : &whole, out_path, &f);
    }
    mk_ckafile_free(&f);
    return err;
}

/* ---- small multiples ------------------------------------------------------- */

/* The order of "all" into names (at most max; pointers into found, the
 * file's measures, which the caller frees): cka, the measures of the scales'
 * table in its order (that of docs/maths.md), then any others in name
 * order. */
static mk_err all_measures(const char *h5path, char ***found, int *nfound, const char **names, int max, int *n)
{
    MK_TRY(mk_ckafile_measure_names(h5path, found, nfound));
    if (*nfound == 0)
        return mk_fail(MK_EINPUT, "'%s' has no measures besides CKA (a run computes them with the config key "
                       "measures)", h5path);
    *n = 0;
    names[(*n)++] = "cka";
    for (int k = 1; k <= NSCALES; k++)
        for (int j = 0; j < *nfound && *n < max; j++) {
            int at = scale_index((*found)[j]);
            size_t len = strlen((*found)[j]);
            if ((len > 7 && !strcmp((*found)[j] + len - 7, "_stderr")) ||
                (len > 8 && !strcmp((*found)[j] + len - 8, "_matched")))
                continue; /* errors and matched views, not measures */
            if (at == 0 || (k < NSCALES ? at != k : at >= 0)) continue;
            names[(*n)++] = (*found)[j];
        }
    return MK_OK;
}

/* "a,b,c" split in place into names (at most max). */
static mk_err split_list(char *list, const char **names, int max, int *n)
{
    *n = 0;
    for (char *p = strtok(list, ","); p; p = strtok(NULL, ",")) {
        if (*n == max) return mk_fail(MK_EUSAGE, "plot: --measures lists more than %d measures", max);
        names[(*n)++] = p;
    }
    if (*n == 0) return mk_fail(MK_EUSAGE, "plot: --measures needs 'all' or a comma-separated list of names");
    return MK_OK;
}

#define MAX_PANELS 32

struct panels {
    mk_ckafile files[MAX_PANELS];
    mk_plot_panel panels[MAX_PANELS];
    char titles[MAX_PANELS][96], bars[MAX_PANELS][128];
    int n;
};

/* Panel k: the measure called name of the result (cka: /cka itself). */
static mk_err add_panel(struct panels *p, const char *h5path, const mk_plot_opts *opts, const char *name)
{
    int k = p->n;
    mk_ckafile *f = &p->files[k];
    MK_TRY(mk_ckafile_read(h5path, f));
    p->n++;
    fix_utf8(f);
    if (strcmp(name, "cka") != 0) MK_TRY(mk_ckafile_measure_grid(f, h5path, name));
    mk_plot_panel *pn = &p->panels[k];
    pn->opts = *opts;
    pn->opts.vmin = pn->opts.vmax = NAN; /* each panel its own scale */
    default_range(&pn->opts, f);
    measure_title(f, p->titles[k], sizeof p->titles[k]);
    pn->opts.title = p->titles[k];
    file_data(f, mk_ckafile_text(f, "x_name"), mk_ckafile_text(f, "y_name"), p->bars[k], &pn->data);
    if (!f->measure) {
        snprintf(p->bars[k], sizeof p->bars[k], "cka (similarity, 0 to 1)");
        pn->data.value_title = p->bars[k];
    }
    pn->data.subtitle = NULL; /* the panels' titles say it; the descriptions are in cka.h5 */
    pn->opts.errors = 0;
    return MK_OK;
}

/* "X vs Y" (or "X"), the figure's default title, into buf. */
static void grid_title(const mk_ckafile *f, char *buf, size_t size)
{
    const char *x = mk_ckafile_text(f, "x_name"), *y = mk_ckafile_text(f, "y_name");
    if (mk_ckafile_self(f))
        snprintf(buf, size, "%s: measures", x);
    else
        snprintf(buf, size, "%s vs %s: measures", x, y);
}

static mk_err draw_panels(const char *h5path, const mk_plot_opts *opts, const char *const *names, int n,
                          const char *out_path)
{
    struct panels *p = calloc(1, sizeof *p);
    char title[256];
    mk_err err = p ? MK_OK : mk_fail(MK_ENOMEM, "out of memory for the panels");
    if (opts->half) err = mk_fail(MK_EUSAGE, "plot: --half draws one matrix; pwcca, regression and cknna are not symmetric");
    for (int k = 0; !err && k < n; k++) err = add_panel(p, h5path, opts, names[k]);
    if (!err) {
        grid_title(&p->files[0], title, sizeof title);
        err = mk_plot_render_grid(p->panels, p->n, 0, opts->title ? opts->title : title, out_path);
    }
    for (int k = 0; p && k < p->n; k++) mk_ckafile_free(&p->files[k]);
    free(p);
    return err;
}

mk_err mk_plot_measures(const char *h5path, const mk_plot_opts *opts, const char *list, const char *out_path)
{
    const char *names[MAX_PANELS];
    char **found = NULL, *copy = NULL;
    int n = 0, nfound = 0;
    mk_err err = MK_OK;
    MK_TRY(mk_plot_check_extension(out_path));
    if (!list || strcmp(list, "all") == 0) {
        err = all_measures(h5path, &found, &nfound, names, MAX_PANELS, &n);
        if (!err) err = draw_panels(h5path, opts, names, n, out_path);
        mk_ckafile_names_free(found, nfound);
        return err;
    }
    copy = mk_malloc(strlen(list) + 1, "the measures' names", &err);
    if (copy) err = split_list(strcpy(copy, list), names, MAX_PANELS, &n);
    if (!err) err = draw_panels(h5path, opts, names, n, out_path);
    free(copy);
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
    O_MEASURE,
    O_MEASURES,
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
    [O_MEASURE] = {"--measure", NULL, MK_OPT_STRING, "NAME",
                   .help = "a measure besides CKA (/measures/NAME: cca_mean, cca_r2, svcca, pwcca, procrustes, shape, "
                           "regression_y_from_x, regression_x_from_y, rsa, mutual_knn, cknna, jaccard, NAME_stderr) "
                           "on its own scale; distances run the colour map the other way"},
    [O_MEASURES] = {"--measures", NULL, MK_OPT_STRING, "LIST",
                    .help = "small multiples: one heatmap per measure, 'all' (cka and every measure in the file) or "
                            "names separated by commas, each on its own scale"},
};

static const mk_cli_cmd plot_cmd = {
    "plot", "mpicka plot RESULT.h5 -o FIG.{png,svg,pdf} [options]",
    "Draw the CKA matrix of a cka.h5 (written by mpicka run) as a heatmap: x layers as rows,\n"
    "y layers as columns, NaN cells grey; under the title, how the matrix was made (when the\n"
    "file says). A models result (a run with models:) is drawn as one grid, the models'\n"
    "names beside and below their blocks, unless --pair or --matched picks one view. With\n"
    "--measure, one measure of a run with measures: (estimator exact); with --measures, one\n"
    "panel per measure in a grid. Not MPI.",
    plot_opts, O_COUNT, (const char *const[]){"RESULT.h5"}, 1};

/* Unset ends are NaN: mk_plot_result gives them the matrix's defaults. An
 * empty range is caught here when both ends are known without the file. */
static mk_err read_range(const mk_opt_val *v, mk_matrix matrix, mk_plot_opts *o)
{
    o->vmin = v[O_VMIN].given ? v[O_VMIN].r : NAN;
    o->vmax = v[O_VMAX].given ? v[O_VMAX].r : NAN;
    double lo = isnan(o->vmin) ? 0.0 : o->vmin;
    double hi = !isnan(o->vmax) ? o->vmax : matrix == MK_MATRIX_STDERR || v[O_MEASURE].given ? NAN : 1.0;
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

/* What --measure and --measures cannot go with. */
static mk_err check_measure_options(const mk_opt_val *v)
{
    static const int others[] = {O_MATRIX, O_MATCHED, O_ERRORS, O_PAIR};
    if (v[O_MEASURE].given && v[O_MEASURES].given)
        return mk_fail(MK_EUSAGE, "plot: --measure draws one measure and --measures several: give one of them");
    for (int w = O_MEASURE; w <= O_MEASURES; w++)
        for (size_t k = 0; v[w].given && k < sizeof others / sizeof *others - (w == O_MEASURE); k++)
            if (v[others[k]].given)
                return mk_fail(MK_EUSAGE, "plot: %s draws measures of the whole result, without %s",
                               plot_opts[w].name, plot_opts[others[k]].name);
    if (v[O_MEASURES].given && (v[O_VMIN].given || v[O_VMAX].given))
        return mk_fail(MK_EUSAGE, "plot: --measures draws each panel on its measure's own scale, without --vmin "
                       "or --vmax (use --measure NAME --vmin V --vmax V for one)");
    return MK_OK;
}

static mk_err read_options(const mk_opt_val *v, mk_plot_opts *o, mk_plot_pick *pick)
{
    mk_plot_opts_default(o);
    *pick = (mk_plot_pick){MK_MATRIX_CKA, v[O_PAIR].text, v[O_MATCHED].text, v[O_MEASURE].text};
    MK_TRY(check_measure_options(v));
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
    if (v[O_MEASURES].given)
        MK_TRY(mk_plot_measures(args[0], &o, v[O_MEASURES].text, fig));
    else
        MK_TRY(mk_plot_result(args[0], &o, &pick, fig));
    printf("mpicka: wrote %s\n", fig);
    return MK_OK;
}

mk_err mk_plot_main(int argc, char **argv) { return mk_cli_main(&plot_cmd, argc, argv, plot_command); }
