/* Internals shared by plot.c (colour maps, layout) and plot_render.c
 * (drawing, files). Not installed; names carry the internal prefix mk__. */
#ifndef MPICKA_PLOT_IMPL_H
#define MPICKA_PLOT_IMPL_H

#include <cairo.h>

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

#endif
