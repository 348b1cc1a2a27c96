/* Tests of `mpicka plot` (mpicka/plot.h): real PNG, SVG and PDF files are
 * rendered and read back. Cell colours are checked against the published
 * colours of the maps (hex values typed in here), found through the layout
 * (mk_plot_cell_origin); the layout's texts are checked to stay inside the
 * figure and never to overlap; SVG and PDF are checked for their metadata
 * (cairo draws labels as glyph outlines, so that is where names are text). */
#include <cairo.h>
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mpicka/plot.h"
#include "mpicka/plotcmd.h"
#include "resultfile.h"
#include "testutil.h"

/* ---- matrices ---------------------------------------------------------------- */

typedef struct {
    double *v;
    char **rl, **cl;
    mk_plot_data d;
} matrix;

/* rows by cols of smooth values in [0, 1], labels from printf formats with
 * the index (from 1). */
static void matrix_make(matrix *m, int rows, int cols, const char *rfmt, const char *cfmt, int self)
{
    m->v = malloc((size_t)rows * cols * sizeof *m->v);
    m->rl = malloc((size_t)rows * sizeof *m->rl);
    m->cl = malloc((size_t)cols * sizeof *m->cl);
    for (int i = 0; i < rows; i++) {
        m->rl[i] = malloc(256);
        snprintf(m->rl[i], 256, rfmt, i + 1);
        for (int j = 0; j < cols; j++) m->v[i * cols + j] = 0.5 + 0.5 * cos(0.3 * i - 0.2 * j);
    }
    for (int j = 0; j < cols; j++) {
        m->cl[j] = malloc(256);
        snprintf(m->cl[j], 256, cfmt, j + 1);
    }
    mk_plot_data d = {.rows = rows, .cols = cols, .values = m->v,
                      .row_labels = (const char *const *)m->rl, .col_labels = (const char *const *)m->cl,
                      .row_title = "alpha", .col_title = self ? "alpha" : "beta", .self = self};
    m->d = d;
}

static void matrix_free(matrix *m)
{
    for (int i = 0; i < m->d.rows; i++) free(m->rl[i]);
    for (int j = 0; j < m->d.cols; j++) free(m->cl[j]);
    free(m->rl);
    free(m->cl);
    free(m->v);
}

/* ---- PNG reading --------------------------------------------------------------- */

typedef struct {
    cairo_surface_t *s;
    int w, h, stride;
    const unsigned char *data;
} image;

static void image_load(image *im, const char *path)
{
    im->s = cairo_image_surface_create_from_png(path);
    ck_assert_msg(cairo_surface_status(im->s) == CAIRO_STATUS_SUCCESS, "%s is not a PNG", path);
    cairo_surface_flush(im->s);
    im->w = cairo_image_surface_get_width(im->s);
    im->h = cairo_image_surface_get_height(im->s);
    im->stride = cairo_image_surface_get_stride(im->s);
    im->data = cairo_image_surface_get_data(im->s);
}

static uint32_t pixel(const image *im, int x, int y)
{
    ck_assert(x >= 0 && x < im->w && y >= 0 && y < im->h);
    uint32_t v;
    memcpy(&v, im->data + (size_t)y * im->stride + 4 * (size_t)x, 4);
    return v & 0xffffff;
}

static int channel_gap(uint32_t a, uint32_t b)
{
    int gap = 0;
    for (int sh = 0; sh <= 16; sh += 8) {
        int d = abs((int)((a >> sh) & 255) - (int)((b >> sh) & 255));
        gap = d > gap ? d : gap;
    }
    return gap;
}

/* Pixel at the centre of cell (i, j). */
static uint32_t cell_centre(const image *im, const mk_plot_layout *l, int i, int j)
{
    double x, y;
    mk_plot_cell_origin(l, i, j, &x, &y);
    return pixel(im, (int)(x + l->cell / 2), (int)(y + l->cell / 2));
}

/* Pixels of cell (i, j), a one-pixel rim left out, that differ from colour. */
static int cell_pixels_unlike(const image *im, const mk_plot_layout *l, int i, int j, uint32_t colour,
                              int tol)
{
    double x, y;
    int n = 0;
    mk_plot_cell_origin(l, i, j, &x, &y);
    for (int py = (int)y + 1; py < (int)(y + l->cell) - 1; py++)
        for (int px = (int)x + 1; px < (int)(x + l->cell) - 1; px++)
            n += channel_gap(pixel(im, px, py), colour) > tol;
    return n;
}

static char *render_png(const matrix *m, const mk_plot_opts *o, const char *name, image *im,
                        mk_plot_layout *l)
{
    char *path = tu_path(tu_dir, name);
    ck_assert_msg(mk_plot_render(&m->d, o, path) == MK_OK, "%s", mk_errmsg());
    ck_assert_int_eq(mk_plot_layout_make(&m->d, o, l), MK_OK);
    image_load(im, path);
    ck_assert_int_eq(im->w, (int)l->width);
    ck_assert_int_eq(im->h, (int)l->height);
    return path;
}

/* ---- colour maps ------------------------------------------------------------------ */

/* The published colours of the maps at t = 0, 0.1, ..., 1 (some of them). */
static const struct {
    const char *cmap;
    double t;
    uint32_t rgb;
} published[] = {
    {"magma", 0.0, 0x000004},   {"magma", 0.1, 0x150e37},   {"magma", 0.3, 0x641a80},
    {"magma", 0.5, 0xb63679},   {"magma", 0.6, 0xde4968},   {"magma", 0.8, 0xfe9f6d},
    {"magma", 1.0, 0xfcfdbf},   {"viridis", 0.0, 0x440154}, {"viridis", 0.2, 0x414487},
    {"viridis", 0.5, 0x21908c}, {"viridis", 1.0, 0xfde725}, {"inferno", 0.0, 0x000004},
    {"inferno", 0.5, 0xbb3754}, {"inferno", 1.0, 0xfcffa4}, {"gray", 0.0, 0x000000},
    {"gray", 1.0, 0xffffff},
};

static uint32_t to_rgb(const double c[3])
{
    return (uint32_t)lround(c[0] * 255) << 16 | (uint32_t)lround(c[1] * 255) << 8 |
           (uint32_t)lround(c[2] * 255);
}

START_TEST(colour_maps_hit_the_published_colours)
{
    double c[3], lo[3], hi[3];
    for (size_t k = 0; k < sizeof published / sizeof published[0]; k++) {
        ck_assert_int_eq(mk_plot_cmap(published[k].cmap, published[k].t, c), MK_OK);
        ck_assert_msg(to_rgb(c) == published[k].rgb, "%s(%g) = %06x, published %06x", published[k].cmap,
                      published[k].t, to_rgb(c), published[k].rgb);
    }
    mk_plot_cmap("magma", 0.45, c); /* halfway between the 0.4 and 0.5 anchors */
    mk_plot_cmap("magma", 0.4, lo);
    mk_plot_cmap("magma", 0.5, hi);
    for (int ch = 0; ch < 3; ch++) ck_assert(fabs(c[ch] - (lo[ch] + hi[ch]) / 2) < 1e-12);
    mk_plot_cmap("viridis", -3.0, c);
    ck_assert_uint_eq(to_rgb(c), 0x440154);
    mk_plot_cmap("viridis", 7.0, c);
    ck_assert_uint_eq(to_rgb(c), 0xfde725);
    ck_assert_int_eq(mk_plot_cmap("jet", 0.5, c), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "'jet'"));
    ck_assert(mk_plot_nan_grey() > 0.6 && mk_plot_nan_grey() < 0.9);
}
END_TEST

/* ---- cells -------------------------------------------------------------------------- */

START_TEST(png_cells_have_the_colours_of_their_values)
{
    matrix m;
    matrix_make(&m, 3, 4, "r%d", "c%d", 0);
    const double v[12] = {0.0, 0.5, 1.0, NAN, 0.3, 0.8, -0.5, 1.7, 0.1, 0.6, 0.2, 0.5};
    const uint32_t want[12] = {0x000004, 0xb63679, 0xfcfdbf, 0,        0x641a80, 0xfe9f6d,
                               0x000004, 0xfcfdbf, 0x150e37, 0xde4968, 0x3b0f70, 0xb63679};
    memcpy(m.v, v, sizeof v);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    o.annotate = MK_ANNOTATE_NEVER;
    image im;
    mk_plot_layout l;
    char *path = render_png(&m, &o, "cells.png", &im, &l);
    uint32_t grey = (uint32_t)lround(mk_plot_nan_grey() * 255) * 0x010101;
    for (int k = 0; k < 12; k++) {
        uint32_t expect = isnan(v[k]) ? grey : want[k], got = cell_centre(&im, &l, k / 4, k % 4);
        ck_assert_msg(channel_gap(got, expect) <= 1, "cell %d: %06x, expected %06x", k, got, expect);
        ck_assert_int_eq(cell_pixels_unlike(&im, &l, k / 4, k % 4, expect, 1), 0);
    }
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    free(path);
    matrix_free(&m);
}
END_TEST

