#include "run_impl.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/progress.h"

/* ---- the first batch: each layer's scale, and the exact sums' shift ---- */

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
            if (!err) err = mk_batch_layer_scale(model, lay, block, rows, k, c->cfg.precision, work, mean, &c->scale[flat]);
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


/* A block from the reader, for the batch step. */
static mk_err next_block(void *reader, mk_block *blk) { return mk_reader_next(reader, blk); }

void mk__free_mem(run_ctx *c, batch_mem *b)
{
    mk_reader_stop(b->reader, c->phase);
    b->reader = NULL;
    for (int k = 0; b->srcs && k < c->lu.nmodels; k++) mk_source_close(b->srcs[k]);
    free(b->srcs);
    b->srcs = NULL;
    mk_batch_free(&b->core);
}

/* One batch of the core's step (mpicka/batch.h), its blocks from the reader. */
static mk_err do_batch(batch_mem *b)
{
    return mk_batch_step(&b->core, next_block, b->reader);
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
    mk_err err = mk_batch_init(&b->core, &c->cfg, &c->lu, &c->plan, c->groups, c->scale, c->mu0, c->threads);
    if (!err) err = open_sources(c, b);
    MK_TRY(mk__agree(c->comm, err));
    MK_TRY(mk__agree(c->comm, start_reader(c, b, lo, hi)));
    c->phase[PH_SETUP] = MPI_Wtime() - c->t0;
    mk_progress progress;
    mk_progress_mode mode = c->progress >= 0 ? (mk_progress_mode)c->progress : mk_progress_auto(stderr);
    mk_progress_start(&progress, stderr, c->rank == 0 ? mode : MK_PROGRESS_NONE, (double)c->cfg.progress_seconds,
                      c->plan.total, c->plan.m, done_after(c, 0));
    c->last_checkpoint = MPI_Wtime();
    for (int64_t s = 0; s < steps && !err; s++) {
        err = mk__agree(c->comm, lo + s < hi ? do_batch(b) : MK_OK);
        if (!err) err = mk__between_steps(c, b, s + 1, done_after(c, s), done_after(c, s + 1));
        mk_progress_update(&progress, done_after(c, s + 1));
    }
    mk_progress_finish(&progress);
    MK_TRY(err);
    mk_reader_stop(b->reader, c->phase);
    b->reader = NULL;
    for (int t = 0; t < MK_BATCH_TIMES; t++) c->phase[PH_GRAM + t] += b->core.times[t];
    return MK_OK;
}

