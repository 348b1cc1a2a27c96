/* Tests of the measures' figures: `mpicka plot --measure NAME` on the
 * measure's own scale, a distance's colours running the other way, and the
 * small multiples of `--measures` (mk_plot_render_grid). Results are real
 * cka.h5 files (the test-side writer, plus /measures written here as
 * docs/maths.md describes it); figures are real PNG, SVG and PDF files read
 * back. */
#include <cairo.h>
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpicka/plot.h"
#include "mpicka/plotcmd.h"
#include "resultfile.h"
#include "testutil.h"

#define NX 3
#define NY 2

/* ---- a result with measures ---------------------------------------------------- */

static void attr_double(hid_t loc, const char *name, double v)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(a >= 0 && H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a), H5Sclose(space);
}

static void attr_text(hid_t loc, const char *name, const char *text)
{
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(a >= 0 && H5Awrite(a, type, &text) >= 0);
    H5Aclose(a), H5Sclose(space), H5Tclose(type);
}

/* /measures/NAME (NX by NY, values v) with its attributes, as a run writes
 * it; param and pvalue: one parameter (NULL: none). */
static void add_measure_shaped(hid_t gid, const char *name, const double *v, const char *param, double pvalue,
                               hsize_t rows, hsize_t cols)
{
    hsize_t dims[2] = {rows, cols};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(gid, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(d >= 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    attr_text(d, "measure", name);
    attr_text(d, "description", "a test measure");
    if (param) attr_double(d, param, pvalue);
    H5Dclose(d), H5Sclose(space);
}

static void add_measure(hid_t gid, const char *name, const double *v, const char *param, double pvalue)
{
    add_measure_shaped(gid, name, v, param, pvalue, NX, NY);
}

static const double svcca_v[NX * NY] = {0.9, 0.5, 0.4, 0.8, 0.1, 0.3};
static const double procrustes_v[NX * NY] = {0.0, 2.0, 0.5, 1.0, 1.5, 0.25};
static const double shape_v[NX * NY] = {0.0, 1.5707963267948966, 0.2, 0.4, 0.8, 1.2};

/* rf_write_simple's result (NX by NY) with svcca (keep 0.99), procrustes
 * and shape (alpha 0.5) under /measures. */
static void write_with_measures(const char *path)
{
    rf_write_simple(path, NX, NY, 0);
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t gid = H5Gcreate2(fid, "measures", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(fid >= 0 && gid >= 0);
    attr_double(gid, "eps", 1e-10);
    add_measure(gid, "svcca", svcca_v, "keep", 0.99);
    add_measure(gid, "shape", shape_v, "alpha", 0.5);
    add_measure(gid, "procrustes", procrustes_v, NULL, 0.0);
    H5Gclose(gid), H5Fclose(fid);
}

/* ---- helpers ------------------------------------------------------------------- */

#define PLOT(...) TU_COMMAND(mk_plot_main, "plot", __VA_ARGS__)

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    ck_assert(fread(s, 1, (size_t)len, f) == (size_t)len);
    s[len] = '\0';
    fclose(f);
    return s;
}

static uint32_t rgb_of(const double c[3])
{
    return (uint32_t)lround(c[0] * 255) << 16 | (uint32_t)lround(c[1] * 255) << 8 | (uint32_t)lround(c[2] * 255);
}

static int gap(uint32_t a, uint32_t b)
{
    int g = 0;
    for (int s = 0; s < 24; s += 8) {
        int d = abs((int)((a >> s) & 255) - (int)((b >> s) & 255));
        g = d > g ? d : g;
    }
    return g;
}

/* ---- the colour mapping ---------------------------------------------------------- */

/* A distance's colour of v is a similarity's colour of vmin + vmax - v, so
 * 0 (the same) looks like a similarity's 1, on every map, written here from
 * the map's own end colours. */
START_TEST(a_distance_runs_the_colour_map_the_other_way)
{
    for (int m = 0; mk_plot_cmaps[m]; m++) {
        mk_plot_opts sim, dist;
        mk_plot_opts_default(&sim);
        sim.cmap = m, sim.vmin = 0.0, sim.vmax = 2.0;
        dist = sim;
        dist.reverse = 1;
        double top[3], bottom[3], a[3], b[3];
        ck_assert_int_eq(mk_plot_cmap(mk_plot_cmaps[m], 1.0, top), MK_OK);
        ck_assert_int_eq(mk_plot_cmap(mk_plot_cmaps[m], 0.0, bottom), MK_OK);
        mk_plot_value_colour(&dist, 0.0, a);
        mk_plot_value_colour(&sim, 2.0, b);
        for (int c = 0; c < 3; c++) {
            ck_assert_double_eq(a[c], top[c]);
            ck_assert_double_eq(b[c], top[c]);
        }
        mk_plot_value_colour(&dist, 2.0, a);
        for (int c = 0; c < 3; c++) ck_assert_double_eq(a[c], bottom[c]);
        for (double v = -0.5; v <= 2.5; v += 0.125) {
            mk_plot_value_colour(&dist, v, a);
            mk_plot_value_colour(&sim, 2.0 - v, b);
            for (int c = 0; c < 3; c++) ck_assert_double_eq_tol(a[c], b[c], 1e-12);
        }
        /* and the two directions do differ away from the middle */
        mk_plot_value_colour(&dist, 0.5, a);
        mk_plot_value_colour(&sim, 0.5, b);
        ck_assert(fabs(a[0] - b[0]) + fabs(a[1] - b[1]) + fabs(a[2] - b[2]) > 0.1);
        mk_plot_value_colour(&dist, NAN, a);
        ck_assert_double_eq(a[0], mk_plot_nan_grey());
    }
}
END_TEST

/* The ranges and directions of docs/maths.md's table. */
START_TEST(each_measure_has_its_range_and_direction)
{
    static const struct {
        const char *name;
        double lo, hi;
        int distance;
    } want[] = {{"cka", 0, 1, 0},          {"cca_mean", 0, 1, 0},   {"cca_r2", 0, 1, 0},
                {"svcca", 0, 1, 0},        {"pwcca", 0, 1, 0},      {"procrustes", 0, 2, 1},
                {"shape", 0, acos(0.0), 1}, {"regression_y_from_x", 0, 1, 0}, {"regression_x_from_y", 0, 1, 0}};
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        double lo = -9, hi = -9;
        ck_assert_int_eq(mk_plot_measure_scale(want[k].name, &lo, &hi), want[k].distance);
        ck_assert_double_eq(lo, want[k].lo);
        ck_assert_double_eq_tol(hi, want[k].hi, 1e-15);
    }
    double lo = -9, hi = -9;
    ck_assert_int_eq(mk_plot_measure_scale("rsa_pearson", &lo, &hi), -1);
    ck_assert_double_eq(lo, -9);
}
END_TEST

/* ---- one measure ------------------------------------------------------------------ */

/* The cells of a procrustes PNG have the reversed colours of their values:
 * found through the layout of the same data, as the command builds it. */
START_TEST(plot_measure_draws_a_distance_reversed)
{
    char *h5 = tu_path(tu_dir, "m.h5"), *png = tu_path(tu_dir, "p.png"), *svg = tu_path(tu_dir, "p.svg");
    write_with_measures(h5);
    ck_assert_int_eq(PLOT(h5, "-o", png, "--measure", "procrustes", "--no-annotate"), MK_OK);
    char *xs[NX] = {"x/layer0", "x/layer1", "x/layer2"}, *ys[NY] = {"y/layer0", "y/layer1"};
    mk_plot_data d = {.rows = NX, .cols = NY, .values = procrustes_v, .row_labels = (const char *const *)xs,
                      .col_labels = (const char *const *)ys, .row_title = "alpha", .col_title = "beta",
                      .subtitle = "a test measure", .value_title = "procrustes (distance, 0 to 2)",
                      .value_decimals = 3};
    mk_plot_opts o;
    mk_plot_layout l;
    mk_plot_opts_default(&o);
    o.vmax = 2.0, o.reverse = 1, o.annotate = MK_ANNOTATE_NEVER;
    ck_assert_int_eq(mk_plot_layout_make(&d, &o, &l), MK_OK);
    cairo_surface_t *im = cairo_image_surface_create_from_png(png);
    ck_assert_int_eq(cairo_image_surface_get_width(im), (int)l.width);
    ck_assert_int_eq(cairo_image_surface_get_height(im), (int)l.height);
    const unsigned char *px = cairo_image_surface_get_data(im);
    int stride = cairo_image_surface_get_stride(im);
    for (int k = 0; k < NX * NY; k++) {
        double x, y, c[3];
        mk_plot_cell_origin(&l, k / NY, k % NY, &x, &y);
        const uint32_t *row = (const uint32_t *)(px + (size_t)stride * (size_t)(y + l.cell / 2));
        mk_plot_cmap("magma", 1.0 - procrustes_v[k] / 2.0, c); /* the map written reversed here */
        ck_assert_msg(gap(row[(int)(x + l.cell / 2)] & 0xffffff, rgb_of(c)) <= 1, "cell %d", k);
    }
    cairo_surface_destroy(im);
    mk_plot_layout_free(&l);
    /* the colour bar says the measure and its range; a similarity is not reversed */
    ck_assert_int_eq(PLOT(h5, "-o", svg, "--measure", "shape"), MK_OK);
    char *text = slurp(svg);
    ck_assert_msg(strstr(text, "<desc>mpicka heatmap: shape (distance, 0 to π/2 rad)\nmethod: a test measure"),
                  "%s", text);
    free(text);
    ck_assert_int_eq(PLOT(h5, "-o", svg, "--measure", "svcca", "--vmin", "0.5"), MK_OK);
    text = slurp(svg);
    ck_assert_ptr_nonnull(strstr(text, "<desc>mpicka heatmap: svcca (similarity, 0 to 1)"));
    free(text);
    ck_assert_int_eq(PLOT(h5, "-o", svg, "--measure", "cka"), MK_OK);
    free(svg), free(png), free(h5);
}
END_TEST

/* ---- small multiples ----------------------------------------------------------------- */

/* Four panels in a 2 by 2 grid: the figure holds them and its title. */
START_TEST(a_grid_holds_its_panels)
{
    char *png = tu_path(tu_dir, "g.png");
    char *xs[NX] = {"x/layer0", "x/layer1", "x/layer2"}, *ys[NY] = {"y/layer0", "y/layer1"};
    mk_plot_panel p[4];
    mk_plot_layout l;
    for (int k = 0; k < 4; k++) {
        p[k].data = (mk_plot_data){.rows = NX, .cols = NY, .values = svcca_v, .row_labels = (const char *const *)xs,
                                   .col_labels = (const char *const *)ys, .row_title = "a", .col_title = "b"};
        mk_plot_opts_default(&p[k].opts);
        p[k].opts.title = "panel";
        p[k].opts.reverse = k % 2;
    }
    ck_assert_int_eq(mk_plot_layout_make(&p[0].data, &p[0].opts, &l), MK_OK);
    double w, h, w1, h1, wt, ht;
    ck_assert_int_eq(mk_plot_grid_size(p, 4, 2, NULL, &w, &h), MK_OK);
    ck_assert_int_eq(mk_plot_grid_size(p, 4, 0, NULL, &w1, &h1), MK_OK); /* chosen: 2 columns here */
    ck_assert_int_eq(mk_plot_grid_size(p, 4, 4, "T", &wt, &ht), MK_OK);
    ck_assert(w >= 2 * l.width && w <= 2 * l.width + 40 && h >= 2 * l.height && h <= 2 * l.height + 40);
    ck_assert(w1 == w && h1 == h);
    ck_assert(wt >= 4 * l.width && ht > l.height + 16 && ht < h);
    ck_assert_int_eq(mk_plot_render_grid(p, 4, 2, "small multiples", png), MK_OK);
    cairo_surface_t *im = cairo_image_surface_create_from_png(png);
    ck_assert_int_eq(cairo_image_surface_get_width(im), (int)w);
    ck_assert_int_eq(cairo_image_surface_get_height(im) > (int)h, 1); /* the title's line on top */
    cairo_surface_destroy(im);
    tu_assert_error(mk_plot_render_grid(p, 0, 0, NULL, png), MK_EUSAGE, "at least one panel");
    tu_assert_error(mk_plot_render_grid(p, 4, 0, NULL, "g.gif"), MK_EUSAGE, "unknown extension '.gif'");
    mk_plot_layout_free(&l);
    free(png);
}
END_TEST

/* `--measures all`: cka first, then the measures in the table's order, each
 * panel titled with its parameters and its colour bar with its range. */
START_TEST(plot_measures_all_in_every_format)
{
    char *h5 = tu_path(tu_dir, "m.h5"), *svg = tu_path(tu_dir, "g.svg"), *png = tu_path(tu_dir, "g.png");
    char *pdf = tu_path(tu_dir, "g.pdf");
    write_with_measures(h5);
    ck_assert_int_eq(PLOT(h5, "-o", svg, "--measures", "all"), MK_OK);
    char *text = slurp(svg);
    const char *want = "<title>alpha vs beta: measures</title>\n<desc>mpicka small multiples: 4 panels\n"
                       "panel: cka | cka (similarity, 0 to 1)\n"
                       "panel: svcca (keep 0.99) | svcca (similarity, 0 to 1)\n"
                       "panel: procrustes | procrustes (distance, 0 to 2)\n"
                       "panel: shape (alpha 0.5) | shape (distance, 0 to π/2 rad)\n</desc>";
    ck_assert_msg(strstr(text, want), "%s", text);
    free(text);
    ck_assert_int_eq(PLOT(h5, "-o", png, "--measures", "all"), MK_OK);
    cairo_surface_t *all = cairo_image_surface_create_from_png(png);
    ck_assert_int_eq(PLOT(h5, "-o", png, "--measures", "shape,cka", "--title", "two"), MK_OK);
    cairo_surface_t *two = cairo_image_surface_create_from_png(png);
    /* four panels: 2 by 2; two: 2 by 1, the same panel size */
    int wa = cairo_image_surface_get_width(all), ha = cairo_image_surface_get_height(all);
    int w2 = cairo_image_surface_get_width(two), h2 = cairo_image_surface_get_height(two);
    ck_assert_msg(abs(wa - w2) <= 16 && ha > 1.8 * h2 - 60 && ha < 2 * h2, "%d x %d, %d x %d", wa, ha, w2, h2);
    cairo_surface_destroy(all), cairo_surface_destroy(two);
    ck_assert_int_eq(PLOT(h5, "-o", pdf, "--measures", "svcca,procrustes"), MK_OK);
    text = slurp(pdf);
    ck_assert(strncmp(text, "%PDF", 4) == 0);
    free(text);
    free(pdf), free(png), free(svg), free(h5);
}
END_TEST

/* Mistakes are reported naming what is there, and leave no figure. */
START_TEST(plot_measures_mistakes)
{
    char *h5 = tu_path(tu_dir, "m.h5"), *bare = tu_path(tu_dir, "bare.h5"), *png = tu_path(tu_dir, "x.png");
    char *models = tu_path(tu_dir, "models.h5");
    write_with_measures(h5);
    rf_write_simple(bare, NX, NY, 0);
    tu_assert_error(PLOT(h5, "-o", png, "--measure", "cca"), MK_EINPUT,
           "has no measure 'cca' (it has: procrustes, shape, svcca;");
    tu_assert_error(PLOT(h5, "-o", png, "--measures", "svcca,nope"), MK_EINPUT,
           "has no measure 'nope' (it has: procrustes, shape, svcca;");
    tu_assert_error(PLOT(bare, "-o", png, "--measures", "all"), MK_EINPUT, "bare.h5' has no measures besides CKA");
    tu_assert_error(PLOT(bare, "-o", png, "--measure", "svcca"), MK_EINPUT, "has no measure 'svcca' (it has: none;");
    tu_assert_error(PLOT(h5, "-o", png, "--measure", "svcca", "--matrix", "stderr"), MK_EUSAGE, "without --matrix");
    tu_assert_error(PLOT(h5, "-o", png, "--measures", "all", "--vmax", "3"), MK_EUSAGE, "own scale");
    tu_assert_error(PLOT(h5, "-o", png, "--measures", "all", "--measure", "svcca"), MK_EUSAGE, "give one of them");
    tu_assert_error(PLOT(h5, "-o", png, "--measures", ",,"), MK_EUSAGE, "needs 'all' or a comma-separated list");
    tu_assert_error(PLOT(h5, "-o", png, "--measures", "all", "--half"), MK_EUSAGE, "--half draws one matrix");
    static const char *const names[2] = {"a", "b"};
    static const int layers[2] = {1, 1};
    static const double cka[4] = {1, 0.5, 0.5, 1};
    rf_write_models(models, &(rf_models){2, names, layers, cka, NULL, NULL, NULL});
    tu_assert_error(PLOT(models, "-o", png, "--measure", "svcca"), MK_EINPUT, "has no measure 'svcca' (it has: none;");
    tu_assert_error(PLOT(models, "-o", png, "--measures", "all"), MK_EINPUT, "has no measures besides CKA");
    tu_assert_error(PLOT(models, "-o", png, "--measure", "svcca", "--matched", "layer0"), MK_EUSAGE, "without --matched");
    ck_assert_int_eq(access(png, F_OK), -1);
    free(models), free(png), free(bare), free(h5);
}
END_TEST

/* A models result's measures: the whole grid by model, one block with
 * --pair (on the measure's scale), every measure in small multiples. */
START_TEST(plot_measures_of_a_models_result)
{
    char *models = tu_path(tu_dir, "models.h5"), *svg = tu_path(tu_dir, "m.svg");
    static const char *const names[2] = {"a", "b"};
    static const int layers[2] = {2, 2};
    static const double cka[16] = {1, .5, .2, .1, .5, 1, .3, .2, .2, .3, 1, .4, .1, .2, .4, 1};
    double dist[16];
    for (int k = 0; k < 16; k++) dist[k] = 2 - 2 * cka[k];
    rf_write_models(models, &(rf_models){2, names, layers, cka, NULL, NULL, NULL});
    hid_t fid = H5Fopen(models, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t gid = H5Gcreate2(fid, "measures", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    add_measure_shaped(gid, "procrustes", dist, NULL, 0.0, 4, 4);
    H5Gclose(gid), H5Fclose(fid);
    ck_assert_int_eq(PLOT(models, "-o", svg, "--measures", "all"), MK_OK);
    char *text = slurp(svg);
    ck_assert_msg(strstr(text, "2 panels\npanel: cka | cka (similarity, 0 to 1)\npanel: procrustes | procrustes "
                               "(distance, 0 to 2)\n"), "%s", text);
    free(text);
    ck_assert_int_eq(PLOT(models, "-o", svg, "--measure", "procrustes", "--pair", "a,b"), MK_OK);
    text = slurp(svg);
    ck_assert_msg(strstr(text, "<desc>mpicka heatmap: procrustes (distance, 0 to 2)"), "%s", text);
    free(text);
    free(svg), free(models);
}
END_TEST

TU_MAIN("plotmeasures", 0,
        TU_CASE("measures", tu_dir_setup, tu_dir_teardown, 120, NULL, a_distance_runs_the_colour_map_the_other_way,
                each_measure_has_its_range_and_direction, plot_measure_draws_a_distance_reversed,
                a_grid_holds_its_panels, plot_measures_all_in_every_format, plot_measures_mistakes,
                plot_measures_of_a_models_result))
