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
#include "run_impl.h"

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

/* The stop signals of run are caught from the start: Slurm's warning signal
 * can come at any moment, and one that comes before the handler kills the
 * rank and leaves the others waiting. Only for run: the other commands stop
 * as usual. */
static void catch_run_signals(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "run")) mk__catch_signals();
}

/* glibc calls the executable's .preinit_array, with main's arguments, before
 * the shared libraries' constructors, which take most of a start-up (OpenBLAS
 * sizes its buffers, HDF5, MPI): the window before the handler shrinks from
 * about 100 ms to the loader's relocations. */
static void catch_before_constructors(int argc, char **argv, char **envp)
{
    (void)envp;
    catch_run_signals(argc, argv);
}
__attribute__((section(".preinit_array"), used)) static void (*const preinit)(int, char **, char **) =
    catch_before_constructors;

int main(int argc, char **argv)
{
    catch_run_signals(argc, argv); /* again, where no .preinit_array runs: before MPI_Init at least */
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
