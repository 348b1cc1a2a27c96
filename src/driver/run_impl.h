/* Private to the driver (run.c, resume.c, batches.c): the state of one run
 * and the steps the files share. Internal names carry the prefix mk__. */
#ifndef MPICKA_RUN_IMPL_H
#define MPICKA_RUN_IMPL_H

#include <mpi.h>
#include <stdint.h>

#include "mpicka/accum.h"
#include "mpicka/batch.h"
#include "mpicka/config.h"
#include "mpicka/exact.h"
#include "mpicka/hsic.h"
#include "mpicka/job.h"
#include "mpicka/lineup.h"
#include "mpicka/output.h"
#include "mpicka/par.h"
#include "mpicka/plan.h"
#include "mpicka/reader.h"
#include "mpicka/source.h"

/* Where the time goes, per rank, in seconds (reported by the summary and the
 * benchmark; also stored in cka.h5). */
enum {
    PH_READ = MK_READER_READ, PH_CENTRE = MK_READER_CENTRE, PH_WAIT = MK_READER_WAIT, /* from the reader */
    PH_GRAM = MK_READER_TIMES, PH_UCENTRE, PH_PAIRS, PH_PERMUTE, PH_SETUP, PH_REDUCE, PH_MEASURES, PH_WRITE, PH_COUNT
};

/* One run, on every rank. */
typedef struct {
    MPI_Comm comm;
    int rank, nranks;
    double phase[PH_COUNT];
    mk_config cfg;
    mk_lineup lu;         /* the models; rank 0 inspects them, every rank gets them */
    mk_plan plan;
    int64_t groups;       /* jackknife groups in use (0: none) */
    mk_todo todo;         /* the batches this run computes */
    mk_nodes saved;       /* rank 0: the partial sums a checkpoint brought */
    double *scale;        /* per flat layer: the power of two its values are multiplied by */
    double *mu0;          /* exact: the shift of the feature sums (mpicka/exact.h) */
    mk_kept kept;         /* rank 0: the probe's blocks of the first batch, for its reader */
    char *fingerprint;    /* rank 0 */
    double seconds_before;   /* rank 0: time of the segments a checkpoint brought */
    int threads;          /* this rank's threads for the Grams and pairs */
    int64_t segments_before; /* and how many they were */
    double last_checkpoint;
    int restart;
    int force;            /* overwrite results, or discard a checkpoint, of another config */
    int progress;         /* as in run_args */
    mk_outdir outdir;     /* rank 0: the locked output folder */
    double t0;
} run_ctx;

/* Per-rank working memory for the batches: the sources and the reader
 * feeding the core's batch step (mpicka/batch.h). */
typedef struct {
    mk_source **srcs;     /* per model */
    mk_reader *reader;
    mk_batch_mem core;
} batch_mem;

/* The length of the per-batch sums (valid once the memory check has passed:
 * then it is far below 2^53). */
static inline int64_t mk__leaf_len(const run_ctx *c) { return (int64_t)mk_job_sums_len(&c->cfg, &c->lu, &c->plan); }

/* Seconds since *since, which becomes now. */
static inline double mk__lap(double *since)
{
    double now = MPI_Wtime(), dt = now - *since;
    *since = now;
    return dt;
}

/* run.c: collective verdicts. mk__agree returns on every rank the first
 * failure of any rank (its message printed by rank 0); mk__bcast_bytes
 * sends rank 0's buffer (malloc'd on the others) to every rank. */
mk_err mk__agree(MPI_Comm comm, mk_err local);
mk_err mk__bcast_bytes(MPI_Comm comm, char **buf, int64_t *len);

/* resume.c: checkpoints and signals. The fingerprint (rank 0) names the
 * config and every input file; a checkpoint of the same fingerprint is
 * resumed, another refused unless --restart. Between steps, a due
 * checkpoint or a caught signal (SIGTERM, SIGINT, SIGUSR1) writes one;
 * a signal then stops the run with MK_ESTOPPED on every rank; during
 * start-up, mk__stop_before_batches stops it so, with nothing to write.
 * main installs the handlers first of all, before MPI_Init: a signal that
 * comes earlier than its handler kills the rank and leaves the others
 * waiting. */
mk_err mk__make_fingerprint(run_ctx *c);
mk_err mk__load_checkpoint(run_ctx *c);
mk_err mk__gather(run_ctx *c, batch_mem *b, mk_accum **merged);
void mk__catch_signals(void);
mk_err mk__stop_before_batches(run_ctx *c);
mk_err mk__between_steps(run_ctx *c, batch_mem *b, int64_t steps, int64_t done_before, int64_t done_now);
mk_err mk__check_old_results(const run_ctx *c);
void mk__drop_checkpoint(const run_ctx *c);

/* batches.c: the first batch's probe (each layer's power-of-two scale, by
 * the core's mk_batch_layer_scale, and the exact sums' shift, on rank 0,
 * then shared; its blocks kept for the batch itself), and the batches: the
 * per-rank memory, and the loop that reads every batch of c->todo and hands
 * its blocks to the core's batch step (mpicka/batch.h). */
mk_err mk__probe_layers(run_ctx *c);
mk_err mk__share_probe(run_ctx *c);
void mk__free_mem(run_ctx *c, batch_mem *b);
mk_err mk__compute(run_ctx *c, batch_mem *b);

/* spread.c: the measures beyond CKA (exact estimator only: the config
 * checked it), every rank computing a share of the pairs. Collective, after
 * the reduction: total is rank 0's summed sums (ignored elsewhere); rank 0's
 * *out gets the matrices (mk_measures_outputs of them, NULL when none is
 * asked for; the caller frees), the other ranks' NULL. Each rank holds a
 * copy of the second moments while it computes (mk_job_memory.measures). */
mk_err mk__spread_measures(run_ctx *c, batch_mem *b, const double *total, double **out);

#endif
