#include "mpicka/batch.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/job.h"
#include "mpicka/log.h"

/* ---- the first batch: each layer's scale, and the exact sums' shift ---- */

/* The largest |value| of a block as read (float or double). */
static double raw_absmax(const void *buf, int in_f32, int64_t count)
{
    double most = 0.0;
    for (int64_t k = 0; k < count; k++) {
        double v = fabs(in_f32 ? ((const float *)buf)[k] : ((const double *)buf)[k]);
        most = v > most ? v : most;
    }
    return most;
}

/* A layer whose centred values would overflow or underflow the Grams is
 * brought near 1 by a power of two fixed for the whole run: CKA is invariant
 * to it, and the same factor in every batch keeps the HSIC sums comparable. */
mk_err mk_batch_layer_scale(const mk_model *model, const mk_layer *lay, const void *buf, const int64_t *rows, int64_t k,
                            mk_precision prec, double *work, double *mean, double *scale)
{
    mk_centring how = {.scale = 1.0};
    int64_t bad = mk_centre(buf, lay->in_f32, k, lay->p, MK_PREC_FLOAT64, mean, work, &how);
    if (bad >= 0)
        return mk_fail(MK_EDATA, "%s: dataset '%s' holds NaN or Inf at example %lld", model->file, lay->path,
                       (long long)rows[bad]);
    if (!isfinite(how.amax)) { /* finite values whose differences overflow */
        how.scale = ldexp(1.0, -ilogb(raw_absmax(buf, lay->in_f32, k * lay->p)) - 2);
        mk_centre(buf, lay->in_f32, k, lay->p, MK_PREC_FLOAT64, mean, work, &how);
    }
    double more = mk_safe_scale(how.amax, lay->p, prec);
    *scale = how.scale * more;
    if (more != 1.0) { /* the means of the values as scaled, for the exact sums' shift */
        how.scale = *scale;
        mk_centre(buf, lay->in_f32, k, lay->p, MK_PREC_FLOAT64, mean, work, &how);
    }
    return MK_OK;
}

/* ---- the batches ---- */

/* Seconds since *since, which becomes now. */
static double lap(double *since)
{
    double now = mk_now(), dt = now - *since;
    *since = now;
    return dt;
}

int64_t mk_batch_leaf_len(const mk_batch_mem *b) { return (int64_t)mk_job_sums_len(b->cfg, b->lu, b->plan); }

static mk_err alloc_grams(mk_batch_mem *b, int64_t m);

/* The exact estimator's layers: in the flat order; and the Gram measures'. */
static mk_err alloc_exact(mk_batch_mem *b, int64_t m)
{
    int L = b->lu->nlayers;
    mk_err err = MK_OK;
    int64_t *p = mk_malloc((size_t)L * sizeof *p, "layer widths", &err);
    if (err) return err;
    int64_t y_col = 0; /* x against y: only x-y pairs and each layer with itself */
    for (int l = 0; l < L; l++) p[l] = mk_lineup_layer(b->lu, l, NULL)->p;
    for (int l = 0; b->lu->cross && l < mk_lineup_rows(b->lu); l++) y_col += p[l];
    err = mk_exact_init(&b->exact, L, p, y_col, m, b->cfg->precision);
    free(p);
    if (!err && b->gspec.outs) err = mk_hsic_ws_init(&b->ws, m, 0, b->cfg->precision, NULL); /* their Grams */
    return err ? err : alloc_grams(b, m);
}

/* The measures from the Grams: each layer's RDM and neighbours, one batch's values. */
static mk_err alloc_grams(mk_batch_mem *b, int64_t m)
{
    int L = b->lu->nlayers;
    mk_err err = MK_OK;
    if (!b->gspec.outs) return MK_OK;
    b->glayers = mk_calloc((size_t)L, sizeof *b->glayers, "the Gram measures' layers", &err);
    for (int l = 0; l < L && !err; l++) err = mk_gram_layer_init(&b->glayers[l], &b->gspec);
    if (!err) err = mk_gram_work_init(&b->gwork, &b->gspec);
    int64_t n = (int64_t)b->gspec.outs * mk_lineup_rows(b->lu) * mk_lineup_cols(b->lu);
    if (!err) b->gvals = mk_malloc((size_t)n * sizeof *b->gvals, "the Gram measures' values", &err);
    return err;
}

