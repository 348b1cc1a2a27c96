/* Drawing a laid-out heatmap and writing it as PNG, SVG or PDF (contract in
 * mpicka/plot.h). The file is written under a temporary name in the target
 * folder, then renamed. */
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "plot_impl.h"

#ifndef MPICKA_VERSION
#define MPICKA_VERSION "unknown"
#endif

#define INK 0.1    /* grey level of text and tick marks */
#define FRAME 0.35 /* grey level of the colour bar's frame */

enum format { FMT_PNG, FMT_SVG, FMT_PDF };

static mk_err format_of(const char *path, enum format *fmt)
{
    static const char *const exts[] = {".png", ".svg", ".pdf"};
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return mk_fail(MK_EUSAGE, "plot: output '%s' has no extension (use .png, .svg or .pdf)", path);
    for (int k = 0; k < 3; k++)
        if (strcasecmp(dot, exts[k]) == 0) {
            *fmt = (enum format)k;
            return MK_OK;
        }
    return mk_fail(MK_EUSAGE, "plot: output '%s': unknown extension '%s' (use .png, .svg or .pdf)", path,
                   dot);
}

mk_err mk_plot_check_extension(const char *path)
{
    enum format fmt;
    return format_of(path, &fmt);
}

/* ---- drawing -------------------------------------------------------------- */

void mk_plot_value_colour(const mk_plot_opts *o, double v, double rgb[3])
{
    if (isnan(v)) {
        rgb[0] = rgb[1] = rgb[2] = mk_plot_nan_grey();
        return;
    }
    double t = fmin(1.0, fmax(0.0, (v - o->vmin) / (o->vmax - o->vmin)));
    mk__plot_colour(o->cmap, o->reverse ? 1.0 - t : t, rgb);
}

#define cell_colour mk_plot_value_colour

/* WCAG relative luminance: black text reads better above 0.179, white below. */
static int wants_black_text(const double rgb[3])
{
    double lin[3];
    for (int c = 0; c < 3; c++)
        lin[c] = rgb[c] <= 0.04045 ? rgb[c] / 12.92 : pow((rgb[c] + 0.055) / 1.055, 2.4);
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] > 0.179;
}

/* Past this many cells, one rectangle per cell makes SVG and PDF files of
 * gigabytes (3000 layers: 9 million paths): the cells become one image, a
 * pixel per cell, scaled up without smoothing. */
#define MK_VECTOR_CELLS 40000

static void draw_cell_image(cairo_t *cr, const mk_plot_data *d, const mk_plot_opts *o, const mk_plot_layout *l)
{
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, l->cols, l->rows);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) return;
    unsigned char *px = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    double rgb[3], x, y;
    cairo_surface_flush(img);
    for (int i = 0; i < l->rows; i++) {
        mk_plot_cell_origin(l, i, 0, &x, &y);
        uint32_t *row = (uint32_t *)(px + (size_t)stride * (size_t)lround((y - l->y0) / l->cell));
        for (int j = 0; j < l->cols; j++) {
            if (l->half && j > i) {
                row[j] = 0; /* transparent: the upper triangle is not drawn */
                continue;
            }
            cell_colour(o, d->values[(size_t)i * l->cols + j], rgb);
            row[j] = 0xff000000u | (uint32_t)lround(rgb[0] * 255) << 16 | (uint32_t)lround(rgb[1] * 255) << 8 |
                     (uint32_t)lround(rgb[2] * 255);
        }
    }
    cairo_surface_mark_dirty(img);
    cairo_save(cr);
    cairo_translate(cr, l->x0, l->y0);
    cairo_scale(cr, l->cell, l->cell);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, l->cols, l->rows);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);
}

static void draw_cells(cairo_t *cr, const mk_plot_data *d, const mk_plot_opts *o, const mk_plot_layout *l)
{
    double rgb[3], x, y;
    if ((double)l->rows * l->cols > MK_VECTOR_CELLS) {
        draw_cell_image(cr, d, o, l);
        return;
    }
    for (int i = 0; i < l->rows; i++)
        for (int j = 0; j < l->cols && !(l->half && j > i); j++) {
            cell_colour(o, d->values[(size_t)i * l->cols + j], rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            mk_plot_cell_origin(l, i, j, &x, &y);
            cairo_rectangle(cr, x, y, l->cell, l->cell);
            cairo_fill(cr);
        }
}

/* text centred in x on cx, its line box (ascent + descent) from top. */
static void show_centred(cairo_t *cr, const char *text, double cx, double top)
{
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, text, &te);
    cairo_font_extents(cr, &fe);
    cairo_move_to(cr, cx - (te.x_bearing + te.width / 2), top + fe.ascent);
    cairo_show_text(cr, text);
}

