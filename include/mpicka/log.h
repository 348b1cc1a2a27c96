/* Messages to the user. mk_info and mk_warn print only on rank 0 (the caller
 * states whether every rank reaches the call); mk_error_report prints the
 * recorded error message. Before mk_log_init, the process counts as rank 0. */
#ifndef MPICKA_LOG_H
#define MPICKA_LOG_H

#include "mpicka/error.h"

/* Records this process's rank (after MPI_Init); only rank 0 prints. */
void mk_log_init(int rank);

/* The rank given to mk_log_init, 0 before it. */
int mk_log_rank(void);

/* A line on stdout (a newline is added, stdout is flushed so that a log
 * under Slurm shows it at once). Rank 0 only; other ranks return at once. */
void mk_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "mpicka: warning: <message>" on stderr, rank 0 only. */
void mk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seconds on a monotonic clock, for timings that need no MPI. */
double mk_now(void);

/* "mpicka: <kind>: <message>" on stderr, on rank 0. */
void mk_error_report(mk_err err);

#endif