START_TEST(colour_range_and_other_maps)
{
    matrix m;
    matrix_make(&m, 1, 3, "r%d", "c%d", 0);
    const double v[3] = {0.0, -1.0, 2.0};
    memcpy(m.v, v, sizeof v);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    o.cmap = mk_plot_cmap_index("viridis");
    o.annotate = MK_ANNOTATE_NEVER;
    o.vmin = -1.0;
    o.vmax = 1.0;
    image im;
    mk_plot_layout l;
    char *path = render_png(&m, &o, "range.png", &im, &l);
    ck_assert_int_le(channel_gap(cell_centre(&im, &l, 0, 0), 0x21908c), 1);
    ck_assert_int_le(channel_gap(cell_centre(&im, &l, 0, 1), 0x440154), 1);
    ck_assert_int_le(channel_gap(cell_centre(&im, &l, 0, 2), 0xfde725), 1);
    ck_assert_int_eq(l.nticks, 5); /* -1, -0.5, 0, 0.5, 1 */
    ck_assert(l.ticks[0] == -1.0 && l.ticks[2] == 0.0 && l.ticks[4] == 1.0);
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    free(path);
    matrix_free(&m);
}
END_TEST

/* Cell values: black on light cells, white on dark ones, none on NaN. */
START_TEST(values_in_contrasting_ink_and_none_on_nan)
{
    matrix m;
    matrix_make(&m, 2, 2, "r%d", "c%d", 0);
    const double v[4] = {0.0, 1.0, NAN, 0.5};
    memcpy(m.v, v, sizeof v);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    o.annotate = MK_ANNOTATE_ALWAYS;
    image im;
    mk_plot_layout l;
    char *path = render_png(&m, &o, "values.png", &im, &l);
    ck_assert(l.value_size >= 8.0);
    ck_assert_int_gt(cell_pixels_unlike(&im, &l, 0, 0, 0x000004, 100), 20); /* white digits */
    ck_assert_int_gt(cell_pixels_unlike(&im, &l, 0, 1, 0xfcfdbf, 100), 20); /* black digits */
    int inside = ((int)l.cell - 2) * ((int)l.cell - 2);
    ck_assert_int_eq(cell_pixels_unlike(&im, &l, 0, 1, 0xffffff, 8), inside); /* no white on light */
    uint32_t grey = (uint32_t)lround(mk_plot_nan_grey() * 255) * 0x010101;
    ck_assert_int_eq(cell_pixels_unlike(&im, &l, 1, 0, grey, 0), 0);
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    free(path);
    o.annotate = MK_ANNOTATE_NEVER;
    path = render_png(&m, &o, "novalues.png", &im, &l);
    ck_assert(l.value_size == 0.0);
    ck_assert_int_eq(cell_pixels_unlike(&im, &l, 0, 0, 0x000004, 1), 0);
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    free(path);
    matrix_free(&m);
}
END_TEST

START_TEST(half_leaves_the_upper_triangle_blank)
{
    matrix m;
    matrix_make(&m, 5, 5, "l%d", "l%d", 1);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    o.half = 1;
    image im;
    mk_plot_layout l;
    char *path = render_png(&m, &o, "half.png", &im, &l);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            int white = cell_pixels_unlike(&im, &l, i, j, 0xffffff, 0) == 0;
            ck_assert_msg(white == (j > i), "cell (%d, %d) is %s", i, j, white ? "blank" : "drawn");
        }
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    free(path);
    matrix_free(&m);
    matrix_make(&m, 2, 3, "l%d", "l%d", 0);
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "half needs a square matrix (got 2 by 3)"));
    matrix_free(&m);
}
END_TEST

static const mk_plot_text *find_text(const mk_plot_layout *l, const char *text)
{
    for (int k = 0; k < l->ntexts; k++)
        if (strcmp(l->texts[k].text, text) == 0) return &l->texts[k];
    return NULL;
}

START_TEST(invert_y_puts_the_first_row_at_the_bottom)
{
    matrix m;
    matrix_make(&m, 3, 2, "row%d", "col%d", 0);
    const double v[6] = {0.0, 0.0, 0.5, 0.5, 1.0, 1.0};
    memcpy(m.v, v, sizeof v);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    o.invert_y = 1;
    o.annotate = MK_ANNOTATE_NEVER;
    image im;
    mk_plot_layout l;
    char *path = render_png(&m, &o, "inv.png", &im, &l);
    double x0, y0, x2, y2;
    mk_plot_cell_origin(&l, 0, 0, &x0, &y0);
    mk_plot_cell_origin(&l, 2, 0, &x2, &y2);
    ck_assert(y0 == y2 + 2 * l.cell && x0 == x2);
    ck_assert_int_le(channel_gap(pixel(&im, (int)x0 + 3, (int)(y0 + l.cell) - 3), 0x000004), 1);
    ck_assert_int_le(channel_gap(pixel(&im, (int)x2 + 3, (int)y2 + 3), 0xfcfdbf), 1);
    ck_assert(find_text(&l, "row1")->y > find_text(&l, "row3")->y);
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    free(path);
    matrix_free(&m);
}
END_TEST

/* ---- layout: sizes, labels, no overlap -------------------------------------------- */

/* Separating-axis test for two convex quads (touching is not overlapping). */
static int separated_along(const double *a, const double *b, const double *edge_quad, int e)
{
    double ex = edge_quad[(2 * e + 2) % 8] - edge_quad[2 * e],
           ey = edge_quad[(2 * e + 3) % 8] - edge_quad[2 * e + 1];
    double nx = -ey, ny = ex, amin = INFINITY, amax = -INFINITY, bmin = INFINITY, bmax = -INFINITY;
    for (int k = 0; k < 4; k++) {
        double pa = a[2 * k] * nx + a[2 * k + 1] * ny, pb = b[2 * k] * nx + b[2 * k + 1] * ny;
        amin = fmin(amin, pa), amax = fmax(amax, pa), bmin = fmin(bmin, pb), bmax = fmax(bmax, pb);
    }
    double eps = 1e-6 * sqrt(nx * nx + ny * ny);
    return amax <= bmin + eps || bmax <= amin + eps;
}

static int quads_overlap(const double *a, const double *b)
{
    for (int e = 0; e < 4; e++)
        if (separated_along(a, b, a, e) || separated_along(a, b, b, e)) return 0;
    return 1;
}

static void rect_quad(double x, double y, double w, double h, double q[8])
{
    double v[8] = {x, y, x + w, y, x + w, y + h, x, y + h};
    memcpy(q, v, sizeof v);
}

/* Every text inside the figure, clear of the heatmap, the bar and the others. */
static void assert_texts_fit(const mk_plot_layout *l, const char *what)
{
    double heat[8], bar[8];
    rect_quad(l->x0, l->y0, l->cols * l->cell, l->rows * l->cell, heat);
    rect_quad(l->bar_x, l->bar_y, l->bar_w, l->bar_h, bar);
    for (int k = 0; k < l->ntexts; k++) {
        const mk_plot_text *t = &l->texts[k];
        for (int c = 0; c < 4; c++)
            ck_assert_msg(t->quad[2 * c] >= 0 && t->quad[2 * c] <= l->width && t->quad[2 * c + 1] >= 0 &&
                              t->quad[2 * c + 1] <= l->height,
                          "%s: '%s' is clipped", what, t->text);
        ck_assert_msg(!quads_overlap(t->quad, heat), "%s: '%s' covers the heatmap", what, t->text);
        ck_assert_msg(!quads_overlap(t->quad, bar), "%s: '%s' covers the colour bar", what, t->text);
        for (int m = k + 1; m < l->ntexts; m++)
            ck_assert_msg(!quads_overlap(t->quad, l->texts[m].quad), "%s: '%s' overlaps '%s'", what, t->text,
                          l->texts[m].text);
    }
}

/* How many of the layer labels (every step-th) are among the texts. */
static int labels_present(const mk_plot_layout *l, char **labels, int n, int step)
{
    int found = 0;
    for (int k = 0; k < n; k += step) found += find_text(l, labels[k]) != NULL;
    return found;
}

/* The subtitle's lines: not bold, at the subtitle's size (11), above the
 * heatmap (the top tick label reaches below its top edge), top to bottom. */