/* The value, and below it "±error" in the smaller font, centred together. */
static void draw_with_error(cairo_t *cr, const mk_plot_layout *l, const char *text, double se, double x,
                            double y)
{
    char err[32];
    cairo_font_extents_t fe;
    double h1, h2;
    snprintf(err, sizeof err, "±%.3f", se);
    mk__plot_font(cr, l->error_size, 0);
    cairo_font_extents(cr, &fe);
    h2 = fe.ascent + fe.descent;
    mk__plot_font(cr, l->value_size, 0);
    cairo_font_extents(cr, &fe);
    h1 = fe.ascent + fe.descent;
    double top = y + (l->cell - h1 - h2) / 2;
    show_centred(cr, text, x + l->cell / 2, top);
    mk__plot_font(cr, l->error_size, 0);
    show_centred(cr, err, x + l->cell / 2, top + h1);
}

static void draw_value(cairo_t *cr, const mk_plot_layout *l, const char *text, double x, double y)
{
    cairo_text_extents_t te;
    mk__plot_font(cr, l->value_size, 0);
    cairo_text_extents(cr, text, &te);
    cairo_move_to(cr, x + l->cell / 2 - (te.x_bearing + te.width / 2),
                  y + l->cell / 2 - (te.y_bearing + te.height / 2));
    cairo_show_text(cr, text);
}

static void draw_values(cairo_t *cr, const mk_plot_data *d, const mk_plot_opts *o, const mk_plot_layout *l)
{
    double rgb[3], x, y;
    char text[32];
    if (l->value_size <= 0.0) return;
    for (int i = 0; i < l->rows; i++)
        for (int j = 0; j < l->cols && !(l->half && j > i); j++) {
            size_t k = (size_t)i * l->cols + j;
            double v = d->values[k], se = l->error_size > 0.0 ? d->errors[k] : NAN;
            if (isnan(v)) continue;
            cell_colour(o, v, rgb);
            double ink = wants_black_text(rgb) ? 0.0 : 1.0;
            cairo_set_source_rgb(cr, ink, ink, ink);
            snprintf(text, sizeof text, "%.*f", l->value_decimals, v);
            if (text[0] == '-' && strspn(text + 1, "0.") == strlen(text + 1))
                memmove(text, text + 1, strlen(text)); /* -1e-17 is 0 to these decimals, not "-0.000" */
            mk_plot_cell_origin(l, i, j, &x, &y);
            if (isnan(se))
                draw_value(cr, l, text, x, y);
            else
                draw_with_error(cr, l, text, se, x, y);
        }
}

/* A one-unit line through the middle of a pixel row or column. */
static void tick(cairo_t *cr, double x0, double y0, double x1, double y1)
{
    if (x0 == x1) x0 = x1 = floor(x0) + 0.5;
    if (y0 == y1) y0 = y1 = floor(y0) + 0.5;
    cairo_move_to(cr, x0, y0);
    cairo_line_to(cr, x1, y1);
}

/* The position of group k's boundary along a side (rows: from the top). */
static double group_at(const mk_plot_layout *l, const mk_plot_data *d, int k, int rows)
{
    int at = d->group_offsets[k];
    return (rows && l->invert_y ? l->rows - at : at) * l->cell;
}

/* Between groups, a gap of the page's white across the heatmap; at every
 * boundary, a line out to the group names, so each name has its bracket. */
static void draw_groups(cairo_t *cr, const mk_plot_data *d, const mk_plot_layout *l)
{
    double W = l->cols * l->cell, H = l->rows * l->cell;
    if (!l->ngroups) return;
    for (int k = 1; k < l->ngroups; k++) {
        double y = l->y0 + group_at(l, d, k, 1), x = l->x0 + group_at(l, d, k, 0);
        cairo_move_to(cr, l->x0, y);
        cairo_line_to(cr, l->x0 + W, y);
        cairo_move_to(cr, x, l->y0);
        cairo_line_to(cr, x, l->y0 + H);
    }
    cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
    cairo_set_line_width(cr, l->cell >= 8.0 ? 2.0 : 1.0);
    cairo_stroke(cr);
    for (int k = 0; k <= l->ngroups; k++) {
        double y = l->y0 + group_at(l, d, k, 1), x = l->x0 + group_at(l, d, k, 0);
        cairo_move_to(cr, l->x0, y);
        cairo_line_to(cr, l->x0 + l->group_left, y);
        cairo_move_to(cr, x, l->y0 + H);
        cairo_line_to(cr, x, l->y0 + l->group_bottom);
    }
    cairo_set_source_rgb(cr, INK, INK, INK);
    cairo_set_line_width(cr, 1.0);
    cairo_stroke(cr);
}

