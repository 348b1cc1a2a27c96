/* `mpicka run CONFIG [--set KEY=VALUE]...`: the whole pipeline,
 * config -> plan -> read -> Gram -> pairs -> accumulate -> reduce -> write.
 * Collective over MPI_COMM_WORLD (MPI must be initialised). Every rank
 * returns the same code; the message is printed once, by rank 0. */
#ifndef MPICKA_RUN_H
#define MPICKA_RUN_H

#include "mpicka/error.h"

/* argv[0] is "run". */
mk_err mk_run_main(int argc, char **argv);

#endif
