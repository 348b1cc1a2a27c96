/* The core of a run after the read, shared by `mpicka run` and a library
 * session (mpicka/session.h): the probe's scale of a layer, the per-batch
 * maths (Grams, pairs, permutations, or the exact estimator's sums) on a
 * batch's centred blocks, and the accumulator the per-batch sums go into.
 * One implementation, so that a session gets the bits of a file run. Not
 * collective: no MPI is called here (the driver gathers the accumulators). */
#ifndef MPICKA_BATCH_H
#define MPICKA_BATCH_H

#include <stdint.h>

#include "mpicka/accum.h"
#include "mpicka/config.h"
#include "mpicka/error.h"
#include "mpicka/exact.h"
#include "mpicka/gram_measures.h"
#include "mpicka/hsic.h"
#include "mpicka/lineup.h"
#include "mpicka/par.h"
#include "mpicka/plan.h"
#include "mpicka/reader.h"

/* Seconds spent per step of the batch maths. */
enum { MK_BATCH_GRAM, MK_BATCH_UCENTRE, MK_BATCH_PAIRS, MK_BATCH_PERMUTE, MK_BATCH_TIMES };

/* The working memory of one process for its batches. cfg, lu, plan and
 * scale are the caller's and must outlive it. */
typedef struct {
    const mk_config *cfg;
    const mk_lineup *lu;
    const mk_plan *plan;
    int64_t groups;       /* jackknife groups in use (0: none) */
    const double *scale;  /* per flat layer: the power of two its values are multiplied by */
    mk_hsic_ws ws;
    double *v;            /* the centred kernels of every layer, stacked in the flat order */
    double *vperm;        /* the columns', permuted */
    int64_t *perm;
    mk_exact exact;       /* estimator: exact (its mu0: the probe's shift) */
    mk_gram_spec gspec;   /* the measures from the Grams (gspec.outs 0: none) */
    mk_gram_layer *glayers; /* per flat layer, of the current batch */
    mk_gram_work gwork;
    double *gvals;        /* one batch's values of them */
    double *leaf;         /* what one batch adds (see mk_job_sums_len) */
    mk_accum *acc;
    mk_par *par;          /* this process's threads for the Grams and pairs */
    double times[MK_BATCH_TIMES];
} mk_batch_mem;

/* The scale of one layer from the first batch (buf: k by p, float when
 * lay->in_f32, else double; rows: its examples, for messages), and the
 * column means of the scaled values into mean (3p doubles of scratch; work:
 * k*p doubles). MK_EDATA naming model->file, lay->path and the example for
 * NaN or Inf. */
mk_err mk_batch_layer_scale(const mk_model *model, const mk_layer *lay, const void *buf, const int64_t *rows, int64_t k,
                            mk_precision prec, double *work, double *mean, double *scale);

/* Allocate for batches of at most min(plan->m, plan->n) examples, with
 * `threads` threads; mu0 (exact: the probe's shift, every feature) is
 * copied. Free with mk_batch_free (also after a failure). */
mk_err mk_batch_init(mk_batch_mem *b, const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan, int64_t groups,
                     const double *scale, const double *mu0, int threads);
void mk_batch_free(mk_batch_mem *b);

/* The length of the per-batch sums (mk_job_sums_len, valid once the memory
 * check passed or the session's bounds did). */
int64_t mk_batch_leaf_len(const mk_batch_mem *b);

/* Where the blocks of a batch come from: every flat layer in order, centred
 * as mk_centre does with the layer's scale, in the working precision. */
typedef mk_err (*mk_next_block)(void *arg, mk_block *blk);

/* One batch: its blocks from next, its sums added to b->acc under its index. */
mk_err mk_batch_step(mk_batch_mem *b, mk_next_block next, void *arg);

#endif
