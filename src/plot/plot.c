/* Heatmap layout and colour maps (contract in mpicka/plot.h).
 *
 * Everything is placed in heatmap coordinates first (cell (0, 0) of the
 * display at the origin), each text measured with cairo; titles go where
 * nothing already placed is in their way; the bounding box of the whole then
 * fixes the figure size and the final shift. Labels never overlap: a row
 * label is at most one cell high, column labels turn from 0 to 45 to 90
 * degrees as cells narrow, and every k-th label is kept when even that is
 * too tight. */
#include "plot_impl.h"
#include "mpicka/text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MIN 12.0
#define CELL_MAX 60.0
#define CELL_FLOOR 2.0
#define HEATMAP_TARGET 720.0 /* the side aimed at, within the cell bounds */
#define HEATMAP_MAX 3000.0   /* past it cells go below CELL_MIN and labels thin out */
#define HEATMAP_MAX_ANNOTATED 12000.0
#define FIGURE_MAX 32000.0 /* cairo's image surfaces stop at 32767 */
#define LABEL_SIZE_MAX 12.0
#define LABEL_SIZE_MIN 7.0
#define VALUE_SIZE_MIN 8.0 /* smallest legible cell value */
#define VALUE_SIZE_MAX 13.0
#define TICK_SIZE 11.0
#define AXIS_SIZE 13.0
#define TITLE_SIZE 16.0
#define SUBTITLE_SIZE 11.0
#define GROUP_SIZE 12.0    /* bold model names beside and below a grid */
#define SHORT_TITLE 60      /* a grid's default title: the joined names up to this many bytes */
#define SUBTITLE_WRAP 360.0 /* a subtitle wider than this and the heatmap breaks after a "; " */
#define ERROR_SCALE 0.85    /* a standard error's font against its cell value's */
#define TICK_LEN MK__PLOT_TICK_LEN
#define GAP 4.0
#define MARGIN 12.0
#define BAR_GAP 18.0
#define BAR_W 16.0
#define BAR_MIN_H 120.0
#define BAR_MAX_TICKS 6
#define PLOT_PI 3.14159265358979323846

/* ---- colour maps ----------------------------------------------------------
 * magma, inferno and viridis are matplotlib's maps (Smith and van der Walt,
 * 2015). Our own tables, not copied code: each holds the map's published sRGB
 * colour sampled at the 11 points t = 0, 0.1, ..., 1 (the 11-colour lists
 * that viridisLite and others print), and colours in between are interpolated
 * linearly in sRGB, a close approximation of the 256-entry originals. */

static const unsigned char magma[][3] = {{0x00, 0x00, 0x04}, {0x15, 0x0e, 0x37}, {0x3b, 0x0f, 0x70},
                                         {0x64, 0x1a, 0x80}, {0x8c, 0x29, 0x81}, {0xb6, 0x36, 0x79},
                                         {0xde, 0x49, 0x68}, {0xf7, 0x6f, 0x5c}, {0xfe, 0x9f, 0x6d},
                                         {0xfe, 0xce, 0x91}, {0xfc, 0xfd, 0xbf}};
static const unsigned char inferno[][3] = {{0x00, 0x00, 0x04}, {0x17, 0x0c, 0x3a}, {0x42, 0x0a, 0x68},
                                           {0x6b, 0x18, 0x6e}, {0x93, 0x26, 0x67}, {0xbb, 0x37, 0x54},
                                           {0xdd, 0x51, 0x3a}, {0xf3, 0x77, 0x1a}, {0xfc, 0xa5, 0x0a},
                                           {0xf6, 0xd6, 0x45}, {0xfc, 0xff, 0xa4}};
static const unsigned char viridis[][3] = {{0x44, 0x01, 0x54}, {0x48, 0x25, 0x76}, {0x41, 0x44, 0x87},
                                           {0x35, 0x60, 0x8d}, {0x2a, 0x78, 0x8e}, {0x21, 0x90, 0x8c},
                                           {0x22, 0xa8, 0x84}, {0x43, 0xbf, 0x71}, {0x7a, 0xd1, 0x51},
                                           {0xbb, 0xdf, 0x27}, {0xfd, 0xe7, 0x25}};
static const unsigned char gray[][3] = {{0, 0, 0}, {255, 255, 255}};

const char *const mk_plot_cmaps[] = {"magma", "viridis", "inferno", "gray", NULL};

/* In the order of mk_plot_cmaps. */
static const struct {
    const unsigned char (*anchors)[3];
    int count;
} cmaps[] = {{magma, 11}, {viridis, 11}, {inferno, 11}, {gray, 2}};

