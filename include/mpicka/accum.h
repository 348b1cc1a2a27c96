/* Accumulators of per-batch vectors and their reduction over MPI.
 *
 * Sums are taken over a fixed binary tree on the global batch index: node
 * (level, start) covers batches [start, start + 2^level), cut at the last
 * batch, and its sum is its left child plus its right child. Whoever computes
 * which batches, and whatever a checkpoint saved, pushing aligned nodes in
 * ascending order of start rebuilds the same tree, so the result is bitwise
 * the same for any number of ranks and any resume. A rank keeps only
 * O(log batches) partial sums. */
#ifndef MPICKA_ACCUM_H
#define MPICKA_ACCUM_H

#include <mpi.h>
#include <stdint.h>

#include "mpicka/error.h"

typedef struct mk_accum mk_accum;

/* Partial sums as nodes, e.g. for a checkpoint: count nodes of len values. */
typedef struct {
    int64_t count, len;
    int64_t *level, *start;  /* count each */
    double *sums;            /* count by len */
} mk_nodes;

/* Frees the arrays and zeroes nodes; NULL arrays are fine. */
void mk_nodes_free(mk_nodes *nodes);

/* An accumulator of vectors of len doubles. Not collective. */
mk_err mk_accum_create(int64_t len, mk_accum **acc);
void mk_accum_free(mk_accum *acc);

/* Add the vector of batch g; g must lie after every batch already in. */
mk_err mk_accum_add(mk_accum *acc, int64_t g, const double *values);

/* Add a whole node (a saved partial sum), under the same rule. */
mk_err mk_accum_push(mk_accum *acc, int64_t level, int64_t start, const double *values);

/* Copy the partial sums out (the caller frees them with mk_nodes_free). */
mk_err mk_accum_nodes(const mk_accum *acc, mk_nodes *nodes);

/* The tree sum of everything added, in this accumulator (out: len values),
 * once the batches [0, B) are all in. */
void mk_accum_total(const mk_accum *acc, double *out);

/* Collective: rank 0 gets in *merged (a new accumulator; NULL on the other
 * ranks) the partial sums of every rank plus `saved` (rank 0 only; NULL when
 * none), pushed in the tree's order. The ranks' accumulators are unchanged. */
mk_err mk_accum_gather(const mk_accum *acc, const mk_nodes *saved, MPI_Comm comm, mk_accum **merged);

#endif