static mk_err alloc_minibatch(mk_batch_mem *b, int64_t m)
{
    const mk_config *k = b->cfg;
    mk_hsic_opts opts = {k->estimator, k->kernel, k->rbf_threshold};
    mk_err err = MK_OK;
    int64_t len = mk_row_len(k->estimator, m), ny = mk_lineup_cols(b->lu);
    MK_TRY(mk_hsic_ws_init(&b->ws, m, 0, k->precision, &opts)); /* the reader centres */
    b->v = mk_malloc((size_t)(b->lu->nlayers * len) * sizeof(double), "centred kernels", &err);
    if (!err && k->permutations) b->vperm = mk_malloc((size_t)(ny * len) * sizeof(double), "permuted kernels", &err);
    if (!err && k->permutations) b->perm = mk_malloc((size_t)m * sizeof(int64_t), "a permutation", &err);
    return err ? err : alloc_grams(b, m);
}

mk_err mk_batch_init(mk_batch_mem *b, const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan, int64_t groups,
                     const double *scale, const double *mu0, int threads)
{
    mk_err err = MK_OK;
    memset(b, 0, sizeof *b);
    *b = (mk_batch_mem){.cfg = cfg, .lu = lu, .plan = plan, .groups = groups, .scale = scale};
    int64_t m = plan->m < plan->n ? plan->m : plan->n;
    MK_TRY(mk_par_create(threads, &b->par));
    mk_gram_spec_init(&b->gspec, cfg->measures, cfg->nmeasures, m);
    MK_TRY(cfg->estimator == MK_EST_EXACT ? alloc_exact(b, m) : alloc_minibatch(b, m));
    b->ws.par = b->exact.par = b->gwork.par = b->par;
    if (cfg->estimator == MK_EST_EXACT) memcpy(b->exact.mu0, mu0, (size_t)b->exact.P * sizeof(double));
    b->leaf = mk_malloc((size_t)mk_batch_leaf_len(b) * sizeof(double), "a batch's sums", &err);
    if (!err) err = mk_accum_create(mk_batch_leaf_len(b), &b->acc);
    return err;
}

void mk_batch_free(mk_batch_mem *b)
{
    mk_hsic_ws_free(&b->ws);
    mk_exact_free(&b->exact);
    free(b->v);
    free(b->vperm);
    free(b->perm);
    for (int l = 0; b->glayers && l < b->lu->nlayers; l++) mk_gram_layer_free(&b->glayers[l]);
    free(b->glayers);
    mk_gram_work_free(&b->gwork);
    free(b->gvals);
    free(b->leaf);
    mk_accum_free(b->acc);
    mk_par_free(b->par);
    memset(b, 0, sizeof *b);
}

/* A block too large for the Grams, after the scale its layer got from the
 * first batch. */
static mk_err too_large(const mk_batch_mem *b, const mk_block *blk, const char *what)
{
    const mk_model *model = &b->lu->models[blk->model];
    const mk_layer *layer = &model->layers[blk->layer];
    double scale = b->scale[b->lu->offset[blk->model] + blk->layer];
    return mk_fail(MK_EDATA, "%s: dataset '%s', batch %lld (examples %lld..%lld): %s (centred values up to %g after "
                   "the scale 2^%d fixed from the first examples); the layer's values change by too many orders of "
                   "magnitude between batches%s", model->file, layer->path, (long long)blk->g,
                   (long long)blk->rows[0], (long long)blk->rows[blk->m - 1], what, blk->amax, ilogb(scale),
                   b->cfg->precision == MK_PREC_FLOAT32 ? "; precision: float64 has a wider range" : "");
}

/* The layer varied in this batch: its count at the end of the leaf. */
static void count_varied(mk_batch_mem *b, const mk_block *blk)
{
    b->leaf[mk_batch_leaf_len(b) - b->lu->nlayers + b->lu->offset[blk->model] + blk->layer] = blk->constant ? 0.0 : 1.0;
}

