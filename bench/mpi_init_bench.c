/* What MPI's start-up and shut-down cost in one process, for the
 * benchmark's start-up figures, and optionally how fast rank 0 receives
 * the others' messages the way the final reduction does:
 *   mpirun -np N mk_mpi_init_bench [BYTES COUNT]
 * calls MPI_Init_thread (FUNNELED, as mpicka run does) and MPI_Finalize and
 * prints, from rank 0, "init SECONDS finalize SECONDS" (the slowest rank's).
 * With BYTES and COUNT, every other rank then sends COUNT messages of BYTES
 * to rank 0, which receives them one after the other, rank by rank, as
 * mk_accum_gather receives tree nodes; the line goes on with
 * "recv SECONDS GB/s" (the first round, which opens the connections, and a
 * second, timed apart: "recv SECONDS GB/s warm SECONDS GB/s"). Last comes
 * "barrier SECONDS": the first MPI_Barrier after MPI_Init (the slowest
 * rank's), where the transports open their connections.
 * Which transports Open MPI tries comes from the environment, e.g.
 * OMPI_MCA_pml=ob1 (see docs/performance.md). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One round of the gather's traffic; rank 0's seconds (0 elsewhere). */
static double gather_round(char *buf, int bytes, int count, int rank, int size)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    if (rank == 0) {
        for (int r = 1; r < size; r++)
            for (int i = 0; i < count; i++) MPI_Recv(buf, bytes, MPI_BYTE, r, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        for (int i = 0; i < count; i++) MPI_Send(buf, bytes, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
    }
    return now() - t0;
}

int main(int argc, char **argv)
{
    int provided, rank, size;
    double t0 = now();
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    double mine[3] = {now() - t0, 0.0, 0.0}, worst[3];
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    t0 = now();
    MPI_Barrier(MPI_COMM_WORLD); /* what a run's first collective would wait for: connections made */
    mine[2] = now() - t0;
    MPI_Reduce(mine, worst, 3, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    int bytes = argc > 2 ? atoi(argv[1]) : 0, count = argc > 2 ? atoi(argv[2]) : 0;
    double cold = 0.0, warm = 0.0, total = (double)bytes * count * (size - 1);
    if (bytes > 0 && count > 0 && size > 1) {
        char *buf = calloc((size_t)bytes, 1);
        if (!buf) MPI_Abort(MPI_COMM_WORLD, 1);
        cold = gather_round(buf, bytes, count, rank, size);
        warm = gather_round(buf, bytes, count, rank, size);
        free(buf);
    }
    double t1 = now();
    MPI_Finalize();
    mine[1] = now() - t1;
    if (rank == 0) {
        printf("init %.4f finalize %.4f", worst[0], mine[1]);
        if (cold > 0.0)
            printf(" recv %.4f %.3f warm %.4f %.3f", cold, total / cold * 1e-9, warm, total / warm * 1e-9);
        printf(" barrier %.4f", worst[2]);
        printf("\n");
    }
    return 0;
}
