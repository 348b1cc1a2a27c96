#include "run_impl.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/finish.h"
#include "mpicka/log.h"
#include "mpicka/measure_sums.h"

/* The measures beyond CKA, spread over the ranks: rank 0 broadcasts the
 * second moments (S and s of the summed sums, mpicka/exact.h), every rank
 * eigendecomposes the layers its pairs use and computes pair k for k = its
 * rank modulo the rank count, and rank 0 gathers the cells into the
 * matrices. A cell's bits depend on the sums only (mpicka/measure_sums.h). */

/* Broadcast in pieces: an MPI count is an int. */
static void bcast_doubles(MPI_Comm comm, double *v, int64_t len)
{
    const int64_t piece = (int64_t)1 << 26;
    for (int64_t at = 0; at < len; at += piece)
        MPI_Bcast(v + at, (int)(len - at < piece ? len - at : piece), MPI_DOUBLE, 0, comm);
}

/* Every rank learns the failure of the lowest key (the first failed task
 * in the order one rank alone would meet them), from the lowest rank that
 * met it, with its message (mk__agree's, by task rather than by rank). */
static mk_err agree_first(MPI_Comm comm, mk_err local, int64_t key)
{
    struct { double key; int rank; } mine, first;
    MPI_Comm_rank(comm, &mine.rank);
    mine.key = local != MK_OK ? (double)key : 1e300;
    MPI_Allreduce(&mine, &first, 1, MPI_DOUBLE_INT, MPI_MINLOC, comm);
    if (first.key == 1e300) return MK_OK;
    int code = (int)local;
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", mk_errmsg());
    MPI_Bcast(&code, 1, MPI_INT, first.rank, comm);
    MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first.rank, comm);
    mk_set_errmsg(msg);
    return (mk_err)code;
}

/* Rank r's cells, output after output for each of its pairs, to rank 0,
 * which puts them back at their cells (share r: k = r, r + R, ...). */
static mk_err gather_cells(const run_ctx *c, const mk_measure_share *sh, int outs, double *values)
{
    int64_t cells = (int64_t)sh->nx * sh->ny, mine = mk_measure_share_pairs(sh);
    mk_err err = MK_OK;
    double *buf = mk_malloc((size_t)(mine * outs + 1) * sizeof *buf, "the measures' cells", &err);
    int *counts = NULL, *displs = NULL;
    double *all = NULL;
    if (!err && c->rank == 0) {
        counts = mk_malloc((size_t)c->nranks * sizeof *counts, "the measures' cells", &err);
        if (!err) displs = mk_malloc((size_t)c->nranks * sizeof *displs, "the measures' cells", &err);
        if (!err) all = mk_malloc((size_t)(cells * outs + 1) * sizeof *all, "the measures' cells", &err);
    }
    MK_TRY(mk__agree(c->comm, err));
    for (int64_t t = 0; t < mine; t++)
        for (int o = 0; o < outs; o++) buf[t * outs + o] = values[o * cells + sh->first + t * sh->stride];
    for (int r = 0, at = 0; c->rank == 0 && r < c->nranks; r++) {
        mk_measure_share other = {sh->nx, sh->ny, sh->y_first, r, c->nranks};
        counts[r] = (int)(mk_measure_share_pairs(&other) * outs);
        displs[r] = at;
        at += counts[r];
    }
    MPI_Gatherv(buf, (int)(mine * outs), MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, c->comm);
    for (int r = 0; c->rank == 0 && r < c->nranks; r++)
        for (int64_t t = 0; t < counts[r] / outs; t++)
            for (int o = 0; o < outs; o++)
                values[o * cells + r + t * c->nranks] = all[displs[r] + t * outs + o];
    free(buf), free(counts), free(displs), free(all);
    return MK_OK;
}

