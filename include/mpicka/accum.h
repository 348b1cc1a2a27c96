/* Accumulators of per-batch vectors and their reduction over MPI.
 *
 * Sums are taken over a fixed binary tree on the global batch index, so the
 * result is bitwise the same however batches are dealt to ranks: a rank that
 * owns a contiguous range of batches sums whole subtrees and keeps only
 * O(log batches) partial sums; rank 0 merges them in rank order. */
#ifndef MPICKA_ACCUM_H
#define MPICKA_ACCUM_H

#include <mpi.h>
#include <stdint.h>

#include "mpicka/error.h"

typedef struct mk_accum mk_accum;

/* An accumulator of vectors of len doubles. Not collective. */
mk_err mk_accum_create(int64_t len, mk_accum **acc);
void mk_accum_free(mk_accum *acc);

/* Add the vector of batch g. Within one accumulator g must increase by one
 * from call to call (a rank's batches are contiguous). Not collective. */
mk_err mk_accum_add(mk_accum *acc, int64_t g, const double *values);

/* The tree sum of all vectors added so far, in this accumulator (out: len). */
void mk_accum_total(const mk_accum *acc, double *out);

/* Append the partial sums of `next`, whose batches directly follow those of
 * acc (what rank 0 does with each rank's sums). Not collective. */
mk_err mk_accum_absorb(mk_accum *acc, const mk_accum *next);

/* Collective: combine the accumulators of all ranks of comm, whose batch
 * ranges must be ascending in rank order. Rank 0 gets the total in out
 * (len doubles; 0 where no batch was added); out is ignored on other ranks. */
mk_err mk_accum_reduce(mk_accum *acc, MPI_Comm comm, double *out);

#endif