static int subtitle_lines(const mk_plot_layout *l, const mk_plot_text **lines, int max)
{
    int n = 0;
    for (int k = 0; k < l->ntexts && n < max; k++) {
        const mk_plot_text *t = &l->texts[k];
        if (t->size == 11.0 && !t->bold && t->angle == 0.0 && t->y + t->h <= l->y0) lines[n++] = t;
    }
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && lines[b]->y < lines[b - 1]->y; b--) {
            const mk_plot_text *swap = lines[b];
            lines[b] = lines[b - 1];
            lines[b - 1] = swap;
        }
    return n;
}

/* The subtitle is all there, in lines no wider than the heatmap (or 360)
 * unless a "; "-separated part alone is, under the title, clear of all. */
static void assert_subtitle(const mk_plot_layout *l, const char *subtitle, const char *what)
{
    const mk_plot_text *lines[16];
    char joined[1024] = "";
    int n = subtitle_lines(l, lines, 16);
    ck_assert_msg(n >= 1, "%s: no subtitle", what);
    for (int k = 0; k < n; k++) {
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", k ? " " : "", lines[k]->text);
        ck_assert_msg(lines[k]->w <= fmax(l->cols * l->cell, 360.0) || !strstr(lines[k]->text, "; "),
                      "%s: subtitle line '%s' is %g wide", what, lines[k]->text, lines[k]->w);
        if (k) ck_assert(lines[k]->y >= lines[k - 1]->y + lines[k - 1]->h);
    }
    ck_assert_str_eq(joined, subtitle);
    for (int k = 0; k < l->ntexts; k++)
        if (l->texts[k].bold && l->texts[k].angle == 0.0 && l->texts[k].y < l->y0)
            ck_assert_msg(l->texts[k].y + l->texts[k].h <= lines[0]->y, "%s: title below the subtitle", what);
    assert_texts_fit(l, what);
}

static void check_layout(int rows, int cols, const char *rfmt, const char *cfmt, mk_plot_layout *l)
{
    matrix m;
    char what[64];
    snprintf(what, sizeof what, "%d x %d", rows, cols);
    matrix_make(&m, rows, cols, rfmt, cfmt, 0);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, l), MK_OK);
    assert_texts_fit(l, what);
    ck_assert_int_eq(labels_present(l, m.rl, rows, l->row_step), (rows + l->row_step - 1) / l->row_step);
    ck_assert_int_eq(labels_present(l, m.cl, cols, l->col_step), (cols + l->col_step - 1) / l->col_step);
    ck_assert(l->label_size >= 7.0);
    mk_plot_layout with;
    m.d.subtitle = RF_DESCRIPTION;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &with), MK_OK);
    snprintf(what, sizeof what, "%d x %d with a subtitle", rows, cols);
    assert_subtitle(&with, RF_DESCRIPTION, what);
    ck_assert(with.cell == l->cell && with.height > l->height);
    mk_plot_layout_free(&with);
    matrix_free(&m);
}

/* Past 40,000 cells the cells are one image (a pixel each, scaled without
 * smoothing): every cell keeps its colour, the half and inverted layouts
 * hold, and 3000 layers make an SVG of tens of megabytes, not gigabytes. */
START_TEST(many_cells_are_one_image_with_the_same_colours)
{
    for (int variant = 0; variant < 2; variant++) {
        matrix m;
        matrix_make(&m, 210, 210, "l%d", "l%d", 1);
        for (int k = 0; k < 210 * 210; k++) m.v[k] = (double)((k * 7919) % 101) / 100.0;
        m.v[5 * 210 + 3] = NAN;
        mk_plot_opts o;
        mk_plot_opts_default(&o);
        o.half = variant == 0;
        o.invert_y = variant == 1;
        image im;
        mk_plot_layout l;
        char *path = render_png(&m, &o, "many.png", &im, &l);
        uint32_t grey = (uint32_t)lround(mk_plot_nan_grey() * 255) * 0x010101;
        for (int i = 0; i < 210; i += 7)
            for (int j = 0; j < 210; j += 5) {
                double rgb[3];
                uint32_t expect = grey;
                if (!isnan(m.v[i * 210 + j])) {
                    ck_assert_int_eq(mk_plot_cmap("magma", m.v[i * 210 + j], rgb), MK_OK);
                    expect = (uint32_t)lround(rgb[0] * 255) << 16 | (uint32_t)lround(rgb[1] * 255) << 8 |
                             (uint32_t)lround(rgb[2] * 255);
                }
                if (o.half && j > i) expect = 0xffffff;
                uint32_t got = cell_centre(&im, &l, i, j);
                ck_assert_msg(channel_gap(got, expect) <= 1, "variant %d cell (%d, %d): %06x, expected %06x", variant,
                              i, j, got, expect);
            }
        cairo_surface_destroy(im.s);
        mk_plot_layout_free(&l);
        free(path);
        matrix_free(&m);
    }
    matrix m;
    matrix_make(&m, 3000, 3000, "layer%d/conv", "layer%d/conv", 1);
    for (int64_t k = 0; k < 3000 * 3000; k++) m.v[k] = (double)(k % 1000) / 1000.0;
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    char *svg = tu_path(tu_dir, "huge.svg");
    ck_assert_int_eq(mk_plot_render(&m.d, &o, svg), MK_OK);
    struct stat st;
    ck_assert_int_eq(stat(svg, &st), 0);
    ck_assert_msg(st.st_size < 64 * 1024 * 1024, "3000 layers: an SVG of %lld bytes", (long long)st.st_size);
    free(svg);
    matrix_free(&m);
}
END_TEST

START_TEST(labels_fit_turn_and_thin_without_overlap)
{
    mk_plot_layout l;
    check_layout(2, 2, "c%d", "d%d", &l);
    ck_assert(l.cell == 60 && l.col_angle == 0.0 && l.row_step == 1 && l.col_step == 1);
    mk_plot_layout_free(&l);
    check_layout(12, 8, "encoder/block%d/attention/output", "decoder/stage%d/mlp", &l);
    ck_assert(l.cell == 60 && l.col_angle == 45.0);
    mk_plot_layout_free(&l);
    check_layout(50, 50, "features.%d.conv", "features.%d.conv", &l);
    ck_assert(l.col_angle == 90.0 && l.col_step == 1 && l.row_step == 1);
    mk_plot_layout_free(&l);
    check_layout(200, 200, "model/encoder/layer_%d/attention/self/output", "y%d", &l);
    ck_assert(l.cell == 12 && l.row_step == 1 && l.col_step == 1);
    ck_assert(l.width >= 2400 && l.width <= 4000 && l.height >= 2400 && l.height <= 4000);
    mk_plot_layout_free(&l);
    check_layout(600, 600, "l%d", "layer%d", &l);
    ck_assert(l.cell < 12 && l.cell * 600 <= 3000 && l.row_step > 1 && l.col_step > 1);
    mk_plot_layout_free(&l);
    check_layout(2, 200, "%d", "a/very/long/path/to/the/layer/number/%d", &l);
    ck_assert(l.bar_h >= 100 && l.rows * l.cell == 24);
    mk_plot_layout_free(&l);
    check_layout(3, 2, "a_rather_long_layer_name_that_goes_on_and_on_and_on_and_on_%d", "z%d", &l);
    mk_plot_layout_free(&l);
}
END_TEST

/* Long model names and title on a tiny matrix: pushed clear, never clipped. */
START_TEST(long_titles_stay_clear)
{
    matrix m;
    matrix_make(&m, 2, 2, "a%d", "b/%d/very/long/name", 0);
    m.d.row_title = "a model whose name is much longer than its heatmap is tall";
    m.d.col_title = "another model with a very long name as well";
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    mk_plot_layout l;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    assert_texts_fit(&l, "long titles");
    ck_assert_ptr_nonnull(find_text(&l, "a model whose name is much longer than its heatmap is tall vs "
                                        "another model with a very long name as well"));
    mk_plot_layout_free(&l);
    matrix_free(&m);
}
END_TEST

START_TEST(values_drawn_when_cells_hold_them)
{
    matrix m;
    mk_plot_opts o;
    mk_plot_layout l;
    mk_plot_opts_default(&o);
    matrix_make(&m, 12, 8, "r%d", "c%d", 0);
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert(l.value_size >= 8.0);
    mk_plot_layout_free(&l);
    matrix_free(&m);
    matrix_make(&m, 50, 50, "r%d", "c%d", 0);
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert(l.value_size == 0.0);
    double auto_cell = l.cell;
    mk_plot_layout_free(&l);
    o.annotate = MK_ANNOTATE_ALWAYS;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert(l.value_size >= 8.0 && l.cell > auto_cell);
    assert_texts_fit(&l, "annotated 50");
    mk_plot_layout_free(&l);
    matrix_free(&m);
}
END_TEST

