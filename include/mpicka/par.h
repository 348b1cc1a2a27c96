/* mpicka's own threads for one rank's BLAS work. BLAS itself always runs
 * single-threaded: some OpenBLAS calls change their bits with the thread
 * count, so each product is cut into blocks of fixed shapes (independent of
 * the threads), each block is one single-threaded BLAS call, and these
 * threads share out the blocks. The results are then the same bits for any
 * number of threads, ranks or binding. Not MPI. */
#ifndef MPICKA_PAR_H
#define MPICKA_PAR_H

#include <stdint.h>

#include "mpicka/error.h"

typedef struct mk_par mk_par;

/* threads >= 1: the caller and threads - 1 workers for mk_par_for. With
 * threads = 1 and more than one processor in the thread's affinity mask (a
 * rank started with --bind-to none, or given several cores), one side
 * thread is started for mk_par_async alone. */
mk_err mk_par_create(int threads, mk_par **par);
void mk_par_free(mk_par *par);

/* Calls fn(ctx, k) for every k in [0, n) once, spread over the threads
 * (all in the caller when par is NULL), and returns when all are done.
 * Tasks must write disjoint memory. Not reentrant. */
void mk_par_for(mk_par *par, int64_t n, void (*fn)(void *ctx, int64_t k), void *ctx);

/* Starts task(ctx) on a worker, to run alongside the caller's next
 * mk_par_for calls (which share out their blocks around it); the worker
 * that takes it joins in those blocks when done. With no worker it runs now,
 * in the caller. One at a time: waits for the previous one first. Only the
 * scheduling changes, never the arithmetic, so neither does a bit. */
void mk_par_async(mk_par *par, void (*task)(void *ctx), void *ctx);

/* Returns when the task of mk_par_async has finished (at once if none). */
void mk_par_wait(mk_par *par);

/* The threads a rank uses: `threads` from the config when > 0, else
 * SLURM_CPUS_PER_TASK when set, else 1. */
int mk_par_threads_wanted(int64_t threads);

#endif