static void draw_label_ticks(cairo_t *cr, const mk_plot_layout *l)
{
    double x, y, t = MK__PLOT_TICK_LEN;
    if (!l->layer_labels) return;
    for (int i = 0; i < l->rows; i += l->row_step) {
        mk_plot_cell_origin(l, i, 0, &x, &y);
        tick(cr, x - t, y + l->cell / 2, x, y + l->cell / 2);
    }
    double bottom = l->y0 + l->rows * l->cell;
    for (int j = 0; j < l->cols; j += l->col_step) {
        x = l->x0 + (j + 0.5) * l->cell;
        tick(cr, x, bottom, x, bottom + t);
    }
    cairo_set_source_rgb(cr, INK, INK, INK);
    cairo_set_line_width(cr, 1.0);
    cairo_stroke(cr);
}

/* The bar is a gradient through the map's own anchors, so it is the map. */
static void draw_bar(cairo_t *cr, const mk_plot_opts *o, const mk_plot_layout *l)
{
    const unsigned char(*a)[3];
    int count = mk__plot_cmap_anchors(o->cmap, &a);
    cairo_pattern_t *p = cairo_pattern_create_linear(0, l->bar_y + l->bar_h, 0, l->bar_y);
    for (int k = 0; k < count; k++) {
        int c = o->reverse ? count - 1 - k : k; /* reversed: vmax (the top) gets the map's bottom colour */
        cairo_pattern_add_color_stop_rgb(p, (double)k / (count - 1), a[c][0] / 255.0, a[c][1] / 255.0,
                                         a[c][2] / 255.0);
    }
    cairo_set_source(cr, p);
    cairo_rectangle(cr, l->bar_x, l->bar_y, l->bar_w, l->bar_h);
    cairo_fill(cr);
    cairo_pattern_destroy(p);
    cairo_set_source_rgb(cr, FRAME, FRAME, FRAME);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, l->bar_x + 0.5, l->bar_y + 0.5, l->bar_w - 1.0, l->bar_h - 1.0);
    cairo_stroke(cr);
    double right = l->bar_x + l->bar_w;
    for (int k = 0; k < l->nticks; k++) {
        double y = l->bar_y + l->bar_h * (o->vmax - l->ticks[k]) / (o->vmax - o->vmin);
        tick(cr, right, fmin(y, l->bar_y + l->bar_h - 1.0), right + MK__PLOT_TICK_LEN,
             fmin(y, l->bar_y + l->bar_h - 1.0));
    }
    cairo_set_source_rgb(cr, INK, INK, INK);
    cairo_stroke(cr);
}

static void draw_texts(cairo_t *cr, const mk_plot_layout *l)
{
    cairo_font_extents_t fe;
    cairo_set_source_rgb(cr, INK, INK, INK);
    for (int k = 0; k < l->ntexts; k++) {
        const mk_plot_text *t = &l->texts[k];
        cairo_save(cr);
        cairo_translate(cr, t->x, t->y);
        cairo_rotate(cr, t->angle);
        mk__plot_font(cr, t->size, t->bold);
        cairo_font_extents(cr, &fe);
        cairo_move_to(cr, 0.0, fe.ascent);
        cairo_show_text(cr, t->text);
        cairo_restore(cr);
    }
}

void mk__plot_draw(cairo_t *cr, const mk_plot_data *d, const mk_plot_opts *o, const mk_plot_layout *l)
{
    draw_cells(cr, d, o, l);
    draw_values(cr, d, o, l);
    draw_groups(cr, d, l);
    draw_label_ticks(cr, l);
    draw_bar(cr, o, l);
    draw_texts(cr, l);
}

static mk_err draw(cairo_surface_t *s, const mk__plot_figure *fig, const char *out)
{
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
    cairo_paint(cr);
    fig->paint(cr, fig->ctx);
    cairo_status_t status = cairo_status(cr);
    cairo_destroy(cr);
    if (status != CAIRO_STATUS_SUCCESS)
        return mk_fail(MK_EIO, "plot: cannot draw '%s': %s", out, cairo_status_to_string(status));
    return MK_OK;
}

/* ---- metadata: cairo draws labels as outlines, so names go here too -------- */

void mk__plot_xml(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            fputs("&amp;", f);
        else if (c == '<')
            fputs("&lt;", f);
        else if (c == '>')
            fputs("&gt;", f);
        else if (c >= 0x20 || c == '\n' || c == '\t')
            fputc(c, f);
    }
}

