/* The batch plan: which examples make up each minibatch, and which rank
 * computes which batches. Pure and O(1) in memory: a shuffled epoch is a
 * keyed bijection of [0, n) evaluated on demand, never a stored permutation.
 *
 * Global batch g (0 <= g < total) is batch g % per_epoch of epoch
 * g / per_epoch. Every epoch has the same batch sizes: m, ..., m, last_size.
 * Ranks get contiguous, ascending ranges of g, in rank order (the reduction
 * relies on it). */
#ifndef MPICKA_PLAN_H
#define MPICKA_PLAN_H

#include <stdint.h>

#include "mpicka/error.h"

/* The batch sizes a plan is made for (the config key batch_size is held to
 * them). A minibatch estimate needs 4 examples. A batch's pairs go through
 * BLAS with int dimensions: m(m-1)/2 must fit. */
#define MK_MIN_BATCH 4
#define MK_MAX_BATCH 46341

typedef struct {
    int64_t n;          /* examples in the data */
    int64_t m;          /* batch size asked for */
    int64_t epochs;
    int shuffle;
    uint64_t seed;
    int64_t block;      /* examples shuffled together (1: examples; see mk_plan_set_block) */
    int64_t per_epoch;  /* batches per epoch */
    int64_t last_size;  /* size of each epoch's last batch (m, or the remainder) */
    int64_t dropped;    /* examples left out of each epoch (a remainder < 4) */
    int64_t total;      /* per_epoch * epochs */
} mk_plan;

/* A plan of n examples in batches of m, over `epochs` passes. Fails with
 * MK_EINPUT when n or m is below MK_MIN_BATCH or epochs < 1, and with
 * MK_ECONFIG when per_epoch * epochs overflows int64. */
mk_err mk_plan_init(mk_plan *plan, int64_t n, int64_t m, int64_t epochs, int shuffle, uint64_t seed);

/* The examples in batch g (0 <= g < total): m, or last_size for the last
 * batch of each epoch. */
int64_t mk_plan_batch_size(const mk_plan *plan, int64_t g);

/* The examples of batch g in ascending order, into rows[mk_plan_batch_size]. */
void mk_plan_batch_rows(const mk_plan *plan, int64_t g, int64_t *rows);

/* Shuffle blocks of `block` consecutive examples instead of examples
 * (config key shuffle_block): each epoch permutes the blocks [k * block,
 * (k + 1) * block), the short last block (n % block examples) put in at a
 * random block position. A batch then reads m / block runs of rows instead
 * of m single rows; with block a multiple of a chunk's rows, each chunk is
 * decompressed once per epoch. What it changes: the examples of a block
 * always share a batch. block 1 (mk_plan_init's) is the example shuffle. */
void mk_plan_set_block(mk_plan *plan, int64_t block);

/* The position of example i of the epoch's order: identity without shuffle. */
int64_t mk_plan_permute(const mk_plan *plan, int64_t epoch, int64_t i);

/* Make the plan cover every example: a remainder too small for a minibatch
 * estimate (< 4) becomes a last batch of its own (for the exact estimator,
 * which has no minimum). */
void mk_plan_keep_all(mk_plan *plan);

/* Permutation r of the m examples of batch g, for the permutation test: a
 * Fisher-Yates shuffle driven by (seed, g, r) alone, so any rank draws the
 * same one. */
void mk_plan_test_perm(const mk_plan *plan, int64_t g, int64_t r, int64_t m, int64_t *perm);

/* The jackknife group of batch g when the batches are cut into `groups`
 * contiguous groups of near-equal size. */
static inline int64_t mk_plan_group(const mk_plan *plan, int64_t g, int64_t groups)
{
    return (int64_t)((__int128)g * groups / plan->total);
}

/* The batches still to compute: ascending, disjoint intervals of global batch
 * indices ([0, total) for a fresh run; what a checkpoint left for a resumed
 * one). Their number stays small: at most one more per rank and checkpoint. */
typedef struct {
    int64_t (*spans)[2]; /* [first, end) */
    int count;
    int64_t batches;     /* sum of the spans' lengths */
} mk_todo;

/* The todo list of a fresh run: one span, [0, total). MK_ENOMEM when out of
 * memory. */
mk_err mk_todo_all(const mk_plan *plan, mk_todo *todo);
/* Frees the spans and leaves todo empty (count and batches 0). */
void mk_todo_free(mk_todo *todo);
/* The k-th batch still to do (0 <= k < todo->batches); -1 past the end. */
int64_t mk_todo_batch(const mk_todo *todo, int64_t k);
/* Remove positions [k0, k1) of the todo list (the batches they stand for);
 * nothing when k1 <= k0. MK_ENOMEM when a span cannot be split (the list
 * still stands for the same batches). */
mk_err mk_todo_remove(mk_todo *todo, int64_t k0, int64_t k1);

/* The positions [lo, hi) of a todo list of `count` batches that rank r of
 * nranks computes: contiguous, ascending in rank order, possibly empty. */
void mk_plan_rank_range(int64_t count, int rank, int nranks, int64_t *lo, int64_t *hi);

#endif
