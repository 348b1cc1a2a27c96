/* `mpicka check CONFIG [-n RANKS] [--set KEY=VALUE]...`: the dry run before
 * a job. Validates the config and every input as `run` would, reporting all
 * problems at once, then prints the plan: layers, batches, batches per rank,
 * memory per rank, work, and a time estimate from a short measurement of
 * this machine's BLAS. Not MPI: runs on a login node. */
#ifndef MPICKA_CHECK_H
#define MPICKA_CHECK_H

#include "mpicka/error.h"

/* argv[0] is "check". MK_OK when every check passed; else every problem
 * was printed and the first one's code comes back ("N problem(s)"). */
mk_err mk_check_main(int argc, char **argv);

#endif