/* "3 on rank 0, 2 on rank 1" from n[0], n[stride], ... (one per rank). */
static void per_rank(const int64_t *n, int stride, int nranks, char *text, size_t size)
{
    size_t off = 0;
    for (int r = 0; r < nranks && off < size; r++)
        off += (size_t)snprintf(text + off, size - off, "%s%lld on rank %d", r ? ", " : "", (long long)n[r * stride], r);
}

/* Rank 0: what each rank computed, and the layers' ranks. */
static mk_err report(const run_ctx *c, const batch_mem *b, const mk_measure_tally *t, const int64_t *ranks)
{
    int L = c->lu.nlayers;
    int64_t counts[2] = {t->pairs, t->layers}, *all = NULL, *best = NULL, total = 0;
    mk_err err = MK_OK;
    if (c->rank == 0) all = mk_malloc((size_t)(2 * c->nranks + L) * sizeof *all, "the measures' tally", &err);
    MK_TRY(mk__agree(c->comm, err));
    if (c->rank == 0) best = all + 2 * c->nranks;
    MPI_Gather(counts, 2, MPI_INT64_T, all, 2, MPI_INT64_T, 0, c->comm);
    MPI_Reduce(ranks, best, L, MPI_INT64_T, MPI_MAX, 0, c->comm);
    if (c->rank == 0) {
        char p[1024], l[1024];
        for (int r = 0; r < c->nranks; r++) total += all[2 * r];
        per_rank(all, 2, c->nranks, p, sizeof p);
        per_rank(all + 1, 2, c->nranks, l, sizeof l);
        mk_info("  measures: %lld pairs (%s); layers eigendecomposed: %s", (long long)total, p, l);
        mk_finish_warn_ranks(&b->core, best);
    }
    free(all);
    return MK_OK;
}

/* The second moments on every rank: rank 0's own, a copy elsewhere. */
static mk_err share_sums(const run_ctx *c, const batch_mem *b, const double *total, double **sums)
{
    int64_t len = b->core.exact.row[b->core.exact.P] + b->core.exact.P;
    mk_err err = MK_OK;
    *sums = c->rank == 0 ? (double *)total : mk_malloc((size_t)len * sizeof **sums, "the second moments", &err);
    MK_TRY(mk__agree(c->comm, err));
    bcast_doubles(c->comm, *sums, len);
    return MK_OK;
}

mk_err mk__spread_measures(run_ctx *c, batch_mem *b, const double *total, double **out)
{
    const mk_config *cfg = &c->cfg;
    int outs = mk_measures_outputs(cfg->measures, cfg->nmeasures), nx = mk_lineup_rows(&c->lu);
    mk_measure_share sh = {nx, mk_lineup_cols(&c->lu), c->lu.cross ? nx : 0, c->rank, c->nranks};
    *out = NULL;
    if (!outs) return MK_OK;
    double *sums = NULL, *values = NULL;
    MK_TRY(share_sums(c, b, total, &sums));
    mk_err err = MK_OK;
    int64_t *ranks = mk_malloc((size_t)c->lu.nlayers * sizeof *ranks, "layer ranks", &err);
    mk_measure_tally tally = {0, 0, -1};
    values = err ? NULL : mk_calloc((size_t)outs * (size_t)(sh.nx * sh.ny), sizeof *values, "the measures", &err);
    if (!err)
        err = mk_measures_from_exact(&b->core.exact, sums, c->plan.n, c->scale, &sh, cfg->measures, cfg->nmeasures,
                                     b->core.par, values, ranks, &tally);
    if (sums != total) free(sums);
    err = agree_first(c->comm, err, tally.failed);
    if (!err) err = gather_cells(c, &sh, outs, values);
    if (!err) err = report(c, b, &tally, ranks);
    if (!err && c->rank == 0 && sh.y_first == 0) mk_measures_mirror(cfg->measures, cfg->nmeasures, sh.nx, sh.ny, values);
    free(ranks);
    if (!err && c->rank == 0) *out = values;
    else free(values);
    return err;
}
