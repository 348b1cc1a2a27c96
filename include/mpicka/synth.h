/* Synthetic activations for the demo, the tests and the benchmarks.
 *
 * A latent walk h_0 -> h_1 -> ... (h_l = corr*h_{l-1} + sqrt(1-corr^2)*e_l,
 * k latent dimensions) is projected into each layer's features, plus noise
 * and an offset; neighbouring layers are therefore more alike than distant
 * ones. Values come from a counter-based generator keyed by (seed, layer,
 * example, feature), so a file does not depend on how it was written, and
 * rows are written in blocks, so memory does not grow with n. Not MPI. */
#ifndef MPICKA_SYNTH_H
#define MPICKA_SYNTH_H

#include <stdint.h>

#include "mpicka/error.h"

/* `mpicka synth OUT.h5 [options]`; argv[0] is "synth". Prints usage on --help. */
mk_err mk_synth_main(int argc, char **argv);

#endif