START_TEST(titles_and_short_names)
{
    matrix m;
    mk_plot_opts o;
    mk_plot_layout l;
    mk_plot_opts_default(&o);
    matrix_make(&m, 2, 2, "x/block/conv%d", "y/head%d", 0);
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert_ptr_nonnull(find_text(&l, "alpha vs beta"));
    ck_assert_ptr_nonnull(find_text(&l, "x/block/conv1"));
    mk_plot_layout_free(&l);
    o.short_names = 1;
    o.title = "";
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert_ptr_null(find_text(&l, "alpha vs beta"));
    ck_assert_ptr_nonnull(find_text(&l, "conv1"));
    ck_assert_ptr_nonnull(find_text(&l, "head2"));
    ck_assert_ptr_null(find_text(&l, "x/block/conv1"));
    mk_plot_layout_free(&l);
    o.short_names = 2;
    o.title = "Mine";
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert_ptr_nonnull(find_text(&l, "block/conv1"));
    ck_assert_ptr_nonnull(find_text(&l, "y/head1"));
    ck_assert_ptr_nonnull(find_text(&l, "Mine"));
    mk_plot_layout_free(&l);
    matrix_free(&m);
    /* the exporter's dotted module names are shortened the same way */
    matrix_make(&m, 2, 2, "layer%d.0.conv1", "encoder.layers.%d", 0);
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert_ptr_nonnull(find_text(&l, "0.conv1"));
    ck_assert_ptr_nonnull(find_text(&l, "layers.2"));
    ck_assert_ptr_null(find_text(&l, "layer1.0.conv1"));
    mk_plot_layout_free(&l);
    o.short_names = 1;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert_ptr_nonnull(find_text(&l, "conv1"));
    ck_assert_ptr_null(find_text(&l, "layers.1"));
    ck_assert_ptr_null(find_text(&l, "0.conv1"));
    mk_plot_layout_free(&l);
    o.short_names = 2;
    m.d.self = 1;
    m.d.col_title = "alpha";
    o.title = NULL;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert_int_eq(tu_count(l.texts[l.ntexts - 1].text, "alpha"), 1);
    ck_assert_ptr_null(find_text(&l, "alpha vs alpha"));
    mk_plot_layout_free(&l);
    matrix_free(&m);
}
END_TEST

/* ---- SVG and PDF ------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *buf = malloc(*len + 1);
    ck_assert_uint_eq(fread(buf, 1, *len, f), *len);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static int has_bytes(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t k = 0; k + n <= len; k++)
        if (memcmp(hay + k, needle, n) == 0) return 1;
    return 0;
}

static void make_named(matrix *m)
{
    matrix_make(m, 2, 3, "x/a%d", "y/b%d", 0);
    snprintf(m->rl[1], 256, "q&a<1>");
    snprintf(m->cl[2], 256, "héad \"2\"");
}

START_TEST(svg_holds_the_title_and_every_layer_name)
{
    matrix m;
    make_named(&m);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    char *path = tu_path(tu_dir, "fig.SVG");
    size_t len;
    ck_assert_int_eq(mk_plot_render(&m.d, &o, path), MK_OK);
    char *svg = slurp(path, &len), *desc = strstr(svg, "<desc>"), *end = strstr(svg, "</desc>");
    ck_assert(strncmp(svg, "<?xml", 5) == 0 && strstr(svg, "<svg") != NULL);
    ck_assert_ptr_nonnull(strstr(svg, "<title>alpha vs beta</title>"));
    ck_assert(desc && end && desc < end);
    *end = '\0';
    const char *names[] = {"\nx/a1\n", "\nq&amp;a&lt;1&gt;\n", "\ny/b1\n", "\ny/b2\n", "\nhéad \"2\"\n"};
    for (int k = 0; k < 5; k++) ck_assert_msg(strstr(desc, names[k]) != NULL, "%s not in <desc>", names[k]);
    ck_assert_ptr_null(strstr(desc, "q&a<"));
    free(svg);
    free(path);
    matrix_free(&m);
}
END_TEST

START_TEST(pdf_holds_the_title_and_every_layer_name)
{
    matrix m;
    matrix_make(&m, 2, 3, "x/a%d", "y/b%d", 0);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    o.title = "CKA here";
    char *path = tu_path(tu_dir, "fig.pdf");
    size_t len;
    ck_assert_int_eq(mk_plot_render(&m.d, &o, path), MK_OK);
    char *pdf = slurp(path, &len);
    ck_assert(len > 1000 && strncmp(pdf, "%PDF-", 5) == 0);
    ck_assert(has_bytes(pdf, len, "/Title (CKA here)"));
    ck_assert(has_bytes(pdf, len, "(x/a1, x/a2, y/b1, y/b2, y/b3)"));
    ck_assert(has_bytes(pdf, len, "/Subject (CKA matrix; rows: alpha, columns: beta)"));
    free(pdf);
    free(path);
    matrix_free(&m);
}
END_TEST

START_TEST(two_hundred_layers_in_every_format)
{
    matrix m;
    matrix_make(&m, 200, 200, "encoder/layer.%d/output", "encoder/layer.%d/output", 1);
    m.v[7] = NAN;
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    const char *names[] = {"big.png", "big.svg", "big.pdf"};
    for (int k = 0; k < 3; k++) {
        char *path = tu_path(tu_dir, names[k]);
        ck_assert_msg(mk_plot_render(&m.d, &o, path) == MK_OK, "%s: %s", names[k], mk_errmsg());
        size_t len;
        free(slurp(path, &len));
        ck_assert_uint_gt(len, 10000);
        free(path);
    }
    image im;
    mk_plot_layout l;
    char *path = render_png(&m, &o, "big.png", &im, &l);
    ck_assert(im.w > 2400 && im.w < 4000 && im.h > 2400 && im.h < 4000);
    ck_assert_int_le(channel_gap(cell_centre(&im, &l, 0, 7), 0xbfbfbf), 1);
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    free(path);
    matrix_free(&m);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------- */

static int files_in(const char *folder)
{
    DIR *d = opendir(folder);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.' || strlen(e->d_name) > 2;
    closedir(d);
    return n;
}

START_TEST(bad_outputs_leave_nothing_behind)
{
    matrix m;
    matrix_make(&m, 2, 2, "a%d", "b%d", 0);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    char *jpg = tu_path(tu_dir, "fig.jpg"), *bare = tu_path(tu_dir, "fig"), *lost = tu_path(tu_dir, "no/such/fig.png");
    ck_assert_int_eq(mk_plot_render(&m.d, &o, jpg), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "fig.jpg': unknown extension '.jpg'"));
    ck_assert_int_eq(mk_plot_render(&m.d, &o, bare), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "has no extension"));
    ck_assert_int_eq(mk_plot_render(&m.d, &o, lost), MK_EIO);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "no/such/fig.png"));
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "No such file or directory"));
    ck_assert_int_eq(files_in(tu_dir), 0);
    free(jpg);
    free(bare);
    free(lost);
    matrix_free(&m);
}
END_TEST

START_TEST(an_old_figure_is_replaced_whole)
{
    matrix m;
    matrix_make(&m, 2, 2, "a%d", "b%d", 0);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    char *path = tu_path(tu_dir, "fig.png");
    tu_write_text(path, "not a picture");
    ck_assert_int_eq(mk_plot_render(&m.d, &o, path), MK_OK);
    image im;
    image_load(&im, path);
    ck_assert_int_gt(im.w, 100);
    cairo_surface_destroy(im.s);
    ck_assert_int_eq(files_in(tu_dir), 1);
    free(path);
    matrix_free(&m);
}
END_TEST

START_TEST(bad_renderer_inputs)
{
    matrix m;
    matrix_make(&m, 2, 2, "a%d", "b%d", 0);
    mk_plot_opts o;
    mk_plot_layout l;
    mk_plot_opts_default(&o);
    o.vmin = 1.0;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "vmin < vmax"));
    mk_plot_opts_default(&o);
    o.cmap = 4; /* magma, viridis, inferno and gray are 0 to 3 */
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "no colour map 4"));
    double rgb[3];
    ck_assert_int_eq(mk_plot_cmap("rainbow", 0.5, rgb), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "unknown colour map 'rainbow' (use magma, viridis, inferno or gray)"));
    mk_plot_opts_default(&o);
    o.short_names = -1;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_EUSAGE);
    mk_plot_opts_default(&o);
    m.d.rows = 0;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "nothing to draw"));
    m.d.rows = 2;
    snprintf(m.cl[1], 256, "bad \xff");
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "layer name 4 is not valid UTF-8"));
    matrix_free(&m);
}
END_TEST

/* ---- from cka.h5, and the command line ------------------------------------------- */