int mk_plot_cmap_index(const char *name)
{
    for (int k = 0; mk_plot_cmaps[k]; k++)
        if (strcmp(mk_plot_cmaps[k], name) == 0) return k;
    return -1;
}

void mk_plot_cmap_list(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; mk_plot_cmaps[k] && used < size; k++) {
        const char *sep = k == 0 ? "" : mk_plot_cmaps[k + 1] ? ", " : " or ";
        used += (size_t)snprintf(buf + used, size - used, "%s%s", sep, mk_plot_cmaps[k]);
    }
}

int mk__plot_cmap_anchors(int cmap, const unsigned char (**anchors)[3])
{
    if (cmap < 0 || cmap >= (int)(sizeof cmaps / sizeof cmaps[0])) return 0;
    *anchors = cmaps[cmap].anchors;
    return cmaps[cmap].count;
}

void mk__plot_colour(int cmap, double t, double rgb[3])
{
    const unsigned char(*a)[3] = NULL;
    int count = mk__plot_cmap_anchors(cmap, &a);
    double s = (isnan(t) ? 0.0 : fmin(fmax(t, 0.0), 1.0)) * (count - 1);
    int k = (int)s < count - 1 ? (int)s : count - 2;
    double f = s - k;
    for (int c = 0; c < 3; c++) rgb[c] = ((1.0 - f) * a[k][c] + f * a[k + 1][c]) / 255.0;
}

mk_err mk_plot_cmap(const char *cmap, double t, double rgb[3])
{
    int k = mk_plot_cmap_index(cmap);
    if (k < 0) {
        char names[128];
        mk_plot_cmap_list(names, sizeof names);
        return mk_fail(MK_EUSAGE, "unknown colour map '%s' (use %s)", cmap, names);
    }
    mk__plot_colour(k, t, rgb);
    return MK_OK;
}

double mk_plot_nan_grey(void) { return 191.0 / 255.0; }

void mk_plot_opts_default(mk_plot_opts *o)
{
    memset(o, 0, sizeof *o);
    o->vmin = 0.0;
    o->vmax = 1.0;
}

/* ---- text ---------------------------------------------------------------- */

int mk_plot_utf8_fix(char *s)
{
    int fixed = 0;
    for (unsigned char *p = (unsigned char *)s; *p;) {
        int n = mk_utf8_seq(p);
        if (n == 0) {
            *p++ = '?';
            fixed++;
        } else {
            p += n;
        }
    }
    return fixed;
}

static int utf8_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = mk_utf8_seq(p);
        if (n == 0) return 0;
        p += n;
    }
    return 1;
}