/* The block's Gram in b->ws.gram, and what the Gram measures keep of it. */
static mk_err block_gram(mk_batch_mem *b, const mk_block *blk)
{
    const mk_layer *layer = &b->lu->models[blk->model].layers[blk->layer];
    if (mk_block_overflows(blk->amax, layer->p, b->cfg->precision)) return too_large(b, blk, "its Gram would overflow");
    if (mk_gram(&b->ws, blk->data, blk->m, layer->p)) return too_large(b, blk, "its Gram overflows");
    if (b->gspec.outs)
        mk_gram_layer_put(&b->glayers[b->lu->offset[blk->model] + blk->layer], &b->gspec, &b->gwork, b->ws.gram,
                          blk->data, blk->mean, b->cfg->precision, blk->m, layer->p, blk->constant);
    return MK_OK;
}

/* A layer's block becomes its Gram at once, so only one layer's activations
 * are held at a time (plus the one being read ahead); the Gram's centred
 * kernel is computed in the background, alongside the next layer's Gram,
 * when the process has a thread for it. */
static mk_err layer_row(mk_batch_mem *b, const mk_block *blk)
{
    int64_t len = mk_row_len(b->cfg->estimator, blk->m);
    double clock = mk_now(), *v = b->v + (b->lu->offset[blk->model] + blk->layer) * len;
    count_varied(b, blk);
    MK_TRY(block_gram(b, blk)); /* before mk_kernel_start hands ws.gram over */
    b->times[MK_BATCH_GRAM] += lap(&clock);
    mk_kernel_start(&b->ws, blk->m, v);
    b->times[MK_BATCH_UCENTRE] += lap(&clock); /* the wait for the previous kernel, or this one run here */
    return MK_OK;
}

/* HSIC sums must not be poisoned: a batch's own HSIC of a layer is finite
 * (it bounds the layer's cross terms by Cauchy-Schwarz). h holds flat
 * layers first .. first+count-1. */
static mk_err check_self(const mk_batch_mem *b, const mk_block *blk, const double *h, int first, int count)
{
    for (int l = 0; l < count; l++) {
        if (isfinite(h[l])) continue;
        int k;
        const mk_layer *layer = mk_lineup_layer(b->lu, first + l, &k);
        return mk_fail(MK_EDATA, "%s: dataset '%s', batch %lld (examples %lld..%lld): its HSIC with itself is %g, "
                       "not a finite number", b->lu->models[k].file, layer->path, (long long)blk->g,
                       (long long)blk->rows[0], (long long)blk->rows[blk->m - 1], h[l]);
    }
    return MK_OK;
}

/* The columns' kernels in v: y's (cross) or all. The rows' length, and so
 * where y's start, depends on the batch's size (a tail batch is smaller). */
static const double *cols_of(const mk_batch_mem *b, int64_t m)
{
    return b->lu->cross ? b->v + mk_lineup_rows(b->lu) * mk_row_len(b->cfg->estimator, m) : b->v;
}

/* The permutation test: y's examples reordered within the batch, R times.
 * Permuting a centred kernel's rows and columns is centring the permuted
 * one, so only the pair products are recomputed. */
static mk_err permuted_pairs(mk_batch_mem *b, int64_t g, int64_t m, double *out)
{
    int nx = mk_lineup_rows(b->lu), ny = mk_lineup_cols(b->lu);
    mk_estimator est = b->cfg->estimator;
    int64_t len = mk_row_len(est, m);
    const double *vy = cols_of(b, m);
    for (int64_t r = 0; r < b->cfg->permutations; r++) {
        mk_plan_test_perm(b->plan, g, r, m, b->perm);
        for (int j = 0; j < ny; j++) mk_permute_row(est, vy + j * len, m, b->perm, b->vperm + j * len);
        MK_TRY(mk_pairs(b->par, est, b->v, nx, b->vperm, ny, m, out + r * nx * ny, NULL, NULL));
    }
    return MK_OK;
}

/* Where the Gram measures' sums start in the per-batch sums, and their length. */
static int64_t gram_len(const mk_batch_mem *b) { return (int64_t)mk_job_gram_len(b->cfg, b->lu, b->plan); }
static int64_t gram_at(const mk_batch_mem *b) { return mk_batch_leaf_len(b) - b->lu->nlayers - gram_len(b); }