START_TEST(plot_result_draws_a_cka_file)
{
    char *h5 = tu_path(tu_dir, "xy.h5"), *self = tu_path(tu_dir, "self.h5"), *png = tu_path(tu_dir, "xy.png");
    rf_write_simple(h5, 3, 2, 0);
    rf_write_simple(self, 3, 3, 1);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    o.annotate = MK_ANNOTATE_NEVER;
    ck_assert_int_eq(mk_plot_result(h5, &o, NULL, png), MK_OK);
    image im;
    image_load(&im, png);
    double v[6] = {1 / 2.0, 1 / 3.0, 2 / 3.0, 2 / 4.0, 3 / 4.0, 3 / 5.0}, c[3];
    char *names[3] = {"x/layer0", "x/layer1", "x/layer2"};
    mk_plot_data d = {.rows = 3, .cols = 2, .values = v, .row_labels = (const char *const *)names,
                      .col_labels = (const char *const *)names, .row_title = "alpha", .col_title = "beta"};
    mk_plot_layout l;
    ck_assert_int_eq(mk_plot_layout_make(&d, &o, &l), MK_OK);
    ck_assert_int_eq(im.w, (int)l.width);
    for (int k = 0; k < 6; k++) {
        mk_plot_cmap("magma", v[k], c);
        ck_assert_int_le(channel_gap(cell_centre(&im, &l, k / 2, k % 2), to_rgb(c)), 1);
    }
    ck_assert_ptr_nonnull(find_text(&l, "alpha vs beta"));
    mk_plot_layout_free(&l);
    cairo_surface_destroy(im.s);
    o.half = 1;
    ck_assert_int_eq(mk_plot_result(h5, &o, NULL, png), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "--half needs a self comparison"));
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "compares alpha with beta"));
    ck_assert_int_eq(mk_plot_result(self, &o, NULL, png), MK_OK);
    static const char *const odd[] = {"caf\xe9", "ok"}; /* Latin-1, not UTF-8: drawn as "caf?" */
    rf_result r = {.nx = 2, .ny = 2, .cka = v, .x_layers = odd, .y_layers = odd, .x_name = "m\xff",
                   .y_name = "m\xff", .self = 1, .meta = "caf\xe9; ok"};
    rf_write(h5, &r);
    ck_assert_msg(mk_plot_result(h5, &o, NULL, png) == MK_OK, "%s", mk_errmsg());
    free(h5);
    free(self);
    free(png);
}
END_TEST

/* ---- subtitle, other matrices, standard errors ------------------------------------- */

START_TEST(subtitles_wrap_and_stay_clear)
{
    matrix m;
    mk_plot_opts o;
    mk_plot_layout l;
    const mk_plot_text *lines[16];
    mk_plot_opts_default(&o);
    matrix_make(&m, 2, 3, "a%d", "b%d", 0);
    m.d.subtitle = RF_DESCRIPTION;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    assert_subtitle(&l, RF_DESCRIPTION, "2 x 3");
    ck_assert_int_ge(subtitle_lines(&l, lines, 16), 2);
    ck_assert_str_eq(lines[1]->text, "jackknife over 20 groups; 1000 permutations");
    mk_plot_layout_free(&l);
    const char *odd[] = {"one part alone that is much wider than the small heatmap below it is; b", "x; y; z; ",
                         "; leading", "no parts at all"};
    for (int k = 0; k < 4; k++) {
        m.d.subtitle = odd[k];
        o.title = k % 2 ? "" : "A title";
        ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
        assert_texts_fit(&l, odd[k]);
        ck_assert_int_ge(subtitle_lines(&l, lines, 16), 1);
        mk_plot_layout_free(&l);
    }
    o.title = NULL;
    m.d.subtitle = "";
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert_int_eq(subtitle_lines(&l, lines, 16), 0);
    mk_plot_layout_free(&l);
    matrix_free(&m);
    matrix_make(&m, 5, 5, "l%d", "l%d", 1);
    m.d.subtitle = RF_DESCRIPTION;
    o.half = 1;
    o.invert_y = 1;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    assert_subtitle(&l, RF_DESCRIPTION, "half, inverted");
    mk_plot_layout_free(&l);
    m.d.subtitle = "bad \xff";
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "subtitle is not valid UTF-8"));
    matrix_free(&m);
}
END_TEST

/* The rows of cell (i, j) holding ink (pixels far from its corner's colour). */
static int ink_rows(const image *im, const mk_plot_layout *l, int i, int j, int *top)
{
    double x, y;
    int first = -1, last = -1;
    mk_plot_cell_origin(l, i, j, &x, &y);
    uint32_t bg = pixel(im, (int)x + 1, (int)y + 1);
    for (int py = (int)y + 1; py < (int)(y + l->cell) - 1; py++)
        for (int px = (int)x + 1; px < (int)(x + l->cell) - 1; px++)
            if (channel_gap(pixel(im, px, py), bg) > 80) {
                first = first < 0 ? py : first;
                last = py;
                break;
            }
    *top = first - (int)y;
    return first < 0 ? 0 : last - first + 1;
}

START_TEST(errors_go_under_the_values)
{
    matrix m;
    matrix_make(&m, 2, 2, "r%d", "c%d", 0);
    const double v[4] = {0.1, 0.9, 0.5, NAN}, se[4] = {0.012, 0.3, NAN, 0.01};
    memcpy(m.v, v, sizeof v);
    m.d.errors = se;
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    o.annotate = MK_ANNOTATE_ALWAYS;
    image plain, with;
    mk_plot_layout lp, lw;
    char *p1 = render_png(&m, &o, "plain.png", &plain, &lp);
    ck_assert(lp.error_size == 0.0); /* errors given, not asked for */
    o.errors = 1;
    char *p2 = render_png(&m, &o, "errors.png", &with, &lw);
    ck_assert(lw.value_size >= 8.0 && lw.error_size > 0.0 && lw.error_size < lw.value_size);
    ck_assert(lw.cell == lp.cell);
    int top1, top2;
    for (int k = 0; k < 2; k++) { /* two lines: taller ink, still inside the cell */
        int h1 = ink_rows(&plain, &lp, 0, k, &top1), h2 = ink_rows(&with, &lw, 0, k, &top2);
        ck_assert_msg(h1 > 4 && h2 > 1.6 * h1 && top2 < top1, "cell %d: %d rows, with errors %d", k, h1, h2);
        ck_assert(top2 + h2 < lw.cell - 2);
    }
    ck_assert_int_eq(ink_rows(&with, &lw, 1, 0, &top2), ink_rows(&plain, &lp, 1, 0, &top1)); /* NaN error */
    ck_assert_int_eq(top1, top2);
    ck_assert_int_eq(ink_rows(&with, &lw, 1, 1, &top2), 0); /* NaN value */
    cairo_surface_destroy(plain.s);
    cairo_surface_destroy(with.s);
    mk_plot_layout_free(&lp);
    mk_plot_layout_free(&lw);
    free(p1);
    free(p2);
    /* by default only when both lines fit legibly; --annotate: cells grow for them */
    matrix_free(&m);
    double *many = calloc(24 * 24, sizeof *many);
    matrix_make(&m, 20, 20, "r%d", "c%d", 0);
    m.d.errors = many;
    o.annotate = MK_ANNOTATE_AUTO;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &lw), MK_OK);
    ck_assert(lw.value_size >= 8.0 && lw.error_size > 0.0);
    mk_plot_layout_free(&lw);
    matrix_free(&m);
    matrix_make(&m, 24, 24, "r%d", "c%d", 0); /* values fit, with errors they would not */
    m.d.errors = many;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &lw), MK_OK);
    ck_assert(lw.value_size >= 8.0 && lw.error_size == 0.0);
    mk_plot_layout_free(&lw);
    o.annotate = MK_ANNOTATE_ALWAYS;
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &lw), MK_OK);
    ck_assert(lw.value_size >= 8.0 && lw.error_size > 0.0);
    assert_texts_fit(&lw, "24 x 24 with errors");
    mk_plot_layout_free(&lw);
    m.d.errors = NULL; /* asked for, none there */
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &lw), MK_OK);
    ck_assert(lw.error_size == 0.0);
    mk_plot_layout_free(&lw);
    free(many);
    matrix_free(&m);
}
END_TEST

/* The layout mk_plot_result makes for matrix `which` of rf_write_full's
 * 3 by 2 result: the same data, so its cells can be found in the PNG. */
static void full_layout(const double *values, const char *value_title, const mk_plot_opts *o,
                        mk_plot_layout *l)
{
    char *xs[3] = {"x/layer0", "x/layer1", "x/layer2"}, *ys[2] = {"y/layer0", "y/layer1"};
    mk_plot_data d = {.rows = 3, .cols = 2, .values = values, .row_labels = (const char *const *)xs,
                      .col_labels = (const char *const *)ys, .row_title = "alpha", .col_title = "beta",
                      .subtitle = RF_DESCRIPTION, .value_title = value_title,
                      .value_decimals = value_title ? 3 : 2};
    ck_assert_int_eq(mk_plot_layout_make(&d, o, l), MK_OK);
}