void mk__plot_font(cairo_t *cr, double size, int bold)
{
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
    cairo_select_font_face(cr, MK__PLOT_FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static void measure(cairo_t *cr, const char *text, double size, int bold, double *w, double *h)
{
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    mk__plot_font(cr, size, bold);
    cairo_text_extents(cr, text, &te);
    cairo_font_extents(cr, &fe);
    *w = fmax(te.x_advance, te.x_bearing + te.width);
    *h = fe.ascent + fe.descent;
}

/* The last k components of a layer path, separated by '/' or '.' (all
 * when k is 0). */
static const char *short_name(const char *s, int64_t k)
{
    if (k <= 0) return s;
    const char *p = s + strlen(s);
    while (p > s) { /* parts: HDF5 groups, or the dotted module names of PyTorch (mpicka.export) */
        if ((p[-1] == '/' || p[-1] == '.') && --k == 0) return p;
        p--;
    }
    return s;
}

char *mk__plot_default_title(const mk_plot_data *d, mk_err *err)
{
    size_t len = strlen(d->row_title) + strlen(d->col_title) + 24;
    char *t = mk_malloc(len, "the title", err);
    if (!t) return NULL;
    if (d->ngroups > 0 && strlen(d->row_title) > SHORT_TITLE)
        snprintf(t, len, "%d models", d->ngroups);
    else if (d->self)
        snprintf(t, len, "%s", d->row_title);
    else
        snprintf(t, len, "%s vs %s", d->row_title, d->col_title);
    return t;
}

/* ---- building the layout -------------------------------------------------- */

struct builder {
    cairo_t *cr;
    const mk_plot_data *d;
    const mk_plot_opts *o;
    mk_plot_layout *l;
    int cap;
    double W, H; /* heatmap size */
    mk_err err;
};

static void set_quad(mk_plot_text *t)
{
    double c = cos(t->angle), s = sin(t->angle);
    double dx[4] = {0, t->w * c, t->w * c - t->h * s, -t->h * s};
    double dy[4] = {0, t->w * s, t->w * s + t->h * c, t->h * c};
    for (int k = 0; k < 4; k++) {
        t->quad[2 * k] = t->x + dx[k];
        t->quad[2 * k + 1] = t->y + dy[k];
    }
}

/* Appends a measured text (not yet placed); NULL after a failure. */
static mk_plot_text *add_text(struct builder *b, const char *text, double size, int bold, double degrees)
{
    mk_plot_layout *l = b->l;
    if (b->err) return NULL;
    if (l->ntexts == b->cap) {
        b->err = mk_fail(MK_EINTERNAL, "plot: more texts than planned");
        return NULL;
    }
    mk_plot_text *t = &l->texts[l->ntexts];
    memset(t, 0, sizeof *t);
    t->text = mk_malloc(strlen(text) + 1, "a plot label", &b->err);
    if (!t->text) return NULL;
    strcpy(t->text, text);
    t->size = size;
    t->bold = bold;
    t->angle = -degrees * PLOT_PI / 180.0;
    measure(b->cr, text, size, bold, &t->w, &t->h);
    l->ntexts++;
    return t;
}

static void place(mk_plot_text *t, double x, double y)
{
    t->x = x;
    t->y = y;
    set_quad(t);
}

static void text_box(const mk_plot_text *t, double box[4])
{
    box[0] = box[2] = t->quad[0];
    box[1] = box[3] = t->quad[1];
    for (int k = 1; k < 4; k++) {
        box[0] = fmin(box[0], t->quad[2 * k]);
        box[2] = fmax(box[2], t->quad[2 * k]);
        box[1] = fmin(box[1], t->quad[2 * k + 1]);
        box[3] = fmax(box[3], t->quad[2 * k + 1]);
    }
}

static double row_top(const mk_plot_layout *l, int i)
{
    return (l->invert_y ? l->rows - 1 - i : i) * l->cell;
}

void mk_plot_cell_origin(const mk_plot_layout *l, int i, int j, double *x, double *y)
{
    *x = l->x0 + j * l->cell;
    *y = l->y0 + row_top(l, i);
}

/* ---- cell size and fonts -------------------------------------------------- */

/* The largest cell-value font (up to VALUE_SIZE_MAX) whose widest value
 * ("-0.00" at 2 decimals) fills at most 80% of a cell's width and height;
 * with errors, "±0.000" at ERROR_SCALE of it goes below, in the same 80%. */
static double value_size_for(cairo_t *cr, double cell, int decimals, int errors)
{
    char sample[32];
    double w, h, ew = 0.0, eh = 0.0;
    snprintf(sample, sizeof sample, "%.*f", decimals, -0.0);
    measure(cr, sample, 10.0, 0, &w, &h);
    if (errors) measure(cr, "±0.000", 10.0 * ERROR_SCALE, 0, &ew, &eh);
    return fmin(VALUE_SIZE_MAX, fmin(10.0 * 0.8 * cell / fmax(w, ew), 10.0 * 0.8 * cell / (h + eh)));
}

/* Cells of CELL_MIN to CELL_MAX aiming at HEATMAP_TARGET; values when asked
 * for (cells grow to hold them) or, by default, when they are legible. By
 * default, standard errors that do not fit leave the values alone. */
static void choose_sizes(struct builder *b)
{
    mk_plot_layout *l = b->l;
    int n = l->rows > l->cols ? l->rows : l->cols, dec = b->d->value_decimals > 0 ? b->d->value_decimals : 2;
    int errors = b->o->errors && b->d->errors;
    double cell = fmin(fmax(HEATMAP_TARGET / n, CELL_MIN), CELL_MAX);
    if (cell * n > HEATMAP_MAX) cell = fmax(HEATMAP_MAX / n, CELL_FLOOR);
    double vs = value_size_for(b->cr, floor(cell), dec, errors);
    if (b->o->annotate == MK_ANNOTATE_ALWAYS && vs < VALUE_SIZE_MIN) {
        cell = fmax(CELL_FLOOR, fmin(cell * VALUE_SIZE_MIN / vs + 1.0, HEATMAP_MAX_ANNOTATED / n));
        vs = value_size_for(b->cr, floor(cell), dec, errors);
    } else if (b->o->annotate == MK_ANNOTATE_AUTO && errors && vs < VALUE_SIZE_MIN) {
        errors = 0;
        vs = value_size_for(b->cr, floor(cell), dec, 0);
    }
    l->cell = floor(cell);
    l->value_decimals = dec;
    l->value_size = b->o->annotate == MK_ANNOTATE_ALWAYS || (b->o->annotate == MK_ANNOTATE_AUTO && vs >= VALUE_SIZE_MIN)
                        ? vs
                        : 0.0;
    l->error_size = errors ? l->value_size * ERROR_SCALE : 0.0;
    l->label_size = fmin(fmax(l->cell / 1.25, LABEL_SIZE_MIN), LABEL_SIZE_MAX);
    b->W = l->cols * l->cell;
    b->H = l->rows * l->cell;
}

static int overlaps(double a0, double a1, double b0, double b1) { return a0 < b1 && b0 < a1; }

static int step_for(double need, double cell)
{
    int step = (int)ceil(need / cell - 1e-9);
    return step < 1 ? 1 : step;
}

/* ---- layer labels ---------------------------------------------------------- */

static void add_row_labels(struct builder *b)
{
    mk_plot_layout *l = b->l;
    double w, h;
    measure(b->cr, "Mg", l->label_size, 0, &w, &h);
    l->row_step = step_for(h, l->cell);
    for (int i = 0; l->layer_labels && i < l->rows; i += l->row_step) {
        mk_plot_text *t =
            add_text(b, short_name(b->d->row_labels[i], b->o->short_names), l->label_size, 0, 0);
        if (!t) return;
        place(t, -(TICK_LEN + GAP) - t->w, row_top(l, i) + (l->cell - t->h) / 2);
    }
}

/* The left end of the row labels placed so far (the heatmap's edge when none). */
static double free_left_of_rows(const struct builder *b)
{
    double x = -TICK_LEN, box[4];
    for (int k = 0; k < b->l->ntexts; k++) {
        text_box(&b->l->texts[k], box);
        if (box[2] <= 0.0) x = fmin(x, box[0]);
    }
    return x;
}

/* The lower end of the column labels placed so far. */
static double free_below_cols(const struct builder *b)
{
    double y = b->H + TICK_LEN, box[4];
    for (int k = 0; k < b->l->ntexts; k++) {
        text_box(&b->l->texts[k], box);
        if (box[1] >= b->H) y = fmax(y, box[3]);
    }
    return y;
}

static void choose_col_angle(struct builder *b)
{
    mk_plot_layout *l = b->l;
    double maxw = 0.0, w, h = 0.0;
    for (int j = 0; j < l->cols; j++) {
        measure(b->cr, short_name(b->d->col_labels[j], b->o->short_names), l->label_size, 0, &w, &h);
        maxw = fmax(maxw, w);
    }
    l->col_step = 1;
    if (maxw <= l->cell - 2.0) {
        l->col_angle = 0.0;
    } else if (l->cell * sin(PLOT_PI / 4) >= h && !b->d->ngroups) { /* slanted ones would cross group lines */
        l->col_angle = 45.0;
    } else {
        l->col_angle = 90.0;
        l->col_step = step_for(h, l->cell);
    }
}

/* Column labels hang below the heatmap: level ones centred on their column;
 * turned ones end at the tick, its line through the middle of the text. */
static void add_col_labels(struct builder *b)
{
    mk_plot_layout *l = b->l;
    choose_col_angle(b);
    double top = b->H + TICK_LEN + GAP;
    for (int j = 0; l->layer_labels && j < l->cols; j += l->col_step) {
        mk_plot_text *t =
            add_text(b, short_name(b->d->col_labels[j], b->o->short_names), l->label_size, 0, l->col_angle);
        if (!t) return;
        double cx = (j + 0.5) * l->cell, c = cos(t->angle), s = sin(t->angle);
        if (l->col_angle == 0.0)
            place(t, cx - t->w / 2, top);
        else
            place(t, cx - t->w * c + t->h / 2 * s, top - t->w * s - t->h / 2 * c);
    }
}

/* ---- groups (the models of a models result) -------------------------------- */

/* With groups, layer labels are all there or none: every k-th layer of a
 * model grid would mislead. */
static void choose_layer_labels(struct builder *b)
{
    mk_plot_layout *l = b->l;
    double w, h;
    l->layer_labels = 1;
    if (!b->d->ngroups) return;
    measure(b->cr, "Mg", l->label_size, 0, &w, &h);
    choose_col_angle(b);
    l->layer_labels = step_for(h, l->cell) == 1 && l->col_step == 1;
}

/* Where group k's boundary lies along the heatmap's side (rows or columns). */
static double group_edge(const mk_plot_layout *l, const mk_plot_data *d, int k, int rows)
{
    int at = d->group_offsets[k];
    return (rows && l->invert_y ? l->rows - at : at) * l->cell;
}

/* Left of the row labels: level names, each centred on its rows; one that
 * would touch the one before is left out (a group thinner than the text). */
static void add_row_groups(struct builder *b)
{
    mk_plot_layout *l = b->l;
    double right = free_left_of_rows(b) - 2 * GAP, last0 = -INFINITY, last1 = -INFINITY;
    l->group_left = right + GAP;
    for (int k = 0; k < b->d->ngroups; k++) {
        double a = group_edge(l, b->d, k, 1), z = group_edge(l, b->d, k + 1, 1), mid = (a + z) / 2, w, h;
        measure(b->cr, b->d->group_labels[k], GROUP_SIZE, 1, &w, &h);
        if (overlaps(mid - h / 2 - 1, mid + h / 2 + 1, last0, last1)) continue;
        mk_plot_text *t = add_text(b, b->d->group_labels[k], GROUP_SIZE, 1, 0);
        if (!t) return;
        place(t, right - t->w, mid - t->h / 2);
        last0 = t->y;
        last1 = t->y + t->h;
    }
}

/* Below the column labels: level and centred when every name fits its
 * columns, else turned 90 degrees; thinned like the row ones. */
static void add_col_groups(struct builder *b)
{
    mk_plot_layout *l = b->l;
    double top = free_below_cols(b) + 2 * GAP, last0 = -INFINITY, last1 = -INFINITY, w, h;
    int level = 1;
    l->group_bottom = top - GAP;
    for (int k = 0; k < b->d->ngroups; k++) {
        measure(b->cr, b->d->group_labels[k], GROUP_SIZE, 1, &w, &h);
        level = level && w <= group_edge(l, b->d, k + 1, 0) - group_edge(l, b->d, k, 0) - 2 * GAP;
    }
    for (int k = 0; k < b->d->ngroups; k++) {
        double mid = (group_edge(l, b->d, k, 0) + group_edge(l, b->d, k + 1, 0)) / 2;
        measure(b->cr, b->d->group_labels[k], GROUP_SIZE, 1, &w, &h);
        double half = (level ? w : h) / 2 + 1;
        if (overlaps(mid - half, mid + half, last0, last1)) continue;
        mk_plot_text *t = add_text(b, b->d->group_labels[k], GROUP_SIZE, 1, level ? 0 : 90);
        if (!t) return;
        if (level)
            place(t, mid - t->w / 2, top);
        else
            place(t, mid - t->h / 2, top + t->w);
        last0 = mid - half + 1;
        last1 = mid + half - 1;
    }
}

/* ---- colour bar ------------------------------------------------------------ */

static double nice_step(double raw)
{
    double p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 2.5 ? 2.5 : m <= 5.0 ? 5.0 : 10.0) * p;
}

/* At most BAR_MAX_TICKS ticks at multiples of a 1-2-2.5-5 step, at least
 * two text heights apart. */
static void choose_ticks(struct builder *b, double text_h)
{
    mk_plot_layout *l = b->l;
    double lo = b->o->vmin, hi = b->o->vmax;
    int most = (int)fmin(floor(l->bar_h / (2.0 * text_h)) + 1, BAR_MAX_TICKS);
    double step = nice_step((hi - lo) / (most > 2 ? most - 1 : 1));
    double first = ceil(lo / step - 1e-9) * step;
    l->nticks = 0;
    for (int k = 0; first + k * step <= hi + 1e-9 * step && l->nticks < 64; k++) {
        double v = first + k * step;
        l->ticks[l->nticks++] = fabs(v) < 1e-9 * step ? 0.0 : v;
    }
    l->tick_decimals = (int)fmax(0.0, ceil(-log10(step) - 1e-9));
    double mant = step / pow(10.0, floor(log10(step)));
    if (fabs(mant - 2.5) < 1e-9) l->tick_decimals++;
}

static void add_colour_bar(struct builder *b)
{
    mk_plot_layout *l = b->l;
    double w, h, right = 0.0;
    l->bar_x = b->W + BAR_GAP;
    l->bar_y = 0.0;
    l->bar_w = BAR_W;
    l->bar_h = fmax(b->H, BAR_MIN_H);
    measure(b->cr, "0", TICK_SIZE, 0, &w, &h);
    choose_ticks(b, h);
    for (int k = 0; k < l->nticks; k++) {
        char text[64];
        snprintf(text, sizeof text, "%.*f", l->tick_decimals, l->ticks[k]);
        mk_plot_text *t = add_text(b, text, TICK_SIZE, 0, 0);
        if (!t) return;
        double y = l->bar_h * (b->o->vmax - l->ticks[k]) / (b->o->vmax - b->o->vmin);
        place(t, l->bar_x + l->bar_w + TICK_LEN + GAP / 2, y - t->h / 2);
        right = fmax(right, t->x + t->w);
    }
    mk_plot_text *t = add_text(b, b->d->value_title ? b->d->value_title : "CKA", AXIS_SIZE, 0, 90);
    if (t) place(t, right + 2 * GAP, l->bar_h / 2 + t->w / 2);
}

/* ---- titles: each goes where nothing is in its way -------------------------
 * A title's band is widened to the heatmap's side it faces, so that it stands
 * beyond all the labels of that side, not in a gap between two of them. */

/* The leftmost x of what lies in the band y in [y0, y1] and beside the heatmap. */
static double free_left(const struct builder *b, double y0, double y1)
{
    double x = -TICK_LEN, box[4];
    y0 = fmin(y0, 0.0);
    y1 = fmax(y1, b->H);
    for (int k = 0; k < b->l->ntexts; k++) {
        text_box(&b->l->texts[k], box);
        if (overlaps(y0, y1, box[1], box[3])) x = fmin(x, box[0]);
    }
    return x;
}

/* The lowest y of what lies in the band x in [x0, x1] and below the heatmap. */
static double free_below(const struct builder *b, double x0, double x1)
{
    const mk_plot_layout *l = b->l;
    double y = b->H + TICK_LEN, box[4];
    x0 = fmin(x0, 0.0);
    x1 = fmax(x1, b->W);
    if (overlaps(x0, x1, l->bar_x, l->bar_x + l->bar_w)) y = fmax(y, l->bar_y + l->bar_h);
    for (int k = 0; k < l->ntexts; k++) {
        text_box(&l->texts[k], box);
        if (overlaps(x0, x1, box[0], box[2])) y = fmax(y, box[3]);
    }
    return y;
}

/* The highest y of what lies in the band x in [x0, x1] and above the heatmap. */
static double free_above(const struct builder *b, double x0, double x1)
{
    double y = 0.0, box[4];
    x0 = fmin(x0, 0.0);
    x1 = fmax(x1, b->W);
    for (int k = 0; k < b->l->ntexts; k++) {
        text_box(&b->l->texts[k], box);
        if (overlaps(x0, x1, box[0], box[2])) y = fmin(y, box[1]);
    }
    return y;
}

/* The width of the first n bytes of s at the subtitle's font. */
static double subtitle_width(struct builder *b, const char *s, size_t n)
{
    char *part = mk_malloc(n + 1, "the subtitle", &b->err);
    double w = 0.0, h;
    if (!part) return 0.0;
    memcpy(part, s, n);
    part[n] = '\0';
    measure(b->cr, part, SUBTITLE_SIZE, 0, &w, &h);
    free(part);
    return w;
}

/* Breaks s in place after "; " (the space becomes '\n') so that no line is
 * wider than width, unless one part alone is. */
static void wrap_subtitle(struct builder *b, char *s, double width)
{
    char *line = s, *cut = NULL; /* cut: the last "; " in the line */
    for (char *p = strstr(s, "; ");; p = strstr(p + 2, "; ")) {
        size_t end = p ? (size_t)(p + 1 - line) : strlen(line);
        if (cut && subtitle_width(b, line, end) > width) {
            cut[1] = '\n';
            line = cut + 2;
        }
        if (!p) return;
        cut = p;
    }
}

/* Lines that fit, bottom line first, each just above what is placed. */
static void add_subtitle(struct builder *b, const char *subtitle)
{
    char *s = mk_malloc(strlen(subtitle) + 1, "the subtitle", &b->err);
    if (!s) return;
    strcpy(s, subtitle);
    wrap_subtitle(b, s, fmax(b->W, SUBTITLE_WRAP));
    double gap = 3 * GAP;
    for (char *end = s + strlen(s), *start; end > s && !b->err; end = start, gap = 1.0) {
        for (start = end; start > s && start[-1] != '\n'; start--) continue;
        *end = '\0';
        mk_plot_text *t = *start ? add_text(b, start, SUBTITLE_SIZE, 0, 0) : NULL;
        if (t) {
            double x = b->W / 2 - t->w / 2;
            place(t, x, free_above(b, x, x + t->w) - gap - t->h);
        }
        if (start > s) start--; /* onto the '\n' before this line */
    }
    free(s);
}

static void add_titles(struct builder *b)
{
    const mk_plot_data *d = b->d;
    mk_plot_text *t;
    if (!d->ngroups && d->row_title[0] && (t = add_text(b, d->row_title, AXIS_SIZE, 1, 90)) != NULL) {
        double y1 = b->H / 2 + t->w / 2;
        place(t, free_left(b, y1 - t->w, y1) - 2 * GAP - t->h, y1);
    }
    if (!d->ngroups && d->col_title[0] && (t = add_text(b, d->col_title, AXIS_SIZE, 1, 0)) != NULL) {
        double x = b->W / 2 - t->w / 2;
        place(t, x, free_below(b, x, x + t->w) + 2 * GAP);
    }
    int sub = d->subtitle && d->subtitle[0];
    if (sub) add_subtitle(b, d->subtitle);
    char *deflt = b->o->title ? NULL : mk__plot_default_title(d, &b->err);
    const char *title = b->o->title ? b->o->title : deflt;
    if (title && title[0] && (t = add_text(b, title, TITLE_SIZE, 1, 0)) != NULL) {
        double x = b->W / 2 - t->w / 2;
        place(t, x, free_above(b, x, x + t->w) - (sub ? 1.5 : 3.0) * GAP - t->h);
    }
    free(deflt);
}

/* ---- bounds, shift, public entry points ------------------------------------ */

static void grow_box(double box[4], double x0, double y0, double x1, double y1)
{
    box[0] = fmin(box[0], x0);
    box[1] = fmin(box[1], y0);
    box[2] = fmax(box[2], x1);
    box[3] = fmax(box[3], y1);
}

/* Sizes the figure around everything placed and moves it all into it. */
static mk_err fit_figure(struct builder *b)
{
    mk_plot_layout *l = b->l;
    double box[4] = {-TICK_LEN, 0.0, l->bar_x + l->bar_w, fmax(b->H + TICK_LEN, l->bar_h)}, t[4];
    for (int k = 0; k < l->ntexts; k++) {
        text_box(&l->texts[k], t);
        grow_box(box, t[0], t[1], t[2], t[3]);
    }
    double ox = ceil(MARGIN - box[0]), oy = ceil(MARGIN - box[1]);
    l->width = ceil(box[2] + ox + MARGIN);
    l->height = ceil(box[3] + oy + MARGIN);
    if (l->width > FIGURE_MAX || l->height > FIGURE_MAX)
        return mk_fail(MK_EUSAGE,
                       "plot: the figure would be %.0f x %.0f, more than %.0f a side "
                       "(try --short-names)",
                       l->width, l->height, FIGURE_MAX);
    l->x0 = ox;
    l->y0 = oy;
    l->bar_x += ox;
    l->bar_y += oy;
    for (int k = 0; k < l->ntexts; k++) place(&l->texts[k], l->texts[k].x + ox, l->texts[k].y + oy);
    return MK_OK;
}

/* cairo draws only UTF-8. */
static mk_err check_utf8(const mk_plot_data *d, const mk_plot_opts *o)
{
    for (int k = 0; k < d->rows + d->cols; k++) {
        const char *s = k < d->rows ? d->row_labels[k] : d->col_labels[k - d->rows];
        if (!utf8_ok(s)) return mk_fail(MK_EINPUT, "plot: layer name %d is not valid UTF-8", k + 1);
    }
    if (!utf8_ok(d->row_title) || !utf8_ok(d->col_title) || (o->title && !utf8_ok(o->title)) ||
        (d->subtitle && !utf8_ok(d->subtitle)) || (d->value_title && !utf8_ok(d->value_title)))
        return mk_fail(MK_EINPUT, "plot: a model name, the title or the subtitle is not valid UTF-8");
    return MK_OK;
}

static mk_err check_groups(const mk_plot_data *d)
{
    if (d->ngroups == 0) return MK_OK;
    if (d->ngroups < 0 || !d->group_labels || !d->group_offsets || d->rows != d->cols ||
        d->group_offsets[0] != 0 || d->group_offsets[d->ngroups] != d->rows)
        return mk_fail(MK_EINTERNAL, "plot: groups need a square matrix and offsets from 0 to its side");
    for (int k = 0; k < d->ngroups; k++) {
        if (d->group_offsets[k + 1] <= d->group_offsets[k])
            return mk_fail(MK_EINTERNAL, "plot: group offsets must increase");
        if (!utf8_ok(d->group_labels[k]))
            return mk_fail(MK_EINPUT, "plot: model name %d is not valid UTF-8", k + 1);
    }
    return MK_OK;
}

static mk_err check_input(const mk_plot_data *d, const mk_plot_opts *o)
{
    const unsigned char(*anchors)[3];
    if (d->rows < 1 || d->cols < 1)
        return mk_fail(MK_EINPUT, "plot: nothing to draw (%d by %d matrix)", d->rows, d->cols);
    if (!d->values || !d->row_labels || !d->col_labels || !d->row_title || !d->col_title)
        return mk_fail(MK_EINTERNAL, "plot: values, labels and axis titles are required");
    if (!mk__plot_cmap_anchors(o->cmap, &anchors))
        return mk_fail(MK_EUSAGE, "plot: no colour map %d (0 to %d)", o->cmap,
                       (int)(sizeof cmaps / sizeof cmaps[0]) - 1);
    if (!isfinite(o->vmin) || !isfinite(o->vmax) || o->vmin >= o->vmax)
        return mk_fail(MK_EUSAGE, "plot: the colour range needs vmin < vmax (got %g and %g)", o->vmin,
                       o->vmax);
    if (o->half && d->rows != d->cols)
        return mk_fail(MK_EUSAGE, "plot: half needs a square matrix (got %d by %d)", d->rows, d->cols);
    if (o->annotate < MK_ANNOTATE_AUTO || o->annotate > MK_ANNOTATE_NEVER || o->short_names < 0)
        return mk_fail(MK_EUSAGE, "plot: annotate must be auto, always or never and short_names >= 0");
    if (d->value_decimals < 0 || d->value_decimals > 6)
        return mk_fail(MK_EINTERNAL, "plot: value_decimals must be 0 (the default, 2) to 6");
    MK_TRY(check_groups(d));
    return check_utf8(d, o);
}

/* The most lines the subtitle can take: one per "; "-separated part. */
static int subtitle_parts(const mk_plot_data *d)
{
    int n = d->subtitle ? 1 : 0;
    for (const char *p = d->subtitle; p && (p = strstr(p, "; ")) != NULL; p += 2) n++;
    return n;
}

static void build(struct builder *b)
{
    choose_sizes(b);
    choose_layer_labels(b);
    add_row_labels(b);
    add_col_labels(b);
    if (b->d->ngroups) {
        add_row_groups(b);
        add_col_groups(b);
    }
    add_colour_bar(b);
    add_titles(b);
    if (!b->err) b->err = fit_figure(b);
}

mk_err mk_plot_layout_make(const mk_plot_data *d, const mk_plot_opts *o, mk_plot_layout *l)
{
    mk_err err = MK_OK;
    memset(l, 0, sizeof *l);
    MK_TRY(check_input(d, o));
    l->rows = d->rows;
    l->cols = d->cols;
    l->invert_y = o->invert_y;
    l->half = o->half;
    l->ngroups = d->ngroups;
    struct builder b = {NULL, d, o, l, d->rows + d->cols + 2 * d->ngroups + 72 + subtitle_parts(d), 0, 0, MK_OK};
    l->texts = mk_calloc((size_t)b.cap, sizeof *l->texts, "the plot's texts", &err);
    l->ticks = mk_calloc(64, sizeof *l->ticks, "the colour bar's ticks", &err);
    if (err) {
        mk_plot_layout_free(l);
        return err;
    }
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    b.cr = cairo_create(scratch);
    build(&b);
    if (!b.err && cairo_status(b.cr) != CAIRO_STATUS_SUCCESS)
        b.err = mk_fail(MK_EINTERNAL, "plot: cannot measure text: %s",
                        cairo_status_to_string(cairo_status(b.cr)));
    cairo_destroy(b.cr);
    cairo_surface_destroy(scratch);
    if (b.err) mk_plot_layout_free(l);
    return b.err;
}

void mk_plot_layout_free(mk_plot_layout *l)
{
    for (int k = 0; l->texts && k < l->ntexts; k++) free(l->texts[k].text);
    free(l->texts);
    free(l->ticks);
    l->texts = NULL;
    l->ticks = NULL;
    l->ntexts = l->nticks = 0;
}
