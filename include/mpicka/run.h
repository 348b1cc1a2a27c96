/* `mpicka run CONFIG [--set KEY=VALUE]...`: the whole pipeline,
 * config -> plan -> read -> Gram -> pairs -> accumulate -> reduce -> write.
 * Collective over MPI_COMM_WORLD (MPI must be initialised). Every rank
 * returns the same code; the message is printed once, by rank 0. */
#ifndef MPICKA_RUN_H
#define MPICKA_RUN_H

#include "mpicka/config.h"
#include "mpicka/error.h"
#include "mpicka/lineup.h"
#include "mpicka/plan.h"
#include "mpicka/source.h"

mk_err mk_run_main(int argc, char **argv);

/* The batch plan of a config over the models' examples (every example for
 * the exact estimator). Not collective. */
mk_err mk_run_plan(const mk_config *cfg, const mk_lineup *lu, mk_plan *plan);

/* Groups of batches for the jackknife: at most one per batch, none for the
 * exact estimator or when there are fewer than two batches. */
int64_t mk_run_jackknife_groups(const mk_config *cfg, const mk_plan *plan);

/* What a rank allocates for the run (bytes, excluding the libraries):
 * what `mpicka check` reports and what the README states as the bound.
 * Not collective. */
typedef struct {
    double blocks;   /* read-ahead: two centred blocks, plus one as read when types differ */
    double grams;    /* one m-by-m Gram (exact: the stacked batch and its P-by-P cross-products) */
    double stacked;  /* the centred kernels of every layer, m(m-1)/2 doubles each (+ m for hsic0) */
    double sums;     /* per-batch sums and the tree accumulators */
    double caches;   /* the chunk caches of chunked layers (mk_source_cache_bytes) */
    double total;
} mk_run_memory;

void mk_run_memory_estimate(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan, mk_run_memory *mem);

/* The checks `run` makes before reading any data, which `check` makes too:
 * that a rank's buffers fit this machine's memory and that no output would
 * overwrite an input. Not collective. */
mk_err mk_run_preflight(const mk_config *cfg, const mk_lineup *lu, const mk_plan *plan);

/* Some models have sample IDs and some have none (with `ids` on): a warning
 * that they are not all checked. */
void mk_run_warn_ids(const mk_config *cfg, const mk_lineup *lu);

/* Resident memory of MPI, HDF5 and OpenBLAS in a rank before any data (measured
 * on Debian 12 with Open MPI 4.1, HDF5 1.10, OpenBLAS 0.3.21). */
#define MK_LIBRARY_BYTES (28.0 * 1024 * 1024)

#endif
