/* Internals shared by plot.c (colour maps, layout) and plot_render.c
 * (drawing, files). Not installed; names carry the internal prefix mk__. */
#ifndef MPICKA_PLOT_IMPL_H
#define MPICKA_PLOT_IMPL_H

#include <cairo.h>
#include <stdio.h>

#include "mpicka/plot.h"

#define MK__PLOT_FONT "sans-serif"
#define MK__PLOT_TICK_LEN 4.0 /* tick marks at labels and on the colour bar */

/* Selects the plot font at size (bold or not) on cr, with the font options
 * that make text measure the same on every surface. */
void mk__plot_font(cairo_t *cr, double size, int bold);

/* The anchors of colour map cmap (an index into mk_plot_cmaps: r, g, b
 * bytes, evenly spaced over [0, 1]); their count, or 0 when there is none. */
int mk__plot_cmap_anchors(int cmap, const unsigned char (**anchors)[3]);

/* The colour of t in [0, 1] (clamped; NaN as 0) for a valid cmap index. */
void mk__plot_colour(int cmap, double t, double rgb[3]);

/* The title drawn by default (malloc'd) when opts->title is NULL. */
char *mk__plot_default_title(const mk_plot_data *data, mk_err *err);

/* One figure for mk__plot_write: its size, its drawing (on a white page)
 * and its metadata. */
typedef struct {
    double width, height;
    void (*paint)(cairo_t *cr, const void *ctx);
    const void *ctx;
    const char *title;                             /* SVG <title>, PDF Title */
    void (*svg_desc)(FILE *f, const void *ctx);    /* the SVG <desc>'s text, escaped by the writer */
    const char *subject, *keywords;                /* PDF Subject and Keywords */
} mk__plot_figure;

/* Writes fig into out (format from its extension) under a temporary name in
 * the same folder, renamed when complete. */
mk_err mk__plot_write(const mk__plot_figure *fig, const char *out);
/* Draws one laid-out heatmap on cr (no page background). */
void mk__plot_draw(cairo_t *cr, const mk_plot_data *d, const mk_plot_opts *o, const mk_plot_layout *l);
/* XML text of s (&, <, > escaped; control bytes dropped) to f. */
void mk__plot_xml(FILE *f, const char *s);

#endif