static void svg_names(FILE *f, const char *what, const char *model, const char *const *names, int n)
{
    fprintf(f, "%s (", what);
    mk__plot_xml(f, model);
    fputs("):\n", f);
    for (int k = 0; k < n; k++) {
        mk__plot_xml(f, names[k]);
        fputc('\n', f);
    }
}

/* The <desc> of one heatmap: what it shows, how it was made, the names. */
static void heatmap_desc(FILE *f, const void *ctx)
{
    const mk_plot_data *d = ctx;
    fputs("mpicka ", f);
    if (d->value_title) {
        fputs("heatmap: ", f);
        mk__plot_xml(f, d->value_title);
    } else {
        fputs("CKA heatmap", f);
    }
    fputc('\n', f);
    if (d->subtitle && d->subtitle[0]) {
        fputs("method: ", f);
        mk__plot_xml(f, d->subtitle);
        fputc('\n', f);
    }
    svg_names(f, "rows", d->row_title, d->row_labels, d->rows);
    svg_names(f, "columns", d->col_title, d->col_labels, d->cols);
}

struct membuf {
    char *data;
    size_t len, cap;
};

static cairo_status_t membuf_write(void *closure, const unsigned char *data, unsigned int length)
{
    struct membuf *b = closure;
    if (b->len + length + 1 > b->cap) {
        size_t cap = 2 * (b->len + length + 1);
        char *grown = realloc(b->data, cap);
        if (!grown) return CAIRO_STATUS_NO_MEMORY;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, length);
    b->len += length;
    b->data[b->len] = '\0';
    return CAIRO_STATUS_SUCCESS;
}

/* Writes the SVG text with the metadata right after the <svg ...> tag. */
static mk_err save_svg(const struct membuf *b, const mk__plot_figure *fig, const char *tmp, const char *out)
{
    const char *svg = b->data ? strstr(b->data, "<svg") : NULL;
    const char *end = svg ? strchr(svg, '>') : NULL;
    if (!end) return mk_fail(MK_EINTERNAL, "plot: cairo wrote no <svg> element for '%s'", out);
    FILE *f = fopen(tmp, "w");
    if (!f) return mk_fail(MK_EIO, "plot: cannot write '%s': %s", out, strerror(errno));
    size_t head = (size_t)(end + 1 - b->data);
    fwrite(b->data, 1, head, f);
    fputs("\n<title>", f);
    mk__plot_xml(f, fig->title);
    fputs("</title>\n<desc>", f);
    fig->svg_desc(f, fig->ctx);
    fputs("</desc>", f);
    fwrite(b->data + head, 1, b->len - head, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return mk_fail(MK_EIO, "plot: cannot write '%s': %s", out, strerror(errno));
    return MK_OK;
}

/* "a, b, c": the layer names for the PDF's Keywords (malloc'd). */
static char *joined_names(const mk_plot_data *d, mk_err *err)
{
    size_t len = 1;
    for (int k = 0; k < d->rows; k++) len += strlen(d->row_labels[k]) + 2;
    for (int k = 0; k < d->cols; k++) len += strlen(d->col_labels[k]) + 2;
    char *s = mk_malloc(len, "the PDF keywords", err);
    if (!s) return NULL;
    char *p = s;
    for (int k = 0; k < d->rows + d->cols; k++) {
        const char *name = k < d->rows ? d->row_labels[k] : d->col_labels[k - d->rows];
        size_t n = strlen(name);
        if (k) p = (char *)memcpy(p, ", ", 2) + 2;
        p = (char *)memcpy(p, name, n) + n;
    }
    *p = '\0';
    return s;
}

/* ---- the three formats ------------------------------------------------------ */

static mk_err write_png(const mk__plot_figure *fig, const char *tmp, const char *out)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)fig->width, (int)fig->height);
    mk_err err = MK_OK;
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
        err = mk_fail(MK_ENOMEM, "plot: no %.0f x %.0f image for '%s'", fig->width, fig->height, out);
    if (!err) err = draw(s, fig, out);
    if (!err && cairo_surface_write_to_png(s, tmp) != CAIRO_STATUS_SUCCESS)
        err = mk_fail(MK_EIO, "plot: cannot write '%s'", out);
    cairo_surface_destroy(s);
    return err;
}

