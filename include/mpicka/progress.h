/* Progress of a run as rank 0 sees it: a live bar on a terminal, a plain line
 * every `interval` seconds otherwise (a Slurm log), or nothing. Not MPI:
 * the caller says how many batches are done. */
#ifndef MPICKA_PROGRESS_H
#define MPICKA_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef enum { MK_PROGRESS_NONE, MK_PROGRESS_BAR, MK_PROGRESS_LINES } mk_progress_mode;

typedef struct {
    FILE *out;
    mk_progress_mode mode;
    double interval;    /* seconds between lines, 0: every update (bar: redraws, 0.2) */
    int64_t total;      /* batches */
    int64_t examples;   /* examples per batch (full batches), for the rate */
    int64_t first;      /* batches done before this segment (from a checkpoint): not in the rate */
    double start, last; /* monotonic seconds */
    int drawn;          /* a bar is on screen */
    int64_t done;       /* the last update's count */
    int64_t shown;      /* the count of the last line or bar drawn */
    int final;          /* finishing: draw whatever the interval */
} mk_progress;

/* MK_PROGRESS_BAR when out is a terminal, else MK_PROGRESS_LINES. (Under
 * mpirun a rank's stderr is a pipe even in a terminal: bar must be asked for.) */
mk_progress_mode mk_progress_auto(FILE *out);

/* done_before: the batches a resumed run starts with. The rate and the time
 * left count only the batches this segment does, in its own time. */
void mk_progress_start(mk_progress *p, FILE *out, mk_progress_mode mode, double interval, int64_t total,
                       int64_t examples_per_batch, int64_t done_before);
/* done: all batches done, the restored ones included. */
void mk_progress_update(mk_progress *p, int64_t done);
/* Lines: prints a last line at 100% when the work is done and the last one
 * shown was short of it. Clears the bar, if any. */
void mk_progress_finish(mk_progress *p);

#endif
