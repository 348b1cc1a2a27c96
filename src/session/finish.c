#include "mpicka/finish.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpicka/job.h"
#include "mpicka/log.h"
#include "mpicka/measure_sums.h"
#include "mpicka/output.h"
#include "mpicka/plotcmd.h"

/* A layer whose summed HSIC with itself is not positive has no CKA (NaN):
 * said to be constant only when it was constant in every batch. A sum that
 * is not finite is an error, never a 0 in the matrix. h and varied hold
 * flat layers first .. first+count-1. */
static mk_err check_layers(const mk_lineup *lu, const double *h, const double *varied, int first, int count)
{
    for (int l = 0; l < count; l++) {
        int k;
        const char *path = mk_lineup_layer(lu, first + l, &k)->path, *file = lu->models[k].file;
        if (!isfinite(h[l]))
            return mk_fail(MK_EDATA, "%s: layer '%s' has a summed HSIC with itself of %g: its values are too large "
                           "for the sums", file, path, h[l]);
        if (h[l] > 0.0) continue;
        if (varied[l] == 0.0)
            mk_warn("%s: layer '%s' is constant in every batch (a dead layer): its CKA is NaN", file, path);
        else
            mk_warn("%s: layer '%s' has an HSIC with itself of %g though it varies in %.0f batch(es): its CKA is "
                    "undefined (NaN)", file, path, h[l], varied[l]);
    }
    return MK_OK;
}

/* "DIR/cka_measures.png" for plot.file "cka.png": the small multiples'
 * file beside the heatmap (malloc'd). */
static char *measures_figure(const char *dir, const char *file)
{
    const char *dot = strrchr(file, '.');
    int stem = dot && dot != file ? (int)(dot - file) : (int)strlen(file);
    size_t len = strlen(dir) + strlen(file) + 16;
    char *fig = malloc(len);
    if (fig) snprintf(fig, len, "%s/%.*s_measures%s", dir, stem, file, file + stem);
    return fig;
}

/* The heatmap is a view of cka.h5: if it cannot be drawn, the run still
 * succeeded, so it is a warning. A run with measures also gets their small
 * multiples beside it (cka.png: cka_measures.png). */
static void draw_plot(const mk_config *cfg)
{
    const mk_plot_cfg *pc = &cfg->plot;
    mk_plot_opts opts = pc->style;
    if (!opts.title[0]) opts.title = NULL; /* the config's "" asks for the default title */
    size_t len = strlen(cfg->output) + strlen(pc->file) + 16;
    char *h5 = malloc(len), *fig = malloc(len);
    if (h5 && fig) {
        snprintf(h5, len, "%s/cka.h5", cfg->output);
        snprintf(fig, len, "%s/%s", cfg->output, pc->file);
        if (mk_plot_result(h5, &opts, NULL, fig) == MK_OK)
            mk_info("  drew %s", fig);
        else
            mk_warn("no heatmap: %s", mk_errmsg());
    }
    int beyond = 0; /* measures besides cka */
    for (int m = 0; m < cfg->nmeasures; m++) beyond |= cfg->measures[m].kind != MK_MEASURE_CKA;
    char *many = h5 ? measures_figure(cfg->output, pc->file) : NULL;
    if (many && !beyond && unlink(many) == 0) /* as measures.csv: no figure of an earlier run's measures */
        mk_info("  removed %s of an earlier run (this one has no measures)", many);
    if (many && beyond) {
        opts.title = NULL; /* the run's title is the CKA heatmap's */
        if (mk_plot_measures(h5, &opts, "all", many) == MK_OK)
            mk_info("  drew %s", many);
        else
            mk_warn("no figure of the measures: %s", mk_errmsg());
    }
    free(many);
    free(h5);
    free(fig);
}

void mk_matrices_free(mk_matrices *mx)
{
    free(mx->hsic);
    free(mx->cka);
    free(mx->stderr_);
    free(mx->pvalue);
    free(mx->measures);
    free(mx->measures_se);
    *mx = (mk_matrices){0};
}

