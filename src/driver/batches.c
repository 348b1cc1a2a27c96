#include "run_impl.h"

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/progress.h"

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

/* The scale of one layer from the first batch (in buf, k by p, its rows
 * in rows), and the column means of the scaled values into mean. A layer
 * whose centred values would overflow or underflow the Grams is brought near
 * 1 by a power of two fixed for the whole run: CKA is invariant to it, and
 * the same factor in every batch keeps the HSIC sums comparable. */
static mk_err layer_scale(const mk_model *model, const mk_layer *lay, const void *buf, const int64_t *rows, int64_t k,
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

/* Where the probe reads a layer's block: a block kept for the first batch
 * when keeping all of them fits this machine's memory beside the rest of the
 * run (else, or when malloc fails, the shared buffer: that block is then
 * read again by the batch). */
static void *probe_block(run_ctx *c, const mk_layer *lay, int flat, int64_t k, void *shared)
{
    if (!c->kept.raw) return shared;
    void *block = malloc((size_t)(k * lay->p) * (lay->in_f32 ? sizeof(float) : sizeof(double)));
    return block ? (c->kept.raw[flat] = block) : shared;
}

/* Rank 0, before the run: reads the first batch of every layer (batch 0 of
 * the plan: the same rows for any rank count, and on a resume). The exact
 * sums are shifted by their means (near the mean, S - n d d^T cancels
 * little). The blocks are kept for the batch itself (c->kept), so that a
 * run reads each byte once per epoch. */
mk_err mk__probe_layers(run_ctx *c)
{
    int64_t k = mk_plan_batch_size(&c->plan, 0), col = 0, P = mk_lineup_features(&c->lu);
    int L = c->lu.nlayers;
    mk_err err = MK_OK;
    mk_source *src = NULL;
    int64_t *rows = mk_malloc((size_t)k * sizeof *rows, "row numbers", &err);
    double *buf = NULL, *work = NULL, *mean = NULL;
    c->scale = err ? NULL : mk_malloc((size_t)L * sizeof *c->scale, "layer scales", &err);
    if (!err) c->mu0 = mk_calloc((size_t)P, sizeof *c->mu0, "the shift of the exact sums", &err);
    c->kept = (mk_kept){.g = 0, .nlayers = L, .raw = err || !mk_job_keeps_first(&c->cfg, &c->lu, &c->plan) ? NULL : calloc((size_t)L, sizeof(void *))};
    if (!err) mk_plan_batch_rows(&c->plan, 0, rows);
    /* Once, for the widest layer: fresh pages for every layer cost more
     * than reading it (a page fault each). */
    int64_t p = mk_lineup_widest(&c->lu, NULL)->p;
    if (!err) buf = mk_malloc((size_t)(k * p) * sizeof(double), "a probe block", &err);
    if (!err) work = mk_malloc((size_t)(k * p) * sizeof(double), "a probe block", &err);
    if (!err) mean = mk_malloc((size_t)(3 * p) * sizeof *mean, "column means", &err);
    for (int mod = 0, flat = 0; mod < c->lu.nmodels && !err; mod++) {
        const mk_model *model = &c->lu.models[mod];
        err = mk_source_open(model, mk_lineup_cache_share(&c->lu, mod), &src);
        for (int l = 0; l < model->nlayers && !err; l++, flat++) {
            const mk_layer *lay = &model->layers[l];
            void *block = probe_block(c, lay, flat, k, buf);
            err = mk_source_read(src, l, rows, k, block);
            if (!err) err = layer_scale(model, lay, block, rows, k, c->cfg.precision, work, mean, &c->scale[flat]);
            if (!err) memcpy(c->mu0 + col, mean, (size_t)lay->p * sizeof *mean);
            col += lay->p;
        }
        mk_source_close(src);
        src = NULL;
    }
    free(rows), free(buf), free(work), free(mean);
    return err;
}

/* Every rank gets rank 0's scales and shift. */
mk_err mk__share_probe(run_ctx *c)
{
    int L = c->lu.nlayers;
    int64_t P = mk_lineup_features(&c->lu);
    mk_err err = MK_OK;
    if (c->rank != 0) {
        c->scale = mk_malloc((size_t)L * sizeof *c->scale, "layer scales", &err);
        if (!err) c->mu0 = mk_malloc((size_t)P * sizeof *c->mu0, "the shift of the exact sums", &err);
    }
    MK_TRY(mk__agree(c->comm, err));
    MPI_Bcast(c->scale, L, MPI_DOUBLE, 0, c->comm);
    MPI_Bcast(c->mu0, (int)P, MPI_DOUBLE, 0, c->comm);
    return MK_OK;
}

/* ---- the batches ---- */


static mk_err alloc_grams(run_ctx *c, batch_mem *b, int64_t m);

/* The exact estimator's layers: in the flat order; and the Gram measures'. */
static mk_err alloc_exact(run_ctx *c, batch_mem *b, int64_t m)
{
    int L = c->lu.nlayers;
    mk_err err = MK_OK;
    int64_t *p = mk_malloc((size_t)L * sizeof *p, "layer widths", &err);
    if (err) return err;
    for (int l = 0; l < L; l++) p[l] = mk_lineup_layer(&c->lu, l, NULL)->p;
    err = mk_exact_init(&b->exact, L, p, m, c->cfg.precision);
    for (int l = 0; !err && c->lu.cross && l < mk_lineup_rows(&c->lu); l++) b->exact.y_col += p[l]; /* x vs y only */
    free(p);
    mk_gram_spec_init(&b->gspec, c->cfg.measures, c->cfg.nmeasures, m);
    if (!err && b->gspec.outs) err = mk_hsic_ws_init(&b->ws, m, 0, c->cfg.precision, NULL); /* their Grams */
    return err ? err : alloc_grams(c, b, m);
}

/* The measures from the Grams: each layer's RDM and neighbours, one batch's values. */
static mk_err alloc_grams(run_ctx *c, batch_mem *b, int64_t m)
{
    int L = c->lu.nlayers;
    mk_err err = MK_OK;
    mk_gram_spec_init(&b->gspec, c->cfg.measures, c->cfg.nmeasures, m);
    if (!b->gspec.outs) return MK_OK;
    b->glayers = mk_calloc((size_t)L, sizeof *b->glayers, "the Gram measures' layers", &err);
    for (int l = 0; l < L && !err; l++) err = mk_gram_layer_init(&b->glayers[l], &b->gspec);
    if (!err) err = mk_gram_work_init(&b->gwork, &b->gspec);
    int64_t n = (int64_t)b->gspec.outs * mk_lineup_rows(&c->lu) * mk_lineup_cols(&c->lu);
    if (!err) b->gvals = mk_malloc((size_t)n * sizeof *b->gvals, "the Gram measures' values", &err);
    return err;
}

static mk_err alloc_minibatch(run_ctx *c, batch_mem *b, int64_t m)
{
    const mk_config *k = &c->cfg;
    mk_hsic_opts opts = {k->estimator, k->kernel, k->rbf_threshold};
    mk_err err = MK_OK;
    int64_t len = mk_row_len(k->estimator, m), ny = mk_lineup_cols(&c->lu);
    MK_TRY(mk_hsic_ws_init(&b->ws, m, 0, k->precision, &opts)); /* the reader centres */
    b->v = mk_malloc((size_t)(c->lu.nlayers * len) * sizeof(double), "centred kernels", &err);
    if (!err && k->permutations) b->vperm = mk_malloc((size_t)(ny * len) * sizeof(double), "permuted kernels", &err);
    if (!err && k->permutations) b->perm = mk_malloc((size_t)m * sizeof(int64_t), "a permutation", &err);
    return err ? err : alloc_grams(c, b, m);
}

static mk_err alloc_mem(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    int64_t m = c->plan.m < c->plan.n ? c->plan.m : c->plan.n;
    MK_TRY(mk_par_create(c->threads, &b->par));
    MK_TRY(c->cfg.estimator == MK_EST_EXACT ? alloc_exact(c, b, m) : alloc_minibatch(c, b, m));
    b->ws.par = b->exact.par = b->gwork.par = b->par;
    b->leaf = mk_malloc((size_t)mk__leaf_len(c) * sizeof(double), "a batch's sums", &err);
    if (!err) err = mk_accum_create(mk__leaf_len(c), &b->acc);
    return err;
}

void mk__free_mem(run_ctx *c, batch_mem *b)
{
    mk_reader_stop(b->reader, c->phase);
    b->reader = NULL;
    for (int k = 0; b->srcs && k < c->lu.nmodels; k++) mk_source_close(b->srcs[k]);
    free(b->srcs);
    mk_hsic_ws_free(&b->ws);
    mk_exact_free(&b->exact);
    free(b->v);
    free(b->vperm);
    free(b->perm);
    for (int l = 0; b->glayers && l < c->lu.nlayers; l++) mk_gram_layer_free(&b->glayers[l]);
    free(b->glayers);
    mk_gram_work_free(&b->gwork);
    free(b->gvals);
    free(b->leaf);
    mk_accum_free(b->acc);
    mk_par_free(b->par);
}

/* A block too large for the Grams, after the scale its layer got from the
 * first batch. */
static mk_err too_large(const run_ctx *c, const mk_block *blk, const char *what)
{
    const mk_model *model = &c->lu.models[blk->model];
    const mk_layer *layer = &model->layers[blk->layer];
    double scale = c->scale[c->lu.offset[blk->model] + blk->layer];
    return mk_fail(MK_EDATA, "%s: dataset '%s', batch %lld (examples %lld..%lld): %s (centred values up to %g after "
                   "the scale 2^%d fixed from the first examples); the layer's values change by too many orders of "
                   "magnitude between batches%s", model->file, layer->path, (long long)blk->g,
                   (long long)blk->rows[0], (long long)blk->rows[blk->m - 1], what, blk->amax, ilogb(scale),
                   c->cfg.precision == MK_PREC_FLOAT32 ? "; precision: float64 has a wider range" : "");
}

/* The layer varied in this batch: its count at the end of the leaf. */
static void count_varied(const run_ctx *c, batch_mem *b, const mk_block *blk)
{
    b->leaf[mk__leaf_len(c) - c->lu.nlayers + c->lu.offset[blk->model] + blk->layer] = blk->constant ? 0.0 : 1.0;
}

/* A layer's block becomes its Gram at once, so only one layer's activations
 * are held at a time (plus the one being read ahead); the Gram's centred
 * kernel is computed in the background, alongside the next layer's Gram,
 * when the rank has a thread for it. */
static mk_err layer_row(run_ctx *c, batch_mem *b, const mk_block *blk)
{
    const mk_layer *layer = &c->lu.models[blk->model].layers[blk->layer];
    int64_t len = mk_row_len(c->cfg.estimator, blk->m);
    double clock = MPI_Wtime(), *v = b->v + (c->lu.offset[blk->model] + blk->layer) * len;
    count_varied(c, b, blk);
    if (mk_block_overflows(blk->amax, layer->p, c->cfg.precision)) return too_large(c, blk, "its Gram would overflow");
    if (mk_gram(&b->ws, blk->data, blk->m, layer->p)) return too_large(c, blk, "its Gram overflows");
    if (b->gspec.outs) /* before mk_kernel_start hands ws.gram over */
        mk_gram_layer_put(&b->glayers[c->lu.offset[blk->model] + blk->layer], &b->gspec, &b->gwork, b->ws.gram,
                          blk->data, blk->mean, c->cfg.precision, blk->m, layer->p, blk->constant);
    c->phase[PH_GRAM] += mk__lap(&clock);
    mk_kernel_start(&b->ws, blk->m, v);
    c->phase[PH_UCENTRE] += mk__lap(&clock); /* the wait for the previous kernel, or this one run here */
    return MK_OK;
}

/* HSIC sums must not be poisoned: a batch's own HSIC of a layer is finite
 * (it bounds the layer's cross terms by Cauchy-Schwarz). h holds flat
 * layers first .. first+count-1. */
static mk_err check_self(const run_ctx *c, const mk_block *blk, const double *h, int first, int count)
{
    for (int l = 0; l < count; l++) {
        if (isfinite(h[l])) continue;
        int k;
        const mk_layer *layer = mk_lineup_layer(&c->lu, first + l, &k);
        return mk_fail(MK_EDATA, "%s: dataset '%s', batch %lld (examples %lld..%lld): its HSIC with itself is %g, "
                       "not a finite number", c->lu.models[k].file, layer->path, (long long)blk->g,
                       (long long)blk->rows[0], (long long)blk->rows[blk->m - 1], h[l]);
    }
    return MK_OK;
}

/* The columns' kernels in v: y's (cross) or all. The rows' length, and so
 * where y's start, depends on the batch's size (a tail batch is smaller). */
static const double *cols_of(const run_ctx *c, const batch_mem *b, int64_t m)
{
    return c->lu.cross ? b->v + mk_lineup_rows(&c->lu) * mk_row_len(c->cfg.estimator, m) : b->v;
}

/* The permutation test: y's examples reordered within the batch, R times.
 * Permuting a centred kernel's rows and columns is centring the permuted
 * one, so only the pair products are recomputed. */
static mk_err permuted_pairs(run_ctx *c, batch_mem *b, int64_t g, int64_t m, double *out)
{
    int nx = mk_lineup_rows(&c->lu), ny = mk_lineup_cols(&c->lu);
    mk_estimator est = c->cfg.estimator;
    int64_t len = mk_row_len(est, m);
    const double *vy = cols_of(c, b, m);
    for (int64_t r = 0; r < c->cfg.permutations; r++) {
        mk_plan_test_perm(&c->plan, g, r, m, b->perm);
        for (int j = 0; j < ny; j++) mk_permute_row(est, vy + j * len, m, b->perm, b->vperm + j * len);
        MK_TRY(mk_pairs(b->par, est, b->v, nx, b->vperm, ny, m, out + r * nx * ny, NULL, NULL));
    }
    return MK_OK;
}

/* The Gram measures of every pair of the batch, added into its group's sums. */
static mk_err gram_batch(run_ctx *c, batch_mem *b, int64_t g)
{
    int nx = mk_lineup_rows(&c->lu), ny = mk_lineup_cols(&c->lu), cross = c->lu.cross;
    int64_t G = mk_job_gram_groups(&c->cfg, &c->plan), n = (int64_t)b->gspec.outs * nx * ny;
    int64_t slot = G ? mk_plan_group(&c->plan, g, G) : 0;
    double *sums = b->leaf + mk__gram_at(c);
    memset(sums, 0, (size_t)mk__gram_len(c) * sizeof *sums);
    MK_TRY(mk_gram_pairs(&b->gspec, b->par, b->glayers, nx, b->glayers + (cross ? nx : 0), ny, !cross, b->gvals));
    mk_gram_add(b->gvals, n, sums + slot * 2 * n);
    return MK_OK;
}

static mk_err do_minibatch(run_ctx *c, batch_mem *b)
{
    int nx = mk_lineup_rows(&c->lu), ny = mk_lineup_cols(&c->lu);
    int64_t base = mk_job_base_len(&c->lu);
    mk_block blk;
    for (int k = 0; k < c->lu.nlayers; k++) {
        MK_TRY(mk_reader_next(b->reader, &blk));
        MK_TRY(layer_row(c, b, &blk));
    }
    double *hxy = b->leaf, *hxx = hxy + nx * ny, *hyy = hxx + nx, clock = MPI_Wtime();
    mk_kernel_wait(&b->ws);
    c->phase[PH_UCENTRE] += mk__lap(&clock);
    const double *vy = c->lu.cross ? cols_of(c, b, blk.m) : NULL; /* NULL: all against all */
    MK_TRY(mk_pairs(b->par, c->cfg.estimator, b->v, nx, vy, ny, blk.m, hxy, hxx, hyy));
    MK_TRY(check_self(c, &blk, hxx, 0, nx));
    if (c->lu.cross) MK_TRY(check_self(c, &blk, hyy, nx, ny));
    double *slots = b->leaf + base, *perms = slots + base * c->groups;
    memset(slots, 0, (size_t)(base * c->groups) * sizeof *slots);
    if (c->groups) memcpy(slots + base * mk_plan_group(&c->plan, blk.g, c->groups), b->leaf, (size_t)base * sizeof *slots);
    if (b->gspec.outs) MK_TRY(gram_batch(c, b, blk.g));
    c->phase[PH_PAIRS] += mk__lap(&clock);
    MK_TRY(permuted_pairs(c, b, blk.g, blk.m, perms));
    c->phase[PH_PERMUTE] += mk__lap(&clock);
    return mk_accum_add(b->acc, blk.g, b->leaf);
}

/* The Gram measures in the exact pass: each block's Gram, for them alone. */
static mk_err exact_gram(run_ctx *c, batch_mem *b, const mk_block *blk)
{
    const mk_layer *layer = &c->lu.models[blk->model].layers[blk->layer];
    if (!b->gspec.outs) return MK_OK;
    if (mk_block_overflows(blk->amax, layer->p, c->cfg.precision) || mk_gram(&b->ws, blk->data, blk->m, layer->p))
        return too_large(c, blk, "its Gram would overflow");
    mk_gram_layer_put(&b->glayers[c->lu.offset[blk->model] + blk->layer], &b->gspec, &b->gwork, b->ws.gram, blk->data,
                      blk->mean, c->cfg.precision, blk->m, layer->p, blk->constant);
    return MK_OK;
}

static mk_err do_exact(run_ctx *c, batch_mem *b)
{
    int L = c->lu.nlayers;
    mk_block blk;
    for (int k = 0; k < L; k++) {
        MK_TRY(mk_reader_next(b->reader, &blk));
        count_varied(c, b, &blk);
        if (mk_block_overflows(blk.amax, mk_lineup_features(&c->lu), c->cfg.precision))
            return too_large(c, &blk, "the cross-products of all features would overflow");
        mk_exact_put(&b->exact, c->lu.offset[blk.model] + blk.layer, blk.data, blk.mean, blk.m);
        MK_TRY(exact_gram(c, b, &blk));
    }
    double clock = MPI_Wtime();
    mk_exact_batch(&b->exact, blk.m, b->leaf);
    if (b->gspec.outs) MK_TRY(gram_batch(c, b, blk.g));
    for (int64_t k = 0, len = mk__leaf_len(c) - L; k < len; k++) /* the length once: 18% of a run when per value */
        if (!isfinite(b->leaf[k])) return too_large(c, &blk, "the feature sums of the batch overflow");
    c->phase[PH_GRAM] += mk__lap(&clock);
    return mk_accum_add(b->acc, blk.g, b->leaf);
}

static mk_err do_batch(run_ctx *c, batch_mem *b)
{
    return c->cfg.estimator == MK_EST_EXACT ? do_exact(c, b) : do_minibatch(c, b);
}

static mk_err open_sources(run_ctx *c, batch_mem *b)
{
    mk_err err = MK_OK;
    b->srcs = mk_calloc((size_t)c->lu.nmodels, sizeof *b->srcs, "the sources", &err);
    for (int k = 0; k < c->lu.nmodels && !err; k++) {
        err = mk_source_open(&c->lu.models[k], mk_lineup_cache_share(&c->lu, k), &b->srcs[k]);
        if (!err) err = mk_source_set_workers(b->srcs[k], c->threads); /* inflating, beside the Grams */
    }
    return err;
}

/* Rank 0's probe blocks go to its reader when the first batch is its first
 * (not on a resume past it). */
static mk_err start_reader(run_ctx *c, batch_mem *b, int64_t lo, int64_t hi)
{
    if (lo >= hi || mk_todo_batch(&c->todo, lo) != c->kept.g) mk_kept_free(&c->kept);
    return mk_reader_start(&c->plan, c->cfg.precision, b->srcs, &c->lu, c->scale, &c->todo, lo, hi, &c->kept,
                           &b->reader);
}

/* Batches done, this run's and before, after `steps` lockstep steps. */
static int64_t done_after(const run_ctx *c, int64_t steps)
{
    int64_t q = c->todo.batches / c->nranks, r = c->todo.batches % c->nranks;
    int64_t now = r * (steps < q + 1 ? steps : q + 1) + (c->nranks - r) * (steps < q ? steps : q);
    return c->plan.total - c->todo.batches + now;
}

/* All ranks step together, so that a failure on one rank (a NaN, a damaged
 * chunk) stops every rank at the same batch instead of leaving them waiting. */
mk_err mk__compute(run_ctx *c, batch_mem *b)
{
    int64_t lo, hi, steps = (c->todo.batches + c->nranks - 1) / c->nranks;
    mk_plan_rank_range(c->todo.batches, c->rank, c->nranks, &lo, &hi);
    mk_err err = alloc_mem(c, b);
    if (!err) err = open_sources(c, b);
    MK_TRY(mk__agree(c->comm, err));
    if (c->cfg.estimator == MK_EST_EXACT) memcpy(b->exact.mu0, c->mu0, (size_t)b->exact.P * sizeof(double));
    MK_TRY(mk__agree(c->comm, start_reader(c, b, lo, hi)));
    c->phase[PH_SETUP] = MPI_Wtime() - c->t0;
    mk_progress progress;
    mk_progress_mode mode = c->progress >= 0 ? (mk_progress_mode)c->progress : mk_progress_auto(stderr);
    mk_progress_start(&progress, stderr, c->rank == 0 ? mode : MK_PROGRESS_NONE, (double)c->cfg.progress_seconds,
                      c->plan.total, c->plan.m, done_after(c, 0));
    c->last_checkpoint = MPI_Wtime();
    for (int64_t s = 0; s < steps && !err; s++) {
        err = mk__agree(c->comm, lo + s < hi ? do_batch(c, b) : MK_OK);
        if (!err) err = mk__between_steps(c, b, s + 1, done_after(c, s), done_after(c, s + 1));
        mk_progress_update(&progress, done_after(c, s + 1));
    }
    mk_progress_finish(&progress);
    MK_TRY(err);
    mk_reader_stop(b->reader, c->phase);
    b->reader = NULL;
    return MK_OK;
}