static void expect_cells(const char *png, const double *values, const char *value_title, const mk_plot_opts *o)
{
    image im;
    mk_plot_layout l;
    double c[3];
    image_load(&im, png);
    full_layout(values, value_title, o, &l);
    ck_assert_int_eq(im.w, (int)l.width);
    ck_assert_int_eq(im.h, (int)l.height);
    for (int k = 0; k < 6; k++) {
        mk_plot_cmap(mk_plot_cmaps[o->cmap], (values[k] - o->vmin) / (o->vmax - o->vmin), c);
        ck_assert_msg(channel_gap(cell_centre(&im, &l, k / 2, k % 2), to_rgb(c)) <= 1, "%s cell %d",
                      value_title ? value_title : "CKA", k);
    }
    ck_assert_ptr_nonnull(find_text(&l, value_title ? value_title : "CKA"));
    mk_plot_layout_free(&l);
    cairo_surface_destroy(im.s);
}

START_TEST(plot_result_draws_each_matrix)
{
    char *h5 = tu_path(tu_dir, "full.h5"), *old = tu_path(tu_dir, "old.h5"), *png = tu_path(tu_dir, "m.png");
    rf_write_full(h5, 3, 2, 0);
    rf_write_simple(old, 3, 2, 0);
    double se[6], p[6], cka[6];
    for (int k = 0; k < 6; k++) {
        se[k] = (k / 2 + k % 2 + 1) / 1000.0;
        p[k] = 1.0 / (k / 2 + k % 2 + 2);
        cka[k] = (k / 2 + 1.0) / (k / 2 + k % 2 + 2);
    }
    mk_plot_opts o;
    mk_plot_pick pk = {MK_MATRIX_CKA, NULL, NULL, NULL};
    mk_plot_opts_default(&o);
    o.annotate = MK_ANNOTATE_NEVER;
    ck_assert_msg(mk_plot_result(h5, &o, &pk, png) == MK_OK, "%s", mk_errmsg());
    expect_cells(png, cka, NULL, &o);
    pk.matrix = MK_MATRIX_STDERR; /* default range: 0 to the largest */
    o.vmin = o.vmax = NAN;
    ck_assert_msg(mk_plot_result(h5, &o, &pk, png) == MK_OK, "%s", mk_errmsg());
    o.vmin = 0.0;
    o.vmax = 0.004;
    expect_cells(png, se, "standard error of CKA", &o);
    o.vmax = 0.01; /* given: kept */
    ck_assert_int_eq(mk_plot_result(h5, &o, &pk, png), MK_OK);
    expect_cells(png, se, "standard error of CKA", &o);
    pk.matrix = MK_MATRIX_PVALUE;
    o.vmin = o.vmax = NAN;
    o.cmap = mk_plot_cmap_index("viridis");
    ck_assert_int_eq(mk_plot_result(h5, &o, &pk, png), MK_OK);
    o.vmin = 0.0;
    o.vmax = 1.0;
    expect_cells(png, p, "p-value of CKA", &o);
    ck_assert_int_eq(mk_plot_result(old, &o, &pk, png), MK_EINPUT);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "old.h5' has no /cka_pvalue (p-value of CKA): run with perm"));
    pk.matrix = MK_MATRIX_CKA; /* an old file: no subtitle, errors asked for and ignored */
    o.errors = 1;
    o.annotate = MK_ANNOTATE_ALWAYS;
    ck_assert_int_eq(mk_plot_result(old, &o, &pk, png), MK_OK);
    free(h5);
    free(old);
    free(png);
}
END_TEST

/* key and ASCII text in a PDF: as a literal string, or as cairo writes one
 * with parentheses, UTF-16BE in hex after a byte order mark. */
static int pdf_has_text(const char *pdf, size_t len, const char *key, const char *text)
{
    char want[2048];
    int n = snprintf(want, sizeof want, "%s<FEFF", key);
    for (const char *c = text; *c && n + 5 < (int)sizeof want; c++)
        n += snprintf(want + n, sizeof want - n, "00%02X", (unsigned char)*c);
    if (has_bytes(pdf, len, want)) return 1;
    snprintf(want, sizeof want, "%s(%s", key, text);
    return !strchr(text, '(') && has_bytes(pdf, len, want);
}

START_TEST(svg_and_pdf_hold_the_subtitle)
{
    char *h5 = tu_path(tu_dir, "full.h5"), *old = tu_path(tu_dir, "old.h5"), *svg = tu_path(tu_dir, "f.svg");
    char *pdf = tu_path(tu_dir, "f.pdf");
    rf_write_full(h5, 3, 2, 0);
    rf_write_simple(old, 3, 2, 0);
    mk_plot_opts o;
    mk_plot_pick pk = {MK_MATRIX_CKA, NULL, NULL, NULL};
    mk_plot_opts_default(&o);
    size_t len;
    ck_assert_int_eq(mk_plot_result(h5, &o, &pk, svg), MK_OK);
    char *text = slurp(svg, &len);
    ck_assert_msg(strstr(text, "<desc>mpicka CKA heatmap\nmethod: " RF_DESCRIPTION "\nrows (alpha):\n"), "%s",
                  text);
    free(text);
    pk.matrix = MK_MATRIX_STDERR;
    o.vmax = NAN;
    ck_assert_int_eq(mk_plot_result(h5, &o, &pk, svg), MK_OK);
    text = slurp(svg, &len);
    ck_assert_ptr_nonnull(strstr(text, "<desc>mpicka heatmap: standard error of CKA\nmethod: minibatch"));
    free(text);
    ck_assert_int_eq(mk_plot_result(h5, &o, &pk, pdf), MK_OK);
    text = slurp(pdf, &len);
    ck_assert(pdf_has_text(text, len, "/Subject ",
                           "standard error of CKA matrix; rows: alpha, columns: beta; method: minibatch CKA, "
                           "unbiased HSIC_1, RBF kernel (bandwidth 0.5"));
    free(text);
    mk_plot_opts_default(&o);
    pk.matrix = MK_MATRIX_CKA;
    ck_assert_int_eq(mk_plot_result(old, &o, &pk, svg), MK_OK);
    text = slurp(svg, &len);
    ck_assert_ptr_nonnull(strstr(text, "<desc>mpicka CKA heatmap\nrows (alpha):\n"));
    ck_assert_ptr_null(strstr(text, "method:"));
    free(text);
    free(h5);
    free(old);
    free(svg);
    free(pdf);
}
END_TEST

#define PLOT(...) TU_COMMAND(mk_plot_main, "plot", __VA_ARGS__)

START_TEST(plot_command_options)
{
    char *h5 = tu_path(tu_dir, "self.h5"), *svg = tu_path(tu_dir, "f.svg");
    rf_write_simple(h5, 4, 4, 1);
    ck_assert_int_eq(PLOT(h5, "-o", svg, "--title=My T", "--cmap", "viridis", "--vmin", "-1", "--vmax=1",
                          "--annotate", "--half", "--invert-y", "--short-names", "1"),
                     MK_OK);
    size_t len;
    char *text = slurp(svg, &len);
    ck_assert_ptr_nonnull(strstr(text, "<title>My T</title>"));
    free(text);
    ck_assert_int_eq(PLOT("--help"), MK_OK);
    ck_assert_int_eq(PLOT(h5, "--output", svg, "--no-annotate"), MK_OK);
    rf_write_full(h5, 4, 4, 1);
    ck_assert_int_eq(PLOT(h5, "-o", svg, "--matrix", "stderr", "--errors", "--vmin", "0.002"), MK_OK);
    text = slurp(svg, &len);
    ck_assert_ptr_nonnull(strstr(text, "<desc>mpicka heatmap: standard error of CKA\nmethod: minibatch"));
    free(text);
    ck_assert_int_eq(PLOT(h5, "-o", svg, "--matrix=pvalue", "--annotate", "--errors", "--half"), MK_OK);
    ck_assert_int_eq(PLOT(h5, "-o", svg, "--errors", "--annotate"), MK_OK);
    free(h5);
    free(svg);
}
END_TEST

