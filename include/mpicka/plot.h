/* Heatmaps of a CKA matrix, drawn with cairo into PNG, SVG or PDF.
 *
 * The renderer is pure: no MPI, no HDF5; it draws whatever matrix and labels
 * it is given (mpicka/plotcmd.h draws a cka.h5 with it). Not collective:
 * called by one process.
 *
 * Coordinates are figure units with the origin at the top left: pixels for
 * PNG, points for SVG and PDF (the same numbers). */
#ifndef MPICKA_PLOT_H
#define MPICKA_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "mpicka/error.h"

/* The colour maps by name, NULL-terminated: magma, viridis, inferno, gray.
 * mk_plot_opts.cmap indexes it; the config's plot.cmap takes these names. */
extern const char *const mk_plot_cmaps[];

/* The index of a colour map's name in mk_plot_cmaps, or -1. */
int mk_plot_cmap_index(const char *name);

/* "magma, viridis, inferno or gray" into buf, for messages. */
void mk_plot_cmap_list(char *buf, size_t size);

/* Cell values written in the cells: the config's plot.annotate (auto, true,
 * false) in the order of its choices. */
typedef enum { MK_ANNOTATE_AUTO = 0, MK_ANNOTATE_ALWAYS = 1, MK_ANNOTATE_NEVER = 2 } mk_annotate;

/* How a heatmap looks: what the config's `plot:` section and the options of
 * `mpicka plot` both set (one struct, so a key and its option cannot drift). */
typedef struct {
    const char *title; /* NULL: "X vs Y" from the models' names ("X" for a self comparison); "": none */
    int cmap;          /* index into mk_plot_cmaps; default 0, magma */
    /* The colour range; values outside it get its end colours (default 0, 1).
     * mk_plot_result also takes NaN for either end: the default of the matrix
     * drawn (0 and 1; for MK_MATRIX_STDERR, 0 and its largest finite value). */
    double vmin, vmax;
    int annotate;    /* mk_annotate: cell values when the cells are large enough (default), always, never */
    int half;        /* lower triangle only (j <= i): square matrices, for a self comparison */
    int invert_y;    /* row 0 at the bottom */
    int64_t short_names; /* 0: full layer paths; K > 0: their last K components ('/' or '.' separate them) */
    int errors;      /* 1: each cell value drawn gets its standard error below it (when the data has them) */
    /* 1: the colour map runs the other way, vmin at its top colour: for a
     * distance, so that "similar" has the same colour as for a similarity. */
    int reverse;
} mk_plot_opts;

/* The defaults: no title given (NULL), magma, 0 to 1, annotate auto, the
 * rest off. */
void mk_plot_opts_default(mk_plot_opts *opts);

/* What to draw; nothing is copied or freed by the renderer. All strings must
 * be UTF-8 (MK_EINPUT otherwise); mk_plot_result turns bytes of a cka.h5 that
 * are not into '?'. */
typedef struct {
    int rows, cols;
    const double *values;          /* rows by cols, row-major; NaN cells are grey, without a value */
    const char *const *row_labels; /* rows names (the x layers), UTF-8 */
    const char *const *col_labels; /* cols names (the y layers) */
    const char *row_title;         /* axis titles: the models' names */
    const char *col_title;
    int self; /* a model against itself: default title is row_title alone */
    /* optional (zero: none, or the defaults) */
    const double *errors;    /* rows by cols standard errors of values, drawn with opts->errors; NaN: none */
    const char *subtitle;    /* a smaller line under the title (how the matrix was made); NULL or "": none */
    const char *value_title; /* the colour bar's title; NULL: "CKA" */
    int value_decimals;      /* decimals of cell values; 0: 2 */
    /* Groups (the models of a models result) of a square matrix, the same
     * along rows and columns: group k is rows and columns
     * [group_offsets[k], group_offsets[k+1]), named group_labels[k] beside
     * and below the heatmap, with lines between groups. Layer labels are
     * then drawn only when every one of them fits; the axis titles are not
     * drawn (the group names say it), and the default title is row_title
     * when short, else "N models". */
    int ngroups;
    const char *const *group_labels;
    const int *group_offsets; /* ngroups + 1, from 0 to rows, strictly increasing */
} mk_plot_data;

/* One piece of text (labels and titles; not the cell values). Its box, w by
 * h, has its top-left corner at (x, y) and is turned by angle radians about
 * that corner (negative: counter-clockwise on the page); quad holds the
 * box's four corners (x0,y0, x1,y1, x2,y2, x3,y3) in figure units. */
