/* The mpicka command line: dispatches to the subcommands. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "mpicka/check.h"
#include "mpicka/error.h"
#include "mpicka/log.h"
#include "mpicka/plotcmd.h"
#include "mpicka/run.h"
#include "mpicka/show.h"
#include "mpicka/synth.h"

static void usage(FILE *out)
{
    fprintf(out,
            "mpicka %s: layer-by-layer minibatch CKA over HDF5 activations, with MPI and BLAS\n\n"
            "usage:\n"
            "  mpirun -np N mpicka run CONFIG [--set KEY=VALUE]...   compute the CKA matrix\n"
            "  mpicka check CONFIG [-n RANKS] [--set KEY=VALUE]...  validate inputs, plan memory and time\n"
            "  mpicka synth OUT.h5 [options]                        write synthetic activations\n"
            "  mpicka plot RESULT.h5 -o FIG.{png,svg,pdf} [options] draw the CKA matrix as a heatmap\n"
            "  mpicka show RESULT.h5 [--format table|csv|json]      print the CKA matrix and its provenance\n"
            "  mpicka --version | --help\n\n"
            "Each subcommand takes --help.\n",
            MPICKA_VERSION);
}

static int run_command(int argc, char **argv)
{
    int provided; /* the reader thread makes no MPI calls: FUNNELED is enough */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    mk_err err = mk_run_main(argc - 1, argv + 1);
    MPI_Finalize();
    return mk_exit_status(err);
}

/* The subcommands that run in one process, without MPI. */
static const struct {
    const char *name;
    mk_err (*main)(int argc, char **argv);
} serial[] = {
    {"check", mk_check_main},
    {"synth", mk_synth_main},
    {"plot", mk_plot_main},
    {"show", mk_show_main},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return mk_exit_status(MK_EUSAGE);
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version")) {
        printf("mpicka %s\n", MPICKA_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "run")) return run_command(argc, argv);
    for (size_t i = 0; i < sizeof serial / sizeof serial[0]; i++)
        if (!strcmp(cmd, serial[i].name)) {
            mk_err err = serial[i].main(argc - 1, argv + 1);
            mk_error_report(err);
            return mk_exit_status(err);
        }
    fprintf(stderr, "mpicka: unknown command '%s'\n", cmd);
    usage(stderr);
    return mk_exit_status(MK_EUSAGE);
}