START_TEST(plot_command_mistakes)
{
    char *h5 = tu_path(tu_dir, "xy.h5"), *txt = tu_path(tu_dir, "notes.h5");
    rf_write_simple(h5, 2, 3, 0);
    tu_write_text(txt, "hello");
    tu_assert_error(PLOT(h5), MK_EUSAGE, "missing -o FIG");
    tu_assert_error(PLOT("-o", "f.png"), MK_EUSAGE, "missing RESULT.h5");
    tu_assert_error(PLOT(h5, "-o", "f.gif"), MK_EUSAGE, "unknown extension '.gif'");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--colour", "x"), MK_EUSAGE, "unknown option '--colour'");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--cmap"), MK_EUSAGE, "--cmap needs a value");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--cmap", "jet"), MK_EUSAGE, "--cmap 'jet': unknown colour map");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--vmin", "low"), MK_EUSAGE, "--vmin 'low': expected a finite number");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--vmax", "nan"), MK_EUSAGE, "--vmax 'nan'");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--vmin", "0.5", "--vmax", "0.5"), MK_EUSAGE,
           "--vmin 0.5 must be below --vmax 0.5");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--vmin", "2"), MK_EUSAGE, "colour range is empty");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--annotate", "--no-annotate"), MK_EUSAGE, "contradict");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--short-names", "-1"), MK_EUSAGE, "--short-names '-1'");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--short-names", "two"), MK_EUSAGE, "--short-names 'two'");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--half=yes"), MK_EUSAGE, "--half takes no value");
    tu_assert_error(PLOT(h5, "-o", "f.png", "-o", "g.png"), MK_EUSAGE, "--output is given twice");
    tu_assert_error(PLOT(h5, h5, "-o", "f.png"), MK_EUSAGE, "unexpected argument");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--half"), MK_EUSAGE, "--half needs a self comparison");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--matrix", "p"), MK_EUSAGE,
           "plot: --matrix 'p': expected cka, stderr or pvalue");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--matrix", "stderr"), MK_EINPUT, "xy.h5' has no /cka_stderr");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--errors=yes"), MK_EUSAGE, "--errors takes no value");
    tu_assert_error(PLOT(h5, "-o", "f.png", "--matrix", "pvalue", "--vmin", "1"), MK_EUSAGE,
           "--vmin 1 must be below --vmax 1");
    tu_assert_error(PLOT("missing.h5", "-o", "f.png"), MK_EINPUT, "cannot open 'missing.h5'");
    tu_assert_error(PLOT(txt, "-o", "f.png"), MK_EINPUT, "notes.h5' is not an HDF5 file");
    ck_assert(!tu_exists("f.png") && !tu_exists("g.png"));
    free(h5);
    free(txt);
}
END_TEST

START_TEST(the_mpicka_binary)
{
    char *h5 = tu_path(tu_dir, "xy.h5"), cmd[4096], *out;
    rf_write_simple(h5, 2, 3, 0);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' plot xy.h5 -o fig.pdf", tu_dir, MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 0);
    tu_assert_has(out, "wrote fig.pdf");
    free(out);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' plot gone.h5 -o fig.png", tu_dir, MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 3);
    tu_assert_has(out, "mpicka: input error: cannot open 'gone.h5'");
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' plot xy.h5 -o fig.png --vmin", MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 2);
    tu_assert_has(out, "mpicka: usage error: plot: --vmin needs a value");
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' plot --help && '%s' --help", MK_TEST_EXE, MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 0);
    tu_assert_has(out, "--short-names K");
    tu_assert_has(out, "--matrix M");
    tu_assert_has(out, "--errors ");
    tu_assert_has(out, "mpicka show RESULT.h5");
    free(out);
    free(h5);
}
END_TEST

/* ---- a models result: the grid, one block, one layer across models ---------------- */

#define GM 10 /* models */
#define GL 12 /* layers each */
#define GN (GM * GL)

static const char *const grid_models[GM] = {"resnet-a", "resnet-b", "resnet-c", "vit-a",  "vit-b",
                                            "vit-c",    "mlp-a",    "mlp-b",    "bert-a", "bert-b"};

/* The whole 120 by 120 matrix, made here: block (a, b) and layer (i, j). */
static double grid_value(int r, int c)
{
    int a = r / GL, b = c / GL, i = r % GL, j = c % GL;
    return (a == b ? 0.5 : 0.2) + 0.5 * exp(-abs(i - j) / 2.0) * (0.6 + 0.04 * ((a + 2 * b) % 10));
}

static void write_grid(const char *path, double *grid)
{
    static const int layers[GM] = {GL, GL, GL, GL, GL, GL, GL, GL, GL, GL};
    for (int r = 0; r < GN; r++)
        for (int c = 0; c < GN; c++) grid[r * GN + c] = grid_value(r, c);
    rf_models m = {.nmodels = GM, .names = grid_models, .layers = layers, .cka = grid};
    rf_write_models(path, &m);
}

/* The grid's data as mk_plot_result hands it to the renderer. */
static void grid_data(const double *grid, char **labels, int *offsets, mk_plot_data *d)
{
    for (int k = 0; k < GN; k++) {
        labels[k] = malloc(16);
        snprintf(labels[k], 16, "layer%d", k % GL);
    }
    for (int k = 0; k <= GM; k++) offsets[k] = k * GL;
    static char joined[256];
    joined[0] = '\0';
    for (int k = 0; k < GM; k++) snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s",
                                          k ? ", " : "", grid_models[k]);
    mk_plot_data g = {.rows = GN, .cols = GN, .values = grid, .row_labels = (const char *const *)labels,
                      .col_labels = (const char *const *)labels, .row_title = joined, .col_title = joined,
                      .self = 1, .ngroups = GM, .group_labels = grid_models, .group_offsets = offsets};
    *d = g;
}

static int text_count(const mk_plot_layout *l, const char *text)
{
    int n = 0;
    for (int k = 0; k < l->ntexts; k++) n += strcmp(l->texts[k].text, text) == 0;
    return n;
}

/* 10 models of 12 layers: every cell its colour, white lines between the
 * blocks, each model named once beside and once below, layer names too,
 * nothing overlapping, "10 models" as title. */
START_TEST(models_grid_with_names_and_lines)
{
    char *h5 = tu_path(tu_dir, "models.h5"), *png = tu_path(tu_dir, "grid.png"), *labels[GN];
    double *grid = malloc(GN * GN * sizeof *grid), rgb[3];
    int offsets[GM + 1];
    write_grid(h5, grid);
    mk_plot_opts o;
    mk_plot_opts_default(&o);
    ck_assert_msg(mk_plot_result(h5, &o, NULL, png) == MK_OK, "%s", mk_errmsg());
    mk_plot_data d;
    grid_data(grid, labels, offsets, &d);
    mk_plot_layout l;
    ck_assert_msg(mk_plot_layout_make(&d, &o, &l) == MK_OK, "%s", mk_errmsg());
    image im;
    image_load(&im, png);
    ck_assert_int_eq(im.w, (int)l.width);
    ck_assert_int_eq(im.h, (int)l.height);
    ck_assert(l.cell >= 12 && l.layer_labels && l.ngroups == GM);
    for (int r = 1; r < GN; r += 7)
        for (int c = 2; c < GN; c += 5) {
            mk_plot_cmap("magma", grid_value(r, c), rgb);
            ck_assert_msg(channel_gap(cell_centre(&im, &l, r, c), to_rgb(rgb)) <= 1, "cell %d,%d", r, c);
        }
    for (int k = 1; k < GM; k++) { /* the boundary before row/column k*GL is white */
        double x, y;
        mk_plot_cell_origin(&l, k * GL, k * GL + 3, &x, &y);
        ck_assert_uint_eq(pixel(&im, (int)(x + l.cell / 2), (int)y), 0xffffff);
        mk_plot_cell_origin(&l, 5, k * GL, &x, &y);
        ck_assert_uint_eq(pixel(&im, (int)x, (int)(y + l.cell / 2)), 0xffffff);
    }
    for (int k = 0; k < GM; k++) ck_assert_int_eq(text_count(&l, grid_models[k]), 2);
    ck_assert_int_eq(text_count(&l, "layer0"), 2 * GM);
    ck_assert_int_eq(text_count(&l, "10 models"), 1);
    assert_texts_fit(&l, "10 x 12 grid");
    mk_plot_layout_free(&l);
    cairo_surface_destroy(im.s);
    /* a short list of names is the title itself; too many layers: models named alone */
    int few[4] = {0, 1, 3, 4};
    const char *names3[3] = {"a", "b", "c"};
    d.rows = d.cols = 4;
    d.ngroups = 3;
    d.group_offsets = few;
    d.group_labels = names3;
    d.row_title = d.col_title = "a, b, c";
    ck_assert_int_eq(mk_plot_layout_make(&d, &o, &l), MK_OK);
    ck_assert_int_eq(text_count(&l, "a, b, c"), 1);
    ck_assert_int_eq(text_count(&l, "layer0"), 2);
    assert_texts_fit(&l, "3 small models");
    mk_plot_layout_free(&l);
    matrix m;
    int wide[21];
    char *many_names[20];
    matrix_make(&m, 600, 600, "features.%d.conv", "features.%d.conv", 1);
    for (int k = 0; k <= 20; k++) wide[k] = 30 * k;
    for (int k = 0; k < 20; k++) {
        many_names[k] = malloc(16);
        snprintf(many_names[k], 16, "model-%d", k);
    }
    m.d.ngroups = 20;
    m.d.group_offsets = wide;
    m.d.group_labels = (const char *const *)many_names;
    m.d.row_title = m.d.col_title = "model-0, model-1, model-2, model-3, model-4, model-5, model-6, model-7, ...";
    ck_assert_int_eq(mk_plot_layout_make(&m.d, &o, &l), MK_OK);
    ck_assert_int_eq(l.layer_labels, 0);
    ck_assert_int_eq(text_count(&l, "model-7"), 2);
    ck_assert_ptr_null(find_text(&l, "features.1.conv"));
    ck_assert_int_eq(text_count(&l, "20 models"), 1);
    assert_texts_fit(&l, "20 x 30 grid");
    mk_plot_layout_free(&l);
    for (int k = 0; k < 20; k++) free(many_names[k]);
    matrix_free(&m);
    for (int k = 0; k < GN; k++) free(labels[k]);
    free(grid);
    free(png);
    free(h5);
}
END_TEST

