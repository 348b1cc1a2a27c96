/* The exact estimator's product, Z^T Z of a K-by-P row-major float64 block
 * (upper triangle), in three shapes, for the choice made in src/maths/exact.c:
 *   mk_exact_shapes_bench P K
 * prints the CPU seconds and GFLOP/s (P*P*K flops) of: tiles of 256 by 256
 * (one syrk or gemm each, the former layout), strips of 512 rows (one syrk
 * and one gemm each, the layout used) and one syrk of all P. CPU time, so
 * that other jobs on a shared machine move it less than wall time. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void tiles(int P, int K, const double *z, double *c, int T)
{
    for (int r0 = 0; r0 < P; r0 += T)
        for (int c0 = r0; c0 < P; c0 += T) {
            int rows = P - r0 < T ? P - r0 : T, cols = P - c0 < T ? P - c0 : T;
            if (r0 == c0)
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, rows, K, 1.0, z + r0, P, 0.0, c + (size_t)r0 * P + c0, P);
            else
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, cols, K, 1.0, z + r0, P, z + c0, P, 0.0,
                            c + (size_t)r0 * P + c0, P);
        }
}

static void strips(int P, int K, const double *z, double *c, int T)
{
    for (int r0 = 0; r0 < P; r0 += T) {
        int h = P - r0 < T ? P - r0 : T;
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, h, K, 1.0, z + r0, P, 0.0, c + (size_t)r0 * P + r0, P);
        if (r0 + h < P)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h, P - r0 - h, K, 1.0, z + r0, P, z + r0 + h, P, 0.0,
                        c + (size_t)r0 * P + r0 + h, P);
    }
}

static void whole(int P, int K, const double *z, double *c, int T)
{
    (void)T;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, P, K, 1.0, z, P, 0.0, c, P);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s P K\n", argv[0]);
        return 2;
    }
    int P = atoi(argv[1]), K = atoi(argv[2]);
    double *z = malloc((size_t)K * P * sizeof *z), *c = calloc((size_t)P * P, sizeof *c), flops = (double)P * P * K;
    if (!z || !c) return 1;
    for (size_t i = 0; i < (size_t)K * P; i++) z[i] = (double)((i * 2654435761u) % 1000) / 1000.0 - 0.5;
    struct { const char *name; void (*fn)(int, int, const double *, double *, int); int T; } how[] = {
        {"tiles 256x256", tiles, 256}, {"strips of 512 rows", strips, 512}, {"one syrk", whole, 0}};
    for (int k = 0; k < 3; k++) {
        how[k].fn(P, K, z, c, how[k].T); /* warm: pages, packing buffers */
        double t = cpu();
        how[k].fn(P, K, z, c, how[k].T);
        t = cpu() - t;
        printf("P %d K %d %-20s %.3f s %.1f GFLOP/s\n", P, K, how[k].name, t, flops / t / 1e9);
    }
    free(z), free(c);
    return 0;
}