static mk_err write_svg(const mk__plot_figure *fig, const char *tmp, const char *out)
{
    struct membuf b = {NULL, 0, 0};
    cairo_surface_t *s = cairo_svg_surface_create_for_stream(membuf_write, &b, fig->width, fig->height);
    mk_err err = draw(s, fig, out);
    cairo_surface_finish(s);
    if (!err && cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
        err = mk_fail(MK_EIO, "plot: cannot make the SVG of '%s': %s", out,
                      cairo_status_to_string(cairo_surface_status(s)));
    cairo_surface_destroy(s);
    if (!err) err = save_svg(&b, fig, tmp, out);
    free(b.data);
    return err;
}

static mk_err write_pdf(const mk__plot_figure *fig, const char *tmp, const char *out)
{
    cairo_surface_t *s = cairo_pdf_surface_create(tmp, fig->width, fig->height);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, fig->title);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_SUBJECT, fig->subject);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_KEYWORDS, fig->keywords);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "mpicka " MPICKA_VERSION);
    mk_err err = draw(s, fig, out);
    cairo_surface_finish(s);
    if (!err && cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
        err = mk_fail(MK_EIO, "plot: cannot write '%s': %s", out,
                      cairo_status_to_string(cairo_surface_status(s)));
    cairo_surface_destroy(s);
    return err;
}

/* "DIR/.BASE.tmp.PID" next to out (malloc'd), created empty so that an
 * unwritable folder is reported with its reason. */
static mk_err make_temp(const char *out, char **tmp)
{
    mk_err err = MK_OK;
    const char *slash = strrchr(out, '/');
    int dirlen = slash ? (int)(slash - out + 1) : 0;
    size_t len = strlen(out) + 48;
    *tmp = mk_malloc(len, "a file name", &err);
    if (!*tmp) return err;
    snprintf(*tmp, len, "%.*s.%s.tmp.%ld", dirlen, out, out + dirlen, (long)getpid());
    FILE *f = fopen(*tmp, "w");
    if (!f) {
        err = mk_fail(MK_EIO, "plot: cannot write '%s': %s", out, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return err;
    }
    fclose(f);
    return MK_OK;
}

mk_err mk__plot_write(const mk__plot_figure *fig, const char *out)
{
    enum format fmt;
    char *tmp = NULL;
    mk_err err;
    MK_TRY(format_of(out, &fmt));
    MK_GOTO(make_temp(out, &tmp), done);
    if (fmt == FMT_PNG)
        err = write_png(fig, tmp, out);
    else
        err = fmt == FMT_SVG ? write_svg(fig, tmp, out) : write_pdf(fig, tmp, out);
    if (!err && rename(tmp, out) != 0)
        err = mk_fail(MK_EIO, "plot: cannot move the figure to '%s': %s", out, strerror(errno));
done:
    if (err && tmp) unlink(tmp);
    free(tmp);
    return err;
}

/* ---- one heatmap ------------------------------------------------------------ */

struct single {
    const mk_plot_data *d;
    const mk_plot_opts *o;
    const mk_plot_layout *l;
};

static void paint_single(cairo_t *cr, const void *ctx)
{
    const struct single *s = ctx;
    mk__plot_draw(cr, s->d, s->o, s->l);
}

static void single_desc(FILE *f, const void *ctx) { heatmap_desc(f, ((const struct single *)ctx)->d); }

static mk_err write_single(const mk_plot_data *d, const mk_plot_opts *o, const mk_plot_layout *l, const char *out)
{
    mk_err err = MK_OK;
    char *deflt = mk__plot_default_title(d, &err);
    char *keywords = deflt ? joined_names(d, &err) : NULL, subject[2048];
    if (keywords) {
        int n = snprintf(subject, sizeof subject, "%s matrix; rows: %s, columns: %s",
                         d->value_title ? d->value_title : "CKA", d->row_title, d->col_title);
        if (d->subtitle && d->subtitle[0] && n > 0 && (size_t)n < sizeof subject)
            snprintf(subject + n, sizeof subject - (size_t)n, "; method: %s", d->subtitle);
        struct single ctx = {d, o, l};
        mk__plot_figure fig = {l->width, l->height, paint_single, &ctx,
                               o->title && o->title[0] ? o->title : deflt, single_desc, subject, keywords};
        err = mk__plot_write(&fig, out);
    }
    free(keywords);
    free(deflt);
    return err;
}

mk_err mk_plot_render(const mk_plot_data *d, const mk_plot_opts *o, const char *out)
{
    mk_plot_layout l;
    MK_TRY(mk_plot_check_extension(out));
    MK_TRY(mk_plot_layout_make(d, o, &l));
    mk_err err = write_single(d, o, &l, out);
    mk_plot_layout_free(&l);
    return err;
}