/* --pair draws block (A, B) as a two-model result; --matched one layer's
 * model-by-model matrix; the cells are the grid's, found here by index. */
START_TEST(models_pair_and_matched_views)
{
    char *h5 = tu_path(tu_dir, "models.h5"), *png = tu_path(tu_dir, "view.png"), *xs[GL], *ms[GM];
    double *grid = malloc(GN * GN * sizeof *grid), block[GL * GL], across[GM * GM], rgb[3];
    write_grid(h5, grid);
    mk_plot_opts o;
    mk_plot_pick pk = {MK_MATRIX_CKA, NULL, NULL, NULL};
    mk_plot_opts_default(&o);
    o.annotate = MK_ANNOTATE_NEVER;
    pk.pair = "vit-b,resnet-a";
    ck_assert_msg(mk_plot_result(h5, &o, &pk, png) == MK_OK, "%s", mk_errmsg());
    for (int i = 0; i < GL; i++) {
        xs[i] = malloc(16);
        snprintf(xs[i], 16, "layer%d", i);
        for (int j = 0; j < GL; j++) block[i * GL + j] = grid[(4 * GL + i) * GN + j];
    }
    mk_plot_data d = {.rows = GL, .cols = GL, .values = block, .row_labels = (const char *const *)xs,
                      .col_labels = (const char *const *)xs, .row_title = "vit-b", .col_title = "resnet-a"};
    mk_plot_layout l;
    image im;
    ck_assert_int_eq(mk_plot_layout_make(&d, &o, &l), MK_OK);
    ck_assert_int_eq(text_count(&l, "vit-b vs resnet-a"), 1);
    image_load(&im, png);
    ck_assert_int_eq(im.w, (int)l.width);
    for (int k = 0; k < GL * GL; k += 5) {
        mk_plot_cmap("magma", block[k], rgb);
        ck_assert_msg(channel_gap(cell_centre(&im, &l, k / GL, k % GL), to_rgb(rgb)) <= 1, "pair cell %d", k);
    }
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    pk.pair = NULL;
    pk.matched = "layer5";
    ck_assert_msg(mk_plot_result(h5, &o, &pk, png) == MK_OK, "%s", mk_errmsg());
    for (int a = 0; a < GM; a++) {
        ms[a] = (char *)grid_models[a];
        for (int b = 0; b < GM; b++) across[a * GM + b] = grid[(a * GL + 5) * GN + b * GL + 5];
    }
    mk_plot_data dm = {.rows = GM, .cols = GM, .values = across, .row_labels = (const char *const *)ms,
                       .col_labels = (const char *const *)ms, .row_title = "model", .col_title = "model",
                       .self = 1};
    mk_plot_opts om = o;
    om.title = "layer5 across 10 models";
    ck_assert_int_eq(mk_plot_layout_make(&dm, &om, &l), MK_OK);
    image_load(&im, png);
    ck_assert_int_eq(im.w, (int)l.width);
    ck_assert_int_eq(im.h, (int)l.height);
    for (int k = 0; k < GM * GM; k++) {
        mk_plot_cmap("magma", across[k], rgb);
        ck_assert_msg(channel_gap(cell_centre(&im, &l, k / GM, k % GM), to_rgb(rgb)) <= 1, "matched cell %d", k);
    }
    cairo_surface_destroy(im.s);
    mk_plot_layout_free(&l);
    pk.matched = NULL; /* the grid's own half */
    o.half = 1;
    ck_assert_int_eq(mk_plot_result(h5, &o, &pk, png), MK_OK);
    char *svg = tu_path(tu_dir, "view.svg");
    o.half = 0;
    pk.matched = "layer0";
    ck_assert_int_eq(mk_plot_result(h5, &o, &pk, svg), MK_OK);
    size_t len;
    char *text = slurp(svg, &len);
    ck_assert_msg(strstr(text, "<title>layer0 across 10 models</title>"), "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "rows (model):\nresnet-a\nresnet-b\n"));
    free(text);
    free(svg);
    for (int i = 0; i < GL; i++) free(xs[i]);
    free(grid);
    free(png);
    free(h5);
}
END_TEST

START_TEST(models_command_line)
{
    char *h5 = tu_path(tu_dir, "models.h5"), *xy = tu_path(tu_dir, "xy.h5"), *png = tu_path(tu_dir, "f.png");
    double *grid = malloc(GN * GN * sizeof *grid);
    write_grid(h5, grid);
    rf_write_simple(xy, 2, 3, 0);
    ck_assert_int_eq(PLOT(h5, "-o", png), MK_OK);
    ck_assert_int_eq(PLOT(h5, "-o", png, "--pair", "mlp-a,mlp-a", "--half", "--matrix", "cka"), MK_OK);
    ck_assert_int_eq(PLOT(h5, "-o", png, "--matched=layer11", "--annotate"), MK_OK);
    tu_assert_error(PLOT(h5, "-o", png, "--pair", "mlp-a"), MK_EUSAGE, "plot: --pair 'mlp-a': expected A,B");
    tu_assert_error(PLOT(h5, "-o", png, "--pair", "mlp-a,gpt"), MK_EUSAGE, "has no model 'gpt' (its models: resnet-a, ");
    tu_assert_error(PLOT(h5, "-o", png, "--pair", "vit-a,mlp-a", "--half"), MK_EUSAGE, "--half needs a self comparison");
    tu_assert_error(PLOT(h5, "-o", png, "--matched", "layer12"), MK_EUSAGE,
           "--matched 'layer12': not a layer every model of '");
    tu_assert_error(PLOT(h5, "-o", png, "--pair", "a,b", "--matched", "layer1"), MK_EUSAGE, "give one of them");
    tu_assert_error(PLOT(xy, "-o", png, "--pair", "alpha,beta"), MK_EUSAGE, "--pair needs the result of a run with models");
    tu_assert_error(PLOT(xy, "-o", png, "--matched", "x/layer0"), MK_EUSAGE, "--matched needs the result");
    tu_assert_error(PLOT(h5, "-o", png, "--matrix", "stderr"), MK_EINPUT, "models.h5' has no /cka_stderr");
    free(grid);
    free(png);
    free(xy);
    free(h5);
}
END_TEST

TU_MAIN("plot", 0,
        TU_CASE("render", tu_dir_setup, tu_dir_teardown, 300, NULL, colour_maps_hit_the_published_colours,
                png_cells_have_the_colours_of_their_values, colour_range_and_other_maps,
                values_in_contrasting_ink_and_none_on_nan, half_leaves_the_upper_triangle_blank,
                invert_y_puts_the_first_row_at_the_bottom, many_cells_are_one_image_with_the_same_colours,
                svg_holds_the_title_and_every_layer_name, pdf_holds_the_title_and_every_layer_name,
                two_hundred_layers_in_every_format, bad_outputs_leave_nothing_behind, an_old_figure_is_replaced_whole,
                errors_go_under_the_values, svg_and_pdf_hold_the_subtitle),
        TU_CASE("layout", tu_dir_setup, tu_dir_teardown, 300, NULL, subtitles_wrap_and_stay_clear,
                labels_fit_turn_and_thin_without_overlap, long_titles_stay_clear, values_drawn_when_cells_hold_them,
                titles_and_short_names, bad_renderer_inputs),
        TU_CASE("command", tu_dir_setup, tu_dir_teardown, 300, NULL, plot_result_draws_a_cka_file,
                plot_result_draws_each_matrix, plot_command_options, plot_command_mistakes, the_mpicka_binary,
                models_grid_with_names_and_lines, models_pair_and_matched_views, models_command_line))
