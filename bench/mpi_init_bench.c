/* What MPI's start-up and shut-down cost in one process, for the
 * benchmark's start-up figures:
 *   mpirun -np N mk_mpi_init_bench
 * calls MPI_Init_thread (FUNNELED, as mpicka run does) and MPI_Finalize and
 * prints, from rank 0, "init SECONDS finalize SECONDS" (the slowest rank's).
 * Which transports Open MPI tries comes from the environment, e.g.
 * OMPI_MCA_pml=ob1 (see docs/performance.md). */
#include <mpi.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int provided, rank;
    double t0 = now();
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    double mine[2] = {now() - t0, 0.0}, worst[2];
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Barrier(MPI_COMM_WORLD); /* what a run's first collective would wait for */
    MPI_Reduce(mine, worst, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    double t1 = now();
    MPI_Finalize();
    mine[1] = now() - t1;
    if (rank == 0) printf("init %.4f finalize %.4f\n", worst[0], mine[1]);
    return 0;
}
