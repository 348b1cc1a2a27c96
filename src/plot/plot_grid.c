/* Small multiples: several heatmaps, each laid out as it would be alone, in
 * a grid of equal cells under one title (contract in mpicka/plot.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_impl.h"

#define GRID_TITLE_SIZE 18.0
#define GRID_GAP 8.0 /* around the panels and between them */

struct grid {
    const mk_plot_panel *panels;
    mk_plot_layout *layouts;
    int n, ncols, nrows;
    double cell_w, cell_h, top; /* a panel's cell, and where the first row starts */
    const char *title;
    double width, height;
};

/* The title's line height (0 without one), measured as the layouts measure. */
static double title_height(const char *title)
{
    if (!title || !title[0]) return 0.0;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *cr = cairo_create(s);
    cairo_font_extents_t fe;
    mk__plot_font(cr, GRID_TITLE_SIZE, 1);
    cairo_font_extents(cr, &fe);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    return ceil(fe.ascent + fe.descent) + GRID_GAP;
}

static void grid_free(struct grid *g)
{
    for (int k = 0; g->layouts && k < g->n; k++) mk_plot_layout_free(&g->layouts[k]);
    free(g->layouts);
    g->layouts = NULL;
}

/* Lays out every panel, then the grid around the largest. ncols 0: the
 * fewest columns whose grid is at least as wide as it is tall. */
static mk_err grid_make(const mk_plot_panel *panels, int n, int ncols, const char *title, struct grid *g)
{
    mk_err err = MK_OK;
    memset(g, 0, sizeof *g);
    if (n < 1) return mk_fail(MK_EUSAGE, "plot: a grid needs at least one panel");
    if (ncols < 0) return mk_fail(MK_EUSAGE, "plot: a grid of %d columns", ncols);
    g->panels = panels, g->n = n, g->title = title;
    g->layouts = mk_malloc((size_t)n * sizeof *g->layouts, "the panels' layouts", &err);
    if (!g->layouts) return err;
    memset(g->layouts, 0, (size_t)n * sizeof *g->layouts);
    for (int k = 0; k < n; k++) {
        if ((err = mk_plot_layout_make(&panels[k].data, &panels[k].opts, &g->layouts[k])) != MK_OK) {
            grid_free(g);
            return err;
        }
        g->cell_w = fmax(g->cell_w, g->layouts[k].width);
        g->cell_h = fmax(g->cell_h, g->layouts[k].height);
    }
    for (g->ncols = ncols ? ncols : 1; !ncols && g->ncols < n; g->ncols++)
        if (g->ncols * g->cell_w >= ((n + g->ncols - 1) / g->ncols) * g->cell_h) break;
    if (g->ncols > n) g->ncols = n;
    g->nrows = (n + g->ncols - 1) / g->ncols;
    g->top = GRID_GAP + title_height(title);
    g->width = ceil(g->ncols * g->cell_w + (g->ncols + 1) * GRID_GAP);
    g->height = ceil(g->top + g->nrows * g->cell_h + g->nrows * GRID_GAP);
    return MK_OK;
}

mk_err mk_plot_grid_size(const mk_plot_panel *panels, int n, int ncols, const char *title, double *width,
                         double *height)
{
    struct grid g;
    MK_TRY(grid_make(panels, n, ncols, title, &g));
    *width = g.width;
    *height = g.height;
    grid_free(&g);
    return MK_OK;
}

/* Each panel centred in its cell; the title centred above them. */
static void paint_grid(cairo_t *cr, const void *ctx)
{
    const struct grid *g = ctx;
    for (int k = 0; k < g->n; k++) {
        const mk_plot_layout *l = &g->layouts[k];
        double x = GRID_GAP + (k % g->ncols) * (g->cell_w + GRID_GAP) + floor((g->cell_w - l->width) / 2);
        double y = g->top + (k / g->ncols) * (g->cell_h + GRID_GAP) + floor((g->cell_h - l->height) / 2);
        cairo_save(cr);
        cairo_translate(cr, x, y);
        mk__plot_draw(cr, &g->panels[k].data, &g->panels[k].opts, l);
        cairo_restore(cr);
    }
    if (!g->title || !g->title[0]) return;
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    mk__plot_font(cr, GRID_TITLE_SIZE, 1);
    cairo_text_extents(cr, g->title, &te);
    cairo_font_extents(cr, &fe);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_move_to(cr, floor((g->width - te.x_advance) / 2), GRID_GAP + fe.ascent);
    cairo_show_text(cr, g->title);
}

/* The <desc>: one line per panel, its title and what its colour bar shows. */
static void grid_desc(FILE *f, const void *ctx)
{
    const struct grid *g = ctx;
    fprintf(f, "mpicka small multiples: %d panels\n", g->n);
    for (int k = 0; k < g->n; k++) {
        const mk_plot_panel *p = &g->panels[k];
        fputs("panel: ", f);
        mk__plot_xml(f, p->opts.title ? p->opts.title : "");
        fputs(" | ", f);
        mk__plot_xml(f, p->data.value_title ? p->data.value_title : "CKA");
        fputc('\n', f);
    }
}

/* "panels: T1; T2; ...": the PDF's Subject (malloc'd). */
static char *panel_titles(const struct grid *g, mk_err *err)
{
    size_t len = 16;
    for (int k = 0; k < g->n; k++) len += strlen(g->panels[k].opts.title ? g->panels[k].opts.title : "") + 2;
    char *s = mk_malloc(len, "the PDF subject", err);
    if (!s) return NULL;
    strcpy(s, "panels: ");
    for (int k = 0; k < g->n; k++) {
        if (k) strcat(s, "; ");
        strcat(s, g->panels[k].opts.title ? g->panels[k].opts.title : "");
    }
    return s;
}

mk_err mk_plot_render_grid(const mk_plot_panel *panels, int n, int ncols, const char *title, const char *out)
{
    struct grid g;
    mk_err err = MK_OK;
    MK_TRY(mk_plot_check_extension(out));
    MK_TRY(grid_make(panels, n, ncols, title, &g));
    char *subject = panel_titles(&g, &err);
    if (subject) {
        mk__plot_figure fig = {g.width, g.height, paint_grid, &g, title && title[0] ? title : "mpicka measures",
                               grid_desc, subject, subject};
        err = mk__plot_write(&fig, out);
    }
    free(subject);
    grid_free(&g);
    return err;
}