mk_err mk_finish_matrices(const mk_batch_mem *b, const double *total, mk_matrices *mx)
{
    const mk_lineup *lu = b->lu;
    const mk_config *cfg = b->cfg;
    int nx = mk_lineup_rows(lu), ny = mk_lineup_cols(lu);
    int64_t base = mk_job_base_len(lu), cells = (int64_t)nx * ny;
    mk_err err = MK_OK;
    mx->hsic = mk_malloc((size_t)base * sizeof(double), "the HSIC sums", &err);
    if (!err) mx->cka = mk_malloc((size_t)cells * sizeof(double), "the CKA matrix", &err);
    if (!err && b->groups) mx->stderr_ = mk_malloc((size_t)cells * sizeof(double), "standard errors", &err);
    if (!err && cfg->permutations) mx->pvalue = mk_malloc((size_t)cells * sizeof(double), "p-values", &err);
    if (err) return err;
    double *hxy = mx->hsic, *hxx = hxy + cells, *hyy = hxx + nx;
    if (cfg->estimator == MK_EST_EXACT)
        mk_exact_hsic(&b->exact, total, b->plan->n, cfg->debiased, nx, ny, lu->cross ? nx : 0, hxy, hxx, hyy);
    else
        memcpy(mx->hsic, total, (size_t)base * sizeof(double));
    mk_cka_from_sums(nx, ny, hxy, hxx, hyy, mx->cka);
    if (mx->stderr_) err = mk_jackknife_stderr(nx, ny, total, b->groups, total + base, mx->stderr_);
    if (mx->pvalue) mk_perm_pvalue(nx, ny, hxy, cfg->permutations, total + base * (1 + b->groups), mx->pvalue);
    MK_TRY(err);
    const double *varied = total + mk_batch_leaf_len(b) - lu->nlayers;
    err = check_layers(lu, hxx, varied, 0, nx);
    if (!err && lu->cross) err = check_layers(lu, hyy, varied + nx, nx, ny);
    return err;
}

mk_err mk_finish_write(const mk_batch_mem *b, const mk_matrices *mx, const mk_run_facts *facts)
{
    int nx = mk_lineup_rows(b->lu), ny = mk_lineup_cols(b->lu);
    const double *hxy = mx->hsic, *hxx = hxy + nx * ny, *hyy = hxx + nx;
    mk_result res = {b->cfg, b->lu, b->plan, mx->cka, hxy, hxx, hyy, mx->stderr_, mx->pvalue, b->groups,
                     facts->nranks, facts->threads, facts->seconds, facts->seconds_total, facts->segments,
                     mx->measures, mx->measures_se};
    mk_err err = mk_output_write(&res);
    if (!err) mk_output_summary(stdout, &res);
    if (!err && b->cfg->plot.enabled) draw_plot(b->cfg);
    return err;
}

/* A layer of lower rank than its width has directions the measures beyond
 * CKA drop (mpicka/measures.h); a pair whose ranks add up to n - 1 or more
 * has canonical correlations of 1 whatever the data. */
void mk_finish_warn_ranks(const mk_batch_mem *b, const int64_t *ranks)
{
    const mk_lineup *lu = b->lu;
    int nx = mk_lineup_rows(lu), ny = mk_lineup_cols(lu), y_first = lu->cross ? nx : 0;
    int64_t most_x = 0, most_y = 0;
    for (int l = 0; l < lu->nlayers; l++) {
        int k, used = l < nx || (l >= y_first && l < y_first + ny);
        const mk_layer *lay = mk_lineup_layer(lu, l, &k);
        if (used && ranks[l] >= 0 && ranks[l] < lay->p)
            mk_warn("%s: layer '%s' has rank %lld of its %lld features (constant or duplicate features, or fewer "
                    "examples): the measures use its %lld directions", lu->models[k].file, lay->path,
                    (long long)ranks[l], (long long)lay->p, (long long)ranks[l]);
        if (l < nx && ranks[l] > most_x) most_x = ranks[l];
        if (l >= y_first && l < y_first + ny && ranks[l] > most_y) most_y = ranks[l];
    }
    if (most_x + most_y > b->plan->n - 1)
        mk_warn("layers of rank %lld and %lld on %lld examples: some canonical correlations are 1 whatever the data "
                "(too few examples for CCA; svcca with fewer components does not have this)", (long long)most_x,
                (long long)most_y, (long long)b->plan->n);
}

mk_err mk_finish_measures(mk_batch_mem *b, const double *total, double **out)
{
    const mk_config *cfg = b->cfg;
    int outs = mk_measures_outputs(cfg->measures, cfg->nmeasures), nx = mk_lineup_rows(b->lu);
    mk_measure_share sh = {nx, mk_lineup_cols(b->lu), b->lu->cross ? nx : 0, 0, 1};
    *out = NULL;
    if (!outs || !mk_finish_has_moments(cfg)) return MK_OK;
    mk_err err = MK_OK;
    int64_t *ranks = mk_malloc((size_t)b->lu->nlayers * sizeof *ranks, "layer ranks", &err);
    mk_measure_tally tally = {0, 0, -1};
    double *values = err ? NULL : mk_calloc((size_t)outs * (size_t)(sh.nx * sh.ny), sizeof *values, "the measures", &err);
    if (!err)
        err = mk_measures_from_exact(&b->exact, total, b->plan->n, b->scale, &sh, cfg->measures, cfg->nmeasures, b->par,
                                     values, ranks, &tally);
    if (!err) mk_info("  measures: %lld pairs; %lld layers eigendecomposed", (long long)tally.pairs,
                      (long long)tally.layers);
    if (!err) mk_finish_warn_ranks(b, ranks);
    if (!err && sh.y_first == 0) mk_measures_mirror(cfg->measures, cfg->nmeasures, sh.nx, sh.ny, values);
    free(ranks);
    if (err) free(values);
    else *out = values;
    return err;
}