typedef struct {
    char *text;
    double x, y, w, h, angle, size;
    int bold;
    double quad[8];
} mk_plot_text;

/* Where everything goes. Cell (i, j) has its top-left corner at
 * mk_plot_cell_origin() and side `cell`. */
typedef struct {
    int rows, cols, invert_y, half;
    double width, height;              /* figure size, whole units */
    double x0, y0, cell;               /* heatmap's top-left corner and cell side */
    double bar_x, bar_y, bar_w, bar_h; /* colour bar; vmax at the top */
    double label_size;                 /* font size of the layer labels */
    double value_size;                 /* font size of cell values; 0: values not drawn */
    double error_size;                 /* font size of the standard errors under them; 0: not drawn */
    int value_decimals;                /* decimals of cell values */
    int row_step, col_step;            /* every k-th layer label is drawn (1: all) */
    double col_angle;                  /* column labels' turn in degrees: 0, 45 or 90 */
    int layer_labels;                  /* 0: no layer labels (groups whose labels would thin out) */
    int ngroups;                       /* groups drawn (mk_plot_data.ngroups) */
    double group_left, group_bottom;   /* where the lines at group boundaries end, from (x0, y0) */
    mk_plot_text *texts;               /* labels, ticks and titles */
    int ntexts;
    double *ticks; /* colour bar tick values */
    int nticks;
    int tick_decimals;
} mk_plot_layout;

/* Lay out the figure for data and opts (sizes measured with cairo). The
 * caller frees it with mk_plot_layout_free. */
mk_err mk_plot_layout_make(const mk_plot_data *data, const mk_plot_opts *opts, mk_plot_layout *layout);
void mk_plot_layout_free(mk_plot_layout *layout);
void mk_plot_cell_origin(const mk_plot_layout *layout, int i, int j, double *x, double *y);

/* The colour of value t in [0, 1] (clamped) for cmap, as r, g, b in [0, 1];
 * returns MK_EUSAGE naming cmap when it is unknown. */
mk_err mk_plot_cmap(const char *cmap, double t, double rgb[3]);
/* The colour of value v under opts (its cmap, vmin..vmax, reverse), as
 * cells are drawn: (v - vmin) / (vmax - vmin) clamped to [0, 1], then 1
 * minus that when opts->reverse; NaN gives the NaN grey. */
void mk_plot_value_colour(const mk_plot_opts *opts, double v, double rgb[3]);
/* The grey of NaN cells, r = g = b. */
double mk_plot_nan_grey(void);

/* Draw the heatmap into out_path; the format follows its extension (.png,
 * .svg or .pdf, any case; another one is MK_EUSAGE). Written under a
 * temporary name in the same folder and renamed, so out_path is either the
 * old file or the complete new one. SVG and PDF carry the title and every
 * layer name as metadata (SVG <title> and <desc>; PDF Title, Subject and
 * Keywords), since cairo draws the labels as glyph outlines. */
mk_err mk_plot_render(const mk_plot_data *data, const mk_plot_opts *opts, const char *out_path);

/* One panel of a grid of heatmaps: its data and its own options (title,
 * colour map, range, direction). */
typedef struct {
    mk_plot_data data;
    mk_plot_opts opts;
} mk_plot_panel;

/* The figure size of mk_plot_render_grid's grid (whole units): ncols
 * columns (0: the smallest that makes the grid at least as wide as tall), the
 * cells the size of the largest panel, the title's line above them. */
mk_err mk_plot_grid_size(const mk_plot_panel *panels, int n, int ncols, const char *title, double *width,
                         double *height);

/* Draws n >= 1 panels as small multiples, each laid out as
 * mk_plot_render would lay it out alone, row by row in a grid of ncols
 * columns (0: as mk_plot_grid_size), under title (NULL or "": none), into
 * out_path (.png, .svg or .pdf, written like mk_plot_render's). SVG and PDF
 * carry title and each panel's title as metadata (SVG <desc>, PDF Subject). */
mk_err mk_plot_render_grid(const mk_plot_panel *panels, int n, int ncols, const char *title, const char *out_path);

/* Replaces each byte of s that is not part of valid UTF-8 with '?' (what
 * cairo can draw); returns how many were replaced. */
int mk_plot_utf8_fix(char *s);

/* Checks that path ends in .png, .svg or .pdf (any case): MK_EUSAGE naming
 * it otherwise. */
mk_err mk_plot_check_extension(const char *path);

#endif
