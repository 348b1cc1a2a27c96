/* What `run` and `check` both work out from a config and its inspected
 * models before any data is read: the batch plan, the jackknife groups, the
 * length of the per-batch sums, a rank's memory and the pre-flight checks.
 * One module so that the dry run (`check`) and the run agree by
 * construction, and `check` needs nothing of the driver. Not collective. */
#ifndef MPICKA_JOB_H
#define MPICKA_JOB_H

#include <stdint.h>

#include "mpicka/config.h"
#include "mpicka/error.h"
#include "mpicka/lineup.h"
#include "mpicka/plan.h"

/* The batch plan of a config over the models' examples (every example for
 * the exact estimator). MK_ECONFIG for a batch_size the models cannot fill
 * or BLAS cannot take, MK_EINPUT for a model with too few examples. */
mk_err mk_job_plan(const mk_config *cfg, const mk_lineup *lu, mk_plan *plan);

/* Groups of batches for the jackknife: at most one per batch, none for the
 * exact estimator or when there are fewer than two batches. */
int64_t mk_job_jackknife_groups(const mk_config *cfg, const mk_plan *plan);

/* The HSICs of one minibatch: rows*cols cross values, then rows and cols
 * self values. */
int64_t mk_job_base_len(const mk_lineup *lu);

/* Groups of batches for the Gram measures' jackknife: as
 * mk_job_jackknife_groups, for the exact estimator too. */
int64_t mk_job_gram_groups(const mk_config *cfg, const mk_plan *plan);

/* The Gram measures' part of the per-batch sums (mpicka/gram_measures.h):
 * per jackknife group (one slot without groups), a value's sum and count
 * for every output and layer pair; it lies after the permutations' HSICs,
 * (exact: after the feature-space sums) before the counts of the layers. */
double mk_job_gram_len(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan);

/* The values summed per batch (what the accumulators, the reduction and the
 * checkpoints carry): minibatch estimators, the base, the base again in the
 * slot of the batch's jackknife group, then the cross HSICs of each
 * permutation, then the Gram measures' sums (mk_job_gram_len); exact, the
 * feature-space sums (mpicka/exact.h), then the Gram measures'. Both end with
 * one count per layer, 1 when the layer varied in the batch. In double, so
 * that no size a user can ask for overflows before the memory check refuses
 * it; exact as an integer once mk_job_preflight has passed. */
double mk_job_sums_len(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan);

/* What a rank allocates for the run (bytes, excluding the libraries):
 * what `mpicka check` reports and what the docs state as the bound. */
typedef struct {
    double blocks;   /* read-ahead: two centred blocks, plus one as read when types differ */
    double grams;    /* one m-by-m Gram (exact: the stacked batch and its P-by-P cross-products) */
    double stacked;  /* the centred kernels of every layer, m(m-1)/2 doubles each (+ m for hsic0) */
    double sums;     /* per-batch sums and the tree accumulators */
    double caches;   /* the chunk caches of chunked layers (mk_source_cache_bytes) */
    double measures; /* every rank after the pass: the measures beyond CKA (a copy of the second moments, eigenvectors,
                        per-thread work); minibatch estimators, during it: the Gram measures' RDMs and neighbour
                        lists of one batch for every layer (mk_gram_bytes); 0: none */
    double total;
    double first;    /* rank 0 alone, beyond total until its first batch is read: that batch of every
                        layer as read, kept from the probe (each byte is read once) */
} mk_job_memory;

/* Fills mem for one rank of a run of cfg over lu with plan. */
void mk_job_memory_estimate(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan, mk_job_memory *mem);

/* This machine's physical memory in bytes (0 or less when unknown). */
double mk_job_machine_bytes(void);

/* Whether rank 0 may keep the probe's blocks of the first batch
 * (mk_job_memory.first) beside the rest of the run: they fit this machine's
 * memory, or it is unknown. */
int mk_job_keeps_first(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan);

/* The checks `run` makes before reading any data, which `check` makes too:
 * that a rank's buffers fit this machine's memory (MK_EINPUT naming the
 * widest layer, or the features of the exact estimator) and that no output
 * would overwrite an input (MK_ECONFIG). */
mk_err mk_job_preflight(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan);

/* Some models have sample IDs and some have none (with `ids` on): a warning
 * that they are not all checked. */
void mk_job_warn_ids(const mk_config *cfg, const mk_lineup *lu);

/* Resident memory of MPI, HDF5 and OpenBLAS in a rank before any data (measured
 * on Debian 12 with Open MPI 4.1, HDF5 1.10, OpenBLAS 0.3.21). */
#define MK_LIBRARY_BYTES (28.0 * 1024 * 1024)

/* Relative input paths are read from the working folder, not from the
 * config's: a warning for each plain input file of cfg (config_path's) that
 * is missing there but exists next to the config, saying so and naming both
 * folders. Nothing when the config is in the working folder. */
void mk_job_warn_config_folder(const mk_config *cfg, const char *config_path);

#endif