int mk_finish_has_moments(const mk_config *cfg)
{
    for (int m = 0; m < cfg->nmeasures; m++)
        if (cfg->measures[m].kind != MK_MEASURE_CKA && !mk_gram_measure(cfg->measures[m].kind)) return 1;
    return 0;
}

/* A mean over fewer batches than the run's is said, per measure: a batch
 * gives no value where a layer is constant in it, an RDM is flat or a tail
 * batch is too small for k (docs/maths.md). */
static void warn_left_out(const mk_batch_mem *b, const double *slots, int64_t n)
{
    double *count = malloc((size_t)n * sizeof *count), batches = (double)b->plan->total;
    if (!count) return;
    mk_gram_counts(n, mk_job_gram_groups(b->cfg, b->plan), slots, count);
    int64_t cells = (int64_t)mk_lineup_rows(b->lu) * mk_lineup_cols(b->lu);
    for (int m = 0, o = 0; m < b->cfg->nmeasures; m++) {
        if (!mk_gram_measure(b->cfg->measures[m].kind)) continue;
        int64_t some = 0, none = 0;
        double fewest = batches;
        for (int64_t k = o * cells; k < (o + 1) * cells; k++) {
            some += count[k] > 0.0 && count[k] < batches, none += count[k] == 0.0;
            if (count[k] > 0.0 && count[k] < fewest) fewest = count[k];
        }
        if (some)
            mk_warn("%s: %lld of its %lld layer pairs are the mean of fewer batches than the run's %.0f (as few as "
                    "%.0f): the others gave no value (a layer constant in the batch, an RDM of equal entries, or "
                    "too few examples for k)", mk_measure_names[b->cfg->measures[m].kind], (long long)some,
                    (long long)cells, batches, fewest);
        if (none)
            mk_warn("%s: %lld of its %lld layer pairs have no value in any batch (NaN)",
                    mk_measure_names[b->cfg->measures[m].kind], (long long)none, (long long)cells);
        o++;
    }
    free(count);
}

mk_err mk_finish_gram(const mk_batch_mem *b, const double *total, mk_matrices *mx)
{
    const mk_config *k = b->cfg;
    int64_t cells = (int64_t)mk_lineup_rows(b->lu) * mk_lineup_cols(b->lu), G = mk_job_gram_groups(k, b->plan);
    int64_t all = (int64_t)mk_measures_outputs(k->measures, k->nmeasures) * cells, n = 0;
    for (int m = 0; m < k->nmeasures; m++) n += mk_gram_measure(k->measures[m].kind) * cells;
    if (!n) return MK_OK;
    mk_err err = MK_OK;
    double *mean = mk_malloc((size_t)(2 * n) * sizeof *mean, "the Gram measures", &err), *se = mean + n;
    if (!err && !mx->measures) mx->measures = mk_malloc((size_t)all * sizeof *mx->measures, "the measures", &err);
    if (!err && G) mx->measures_se = mk_malloc((size_t)all * sizeof *mx->measures_se, "the measures", &err);
    if (!err) {
        const double *sums = total + mk_batch_leaf_len(b) - b->lu->nlayers - (int64_t)mk_job_gram_len(k, b->lu, b->plan);
        mk_gram_finish(n, G, sums, mean, se);
        warn_left_out(b, sums, n);
        for (int64_t q = 0; mx->measures_se && q < all; q++) mx->measures_se[q] = NAN;
        const char *names[2];
        for (int m = 0, o = 0, g = 0; m < k->nmeasures; o += mk_measure_outputs(k->measures[m].kind, names), m++) {
            if (!mk_gram_measure(k->measures[m].kind)) continue;
            memcpy(mx->measures + o * cells, mean + g * cells, (size_t)cells * sizeof *mean);
            if (mx->measures_se) memcpy(mx->measures_se + o * cells, se + g * cells, (size_t)cells * sizeof *se);
            g++;
        }
    }
    free(mean);
    return err;
}
