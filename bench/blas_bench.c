/* Bare BLAS on the shapes of mpicka's Grams, for the benchmark's baseline:
 *   mk_blas_bench M P COUNT float32|float64
 * times COUNT Gram products of an M-by-P row-major block, once as syrk (the
 * call mpicka makes: the upper triangle, M*M*P/2 multiply-adds) and once as
 * gemm (the full M*M*P), and prints "syrk SECONDS gemm SECONDS". */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s M P COUNT float32|float64\n", argv[0]);
        return 2;
    }
    int m = atoi(argv[1]), p = atoi(argv[2]), count = atoi(argv[3]), f32 = !strcmp(argv[4], "float32");
    size_t n = (size_t)m * (size_t)p;
    float *xs = malloc(n * sizeof *xs), *cs = malloc((size_t)m * m * sizeof *cs);
    double *xd = malloc(n * sizeof *xd), *cd = malloc((size_t)m * m * sizeof *cd);
    for (size_t i = 0; i < n; i++) xd[i] = xs[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    double t0 = now();
    for (int k = 0; k < count; k++) {
        if (f32)
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, m, p, 1.0f, xs, p, 0.0f, cs, m);
        else
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, m, p, 1.0, xd, p, 0.0, cd, m);
    }
    double t1 = now();
    for (int k = 0; k < count; k++) {
        if (f32)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, p, 1.0f, xs, p, xs, p, 0.0f, cs, m);
        else
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, p, 1.0, xd, p, xd, p, 0.0, cd, m);
    }
    double t2 = now();
    printf("syrk %.4f gemm %.4f\n", t1 - t0, t2 - t1);
    free(xs), free(cs), free(xd), free(cd);
    return 0;
}