/* The Gram measures of every pair of the batch, added into its group's sums. */
static mk_err gram_batch(mk_batch_mem *b, int64_t g)
{
    int nx = mk_lineup_rows(b->lu), ny = mk_lineup_cols(b->lu), cross = b->lu->cross;
    int64_t G = mk_job_gram_groups(b->cfg, b->plan), n = (int64_t)b->gspec.outs * nx * ny;
    int64_t slot = G ? mk_plan_group(b->plan, g, G) : 0;
    double *sums = b->leaf + gram_at(b);
    memset(sums, 0, (size_t)gram_len(b) * sizeof *sums);
    MK_TRY(mk_gram_pairs(&b->gspec, b->par, b->glayers, nx, b->glayers + (cross ? nx : 0), ny, !cross, b->gvals));
    mk_gram_add(b->gvals, n, sums + slot * 2 * n);
    return MK_OK;
}

static mk_err do_minibatch(mk_batch_mem *b, mk_next_block next, void *arg)
{
    int nx = mk_lineup_rows(b->lu), ny = mk_lineup_cols(b->lu);
    int64_t base = mk_job_base_len(b->lu);
    mk_block blk;
    for (int k = 0; k < b->lu->nlayers; k++) {
        MK_TRY(next(arg, &blk));
        MK_TRY(layer_row(b, &blk));
    }
    double *hxy = b->leaf, *hxx = hxy + nx * ny, *hyy = hxx + nx, clock = mk_now();
    mk_kernel_wait(&b->ws);
    b->times[MK_BATCH_UCENTRE] += lap(&clock);
    const double *vy = b->lu->cross ? cols_of(b, blk.m) : NULL; /* NULL: all against all */
    MK_TRY(mk_pairs(b->par, b->cfg->estimator, b->v, nx, vy, ny, blk.m, hxy, hxx, hyy));
    MK_TRY(check_self(b, &blk, hxx, 0, nx));
    if (b->lu->cross) MK_TRY(check_self(b, &blk, hyy, nx, ny));
    double *slots = b->leaf + base, *perms = slots + base * b->groups;
    memset(slots, 0, (size_t)(base * b->groups) * sizeof *slots);
    if (b->groups) memcpy(slots + base * mk_plan_group(b->plan, blk.g, b->groups), b->leaf, (size_t)base * sizeof *slots);
    if (b->gspec.outs) MK_TRY(gram_batch(b, blk.g));
    b->times[MK_BATCH_PAIRS] += lap(&clock);
    MK_TRY(permuted_pairs(b, blk.g, blk.m, perms));
    b->times[MK_BATCH_PERMUTE] += lap(&clock);
    return mk_accum_add(b->acc, blk.g, b->leaf);
}

static mk_err do_exact(mk_batch_mem *b, mk_next_block next, void *arg)
{
    int L = b->lu->nlayers;
    mk_block blk;
    for (int k = 0; k < L; k++) {
        MK_TRY(next(arg, &blk));
        count_varied(b, &blk);
        if (mk_block_overflows(blk.amax, mk_lineup_features(b->lu), b->cfg->precision))
            return too_large(b, &blk, "the cross-products of all features would overflow");
        mk_exact_put(&b->exact, b->lu->offset[blk.model] + blk.layer, blk.data, blk.mean, blk.m);
        if (b->gspec.outs) MK_TRY(block_gram(b, &blk)); /* for the Gram measures alone */
    }
    double clock = mk_now();
    mk_exact_batch(&b->exact, blk.m, b->leaf);
    if (b->gspec.outs) MK_TRY(gram_batch(b, blk.g));
    for (int64_t k = 0, len = mk_batch_leaf_len(b) - L; k < len; k++) /* the length once: 18% of a run when per value */
        if (!isfinite(b->leaf[k])) return too_large(b, &blk, "the feature sums of the batch overflow");
    b->times[MK_BATCH_GRAM] += lap(&clock);
    return mk_accum_add(b->acc, blk.g, b->leaf);
}

mk_err mk_batch_step(mk_batch_mem *b, mk_next_block next, void *arg)
{
    return b->cfg->estimator == MK_EST_EXACT ? do_exact(b, next, arg) : do_minibatch(b, next, arg);
}
